"""Where the embedded BlazePose model files come from and where they live: the pinned ``mediapipe`` wheel.

The ``.tflite`` files ship inside Google's ``mediapipe`` wheel on PyPI (Apache-2.0). ``make`` runs
``scripts/fetch_embedded_model.py`` once: it downloads exactly this wheel without dependencies, checks its
sha256, and extracts the files below (each checked by sha256 too) into ``checkpoints/embedded/`` with the
wheel's licence and a PROVENANCE file. Nothing here imports ``mediapipe``; the files run on ``ai-edge-litert``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pose_server.detect.download import checkpoints_dir

WHEEL_VERSION = "0.10.21"
# One wheel for every machine (the .tflite files are the same in every platform's wheel): pip is asked for
# this platform's file explicitly, so a single sha256 pins it.
WHEEL_NAME = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
WHEEL_PIP_ARGS = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
                  "--abi", "cp311", "--only-binary=:all:")
LICENSE_MEMBER = "mediapipe-0.10.21.dist-info/LICENSE"
MODEL_CARD = "https://storage.googleapis.com/mediapipe-assets/Model%20Card%20BlazePose%20GHUM%203D.pdf"
FETCH_COMMAND = "make embedded   (or: python scripts/fetch_embedded_model.py)"


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name in checkpoints/embedded/
    member: str | None  # path inside the wheel; None = not in the wheel (placed by hand)
    sha256: str | None


# The wheel carries the detector and the "full" landmark model only. "lite" and "heavy" are downloaded by
# mediapipe itself at run time from Google's storage (no registry): they work when placed here by hand.
MODEL_FILES = {
    "detector": ModelFile("pose_detection.tflite", "mediapipe/modules/pose_detection/pose_detection.tflite",
                          "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
    "full": ModelFile("pose_landmark_full.tflite", "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
                      "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
    "lite": ModelFile("pose_landmark_lite.tflite", None, None),
    "heavy": ModelFile("pose_landmark_heavy.tflite", None, None),
}
VARIANTS = ("lite", "full", "heavy")


class EmbeddedModelError(FileNotFoundError):
    """An embedded model file is missing or corrupt; the message names it and the command that fetches it."""


def embedded_dir() -> Path:
    """``checkpoints/embedded/`` (under ``$VITPOSE_CHECKPOINTS`` when set)."""
    return checkpoints_dir() / "embedded"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def model_file(key: str, folder: Path | None = None, verify: bool = True) -> Path:
    """The path of an embedded model file (``detector`` or a landmark variant), checked; else a clear error."""
    if key not in MODEL_FILES:
        raise ValueError(f"unknown BlazePose file {key!r}; choose one of {', '.join(MODEL_FILES)}")
    spec = MODEL_FILES[key]
    path = (folder or embedded_dir()) / spec.name
    if spec.member is None:
        if not path.is_file():
            raise EmbeddedModelError(
                f"BlazePose {key} ({path}) is not in the mediapipe wheel, so `make` cannot fetch it: place "
                f"{spec.name} from Google's MediaPipe pose landmarker models there, or use --model blazepose-full")
        return path
    if not path.is_file():
        raise EmbeddedModelError(f"embedded model file missing: {path}. Fetch it with: {FETCH_COMMAND}")
    if verify and sha256_of(path) != spec.sha256:
        raise EmbeddedModelError(f"embedded model file corrupt (sha256 differs from mediapipe {WHEEL_VERSION}'s): "
                                 f"{path}. Delete it and fetch it again with: {FETCH_COMMAND}")
    return path


def available() -> bool:
    """True when the detector and the full landmark model are in place (sizes only: cheap, for --model auto)."""
    folder = embedded_dir()
    return all((folder / MODEL_FILES[k].name).is_file() for k in ("detector", "full"))
