"""Benchmark the server's filter -> lifter -> IK chain on BVH mocap seen through a virtual camera.

    .venv/bin/python scripts/bench_lifting.py --bvh /path/a.bvh /path/b.bvh [--fps 30] [--noise 0 2 3 5]

Each clip is resampled to --fps, its COCO-17 points (derived from the mocap skeleton) are projected by
a pinhole camera at several azimuths (front / three-quarter / side), detector-like noise is added
(Gaussian pixels, dropped keypoints with low scores, brief left/right swaps), and the frames are fed one
by one, causally, through KeypointFilter -> Lifter -> solve_rotations exactly as the server does.
"""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pose_server.bvh import coco17_from_cmu, read_bvh
from pose_server.filters import KeypointFilter
from pose_server.ik import forward_rotations, solve_rotations
from pose_server.lift import Lifter
from pose_server.lift.camera import PinholeCamera
from pose_server.lift.skeleton3d import LIMB_SEGMENTS, REST_HEIGHT, REST_JOINTS, J, segment_lengths
from pose_server.skeleton import SKELETONS

LIFT_DEFAULTS = {k: p.default for k, p in inspect.signature(Lifter).parameters.items() if "cutoff" in k or "beta" in k}
VIEWS = {"front": 0.0, "three-quarter": 45.0, "side": 90.0}
IMAGE = (1280, 720)
FLIP = SKELETONS["coco17"].flip_indices()
DIR_SEGMENTS = LIMB_SEGMENTS + ((J["l_hip"], J["l_shoulder"]), (J["r_hip"], J["r_shoulder"]))


def detector_noise(px: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian pixel noise, 2 % dropped keypoints (1-4 frames, wrong spot, score 0.1), 0.5 % brief l/r swaps."""
    n = px.shape[0]
    out = px + rng.normal(0.0, sigma, px.shape) if sigma > 0 else px.copy()
    scores = rng.uniform(0.75, 0.95, (n, 17))
    if sigma == 0:
        return out, scores
    f = 0
    while f < n:
        for k in range(17):
            if rng.random() < 0.02 / 2.5:
                run = rng.integers(1, 5)
                out[f : f + run, k] += rng.normal(0, 40, 2)
                scores[f : f + run, k] = 0.1
        if rng.random() < 0.005:
            run = rng.integers(1, 3)
            pair = rng.choice([J["l_wrist"], J["l_ankle"], J["l_knee"], J["l_elbow"]])
            other = FLIP[pair]
            out[f : f + run, [pair, other]] = out[f : f + run, [other, pair]]
            scores[f : f + run, [pair, other]] = 0.5
        f += 1
    return out, scores


def shift_hips(joints: np.ndarray, out: float, down: float) -> np.ndarray:
    """Hip points moved ``out`` (m, each side, along the hip line) and ``down`` (m, along the trunk): where a
    detector's COCO hips may sit against the mocap's hip joint centres (lower, wider). Points and truth move alike."""
    g = joints.copy()
    lh, rh, ls, rs = J["l_hip"], J["r_hip"], J["l_shoulder"], J["r_shoulder"]
    up = g[:, [ls, rs]].mean(1) - g[:, [lh, rh]].mean(1)
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    left = g[:, lh] - g[:, rh]
    left -= (left * up).sum(-1, keepdims=True) * up
    left /= np.linalg.norm(left, axis=-1, keepdims=True)
    g[:, lh] += out * left - down * up
    g[:, rh] += -out * left - down * up
    return g


def procrustes(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """pred aligned to gt by the best similarity transform (per frame)."""
    mp, mg = pred.mean(0), gt.mean(0)
    p, g = pred - mp, gt - mg
    u, s, vt = np.linalg.svd(p.T @ g)
    d = np.sign(np.linalg.det(u @ vt))
    s[-1] *= d
    u[:, -1] *= d
    r = u @ vt
    scale = s.sum() / (p**2).sum()
    return scale * p @ r + mg


def geodesic_deg(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Angle (deg) between rotation matrices (..., 3, 3)."""
    tr = np.einsum("...ij,...ij->...", ra, rb)
    return np.degrees(np.arccos(np.clip((tr - 1) / 2, -1, 1)))


def longest_run(mask: np.ndarray) -> int:
    best = cur = 0
    for m in mask:
        cur = cur + 1 if m else 0
        best = max(best, cur)
    return best


def run_case(
    gt_world: np.ndarray, fps: float, azimuth: float, sigma: float, height: float, args: argparse.Namespace
) -> dict:
    target = np.array([*gt_world[:, :, :2].mean((0, 1)), args.target_height])
    cam = PinholeCamera.orbit(IMAGE, target, azimuth, distance=args.distance, height=args.camera_height)
    pitch = np.degrees(np.arctan2(args.camera_height - args.target_height, args.distance))
    px = cam.project(gt_world)
    gt = cam.level_world(gt_world)
    noisy, scores = detector_noise(px, sigma, np.random.default_rng(args.seed))
    filt = KeypointFilter(17, 2, min_cutoff=args.min_cutoff, beta=args.beta)
    smooth = {k: getattr(args, f"lift_{k}") for k in LIFT_DEFAULTS}
    prior = None if args.depth_prior == "none" else args.depth_prior
    lifter = Lifter(IMAGE, height_m=height, camera_pitch_deg=pitch, depth_prior=prior, **smooth)
    preds, t_lift, t_ik, rots = [], [], [], []
    for i in range(len(px)):
        t = i / fps
        t0 = time.perf_counter()
        k2, s2, _ = filt(noisy[i], scores[i], t)
        j3 = lifter(k2, s2, t)
        t1 = time.perf_counter()
        q = solve_rotations(j3) if j3 is not None else None
        t2 = time.perf_counter()
        t_lift.append(t1 - t0)
        t_ik.append(t2 - t1)
        preds.append(np.full((17, 3), np.nan) if j3 is None else j3)
        rots.append(q)
    pred = np.array(preds, dtype=np.float64)
    out = metrics(pred, gt, rots, fps)
    return out | {"ms": np.median(t_lift) * 1000, "ik_ms": np.median(t_ik) * 1000, "joints": pred, "gt": gt}


def metrics(pred: np.ndarray, gt: np.ndarray, rots: list, fps: float) -> dict:
    """Accuracy of lifted joints ``pred`` (F, 17, 3; NaN rows = no output) against the mocap's ``gt`` (same frame:
    metres, Z up, Y along the camera), with the IK rotations ``rots`` (per frame, or None) of the prediction."""
    valid = np.isfinite(pred).all(axis=(1, 2))
    pred, gtv = pred[valid], gt[valid]
    root = lambda a: a - 0.5 * (a[:, [J["l_hip"]]] + a[:, [J["r_hip"]]])  # noqa: E731
    pr, gr = root(pred), root(gtv)
    mpjpe = np.linalg.norm(pr - gr, axis=-1).mean() * 1000
    pa = np.mean([np.linalg.norm(procrustes(p, g) - g, axis=-1).mean() for p, g in zip(pr, gr, strict=True)]) * 1000
    lengths = segment_lengths(pred)
    cv = (lengths.std(0) / lengths.mean(0)).mean() * 100
    a = np.array([s[0] for s in DIR_SEGMENTS])
    b = np.array([s[1] for s in DIR_SEGMENTS])
    dp, dg = pred[:, b] - pred[:, a], gtv[:, b] - gtv[:, a]
    cosang = (dp * dg).sum(-1) / (np.linalg.norm(dp, axis=-1) * np.linalg.norm(dg, axis=-1))
    ang = np.degrees(np.arccos(np.clip(cosang, -1, 1))).mean()
    # Depth-sign flips: the child's depth relative to its parent has the wrong sign while the mocap's
    # bone points clearly towards or away from the camera: more than 30 % of its length in depth (> 17 deg out of
    # the image plane; 6-12 cm for these bones), where a wrong sign mirrors the bone by > 35 deg. Closer to the
    # image plane the sign carries little (and at zero, no) information, so it is not counted.
    flips, runs, counted, wrong_total = 0, 0, 0, 0
    for s in LIMB_SEGMENTS:
        dz_p = pred[:, s[1], 1] - pred[:, s[0], 1]
        dz_g = gtv[:, s[1], 1] - gtv[:, s[0], 1]
        length = np.linalg.norm(gtv[:, s[1]] - gtv[:, s[0]], axis=-1)
        clear = np.abs(dz_g) > 0.3 * length
        wrong = (np.sign(dz_p) != np.sign(dz_g)) & clear
        flips += int(np.sum(np.diff(np.concatenate([[0], wrong.astype(int)])) == 1))
        runs = max(runs, longest_run(wrong))
        counted, wrong_total = counted + int(clear.sum()), wrong_total + int(wrong.sum())
    acc = lambda a: np.linalg.norm(np.diff(a, 2, axis=0), axis=-1).mean() * fps * fps  # noqa: E731
    jitter = acc(pr) / acc(gr)
    rot_err = np.nan
    good = [i for i, q in enumerate(np.array(rots, dtype=object)[valid]) if q is not None]
    if good:
        q_pred = np.array([rots[i] for i in np.flatnonzero(valid)[good]])
        q_gt = np.array([solve_rotations(g.astype(np.float32)) for g in gtv[good]])
        rot_err = geodesic_deg(forward_rotations(q_pred), forward_rotations(q_gt)).mean()
    return {
        "mpjpe": mpjpe, "pa": pa, "cv": cv, "ang": ang, "flips": flips, "run": runs, "jitter": jitter,
        "wrong": 100.0 * wrong_total / max(counted, 1), "rot": rot_err,
    }  # fmt: skip


def ikpy_leg_chain(lengths: tuple[float, float]) -> object:
    """The left leg as an ikpy chain (hip: 3 revolute axes, knee: 1, bounded to bend one way), rest pose straight
    down from the origin."""
    from ikpy.chain import Chain
    from ikpy.link import OriginLink, URDFLink

    zero = np.zeros(3)
    links = [
        OriginLink(),
        URDFLink("hip_x", zero, zero, rotation=np.array([1.0, 0, 0])),
        URDFLink("hip_y", zero, zero, rotation=np.array([0, 1.0, 0])),
        URDFLink("hip_z", zero, zero, rotation=np.array([0, 0, 1.0])),
        URDFLink("knee", np.array([0, 0, -lengths[0]]), zero, rotation=np.array([1.0, 0, 0]), bounds=(0.0, 2.6)),
        URDFLink("ankle", np.array([0, 0, -lengths[1]]), zero, rotation=np.array([1.0, 0, 0]), bounds=(0.0, 0.0)),
    ]
    return Chain(links, active_links_mask=[False, True, True, True, True, False])


def compare_ikpy(gt: np.ndarray, frames: int = 40) -> str:
    """Median time and position error of ikpy vs the analytic solver on one leg (the ankle as target)."""
    from pose_server.ik import fk_joints

    hip, knee, ankle = J["l_hip"], J["l_knee"], J["l_ankle"]
    lengths = (float(np.linalg.norm(REST_JOINTS[knee] - REST_JOINTS[hip])),
               float(np.linalg.norm(REST_JOINTS[ankle] - REST_JOINTS[knee])))  # fmt: skip
    chain = ikpy_leg_chain(lengths)
    t_ikpy, t_ours, e_ikpy, e_ours = [], [], [], []
    for frame in gt[:: max(1, len(gt) // frames)][:frames]:
        scale = np.linalg.norm(frame[knee] - frame[hip]) + np.linalg.norm(frame[ankle] - frame[knee])
        target = (frame[ankle] - frame[hip]) * (sum(lengths) / scale)  # the rest skeleton's leg, same direction
        t0 = time.perf_counter()
        angles = chain.inverse_kinematics(target)
        t1 = time.perf_counter()
        e_ikpy.append(np.linalg.norm(chain.forward_kinematics(angles)[:3, 3] - target))
        t2 = time.perf_counter()
        q = solve_rotations(frame.astype(np.float32))
        t3 = time.perf_counter()
        joints = fk_joints(q)
        e_ours.append(np.linalg.norm((joints[ankle] - joints[hip]) - target))
        t_ikpy.append(t1 - t0)
        t_ours.append(t3 - t2)
    return (
        f"ikpy (one leg, 4 DOF, scipy optimiser): {np.median(t_ikpy) * 1000:.2f} ms/limb, ankle error "
        f"{np.median(e_ikpy) * 1000:.1f} mm median; analytic (all 12 bones): {np.median(t_ours) * 1000:.2f} ms/frame, "
        f"ankle error {np.median(e_ours) * 1000:.1f} mm median"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bvh", nargs="+", required=True, type=Path, help="CMU-style BVH files in metres")
    ap.add_argument("--fps", type=float, default=30.0, help="resample the mocap to this frame rate")
    ap.add_argument("--noise", nargs="+", type=float, default=[0, 2, 3, 5], help="pixel noise levels (sigma)")
    ap.add_argument("--views", nargs="+", default=list(VIEWS), choices=list(VIEWS))
    ap.add_argument("--default-height", action="store_true", help="do not tell the lifter the performer's height")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ikpy", action="store_true", help="also time ikpy against the analytic IK on one leg")
    ap.add_argument("--min-cutoff", type=float, default=KeypointFilter().min_cutoff, help="2D One Euro min cutoff")
    ap.add_argument("--beta", type=float, default=KeypointFilter().beta, help="2D One Euro beta (per px/s)")
    ap.add_argument("--lift-min-cutoff", type=float, default=LIFT_DEFAULTS["min_cutoff"], help="3D smoothing")
    ap.add_argument("--lift-beta", type=float, default=LIFT_DEFAULTS["beta"], help="3D smoothing beta (per m/s)")
    ap.add_argument("--lift-depth-min-cutoff", type=float, default=LIFT_DEFAULTS["depth_min_cutoff"])
    ap.add_argument("--lift-depth-beta", type=float, default=LIFT_DEFAULTS["depth_beta"])
    ap.add_argument("--distance", type=float, default=5.0, help="camera distance to the clip's centre (m)")
    ap.add_argument("--camera-height", type=float, default=1.0, help="camera height above the floor (m)")
    ap.add_argument("--target-height", type=float, default=1.0, help="height the camera looks at (m); the pitch "
                    "this gives is passed to the lifter as the user's camera setting")
    ap.add_argument("--shift-hips", nargs=2, type=float, default=(0.0, 0.0), metavar=("OUT", "DOWN"),
                    help="move the hip keypoints OUT (each side) and DOWN, in metres, as a detector's COCO hips "
                         "may sit against the mocap's joint centres (sensitivity to the keypoint definition)")
    ap.add_argument("--depth-prior", default="default", help="learned depth prior: 'default' (the shipped "
                    "resources/models/depth_prior.npz), a path, or 'none' for the geometric lifter alone")
    args = ap.parse_args()
    cases = [(p, v, s) for p in args.bvh for v in args.views for s in args.noise]
    rows = []
    clips = {}
    for path in args.bvh:
        if not path.is_file():
            raise SystemExit(f"{path}: no such BVH file")
        bvh = read_bvh(path)
        step = max(1, round(1.0 / (bvh.frame_time * args.fps)))
        gt = coco17_from_cmu(bvh, slice(None, None, step))
        scale = np.mean(segment_lengths(gt[0], LIMB_SEGMENTS) / segment_lengths(REST_JOINTS, LIMB_SEGMENTS))
        gt = shift_hips(gt, *args.shift_hips) if any(args.shift_hips) else gt
        height = REST_HEIGHT if args.default_height else REST_HEIGHT * scale
        clips[path] = (gt, 1.0 / (bvh.frame_time * step), height)
    for path, view, sigma in tqdm(cases, desc="bench", unit="case"):
        gt, fps, height = clips[path]
        r = run_case(gt, fps, VIEWS[view], sigma, height, args)
        rows.append((path.stem, view, sigma, r))
    cols = "clip view px MPJPE PA-MPJPE boneCV% dir° flips maxrun wrong% jitter× lift_ms rot° ik_ms".split()
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for clip, view, sigma, r in rows:
        print(
            f"| {clip} | {view} | {sigma:g} | {r['mpjpe']:.1f} | {r['pa']:.1f} | {r['cv']:.2f} | {r['ang']:.1f} | "
            f"{r['flips']} | {r['run']} | {r['wrong']:.1f} | {r['jitter']:.2f} | {r['ms']:.3f} | {r['rot']:.1f} | "
            f"{r['ik_ms']:.3f} |"
        )
    for path, (_, _, height) in clips.items():
        print(f"{path.stem}: performer height given to the lifter {height:.3f} m")
    if args.ikpy:
        print(compare_ikpy(next(iter(clips.values()))[0]))


if __name__ == "__main__":
    main()
