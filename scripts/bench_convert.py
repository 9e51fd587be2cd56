"""Offline `convert` against the live (causal) path on BVH mocap seen through a virtual camera.

    .venv/bin/python scripts/bench_convert.py --bvh /path/a.bvh /path/b.bvh [--noise 0 3] [--views three-quarter]

The same clips, cameras and detector-like noise as scripts/bench_lifting.py (its own functions): for each case
the live path (KeypointFilter -> Lifter with its output smoother -> IK, one frame at a time) and the offline
path (`pose_server.convert`: gap filling, two-sided 2D smoothing -> Lifter without its causal smoother ->
two-sided 3D smoothing -> IK) run one after the other on the same 2D input, and are scored with
bench_lifting's metrics: MPJPE (root-aligned, mm), PA-MPJPE, jitter (mean joint acceleration over the
mocap's), rotation error. Wall and CPU time are printed per path.
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_lifting import IMAGE, VIEWS, case_camera, detector_noise, metrics, run_case  # noqa: E402

from pose_server.bvh import coco17_from_cmu, read_bvh  # noqa: E402
from pose_server.config import PipelineConfig  # noqa: E402
from pose_server.convert import ConvertOptions, Tracks, build_motions  # noqa: E402
from pose_server.lift.skeleton3d import LIMB_SEGMENTS, REST_HEIGHT, REST_JOINTS, J, segment_lengths  # noqa: E402

OPTS = {k: p.default for k, p in inspect.signature(ConvertOptions).parameters.items() if k != "outputs"}


def foot_skate(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean horizontal slide (mm per frame) of the predicted ankles over the frames the mocap's foot is planted
    (within 3 cm of its lowest and moving under 1 cm a frame, both frames of the pair)."""
    slides = []
    for k in (J["l_ankle"], J["r_ankle"]):
        z, xy = gt[:, k, 2], gt[:, k, :2]
        step = np.linalg.norm(np.diff(xy, axis=0), axis=-1)
        planted = (z[1:] < z.min() + 0.03) & (z[:-1] < z.min() + 0.03) & (step < 0.01)
        moved = np.linalg.norm(np.diff(pred[:, k, :2], axis=0), axis=-1)
        slides.append(moved[planted & np.isfinite(moved)])
    return float(np.concatenate(slides).mean() * 1000)


def elevation(args: argparse.Namespace) -> float:
    """The camera's downward angle (deg) from its height and distance."""
    return float(np.degrees(np.arctan2(args.camera_height - args.target_height, args.distance)))


def live_case(gt_world: np.ndarray, fps: float, azimuth: float, sigma: float, height: float,
              args: argparse.Namespace) -> dict:
    """bench_lifting.run_case with the lifter convert uses, plus the foot skate of its joints."""
    r = run_case(gt_world, None, fps, azimuth, elevation(args), sigma, height, args.lifter, args, args.seed)
    return r | {"skate": foot_skate(r["joints"], r["gt"])}


def offline_case(gt_world: np.ndarray, fps: float, azimuth: float, sigma: float, height: float,
                 args: argparse.Namespace) -> dict:
    """bench_lifting.run_case's camera and noise (same seed: the same 2D input), through convert's path."""
    cam = case_camera(gt_world, azimuth, elevation(args), args)
    pitch = elevation(args)
    px = cam.project(gt_world)
    gt = cam.level_world(gt_world)
    noisy, scores = detector_noise(px, sigma, np.random.default_rng(args.seed))
    skipped = np.arange(len(px)) % args.stride != 0  # --stride: ViTPose did not run on these frames
    noisy, scores = np.where(skipped[:, None, None], np.nan, noisy), np.where(skipped[:, None], 0.0, scores)
    tracks = Tracks(fps=fps, size=IMAGE, frames=len(px), skeleton="coco17", source_name="bench")
    tracks.boxes[1] = np.concatenate([noisy.min(1) - 20, noisy.max(1) + 20], axis=1)
    tracks.keypoints[1], tracks.scores[1] = noisy, scores
    cfg = PipelineConfig(source="bench", udp=[], performer_height=height, camera_pitch=pitch, lifter=args.lifter,
                         depth_prior=args.depth_prior != "none")
    opts = ConvertOptions(outputs=[], smooth_2d=args.smooth_2d, smooth_3d=args.smooth_3d, max_gap=args.max_gap,
                          lock_feet=not args.no_lock_feet, stride=args.stride)
    m = build_motions(tracks, cfg, opts)[0]
    rots = [q if np.isfinite(q).all() else None for q in m.rotations]
    return metrics(m.joints, gt, rots, fps) | {"skate": foot_skate(m.joints, gt)}


def timed(fn, *a) -> tuple[dict, float, float]:
    w, c = time.perf_counter(), time.process_time()
    r = fn(*a)
    return r, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bvh", nargs="+", required=True, type=Path, help="CMU-style BVH files in metres")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--noise", nargs="+", type=float, default=[0, 3], help="pixel noise levels (sigma)")
    ap.add_argument("--views", nargs="+", default=["three-quarter", "front"], choices=list(VIEWS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smooth-2d", type=float, default=OPTS["smooth_2d"])
    ap.add_argument("--smooth-3d", type=float, default=OPTS["smooth_3d"])
    ap.add_argument("--max-gap", type=float, default=OPTS["max_gap"])
    ap.add_argument("--lifter", choices=("learned", "geometric"), default="learned", help="both paths' lifter")
    ap.add_argument("--depth-prior", default="default")
    ap.add_argument("--no-lock-feet", action="store_true", help="offline path without foot locking")
    ap.add_argument("--stride", type=int, default=1, help="offline path: 2D only on every n-th frame")
    args = ap.parse_args()
    # bench_lifting's settings for the live path: its defaults (the server's).
    live = argparse.Namespace(target_height=1.0, distance=5.0, camera_height=1.0, seed=args.seed, rot_every=1,
                              depth_prior=args.depth_prior, lifter=args.lifter)
    for k in ("target_height", "distance", "camera_height"):
        setattr(args, k, getattr(live, k))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"lifter: {args.lifter}; load before: {load}")
    rows = []
    for path in args.bvh:
        bvh = read_bvh(path)
        step = max(1, round(1.0 / (bvh.frame_time * args.fps)))
        gt = coco17_from_cmu(bvh, slice(None, None, step))
        scale = np.mean(segment_lengths(gt[0], LIMB_SEGMENTS) / segment_lengths(REST_JOINTS, LIMB_SEGMENTS))
        fps = 1.0 / (bvh.frame_time * step)
        for view in args.views:
            for sigma in args.noise:
                case = (gt, fps, VIEWS[view], sigma, REST_HEIGHT * scale)
                r_live, w_live, c_live = timed(live_case, *case, live)  # interleaved: live, then offline, per case
                r_off, w_off, c_off = timed(offline_case, *case, args)
                rows.append((path.stem, view, sigma, len(gt), r_live, w_live, c_live, r_off, w_off, c_off))
    cols = ("clip view px frames | live MPJPE PA jitter× rot° skate_mm wall_s cpu_s | offline MPJPE PA jitter× "
            "rot° skate_mm wall_s cpu_s").split()
    print("| " + " | ".join(c for c in cols if c != "|") + " |")
    print("|" + "---|" * len([c for c in cols if c != "|"]))
    for clip, view, sigma, n, rl, wl, cl, ro, wo, co in rows:
        print(f"| {clip} | {view} | {sigma:g} | {n} | {rl['mpjpe']:.1f} | {rl['pa']:.1f} | {rl['jitter']:.2f} | "
              f"{rl['rot']:.1f} | {rl['skate']:.1f} | {wl:.1f} | {cl:.1f} | {ro['mpjpe']:.1f} | {ro['pa']:.1f} | "
              f"{ro['jitter']:.2f} | {ro['rot']:.1f} | {ro['skate']:.1f} | {wo:.1f} | {co:.1f} |")
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
