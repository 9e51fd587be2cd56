"""OpenCV's HOG + linear SVM people detector: no download, the fallback when the CNN file is missing."""

from __future__ import annotations

import cv2
import numpy as np


class HogDetector:
    """cv2.HOGDescriptor people detector on a downscaled frame, with non-maximum suppression."""

    name = "hog"

    def __init__(self, max_side: int = 480, score_threshold: float = 0.3, nms_iou: float = 0.45) -> None:
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.max_side = max_side
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = frame_bgr.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        img = cv2.resize(frame_bgr, (round(w * scale), round(h * scale))) if scale < 1 else frame_bgr
        return img, scale

    def postprocess(self, rects: np.ndarray, weights: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        # HOG's scores are SVM margins, not probabilities: squash them into (0, 1) like the CNN's scores, so
        # one --det-threshold means the same for both.
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, np.float32).reshape(-1)))
        keep = cv2.dnn.NMSBoxes(rects.tolist(), scores.tolist(), self.score_threshold, self.nms_iou)
        keep = np.asarray(keep, np.int64).reshape(-1)
        boxes = rects[keep].copy()
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        return boxes / scale, scores[keep]

    def __call__(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        img, scale = self.preprocess(frame_bgr)
        rects, weights = self.hog.detectMultiScale(img, winStride=(8, 8), padding=(8, 8), scale=1.05)
        return self.postprocess(rects, weights, scale)
