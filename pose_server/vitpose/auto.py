"""``--backend auto``: measure once per machine and model which backend is fastest while still exact enough.

On first use of a model on a machine, every backend/precision available here runs the same real person crops
of the demo clip (see ``crops.py``). A candidate is kept only if it passes the accuracy guard against PyTorch
fp32 (every heatmap's correlation >= 0.999 and every keypoint scored >= 0.3 within 0.5 px, ties aside); the kept
ones are then timed on one crop at a time, interleaved, for a few seconds each (a progress bar shows it), and
the fastest by median wall time wins. The result, with every candidate's numbers, is written as JSON to
``checkpoints/auto/`` under a key of the model (weights hash, input size, flip test) and the machine (CPU model,
its vector/matrix extensions, thread count, GPU, library versions), so later starts read it and log the choice.
CUDA candidates (PyTorch fp16, ONNX Runtime's CUDA provider) are tried where a GPU is present.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pose_server.vitpose.backends import TorchBackend, default_threads
from pose_server.vitpose.decode import argmax_heatmaps, decode_heatmaps, refine_dark_udp

log = logging.getLogger(__name__)

AUTO_REVISION = 5  # bump when the measurement changes, so old choices are measured again
MIN_CORRELATION = 0.999
MAX_PIXELS = 0.5
# Keypoints the guard compares: those the server uses (its default keypoint threshold). Below it a map is flat
# and its argmax can jump between near-equal values at the slightest change (1e-6 between two fp32 runtimes
# moved such "keypoints" by hundreds of pixels on random weights); the server drops or holds those anyway.
MIN_SCORE = 0.3
# A keypoint whose peak moved to a place the reference scores within 1 % of its own peak is a tie the reference
# cannot decide either (flat or double-peaked maps), not an error of the backend: it does not count.
TIE = 0.01
# A keypoint whose reference DARK step (one Newton step on the log-heatmap) goes further than one heatmap pixel
# from the integer peak is outside the quadratic fit's validity (a flat top, a near-singular Hessian): there a
# 1e-6 difference between two fp32 runtimes moved keypoints by tens of pixels on random weights. Left out too.
MAX_STEP = 1.0
# Crops the guard runs (from 32 frames of the demo clip). 16 (from 8 frames) let OpenVINO int8 and bf16 of a
# random-weight model through on an AMD EPYC with AVX-512 VNNI / BF16 (correlation 0.99907, 0.2 px), and the same
# backends then failed on other crops of the clip (0.99898; 1.1 and 1.9 px): a verdict needs more than 16 crops.
GUARD_CROPS = 64
SECONDS_PER_CANDIDATE = 2.0
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8", "amx_fp16")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector/matrix extensions that decide which kernels are fast (Linux; [] elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in ISA_FLAGS if f in have]
    except OSError:
        pass
    return []


def gpu_name(device: str) -> str | None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return None


def machine_info(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """What the choice depends on besides the model. A forced ISA (``ONEDNN_MAX_CPU_ISA``) counts as another CPU."""
    versions = {}
    for name in ("torch", "onnxruntime", "openvino"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    return {
        "cpu": cpu_model(),
        "isa": cpu_flags(),
        "max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "threads": int(threads or default_threads()),
        "device": device,
        "gpu": gpu_name(device),
        "versions": versions,
    }


def candidates(device: str) -> list[tuple[str, str]]:
    """(backend, precision) pairs that can run here."""
    import onnxruntime as ort

    if device.startswith("cuda"):
        out = [("torch", "fp16"), ("torch", "fp32")]
        if "CUDAExecutionProvider" in ort.get_available_providers():
            out.append(("onnx", "fp32"))
        return out
    from pose_server.vitpose.openvino_backend import cpu_precisions

    openvino = [("openvino", p) for p in cpu_precisions(cpu_flags())]
    return [("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"), *openvino]


def choice_path(est: Any, machine: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:12]
    w, h = est.input_size
    key = est._cache_key()
    name = f"{key['name']}-{key['weights_hash'][:16]}-{w}x{h}{'-flip' if est.flip_test else ''}-{digest}.json"
    return est._cache("auto") / name


def map_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every (crop, keypoint) heatmap pair; 1 where both maps are constant."""
    a = a.reshape(*a.shape[:2], -1).astype(np.float64)
    b = b.reshape(*b.shape[:2], -1).astype(np.float64)
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (a * b).sum(-1) / den, 1.0)


def accuracy(maps: np.ndarray, ref_maps: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> dict[str, float]:
    """The guard's two figures against the reference: smallest heatmap correlation, largest keypoint distance
    (image pixels) over the keypoints the reference scores at MIN_SCORE or more (the ones the server uses),
    leaving out ties (a peak that moved to where the reference scores within TIE of its own maximum) and
    ill-conditioned DARK steps (longer than MAX_STEP heatmap pixels in the reference)."""
    kp, _ = decode_heatmaps(maps, centers, scales)
    ref_kp, ref_scores = decode_heatmaps(ref_maps, centers, scales)
    peaks, _ = argmax_heatmaps(maps)
    ref_peaks, _ = argmax_heatmaps(ref_maps)
    n, k, h, w = ref_maps.shape
    px, py = (peaks[..., i].astype(np.int64).clip(0, (w, h)[i] - 1) for i in (0, 1))
    ref_there = ref_maps.reshape(n, k, h * w)[np.arange(n)[:, None], np.arange(k)[None], py * w + px]
    moved = (peaks != ref_peaks).any(-1)
    tie = moved & (ref_there >= ref_scores - TIE * np.abs(ref_scores))
    unstable = np.abs(refine_dark_udp(ref_peaks, ref_maps) - ref_peaks).max(-1) > MAX_STEP
    dist = np.linalg.norm(kp - ref_kp, axis=-1)[(ref_scores >= MIN_SCORE) & ~tie & ~unstable]
    return {"correlation": float(map_correlations(maps, ref_maps).min()),
            "max_px": float(dist.max()) if dist.size else 0.0}  # fmt: skip


def passes(acc: dict[str, float]) -> bool:
    return acc["correlation"] >= MIN_CORRELATION and acc["max_px"] <= MAX_PIXELS


BLOCK = 4  # calls per turn: a runtime's worker threads may still spin after another one's call; the median
# of a block ignores its first call, which pays for that


def time_interleaved(backends: dict[str, Any], crops: np.ndarray, seconds: float) -> dict[str, dict[str, float]]:
    """Median wall and CPU ms per call of one crop, the backends taking turns in blocks of BLOCK calls (fair
    under changing machine load)."""
    for fn in backends.values():  # warm-up: first calls allocate and tune
        fn(crops[:1])
        fn(crops[:1])
    wall: dict[str, list[float]] = {k: [] for k in backends}
    cpu: dict[str, list[float]] = {k: [] for k in backends}
    budget = seconds * len(backends)
    start = time.perf_counter()
    with tqdm(total=round(budget, 1), desc="auto backend: timing", unit="s", disable=None,
              bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s") as bar:  # fmt: skip
        i = 0
        while time.perf_counter() - start < budget or i < 2:
            for name, fn in backends.items():
                for j in range(BLOCK):
                    x = crops[(i * BLOCK + j) % len(crops)][None]
                    t0, c0 = time.perf_counter(), time.process_time()
                    fn(x)
                    wall[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
            i += 1
            bar.n = min(budget, time.perf_counter() - start)
            bar.refresh()
    return {k: {"ms": 1000 * statistics.median(wall[k]), "cpu_ms": 1000 * statistics.median(cpu[k]),
                "calls": len(wall[k])} for k in backends}  # fmt: skip


def measure(est: Any, machine: dict[str, Any], seconds: float | None = None) -> dict[str, Any]:
    """Run the guard and the timing for every candidate; returns the record written to the choice file."""
    from pose_server.vitpose.crops import clip_crops

    seconds = SECONDS_PER_CANDIDATE if seconds is None else seconds
    try:
        crops, centers, scales = clip_crops(est.preprocess, GUARD_CROPS)
    except (FileNotFoundError, ValueError) as err:
        raise RuntimeError(f"backend auto measures on the demo clip, which it cannot read ({err}); restore "
                           "resources/videos/default.mp4 or pick a backend: --backend openvino, onnx or torch") from err
    reference = TorchBackend(est._net, "cpu", "fp32")
    ref_maps = reference(crops)
    results, kept = [], {}
    for backend, precision in tqdm(candidates(est.device), desc="auto backend: preparing", unit="backend",
                                   disable=None):  # fmt: skip
        name = f"{backend} {precision}"
        entry: dict[str, Any] = {"backend": backend, "precision": precision}
        try:
            fn = reference if (backend, precision) == ("torch", "fp32") and est.device == "cpu" else \
                est.make_backend(backend, precision)  # fmt: skip
            entry.update(accuracy(fn(crops), ref_maps, centers, scales))
            entry["passed"] = passes(entry)
            if entry["passed"]:
                kept[name] = fn
        except Exception as exc:  # a backend that cannot run here is simply not a candidate
            log.info("auto backend: %s unavailable (%s: %s)", name, type(exc).__name__, exc)
            entry.update(passed=False, error=f"{type(exc).__name__}: {exc}")
        results.append(entry)
    timings = time_interleaved(kept, crops, seconds)
    for entry in results:
        entry.update(timings.get(f"{entry['backend']} {entry['precision']}", {}))
    best = min((e for e in results if e["passed"]), key=lambda e: e["ms"])
    return {"revision": AUTO_REVISION, "backend": best["backend"], "precision": best["precision"],
            "ms": best["ms"], "machine": machine, "model": est._cache_key() | {"input_size": list(est.input_size)},
            "measured": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average": _load_average(),
            "candidates": results}  # fmt: skip


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def choose_backend(est: Any) -> dict[str, Any]:
    """The remembered choice for this model on this machine, measured now if there is none."""
    machine = machine_info(est.device, est.threads)
    path = choice_path(est, machine)
    if path.is_file():
        try:
            choice = json.loads(path.read_text())
            if choice.get("revision") == AUTO_REVISION:
                log.info("backend auto: %s %s (%.1f ms per crop, measured %s; %s)", choice["backend"],
                         choice["precision"], choice["ms"], choice["measured"], path)  # fmt: skip
                return choice
        except (OSError, ValueError, KeyError):
            log.warning("ignoring an unreadable backend choice %s; measuring again", path)
    log.info("backend auto: first use of this model on this machine, timing every backend (a few seconds)")
    choice = measure(est, machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(choice, indent=1))
    os.replace(tmp, path)
    summary = ", ".join(
        f"{e['backend']} {e['precision']} " + (f"{e['ms']:.1f} ms" if e["passed"] else "rejected")
        for e in choice["candidates"]
    )
    log.info("backend auto: chose %s %s (%s); saved in %s", choice["backend"], choice["precision"], summary, path)
    load = choice["load_average"]
    if load is not None and load > machine["threads"]:
        # Interleaved timing keeps the comparison fair under steady load, but a busy machine blurs close calls.
        log.warning("backend auto: measured while other processes kept the CPU busy (load average %.1f on %d "
                    "cores); delete %s to measure again on a quiet machine", load, machine["threads"], path)
    return choice
