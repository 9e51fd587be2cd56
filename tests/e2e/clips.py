"""Short real clips for the end-to-end tests, cut from the bundled demo video."""

from pathlib import Path

import cv2

from tests.conftest import ROOT


def demo_clip(path: Path, frames: int) -> Path:
    """The first ``frames`` frames of resources/videos/default.mp4 at half size (a person in every frame), 30 fps."""
    cap = cv2.VideoCapture(str(ROOT / "resources/videos/default.mp4"))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) // 2, int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) // 2)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for _ in range(frames):
        ok, img = cap.read()
        assert ok, "the demo clip is shorter than asked"
        writer.write(cv2.resize(img, size))
    writer.release()
    cap.release()
    return path
