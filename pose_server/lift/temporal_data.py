"""Training data of the temporal lifter (``temporal.py``): mocap clips seen by random virtual cameras, with what a
2D detector and the server's keypoint filter do to keypoints.

Per sequence: a clip (chosen in proportion to its duration), a frame rate of 24-60 fps (frames interpolated from the
mocap's), a random body size (x 0.85-1.15), four times in five random proportions (``_proportions``: each limb
segment x 0.92-1.08, the torso and head x 0.92-1.08, hip and shoulder width x 0.8-1.2; other labs' skeletons and
other people differ by that much), mirrored half the time (left and right swapped), a camera anywhere on the
circle around the performer, -10 to +35 deg above the horizon, 2-10 m away, 40-90 deg horizontal field of view, up to
+-4 deg of roll, aimed near the performer, and stepped back along its axis where the performer would otherwise leave
the image or come within 1 m of the lens during the sequence (``_frame_the_action``). Then per frame: the detector's
hips and shoulders where a detector puts them rather than at the mocap's joint centres (hips up to 4 cm out and 6 cm
down, shoulders up to 3 cm up), 0-5 px of Gaussian noise, outliers (1 % of keypoints thrown 20-80 px away, with a
low or, a third of the time, a high score), brief left/right swaps of a limb (1-3 frames), and missing keypoints
for 1-15 frames, held at their last position with a low score (``hold="frozen"``, every shipped run) or as the
server's keypoint filter holds them (``hold="server"``: predicted on with their decaying velocity and given their
last score for HOLD_S, then left with a low score). The clip's start repeats its first frame (the server's model
starts that way).
Targets: the camera-frame joints relative to the pelvis for a 1.75 m body, and contacts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pose_server.lift.proportions import FACE, LIMBS
from pose_server.lift.skeleton3d import J
from pose_server.lift.temporal import frame_features
from pose_server.mocap import MocapClip
from pose_server.skeleton import SKELETONS

__all__ = ["ClipBank", "Batch", "sample_batch", "IMAGE"]

IMAGE = (1280, 720)
HOLD_S = 0.25  # how long the server's keypoint filter holds a dropped keypoint (config.PipelineConfig.hold_s)
FLIP = SKELETONS["coco17"].flip_indices()
_LH, _RH, _LS, _RS = J["l_hip"], J["r_hip"], J["l_shoulder"], J["r_shoulder"]
# limb segments, parents first (a child's new position needs its parent's): per limb kind the upper segments on the
# left and right, then the lower ones
_LIMBS = [pairs for kind in ("arm", "leg") for pairs in ([(a, b) for a, b, _, k in LIMBS if k == kind],
                                                        [(b, c) for _, b, c, k in LIMBS if k == kind])]
_SWAP_PAIRS = [(J[f"l_{n}"], J[f"r_{n}"]) for n in ("wrist", "elbow", "ankle", "knee", "hip", "shoulder")]


@dataclass
class Batch:
    features: np.ndarray  # (B, T, FEATURES) float32
    joints: np.ndarray  # (B, T, 17, 3) float32, camera axes, pelvis-relative, 1.75 m body
    contacts: np.ndarray  # (B, T, 2) float32 (0/1; NaN = unknown)


class ClipBank:
    """Clips concatenated for fast gathering: joints (N, 17, 3), contacts (N, 2), per-clip start/length/fps/size."""

    def __init__(self, clips: list[MocapClip]) -> None:
        if not clips:
            raise ValueError("no training clips")
        self.joints = np.concatenate([c.joints for c in clips]).astype(np.float32)
        self.contacts = np.concatenate([
            c.contacts.astype(np.float32) if c.contacts is not None else np.full((len(c.joints), 2), np.nan)
            for c in clips]).astype(np.float32)
        self.length = np.array([len(c.joints) for c in clips])
        self.start = np.concatenate([[0], np.cumsum(self.length)[:-1]])
        self.fps = np.array([c.fps for c in clips], dtype=np.float64)
        legs = [np.median(np.linalg.norm(c.joints[:, _LH] - c.joints[:, J["l_knee"]], axis=-1)
                          + np.linalg.norm(c.joints[:, J["l_knee"]] - c.joints[:, J["l_ankle"]], axis=-1))
                for c in clips]
        self.size = np.array(legs) / 0.84  # body size against the 1.75 m rest skeleton
        self.weight = self.length / self.fps
        self.weight = self.weight / self.weight.sum()


def _proportions(world: np.ndarray, rng: np.random.Generator, share: float = 0.8) -> np.ndarray:
    """(B, T, 17, 3) joints with each sequence's bones rescaled about their parents, the pelvis fixed (``share`` of
    the sequences): torso and head, hip and shoulder width, and each limb segment (upper arm, forearm, thigh, shin:
    one factor per segment, the two sides within 2 % of it). ``share`` 0 draws nothing (the random stream of
    training runs made before this augmentation)."""
    if share <= 0:
        return world
    b = len(world)
    on = rng.random(b) < share

    def factor(lo: float, hi: float) -> np.ndarray:
        return np.where(on, rng.uniform(lo, hi, b), 1.0)[:, None, None]

    out = world.copy()
    pelvis = world[:, :, [_LH, _RH]].mean(2)
    chest = world[:, :, [_LS, _RS]].mean(2)
    new_chest = pelvis + (chest - pelvis) * factor(0.92, 1.08)
    for joints, centre, new_centre, f in (((_LH, _RH), pelvis, pelvis, factor(0.8, 1.2)),
                                          ((_LS, _RS), chest, new_chest, factor(0.8, 1.2)),
                                          (FACE, chest, new_chest, factor(0.92, 1.08))):
        for k in joints:
            out[:, :, k] = new_centre + (world[:, :, k] - centre) * f
    for pairs in _LIMBS:  # (parent, child) of one segment on the left and on the right
        f = factor(0.92, 1.08)
        for parent, child in pairs:
            side = np.where(on, rng.uniform(0.98, 1.02, b), 1.0)[:, None, None]
            out[:, :, child] = out[:, :, parent] + (world[:, :, child] - world[:, :, parent]) * f * side
    return out


def _hip_placement(world: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """(B, T, 17, 3) joints with both hip joints of ``share`` of the sequences moved together, in the keypoints and
    in the target alike, by U(-4, 4) cm along the body's up axis and U(-3, 3) cm along its forward axis: where a lab
    puts its hip joint centres depends on its markers and its regression (estimates differ by 2-5 cm), and a network
    trained on CMU's alone learns to put the 3D hips where CMU's are whatever the image shows."""
    b = len(world)
    on = rng.random(b) < share
    up_m, fwd_m = (np.where(on, rng.uniform(-m, m, b), 0.0)[:, None, None] for m in (0.04, 0.03))
    pelvis = world[:, :, [_LH, _RH]].mean(2)
    up = world[:, :, [_LS, _RS]].mean(2) - pelvis
    up /= np.maximum(np.linalg.norm(up, axis=-1, keepdims=True), 1e-6)
    left = world[:, :, _LH] - world[:, :, _RH]
    fwd = np.cross(left, up)  # left x up: the way the body faces
    fwd /= np.maximum(np.linalg.norm(fwd, axis=-1, keepdims=True), 1e-6)
    out = world.copy()
    shift = up_m * up + fwd_m * fwd  # (B, T, 3)
    out[:, :, _LH] += shift
    out[:, :, _RH] += shift
    return out


def _cameras(rng: np.random.Generator, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random cameras looking near ``target`` (B, 3): rotations (B, 3, 3) world->camera rows, positions, focal."""
    b = len(target)
    az = rng.uniform(0, 2 * np.pi, b)
    el = np.radians(rng.uniform(-10, 35, b))
    dist = rng.uniform(2, 10, b)
    hfov = np.radians(rng.uniform(40, 90, b))
    focal = 0.5 * IMAGE[0] / np.tan(hfov / 2)
    to_cam = np.stack([np.cos(el) * np.sin(az), -np.cos(el) * np.cos(az), np.sin(el)], 1)
    pos = target + dist[:, None] * to_cam
    fwd = -to_cam
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    down = np.cross(fwd, right)
    roll = np.radians(rng.uniform(-4, 4, b))[:, None]
    right, down = np.cos(roll) * right + np.sin(roll) * down, -np.sin(roll) * right + np.cos(roll) * down
    # aim a little off the performer so they are not always in the image centre
    rot = np.stack([right, down, fwd], 1)
    aim = rng.uniform(-0.25, 0.25, (b, 2)) * np.array([np.tan(hfov / 2), np.tan(hfov / 2) * IMAGE[1] / IMAGE[0]]).T
    turn = _small_rotation(aim)
    return turn @ rot, pos, focal


def _frame_the_action(cam: np.ndarray, focal: np.ndarray, near: float = 1.0) -> np.ndarray:
    """How far (B,) each camera steps back along its axis so that in every frame of (B, T, 17, 3) camera-frame
    joints the pelvis projects inside the image and no joint is nearer than ``near`` metres. A run or a jump can
    carry the performer past a camera drawn 2 m from where the sequence ends (about 1 % of sequences): the pelvis
    lands off the image, or behind the lens, where no detector sees it, and one such sequence's features (the
    pelvis at 24 focal lengths) skewed a whole batch's normalisation in training."""
    pelvis = cam[:, :, [_LH, _RH]].mean(2)  # (B, T, 3)
    half = np.array(IMAGE, dtype=np.float64) / 2 / focal[:, None]  # (B, 2) image half-size over the focal length
    inside = (np.abs(pelvis[..., :2]) / half[:, None] - pelvis[..., 2:]).max(-1)  # depth still missing per frame
    front = near - cam[..., 2].min(-1)
    return np.maximum(np.maximum(inside, front).max(-1), 0.0)


def _small_rotation(aim: np.ndarray) -> np.ndarray:
    """(B, 2) tangent offsets -> (B, 3, 3) camera-frame rotations turning the optical axis by them."""
    ax, ay = np.arctan(aim[:, 0]), np.arctan(aim[:, 1])
    cy, sy, cx, sx = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay)
    ry = np.zeros((len(aim), 3, 3))
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = cy, -sy, 1, sy, cy
    rx = np.zeros((len(aim), 3, 3))
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1, cx, -sx, sx, cx
    return rx @ ry


def _detector_points(world: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hips and shoulders moved to where a 2D detector tends to put them (per sequence, random amounts)."""
    g = world.copy()
    b = len(world)
    up = g[..., [_LS, _RS], :].mean(-2) - g[..., [_LH, _RH], :].mean(-2)
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    left = g[..., _LH, :] - g[..., _RH, :]
    left -= (left * up).sum(-1, keepdims=True) * up
    left /= np.maximum(np.linalg.norm(left, axis=-1, keepdims=True), 1e-6)
    on = rng.random(b) < 0.7
    out, down, sh_up = (rng.uniform(0, m, b) * on for m in (0.04, 0.06, 0.03))
    out, down, sh_up = out[:, None, None], down[:, None, None], sh_up[:, None, None]
    g[..., _LH, :] += (out * left - down * up)
    g[..., _RH, :] += (-out * left - down * up)
    g[..., _LS, :] += (sh_up * up)
    g[..., _RS, :] += (sh_up * up)
    return g


def _corrupt(px: np.ndarray, rng: np.random.Generator, fps: np.ndarray | None = None, hold: str = "frozen"
             ) -> tuple[np.ndarray, np.ndarray]:
    """Detector noise, outliers, swaps and held keypoints on (B, T, 17, 2) pixels -> pixels, scores; ``fps`` (B,):
    the sequences' frame rates (``hold="server"`` only)."""
    b, t = px.shape[:2]
    sigma = rng.uniform(0, 5, b) * (rng.random(b) > 0.15)
    out = px + rng.normal(size=px.shape) * sigma[:, None, None, None]
    scores = np.clip(rng.uniform(0.55, 1.0, (b, 1, 17)) + rng.normal(0, 0.05, (b, t, 17)), 0.3, 1.0)
    # outliers
    hit = rng.random((b, t, 17)) < 0.01 * (sigma[:, None, None] > 0)
    jump = rng.normal(size=(b, t, 17, 2))
    jump *= (rng.uniform(20, 80, (b, t, 17)) / np.linalg.norm(jump, axis=-1))[..., None]
    out[hit] += jump[hit]
    confident = rng.random((b, t, 17)) < 0.33
    scores[hit] = np.where(confident[hit], rng.uniform(0.5, 0.9, hit.sum()), rng.uniform(0.0, 0.3, hit.sum()))
    # brief left/right swaps
    for i in np.flatnonzero(rng.random(b) < 0.3):
        f0 = rng.integers(0, t)
        a, c = _SWAP_PAIRS[rng.integers(len(_SWAP_PAIRS))]
        sl = slice(f0, f0 + rng.integers(1, 4))
        out[i, sl, [a, c]] = out[i, sl, [c, a]]
        scores[i, sl, [a, c]] = rng.uniform(0.3, 0.7)
    # missing keypoints, held
    for i in np.flatnonzero(rng.random(b) < 0.5):
        for _ in range(rng.integers(1, 4)):
            k = rng.integers(0, 17)
            f0 = rng.integers(1, t)
            sl = slice(f0, f0 + rng.integers(1, 16))
            scores[i, sl, k] = rng.uniform(0.0, 0.3)
            if hold == "server":  # (views: out[i, sl, k] and scores[i, sl, k] are changed in place)
                _hold_as_the_server(out[i, sl, k], scores[i, sl, k], out[i, :f0, k], scores[i, f0 - 1, k],
                                    float(fps[i]))
            else:
                out[i, sl, k] = out[i, f0 - 1, k]
    return out, scores


def _hold_as_the_server(seg: np.ndarray, seg_scores: np.ndarray, before: np.ndarray, last_score: float, fps: float
                        ) -> None:
    """A dropped keypoint's frames (``seg`` (n, 2), ``seg_scores`` (n,), in place) as ``filters.KeypointFilter``
    holds them: predicted on from its last position ``before[-1]`` with the velocity of the frames ``before`` it
    (their last 4), decaying with time constant HOLD_S / 3, and ``last_score`` for HOLD_S; after that frozen where the
    prediction stopped, with the low scores already drawn."""
    last = before[-1]
    j0 = max(len(before) - 5, 0)
    v = (before[-1] - before[j0]) / max(len(before) - 1 - j0, 1)
    tau = HOLD_S / 3.0 * fps
    elapsed = np.arange(1, len(seg) + 1)
    within = elapsed <= HOLD_S * fps
    pred = last + v * (tau * (1.0 - np.exp(-elapsed / tau)))[:, None]
    seg[:] = np.where(within[:, None], pred, pred[within][-1] if within.any() else last)
    seg_scores[:] = np.where(within, last_score, seg_scores)


def sample_batch(bank: ClipBank, batch: int, frames: int, rng: np.random.Generator, proportions: float = 0.8,
                 framing: bool = True, hold: str = "frozen", contact_lead: float = 0.0, hips: float = 0.0,
                 hips_rng: np.random.Generator | None = None) -> Batch:
    """``batch`` sequences of ``frames`` frames (see the module docstring); ``proportions``: the share of sequences
    with other proportions; ``framing=False`` leaves the cameras where they were drawn (as before 2026-12-05);
    ``hold``: how dropped keypoints are held ("frozen" or "server", ``_corrupt``); ``contact_lead``: the contact
    labels taken this many video frames later (the shipped network's probabilities lag the labels by a frame);
    ``hips``: the share of sequences whose hip joints sit elsewhere (``_hip_placement``, drawn from ``hips_rng`` so
    that every other draw of the batch stays what it is without it)."""
    if hold not in ("frozen", "server"):
        raise ValueError(f"hold must be 'frozen' or 'server', got {hold!r}")
    clip = rng.choice(len(bank.length), batch, p=bank.weight)
    fps = rng.uniform(24, 60, batch)
    step = bank.fps[clip] / fps  # mocap frames per video frame
    end = rng.uniform(0, bank.length[clip] - 1)
    # some sequences start at the clip's first frame: the history is the first frame repeated
    end = np.where(rng.random(batch) < 0.05, rng.uniform(0, frames, batch) * step, end)
    idx = end[:, None] - step[:, None] * np.arange(frames - 1, -1, -1)[None]
    idx = np.clip(idx, 0, (bank.length[clip] - 1)[:, None])
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, (bank.length[clip] - 1)[:, None])
    w = (idx - lo)[..., None, None].astype(np.float32)
    base = bank.start[clip][:, None]
    world = (1 - w) * bank.joints[base + lo] + w * bank.joints[base + hi]  # (B, T, 17, 3)
    ahead = np.minimum(idx + contact_lead * step[:, None], (bank.length[clip] - 1)[:, None])
    contacts = bank.contacts[base + np.rint(ahead).astype(int)]
    world = _proportions(world, rng, proportions)
    if hips > 0:
        world = _hip_placement(world, hips_rng if hips_rng is not None else rng, hips)
    size = rng.uniform(0.85, 1.15, batch)
    pelvis0 = world[:, -1, [_LH, _RH]].mean(1)
    world = (world - pelvis0[:, None, None] * np.array([1, 1, 0])) * size[:, None, None, None]
    mirror = rng.random(batch) < 0.5
    world[mirror, ..., 0] *= -1
    world[mirror] = world[mirror][:, :, FLIP]
    contacts[mirror] = contacts[mirror][:, :, ::-1]
    target = np.concatenate([np.zeros((batch, 2)), world[:, -1, [_LH, _RH], 2].mean(1, keepdims=True)], 1)
    target[:, 2] += rng.uniform(-0.3, 0.3, batch)
    rot, pos, focal = _cameras(rng, target)
    cam = np.einsum("bij,btkj->btki", rot, world - pos[:, None, None])
    det = np.einsum("bij,btkj->btki", rot, _detector_points(world, rng) - pos[:, None, None])
    if framing:
        back = _frame_the_action(cam, focal)
        cam[..., 2] += back[:, None, None]
        det[..., 2] += back[:, None, None]
    z = np.maximum(det[..., 2:3], 0.1)
    centre = np.array(IMAGE, dtype=np.float64) / 2
    px = focal[:, None, None, None] * det[..., :2] / z + centre
    px, scores = _corrupt(px, rng, fps, hold)
    prev = np.concatenate([px[:, :1], px[:, :-1]], 1)
    feats = frame_features(px, scores, prev, centre, focal[:, None])
    pelvis_cam = cam[..., [_LH, _RH], :].mean(-2, keepdims=True)
    body = bank.size[clip] * size  # back to a 1.75 m body
    rel = (cam - pelvis_cam) / body[:, None, None, None]
    return Batch(feats, rel.astype(np.float32), contacts.astype(np.float32))
