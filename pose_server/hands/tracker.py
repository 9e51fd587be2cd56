"""Per-person hand tracking for the server: both hands of one track, fitted each frame (fit.py), smoothed
causally, held when their keypoints are unsure and then relaxed to a neutral hand; output as the
protocol v4 ``hands`` field (docs/protocol.md, "Hands").

Output per hand, 16 unit quaternions [w, x, y, z]: the palm's rotation from its canonical rest (T-pose,
palm down, fingers along the arm) in the packet's world frame, then the 15 finger bones' pose rotations
under their rest frames (model.py; right-hand rotations in the right hand's own mirrored convention).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from pose_server.filters import KeypointFilter
from pose_server.ik import forward_rotations, quaternions
from pose_server.lift.skeleton3d import CANONICAL_BONES, REST_ROTATIONS

from .fit import HandFit, HandFitter
from .model import HAND_KEYPOINTS, LEFT_HAND_START, NEUTRAL, NUM_ANGLES, RIGHT_HAND_START, local_rotations, mirrored

SIDES = ("L", "R")
# Canonical rest frames of the palm bones in the world frame (columns: local X, Y = wrist to knuckles, Z =
# palm side): T-pose, palms down, so Z is world -Z; the right hand mirrors the left through the X = 0 plane.
REST_FRAMES = {"L": np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]).T,
               "R": np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]).T}
MIN_POINTS = 12  # confident keypoints (of 21) needed to fit a hand
MAX_RMS = 0.15  # a fit whose reprojection error exceeds this fraction of the hand's size is not trusted
HOLD_S = 0.3  # a hand that is lost keeps its last pose this long ...
RELAX_S = 1.0  # ... and then relaxes to the neutral hand over this long
RETRY_S = 0.2  # a lost hand is searched for (a cold start: 18 orientations) at most this often ...
RETRY_MAX_S = 1.6  # ... the wait doubling after each cold start that failed, up to this (a hand whose points
# are confident but scattered cost 1.7 s of CPU per second of video, retried from scratch every 0.2 s)
OTHER_WRIST = 0.5  # a hand whose root is nearer the other arm's wrist than this share of the distance to its own
# is the model's left/right swap (crossed hands, a performer seen from behind): not this hand
BODY_WRISTS = {"L": (9, 10), "R": (10, 9)}  # (own, other) wrist of the 133 keypoints' body


def world_from_camera(pitch_deg: float) -> np.ndarray:
    """The lifter's world frame (docs/lifting.md: Z up, Y = the camera's horizontal viewing direction) from
    camera coordinates, for a camera pitched down by ``pitch_deg`` with no roll: world = W @ camera."""
    p = np.radians(pitch_deg)
    up = np.array([0.0, -np.cos(p), -np.sin(p)])
    fwd = np.array([0.0, 0.0, 1.0]) - up[2] * up
    fwd /= np.linalg.norm(fwd)
    return np.stack([np.cross(fwd, up), fwd, up])


def forearm_deltas(rotations: np.ndarray) -> dict[str, np.ndarray]:
    """World deltas (rotation from the canonical rest) of both forearms from protocol v2 body rotations."""
    world = forward_rotations(rotations)
    out = {}
    for side in SIDES:
        i = CANONICAL_BONES.index(f"forearm.{side}")
        out[side] = world[i] @ REST_ROTATIONS[f"forearm.{side}"].T
    return out


def hand_quaternions(side: str, world_rotation: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(16, 4) protocol quaternions of one hand from its palm's world orientation and its finger angles."""
    palm = world_rotation @ REST_FRAMES[side].T
    fingers = mirrored(side, local_rotations(angles))
    return quaternions(np.concatenate([palm[None], fingers]))


class _Hand:
    """One hand of one track: the latest fit and the smoothed, held or relaxing output."""

    def __init__(self, side: str, fitter: HandFitter, min_cutoff: float, beta: float) -> None:
        self.side = side
        self.fitter = fitter
        self.angle_filter = KeypointFilter(NUM_ANGLES, 1, min_cutoff=min_cutoff, beta=beta, min_score=0.0)
        self.rot_filter = KeypointFilter(1, 4, min_cutoff=min_cutoff, beta=beta, min_score=0.0)
        self.fit: HandFit | None = None
        self.angles: np.ndarray | None = None  # smoothed output
        self.world: np.ndarray | None = None  # smoothed palm orientation, world frame
        self.t_seen = -np.inf
        self.t_tried = -np.inf
        self.retry_s = RETRY_S
        self._held: tuple[np.ndarray, np.ndarray] | None = None  # (angles, palm) when the hand was lost

    def update(self, pts: np.ndarray, scores: np.ndarray, t: float, threshold: float, cam_to_world: np.ndarray,
               neutral_palm: np.ndarray | None) -> np.ndarray | None:
        ok = (scores >= threshold) & np.isfinite(pts).all(axis=1)
        fit = None
        if ok.sum() >= MIN_POINTS and ok[0] and (self.fit is not None or t - self.t_tried >= self.retry_s):
            cold = self.fit is None
            self.t_tried = t
            fit = self.fitter.fit(np.where(ok[:, None], pts, 0.0), np.where(ok, scores, 0.0), self.fit)
            size = max(float(np.linalg.norm(pts[9] - pts[0])), 1.0)
            if fit.rms_px > MAX_RMS * size:
                fit = None
            self.retry_s = RETRY_S if fit is not None else min(2 * self.retry_s, RETRY_MAX_S) if cold else RETRY_S
        if fit is not None:
            if self.fit is None and self.angles is not None:  # found again: glide from the pose shown meanwhile
                self.angle_filter.reset()
                self.rot_filter.reset()
                self._smooth(self.angles, self.world, t - 1.0 / 30.0)
            self.fit, self.t_seen = fit, t
            self._smooth(fit.angles, cam_to_world @ fit.rotation, t)
        elif self.angles is None:
            return None
        else:
            if self.fit is not None:  # just lost: the pose it relaxes from
                self._held = (self.angles.copy(), self.world.copy())
            self.fit = None  # the next confident frame starts cold: the hand may have turned meanwhile
            relax = float(np.clip((t - self.t_seen - HOLD_S) / RELAX_S, 0.0, 1.0))
            angles, world = self._held
            self.angles = angles + relax * (NEUTRAL - angles)
            if neutral_palm is not None:
                turn = Rotation.from_matrix(world.T @ neutral_palm).as_rotvec()
                self.world = world @ Rotation.from_rotvec(relax * turn).as_matrix()
        return hand_quaternions(self.side, self.world, self.angles)

    def _smooth(self, angles: np.ndarray, world: np.ndarray, t: float) -> None:
        self.angles = self.angle_filter(angles[:, None], np.ones(NUM_ANGLES), t)[0][:, 0].astype(np.float64)
        q = quaternions(world)
        if self.world is not None and q @ quaternions(self.world) < 0:
            q = -q  # stay on the filter's hemisphere
        q = self.rot_filter(q[None], np.ones(1), t)[0][0].astype(np.float64)
        self.world = Rotation.from_quat(np.r_[q[1:], q[0]]).as_matrix()


class HandTracker:
    """Both hands of one tracked person from its 133 whole-body keypoints."""

    def __init__(self, focal: float, center: np.ndarray, height_m: float = 1.75, pitch_deg: float = 0.0,
                 min_cutoff: float = 1.5, beta: float = 0.3) -> None:
        scale = height_m / 1.75  # the canonical hand belongs to a 1.75 m adult
        self.cam_to_world = world_from_camera(pitch_deg)
        self.hands = {s: _Hand(s, HandFitter(s, focal, center, scale), min_cutoff, beta) for s in SIDES}

    def __call__(self, keypoints: np.ndarray, scores: np.ndarray, t: float, threshold: float = 0.3,
                 forearms: dict[str, np.ndarray] | None = None) -> list[np.ndarray | None]:
        """[left, right]: (16, 4) quaternions or None (never seen yet). ``forearms``: world deltas (3x3) of
        the forearms ("L", "R") a lost hand relaxes to (a straight wrist); without them it keeps its turn."""
        kp = np.asarray(keypoints, dtype=np.float64)
        sc = np.asarray(scores, dtype=np.float64)
        if kp.shape != (133, 2) or sc.shape != (133,):
            raise ValueError(f"hands need the 133 COCO-WholeBody keypoints, got {kp.shape} and {sc.shape}")
        out = []
        for side, start in (("L", LEFT_HAND_START), ("R", RIGHT_HAND_START)):
            sl = slice(start, start + HAND_KEYPOINTS)
            neutral = None if not forearms or side not in forearms else forearms[side] @ REST_FRAMES[side]
            hand_scores = sc[sl] if not _at_other_wrist(kp, sc, side, start, threshold) else np.zeros(HAND_KEYPOINTS)
            out.append(self.hands[side].update(kp[sl], hand_scores, float(t), threshold, self.cam_to_world, neutral))
        return out


def _at_other_wrist(kp: np.ndarray, sc: np.ndarray, side: str, start: int, threshold: float) -> bool:
    """The hand's root sits clearly nearer the body's other wrist than its own: a swapped label. A mirrored right
    hand fits the left hand's model to about a pixel, so the fit's error cannot tell."""
    own, other = BODY_WRISTS[side]
    if min(sc[start], sc[own], sc[other]) < threshold:
        return False
    d_own, d_other = (float(np.linalg.norm(kp[start] - kp[j])) for j in (own, other))
    return d_other < OTHER_WRIST * d_own
