"""`pose-server bench`: processed fps and capture-to-send latency of the whole server on a video.

The video is paced to its frame rate with stale frames dropped (like a camera) and streamed to a
real UDP socket on loopback; latency is `sent - timestamp` (capture to send) of every received
packet. Without a real ViTPose-S file, random weights of the real size are used: the speed is the
same, only the keypoints are meaningless (so keypoint thresholds are off to keep the track).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from .cli import number_in
from .config import BACKENDS, EMBEDDED_MODELS, PRECISIONS, PipelineConfig
from .pipeline import Pipeline
from .vitpose.auto import cpu_model

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
REAL_SMALL = ("checkpoints/vitpose_small.pth", "checkpoints/vitpose-s.pth",
              "checkpoints/hf/usyd-community--vitpose-plus-small")


def small_checkpoint(explicit: str | None) -> tuple[str, bool]:
    """(path, is_random): the given file, a real ViTPose-S if present, else random weights of its size."""
    if explicit:
        return explicit, False
    for rel in REAL_SMALL:
        if (ROOT / rel).exists():
            return str(ROOT / rel), False
    path = ROOT / "checkpoints" / "bench" / "vitpose_small_random.pth"
    if not path.is_file():
        from .vitpose.tiny import make_tiny_checkpoint

        log.info("no ViTPose-S file: writing random weights of its size to %s", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        make_tiny_checkpoint(path, fmt="mmpose", decoder="classic", embed_dim=384, depth=12, heads=12)
    return str(path), True


def _receive(sock: socket.socket, out: list[tuple[float, dict]], stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data = sock.recv(65535)
        except TimeoutError:
            continue
        out.append((time.time(), json.loads(data)))


def run_once(cfg: PipelineConfig) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    cfg.udp = [f"127.0.0.1:{sock.getsockname()[1]}"]
    received: list[tuple[float, dict]] = []
    stop = threading.Event()
    rx = threading.Thread(target=_receive, args=(sock, received, stop), daemon=True)
    rx.start()
    pipe = Pipeline(cfg)
    t0 = time.perf_counter()
    pipe.start()
    pipe.wait()
    wall = time.perf_counter() - t0
    status = pipe.status()
    time.sleep(0.3)
    stop.set()
    rx.join()
    sock.close()
    if status["error"] or len(received) < 2:  # figures of a run that sent nothing would be noise
        raise RuntimeError(f"the benchmark run sent {len(received)} packet(s) of {status['frames_read']} frames read"
                           f"{': ' + status['error'] if status['error'] else ''}; is {cfg.source} a readable video?")
    skip = min(30, len(received) // 4)  # the first second includes ONNX Runtime warm-up
    packets = [p for _, p in received[skip:]]
    lat = np.array([(p["sent"] - p["timestamp"]) * 1000 for p in packets]) if packets else np.zeros(1)
    arrive = [t for t, _ in received[skip:]]
    fps = (len(arrive) - 1) / (arrive[-1] - arrive[0]) if len(arrive) > 1 else 0.0
    return {"packets": len(received), "frames_read": status["frames_read"], "fps": fps, "wall_s": wall,
            "lat_p50": float(np.percentile(lat, 50)), "lat_p95": float(np.percentile(lat, 95)),
            "dropped": status["dropped_frames"], "detector_runs": status["detector_runs"],
            "stage_ms": status["stage_ms"], "detector": status["detector"], "inference": status.get("inference"),
            "people": statistics.mean(len(p["people"]) for p in packets) if packets else 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pose-server bench", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", default=str(ROOT / "resources/videos/default.mp4"))
    ap.add_argument("--checkpoint", default=None, help="ViTPose weights (default: ViTPose-S, random if absent)")
    ap.add_argument("--model", default=None, choices=sorted(EMBEDDED_MODELS),
                    help="the embedded BlazePose model instead of ViTPose (--checkpoint, --backend are then unused)")
    ap.add_argument("--backend", default="auto", choices=BACKENDS)
    ap.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=True, help="int8 (onnx backend)")
    ap.add_argument("--precision", default=None, choices=PRECISIONS,
                    help="openvino / torch precision")
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--threads", type=number_in(1, 256, integer=True), default=None,
                    help="inference threads (default: every core)")
    ap.add_argument("--max-people", type=number_in(1, 16, integer=True), default=1)
    ap.add_argument("--frames", type=number_in(0, 10**9, integer=True), default=0,
                    help="frames per run (0 = the whole video)")
    ap.add_argument("--repeat", type=number_in(1, 1000, integer=True), default=2, help="runs; medians are printed")
    ap.add_argument("--lifter", default="learned", choices=("learned", "geometric"), help="3D lifter")
    ap.add_argument("--depth-prior", action=argparse.BooleanOptionalAction, default=True,
                    help="the geometric lifter's learned depth prior")
    ap.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                    help="treat the video like a camera: paced to its frame rate, stale frames dropped "
                         "(else every frame, as fast as possible)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    ckpt, random_weights = (args.model, False) if args.model else small_checkpoint(args.checkpoint)
    runs = []
    for i in range(args.repeat):
        cfg = PipelineConfig(source=args.video, checkpoint=ckpt, backend=args.backend, quantize=args.quantize,
                             precision=args.precision,
                             detector=args.detector, max_people=args.max_people, realtime=args.realtime,
                             drop_stale=args.realtime, threads=args.threads,
                             max_frames=args.frames or None, log_every=1e9, depth_prior=args.depth_prior,
                             lifter=args.lifter,
                             # random weights give random keypoint scores: accept them so the track holds
                             kpt_threshold=0.0 if random_weights else 0.3)
        r = run_once(cfg)
        runs.append(r)
        print(f"run {i + 1}: {r['packets']} packets, {r['fps']:.1f} fps, latency p50 {r['lat_p50']:.1f} ms "
              f"p95 {r['lat_p95']:.1f} ms, dropped {r['dropped']}, detector runs {r['detector_runs']}, "
              f"people/frame {r['people']:.2f}, detector {r['detector']}, inference {r['inference']}, "
              f"mean ms per stage {r['stage_ms']}")
    med = {k: statistics.median(r[k] for r in runs) for k in ("fps", "lat_p50", "lat_p95")}
    lift = [r["stage_ms"].get("lift") for r in runs if r["stage_ms"].get("lift") is not None]
    lift_cpu = [r["stage_ms"].get("lift_cpu") for r in runs if r["stage_ms"].get("lift_cpu") is not None]
    if lift:
        print(f"{args.lifter} lifter: {statistics.median(lift):.2f} ms wall, "
              f"{statistics.median(lift_cpu):.2f} ms CPU of its thread per person-frame (mean of each run's last "
              "100, median over runs; target <= 2 ms; wall > CPU when inference threads share the cores)")
    print(f"median of {len(runs)}: {med['fps']:.1f} fps, capture-to-send latency p50 {med['lat_p50']:.1f} ms, "
          f"p95 {med['lat_p95']:.1f} ms  (model {Path(ckpt).name}{' random weights' if random_weights else ''}, "
          f"{runs[-1]['inference']}, {'paced' if args.realtime else 'unpaced'}; target >= 29.5 fps with 0 dropped, "
          "p95 <= 50 ms)")
    print(f"CPU {cpu_model()}, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
