"""Offline `convert` against the live (causal) path on BVH mocap seen through a virtual camera.

    .venv/bin/python scripts/bench_convert.py /path/a.bvh /path/b.bvh [--noise 0 3] [--views three-quarter]
    .venv/bin/python scripts/bench_convert.py ../shared/mocap/train/MANIFEST.csv --subjects cmu07 cmu14 cmu61 \
        --seconds 10 --smooth-3d 0 0.02 0.04 0.08      # a sweep: every width on the same 2D input per case

The same clips, cameras and detector-like noise as scripts/bench_lifting.py (its own functions): for each case
the live path (KeypointFilter -> Lifter with its output smoother -> IK, one frame at a time) and the offline
path (`pose_server.convert`: gap filling, two-sided 2D smoothing -> Lifter without its causal smoother ->
two-sided 3D smoothing -> IK) run one after the other on the same 2D input, and are scored with
bench_lifting's metrics: MPJPE (root-aligned, mm), PA-MPJPE, jitter (mean joint acceleration over the
mocap's), rotation error. Wall and CPU time are printed per path.

Clips: any mocap pose_server.mocap reads (files, folders, MANIFEST.csv; the same COCO-17 points, floor and foot
contacts as bench_lifting); `--subjects` keeps some subjects only (e.g. the lifter's validation subjects: never
choose settings on held-out evaluation clips). Several `--smooth-2d` / `--smooth-3d` / `--smooth-root` values run
the offline path once per combination on each case and print a summary: the case-weighted mean of each metric per
combination, beside the live path's.
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_lifting import (  # noqa: E402
    IMAGE,
    VIEWS,
    case_camera,
    detector_noise,
    foot_metrics,
    lifter_pitch,
    metrics,
    run_case,
)

from pose_server.config import PipelineConfig  # noqa: E402
from pose_server.convert import BODY_SIGMA, ConvertOptions, Tracks, build_motions  # noqa: E402
from pose_server.lift.skeleton3d import LIMB_SEGMENTS, REST_HEIGHT, REST_JOINTS, J, segment_lengths  # noqa: E402
from pose_server.mocap import find_clips, load_clip  # noqa: E402

OPTS = {k: p.default for k, p in inspect.signature(ConvertOptions).parameters.items() if k != "outputs"}
TAKE_KEYS = ("packet_skate", "take_skate", "pin_cost", "c_prec", "c_rec")  # bench_lifting.foot_metrics' of the take


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
    slides = np.concatenate(slides)
    return float(slides.mean() * 1000) if len(slides) else float("nan")  # a jump may never plant a foot


def elevation(args: argparse.Namespace) -> float:
    """The camera's downward angle (deg) from its height and distance."""
    return float(np.degrees(np.arctan2(args.camera_height - args.target_height, args.distance)))


def live_case(gt_world: np.ndarray, contacts: np.ndarray | None, fps: float, azimuth: float, sigma: float,
              height: float, args: argparse.Namespace) -> dict:
    """bench_lifting.run_case with the lifter convert uses, plus the foot skate of its joints (and, with the mocap's
    contacts, its take's: bench_lifting.foot_metrics, the add-on's foot pinning on the packets)."""
    r = run_case(gt_world, contacts, fps, azimuth, elevation(args), sigma, height, args.lifter, args, args.seed)
    return r | {"packet_skate": r["skate"], "skate": foot_skate(r["joints"], r["gt"])}


def offline_case(gt_world: np.ndarray, contacts: np.ndarray | None, fps: float, azimuth: float, sigma: float,
                 height: float, args: argparse.Namespace, smooth_2d: float, smooth_3d: float, smooth_root: float
                 ) -> dict:
    """bench_lifting.run_case's camera and noise (same seed: the same 2D input), through convert's path."""
    cam = case_camera(gt_world, azimuth, elevation(args), args)
    px = cam.project(gt_world)
    gt = cam.level_world(gt_world)
    noisy, scores = detector_noise(px, sigma, np.random.default_rng(args.seed))
    skipped = np.arange(len(px)) % args.stride != 0  # --stride: ViTPose did not run on these frames
    noisy, scores = np.where(skipped[:, None, None], np.nan, noisy), np.where(skipped[:, None], 0.0, scores)
    tracks = Tracks(fps=fps, size=IMAGE, frames=len(px), skeleton="coco17", source_name="bench")
    tracks.boxes[1] = np.concatenate([noisy.min(1) - 20, noisy.max(1) + 20], axis=1)
    tracks.keypoints[1], tracks.scores[1] = noisy, scores
    cfg = PipelineConfig(source="bench", udp=[], performer_height=height,
                         camera_pitch=lifter_pitch(args, elevation(args)), lifter=args.lifter,
                         depth_prior=args.depth_prior != "none")
    opts = ConvertOptions(outputs=[], smooth_2d=smooth_2d, smooth_3d=smooth_3d, smooth_root=smooth_root,
                          max_gap=args.max_gap,
                          lock_feet=not args.no_lock_feet, stride=args.stride)
    m = build_motions(tracks, cfg, opts)[0]
    rots = [q if np.isfinite(q).all() else None for q in m.rotations]
    # the take as the add-on imports the session: its planted feet pinned from the packets' contacts
    feet = foot_metrics(m.joints, gt, contacts, m.contacts, fps)
    feet["packet_skate"] = feet["skate"]  # (its own definition of the packets' skate; "skate" is this script's)
    return metrics(m.joints, gt, rots, fps) | {k: feet[k] for k in TAKE_KEYS} | {"skate": foot_skate(m.joints, gt)}


def timed(fn, *a) -> tuple[dict, float, float]:
    w, c = time.perf_counter(), time.process_time()
    r = fn(*a)
    return r, time.perf_counter() - w, time.process_time() - c


def load_cases(args: argparse.Namespace) -> list[tuple[str, np.ndarray, np.ndarray | None, float]]:
    """(name, COCO-17 world joints at about --fps, the mocap's foot contacts or None, fps) of every clip, read by
    pose_server.mocap (kept when of --subjects), each cut to --seconds."""
    out = []
    for path in find_clips([*args.inputs, *args.bvh]):
        clip = load_clip(path)
        if args.subjects and clip.subject not in args.subjects:
            continue
        step = max(1, round(clip.fps / args.fps))
        contacts = None if clip.contacts is None else clip.contacts[::step]
        out.append((clip.name, clip.joints[::step], contacts, clip.fps / step))
    if args.seconds:
        cut = lambda a, fps: None if a is None else a[: max(3, int(args.seconds * fps))]  # noqa: E731
        out = [(name, cut(gt, fps), cut(c, fps), fps) for name, gt, c, fps in out]
    return out


def summary(rows: list[tuple], pairs: list[tuple[float, float, float]], defaults: tuple[float, float, float]) -> str:
    """Case-weighted means per smoothing pair, the live path first (foot skate over the cases with a planted foot;
    the take's columns, after the add-on's foot pinning, over the clips with the mocap's contacts), and in how many
    cases each pair's MPJPE is below the reference's (today's defaults when swept, else the first
    pair): a consistent gain, not one clip's."""
    keys = ("mpjpe", "pa", "jitter", "rot", "skate", *TAKE_KEYS)
    ref = pairs.index(defaults) if defaults in pairs else 0
    name = lambda p: f"{p[0]:g} | {p[1]:g} | {p[2]:g}"  # noqa: E731
    lines = ["| path | smooth_2d s | smooth_3d s | smooth_root s | MPJPE mm | PA-MPJPE mm | jitter × | rot° | "
             "foot skate mm/frame | packet skate mm/frame | take skate mm/frame | pin +mm | contact P % | "
             f"contact R % | cases with lower MPJPE than {name(pairs[ref]).replace(' |', ',')} |", "|---" * 15 + "|"]
    fmt = lambda m: " | ".join(f"{m[k]:.{2 if k == 'jitter' else 1}f}" for k in keys)  # noqa: E731
    mean = lambda xs: float(np.nanmean(xs)) if np.isfinite(xs).any() else np.nan  # noqa: E731  (no contacts: NaN)
    lines.append(f"| live | | | | {fmt({k: mean([r[4][k] for r in rows]) for k in keys})} | |")
    for n, pair in enumerate(pairs):
        m = {k: mean([r[7][n][k] for r in rows]) for k in keys}
        wins = sum(r[7][n]["mpjpe"] < r[7][ref]["mpjpe"] for r in rows)
        lines.append(f"| offline | {name(pair)} | {fmt(m)} | "
                     + ("(reference) |" if n == ref else f"{wins} / {len(rows)} |"))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*", type=Path, help="mocap files, folders or MANIFEST.csv (pose_server.mocap)")
    ap.add_argument("--bvh", nargs="+", default=[], type=Path, help="(older spelling of the inputs)")
    ap.add_argument("--subjects", nargs="*", help="only clips of these subjects (positional inputs)")
    ap.add_argument("--seconds", type=float, default=0.0, help="use at most this many seconds of each clip")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--noise", nargs="+", type=float, default=[0, 3], help="pixel noise levels (sigma)")
    ap.add_argument("--views", nargs="+", default=["three-quarter", "front"], choices=list(VIEWS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smooth-2d", nargs="+", type=float, default=[OPTS["smooth_2d"]], help="offline; several: a sweep")
    ap.add_argument("--smooth-3d", nargs="+", type=float, help="offline, the body (default: convert's for --lifter); "
                    "several: a sweep")
    ap.add_argument("--smooth-root", nargs="+", type=float, default=[OPTS["smooth_root"]],
                    help="offline, the pelvis path; several: a sweep")
    ap.add_argument("--max-gap", type=float, default=OPTS["max_gap"])
    ap.add_argument("--lifter", choices=("learned", "geometric"), default="learned", help="both paths' lifter")
    ap.add_argument("--depth-prior", default="default")
    ap.add_argument("--no-lock-feet", action="store_true", help="offline path without foot locking")
    ap.add_argument("--stride", type=int, default=1, help="offline path: 2D only on every n-th frame")
    ap.add_argument("--camera-height", type=float, default=1.0,
                    help="metres; the camera looks at 1 m from 5 m away (1.0: level; 2.82: 20 deg down)")
    ap.add_argument("--pitch", choices=("told", "auto"), default="told",
                    help="both paths told the camera's pitch, or estimating it (convert over the whole video)")
    args = ap.parse_args()
    # bench_lifting's settings for the live path: its defaults (the server's).
    live = argparse.Namespace(target_height=1.0, distance=5.0, camera_height=args.camera_height, seed=args.seed,
                              rot_every=1, depth_prior=args.depth_prior, lifter=args.lifter, pitch=args.pitch)
    for k in ("target_height", "distance", "camera_height"):
        setattr(args, k, getattr(live, k))
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"lifter: {args.lifter}; load before: {load}")
    cases = load_cases(args)
    short = [name for name, gt, _, fps in cases if len(gt) < OPTS["min_track"] * fps]
    if short:  # convert drops tracks this short (detector false positives): nothing to compare
        print(f"skipped {len(short)} clips shorter than convert's min_track ({OPTS['min_track']:g} s): "
              f"{' '.join(short[:5])}{' ...' if len(short) > 5 else ''}")
        cases = [c for c in cases if c[0] not in short]
    if not cases:
        raise SystemExit("no clips: give mocap files, folders or a MANIFEST.csv (and --subjects that exist among them)")
    defaults = (OPTS["smooth_2d"], BODY_SIGMA[args.lifter], OPTS["smooth_root"])  # convert's, for this lifter
    pairs = [(s2, s3, sr) for s2 in args.smooth_2d for s3 in args.smooth_3d or [defaults[1]] for sr in args.smooth_root]
    rows = []
    for name, gt, contacts, fps in tqdm(cases, desc="clips", unit="clip"):
        scale = np.mean(segment_lengths(gt[0], LIMB_SEGMENTS) / segment_lengths(REST_JOINTS, LIMB_SEGMENTS))
        for view in args.views:
            for sigma in args.noise:
                case = (gt, contacts, fps, VIEWS[view], sigma, REST_HEIGHT * scale)
                r_live, w_live, c_live = timed(live_case, *case, live)  # interleaved: live, then offline, per case
                offline = [timed(offline_case, *case, args, *pair) for pair in pairs]
                rows.append((name, view, sigma, len(gt), r_live, w_live, c_live, [o[0] for o in offline],
                             sum(o[1] for o in offline), sum(o[2] for o in offline)))
    cols = ("clip view px frames | live MPJPE PA jitter× rot° skate_mm wall_s cpu_s | offline MPJPE PA jitter× "
            "rot° skate_mm wall_s cpu_s").split()
    if len(pairs) == 1:
        print("| " + " | ".join(c for c in cols if c != "|") + " |")
        print("|" + "---|" * len([c for c in cols if c != "|"]))
        for clip, view, sigma, n, rl, wl, cl, (ro,), wo, co in rows:
            print(f"| {clip} | {view} | {sigma:g} | {n} | {rl['mpjpe']:.1f} | {rl['pa']:.1f} | {rl['jitter']:.2f} | "
                  f"{rl['rot']:.1f} | {rl['skate']:.1f} | {wl:.1f} | {cl:.1f} | {ro['mpjpe']:.1f} | {ro['pa']:.1f} | "
                  f"{ro['jitter']:.2f} | {ro['rot']:.1f} | {ro['skate']:.1f} | {wo:.1f} | {co:.1f} |")
    for sigma in args.noise:
        print(f"\n{len(cases)} clips x {len(args.views)} views at {sigma:g} px, {args.lifter} lifter:")
        print(summary([r for r in rows if r[2] == sigma], pairs, defaults))
    print(f"\nwall {sum(r[5] + r[8] for r in rows):.0f} s, CPU {sum(r[6] + r[9] for r in rows):.0f} s")
    print(f"load after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")


if __name__ == "__main__":
    main()
