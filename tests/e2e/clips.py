"""Short real clips for the end-to-end tests, cut from the bundled demo video."""

from pathlib import Path

import cv2
import numpy as np

from tests.conftest import ROOT


def demo_clip(path: Path, frames: int, mirrored: bool = False) -> Path:
    """The first ``frames`` frames of resources/videos/default.mp4 at half size (a person in every frame), 30 fps.
    ``mirrored``: the frame's left half beside its mirror image, so two performers stand in every frame (the clip's
    second person is too small to be found in its first seconds)."""
    cap = cv2.VideoCapture(str(ROOT / "resources/videos/default.mp4"))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) // 2, int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) // 2)
    half = size[0] // 2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (2 * half, size[1]) if mirrored
                             else size)
    for _ in range(frames):
        ok, img = cap.read()
        assert ok, "the demo clip is shorter than asked"
        img = cv2.resize(img, size)
        if mirrored:
            img = np.ascontiguousarray(np.concatenate([img[:, :half], img[:, :half][:, ::-1]], axis=1))
        writer.write(img)
    writer.release()
    cap.release()
    return path
