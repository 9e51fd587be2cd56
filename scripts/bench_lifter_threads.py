"""The learned lifter's cost per frame with the network's step in numpy or in ONNX Runtime, and the IK's, alone and
beside a thread that runs Python (as the server's other stages do between their native calls).

numpy gives up the interpreter lock around every product and large copy; each time, a thread running Python may
keep it for up to the switch interval (5 ms). One ONNX Runtime call gives it up once a frame. Runs alternate between
the engines, and print wall and CPU time of the lifting thread (median over frames, then over runs).

    .venv/bin/python scripts/bench_lifter_threads.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from contextlib import nullcontext

import numpy as np

from pose_server.ik import solve_rotations
from pose_server.lift import LearnedLifter
from pose_server.lift.camera import PinholeCamera
from pose_server.lift.synthetic import walk

IMAGE = (1280, 720)


class Busy:
    """A thread that runs Python (no native calls) until stopped."""

    def __enter__(self) -> Busy:
        self.stop = False
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        return self

    def _spin(self) -> None:
        n = 0
        while not self.stop:
            n += 1

    def __exit__(self, *exc: object) -> None:
        self.stop = True
        self.thread.join()


def one_run(engine: str, pixels: np.ndarray, busy: bool, warm: int = 30) -> tuple[float, float]:
    """Median wall and CPU ms per frame of the frames after ``warm``."""
    lifter = LearnedLifter(image_size=IMAGE, engine=engine)
    scores = np.ones(17)
    for i in range(warm):
        lifter(pixels[i], scores, i / 30)
    walls, cpus = [], []
    with Busy() if busy else nullcontext():
        for i in range(warm, len(pixels)):
            t0, c0 = time.perf_counter(), time.thread_time()
            lifter(pixels[i], scores, i / 30)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.thread_time() - c0)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3


def ik_run(joints: np.ndarray, busy: bool) -> tuple[float, float]:
    """Median wall and CPU ms of solve_rotations per frame."""
    walls, cpus = [], []
    with Busy() if busy else nullcontext():
        for pose in joints:
            t0, c0 = time.perf_counter(), time.thread_time()
            solve_rotations(pose)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.thread_time() - c0)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=90, help="frames per run (30 more to warm up)")
    args = ap.parse_args()
    joints, _ = walk(seconds=(args.frames + 30) / 30)
    cam = PinholeCamera.orbit(IMAGE, np.array([0.0, 0.0, 1.0]), 45.0, distance=5.0, height=1.2)
    pixels = cam.project(joints)
    results: dict[tuple[str, bool], list[tuple[float, float]]] = {}
    for run in range(args.runs):
        for busy in (False, True):
            for engine in ("numpy", "onnxruntime"):
                results.setdefault((engine, busy), []).append(one_run(engine, pixels, busy))
            results.setdefault(("IK (solve_rotations)", busy), []).append(ik_run(joints[:args.frames], busy))
        print(f"run {run + 1} of {args.runs} done", flush=True)
    print("\n| lifter's step engine, or IK | beside | wall ms/frame | CPU ms/frame |\n|---|---|---|---|")
    for (engine, busy), rows in sorted(results.items(), key=lambda kv: (kv[0][0].startswith("IK"), kv[0][1])):
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        print(f"| {engine} | {'a Python thread' if busy else 'nothing'} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
