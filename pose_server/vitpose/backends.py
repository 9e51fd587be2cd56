"""Inference backends: run (N, 3, H, W) float32 crops through the network, return (N, K, h, w) float32 heatmaps.

``TorchBackend`` runs the PyTorch module (CPU fp32; CUDA fp16/bf16). ``OnnxBackend`` runs an ONNX Runtime
session; ``onnx_model_path`` exports the network on first use and caches it (optionally int8-quantised) under
``checkpoints/onnx/`` keyed by the weights' hash, so later starts skip the export.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

DEFAULT_ONNX_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "onnx"
DEFAULT_OPSET = 17


class HeatmapNet(nn.Module):
    """The pose network plus the optional flip test, as one graph (so ONNX exports include the flip)."""

    def __init__(self, model: nn.Module, flip_indices: np.ndarray | None = None) -> None:
        super().__init__()
        self.model = model
        self.flip = flip_indices is not None
        idx = torch.as_tensor(np.arange(1) if flip_indices is None else flip_indices, dtype=torch.long)
        self.register_buffer("flip_indices", idx, persistent=False)

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out if isinstance(out, torch.Tensor) else out.heatmaps  # transformers models return an output object

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.flip:
            return self.heatmaps(x)
        # Original and mirrored crops in one batch; mirror the second half's maps back, swap left/right, average.
        both = self.heatmaps(torch.cat([x, x.flip(3)], dim=0)).unflatten(0, (2, -1))
        return (both[0] + both[1].index_select(1, self.flip_indices).flip(3)) * 0.5


def default_threads() -> int:
    """Threads for one inference: every core this process may use (the server runs one inference at a time)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


class TorchBackend:
    """PyTorch inference; on CUDA the weights run in fp16 (or bf16), on CPU in fp32."""

    def __init__(self, net: nn.Module, device: str = "cpu", precision: str | None = None) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu'")
        precision = precision or ("fp16" if device.startswith("cuda") else "fp32")
        dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        if precision not in dtypes:
            raise ValueError(f"precision must be one of {sorted(dtypes)}, got {precision!r}")
        if device == "cpu" and precision == "fp16":
            raise ValueError("fp16 on CPU is slow and inexact; use precision='fp32' (or 'bf16') on CPU")
        self.device = torch.device(device)
        self.dtype = dtypes[precision]
        self.net = net.eval().to(self.device, self.dtype)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, self.dtype)
        with torch.inference_mode():
            return self.net(x).float().cpu().numpy()


def onnx_model_path(
    cache_dir: Path,
    name: str,
    weights_hash: str,
    input_size: tuple[int, int],
    flip: bool,
    opset: int = DEFAULT_OPSET,
    quantize: bool = False,
) -> Path:
    """Cache file name: everything the exported graph depends on is in it."""
    w, h = input_size
    tags = [name, weights_hash[:16], f"{w}x{h}", f"op{opset}"]
    tags += (["flip"] if flip else []) + (["int8"] if quantize else [])
    return Path(cache_dir) / ("-".join(tags) + ".onnx")


def export_onnx(net: nn.Module, path: Path, input_size: tuple[int, int], opset: int = DEFAULT_OPSET) -> Path:
    """Export with a dynamic batch axis; written to a temporary file and renamed, so a crash leaves no half file.

    Uses the TorchScript exporter (``dynamo=False``): it exports ViTPose in about a second with a truly dynamic
    batch, while the dynamo exporter takes several times longer and specialises the batch axis when traced
    with one crop. The dynamo exporter remains the fallback if the TorchScript one is ever unavailable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.onnx")
    w, h = input_size
    net = net.eval().float().cpu()
    dummy = torch.zeros(2, 3, h, w)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    net, (dummy,), str(tmp), input_names=["input"], output_names=["heatmaps"], opset_version=opset,
                    dynamic_axes={"input": {0: "batch"}, "heatmaps": {0: "batch"}}, dynamo=False,
                )  # fmt: skip
            except (RuntimeError, TypeError) as err:
                log.warning("TorchScript ONNX export failed (%s); retrying with the dynamo exporter", err)
                batch = torch.export.Dim("batch", min=1, max=1024)
                torch.onnx.export(
                    net, (dummy,), str(tmp), input_names=["input"], output_names=["heatmaps"],
                    opset_version=max(opset, 18), dynamic_shapes={"x": {0: batch}}, dynamo=True,
                )  # fmt: skip
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def quantize_onnx(src: Path, dst: Path, per_channel: bool = False, reduce_range: bool = False) -> Path:
    """Dynamic int8 quantisation of the MatMul weights (the ViT's linear layers; convolutions stay fp32)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    tmp = dst.with_suffix(f".tmp{os.getpid()}.onnx")
    try:
        quantize_dynamic(
            str(src), str(tmp), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
            per_channel=per_channel, reduce_range=reduce_range,
        )  # fmt: skip
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


class OnnxBackend:
    """ONNX Runtime session with full graph optimisation (LayerNorm/GELU/attention fusions) and pinned threads."""

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in available:
                raise RuntimeError(
                    f"device={device!r} but this onnxruntime has no CUDA provider ({available}); "
                    "install onnxruntime-gpu or use device='cpu'"
                )
            providers.insert(0, "CUDAExecutionProvider")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # One inference at a time per frame: all cores to the operators, none to parallel branches.
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
