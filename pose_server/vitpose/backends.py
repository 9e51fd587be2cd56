"""Inference backends: run (N, 3, H, W) float32 crops through the network, return (N, K, h, w) float32 heatmaps.

``TorchBackend`` runs the PyTorch module (CPU fp32; CUDA fp16/bf16). ``OnnxBackend`` runs an ONNX Runtime
session; ``onnx_model_path`` exports the network on first use and caches it (optionally int8-quantised) under
``checkpoints/onnx/`` keyed by the weights' hash, so later starts skip the export.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
EXPORT_REVISION = "r1"  # revision of the export-time graph rewrites (part of the cache key)


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


# Kernel taps of a stride-2, kernel-4, padding-1 transposed convolution, per output parity: output row 2m + a
# reads input rows m + offset with kernel row k, for (offset, k) in _PHASE_TAPS[a].
_PHASE_TAPS = {0: ((0, 1), (-1, 3)), 1: ((1, 0), (0, 2))}


class PhaseDeconv(nn.Module):
    """ConvTranspose2d(k=4, s=2, p=1) + eval BatchNorm as four 2x2 "phase" MatMuls on channels-last maps.

    Same numbers as the original layers, but as MatMuls: ONNX Runtime runs them far faster than its
    ConvTranspose kernel and can quantise them to int8 like the transformer's linear layers.
    """

    def __init__(self, deconv: nn.ConvTranspose2d, norm: nn.BatchNorm2d | None) -> None:
        super().__init__()
        weight = deconv.weight.detach()  # (in, out, 4, 4)
        out_ch = weight.shape[1]
        scale = torch.ones(out_ch)
        shift = deconv.bias.detach().clone() if deconv.bias is not None else torch.zeros(out_ch)
        if norm is not None:
            scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
            shift = (shift - norm.running_mean) * scale + norm.bias.detach()
        phases = []
        for a in (0, 1):
            for b in (0, 1):
                rows = [weight[:, :, ky, kx] for _, ky in _PHASE_TAPS[a] for _, kx in _PHASE_TAPS[b]]
                phases.append(torch.cat(rows, dim=0) * scale)  # (4 * in, out)
        self.register_buffer("weight", torch.stack(phases))
        self.register_buffer("shift", shift)

    @staticmethod
    def supports(deconv: nn.Module) -> bool:
        return (
            isinstance(deconv, nn.ConvTranspose2d) and deconv.kernel_size == (4, 4) and deconv.stride == (2, 2)
            and deconv.padding == (1, 1) and deconv.output_padding == (0, 0) and deconv.groups == 1
            and deconv.dilation == (1, 1)
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, _ = x.shape
        padded = F.pad(x, (0, 0, 1, 1, 1, 1))
        outs = []
        for i, (a, b) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            cols = [
                padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                for dy, _ in _PHASE_TAPS[a]
                for dx, _ in _PHASE_TAPS[b]
            ]
            outs.append(torch.cat(cols, dim=-1) @ self.weight[i])
        # (N, H, W, 2, 2, C) phases -> interleave rows and columns -> (N, 2H, 2W, C)
        y = torch.stack(outs, dim=3).reshape(-1, h, w, 2, 2, self.shift.shape[0])
        return y.permute(0, 1, 3, 2, 4, 5).reshape(-1, 2 * h, 2 * w, self.shift.shape[0]) + self.shift


class MatMulClassicDecoder(nn.Module):
    """The classic ViTPose head (2 deconvs + BN + ReLU, 1x1 conv) rewritten channels-last with MatMuls only."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        layers = list(head.deconv_layers)
        self.up1 = PhaseDeconv(layers[0], layers[1])
        self.up2 = PhaseDeconv(layers[3], layers[4])
        final = head.final_layer
        self.register_buffer("final_weight", final.weight.detach()[:, :, 0, 0].t().contiguous())
        self.register_buffer("final_bias", final.bias.detach().clone())

    @staticmethod
    def supports(head: nn.Module) -> bool:
        layers = list(getattr(head, "deconv_layers", []))
        final = getattr(head, "final_layer", None)
        return (
            len(layers) == 6 and PhaseDeconv.supports(layers[0]) and PhaseDeconv.supports(layers[3])
            and isinstance(layers[1], nn.BatchNorm2d) and isinstance(layers[4], nn.BatchNorm2d)
            and isinstance(final, nn.Conv2d) and final.kernel_size == (1, 1) and final.bias is not None
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = torch.relu(self.up2(torch.relu(self.up1(x))))
        return (x @ self.final_weight + self.final_bias).permute(0, 3, 1, 2)


def for_export(net: nn.Module) -> nn.Module:
    """A copy of the network with the classic head as MatMuls (see ``PhaseDeconv``); other heads unchanged."""
    net = copy.deepcopy(net).eval().float().cpu()
    model = getattr(net, "model", net)
    head = getattr(model, "keypoint_head", None)
    if head is not None and MatMulClassicDecoder.supports(head):
        model.keypoint_head = MatMulClassicDecoder(head)
    return net


def default_onnx_dir() -> Path:
    """Export cache: ``onnx/`` under ``$VITPOSE_CHECKPOINTS``, else under the repository's ``checkpoints/``."""
    from pose_server.vitpose.hub import default_checkpoints_dir

    return default_checkpoints_dir() / "onnx"


DYNAMIC_BLOCK_BASE = 4  # ONNX Runtime's session.dynamic_block_base (see OnnxBackend)


def default_threads() -> int:
    """Threads for one inference: every core this process may use (the server runs one inference at a time)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS / Windows
        return max(1, os.cpu_count() or 1)


class TorchBackend:
    """PyTorch inference; on CUDA the weights run in fp16 (or bf16), on CPU in fp32."""

    def __init__(self, net: nn.Module, device: str = "cpu", precision: str | None = None,
                 threads: int | None = None) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} but torch sees no CUDA GPU; use device='cpu'")
        precision = precision or ("fp16" if device.startswith("cuda") else "fp32")
        dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        if precision not in dtypes:
            raise ValueError(f"precision must be one of {sorted(dtypes)}, got {precision!r}")
        if device == "cpu" and precision == "fp16":
            raise ValueError("fp16 on CPU is slow and inexact; use precision='fp32' (or 'bf16') on CPU")
        if threads:  # torch's pool is the process's: the last backend made sets it
            torch.set_num_threads(int(threads))
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
    """Cache file name: everything the exported graph depends on is in it (bump EXPORT_REVISION when the
    export-time rewrites change, so old files are not reused)."""
    w, h = input_size
    safe_name = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "vitpose"
    tags = [safe_name, weights_hash[:16], f"{w}x{h}", f"op{opset}", EXPORT_REVISION]
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
    net = for_export(net)
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
    """Dynamic int8 quantisation of the MatMul weights: the transformer's linear layers and the head's deconvs.

    The head's last 1x1 layer (tiny, and it writes the heatmaps directly) stays fp32, as do convolutions.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph
    keep_fp32 = [n.name for n in graph.node if n.op_type == "MatMul" and n.name == "/model/keypoint_head/MatMul"]
    dst = Path(dst)
    tmp = dst.with_suffix(f".tmp{os.getpid()}.onnx")
    try:
        # The quantiser logs a "consider pre-processing" hint through the root logger; its pre-processing
        # (symbolic shape inference + optimisation) made ViTPose slower in our measurements, so it is skipped.
        root = logging.getLogger()
        was_disabled, root.disabled = root.disabled, True
        try:
            quantize_dynamic(
                str(src), str(tmp), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                per_channel=per_channel, reduce_range=reduce_range, nodes_to_exclude=keep_fp32,
            )  # fmt: skip
        finally:
            root.disabled = was_disabled
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


class OnnxBackend:
    """ONNX Runtime session: full graph optimisation (LayerNorm / GELU fusions), a fixed thread count, no spinning."""

    def __init__(self, path: Path, device: str = "cpu", threads: int | None = None, spin: bool = False) -> None:
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
        # Idle worker threads sleep instead of spinning: the server's capture, detector and sender threads share
        # the same few cores, and on a busy 2-core machine spinning doubled the CPU time of ViTPose-S int8.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        # Smaller, dynamically shrinking work blocks per parallel operator: when another thread of the server
        # (video decode, lifting) takes a core mid-operator, the other ORT thread picks up the rest instead of
        # waiting at the end of the operator. In the 2-core server benchmark: ViTPose step p95 ~53 -> ~45 ms.
        opts.add_session_config_entry("session.dynamic_block_base", str(DYNAMIC_BLOCK_BASE))
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
