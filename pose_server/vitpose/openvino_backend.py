"""OpenVINO backend: the ONNX export converted once to OpenVINO IR, compiled for the CPU in fp32, bf16 or int8.

The IR is cached next to the ONNX export, under ``checkpoints/openvino/``, keyed like it by the weights' hash,
input size, flip test and (for int8) the quantisation; fp32 and bf16 share one IR (the precision is a compile-time
hint). Compiled models are cached by OpenVINO itself in ``checkpoints/openvino/compiled/`` (its ``CACHE_DIR``
keys blobs by model, device and compile options), so a restart skips the ~1 s compile.

int8 is NNCF post-training quantisation (activations and weights, calibrated on real crops): it changes the
numbers, so the estimator and ``--backend auto`` use it only where it passes the accuracy guard.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pose_server.vitpose.backends import EXPORT_REVISION, default_threads

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: quantised nodes run int8, the rest fp32


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_capabilities() -> list[str]:
    """OpenVINO's CPU optimisation capabilities, e.g. ['FP32', 'BF16', 'INT8', ...] ([] without OpenVINO)."""
    if not openvino_available():
        return []
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def nncf_available() -> bool:
    try:
        import nncf  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_precisions(isa: list[str] | None = None) -> list[str]:
    """Precisions worth trying on this CPU: fp32 always; bf16 only where the CPU computes it natively (AVX-512
    BF16 / AMX; elsewhere OpenVINO would emulate it, slower than fp32); int8 where NNCF is installed and the CPU
    has int8 dot-product instructions (VNNI / AMX). Without them int8 was no faster than fp32 here (AVX2 EPYC:
    ViTPose-S 160 vs 151 ms under load) and its one-minute calibration would only delay the first start.
    ``isa`` is the CPU's flag list (``auto.cpu_flags()``)."""
    caps = cpu_capabilities()
    if not caps:
        return []
    out = ["fp32"] + (["bf16"] if "BF16" in caps else [])
    if nncf_available() and {"avx512_vnni", "avx_vnni", "amx_int8"} & set(isa or ()):
        out.append("int8")
    return out


def openvino_model_path(
    cache_dir: Path, name: str, weights_hash: str, input_size: tuple[int, int], flip: bool, int8: bool = False
) -> Path:
    """IR file name (``.xml``, weights in the ``.bin`` beside it): everything the graph depends on is in it."""
    w, h = input_size
    safe_name = re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_") or "vitpose"
    tags = [safe_name, weights_hash[:16], f"{w}x{h}", EXPORT_REVISION] + (["flip"] if flip else [])
    return Path(cache_dir) / ("-".join(tags + (["int8"] if int8 else [])) + ".xml")


def _save_ir(model, dst: Path) -> Path:
    """Write an IR under a temporary name, then rename .bin and .xml, so a crash leaves no half model."""
    import openvino as ov

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.stem}.tmp{os.getpid()}.xml")
    try:
        ov.save_model(model, str(tmp), compress_to_fp16=False)  # the default would round the weights to fp16
        os.replace(tmp.with_suffix(".bin"), dst.with_suffix(".bin"))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".bin").unlink(missing_ok=True)
    return dst


def convert_onnx(onnx_path: Path, dst: Path) -> Path:
    """ONNX export -> OpenVINO IR (fp32 weights)."""
    import openvino as ov

    return _save_ir(ov.convert_model(str(onnx_path)), dst)


def quantize_ir(src: Path, dst: Path, crops: Sequence[np.ndarray]) -> Path:
    """NNCF post-training int8 quantisation of an IR, calibrated on network-ready crops (each (1, 3, H, W))."""
    try:
        import nncf
    except ImportError as err:
        raise RuntimeError("OpenVINO int8 needs NNCF: pip install nncf (or use precision='fp32')") from err
    import openvino as ov

    if not crops:
        raise ValueError("int8 calibration needs crops of real video; got none")
    model = ov.Core().read_model(str(src))
    quantized = nncf.quantize(
        model, nncf.Dataset(list(crops)), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(crops)
    )
    return _save_ir(quantized, dst)


class OpenVinoBackend:
    """A compiled OpenVINO model on the CPU; any batch size (the IR keeps the ONNX export's dynamic batch axis)."""

    def __init__(
        self,
        path: Path,
        precision: str = "fp32",
        threads: int | None = None,
        cache_dir: Path | None = None,
        device: str = "CPU",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"OpenVINO precision must be one of {PRECISIONS}, got {precision!r}")
        import openvino as ov

        core = ov.Core()
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise RuntimeError("this CPU has no native bf16 (AVX-512 BF16 or AMX); use precision='fp32'")
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache_dir)})
        options = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(threads or default_threads()),
            "INFERENCE_PRECISION_HINT": _HINTS[precision],
            # The server's capture, detector and signal threads share these few cores: do not pin inference
            # threads to cores (a pinned thread waits for its core while another one is free).
            "ENABLE_CPU_PINNING": False,
        }
        self.path = Path(path)
        self.precision = precision
        self.compiled = core.compile_model(str(path), device, options)
        self.request = self.compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})[0]
        return np.array(out, dtype=np.float32, copy=True)  # the request reuses its output buffer
