"""Pluggable person detectors: `full-frame`, `yolox` (CNN, ONNX, downloaded on first use), `hog`.

Every detector is a callable `frame_bgr -> (boxes (N,4) xyxy float32 pixels, scores (N,) float32)`.
`auto` (the default) picks YOLOX-nano when its file is in checkpoints/, else BlazePose's detector when the
embedded model is in checkpoints/embedded/ (`make` fetches it), else HOG, with a one-time warning: the server
must start without network, and HOG needs no file. `blazepose` asks for BlazePose's detector.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .download import ModelFileMissing
from .full_frame import FullFrameDetector
from .hog import HogDetector
from .yolox import YoloxDetector, ensure_model, model_path

log = logging.getLogger(__name__)

Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
DETECTORS = ("auto", "yolox", "yolox-nano", "yolox-tiny", "blazepose", "hog", "full-frame")
_warned = False

__all__ = ["DETECTORS", "Detector", "FullFrameDetector", "HogDetector", "ModelFileMissing", "YoloxDetector",
           "make_detector"]


def make_detector(name: str = "auto", score_threshold: float = 0.3) -> Detector:
    """Build a detector by name, or from a path to an end-to-end YOLOX .onnx file."""
    global _warned
    if name == "full-frame":
        return FullFrameDetector()
    if name == "hog":
        return HogDetector()
    if name == "blazepose":
        from pose_server.blazepose import BlazePoseDetector

        return BlazePoseDetector(score_threshold=max(score_threshold, 0.5))
    if name.endswith(".onnx"):
        if not Path(name).is_file():
            raise ModelFileMissing(f"detector model not found: {name}")
        return YoloxDetector(name, score_threshold)
    if name in ("yolox", "yolox-nano", "yolox-tiny"):
        key = "yolox-nano" if name == "yolox" else name
        return YoloxDetector(ensure_model(key), score_threshold)
    if name == "auto":
        path = model_path("yolox-nano")
        if path.is_file():
            return YoloxDetector(path, score_threshold)
        from pose_server.blazepose import BlazePoseDetector, available

        embedded = available()
        if not _warned:
            _warned = True
            log.warning("person detector %s not found: using %s. Run with --detector yolox once online to download "
                        "it.", path, "BlazePose's detector (embedded)" if embedded else
                        "OpenCV's HOG detector (slower, misses people who are not upright)")
        return BlazePoseDetector(score_threshold=max(score_threshold, 0.5)) if embedded else HogDetector()
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)} or a .onnx path")
