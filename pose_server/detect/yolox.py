"""YOLOX person detector (ONNX, NMS inside the graph), as exported by MMDeploy for rtmlib.

The default weights are OpenMMLab's YOLOX-nano trained on HumanArt + COCO (Apache-2.0, 416x416,
about 1 GFLOP: a few ms per frame on one CPU core). Input `input` (1,3,H,W) raw BGR 0-255 float,
letterboxed at the top-left with grey 114; outputs `dets` (1,N,5) x1,y1,x2,y2,score in input
pixels and `labels` (1,N) with 0 = person.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .download import checkpoints_dir, fetch

RELEASE = "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
MODELS = {
    "yolox-nano": ("yolox_nano_8xb8-300e_humanart-40f6f0d0", (416, 416)),
    "yolox-tiny": ("yolox_tiny_8xb8-300e_humanart-6f3252f9", (416, 416)),
}


def model_path(name: str = "yolox-nano") -> Path:
    return checkpoints_dir() / "detectors" / f"{MODELS[name][0]}.onnx"


def ensure_model(name: str = "yolox-nano") -> Path:
    """The model file, downloaded on first use (tqdm bar); ModelFileMissing names it when offline."""
    stem, _ = MODELS[name]
    return fetch(RELEASE + stem + ".zip", model_path(name))


class YoloxDetector:
    """Person boxes from a YOLOX end-to-end ONNX model."""

    name = "yolox"

    def __init__(self, onnx_path: str | Path, score_threshold: float = 0.3, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # it runs about once a second: leave the cores to ViTPose
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        h, w = inp.shape[2], inp.shape[3]
        self.input_size = (int(h) if isinstance(h, int) else 416, int(w) if isinstance(w, int) else 416)
        outs = self.session.get_outputs()
        if len(outs) < 2 or (isinstance(outs[0].shape[-1], int) and outs[0].shape[-1] != 5):
            raise ValueError(f"{onnx_path} is not an end-to-end YOLOX export (expected outputs dets (1,N,5) and "
                             f"labels (1,N), got {[(o.name, o.shape) for o in outs]})")
        self.score_threshold = score_threshold

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        """Letterbox into the input size (top-left, grey 114) -> (1,3,H,W) float32, scale factor."""
        ih, iw = self.input_size
        h, w = frame_bgr.shape[:2]
        ratio = min(ih / h, iw / w)
        nh, nw = max(1, int(h * ratio)), max(1, int(w * ratio))
        padded = np.full((ih, iw, 3), 114, np.uint8)
        padded[:nh, :nw] = cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32), ratio

    def postprocess(self, dets: np.ndarray, labels: np.ndarray, ratio: float,
                    frame_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes above the threshold, scaled back to frame pixels and clipped to it."""
        dets = np.asarray(dets, np.float32).reshape(-1, 5)
        labels = np.asarray(labels).reshape(-1)
        keep = (dets[:, 4] >= self.score_threshold) & (labels == 0)
        boxes = dets[keep, :4] / ratio
        h, w = frame_shape[:2]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
        valid = (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)
        return boxes[valid], dets[keep, 4][valid]

    def __call__(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        blob, ratio = self.preprocess(frame_bgr)
        dets, labels = self.session.run(None, {self.input_name: blob})[:2]
        return self.postprocess(dets, labels, ratio, frame_bgr.shape)
