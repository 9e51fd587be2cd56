"""``VitPoseEstimator``: one frame and its person boxes in, keypoints and scores out (rtmlib-style)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pose_server.skeleton import Skeleton, get_skeleton
from pose_server.vitpose.backends import (
    DEFAULT_OPSET,
    HeatmapNet,
    OnnxBackend,
    TorchBackend,
    default_onnx_dir,
    export_onnx,
    onnx_model_path,
    quantize_onnx,
)
from pose_server.vitpose.decode import decode_heatmaps
from pose_server.vitpose.loading import load_vitpose
from pose_server.vitpose.preprocess import boxes_to_center_scale, check_frame, crop_boxes, normalize_crops

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")


class VitPoseEstimator:
    """Top-down ViTPose: UDP crops of every box in one batch, the network, DARK-UDP decoding to image pixels.

    ``source`` is anything ``load_vitpose`` accepts (an mmpose ``.pth``, a Hugging Face folder or repo id) or an
    already loaded ``LoadedModel``. ``backend="onnx"`` exports the network on first use and caches it under
    ``cache_dir`` (default ``onnx/`` in ``$VITPOSE_CHECKPOINTS`` or ``checkpoints/``); ``quantize=True`` adds
    int8 dynamic quantisation of the MatMuls. ``flip_test`` averages with the mirrored crops (twice the compute,
    slightly steadier keypoints).
    """

    def __init__(
        self,
        source: Any,
        config: Any = None,
        backend: str = "torch",
        device: str = "cpu",
        quantize: bool = False,
        flip_test: bool = False,
        dataset: str | None = None,
        precision: str | None = None,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        opset: int = DEFAULT_OPSET,
        kernel: int = 11,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if quantize and backend != "onnx":
            raise ValueError("quantize=True is int8 ONNX Runtime inference; use it with backend='onnx'")
        is_loaded = hasattr(source, "model") and hasattr(source, "spec")
        loaded = source if is_loaded else load_vitpose(source, config, dataset=dataset)
        self.spec = loaded.spec
        self.skeleton_info: Skeleton = _skeleton_of(self.spec)
        self.skeleton: str = self.skeleton_info.name
        self.num_keypoints: int = int(self.spec.num_keypoints)
        self.input_size: tuple[int, int] = _input_wh(self.spec)
        self.flip_test = flip_test
        self.kernel = kernel
        self.backend_name = backend
        net = HeatmapNet(loaded.model, self.skeleton_info.flip_indices() if flip_test else None)
        if backend == "torch":
            self.backend: TorchBackend | OnnxBackend = TorchBackend(net, device, precision)
        else:
            path = self._onnx_file(net, Path(cache_dir) if cache_dir else default_onnx_dir(), opset, quantize)
            self.backend = OnnxBackend(path, device, threads)

    def _onnx_file(self, net: HeatmapNet, cache_dir: Path, opset: int, quantize: bool) -> Path:
        """Cached export (and int8 copy) for these weights, input size, opset and flip setting; made if missing."""
        key = dict(
            cache_dir=cache_dir, name=_cache_name(self.spec), weights_hash=self.spec.weights_hash,
            input_size=self.input_size, flip=self.flip_test, opset=opset,
        )  # fmt: skip
        fp32 = onnx_model_path(**key)
        target = onnx_model_path(**key, quantize=True) if quantize else fp32
        if target.exists():
            return target
        steps = [s for s, todo in (("export", not fp32.exists()), ("int8", quantize)) if todo]
        with tqdm(total=len(steps), desc="ViTPose -> ONNX", unit="step", disable=None) as bar:
            if not fp32.exists():
                log.info("exporting ViTPose to ONNX (first use of these weights): %s", fp32)
                export_onnx(net, fp32, self.input_size, opset)
                bar.update()
            if quantize:
                log.info("quantising the ONNX model to int8 (MatMul weights): %s", target)
                quantize_onnx(fp32, target)
                bar.update()
        return target

    def preprocess(self, frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame + (N, 4) boxes -> network batch (N, 3, H, W) float32, crop centres (N, 2), crop sizes (N, 2)."""
        check_frame(frame_bgr)
        centers, scales = boxes_to_center_scale(boxes_xyxy, self.input_size)
        crops = crop_boxes(frame_bgr, centers, scales, self.input_size)
        return normalize_crops(crops), centers, scales

    def postprocess(
        self, heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) heatmaps -> keypoints (N, K, 2) image pixels and scores (N, K), both float32.

        Scores are the heatmap maxima clipped to [0, 1] (the packet contract); a map with no positive value
        (score 0) decodes to a meaningless point, as in mmpose, so filter on the score.
        """
        keypoints, scores = decode_heatmaps(heatmaps, centers, scales, self.kernel)
        return keypoints, np.clip(scores, 0.0, 1.0)

    def __call__(self, frame_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch, centers, scales = self.preprocess(frame_bgr, boxes_xyxy)
        if len(batch) == 0:
            k = self.num_keypoints
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        return self.postprocess(self.backend(batch), centers, scales)


def _cache_name(spec: Any) -> str:
    """Readable part of the ONNX cache name: model name, plus the dataset head of a ViTPose+ checkpoint."""
    name = str(getattr(spec, "name", "") or "vitpose")
    dataset = getattr(spec, "dataset", "")
    return f"{name}-{dataset}" if dataset and getattr(spec, "num_experts", 1) > 1 else name


def _skeleton_of(spec: Any) -> Skeleton:
    """The keypoint layout named by the spec, checked against the model's keypoint count."""
    name = getattr(spec, "skeleton", None)
    skeleton = get_skeleton(name) if name else get_skeleton(int(spec.num_keypoints))
    if skeleton.num_keypoints != int(spec.num_keypoints):
        raise ValueError(
            f"model outputs {spec.num_keypoints} keypoints but its skeleton {skeleton.name!r} has "
            f"{skeleton.num_keypoints}; pass the right dataset= for this checkpoint"
        )
    return skeleton


def _input_wh(spec: Any) -> tuple[int, int]:
    """Network input as (width, height), the order OpenCV uses; the spec stores (height, width)."""
    h, w = (int(v) for v in spec.input_size)
    return w, h
