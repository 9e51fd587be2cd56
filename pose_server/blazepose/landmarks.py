"""BlazePose's 33 landmarks and how they map onto the keypoint layouts the rest of the server uses."""

from __future__ import annotations

import numpy as np

BLAZEPOSE33_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
# The model outputs 39 points: the 33 landmarks, then auxiliary points (hip centre and a body-size point that
# MediaPipe uses to place the next frame's crop), which are not body keypoints.
NUM_OUTPUT_POINTS = 39
NUM_LANDMARKS = 33

# COCO-17 keypoint i is BlazePose landmark COCO17_FROM_BLAZEPOSE[i] (same names, same left/right sense).
COCO17_FROM_BLAZEPOSE = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])

# COCO-WholeBody's six foot points (left big toe, small toe, heel, right big toe, small toe, heel): BlazePose has
# the big toe ("foot index") and the heel, no small toe (-1).
WHOLEBODY_FEET_FROM_BLAZEPOSE = np.array([31, -1, 29, 32, -1, 30])


def take(points: np.ndarray, scores: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 33, D) points and (N, 33) scores -> the mapped layout; a point BlazePose lacks (-1) gets score 0."""
    idx = np.asarray(index)
    safe = np.where(idx < 0, 0, idx)
    out_pts = points[:, safe].copy()
    out_scores = scores[:, safe].copy()
    out_scores[:, idx < 0] = 0.0
    return out_pts, out_scores
