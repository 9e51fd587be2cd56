"""Fetch the embedded pose model once: BlazePose's .tflite files out of the pinned `mediapipe` wheel.

`make` runs this before `make demo` and `make test`. It downloads exactly one wheel from PyPI with
`pip download --no-deps` (mediapipe itself is never installed or imported), checks the wheel's and every
extracted file's sha256, and writes into checkpoints/embedded/:

    pose_detection.tflite, pose_landmark_full.tflite   the models (Apache-2.0, Google)
    LICENSE                                            the wheel's licence, as shipped
    PROVENANCE                                         wheel, hashes, model card, date

Without network: download the wheel elsewhere (`pip download mediapipe==0.10.21 --no-deps ...`, see
--help) and pass it with --wheel.

    python scripts/fetch_embedded_model.py [--wheel mediapipe-0.10.21-....whl] [--dest checkpoints/embedded]
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pose_server.blazepose.files import (  # noqa: E402
    LICENSE_MEMBER,
    MODEL_CARD,
    MODEL_FILES,
    WHEEL_NAME,
    WHEEL_PIP_ARGS,
    WHEEL_SHA256,
    WHEEL_VERSION,
    embedded_dir,
    sha256_of,
)

STAMP = ".fetched"


def fetched(dest: Path) -> bool:
    """Every wheel file in place with its pinned hash (the stamp alone is not trusted)."""
    return (dest / STAMP).is_file() and all(
        (dest / f.name).is_file() and sha256_of(dest / f.name) == f.sha256 for f in MODEL_FILES.values() if f.member)


def download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", f"mediapipe=={WHEEL_VERSION}", "--no-deps", "--dest",
           str(folder), "--quiet", *WHEEL_PIP_ARGS]
    print(f"fetch_embedded_model: downloading {WHEEL_NAME} (about 36 MB, once)", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = folder / WHEEL_NAME
    if proc.returncode != 0 or not wheel.is_file():
        sys.exit(f"fetch_embedded_model: pip could not download mediapipe=={WHEEL_VERSION}:\n{proc.stderr[-1500:]}\n"
                 f"Without network, download {WHEEL_NAME} elsewhere (pip download mediapipe=={WHEEL_VERSION} "
                 f"--no-deps {' '.join(WHEEL_PIP_ARGS)}) and run: python scripts/fetch_embedded_model.py --wheel "
                 f"PATH")
    return wheel


def extract(wheel: Path, dest: Path) -> None:
    if sha256_of(wheel) != WHEEL_SHA256:
        sys.exit(f"fetch_embedded_model: {wheel} is not the pinned wheel (sha256 {sha256_of(wheel)}, expected "
                 f"{WHEEL_SHA256}); refusing to use it")
    dest.mkdir(parents=True, exist_ok=True)
    lines = [
        "BlazePose GHUM 3D pose models (detector + landmark 'full'), by Google, from the MediaPipe project.",
        f"Extracted unchanged from the PyPI wheel {WHEEL_NAME}",
        f"  sha256 {WHEEL_SHA256}",
        "Licence: Apache License 2.0, the wheel's LICENSE file copied beside this file as LICENSE.",
        f"Model card: {MODEL_CARD}",
        f"Fetched: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')} by "
        "scripts/fetch_embedded_model.py (never committed to this repository).",
        "",
        "files (path in the wheel -> sha256):",
    ]
    with zipfile.ZipFile(wheel) as zf:
        for f in MODEL_FILES.values():
            if f.member is None:
                continue
            data = zf.read(f.member)
            tmp = dest / (f.name + ".part")
            tmp.write_bytes(data)
            if sha256_of(tmp) != f.sha256:
                tmp.unlink()
                sys.exit(f"fetch_embedded_model: {f.member} in the wheel has an unexpected sha256")
            tmp.replace(dest / f.name)
            lines.append(f"  {f.name}  <- {f.member}  {f.sha256}")
        (dest / "LICENSE").write_bytes(zf.read(LICENSE_MEMBER))
    (dest / "PROVENANCE").write_text("\n".join(lines) + "\n")
    (dest / STAMP).write_text(WHEEL_SHA256 + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, default=None, help="use this already downloaded wheel (offline)")
    ap.add_argument("--dest", type=Path, default=None, help="target folder (default checkpoints/embedded/)")
    ap.add_argument("--force", action="store_true", help="fetch again even when the files are in place")
    args = ap.parse_args(argv)
    dest = args.dest or embedded_dir()
    if not args.force and fetched(dest):
        (dest / STAMP).touch()  # newer than the Makefile's prerequisites: make does not ask again
        print(f"fetch_embedded_model: {dest} is up to date")
        return 0
    if args.wheel:
        extract(args.wheel, dest)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            extract(download_wheel(Path(tmp)), dest)
    print(f"fetch_embedded_model: BlazePose models, LICENSE and PROVENANCE in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
