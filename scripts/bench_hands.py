"""Accuracy and cost of the server's hand solver (pose_server/hands) on procedural hands.

Each trial draws a hand (finger angles uniform inside the anatomical limits, a uniformly random wrist
orientation, left or right alternately), places its wrist --distance metres from a virtual 1280x720 camera
(60 degree field of view) and projects its 21 keypoints. The same hand is then solved at every --noise level
(Gaussian pixel noise per coordinate), interleaved: a cold start (one frame, no history), then a warm start
from that solution on a second noisy view of the same hand (what every frame after the first costs).

Printed per distance x noise: finger joint angle error (degrees between the true and the solved rotation of each
of the 15 finger bones under its parent), wrist orientation error (degrees), medians and 90th percentiles,
and wall/CPU milliseconds per hand for cold and warm starts, with the machine's load average.

    .venv/bin/python scripts/bench_hands.py [--trials 60] [--distance 0.8 2.5] [--noise 0 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import numpy as np

from pose_server.hands.fit import HandFitter
from pose_server.hands.model import local_rotations
from pose_server.hands.synthetic import random_hand
from pose_server.lift.camera import PinholeCamera

IMAGE = (1280, 720)


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angles (degrees) between rotation matrices (..., 3, 3)."""
    rel = np.swapaxes(a, -1, -2) @ b
    return np.degrees(np.arccos(np.clip((np.trace(rel, axis1=-2, axis2=-1) - 1) / 2, -1, 1)))


def timed(fn, *args, **kwargs):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=60, help="hands per distance")
    ap.add_argument("--distance", type=float, nargs="+", default=[0.8, 2.5],
                    help="camera to wrist, metres (0.8: a close-up; 2.5: a whole body in a 720p frame)")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 2.0], help="pixel noise levels (std)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.trials < 1 or min(args.distance) <= 0.2 or min(args.noise) < 0:
        ap.error("--trials >= 1, --distance > 0.2 m and --noise >= 0 px")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rng = np.random.default_rng(args.seed)
    results: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    t_start = time.perf_counter()
    for distance in args.distance:
        camera = PinholeCamera.orbit(IMAGE, np.array([0.0, 0.0, 1.2]), 0.0, distance, 1.3)
        wrist = np.array([0.1, 0.0, 1.2])
        sizes = []
        for trial in range(args.trials):
            side = "LR"[trial % 2]
            hand = random_hand(rng, side, camera, wrist)
            sizes.append(np.linalg.norm(hand.pixels[9] - hand.pixels[0]))
            fitter = HandFitter(side, camera.focal, camera.center)
            truth = local_rotations(hand.angles)
            for noise in args.noise:  # interleaved: the same hand at every noise level
                views = [hand.pixels + rng.normal(scale=noise, size=(21, 2)) for _ in range(2)]
                cold, wall_c, cpu_c = timed(fitter.fit, views[0], np.ones(21))
                warm, wall_w, cpu_w = timed(fitter.fit, views[1], np.ones(21), previous=cold)
                r = results[(distance, noise)]
                for kind, fit in (("cold", cold), ("warm", warm)):
                    r[f"{kind}_finger"].extend(angle_deg(truth, local_rotations(fit.angles)))
                    r[f"{kind}_wrist"].append(float(angle_deg(hand.camera_rotation, fit.rotation)))
                r["cold_ms"].append((wall_c, cpu_c))
                r["warm_ms"].append((wall_w, cpu_w))
        print(f"distance {distance} m: wrist-to-middle-knuckle {np.median(sizes):.0f} px (median)")
    print(f"\n{'dist m':>6} {'noise':>5} | {'finger deg med/p90':>18} {'wrist deg med/p90':>18} | cold start "
          f"{'finger':>11} {'wrist':>11} | {'cold ms wall/cpu':>16} {'warm ms wall/cpu':>16}")
    for (distance, noise), r in results.items():
        def mp(key: str, r: dict = r) -> str:
            v = np.asarray(r[key])
            return f"{np.median(v):5.1f} / {np.percentile(v, 90):5.1f}"

        ms = {k: np.median(np.asarray(r[k]), axis=0) for k in ("cold_ms", "warm_ms")}
        print(f"{distance:6.1f} {noise:5.1f} | {mp('warm_finger'):>18} {mp('warm_wrist'):>18} | "
              f"{mp('cold_finger'):>22} {mp('cold_wrist'):>11} | "
              f"{ms['cold_ms'][0]:7.1f} / {ms['cold_ms'][1]:6.1f} {ms['warm_ms'][0]:7.1f} / {ms['warm_ms'][1]:6.1f}")
    print("(finger/wrist columns on the left: the warm start, i.e. every frame after the first; cold start: "
          "the first frame of a hand)")
    print(f"total {time.perf_counter() - t_start:.0f} s; load average after: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
