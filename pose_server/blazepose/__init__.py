"""The embedded pose model: BlazePose GHUM 3D (Google, Apache-2.0) from the pinned mediapipe wheel, on LiteRT.

``make`` fetches the files into ``checkpoints/embedded/`` (``scripts/fetch_embedded_model.py``); nothing
imports ``mediapipe``. ``BlazePoseEstimator`` has the same interface as ``VitPoseEstimator``;
``BlazePoseDetector`` is one of the person detectors.
"""

from pose_server.blazepose.detector import BlazePoseDetector
from pose_server.blazepose.estimator import BlazePoseEstimator
from pose_server.blazepose.files import EmbeddedModelError, available, embedded_dir, model_file

__all__ = ["BlazePoseDetector", "BlazePoseEstimator", "EmbeddedModelError", "available", "embedded_dir",
           "model_file"]
