"""Benchmark ViTPose inference per frame: crop + network + decode, one person, on a real video.

Compares, in one run, our PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime int8 backends for ViTPose-S and -B
(random weights of the real sizes; speed does not depend on the values) against the Hugging Face reference
(``VitPoseImageProcessor`` + ``VitPoseForPoseEstimation`` + ``post_process_pose_estimation``) with the same
weights. Each configuration runs in its own fresh process so that its peak memory (RSS) is its own.

    .venv/bin/python scripts/bench_inference.py --video resources/videos/default.mp4 --frames 30
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {"S": dict(embed_dim=384, depth=12, heads=12), "B": dict(embed_dim=768, depth=12, heads=12)}
CONFIGS = ("hf-reference", "torch-fp32", "onnx-fp32", "onnx-int8", "blazepose-full")
# The embedded BlazePose model (real weights, fetched by `make`) runs once, in the first size's block.


def read_frames(video: Path, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open video {video}; pass --video PATH to a readable video file")
    frames = []
    while len(frames) < count:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"{video} has no readable frames")
    return [frames[i % len(frames)] for i in range(count)]  # loop a short clip


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM starts afresh at exec; ru_maxrss would include the parent's."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # macOS: bytes, but no /proc


def run_config(job: dict) -> dict:
    """Time one configuration in this (fresh) process; returns medians in ms, peak RSS in MB, first heatmaps."""
    import torch

    torch.set_num_threads(job["threads"])
    frames = read_frames(Path(job["video"]), job["warmup"] + job["frames"])
    box = np.asarray(job["box"], np.float32)[None]
    times: dict[str, list[float]] = {"total": [], "pre": [], "model": [], "post": [], "cpu": []}
    setup = time.perf_counter()
    if job["config"] == "hf-reference":
        step, heatmaps = _reference(job, box)
    elif job["config"].startswith("blazepose"):
        step, heatmaps = _blazepose(job, box)
    else:
        step, heatmaps = _ours(job, box)
    setup = time.perf_counter() - setup
    first = None
    for i, frame in enumerate(frames):
        cpu = time.process_time()
        stages = step(frame)
        stages["cpu"] = time.process_time() - cpu
        if i == 0:
            first = heatmaps()
        if i >= job["warmup"]:
            for name, value in stages.items():
                times[name].append(value)
    return {
        "config": job["config"],
        "size": job["size"],
        "setup_s": setup,
        "ms": {k: 1000 * float(np.median(v)) for k, v in times.items() if v},
        "p90_ms": 1000 * float(np.percentile(times["total"], 90)),
        "rss_mb": peak_rss_mb(),
        "heatmaps": first,
    }


def prepare_exports(job: dict) -> dict[str, float]:
    """Export (and quantise) once, in a separate process, so the timed runs load from the cache."""
    from pose_server.vitpose.estimator import VitPoseEstimator

    seconds = {}
    for config in job["configs"]:
        start = time.perf_counter()
        VitPoseEstimator(job["checkpoint"], backend="onnx", quantize=config == "onnx-int8", cache_dir=job["cache_dir"])
        seconds[config] = time.perf_counter() - start
    return seconds


def _ours(job: dict, box: np.ndarray):
    from pose_server.vitpose.estimator import VitPoseEstimator

    backend, _, precision = job["config"].partition("-")
    est = VitPoseEstimator(
        job["checkpoint"], backend=backend, quantize=precision == "int8", threads=job["threads"],
        cache_dir=job["cache_dir"],
    )  # fmt: skip
    last: dict = {}

    def step(frame: np.ndarray) -> dict:
        t0 = time.perf_counter()
        batch, centers, scales = est.preprocess(frame, box)
        t1 = time.perf_counter()
        last["maps"] = est.backend(batch)
        t2 = time.perf_counter()
        est.postprocess(last["maps"], centers, scales)
        t3 = time.perf_counter()
        return {"total": t3 - t0, "pre": t1 - t0, "model": t2 - t1, "post": t3 - t2}

    return step, lambda: last["maps"]


def _blazepose(job: dict, box: np.ndarray):
    """BlazePose landmarks on LiteRT: crop (pre), the .tflite network (model), landmarks to pixels (post)."""
    from pose_server.blazepose import BlazePoseEstimator

    est = BlazePoseEstimator(job["config"].partition("-")[2], threads=job["threads"])

    def step(frame: np.ndarray) -> dict:
        t0 = time.perf_counter()
        crops, inverse = est.preprocess(frame, box)
        t1 = time.perf_counter()
        outputs = est.model(crops[:1])
        t2 = time.perf_counter()
        est.postprocess(outputs, inverse[0])
        t3 = time.perf_counter()
        return {"total": t3 - t0, "pre": t1 - t0, "model": t2 - t1, "post": t3 - t2}

    return step, lambda: None


def _reference(job: dict, box: np.ndarray):
    import torch
    from transformers import VitPoseForPoseEstimation
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "torchvision missing, using the PIL processor" notice
    from transformers import VitPoseImageProcessor

    processor = VitPoseImageProcessor()
    model = VitPoseForPoseEstimation.from_pretrained(job["checkpoint"]).eval()
    x1, y1, x2, y2 = box[0]
    boxes = [np.array([[x1, y1, x2 - x1, y2 - y1]], np.float32)]  # COCO x, y, w, h
    last: dict = {}

    def step(frame: np.ndarray) -> dict:
        t0 = time.perf_counter()
        inputs = processor(images=frame[..., ::-1], boxes=boxes, return_tensors="pt")
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = model(**inputs)
        t2 = time.perf_counter()
        processor.post_process_pose_estimation(out, boxes=boxes)
        t3 = time.perf_counter()
        last["maps"] = out.heatmaps.numpy()
        return {"total": t3 - t0, "pre": t1 - t0, "model": t2 - t1, "post": t3 - t2}

    return step, lambda: last["maps"]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest per-keypoint Pearson correlation between two heatmap stacks."""
    a = a.reshape(a.shape[1], -1)
    b = b.reshape(b.shape[1], -1)
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    return float(((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))).min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=ROOT / "resources" / "videos" / "default.mp4")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per configuration (>= 30)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--box", default=None, help="x1,y1,x2,y2 of the person (default: the full frame)")
    parser.add_argument("--sizes", default="S,B", help="comma-separated model sizes from " + ",".join(SIZES))
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.frames < 30:
        parser.error("--frames must be at least 30 for a stable median")
    first = read_frames(args.video, 1)[0]
    h, w = first.shape[:2]
    box = [float(v) for v in args.box.split(",")] if args.box else [0.0, 0.0, w - 1.0, h - 1.0]
    sizes = [s.strip().upper() for s in args.sizes.split(",")]
    configs = [c.strip() for c in args.configs.split(",")]

    from pose_server.vitpose.tiny import make_tiny_checkpoint

    results = []
    with tempfile.TemporaryDirectory(prefix="bench_vitpose_") as tmp:
        jobs, ckpts = [], {}
        for size in sizes:
            # One Hugging Face folder per size: the reference and our loader read the very same weights.
            ckpt = make_tiny_checkpoint(Path(tmp) / f"vitpose-{size}", fmt="hf", decoder="classic", **SIZES[size])
            ckpts[size] = str(ckpt)
            for config in configs:
                if config.startswith("blazepose") and size != sizes[0]:
                    continue
                jobs.append(dict(
                    config=config, size=size, checkpoint=str(ckpt), video=str(args.video), box=box,
                    frames=args.frames, warmup=args.warmup, threads=args.threads, cache_dir=str(Path(tmp) / "onnx"),
                ))  # fmt: skip
        ctx = mp.get_context("spawn")
        exports: dict[tuple[str, str], float] = {}
        for size in sizes:
            todo = [c for c in configs if c.startswith("onnx")]
            if todo:
                prep = dict(configs=todo, checkpoint=ckpts[size], cache_dir=jobs[0]["cache_dir"])
                with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                    for config, sec in pool.submit(prepare_exports, prep).result().items():
                        exports[(size, config)] = sec
        for job in tqdm(jobs, desc="configurations", unit="config"):
            # A fresh process per configuration: its own peak RSS, no thread pools left over from the last one.
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                results.append(pool.submit(run_config, job).result())
    for r in results:
        r["export_s"] = exports.get((r["size"], r["config"]))
    report(results, args, (w, h), box)


def _label(result: dict) -> str:
    return "Blaze" if result["config"].startswith("blazepose") else "ViT-" + result["size"]


def report(results: list[dict], args: argparse.Namespace, frame_size: tuple[int, int], box: list[float]) -> None:
    print(f"\nvideo {args.video} ({frame_size[0]}x{frame_size[1]}), box {[round(v) for v in box]}, "
          f"{args.frames} timed frames after {args.warmup} warm-up, {args.threads} threads")  # fmt: skip
    header = (
        f"{'model':5} {'config':13} {'median ms':>9} {'p90 ms':>7} {'pre':>6} {'net':>7} {'post':>6} {'cpu ms':>7} "
        f"{'vs ref':>7} {'RSS MB':>7} {'load s':>6} {'export s':>8} {'heatmap corr':>12}"
    )
    print(header)
    print("-" * len(header))
    by_key = {(r["size"], r["config"]): r for r in results}
    for r in results:
        ref = by_key.get((r["size"], "hf-reference"))
        torch_maps = by_key.get((r["size"], "torch-fp32"), {}).get("heatmaps")
        speedup = f"{ref['ms']['total'] / r['ms']['total']:6.2f}x" if ref else "      -"
        corr = "-"
        if torch_maps is not None and r["config"].startswith("onnx"):
            corr = f"{correlation(r['heatmaps'], torch_maps):.5f}"
        ms = r["ms"]
        export = f"{r['export_s']:.1f}" if r.get("export_s") is not None else "-"
        print(
            f"{_label(r):5} {r['config']:13} {ms['total']:9.1f} {r['p90_ms']:7.1f} {ms['pre']:6.1f} "
            f"{ms['model']:7.1f} {ms['post']:6.1f} {ms['cpu']:7.1f} {speedup:>7} {r['rss_mb']:7.0f} "
            f"{r['setup_s']:6.1f} {export:>8} {corr:>12}"
        )
    print("\npre/net/post = median crop, network, decode. cpu ms = median CPU time per frame summed over threads "
          "(less sensitive than wall time to other processes on a shared machine). "
          "vs ref = reference median / this median (higher is faster). RSS = peak resident memory of the whole "
          "process (Python, libraries, model). heatmap corr = smallest per-keypoint correlation with PyTorch fp32 "
          "on the first frame. load = model/session loading; export = first-use ONNX export (+ int8 quantisation), "
          "done beforehand in its own process so that it counts in neither the times nor the RSS. "
          "Blaze = the embedded BlazePose-full (LiteRT; vs ref: against the first size's reference).")  # fmt: skip


if __name__ == "__main__":
    main()
