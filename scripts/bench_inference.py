"""Benchmark ViTPose inference per frame: crop + network + decode, one person, on a real video.

Compares, in one run, our backends (PyTorch fp32, ONNX Runtime fp32/int8, OpenVINO fp32/bf16/int8) for ViTPose-S
and -B (random weights of the real sizes; speed does not depend on the values) against the Hugging Face reference
(``VitPoseImageProcessor`` + ``VitPoseForPoseEstimation`` + ``post_process_pose_estimation``) with the same
weights. All configurations of one model size are loaded in one fresh process and take turns (interleaved, in
blocks of 3 frames), so a change of machine load hits them alike; wall and CPU time are printed side by side, with the
CPU model and the load average before and after. The accuracy guard of ``--backend auto`` (every heatmap's
correlation with PyTorch fp32 >= 0.999, keypoints within 0.5 px, over all timed frames) marks the configuration
auto would pick: the fastest that passes.

    .venv/bin/python scripts/bench_inference.py --video resources/videos/default.mp4 --frames 30
    ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python scripts/bench_inference.py   # as on a CPU without AVX-512 / AMX
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
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
BLOCK = 3  # frames per configuration per turn
ALL_CONFIGS = ("hf-reference", "torch-fp32", "onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-bf16",
               "openvino-int8")  # fmt: skip


def default_configs() -> list[str]:
    """Every configuration this machine can run fast (OpenVINO bf16/int8 only where auto would try them)."""
    from pose_server.vitpose.auto import cpu_flags
    from pose_server.vitpose.openvino_backend import cpu_precisions

    ov = [f"openvino-{p}" for p in cpu_precisions(cpu_flags())]
    from pose_server.blazepose.files import available

    # The embedded BlazePose model (real weights, fetched by `make`): beside ViTPose when it is there.
    embedded = ["blazepose-full"] if available() else []
    return ["hf-reference", "torch-fp32", "onnx-fp32", "onnx-int8", *ov, *embedded]


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


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def run_size(job: dict) -> list[dict]:
    """Load every configuration of one model size in this fresh process, then time them frame by frame in turn."""
    import torch

    torch.set_num_threads(job["threads"])
    frames = read_frames(Path(job["video"]), job["warmup"] + job["frames"])
    box = np.asarray(job["box"], np.float32)[None]
    steps, setup = {}, {}
    for config in job["configs"]:
        start = time.perf_counter()
        if config == "hf-reference":
            steps[config] = _reference(job, box)
        elif config.startswith("blazepose"):
            steps[config] = _blazepose(job, box, config)
        else:
            steps[config] = _ours(job, box, config)
        setup[config] = time.perf_counter() - start
    times = {c: {"total": [], "pre": [], "model": [], "post": [], "cpu": []} for c in steps}
    outputs: dict[str, list[tuple[np.ndarray, tuple | None]]] = {c: [] for c in steps}  # heatmaps, (centres, sizes)
    # Blocks of BLOCK frames per turn: one runtime's worker threads may still spin briefly after its call (torch's
    # OpenMP pool does), which would tax whichever configuration comes next; within a block only the first frame
    # pays for it, and the median ignores it.
    starts = range(0, len(frames), BLOCK)
    for b, start in enumerate(tqdm(starts, desc=f"ViTPose-{job['size']} blocks of {BLOCK} frames", leave=False)):
        order = list(steps) if b % 2 == 0 else list(steps)[::-1]  # alternate who goes first
        for config in order:
            for i in range(start, min(start + BLOCK, len(frames))):
                cpu = time.process_time()
                stages, maps, crop = steps[config](frames[i])
                stages["cpu"] = time.process_time() - cpu
                if i >= job["warmup"]:
                    for name, value in stages.items():
                        times[config][name].append(value)
                    outputs[config].append((maps, crop))
    return [
        {
            "config": c, "size": job["size"], "setup_s": setup[c], "outputs": outputs[c],
            "ms": {k: 1000 * float(np.median(v)) for k, v in times[c].items() if v},
            "p90_ms": 1000 * float(np.percentile(times[c]["total"], 90)),
        }
        for c in steps
    ]  # fmt: skip


def prepare_exports(job: dict) -> dict[str, float]:
    """Export, convert and quantise once, in a separate process, so the timed process loads from the cache."""
    from pose_server.vitpose.estimator import VitPoseEstimator

    seconds = {}
    for config in job["configs"]:
        backend, _, precision = config.partition("-")
        start = time.perf_counter()
        VitPoseEstimator(job["checkpoint"], backend=backend, precision=precision, cache_dir=job["cache_dir"])
        seconds[config] = time.perf_counter() - start
    return seconds


def _ours(job: dict, box: np.ndarray, config: str):
    from pose_server.vitpose.estimator import VitPoseEstimator

    backend, _, precision = config.partition("-")
    est = VitPoseEstimator(job["checkpoint"], backend=backend, precision=precision, threads=job["threads"],
                           cache_dir=job["cache_dir"])  # fmt: skip

    def step(frame: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        batch, centers, scales = est.preprocess(frame, box)
        t1 = time.perf_counter()
        maps = est.backend(batch)
        t2 = time.perf_counter()
        est.postprocess(maps, centers, scales)
        t3 = time.perf_counter()
        return {"total": t3 - t0, "pre": t1 - t0, "model": t2 - t1, "post": t3 - t2}, maps, (centers, scales)

    return step


def _blazepose(job: dict, box: np.ndarray, config: str):
    """BlazePose landmarks on LiteRT: crop (pre), the .tflite network (model), landmarks to pixels (post). Its
    outputs are not heatmaps of the ViTPose reference, so the accuracy guard does not apply."""
    from pose_server.blazepose import BlazePoseEstimator

    est = BlazePoseEstimator(config.partition("-")[2], threads=job["threads"])

    def step(frame: np.ndarray) -> tuple[dict, None, None]:
        t0 = time.perf_counter()
        crops, inverse = est.preprocess(frame, box)
        t1 = time.perf_counter()
        outputs = est.model(crops[:1])
        t2 = time.perf_counter()
        est.postprocess(outputs, inverse[0])
        t3 = time.perf_counter()
        return {"total": t3 - t0, "pre": t1 - t0, "model": t2 - t1, "post": t3 - t2}, None, None

    return step


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

    def step(frame: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        inputs = processor(images=frame[..., ::-1], boxes=boxes, return_tensors="pt")
        t1 = time.perf_counter()
        with torch.inference_mode():
            out = model(**inputs)
        t2 = time.perf_counter()
        processor.post_process_pose_estimation(out, boxes=boxes)
        t3 = time.perf_counter()
        return {"total": t3 - t0, "pre": t1 - t0, "model": t2 - t1, "post": t3 - t2}, out.heatmaps.numpy(), None

    return step


def guard(result: dict, reference: dict) -> tuple[float, float]:
    """Smallest heatmap correlation and largest keypoint distance (px) against PyTorch fp32 over every timed frame:
    the figures of ``--backend auto``'s guard (``auto.accuracy``: keypoints scored >= 0.3, ties left out)."""
    from pose_server.vitpose.auto import accuracy

    corr, px = 1.0, 0.0
    for (maps, (centers, scales)), (ref_maps, _) in zip(result["outputs"], reference["outputs"], strict=True):
        acc = accuracy(maps, ref_maps, centers, scales)
        corr, px = min(corr, acc["correlation"]), max(px, acc["max_px"])
    return corr, px


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=ROOT / "resources" / "videos" / "default.mp4")
    parser.add_argument("--frames", type=int, default=30, help="timed frames per configuration (>= 30)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--box", default=None, help="x1,y1,x2,y2 of the person (default: the best HOG detection "
                        "on the first frame; 'full' for the whole frame)")  # fmt: skip
    parser.add_argument("--sizes", default="S,B", help="comma-separated model sizes from " + ",".join(SIZES))
    parser.add_argument("--configs", default=None, help="comma-separated, from " + ",".join(ALL_CONFIGS)
                        + " (default: those this CPU runs fast)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.frames < 30:
        parser.error("--frames must be at least 30 for a stable median")
    first = read_frames(args.video, 1)[0]
    h, w = first.shape[:2]
    if args.box == "full":
        box = [0.0, 0.0, w - 1.0, h - 1.0]
    elif args.box:
        box = [float(v) for v in args.box.split(",")]
    else:  # a real person box: the keypoint guard in image pixels depends on the crop's size
        from pose_server.vitpose.crops import person_boxes

        box = [float(v) for v in person_boxes([first], per_frame=1)[0][0]]
    sizes = [s.strip().upper() for s in args.sizes.split(",")]
    configs = [c.strip() for c in args.configs.split(",")] if args.configs else default_configs()
    if "torch-fp32" not in configs:
        configs.insert(0, "torch-fp32")  # the accuracy reference
    load_before = load_average()

    from pose_server.vitpose.tiny import make_tiny_checkpoint

    results, exports = [], {}
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench_vitpose_") as tmp:
        for size in tqdm(sizes, desc="model sizes", unit="size"):
            # One Hugging Face folder per size: the reference and our loader read the very same weights.
            ckpt = str(make_tiny_checkpoint(Path(tmp) / f"vitpose-{size}", fmt="hf", decoder="classic", **SIZES[size]))
            cache = str(Path(tmp) / "cache")
            todo = [c for c in configs if c.split("-")[0] in ("onnx", "openvino")]
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                prep = dict(configs=todo, checkpoint=ckpt, cache_dir=cache)
                for config, sec in pool.submit(prepare_exports, prep).result().items():
                    exports[(size, config)] = sec
            # The embedded model does not depend on the ViTPose size: it runs in the first size's turns only.
            size_configs = configs if size == sizes[0] else [c for c in configs if not c.startswith("blazepose")]
            job = dict(configs=size_configs, size=size, checkpoint=ckpt, video=str(args.video), box=box,
                       frames=args.frames, warmup=args.warmup, threads=args.threads, cache_dir=cache)  # fmt: skip
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:  # fresh: no leftover thread pools
                results += pool.submit(run_size, job).result()
    for r in results:
        r["export_s"] = exports.get((r["size"], r["config"]))
    report(results, args, (w, h), box, load_before)


def report(results: list[dict], args: argparse.Namespace, frame_size: tuple[int, int], box: list[float],
           load_before: str) -> None:  # fmt: skip
    from pose_server.vitpose.auto import MAX_PIXELS, MIN_CORRELATION, cpu_flags, cpu_model

    print(f"\nCPU {cpu_model()} ({', '.join(cpu_flags()) or 'no AVX2'}; ONEDNN_MAX_CPU_ISA="
          f"{os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}), {args.threads} threads; load average (1, 5, 15 min) "
          f"before {load_before}, after {load_average()}")  # fmt: skip
    print(f"video {args.video} ({frame_size[0]}x{frame_size[1]}), box {[round(v) for v in box]}, "
          f"{args.frames} timed frames after {args.warmup} warm-up, configurations interleaved in blocks of "
          f"{BLOCK} frames")
    header = (
        f"{'model':5} {'config':13} {'median ms':>9} {'p90 ms':>7} {'pre':>6} {'net':>7} {'post':>6} {'cpu ms':>7} "
        f"{'vs ref':>7} {'load s':>6} {'export s':>8} {'heatmap corr':>12} {'max px':>7} {'auto':>5}"
    )
    print(header)
    print("-" * len(header))
    by_key = {(r["size"], r["config"]): r for r in results}
    for size in dict.fromkeys(r["size"] for r in results):
        rows = [r for r in results if r["size"] == size]
        ref, torch_ref = by_key.get((size, "hf-reference")), by_key[(size, "torch-fp32")]
        for r in rows:
            comparable = r["config"] != "hf-reference" and not r["config"].startswith("blazepose")
            r["corr"], r["px"] = guard(r, torch_ref) if comparable else (None, None)
            r["passes"] = r["corr"] is not None and r["corr"] >= MIN_CORRELATION and r["px"] <= MAX_PIXELS
        pick = min((r for r in rows if r["passes"]), key=lambda r: r["ms"]["total"])
        for r in rows:
            ms = r["ms"]
            speedup = f"{ref['ms']['total'] / ms['total']:6.2f}x" if ref else "      -"
            export = f"{r['export_s']:.1f}" if r.get("export_s") is not None else "-"
            corr = f"{r['corr']:.5f}" if r["corr"] is not None else "-"
            px = f"{r['px']:.2f}" if r["px"] is not None else "-"
            mark = "<-" if r is pick else ("" if r["passes"] or r["corr"] is None else "fail")
            print(
                f"{'ViT-' + size:5} {r['config']:13} {ms['total']:9.1f} {r['p90_ms']:7.1f} {ms['pre']:6.1f} "
                f"{ms['model']:7.1f} {ms['post']:6.1f} {ms['cpu']:7.1f} {speedup:>7} {r['setup_s']:6.1f} "
                f"{export:>8} {corr:>12} {px:>7} {mark:>5}"
            )
    print("\npre/net/post = median crop, network, decode. cpu ms = median CPU time per frame summed over threads "
          "(less sensitive than wall time to other processes on a shared machine). vs ref = reference median / "
          "this median (higher is faster). heatmap corr / max px = the auto guard against PyTorch fp32 over every "
          f"timed frame (pass: corr >= {MIN_CORRELATION}, max px <= {MAX_PIXELS}); '<-' = what --backend auto would "
          "pick (auto times the network alone, on real person crops). load = model/session loading; export = "
          "first-use export / conversion / quantisation, done beforehand in its own process. Random weights give "
          "flat, noisy heatmaps: max px counts the keypoints the server uses (scored >= 0.3) and leaves out ties (a "
          "peak moved to where the reference scores within 1 % of its own peak).")  # fmt: skip


if __name__ == "__main__":
    main()
