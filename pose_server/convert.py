"""`pose-server convert`: a recorded video to a finished animation, offline.

The live server may only use the past (it must send each frame at once); a recorded video has its future
too, so every smoothing step here is two-sided and adds no lag:

    read every frame -> detect + track + ViTPose            (the live pipeline's parts, one frame at a time)
    per track: fill short gaps, two-sided 2D smoothing      (confidence-weighted Gaussian, no One Euro lag)
             -> lift to 3D (the server's lifter, by default the learned one; its causal smoothers off)
             -> two-sided 3D smoothing of path and body, bones rigid again -> IK rotations
    -> take.jsonl (pose packets v3 with the learned lifter's foot contacts, v2 without, v4 with a whole-body
       model's hands; what `--record` writes)
       -> headless Blender (the add-on's own session import, which pins planted feet, and its exporters,
       `scripts/convert_blender.py`) -> .fbx / .bvh / .glb / .blend
    -> overlay .mp4 (the smoothed keypoints drawn on the video)

One armature per performer (`--person all`, the default) or one track id; .fbx, .glb and .blend hold every
performer in one file, .bvh (one skeleton a file) is written per performer when there are several.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from . import sources as src
from .config import PipelineConfig, load_estimator
from .left_right import guard_track
from .lift.skeleton3d import J
from .lift.world import SharedWorld
from .protocol import SKELETON_SIZES, PacketEncoder
from .skeleton import get_skeleton

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
BLENDER_WORKER = ROOT / "scripts" / "convert_blender.py"
BLENDER_FORMATS = (".fbx", ".bvh", ".glb", ".blend")
FORMATS = (*BLENDER_FORMATS, ".jsonl", ".mp4")
TORSO = [J["l_shoulder"], J["r_shoulder"], J["l_hip"], J["r_hip"]]
PASS_THROUGH_HZ = 1000.0  # One Euro cut-off that leaves a 30-60 fps signal as it is
FILL_WEIGHT = 0.05  # weight of a gap-filled sample in the smoothing: measured samples nearby win
# Sigma (s) of the two-sided Gaussian on the lifted body per lifter, chosen with scripts/bench_convert.py on the
# learned lifter's validation subjects (docs/convert.md): the network's output is smoother than the geometric
# lifter's, and 0.08 s over-smoothed it (1 mm less accurate, a quarter of the mocap's acceleration).
BODY_SIGMA = {"learned": 0.03, "geometric": 0.08}


class ConvertError(ValueError):
    """The conversion cannot run; the message says what to do."""


@dataclass
class ConvertOptions:
    """What `convert` makes and how it smooths; the model, detector and camera come from a PipelineConfig."""

    outputs: list[str]
    person: str = "all"  # "all" or a track id
    smooth_2d: float = 0.05  # s, sigma of the two-sided Gaussian on the keypoints (-3 dB at ~2.7 Hz)
    smooth_3d: float | None = None  # s, sigma on the lifted body (pelvis-relative joints); None: BODY_SIGMA
    smooth_root: float = 0.08  # s, sigma on the lifted pelvis path (-3 dB at ~1.7 Hz): steadier feet
    max_gap: float = 0.5  # s, longest occlusion of a keypoint (or a whole person) filled by interpolation
    min_track: float = 0.5  # s, shorter tracks are dropped with --person all (detector false positives)
    lock_feet: bool = True  # move the body so that a foot on the floor stays where it was put down
    stride: int = 1  # run ViTPose on every stride-th frame only; the gap filler interpolates the others
    blender_timeout: float = 1800.0


@dataclass
class Tracks:
    """Per-frame 2D results of every track over the whole video (NaN / score 0 where a track is absent)."""

    fps: float
    size: tuple[int, int]
    frames: int
    skeleton: str
    source_name: str
    boxes: dict[int, np.ndarray] = field(default_factory=dict)  # (T, 4)
    keypoints: dict[int, np.ndarray] = field(default_factory=dict)  # (T, K, 2)
    scores: dict[int, np.ndarray] = field(default_factory=dict)  # (T, K)
    times: np.ndarray | None = None  # (T,) each frame's time in the video, its own timestamps; None: i / fps

    @property
    def frame_times(self) -> np.ndarray:
        """(T,) seconds from the video's start: a variable frame rate's uneven steps kept."""
        return self.times if self.times is not None else np.arange(self.frames) / self.fps


@dataclass
class Motion:
    """One performer's finished signal: (T, ...) arrays on the video's frame grid."""

    id: int
    present: np.ndarray  # (T,) bool: the frame carries this person
    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    filled: np.ndarray  # (T, K) bool: keypoint filled over a gap, not measured
    joints: np.ndarray  # (T, 17, 3) NaN where not lifted
    rotations: np.ndarray  # (T, 12, 4) NaN where not lifted
    contacts: np.ndarray | None = None  # (T, 2) left / right foot contact probability, NaN where not lifted; None:
    # the lifter has none (the geometric one)
    pitch: float | None = None  # the camera pitch (deg down) its world frame was lifted with: told or estimated
    hands: list | None = None  # per frame [left, right] (16, 4) quaternions or None: whole-body models (protocol v4)


def check_outputs(outputs: Sequence[str], video: str | None = None) -> list[Path]:
    """The outputs as absolute paths (Blender exports from another working directory), or ConvertError before any
    work: an unknown extension, the input video itself, a path that cannot be written, a recording already there."""
    from .outputs import check_output
    from .record import Recorder

    if not outputs:
        raise ConvertError("give at least one output: -o take.fbx (also .bvh, .glb, .blend, .jsonl, .mp4)")
    paths = []
    for o in outputs:
        p = Path(o)
        if p.suffix.lower() not in FORMATS:
            raise ConvertError(f"cannot write {p.name}: the output's extension must be one of {', '.join(FORMATS)}")
        try:
            p = check_output(p, "output", [video] if video else []).resolve()
            if p.suffix.lower() == ".jsonl":  # a take is never overwritten, as `pose-server run --record` keeps it
                Recorder.check_free(p)
        except (ValueError, FileExistsError) as exc:
            raise ConvertError(str(exc)) from None
        paths.append(p)
    return paths


# -- 1. every frame through detection, tracking and ViTPose -------------------------------------------------------
def estimate_2d(cfg: PipelineConfig, estimator: Any = None, progress: bool = True,
                on_frame: Callable[[int, int | None], object] | None = None, stride: int = 1) -> Tracks:
    """Run the live pipeline's detector, tracker and ViTPose on every frame of ``cfg.source`` (or every
    ``stride``-th: the others are left empty for the gap filler), in order."""
    from .detect import make_detector
    from .track import Tracker

    source = src.open_source(cfg.source, realtime=False)
    if source.live:
        source.close()
        raise ConvertError(f"{cfg.source} is a live source; convert reads files (record it with `pose-server run "
                           "--record` or any camera app first)")
    try:
        est = estimator if estimator is not None else load_estimator(cfg)
        detector = make_detector(cfg.detector, cfg.det_threshold)
        tracker = Tracker(cfg.max_people, cfg.det_interval, min_keypoint_score=cfg.kpt_threshold)
        total = source.frame_count or None
        if cfg.max_frames:
            total = min(total or cfg.max_frames, cfg.max_frames)
        rows: list[tuple[int, list[int], np.ndarray, np.ndarray, np.ndarray]] = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", desc=f"2D {source.name}", dynamic_ncols=True)
        size = source.size

        def pose(n: int, img: np.ndarray) -> None:
            if tracker.needs_detection():  # offline there is no frame to drop: detect in line
                tracker.update_detections(*detector(img))
            ids, boxes = tracker.boxes()
            if len(ids):
                kpts, scores = est(img, boxes)
                lost = set(tracker.update_keypoints(ids, kpts, scores, size))
                keep = [i for i, tid in enumerate(ids) if tid not in lost]
                rows.append((n, [ids[i] for i in keep], boxes[keep], kpts[keep], scores[keep]))
            else:
                tracker.skip_frame()

        n, skipped, times = 0, None, []
        while (not cfg.max_frames or n < cfg.max_frames) and (frame := source.read()) is not None:
            img = frame.image
            times.append(frame.media_t if frame.media_t is not None else n / (source.fps or 30.0))
            size = (img.shape[1], img.shape[0])
            if n % stride == 0:  # the frames in between stay empty: the gap filler interpolates them
                pose(n, img)
                skipped = None
            else:
                skipped = (n, img)
            n += 1
            if bar is not None:
                bar.update(1)
            if on_frame is not None:
                on_frame(n, total)
        if skipped is not None:  # the last frame too: after it nothing is left to interpolate towards
            pose(*skipped)
        if bar is not None:
            bar.close()
    finally:
        source.close()
    if n == 0:
        raise ConvertError(f"no frame could be read from {cfg.source}: is it a video OpenCV can decode?")
    out = Tracks(fps=source.fps or 30.0, size=size, frames=n, skeleton=est.skeleton, source_name=source.name,
                 times=np.asarray(times, dtype=np.float64))
    k = est.num_keypoints
    for i, ids, boxes, kpts, scores in rows:
        for tid, box, kp, sc in zip(ids, boxes, kpts, scores, strict=True):
            if tid not in out.boxes:
                out.boxes[tid] = np.full((n, 4), np.nan)
                out.keypoints[tid] = np.full((n, k, 2), np.nan)
                out.scores[tid] = np.zeros((n, k))
            out.boxes[tid][i], out.keypoints[tid][i], out.scores[tid][i] = box, kp, sc
    return out


# -- 2. gap filling and two-sided smoothing -----------------------------------------------------------------------
def fill_gaps(values: np.ndarray, valid: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation over runs of at most ``max_gap`` invalid frames between two valid ones.

    values (T, N, D), valid (T, N) -> (values with the gaps filled, (T, N) mask of the filled samples)."""
    out = values.copy()
    filled = np.zeros(valid.shape, bool)
    t = np.arange(len(values))
    for n in range(valid.shape[1]):
        idx = np.flatnonzero(valid[:, n])
        if len(idx) < 2:
            continue
        gap = np.diff(idx) - 1
        for a, b in zip(idx[:-1][(gap > 0) & (gap <= max_gap)], idx[1:][(gap > 0) & (gap <= max_gap)], strict=True):
            filled[a + 1:b, n] = True
        if filled[:, n].any():
            for d in range(values.shape[2]):
                out[filled[:, n], n, d] = np.interp(t[filled[:, n]], idx, values[idx, n, d])
    return out, filled


def smooth_two_sided(values: np.ndarray, weights: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Confidence-weighted Gaussian smoothing along time (normalised convolution): zero lag, and samples with
    weight 0 neither pull their neighbours nor get a value (NaN). values (T, N, D), weights (T, N)."""
    w = np.where(np.isfinite(values).all(axis=-1), weights, 0.0)
    x = np.where(w[..., None] > 0, values, 0.0)
    if sigma_frames <= 0:
        return np.where(w[..., None] > 0, values, np.nan)
    num = gaussian_filter1d(x * w[..., None], sigma_frames, axis=0, mode="constant", truncate=3.0)
    den = gaussian_filter1d(w, sigma_frames, axis=0, mode="constant", truncate=3.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den[..., None]
    return np.where(w[..., None] > 0, out, np.nan)


def smooth_track_2d(boxes: np.ndarray, kpts: np.ndarray, scores: np.ndarray, fps: float, opts: ConvertOptions,
                    min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(present, boxes, keypoints, scores, filled) of one track after gap filling and 2D smoothing."""
    gap = max(int(round(opts.max_gap * fps)), opts.stride - 1)
    valid = (scores >= min_score) & np.isfinite(kpts).all(axis=-1)
    k_filled_vals, filled = fill_gaps(kpts, valid, gap)
    weights = np.where(valid, scores, np.where(filled, FILL_WEIGHT, 0.0))
    k_smooth = smooth_two_sided(k_filled_vals, weights, opts.smooth_2d * fps)
    seen = np.isfinite(boxes).all(axis=1)
    b_filled, b_fill = fill_gaps(boxes[:, None, :], seen[:, None], gap)
    present = (valid | filled)[:, TORSO].all(axis=1) & (seen | b_fill[:, 0])
    # A filled keypoint gets the threshold score: the lifter uses it, the packet marks it held.
    sc = np.where(valid, scores, np.where(filled, min_score, 0.0))
    sc = np.where(np.isfinite(k_smooth).all(axis=-1), sc, 0.0)
    # Keypoints nobody saw (score 0) keep the raw estimate, or the box centre: the packet needs finite numbers.
    centre = 0.5 * (b_filled[:, 0, :2] + b_filled[:, 0, 2:])
    fallback = np.where(np.isfinite(kpts), kpts, centre[:, None, :])
    k_out = np.where(np.isfinite(k_smooth), k_smooth, fallback)
    return present, b_filled[:, 0], k_out, sc, filled & ~valid


def offline_lifter(cfg: PipelineConfig, size: tuple[int, int], world: Any = None) -> Any:
    """The server's lifter (``cfg.lifter``) with its causal smoothers off: they would add lag, and the output is
    smoothed two-sided afterwards instead. The learned one is a causal network (no non-causal mode): it runs
    forward over the video as live; its One Euro filters on the body and on the root path are turned off
    (cut-off 1 kHz: a pass-through at video rates), its foot locking from the network's contacts stays on."""
    from .lift import LearnedLifter, Lifter

    common = {"image_size": size, "min_score": cfg.kpt_threshold, "height_m": cfg.performer_height,
              "hfov_deg": cfg.camera_hfov, "camera_pitch_deg": cfg.camera_pitch, "smooth": False, "world": world}
    if cfg.lifter == "learned":
        return LearnedLifter(**common, root_min_cutoff=PASS_THROUGH_HZ, depth_min_cutoff=PASS_THROUGH_HZ)
    return Lifter(**common, depth_prior="default" if cfg.depth_prior else None)


def lift_track(keypoints: np.ndarray, scores: np.ndarray, present: np.ndarray, fps: float,
               size: tuple[int, int], cfg: PipelineConfig, opts: ConvertOptions,
               world: Any = None, times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(T, 17, 3) joints and (T, 12, 4) rotations of one track, two-sided smoothed (NaN where not lifted), and the
    lifter's (T, 2) foot contact probabilities (NaN where not lifted; None when it has none): the packets carry them
    (protocol v3), so that the add-on pins planted feet in a converted take as it does live. ``world``: the run's
    shared world frame (lift/world.py), so every performer lands where the camera saw them."""
    from .ik import solve_rotations
    from .lift.smoothing import rigid

    lifter = offline_lifter(cfg, size, world)
    n = len(keypoints)
    t = times if times is not None else np.arange(n) / fps  # each frame's time: a variable frame rate's own
    raw = np.full((n, 17, 3), np.nan)
    contacts = np.full((n, 2), np.nan) if hasattr(lifter, "contacts") else None
    zero = np.zeros(17)
    for i in range(n):
        try:
            j = lifter(keypoints[i, :17], scores[i, :17] if present[i] else zero, t[i])
        except ValueError:
            j = None
        if j is not None and present[i] and np.isfinite(j).all():
            raw[i] = j
            if contacts is not None:
                contacts[i] = lifter.contacts
    lifted = np.isfinite(raw).all(axis=(1, 2))
    pelvis = 0.5 * (raw[:, J["l_hip"]] + raw[:, J["r_hip"]])
    w = lifted.astype(float)
    body_sigma = BODY_SIGMA[cfg.lifter] if opts.smooth_3d is None else opts.smooth_3d
    root = smooth_two_sided(pelvis[:, None, :], w[:, None], opts.smooth_root * fps)[:, 0]
    rel = smooth_two_sided(raw - pelvis[:, None, :], np.repeat(w[:, None], 17, axis=1), body_sigma * fps)
    joints = np.full_like(raw, np.nan)
    rotations = np.full((n, 12, 4), np.nan)
    lengths = lifter.lengths
    for i in np.flatnonzero(lifted):
        joints[i] = root[i] + rigid(rel[i], lengths)
    if opts.lock_feet:
        joints = lock_feet(joints, fps, cfg.performer_height)
    for i in np.flatnonzero(lifted):
        try:
            rotations[i] = solve_rotations(joints[i])
        except ValueError:
            joints[i] = np.nan
    if contacts is not None:
        contacts[~np.isfinite(joints).all(axis=(1, 2))] = np.nan
    return joints, rotations, contacts


def solve_hands(keypoints: np.ndarray, scores: np.ndarray, rotations: np.ndarray, times: np.ndarray,
                size: tuple[int, int], cfg: PipelineConfig) -> list:
    """Per frame both hands ([left, right], (16, 4) quaternions or None) of one whole-body track, from its smoothed
    keypoints and its body rotations, by the live server's hand tracker run forward over the video (as
    `TrackSignal` does); a frame whose body was not lifted has none."""
    from .hands import HandTracker, forearm_deltas
    from .lift.camera import lifter_camera

    _size, focal, center = lifter_camera(size, None, cfg.camera_hfov, cfg.performer_height)
    tracker = HandTracker(focal, center, cfg.performer_height, cfg.camera_pitch or 0.0)
    out: list = []
    for i in range(len(keypoints)):
        if not np.isfinite(rotations[i]).all():
            out.append(None)
            continue
        try:
            out.append(tracker(keypoints[i], scores[i], times[i], cfg.kpt_threshold, forearm_deltas(rotations[i])))
        except (ValueError, np.linalg.LinAlgError):  # a degenerate hand costs this frame's hands
            out.append(None)
    return out


def foot_contacts(joints: np.ndarray, fps: float, height: float) -> np.ndarray:
    """(T, 2) bool: left / right ankle on the floor: low (within 5 cm of its standing height) and slow (under
    0.5 m/s horizontally), on a two-sided speed estimate."""
    from .lift.skeleton3d import REST_HEIGHT, REST_JOINTS

    ankles = joints[:, [J["l_ankle"], J["r_ankle"]]]
    standing = REST_JOINTS[J["l_ankle"], 2] * height / REST_HEIGHT
    if len(joints) < 2:  # one frame (a snapshot): nothing moves
        speed = np.zeros(ankles.shape[:2])
    else:
        speed = np.linalg.norm(np.gradient(ankles[..., :2], axis=0), axis=-1) * fps
    with np.errstate(invalid="ignore"):
        return (ankles[..., 2] < standing + 0.05) & (speed < 0.5)


def lock_feet(joints: np.ndarray, fps: float, height: float, leak_s: float = 3.0) -> np.ndarray:
    """Foot locking by moving the whole body: while a foot stays on the floor its horizontal slide from one frame
    to the next is taken off the body's path (the mean over the feet down), so a planted foot stays put; the
    leg poses and rotations are untouched. The correction fades with time constant ``leak_s`` so that a
    misread contact cannot carry the performer away for good."""
    contact = foot_contacts(joints, fps, height)
    ankles = joints[:, [J["l_ankle"], J["r_ankle"]], :2]
    keep = np.exp(-1.0 / (leak_s * fps))
    offset = np.zeros(2)
    out = joints.copy()
    for i in range(1, len(joints)):
        both = contact[i] & contact[i - 1]
        offset *= keep
        if both.any():
            slide = ankles[i, both] - ankles[i - 1, both]
            if np.isfinite(slide).all():
                offset -= slide.mean(axis=0)
        out[i, :, :2] += offset
    return out


def estimate_pitch(kept: list[tuple], times: np.ndarray, size: tuple[int, int], cfg: PipelineConfig) -> float:
    """The camera pitch (deg down) the performers show over the whole video (lift/world.py's estimate, from every
    straight-bodied frame of every track, lifted once for it): offline the whole video is known, so the lifting
    that follows uses it from the first frame instead of settling on it while the world turns, as live."""
    world = SharedWorld(pitch_frames=sys.maxsize)
    for _tid, present, _boxes, kpts, scores, _filled in kept:
        if kpts.shape[1] < 17:
            continue
        lifter = offline_lifter(cfg, size, world)
        for i in np.flatnonzero(present):
            try:
                lifter(kpts[i, :17], scores[i, :17], times[i])
            except ValueError:
                continue
    pitch = 0.0 if world.pitch_deg is None else float(world.pitch_deg)
    log.info("camera pitch estimated from the performers: %.1f deg down (%d upright frames%s)", pitch,
             world.pitch_samples, "" if world.pitch_deg is not None else "; none: taken as level")
    return pitch


def build_motions(tracks: Tracks, cfg: PipelineConfig, opts: ConvertOptions) -> list[Motion]:
    """Every selected track, smoothed and lifted."""
    ids = sorted(tracks.boxes)
    if opts.person != "all":
        try:
            wanted = int(opts.person)
        except ValueError:
            raise ConvertError(f"--person takes a track id or 'all', got {opts.person!r}") from None
        if wanted not in tracks.boxes:
            raise ConvertError(f"no performer has track id {wanted}; found {ids or 'nobody'}: pick one of them or "
                               "'all' (the overlay video from -o overlay.mp4 shows the ids)")
        ids = [wanted]
    kept = []
    for tid in ids:
        kpts, scores = tracks.keypoints[tid], tracks.scores[tid]
        if cfg.swap_guard:  # the detector's brief left/right exchanges put back, as the live server does
            kpts, scores = guard_track(kpts, scores, tracks.fps, cfg.kpt_threshold, tracks.skeleton)
        present, boxes, kpts, scores, filled = smooth_track_2d(tracks.boxes[tid], kpts, scores, tracks.fps, opts,
                                                               cfg.kpt_threshold)
        # (a video shorter than min_track: a track in every frame of it is kept, not dropped as brief)
        if opts.person == "all" and present.sum() < min(opts.min_track * tracks.fps, tracks.frames):
            log.info("track %d dropped: seen for only %d frames", tid, int(present.sum()))
            continue
        kept.append((tid, present, boxes, kpts, scores, filled))
    lifts = cfg.lift_3d and get_skeleton(tracks.skeleton).coco_body  # a person's COCO-17 body (not an animal's)
    if lifts and cfg.camera_pitch is None and cfg.lifter == "learned" and kept:
        cfg = replace(cfg, camera_pitch=estimate_pitch(kept, tracks.frame_times, tracks.size, cfg))
    motions = []
    world = SharedWorld()  # one frame for every performer of the video
    for tid, present, boxes, kpts, scores, filled in kept:
        if lifts:
            joints, rotations, contacts = lift_track(kpts, scores, present, tracks.fps, tracks.size, cfg, opts,
                                                     world, tracks.frame_times)
        else:
            joints, rotations = np.full((len(kpts), 17, 3), np.nan), np.full((len(kpts), 12, 4), np.nan)
            contacts = None
        hands = None
        if lifts and tracks.skeleton == "wholebody133":  # the fingers, as `run` sends them (protocol v4)
            hands = solve_hands(kpts, scores, rotations, tracks.frame_times, tracks.size, cfg)
        motions.append(Motion(tid, present, boxes, kpts, scores, filled, joints, rotations, contacts,
                              cfg.camera_pitch, hands))
    if not motions:
        seen = ", ".join(f"track {tid}: {int(np.isfinite(tracks.boxes[tid]).all(axis=1).sum())} frames"
                         for tid in ids) or "no track at all"
        raise ConvertError(f"nobody was found long enough in {tracks.source_name} (at least {opts.min_track:g} s; "
                           f"{seen}); convert one of them with --person ID, or try another --detector, a lower "
                           "--det-threshold or --kpt-threshold")
    return motions


# -- 3. outputs ----------------------------------------------------------------------------------------------------
def frame_people(motions: Sequence[Motion], i: int) -> list[dict]:
    people = []
    for m in motions:
        if not m.present[i]:
            continue
        lifted = np.isfinite(m.rotations[i]).all()
        contacts = m.contacts[i] if lifted and m.contacts is not None and np.isfinite(m.contacts[i]).all() else None
        people.append({"id": m.id, "bbox": m.boxes[i], "keypoints": m.keypoints[i],
                       "scores": np.clip(m.scores[i], 0.0, 1.0),
                       "held": np.flatnonzero(m.filled[i]).tolist(),
                       "joints_3d": m.joints[i] if lifted else None,
                       **({"rotations": m.rotations[i]} if lifted else {}),
                       **({"contacts": np.clip(contacts, 0.0, 1.0)} if contacts is not None else {}),
                       **({"hands": m.hands[i]} if lifted and m.hands is not None and m.hands[i] is not None else {})})
    return people


def write_session(path: Path, tracks: Tracks, motions: Sequence[Motion], model: str, t0: float) -> int:
    """The motion as pose packets, one JSON line per frame (what `pose-server run --record` writes): the add-on
    imports it and `pose-server replay` streams it. Returns the number of packets."""
    from .record import Recorder

    enc = PacketEncoder(tracks.source_name[:256], skeleton=tracks.skeleton, image_size=tracks.size)
    with Recorder(path) as rec:
        for i in range(tracks.frames):
            t = t0 + float(tracks.frame_times[i])
            rec.write(enc.encode(i, t, frame_people(motions, i),
                                 meta={"fps": round(tracks.fps, 3), "model": Path(model).name[:256],
                                       "converted": "offline two-sided"}))
    return tracks.frames


def write_overlay(path: Path, video: str, tracks: Tracks, motions: Sequence[Motion], kpt_threshold: float) -> None:
    """The smoothed keypoints, boxes and ids drawn on the video (a second pass over its frames)."""
    from .preview import PreviewWriter, draw_people

    bones = get_skeleton(tracks.skeleton).bones
    source = src.open_source(video, realtime=False)
    writer = PreviewWriter(path, tracks.fps)
    try:
        i = 0
        while (frame := source.read()) is not None and i < tracks.frames:
            writer.write(draw_people(frame.image, frame_people(motions, i), bones, kpt_threshold))
            i += 1
    finally:
        writer.close()
        source.close()


def run_blender(session: Path, outputs: Sequence[Path], people: Sequence[int], fps: float,
                timeout: float = 1800.0) -> dict:
    """Build one capture rig per performer in a headless Blender (the `bpy` module), import the session with the
    add-on's own code and export; returns the worker's summary (the files it wrote)."""
    job = {"session": str(session), "outputs": [str(p) for p in outputs], "people": list(people), "fps": fps}
    cmd = [sys.executable, str(BLENDER_WORKER), json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    for line in reversed(proc.stdout.splitlines()):
        if "RESULT {" in line:  # (Blender's own output may precede it on the line, with no newline)
            result = json.loads(line[line.rindex("RESULT {") + len("RESULT "):])
            if result.get("error"):
                raise ConvertError(f"Blender could not export: {result['error']}")
            return result
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
    raise ConvertError(f"headless Blender failed (exit code {proc.returncode}); is the bpy module installed "
                       f"(pip install bpy)?\n{tail}")


def convert(cfg: PipelineConfig, opts: ConvertOptions, estimator: Any = None, progress: bool = True,
            on_frame: Callable[[int, int | None], object] | None = None) -> dict:
    """The whole chain for the video ``cfg.source``; returns a summary with the files written."""
    outputs = check_outputs(opts.outputs, str(cfg.source))
    if not 1 <= opts.stride <= 4:
        raise ConvertError(f"stride must be 1-4 (ViTPose on every n-th frame), got {opts.stride}")
    t_start = time.perf_counter()
    sessions = [p for p in outputs if p.suffix.lower() == ".jsonl"]
    blender_out = [p for p in outputs if p.suffix.lower() in BLENDER_FORMATS]
    estimator = estimator if estimator is not None else load_estimator(cfg)
    sends = sessions + blender_out
    if sends and estimator.skeleton not in SKELETON_SIZES:  # said before the video's whole 2D pass, not after
        raise ConvertError(f"the model's {estimator.skeleton} keypoints cannot be written to a session or a rig "
                           f"({', '.join(p.name for p in sends)}): the packets carry a person's "
                           f"{' or '.join(SKELETON_SIZES)}; use --dataset coco or wholebody, or write only the "
                           "overlay video (-o overlay.mp4)")
    tracks = estimate_2d(cfg, estimator, progress=progress, on_frame=on_frame, stride=opts.stride)
    t_2d = time.perf_counter()
    motions = build_motions(tracks, cfg, opts)
    t_lift = time.perf_counter()
    files: dict[str, list[str]] = {}
    session = sessions[0] if sessions else None
    tmp_session = None
    if blender_out and session is None:
        import tempfile

        tmp_session = Path(tempfile.mkdtemp(prefix="pose-convert-")) / "take.jsonl"
    t0 = time.time()
    try:
        for p in sessions + ([tmp_session] if tmp_session else []):
            p.parent.mkdir(parents=True, exist_ok=True)
            write_session(p, tracks, motions, cfg.model, t0)
            if p is not tmp_session:
                files.setdefault(".jsonl", []).append(str(p))
        for p in (p for p in outputs if p.suffix.lower() == ".mp4"):
            p.parent.mkdir(parents=True, exist_ok=True)
            write_overlay(p, str(cfg.source), tracks, motions, cfg.kpt_threshold)
            files.setdefault(".mp4", []).append(str(p))
        lifted = [m.id for m in motions if np.isfinite(m.rotations).all(axis=(1, 2)).any()]
        if blender_out:
            if not lifted:
                raise ConvertError("no performer could be lifted to 3D, so there is no animation to export; the "
                                   ".jsonl and .mp4 outputs still work (is --kpt-threshold too high, or the model "
                                   "untrained?)")
            if progress:
                print(f"Blender: {len(lifted)} armature(s) -> {', '.join(p.name for p in blender_out)}",
                      file=sys.stderr)
            result = run_blender(session or tmp_session, blender_out, lifted, tracks.fps, opts.blender_timeout)
            for ext, paths in result.get("files", {}).items():
                files.setdefault(ext, []).extend(paths)
    finally:
        if tmp_session is not None:
            tmp_session.unlink(missing_ok=True)
            tmp_session.parent.rmdir()
    t_end = time.perf_counter()
    return {"source": str(cfg.source), "frames": tracks.frames, "fps": tracks.fps, "people": [m.id for m in motions],
            "lifted": lifted, "files": files, "camera_pitch": motions[0].pitch,
            "camera_pitch_estimated": cfg.camera_pitch is None,
            "seconds": {"2d": round(t_2d - t_start, 2), "lift": round(t_lift - t_2d, 2),
                        "outputs": round(t_end - t_lift, 2), "total": round(t_end - t_start, 2)},
            "realtime_factor": round(tracks.frames / tracks.fps / max(t_end - t_start, 1e-9), 2)}
