"""The whole frame as one person box: for a single performer who fills the shot."""

from __future__ import annotations

import numpy as np


class FullFrameDetector:
    """Returns one box covering the image."""

    name = "full-frame"

    def __call__(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = frame_bgr.shape[:2]
        return np.array([[0, 0, w - 1, h - 1]], np.float32), np.ones(1, np.float32)
