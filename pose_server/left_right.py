"""A detector's left/right exchange of a whole upper or lower body, undone per track before the 2D filter.

2D detectors sometimes label a person who faces the camera as facing away for a few frames: every left and right
label of the upper body, or of the whole body, exchanged (BlazePose on the demo clip, frames 19-20 and 68-71 of the
man on the roof). From those frames alone the lifter must turn the body round, and the armature spins half round
and back. A body cannot turn half round within a frame, so where a group's labels, exchanged, fit the track's last
frame far better than as given, they are exchanged back. "Last frame": the group's last frame that clearly showed
which way it faced, at most two frames ago, because the detector flips through a frame where the torso collapses to
a line (seen side on), against which either labelling fits. Two groups (the upper body with the head, face and hands;
the hips and legs with the feet), because the upper body often flips a frame before the legs; hips that face against
the upper body as put back are exchanged back with it (a body cannot face two ways). Only where the group
moved far as labelled (in a side view left and right nearly coincide and never trigger it); only towards the way the
body has faced over the last second (which side of the spine its left shoulder, or hip, was on: a flip the guard
missed must not make it "correct" the detector's return to the right labels); and for at most ``max_hold_s``: a
detector that keeps the other labels longer is believed from then on. A group the detector collapses for a frame
(its left and right pulled onto the spine's line) is held instead: where the detector was sure of the group in
that frame and the one before, its points of the frame before stand in; otherwise they get score 0 for that frame.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

import numpy as np

from .skeleton import Skeleton, get_skeleton

__all__ = ["LeftRightGuard", "guard_for", "guard_track"]

RATIO = 0.25  # exchanged back when the exchanged labels' cost is under a quarter of the given ones'
MIN_MOVE = 0.15  # ... the given labels moved more than this x the spine's length (RMS over the group's points)
MAX_HOLD_S = 0.5  # ... for at most this long
# Compared with the group's last frame of clear facing, at most this old: the detector's flips pass through one
# collapsed frame. A real turn of 720 deg/s moves 48 deg in two frames at 30 fps, too little for its exchanged labels
# to fit four times better (the tests); at 1080 deg/s a few frames are taken for a flip.
CLEAR_S = 0.07
FACING_S = 1.0  # the body's facing: the median over this long of the guarded frames' ...
MIN_FACING = 0.2  # ... left-right distance across the spine over the spine's length, at least this far from 0
# A group whose facing falls from at least COLLAPSE_FROM to under COLLAPSE_TO times that within one frame (COLLAPSE_S)
# turned at least 28 deg in it (840 deg/s at 30 fps; frontal facing is about 0.75): the detector pulled its left and
# right towards the spine's line (demo frames 15 and 18 onto it, 34 and 67 most of the way). Where the group's mean
# score is at least SURE in that frame and the frame before, a confident detector's one-frame glitch, the frame
# before's points (as passed on) stand in: given score 0, the 2D filter predicts them from its lagging filtered
# points, and the demo man's arms turned 50-60 deg at the next frame. Where it is less sure (the man getting up from
# all fours after his jump: group means 0.4-0.8), the collapse may be real fast motion that a repeated frame would
# stop: score 0, and the filter's prediction carries the motion on. SURE is read off the demo's detections alone.
COLLAPSE_FROM, COLLAPSE_TO, COLLAPSE_S = 0.5, 0.35, 0.04
SURE = 0.9
# A body cannot face two ways: hips facing at least TWIST_HIPS against an upper body facing at least TWIST_UPPER
# (frontal: about 0.45 and 0.75) are turned 58 deg or more against it, beyond the spine's twist. The lower group is then
# exchanged back even without a recent clear frame of its own (the detector's hips lose their facing a frame or two
# before the legs flip: demo frames 18-20).
TWIST_UPPER, TWIST_HIPS = 0.4, 0.2
_LOWER = ("hip", "knee", "ankle", "toe", "heel", "foot", "back_paw")


class LeftRightGuard:
    """Per-track guard against a detector's left/right exchange of the upper or the lower body (module doc)."""

    def __init__(self, skeleton: Skeleton, min_score: float = 0.3, ratio: float = RATIO, min_move: float = MIN_MOVE,
                 max_hold_s: float = MAX_HOLD_S) -> None:
        names = skeleton.keypoints
        ends = [f"{side}_{part}" for part in ("shoulder", "hip") for side in ("left", "right")]
        if not all(n in names for n in ends):
            raise ValueError(f"{skeleton.name}: the left/right guard needs both shoulders and hips")
        self.ls, self.rs, self.lh, self.rh = (names.index(n) for n in ends)
        upper: list[tuple[int, int]] = []
        lower: list[tuple[int, int]] = []
        for a, b in skeleton.flip_pairs:
            (lower if any(w in names[a] for w in _LOWER) else upper).append((a, b))
        # per group: its pairs (2, n: left row, right row), the permutation exchanging them, the pair telling its facing
        self.groups = [(np.array(g, dtype=int).T, skeleton.flip_indices(g), side)
                       for g, side in ((upper, (self.ls, self.rs)), (lower, (self.lh, self.rh))) if g]
        self.min_score, self.ratio, self.min_move, self.max_hold_s = min_score, ratio, min_move, max_hold_s
        self.exchanged_frames = 0  # frames where any group was exchanged back (logs, tests)
        self.held_frames = 0  # frames where a collapsed group was held
        self.reset()

    def reset(self) -> None:
        """Forget the track's past (a new track, or one found again)."""
        # per group: its last frame of clear facing (keypoints, scores, time, spine length), the start of its
        # current run of exchanged frames, its facing over the last FACING_S
        self._ref: list[tuple[np.ndarray, np.ndarray, float, float] | None] = [None] * len(self.groups)
        self._since: list[float | None] = [None] * len(self.groups)
        self._facing: list[deque[tuple[float, float]]] = [deque() for _ in self.groups]
        self._last: list[tuple[float, float] | None] = [None] * len(self.groups)  # the frame before: (time, facing)
        self._passed: tuple[np.ndarray, np.ndarray] | None = None  # the frame before's points and scores, as passed on

    def __call__(self, keypoints: np.ndarray, scores: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The keypoints and scores with any exchanged group put back, and a collapsed group held (module doc)."""
        k = np.array(keypoints, dtype=np.float64)  # copies: kept as a later frame's reference
        s = np.array(scores, dtype=np.float64)
        t = float(t)
        spine = self._spine(k, s)  # (up x, up y, length) or None where the torso is not seen
        changed = False
        upper = None  # the upper group's facing as finally labelled (the groups come upper first)
        for g, (pairs, perm, (a, b)) in enumerate(self.groups):
            # which way the group faces as labelled (exchanging it turns the sign)
            facing = None if spine is None else _cross(spine, k[a] - k[b]) / spine[2] ** 2
            ref = self._ref[g] if self._ref[g] is not None and t - self._ref[g][2] <= CLEAR_S else None
            back = self._exchanged(k, s, ref, pairs) if ref is not None else None
            if (not back and g > 0 and upper is not None and facing is not None and abs(upper) >= TWIST_UPPER
                    and upper * facing <= -TWIST_HIPS * abs(upper)):
                back = True  # hips facing against the upper body: a body cannot face two ways
            if back is None and self._since[g] is not None:
                back = True  # undecided (few points, or hardly moved) inside a run: detectors keep a flip a while
            if back and not (facing is not None and self._usual(g, t) * -facing > 0.0):
                back = False  # only towards the way the body has faced
            if back and (self._since[g] is None or t - self._since[g] <= self.max_hold_s):
                self._since[g] = t if self._since[g] is None else self._since[g]
                k, s, facing = k[perm], s[perm], -facing
                changed = True
            else:
                self._since[g] = None
            upper = facing if g == 0 else upper
            last, self._last[g] = self._last[g], (None if facing is None else (t, facing))
            if (facing is not None and last is not None and t - last[0] <= COLLAPSE_S
                    and abs(last[1]) >= COLLAPSE_FROM and abs(facing) < COLLAPSE_TO * abs(last[1])):
                idx = pairs.ravel()  # collapsed (k and s are this call's own copies)
                if self._passed is not None and min(s[idx].mean(), self._passed[1][idx].mean()) >= SURE:
                    k[idx] = self._passed[0][idx]
                else:
                    s[idx] = 0.0  # held by the filter's prediction this frame
                self.held_frames += 1
                continue  # not a frame to compare later ones with, nor a facing to remember
            self._remember(g, k, s, t, facing, spine)
        self.exchanged_frames += changed
        self._passed = (k, s)  # this call's own arrays, not written once returned (kept as _ref keeps them)
        return k, s

    def _exchanged(self, k: np.ndarray, s: np.ndarray, ref: tuple[np.ndarray, np.ndarray, float, float],
                   pairs: np.ndarray) -> bool | None:
        """True: the group's labels fit ``ref`` far better exchanged; False: as given; None: cannot tell (too few
        points scored in both frames, or the group hardly moved as labelled)."""
        rk, rs, _, spine = ref
        left, right = pairs
        ok = ((np.minimum(np.minimum(s[left], s[right]), np.minimum(rs[left], rs[right])) >= self.min_score)
              & np.isfinite(k[left]).all(1) & np.isfinite(k[right]).all(1))
        if ok.sum() < 2:
            return None
        left, right = left[ok], right[ok]
        given = float(((k[left] - rk[left]) ** 2).sum() + ((k[right] - rk[right]) ** 2).sum())
        if given <= 2 * len(left) * (self.min_move * spine) ** 2:  # RMS over the points: hardly moved
            return None
        swapped = float(((k[right] - rk[left]) ** 2).sum() + ((k[left] - rk[right]) ** 2).sum())
        return swapped < self.ratio * given

    def _usual(self, g: int, t: float) -> float:
        """The group's facing over the last FACING_S (median), 0 where it was not clear or seen too little."""
        past = [f for seen, f in self._facing[g] if t - seen <= FACING_S]
        if len(past) < 3:
            return 0.0
        usual = statistics.median(past)
        return usual if abs(usual) >= MIN_FACING else 0.0

    def _remember(self, g: int, k: np.ndarray, s: np.ndarray, t: float, facing: float | None,
                  spine: tuple[float, float, float] | None) -> None:
        history = self._facing[g]
        if facing is not None:
            history.append((t, facing))
            if abs(facing) >= MIN_FACING:
                self._ref[g] = (k, s, t, spine[2])
        while history and t - history[0][0] > FACING_S:
            history.popleft()

    def _spine(self, k: np.ndarray, s: np.ndarray) -> tuple[float, float, float] | None:
        """Mid-hips to mid-shoulders (x, y, length) in pixels, or None where the torso is not seen."""
        torso = [self.ls, self.rs, self.lh, self.rh]
        if min(s[torso].tolist()) < self.min_score:
            return None
        ux, uy = (0.5 * (k[self.ls] + k[self.rs] - k[self.lh] - k[self.rh])).tolist()
        length = math.hypot(ux, uy)
        return (ux, uy, length) if length > 1.0 else None  # NaN fails the comparison too


def guard_for(skeleton: str | int, min_score: float = 0.3) -> LeftRightGuard | None:
    """A guard for a person's keypoint layout, by name or count ("coco17", 133, ...); None for an animal's (its
    facing is not a person's) or a layout without shoulders and hips."""
    try:
        layout = get_skeleton(skeleton)
        return None if layout.animal else LeftRightGuard(layout, min_score)
    except ValueError:
        return None


def guard_track(keypoints: np.ndarray, scores: np.ndarray, fps: float, min_score: float = 0.3,
                skeleton: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A whole track (T, K, 2) / (T, K) through one guard, frame by frame, as the live server guards it (convert);
    ``skeleton``: the layout's name (None: known by the keypoint count)."""
    guard = guard_for(skeleton or keypoints.shape[1], min_score)
    if guard is None:
        return keypoints, scores
    out_k, out_s = np.array(keypoints, dtype=np.float64), np.array(scores, dtype=np.float64)
    for i in range(len(out_k)):
        out_k[i], out_s[i] = guard(out_k[i], out_s[i], i / fps)
    return out_k, out_s


def _cross(spine: tuple[float, float, float], d: np.ndarray) -> float:
    """How far ``d`` points across the spine (signed: to the body's left or right as the image shows it)."""
    dx, dy = d.tolist()
    return spine[0] * dy - spine[1] * dx
