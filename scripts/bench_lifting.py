"""Benchmark the server's lifting chain (KeypointFilter -> lifter -> IK, as pose_server/track_signal.py runs it) on
motion capture of every format pose_server/mocap reads, seen through virtual cameras.

    .venv/bin/python scripts/bench_lifting.py ../shared/mocap/cmu_131_0*.bvh --lifter learned geometric
    .venv/bin/python scripts/bench_lifting.py ../shared/mocap/eval/MANIFEST.csv --max-clips 120 --seconds 10
    .venv/bin/python scripts/bench_lifting.py ../shared/mocap/train/MANIFEST.csv --subjects cmu07 cmu14 cmu61

Inputs: mocap files (.bvh, .amc, plain or .xz), folders, MANIFEST.csv files. Each clip is resampled to --fps, its
COCO-17 points are projected by a pinhole camera at --azimuths (degrees from the performer's front, taken from the
first frame) x --elevations (degrees above the horizon, looking at the pelvis height from --distance), detector-like
noise is added (Gaussian pixels; at > 0 px also dropped keypoints with low scores and brief left/right swaps), and
the frames go one by one, causally, through the server's per-track signal step. --views-per-clip picks that many
(azimuth, elevation) pairs per clip (all by default), drawn at random (seeded) from the grid. Metrics per case, then
per lifter x noise: per motion category, per azimuth, overall. Lifters run interleaved, case by case.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pose_server.config import PipelineConfig
from pose_server.ik import forward_rotations, solve_rotations
from pose_server.lift import LearnedLifter, Lifter
from pose_server.lift.camera import PinholeCamera
from pose_server.lift.proportions import REST_LENGTHS, measure_lengths, vertical_chain
from pose_server.lift.skeleton3d import LIMB_SEGMENTS, REST_HEIGHT, REST_JOINTS, J, segment_lengths
from pose_server.mocap import MocapClip, category_of, clip_subject, find_clips, load_clip
from pose_server.mocap.clips import manifest_row
from pose_server.skeleton import SKELETONS
from pose_server.track_signal import TrackSignal

VIEWS = {"front": 0.0, "three-quarter": 45.0, "side": 90.0}
LIFTERS = {"learned": LearnedLifter, "geometric": Lifter,
           # the learned lifter without / with more of its limb fit (bone_fit 0.5 by default)
           "learned-nofit": partial(LearnedLifter, bone_fit=0.0),
           "learned-fit75": partial(LearnedLifter, bone_fit=0.75),
           "learned-noturn": partial(LearnedLifter, turn_fit=0.0),  # without the whole-body turn fit
           "learned-turn50": partial(LearnedLifter, turn_fit=0.5),
           # the foot lock moving the root in depth at any speed (before: froze walks at the camera)
           "learned-depthlock": partial(LearnedLifter, depth_gate=None),
           # the network without its mirror image (the default averages both: test-time flip)
           "learned-single": partial(LearnedLifter, mirror=False),
           # the filters before 2026-12-06: the pose filter at 3 Hz / beta 1 / 1 Hz, none opened on clean input
           "learned-fixedfilter": partial(LearnedLifter, pose_filter=(3.0, 1.0, 1.0), pose_noise_ref=None),
           "learned-nofilter": partial(LearnedLifter, smooth=False),
           # the root depth not capped by what the bones' image lengths allow (before 2026-12-06 evening), or at
           # the tighter margin that was tried first (DEPTH_CAP)
           "learned-nodepthcap": partial(LearnedLifter, depth_cap=None),
           "learned-depthcap11": partial(LearnedLifter, depth_cap=1.1),
           "learned-numpy": partial(LearnedLifter, engine="numpy")}  # the network's step in numpy, not ONNX Runtime
IMAGE = (1280, 720)
FLIP = SKELETONS["coco17"].flip_indices()
DIR_SEGMENTS = LIMB_SEGMENTS + ((J["l_hip"], J["l_shoulder"]), (J["r_hip"], J["r_shoulder"]))
ANKLES = [J["l_ankle"], J["r_ankle"]]
LEGS = [(J["l_hip"], J["l_knee"], J["l_ankle"]), (J["r_hip"], J["r_knee"], J["r_ankle"])]


def _addon_foot_lock() -> type:
    """The add-on's ``FootLock`` (plain Python), loaded from its file: importing the add-on package needs bpy."""
    path = Path(__file__).resolve().parents[1] / "blender_addon" / "core" / "foot_lock.py"
    spec = importlib.util.spec_from_file_location("addon_foot_lock", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FootLock


FootLock = _addon_foot_lock()


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


def root_relative(joints: np.ndarray) -> np.ndarray:
    """(F, 17, 3) joints relative to each frame's pelvis (the hips' midpoint)."""
    return joints - 0.5 * (joints[:, [J["l_hip"]]] + joints[:, [J["r_hip"]]])


def procrustes(pred: np.ndarray, gt: np.ndarray, scale: bool = True) -> np.ndarray:
    """pred aligned to gt by the best similarity transform (per frame; ``scale`` False: the best rigid motion)."""
    mp, mg = pred.mean(0), gt.mean(0)
    p, g = pred - mp, gt - mg
    u, s, vt = np.linalg.svd(p.T @ g)
    d = np.sign(np.linalg.det(u @ vt))
    s[-1] *= d
    u[:, -1] *= d
    r = u @ vt
    return (s.sum() / (p**2).sum() if scale else 1.0) * p @ r + mg


def decompose(pred: np.ndarray, gt: np.ndarray) -> dict:
    """Where root-relative error comes from (frames with output): MPJPE after the best shift alone (the joints'
    centroids matched: a pelvis placed elsewhere in the body), the best scale alone (about the pelvis), the best
    rigid motion (shift and rotation) and the best similarity (PA); each frame's best scale (median; above 1: the
    lifted body is too small) and the angle between the lifted and the mocap's spine (pelvis to mid-shoulder)."""
    valid = np.isfinite(pred).all(axis=(1, 2))
    pr, gr = root_relative(pred[valid]), root_relative(gt[valid])
    err = lambda a: float(np.linalg.norm(a - gr, axis=-1).mean() * 1000)  # noqa: E731
    scale = (pr * gr).sum((1, 2)) / (pr * pr).sum((1, 2))
    shift = gr.mean(1, keepdims=True) - pr.mean(1, keepdims=True)
    rotated = np.array([procrustes(p, g, scale=False) for p, g in zip(pr, gr, strict=True)])
    spine = lambda a: 0.5 * (a[:, J["l_shoulder"]] + a[:, J["r_shoulder"]])  # noqa: E731
    sp, sg = spine(pr), spine(gr)
    cos = (sp * sg).sum(-1) / (np.linalg.norm(sp, axis=-1) * np.linalg.norm(sg, axis=-1))
    pa = np.mean([np.linalg.norm(procrustes(p, g) - g, axis=-1).mean() for p, g in zip(pr, gr, strict=True)])
    return {"mpjpe": err(pr), "shifted": err(pr + shift), "scaled": err(scale[:, None, None] * pr),
            "rotated": err(rotated),
            "pa": float(pa * 1000), "scale": float(np.median(scale)),
            "spine_deg": float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())}


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


def metrics(pred: np.ndarray, gt: np.ndarray, rots: list, fps: float) -> dict:
    """Accuracy of lifted joints ``pred`` (F, 17, 3; NaN rows = no output) against the mocap's ``gt`` (same frame:
    metres, Z up, Y along the camera), with the IK rotations ``rots`` (per frame, or None) of the prediction."""
    valid = np.isfinite(pred).all(axis=(1, 2))
    pred, gtv = pred[valid], gt[valid]
    pr, gr = root_relative(pred), root_relative(gtv)
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
    acc_pred, acc_gt = acc(pr), acc(gr)
    jitter = acc_pred / acc_gt
    rot_err = np.nan
    good = [i for i, q in enumerate(np.array(rots, dtype=object)[valid]) if q is not None]
    if good:
        q_pred = np.array([rots[i] for i in np.flatnonzero(valid)[good]])
        q_gt = np.array([solve_rotations(g.astype(np.float32)) for g in gtv[good]])
        rot_err = geodesic_deg(forward_rotations(q_pred), forward_rotations(q_gt)).mean()
    return {
        "mpjpe": mpjpe, "pa": pa, "cv": cv, "ang": ang, "flips": flips, "run": runs, "jitter": jitter,
        "wrong": 100.0 * wrong_total / max(counted, 1), "rot": rot_err, "acc_pred": acc_pred, "acc_gt": acc_gt,
        "jitter_pooled": jitter,
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


def take_ankles(pred: np.ndarray, contacts_pred: np.ndarray, fps: float, pin: tuple[float, float] | None = None,
                settle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The ankles as a recorded take gets them, and which are pinned: the add-on's ``FootLock`` (its defaults, or
    ``pin`` = its on / off contact thresholds; ``settle``: its Settle setting) pins
    a planted ankle where it was planted and glides it back on release; the leg's IK then reaches the pin only
    within the leg's length (thigh + shin) from the hip, so a pin the body has moved away from drags along."""
    lock = FootLock(settle=settle) if pin is None else FootLock(on=pin[0], off=pin[1], settle=settle)
    out = pred[:, ANKLES].copy()
    pinned = np.zeros((len(pred), 2), dtype=bool)
    for i, (joints, c) in enumerate(zip(pred, contacts_pred, strict=True)):
        if not np.isfinite(joints).all() or not np.isfinite(c).all():
            lock.reset()
            continue
        person = lock.apply({"id": 0, "joints_3d": joints.tolist(), "contacts": c.tolist()}, i / fps)
        pinned[i] = lock.pinned
        for side, (hip, knee, ankle) in enumerate(LEGS):
            target = np.array(person["joints_3d"][ankle]) - joints[hip]
            reach = np.linalg.norm(joints[knee] - joints[hip]) + np.linalg.norm(joints[ankle] - joints[knee])
            dist = np.linalg.norm(target)
            out[i, side] = joints[hip] + target * min(1.0, reach / max(dist, 1e-9))
    return out, pinned


def foot_metrics(pred: np.ndarray, gt: np.ndarray, contacts_gt: np.ndarray | None, contacts_pred: np.ndarray | None,
                 fps: float, pin: tuple[float, float] | None = None, settle: float = 0.0) -> dict:
    """Foot skating: the lifted ankles' horizontal speed while the mocap foot is planted, mm per frame at 30 fps, in
    the packet (``skate``), in the take after the add-on's foot pinning (``take_skate``, ``take_ankles``) and of the
    mocap's own ankles (``gt_skate``: a planted foot rolls over heel and toes, so its ankle moves too); what the
    pinning costs the pose (``pin_cost``: the take's pelvis-relative ankle error minus the packet's, mm); contact
    precision and recall: the frames the add-on pins a foot against the mocap's contacts."""
    out = {"skate": np.nan, "take_skate": np.nan, "gt_skate": np.nan, "pin_cost": np.nan, "c_prec": np.nan,
           "c_rec": np.nan}
    if contacts_gt is None:
        return out
    valid = np.isfinite(pred).all(axis=(1, 2))

    def speed(ankles: np.ndarray) -> np.ndarray:
        v = np.full((len(ankles), 2), np.nan)
        v[1:] = np.linalg.norm(np.diff(ankles[..., :2], axis=0), axis=-1) * fps * 1000 / 30
        return v

    packet = speed(pred[:, ANKLES])
    planted = contacts_gt & valid[:, None] & np.isfinite(packet)
    if planted.any():
        out["skate"] = float(np.mean(packet[planted]))
        out["gt_skate"] = float(np.mean(speed(gt[:, ANKLES])[planted]))
    if contacts_pred is not None:
        ankles, pinned = take_ankles(pred, contacts_pred, fps, pin, settle)
        if planted.any():
            out["take_skate"] = float(np.mean(speed(ankles)[planted]))
        pelvis = lambda a: 0.5 * (a[valid, J["l_hip"]] + a[valid, J["r_hip"]])[:, None]  # noqa: E731
        lifted_pelvis, true_ankles = pelvis(pred), gt[valid][:, ANKLES] - pelvis(gt)
        err = lambda a: np.linalg.norm(a[valid] - lifted_pelvis - true_ankles, axis=-1).mean() * 1000  # noqa: E731
        out["pin_cost"] = float(err(ankles) - err(pred[:, ANKLES]))
        said, truth = pinned & valid[:, None], contacts_gt & valid[:, None]
        out["c_prec"] = 100.0 * (said & truth).sum() / max(said.sum(), 1)
        out["c_rec"] = 100.0 * (said & truth).sum() / max(truth.sum(), 1)
    return out


def path_error(pred: np.ndarray, gt: np.ndarray, fps: float) -> float:
    """How far the lifted root path strays from the mocap's: the horizontal distance between the two pelvis paths,
    both started at the first lifted frame, mean over the lifted frames, in mm per second of the clip (a path frozen
    while the performer walks at 1 m/s scores about 500). MPJPE is root-relative and does not see it."""
    valid = np.isfinite(pred).all(axis=(1, 2))
    if valid.sum() < 2:
        return np.nan
    pelvis = lambda a: 0.5 * (a[valid, J["l_hip"], :2] + a[valid, J["r_hip"], :2])  # noqa: E731
    p, g = pelvis(pred), pelvis(gt)
    err = np.linalg.norm((p - p[0]) - (g - g[0]), axis=-1).mean() * 1000
    return float(err / (len(p) / fps))


def facing_azimuth(joints: np.ndarray) -> float:
    """Compass angle (deg, 0 = facing -Y) the performer faces in the first frame."""
    left = joints[0, J["l_hip"]] - joints[0, J["r_hip"]]
    fwd = np.cross(left, [0.0, 0.0, 1.0])
    return float(np.degrees(np.arctan2(fwd[0], -fwd[1])))


def case_camera(gt_world: np.ndarray, azimuth: float, elevation: float, args: argparse.Namespace) -> PinholeCamera:
    """The virtual camera of a case: ``azimuth`` degrees around the performer from where they face in the first
    frame, looking down ``elevation`` degrees at ``args.target_height``, ``args.distance`` away."""
    target = np.array([*gt_world[:, :, :2].mean((0, 1)), args.target_height])
    cam_height = args.target_height + args.distance * np.tan(np.radians(elevation))
    return PinholeCamera.orbit(IMAGE, target, azimuth + facing_azimuth(gt_world), distance=args.distance,
                               height=cam_height)


def told_height(gt: np.ndarray, source: str = "chain") -> float:
    """The performer's height as a user would type it, from the mocap (T, 17, 3): the rest skeleton's 1.75 m
    scaled by the median vertical chain (spine + neck + legs: what stacks up to a standing height), or by the median
    ratio of the eight limb bones (arms count as much as legs: a long-legged actor was told a short height)."""
    if source == "limbs":
        ratio = np.median(segment_lengths(gt, LIMB_SEGMENTS) / segment_lengths(REST_JOINTS, LIMB_SEGMENTS))
    else:
        frames = [measure_lengths(pose) for pose in gt]
        median = {k: float(np.median([f[k] for f in frames])) for k in frames[0]}
        ratio = vertical_chain(median) / vertical_chain(REST_LENGTHS)
    return REST_HEIGHT * float(ratio)


def lifter_pitch(args: argparse.Namespace, elevation: float) -> float | None:
    """The camera pitch the lifter is told for ``--pitch``: the camera's elevation (told), None (auto: estimated), 0
    (level)."""
    return {"told": elevation, "auto": None, "level": 0.0}[getattr(args, "pitch", "told")]


def run_case(gt_world: np.ndarray, contacts: np.ndarray | None, fps: float, azimuth: float, elevation: float,
             sigma: float, height: float, lifter: str, args: argparse.Namespace, seed: int) -> dict:
    """One clip through one camera and noise level, frame by frame as the server lifts it."""
    cam = case_camera(gt_world, azimuth, elevation, args)
    px = cam.project(gt_world)
    gt = cam.level_world(gt_world)
    noisy, scores = detector_noise(px, sigma, np.random.default_rng(seed))
    cfg = PipelineConfig(performer_height=height, camera_pitch=lifter_pitch(args, elevation), lifter=lifter,
                         depth_prior=args.depth_prior != "none")
    sig = TrackSignal(cfg, 17, IMAGE, LIFTERS[lifter])
    box = np.array([0, 0, *IMAGE], float)
    preds, rots, c_pred, t_lift, t_ik = [], [], [], [], []
    for i in range(len(px)):
        t0 = time.perf_counter()
        person = sig.person(0, box, noisy[i], scores[i], i / fps, None, lambda e: None)
        t_lift.append(time.perf_counter() - t0)
        j3 = person["joints_3d"]
        q = None
        if j3 is not None and i % args.rot_every == 0:
            t1 = time.perf_counter()
            q = solve_rotations(j3)
            t_ik.append(time.perf_counter() - t1)
        preds.append(np.full((17, 3), np.nan) if j3 is None else j3)
        rots.append(q)
        c = person.get("contacts")
        c_pred.append(np.full(2, np.nan) if c is None else c)
    pred = np.array(preds, dtype=np.float64)
    c_pred = np.array(c_pred)
    out = metrics(pred, gt, rots, fps)
    out |= foot_metrics(pred, gt, contacts, None if np.isnan(c_pred).all() else c_pred, fps, getattr(args, "pin", None),
                        getattr(args, "settle", 0.0))
    out["path"] = path_error(pred, gt, fps)
    return out | {"ms": np.median(t_lift) * 1000, "ik_ms": np.median(t_ik) * 1000 if t_ik else np.nan,
                  "frames": len(px), "joints": pred, "gt": gt}


COLS = ("mpjpe", "pa", "wrong", "run", "jitter", "jitter_pooled", "cv", "rot", "skate", "take_skate", "pin_cost",
        "path", "c_prec", "c_rec", "ms")
HEADER = ("MPJPE", "PA-MPJPE", "wrong%", "maxrun", "jitter×", "jitter× pooled", "boneCV%", "rot°", "skate mm/f",
          "take skate", "pin +mm", "path mm/s", "contact P%", "contact R%", "ms/frame")


def summarise(rows: list[dict], key: str) -> list[tuple[str, dict, int]]:
    """Frame-weighted means of every metric per value of ``key`` (run: the maximum; jitter_pooled: the lifted joints'
    acceleration summed over every frame of the group over the mocap's, where the mean of the cases' ratios lets a
    clip whose mocap hardly moves count many times over)."""
    groups = {str(name): rs for (name,), rs in _groups(rows, (key,)).items()}
    out = []
    for name, rs in sorted(groups.items()):
        w = np.array([r["frames"] for r in rs], float)
        agg = {}
        for c in COLS:
            if c == "jitter_pooled":
                v = np.array([[r["acc_pred"], r["acc_gt"]] for r in rs], float)
                ok = np.isfinite(v).all(axis=1)
                agg[c] = float((w[ok] * v[ok, 0]).sum() / (w[ok] * v[ok, 1]).sum()) if ok.any() else np.nan
                continue
            v = np.array([r[c] for r in rs], float)
            ok = np.isfinite(v)
            agg[c] = (float(v[ok].max()) if c == "run" else float(np.average(v[ok], weights=w[ok]))) if ok.any() \
                else np.nan
        out.append((name, agg, len(rs)))
    return out


def table(title: str, groups: list[tuple[str, dict, int]]) -> str:
    lines = [f"\n{title}", "| " + " | ".join(("group", "cases", *HEADER)) + " |", "|" + "---|" * (len(HEADER) + 2)]
    for name, agg, n in groups:
        vals = [("—" if not np.isfinite(agg[c]) else f"{agg[c]:.0f}" if c == "run" else
                 f"{agg[c]:.2f}" if c in ("jitter", "jitter_pooled", "ms", "cv") else f"{agg[c]:.1f}") for c in COLS]
        lines.append("| " + " | ".join((name, str(n), *vals)) + " |")
    return "\n".join(lines)


def decomposition_table(rows: list[dict]) -> str:
    """The ``--decompose`` table: frame-weighted means per lifter, noise and azimuth, and overall."""
    keys = ("mpjpe", "shifted", "scaled", "rotated", "pa", "scale", "spine_deg")
    lines = ["\nwhere the error comes from (mm; scale: the best per frame, median, >1 = lifted body too small; spine: "
             "angle between the lifted and the mocap's spine, deg)",
             "| lifter | px | azimuth | MPJPE | best shift | best scale | best shift + rotation | similarity (PA) "
             "| scale | spine° |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (lifter, px), group in sorted(_groups(rows, ("lifter", "px")).items()):
        for az, sel in [("all", group), *sorted(_groups(group, ("azimuth",)).items(), key=lambda kv: float(kv[0][0]))]:
            w = np.array([r["frames"] for r in sel], float)
            vals = [np.average([r["parts"][k] for r in sel], weights=w) for k in keys]
            lines.append(f"| {lifter} | {px:g} | {az if az == 'all' else az[0]} | "
                         + " | ".join(f"{v:.2f}" if k == "scale" else f"{v:.1f}" for k, v in zip(keys, vals,
                                                                                               strict=True)) + " |")
    return "\n".join(lines)


def _groups(rows: list[dict], keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        out[tuple(r[k] for k in keys)].append(r)
    return out


def plot(rows: list[dict], path: Path) -> None:
    """MPJPE per azimuth (one curve per lifter x noise) and per category: a PNG for docs/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    lifters = sorted({r["lifter"] for r in rows}, key=lambda n: (n != "learned", n))  # the default first
    colour = {lifter: f"C{k}" for k, lifter in enumerate(lifters)}  # one colour per lifter in both panels
    sigmas = sorted({r["px"] for r in rows})
    for lifter in lifters:
        for sigma, style in zip(sigmas, ["-", "--", ":", "-."] * 4, strict=False):
            sel = [r for r in rows if r["lifter"] == lifter and r["px"] == sigma]
            g = summarise(sel, "azimuth")
            az = [float(n) for n, _, _ in g]
            order = np.argsort(az)
            ax1.plot(np.array(az)[order], np.array([a["mpjpe"] for _, a, _ in g])[order], marker="o",
                     ls=style, color=colour[lifter], label=f"{lifter}, {sigma:g} px")
    ax1.set_xlabel("camera azimuth from the performer's front (deg)")
    ax1.set_ylabel("MPJPE (mm)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    cats = sorted({r["category"] for r in rows})
    width = 0.8 / max(len(lifters), 1)
    for k, lifter in enumerate(lifters):
        sel = [r for r in rows if r["lifter"] == lifter and r["px"] == max(r2["px"] for r2 in rows)]
        g = dict((n, a) for n, a, _ in summarise(sel, "category"))
        ax2.bar(np.arange(len(cats)) + k * width, [g.get(c, {"mpjpe": np.nan})["mpjpe"] for c in cats], width,
                label=lifter, color=colour[lifter])
    ax2.set_xticks(np.arange(len(cats)) + width * (len(lifters) - 1) / 2, cats, rotation=30, ha="right")
    ax2.set_ylabel(f"MPJPE (mm) at {max(r['px'] for r in rows):g} px")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, axis="y")
    n = len({r["clip"] for r in rows})
    fig.suptitle(f"3D lifting on {n} mocap clip{'s' * (n != 1)} through virtual cameras")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options (scripts/plot_lifting.py takes its cases' settings from their defaults)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="*", type=Path, help="mocap files, folders or MANIFEST.csv")
    ap.add_argument("--bvh", nargs="+", type=Path, default=[], help="(older spelling of the inputs)")
    ap.add_argument("--lifter", nargs="+", default=["learned"], choices=[*LIFTERS, "candidate", "candidate-nofit"])
    ap.add_argument("--candidate", type=Path,
                    help="other temporal lifter weights (.npz): adds lifters 'candidate' and 'candidate-nofit'")
    ap.add_argument("--fps", type=float, default=30.0, help="resample the mocap to this frame rate")
    ap.add_argument("--clip-fps", type=float, help="the clips' true frame rate when no manifest says it (AMC)")
    ap.add_argument("--noise", nargs="+", type=float, default=[0, 3, 5], help="pixel noise levels (sigma)")
    ap.add_argument("--azimuths", nargs="+", type=float, default=[0, 45, 90, 135, 180, 225, 270, 315])
    ap.add_argument("--elevations", nargs="+", type=float, default=[0, 15, 30])
    ap.add_argument("--views-per-clip", type=int, default=0, help="(azimuth, elevation) pairs per clip; 0 = all")
    ap.add_argument("--subjects", nargs="*", help="only clips of these subjects (e.g. the validation split)")
    ap.add_argument("--max-clips", type=int, default=0,
                    help="at most this many clips, taken in turn from each motion category (seeded)")
    ap.add_argument("--seconds", type=float, default=0.0, help="use at most this many seconds of each clip")
    ap.add_argument("--default-height", action="store_true", help="do not tell the lifter the performer's height")
    ap.add_argument("--height-from", choices=("chain", "limbs"), default="chain",
                    help="the height told to the lifter: the mocap's vertical chain (spine, neck, legs) against the "
                         "rest skeleton's, or (before 2026-12-04) the median of its limb bones' ratios")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rot-every", type=int, default=5, help="rotation error on every Nth frame (IK is slow)")
    ap.add_argument("--ikpy", action="store_true", help="also time ikpy against the analytic IK on one leg")
    ap.add_argument("--distance", type=float, default=5.0, help="camera distance to the clip's centre (m)")
    ap.add_argument("--target-height", type=float, default=1.0, help="height the camera looks at (m)")
    ap.add_argument("--shift-hips", nargs=2, type=float, default=(0.0, 0.0), metavar=("OUT", "DOWN"),
                    help="move the hip keypoints OUT (each side) and DOWN (m), as a detector may place them")
    ap.add_argument("--depth-prior", default="default", help="geometric lifter: 'default' or 'none'")
    ap.add_argument("--plot", type=Path, help="write a PNG: MPJPE per azimuth and per category")
    ap.add_argument("--cases", action="store_true", help="also print every case")
    ap.add_argument("--pin", nargs=2, type=float, default=None, metavar=("ON", "OFF"),
                    help="the add-on's foot-pin contact thresholds for the take columns (default: its own)")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="the add-on's Settle setting for the take columns (0: off, its default)")
    ap.add_argument("--pitch", choices=("told", "auto", "level"), default="told",
                    help="the camera's pitch the lifter gets: the virtual camera's (told), none (auto: the learned "
                         "lifter estimates it from the performer; the geometric one assumes level), or level (0)")
    ap.add_argument("--decompose", action="store_true",
                    help="also print where the error comes from: MPJPE after the best scale, rotation or both, the "
                         "best scale and the spine's angle, per lifter, noise and azimuth")
    return ap


def resample(clip: MocapClip, fps: float, seconds: float = 0.0) -> tuple[np.ndarray, np.ndarray | None]:
    """A clip's joints (T, 17, 3) and contacts (T, 2) or None at ``fps`` (the nearest later mocap frame), its
    first ``seconds`` (0: all)."""
    t_src = np.arange(len(clip.joints)) / clip.fps
    end = t_src[-1] if not seconds else min(t_src[-1], seconds)
    idx = np.minimum(np.searchsorted(t_src, np.arange(0.0, end, 1.0 / fps)), len(t_src) - 1)
    return clip.joints[idx], None if clip.contacts is None else clip.contacts[idx]


def main() -> None:
    ap = build_parser()
    args = ap.parse_args()
    if args.candidate:
        LIFTERS["candidate"] = partial(LearnedLifter, model=args.candidate)
        LIFTERS["candidate-nofit"] = partial(LearnedLifter, model=args.candidate, bone_fit=0.0)
    elif any(name.startswith("candidate") for name in args.lifter):
        ap.error("--lifter candidate needs --candidate WEIGHTS.npz")
    paths = find_clips([*args.inputs, *args.bvh])
    if not paths:
        raise SystemExit("no mocap clips: give .bvh/.amc files, folders or a MANIFEST.csv")
    if args.subjects:  # before --max-clips, so that it picks among the subjects' clips
        paths = [p for p in paths if clip_subject(Path(p)) in args.subjects]
        if not paths:
            raise SystemExit(f"no clip of the subjects {' '.join(args.subjects)} among the inputs: subjects are "
                             "named like cmu07 (CMU subject 7) or hdm_bd")
    if args.max_clips and len(paths) > args.max_clips:  # round-robin over categories (from names), deterministic
        by_cat: dict[str, list[Path]] = defaultdict(list)
        for path in paths:
            row = manifest_row(Path(path))
            by_cat[category_of(row["description"] if row else Path(path).name)].append(path)
        rng = np.random.default_rng(args.seed)
        for cat in by_cat:  # actors and styles mixed, the same ones every run
            rng.shuffle(by_cat[cat])
        picked, k = [], 0
        while len(picked) < args.max_clips:
            for cat in sorted(by_cat):
                if k < len(by_cat[cat]) and len(picked) < args.max_clips:
                    picked.append(by_cat[cat][k])
            k += 1
        paths = picked
    clips = []
    for path in tqdm(paths, desc="reading", unit="clip"):
        clips.append(load_clip(path, fps=args.clip_fps))
    grid = [(a, e) for e in args.elevations for a in args.azimuths]
    cases = []
    view_rng = np.random.default_rng(args.seed)  # views drawn per clip: not tied to the clips' (category) order
    for ci in range(len(clips)):
        views = grid if not args.views_per_clip else [
            grid[k] for k in view_rng.choice(len(grid), min(args.views_per_clip, len(grid)), replace=False)]
        for az, el in views:
            for sigma in args.noise:
                for lifter in args.lifter:
                    cases.append((ci, az, el, sigma, lifter))
    prepared = {}
    for ci, clip in enumerate(clips):
        gt, contacts = resample(clip, args.fps, args.seconds)
        gt = shift_hips(gt, *args.shift_hips) if any(args.shift_hips) else gt
        height = REST_HEIGHT if args.default_height else told_height(gt, args.height_from)
        prepared[ci] = (gt, contacts, height)
    rows = []
    t0, c0 = time.time(), time.process_time()
    load0 = os.getloadavg()
    for ci, az, el, sigma, lifter in tqdm(cases, desc="bench", unit="case"):
        gt, contacts, height = prepared[ci]
        r = run_case(gt, contacts, args.fps, az, el, sigma, height, lifter, args, args.seed + ci)
        if args.decompose:
            r["parts"] = decompose(r["joints"], r["gt"])
        r = {k: v for k, v in r.items() if k not in ("joints", "gt")}  # the per-frame arrays are for bench_convert
        rows.append(r | {"clip": clips[ci].name, "category": clips[ci].category, "azimuth": f"{az:g}",
                         "elevation": f"{el:g}", "px": sigma, "lifter": lifter})
    wall, cpu = time.time() - t0, time.process_time() - c0
    if args.cases:
        print(table("every case (clip / lifter / px / azimuth / elevation)",
                    [(f"{r['clip']} {r['lifter']} {r['px']:g}px az{r['azimuth']} el{r['elevation']}", r, 1)
                     for r in rows]))
    for lifter in args.lifter:
        for sigma in args.noise:
            sel = [r for r in rows if r["lifter"] == lifter and r["px"] == sigma]
            title = f"{lifter} lifter, {sigma:g} px"
            print(table(f"{title}: overall", [("all", *summarise(sel, "lifter")[0][1:])]))
            print(table(f"{title}: per category", summarise(sel, "category")))
            print(table(f"{title}: per azimuth (deg from the performer's front)", summarise(sel, "azimuth")))
            if len(args.elevations) > 1:
                print(table(f"{title}: per elevation (deg)", summarise(sel, "elevation")))
    if args.decompose:
        print(decomposition_table(rows))
    frames = sum(r["frames"] for r in rows)
    own = [(r["gt_skate"], r["frames"]) for r in rows if np.isfinite(r["gt_skate"])]
    if own:
        value, weight = zip(*own, strict=True)
        print(f"\nskate columns: the mocap's own ankles move {np.average(value, weights=weight):.1f} mm/frame on "
              "its planted frames (a planted foot rolls over heel and toes); take skate: after the add-on's foot "
              "pinning, which moves the ankles off the packet's pose by pin +mm (pelvis-relative ankle error, take "
              "minus packet)")
    print(f"\n{len(clips)} clips, {len(rows)} cases, {frames} frames; wall {wall:.0f} s, CPU {cpu:.0f} s; "
          f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} (2 cores)")
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")
    if args.ikpy:
        print(compare_ikpy(prepared[0][0]))


if __name__ == "__main__":
    main()
