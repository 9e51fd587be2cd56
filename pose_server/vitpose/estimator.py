"""``VitPoseEstimator``: one frame and its person boxes in, keypoints and scores out (rtmlib-style)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pose_server.config import BACKENDS
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

INT8_CALIBRATION_CROPS = 300  # NNCF: a few hundred real crops give stable activation ranges

Backend = Callable[[np.ndarray], np.ndarray]


class VitPoseEstimator:
    """Top-down ViTPose: UDP crops of every box in one batch, the network, DARK-UDP decoding to image pixels.

    ``source`` is anything ``load_vitpose`` accepts (an mmpose ``.pth``, a Hugging Face folder or repo id) or an
    already loaded ``LoadedModel``. Backends: ``"torch"`` (PyTorch; CPU fp32, CUDA fp16), ``"onnx"`` (ONNX Runtime;
    exported on first use and cached under ``cache_dir``, default ``onnx/`` in ``$VITPOSE_CHECKPOINTS`` or
    ``checkpoints/``), ``"openvino"`` (the export converted to OpenVINO IR, cached in ``openvino/``), ``"auto"``
    (the fastest of those that pass the accuracy guard on this machine, measured once and remembered; see
    ``auto.py``). ``precision``: ``fp32`` / ``int8`` (ONNX: dynamic int8 MatMuls, the same as ``quantize=True``;
    OpenVINO: NNCF static int8) / ``bf16`` (OpenVINO, CPUs with native bf16) / ``fp16`` (CUDA). ``flip_test``
    averages with the mirrored crops (twice the compute, slightly steadier keypoints).
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
        if quantize and backend not in ("onnx", "openvino"):
            raise ValueError("quantize=True is int8 inference; use it with backend='onnx' (or 'openvino')")
        if quantize:
            precision = "int8"
        is_loaded = hasattr(source, "model") and hasattr(source, "spec")
        loaded = source if is_loaded else load_vitpose(source, config, dataset=dataset)
        self.spec = loaded.spec
        self.skeleton_info: Skeleton = _skeleton_of(self.spec)
        self.skeleton: str = self.skeleton_info.name
        self.num_keypoints: int = int(self.spec.num_keypoints)
        self.input_size: tuple[int, int] = _input_wh(self.spec)
        self.flip_test = flip_test
        self.kernel = kernel
        self.device = device
        self.threads = threads
        self.opset = opset
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._net = HeatmapNet(loaded.model, self.skeleton_info.flip_indices() if flip_test else None)
        self.auto_choice: dict | None = None
        if backend == "auto":
            from pose_server.vitpose.auto import choose_backend

            self.auto_choice = choose_backend(self)
            backend, precision = self.auto_choice["backend"], self.auto_choice["precision"]
        self.backend_name = backend
        self.precision: str = precision or _default_precision(backend, device)
        self.backend: Backend = self.make_backend(backend, self.precision)
        self.backend_label = f"{backend} {self.precision}" + (" (auto)" if self.auto_choice else "")

    def make_backend(self, backend: str, precision: str) -> Backend:
        """A backend running this estimator's network (exported/converted/quantised and cached on first use)."""
        if backend == "torch":
            net = self._net if self.device == "cpu" and precision == "fp32" else copy.deepcopy(self._net)
            return TorchBackend(net, self.device, precision, self.threads)
        if backend == "onnx":
            if precision not in ("fp32", "int8"):
                raise ValueError(f"ONNX Runtime runs fp32 or int8, not {precision!r}")
            return OnnxBackend(self._onnx_file(precision == "int8"), self.device, self.threads)
        if backend == "openvino":
            if self.device != "cpu":
                raise ValueError("the OpenVINO backend runs on the CPU here; use device='cpu'")
            from pose_server.vitpose.openvino_backend import OpenVinoBackend

            compiled = self._cache("openvino") / "compiled"
            return OpenVinoBackend(self._openvino_file(precision == "int8"), precision, self.threads, compiled)
        raise ValueError(f"backend must be one of {BACKENDS[1:]}, got {backend!r}")

    def _cache(self, kind: str) -> Path:
        """Where exports of one kind live: ``cache_dir`` if given (all kinds together), else checkpoints/<kind>."""
        return self.cache_dir if self.cache_dir else default_onnx_dir().parent / kind

    def _cache_key(self) -> dict:
        return dict(name=_cache_name(self.spec), weights_hash=self.spec.weights_hash, input_size=self.input_size,
                    flip=self.flip_test)  # fmt: skip

    def _onnx_file(self, quantize: bool) -> Path:
        """Cached export (and int8 copy) for these weights, input size, opset and flip setting; made if missing."""
        key = dict(cache_dir=self._cache("onnx"), opset=self.opset, **self._cache_key())
        fp32 = onnx_model_path(**key)
        target = onnx_model_path(**key, quantize=True) if quantize else fp32
        if target.exists():
            return target
        steps = [s for s, todo in (("export", not fp32.exists()), ("int8", quantize)) if todo]
        with tqdm(total=len(steps), desc="ViTPose -> ONNX", unit="step", disable=None) as bar:
            if not fp32.exists():
                log.info("exporting ViTPose to ONNX (first use of these weights): %s", fp32)
                export_onnx(self._net, fp32, self.input_size, self.opset)
                bar.update()
            if quantize:
                log.info("quantising the ONNX model to int8 (MatMul weights): %s", target)
                quantize_onnx(fp32, target)
                bar.update()
        return target

    def _openvino_file(self, int8: bool) -> Path:
        """Cached OpenVINO IR (converted from the ONNX export; int8: NNCF on crops of the demo clip)."""
        from pose_server.vitpose import openvino_backend as ovb

        fp32 = ovb.openvino_model_path(self._cache("openvino"), **self._cache_key())
        target = ovb.openvino_model_path(self._cache("openvino"), **self._cache_key(), int8=True) if int8 else fp32
        if target.exists():
            return target
        if not fp32.exists():
            log.info("converting ViTPose to OpenVINO IR (first use of these weights): %s", fp32)
            ovb.convert_onnx(self._onnx_file(quantize=False), fp32)
        if int8:
            from pose_server.vitpose.crops import clip_crops

            log.info("quantising the OpenVINO model to int8 with NNCF on %d crops of the demo clip: %s",
                     INT8_CALIBRATION_CROPS, target)  # fmt: skip
            batch = clip_crops(self.preprocess, INT8_CALIBRATION_CROPS)[0]
            ovb.quantize_ir(fp32, target, [batch[i : i + 1] for i in range(len(batch))])
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


def _default_precision(backend: str, device: str) -> str:
    return "fp16" if backend == "torch" and device.startswith("cuda") else "fp32"


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
