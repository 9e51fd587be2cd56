"""Real network inputs for calibration and backend choice: person crops from the bundled demo clip.

int8 calibration and the accuracy guard of ``--backend auto`` need what the network really sees: people, cropped
exactly as the estimator crops them. The demo clip (``resources/videos/default.mp4``, two people outdoors) is
sampled evenly, people are found with OpenCV's HOG detector (no download), and each box is cropped; a frame
without a detection contributes its centre region.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from pose_server.sources import open_video

DEMO_CLIP = Path(__file__).resolve().parents[2] / "resources" / "videos" / "default.mp4"

Preprocess = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def sample_frames(video: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over the video (fewer if it is shorter)."""
    cap = open_video(video)
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open {video}; pass a readable video file")
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or count
    wanted = set(np.linspace(0, max(total - 1, 0), num=min(count, total)).round().astype(int).tolist())
    frames, index = [], 0
    while len(frames) < len(wanted):
        ok = cap.grab()
        if not ok:
            break
        if index in wanted:
            ok, frame = cap.retrieve()
            if ok:
                frames.append(frame)
        index += 1
    cap.release()
    if not frames:
        raise ValueError(f"{video} has no readable frames")
    return frames


def person_boxes(frames: list[np.ndarray], per_frame: int = 2) -> list[np.ndarray]:
    """HOG person boxes (up to ``per_frame``, best first) for each frame; the centre region where none is found."""
    from pose_server.detect.hog import HogDetector

    detector = HogDetector()
    out = []
    for frame in frames:
        boxes, scores = detector(frame)
        if len(boxes) == 0:
            h, w = frame.shape[:2]
            boxes, scores = np.array([[w * 0.3, h * 0.1, w * 0.7, h * 0.95]], np.float32), np.ones(1, np.float32)
        out.append(boxes[np.argsort(-scores)[:per_frame]])
    return out


def clip_crops(
    preprocess: Preprocess, count: int, video: Path | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` person crops from the demo clip (or ``video``): network batch (count, 3, H, W) float32, and the
    crops' centres and sizes (count, 2) to decode their heatmaps to image pixels."""
    frames = sample_frames(Path(video or DEMO_CLIP), max(1, (count + 1) // 2))
    parts = [preprocess(frame, boxes) for frame, boxes in zip(frames, person_boxes(frames), strict=True)]
    batch, centers, scales = (np.concatenate([p[i] for p in parts]) for i in range(3))
    reps = -(-count // len(batch))  # fewer detections than asked: repeat (calibration only needs statistics)
    return tuple(np.concatenate([a] * reps)[:count] for a in (batch, centers, scales))
