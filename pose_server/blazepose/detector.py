"""BlazePose's person detector (``pose_detection.tflite``) as one of our detectors: frame in, person boxes out.

The network is an SSD on a 224x224 letterbox of the whole frame. Each of its 2254 anchors predicts a face box
and four alignment points; MediaPipe places the landmark crop from the first two: the hip centre and a point
on the circle that encloses the whole body. ``__call__`` runs the network on the whole frame and on
overlapping squares across a wide frame, makes a crop from those two points for each detection (centred on
the hips, what the landmark model was trained on), runs the landmark model in it to confirm there is a body,
and returns the box around that body's keypoints (the box the tracker keeps). ``detect`` returns the raw
detections of one image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pose_server.blazepose.estimator import CROP_FROM_BOX, BlazePoseEstimator
from pose_server.blazepose.files import model_file
from pose_server.blazepose.runtime import TfliteModel
from pose_server.track import keypoint_box

INPUT = 224
# MediaPipe's SSD anchor set for this model: 5 layers, strides 8, 16, 32, 32, 32; one aspect ratio plus the
# interpolated scale per layer; layers of equal stride share a grid; fixed (unit) anchor size.
_GRIDS = ((28, 2), (14, 2), (7, 6))
ROI_SCALE = 1.25  # the crop is the body circle's diameter x 1.25 (MediaPipe's pose_detection_to_roi)
# ... which is what the estimator makes of a box CROP_FROM_BOX times smaller, the size of the tracker's box
# around the keypoints: the detector returns that, so detection and tracking boxes mean the same thing.
BOX_SCALE = ROI_SCALE / CROP_FROM_BOX
# A verified detection: at least this many COCO keypoints score this much; its box is the tracker's keypoint box.
MIN_LANDMARK_SCORE = 0.5
MIN_LANDMARKS = 8
TRACK_EXPAND = 1.25  # Tracker's default `expand`


def ssd_anchors() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1], in the network's output order (row, column, anchor)."""
    centres = []
    for size, per_cell in _GRIDS:
        ys, xs = np.meshgrid((np.arange(size) + 0.5) / size, (np.arange(size) + 0.5) / size, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[np.ndarray]:
    """MediaPipe's weighted NMS: each cluster of overlapping detections becomes their score-weighted mean.

    ``boxes`` (M, 4 + 2K) rows start with xyxy; returns the merged rows, best first."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    out = []
    remaining = np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if not remaining[i]:
            continue
        b = boxes[i, :4]
        x1 = np.maximum(b[0], boxes[:, 0])
        y1 = np.maximum(b[1], boxes[:, 1])
        x2 = np.minimum(b[2], boxes[:, 2])
        y2 = np.minimum(b[3], boxes[:, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        overlap = inter / np.maximum(area + (b[2] - b[0]) * (b[3] - b[1]) - inter, 1e-9)
        members = remaining & (overlap > iou)
        members[i] = True
        w = scores[members]
        merged = (boxes[members] * w[:, None]).sum(0) / w.sum()
        out.append(np.concatenate([merged, [scores[i]]]))
        remaining &= ~members
    return out


class BlazePoseDetector:
    """Person boxes from BlazePose's detector: a callable ``frame_bgr -> (boxes (N,4) xyxy, scores (N,))``."""

    name = "blazepose"

    def __init__(self, path: str | Path | None = None, score_threshold: float = 0.5, nms_iou: float = 0.3,
                 threads: int = 1, verify: bool = True) -> None:
        self.model = TfliteModel(Path(path) if path else model_file("detector"), threads)
        self.anchors = ssd_anchors()
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        # Each detection is checked by the landmark model (its own interpreter: the pipeline runs detection and
        # pose estimation in two threads): a detection with no body in it (the sun through the leaves, on the
        # demo clip) is dropped, and the box becomes the box around the landmarks, the very shape the tracker
        # keeps. A square box around a person seen side-on overlapped its track too little to match it, and
        # every periodic detection started a duplicate track.
        self.landmarks = BlazePoseEstimator("full", threads=threads) if verify else None

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, float, tuple[float, float]]:
        """Centred letterbox to 224x224, RGB in [-1, 1] -> (1, 224, 224, 3), scale, (pad x, pad y) in input px."""
        h, w = frame_bgr.shape[:2]
        scale = INPUT / max(h, w)
        nw, nh = round(w * scale), round(h * scale)
        pad = ((INPUT - nw) / 2, (INPUT - nh) / 2)
        canvas = np.zeros((INPUT, INPUT, 3), np.uint8)
        x0, y0 = int(pad[0]), int(pad[1])
        canvas[y0:y0 + nh, x0:x0 + nw] = cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32)
        return (rgb / 127.5 - 1.0)[None], scale, (float(x0), float(y0))

    def postprocess(self, raw_boxes: np.ndarray, raw_scores: np.ndarray, scale: float,
                    pad: tuple[float, float]) -> np.ndarray:
        """Network outputs -> (N, 13) rows: face box xyxy, four alignment points xy, score; frame pixels."""
        raw = raw_boxes.reshape(-1, 12)
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1), -80, 80)))
        keep = scores >= self.score_threshold
        if not keep.any():
            return np.zeros((0, 13), np.float32)
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep] * INPUT
        cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
        half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
        points = raw[:, 4:].reshape(-1, 4, 2) + anchors[:, None, :]
        rows = np.concatenate([np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1),
                               points.reshape(-1, 8)], axis=1)
        merged = np.array(weighted_nms(rows, scores, self.nms_iou), np.float32)
        # letterboxed input pixels -> frame pixels
        merged[:, 0:12:2] = (merged[:, 0:12:2] - pad[0]) / scale
        merged[:, 1:12:2] = (merged[:, 1:12:2] - pad[1]) / scale
        return merged

    def detect(self, frame_bgr: np.ndarray) -> np.ndarray:
        """(N, 13): face box, hip centre, body-circle point, two more alignment points, score (frame pixels)."""
        x, scale, pad = self.preprocess(frame_bgr)
        outs = self.model(x)
        raw_boxes = next(o for o in outs if o.shape[-1] == 12)
        raw_scores = next(o for o in outs if o.shape[-1] == 1)
        return self.postprocess(raw_boxes, raw_scores, scale, pad)

    def tiles(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        """The whole frame, plus overlapping squares across a wide (or down a tall) frame: a letterbox of a
        16:9 frame shrinks a person standing a few metres away below what this close-range detector finds."""
        regions = [(0, 0, width, height)]
        side = min(width, height)
        count = int(np.ceil(max(width, height) / side - 0.2))  # no extra squares for a nearly square frame
        if count >= 2:
            for start in np.linspace(0, max(width, height) - side, count).round().astype(int):
                regions.append((start, 0, start + side, side) if width > height else (0, start, side, start + side))
        return regions

    def __call__(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = frame_bgr.shape[:2]
        found = []
        for x0, y0, x1, y1 in self.tiles(w, h):
            dets = self.detect(frame_bgr[y0:y1, x0:x1])
            dets[:, 0:12:2] += x0
            dets[:, 1:12:2] += y0
            found.append(dets)
        dets = np.concatenate(found)
        if len(dets) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        hips, circle = dets[:, 4:6], dets[:, 6:8]
        half = np.linalg.norm(circle - hips, axis=1) * BOX_SCALE
        boxes = np.concatenate([hips - half[:, None], hips + half[:, None]], axis=1)
        # The same person seen in two tiles: keep the best-scoring box of each overlapping group.
        keep = cv2.dnn.NMSBoxes(np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1).tolist(),
                                dets[:, 12].tolist(), self.score_threshold, self.nms_iou)
        keep = np.asarray(keep, np.int64).reshape(-1)
        boxes, scores = boxes[keep].astype(np.float32), dets[keep, 12].astype(np.float32)
        if self.landmarks is None or len(boxes) == 0:
            return boxes, scores
        kpts, kpt_scores = self.landmarks(frame_bgr, boxes)
        verified = []
        for i in range(len(boxes)):
            box = keypoint_box(kpts[i], kpt_scores[i], MIN_LANDMARK_SCORE, TRACK_EXPAND, (w, h))
            if box is not None and (kpt_scores[i] >= MIN_LANDMARK_SCORE).sum() >= MIN_LANDMARKS:
                verified.append(i)
                boxes[i] = box
        return boxes[verified], scores[verified]
