"""``BlazePoseEstimator``: BlazePose GHUM 3D landmarks as a second top-down 2D model (rtmlib-style).

Same interface as ``VitPoseEstimator``: ``keypoints, scores = est(frame_bgr, boxes_xyxy)`` with COCO-17
keypoints in image pixels, so detection, tracking, filtering, lifting and the packets stay ours. Each box
becomes a square crop about its centre (MediaPipe's crop is a square about the hips, which the tracker's
keypoint box nearly matches), resized to 256x256; the 39 output points go back to image pixels after
MediaPipe's heatmap refinement. BlazePose's own metric "world landmarks" are kept in ``self.debug`` only:
our lifter makes the 3D.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from pose_server.blazepose.files import VARIANTS, model_file
from pose_server.blazepose.landmarks import (
    COCO17_FROM_BLAZEPOSE,
    NUM_LANDMARKS,
    NUM_OUTPUT_POINTS,
    WHOLEBODY_FEET_FROM_BLAZEPOSE,
    take,
)
from pose_server.blazepose.runtime import TfliteModel
from pose_server.skeleton import Skeleton, get_skeleton
from pose_server.vitpose.preprocess import check_frame

log = logging.getLogger(__name__)

INPUT = 256
HEATMAP_KERNEL = 7  # MediaPipe's RefineLandmarksFromHeatmap settings for this model
HEATMAP_MIN_CONFIDENCE = 0.5
# The tracker's box is the COCO keypoints' extent x 1.25 (nose to ankles for a standing person); MediaPipe's crop
# is the whole body's circle x 1.25 (head top to toes, and a margin), about 1.3 times more on the demo clip.
# BlazePoseDetector returns boxes of the keypoint box's size, so every box gets the same factor.
CROP_FROM_BOX = 1.3


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))


class BlazePoseEstimator:
    """Top-down BlazePose landmarks: one 256x256 crop per box, COCO-17 keypoints and scores in image pixels.

    ``variant`` is ``full`` (in the mediapipe wheel, fetched by ``make``), ``lite`` or ``heavy`` (placed in
    ``checkpoints/embedded/`` by hand). ``threads`` None: each interpreter on one thread, and the crops of a frame
    with several people run at once, one per core; a number: the model on that many threads, one crop after the
    other. Scores are the landmarks' visibility times the model's "a pose is in
    this crop" flag, so a crop that lost its person scores low everywhere and the tracker lets it go.
    """

    skeleton = "coco17"
    num_keypoints = 17
    backend_name = "litert"
    backend_label = "litert"  # what runs (status "inference", the panel, pose-server bench)

    def __init__(self, variant: str = "full", path: str | Path | None = None, threads: int | None = None,
                 refine: bool = True) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"BlazePose variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.path = Path(path) if path else model_file(variant)
        self.model = TfliteModel(self.path, threads)
        self.threads = threads
        self._lanes: list[TfliteModel] = []  # more interpreters, for the crops run beside self.model's
        self._pool: ThreadPoolExecutor | None = None
        self.skeleton_info: Skeleton = get_skeleton("coco17")
        self.input_size = (INPUT, INPUT)
        self.refine = refine
        # Per call, per box: the 33 landmarks in pixels and their scores, the whole-body feet, the world landmarks.
        self.debug: dict[str, np.ndarray] = {}

    def preprocess(self, frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame + (N, 4) boxes -> crops (N, 256, 256, 3) RGB in [0, 1] and the crop-to-image affines (N, 2, 3)."""
        check_frame(frame_bgr)
        boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
        crops = np.zeros((len(boxes), INPUT, INPUT, 3), np.float32)
        inverse = np.zeros((len(boxes), 2, 3), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            side = max(x2 - x1, y2 - y1, 1.0) * CROP_FROM_BOX
            s = INPUT / side
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            fwd = np.array([[s, 0, INPUT / 2 - s * cx], [0, s, INPUT / 2 - s * cy]], np.float32)
            crop = cv2.warpAffine(frame_bgr, fwd, (INPUT, INPUT), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            crops[i] = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0  # the crop, not the frame
            inverse[i] = cv2.invertAffineTransform(fwd)
        return crops, inverse

    def postprocess(self, outputs: list[np.ndarray], inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One crop's outputs -> (33, 2) image pixels, (33,) scores; fills the debug fields of this box."""
        by_size = {o.size: o for o in outputs}
        raw = by_size[NUM_OUTPUT_POINTS * 5].reshape(NUM_OUTPUT_POINTS, 5)
        flag = float(by_size[1].reshape(()))
        heatmap = next(o for o in outputs if o.ndim == 4 and o.shape[-1] == NUM_OUTPUT_POINTS)[0]
        world = by_size[NUM_OUTPUT_POINTS * 3].reshape(NUM_OUTPUT_POINTS, 3)[:NUM_LANDMARKS]
        xy = raw[:NUM_LANDMARKS, :2].copy()
        if self.refine:
            xy = refine_from_heatmap(xy, heatmap[..., :NUM_LANDMARKS])
        visibility = _sigmoid(raw[:NUM_LANDMARKS, 3])
        pixels = xy @ inverse[:, :2].T + inverse[:, 2]
        return pixels.astype(np.float32), np.clip(visibility * flag, 0.0, 1.0).astype(np.float32), world

    def __call__(self, frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        crops, inverse = self.preprocess(frame_bgr, boxes_xyxy)
        n = len(crops)
        points = np.zeros((n, NUM_LANDMARKS, 2), np.float32)
        scores = np.zeros((n, NUM_LANDMARKS), np.float32)
        world = np.zeros((n, NUM_LANDMARKS, 3), np.float32)
        for i, outputs in enumerate(self._infer(crops)):
            points[i], scores[i], world[i] = self.postprocess(outputs, inverse[i])
        feet, feet_scores = take(points, scores, WHOLEBODY_FEET_FROM_BLAZEPOSE)
        self.debug = {"landmarks": points, "landmark_scores": scores, "world_landmarks": world,
                      "feet": feet, "feet_scores": feet_scores}
        return take(points, scores, COCO17_FROM_BLAZEPOSE)

    def _infer(self, crops: np.ndarray) -> list[list[np.ndarray]]:
        """The model's outputs for each crop (it takes one at a time). Several crops run at once on up to one
        interpreter per core: LiteRT's invoke releases the GIL, and two people's crops took 17 ms of wall time
        instead of 31 on the 2-core machine, for the same CPU time (the demo clip's two people: 35 ms a frame,
        more than a 30 fps frame period). The lanes are made on the first frame that needs them."""
        lanes = 1 if self.threads else min(len(crops), os.cpu_count() or 1)
        if lanes < 2:
            return [self.model(crops[i:i + 1]) for i in range(len(crops))]
        while len(self._lanes) < lanes - 1:
            self._lanes.append(TfliteModel(self.path, 1))
        if self._pool is None:  # (lanes never outnumber the cores)
            self._pool = ThreadPoolExecutor((os.cpu_count() or 2) - 1, thread_name_prefix="blazepose-crop")
        run = lambda model, part: [model(c[None]) for c in part]  # noqa: E731
        # lane k takes crops k, k + lanes, ...; lane 0 runs here
        futures = [self._pool.submit(run, self._lanes[k - 1], crops[k::lanes]) for k in range(1, lanes)]
        parts = [run(self.model, crops[0::lanes])] + [f.result() for f in futures]
        return [parts[i % lanes][i // lanes] for i in range(len(crops))]


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel: int = HEATMAP_KERNEL,
                        min_confidence: float = HEATMAP_MIN_CONFIDENCE) -> np.ndarray:
    """MediaPipe's refinement: where the (sigmoid) heatmap is confident near a landmark, the landmark moves to
    the confidence-weighted mean position inside a kernel x kernel window. ``xy`` in 256-pixel crop units.

    The windows inside the heatmap are gathered and summed at once (the same sums in the same order, so the same
    numbers as one at a time: a loop over the 33 landmarks took 2.7 ms a crop against 0.15, beside the model's 22);
    a window the heatmap's edge clips is done alone."""
    hm_h, hm_w, _ = heatmap.shape
    out = xy.copy()
    half = (kernel - 1) // 2
    cols = (xy[:, 0] / INPUT * hm_w).astype(np.int64)  # (truncated towards zero, as int() did)
    rows = (xy[:, 1] / INPUT * hm_h).astype(np.int64)
    whole = (rows >= half) & (rows < hm_h - half) & (cols >= half) & (cols < hm_w - half)
    k = np.flatnonzero(whole)
    if k.size:
        span = np.arange(-half, half + 1)
        rr = rows[k, None] + span  # (K, kernel)
        cc = cols[k, None] + span
        conf = _sigmoid(heatmap[rr[:, :, None], cc[:, None, :], k[:, None, None]])  # (K, kernel, kernel)
        total = conf.sum(axis=(1, 2))
        mean_col = (cc[:, None, :] * conf).sum(axis=(1, 2)) / total / hm_w * INPUT
        mean_row = (rr[:, :, None] * conf).sum(axis=(1, 2)) / total / hm_h * INPUT
        move = (conf.max(axis=(1, 2)) >= min_confidence) & (total > 0)
        out[k[move]] = np.stack([mean_col[move], mean_row[move]], axis=1)
    for i in np.flatnonzero(~whole & (cols >= 0) & (cols < hm_w) & (rows >= 0) & (rows < hm_h)):
        out[i] = _refine_clipped(heatmap, int(cols[i]), int(rows[i]), i, half, min_confidence, out[i])
    return out


def _refine_clipped(heatmap: np.ndarray, col: int, row: int, k: int, half: int, min_confidence: float,
                    xy: np.ndarray) -> np.ndarray:
    """One landmark whose window the heatmap's edge clips (refine_from_heatmap)."""
    hm_h, hm_w, _ = heatmap.shape
    r0, r1 = max(0, row - half), min(hm_h, row + half + 1)
    c0, c1 = max(0, col - half), min(hm_w, col + half + 1)
    conf = _sigmoid(heatmap[r0:r1, c0:c1, k])
    total = conf.sum()
    if conf.max() >= min_confidence and total > 0:
        rows, cols = np.mgrid[r0:r1, c0:c1]
        return np.array([(cols * conf).sum() / total / hm_w * INPUT, (rows * conf).sum() / total / hm_h * INPUT])
    return xy
