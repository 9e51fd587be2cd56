"""The default lifter: the temporal network (``temporal.py``) for the body, the geometry for where it is.

Per frame: the network (averaged with its answer to the mirror image) gives the pelvis-relative 3D joints (camera
axes, sized by its legs: scaled so its vertical chain is the performer's height's, which one camera cannot measure)
and each foot's contact probability; the whole body is turned about its pelvis by the small rotation that best fits
the keypoints (``turn_fit``), then elbows, wrists, knees and ankles are moved half way along their pixel rays to where
their bones have the performer's lengths (``bone_fit``); the pose is One Euro filtered, the filter opened as far as the
noise measured in the pose allows (``POSE_FILTER``), and every bone given its length. The geometry then places the
body:

1. root: the pelvis position that makes the 3D joints project onto the 2D keypoints (linear least squares, weighted by
   the scores), its depth followed at most MAX_ROOT_SPEED and never farther than the bones' image lengths allow
   (DEPTH_CAP), One Euro smoothed (depth more than the image-plane axes);
2. world: the camera's pitch (a setting, level by default; ``camera_pitch_deg=None``: estimated from the
   performers' upright bodies over their first seconds, ``SharedWorld.observe_pitch``) turns camera axes into the
   packet's world (Z up, Y = the camera's horizontal viewing direction), the origin shared by every track of the
   session (``world.py``: on the floor under the first performer's first pelvis); each track's floor is the median
   height of its feet in the frames the network calls them planted (a person on a roof has the roof as floor, at
   its height in the shared frame);
3. planted feet: while a foot's contact probability is above 0.5 (hysteresis 0.4-0.6), its ankle is pinned where it
   was planted by moving the root path horizontally and vertically onto the floor; the path so follows the planted
   feet (no foot skating in the packet) and keeps the offset when the foot lifts.

Missing torso: the last pose is held for ``hold_s``, then None and the network's history is dropped.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from pathlib import Path

import numpy as np

from pose_server.filters import KeypointFilter, smoothing_factor
from pose_server.lift.blas import blas_threads
from pose_server.lift.camera import DEFAULT_HFOV_DEG, lifter_camera
from pose_server.lift.proportions import LIMBS, REST_LENGTHS, Proportions, measure_lengths, vertical_chain
from pose_server.lift.rotation import axis_angle
from pose_server.lift.skeleton3d import REST_HEIGHT, REST_JOINTS, J
from pose_server.lift.smoothing import rigid
from pose_server.lift.temporal import DEFAULT_TEMPORAL_LIFTER, frame_features, load_model
from pose_server.lift.world import SharedWorld

__all__ = ["LearnedLifter"]

_LH, _RH, _LS, _RS = J["l_hip"], J["r_hip"], J["l_shoulder"], J["r_shoulder"]
_ANKLES = (J["l_ankle"], J["r_ankle"])
# The planted-foot lock moves the root across the view (X) and vertically always, in depth (Y) only while the root
# is not travelling in depth: one camera sees where a foot is across the view relative to the pelvis, but hardly in
# depth, and from the front the network puts a planted foot nearly under the pelvis; locking the depth always froze a
# performer walking at the camera (0.5 m lifted of 5.5 m walked). Standing or stepping in place, the depth lock
# still holds the root's depth noise off the feet. Full lock below DEPTH_GATE[0] m/s of depth speed, none above
# DEPTH_GATE[1]; the add-on pins planted feet on the armature from the packet's contacts in every direction.
DEPTH_GATE = (0.15, 0.4)
# A track's first answers come from a network history filled with one frame, often of a person half in view or
# mid-action: in the demo clip the man found again crouching after his jump was lifted 15 m away for 3 frames
# (6.5 m after 5), and his floor, the median of those frames' feet, sat 1.7 m below the woman's until 20 frames
# later. The floor heights of a track's first WARMUP_S are only used until later ones replace them. (Raising the
# root filters' cutoffs 4x over the same time as well cost 2.2 mm/s of root path on the validation subjects.)
WARMUP_S = 0.5
# Nobody moves faster than a sprinter: the root depth a frame's keypoints ask for is followed at most this fast (m/s).
# The keypoints of a body half found or tumbling can ask for metres in a frame (the demo's man landing from the roof
# on all fours: 3 m between two frames, 6.5 -> 9.8 m away), and the One Euro filter, which opens when the signal moves
# fast, lets it through. A physical bound, not a tuned one: no benchmark clip moves its pelvis faster than 5 m/s.
MAX_ROOT_SPEED = 10.0
# The pose filter (One Euro on the pelvis-relative pose: min_cutoff Hz, beta per m/s, d_cutoff Hz) at 3 px of detector
# noise and more, and how far it opens on cleaner input (_open_filters). Its lag cost MPJPE at every noise level:
# with no filter at all the validation subjects are lifted at 39.3 / 44.1 mm (0 / 3 px) against 45.4 / 49.5 with the
# fixed 3 Hz / 1 / 1 Hz filter shipped before 2026-12-06, but at 2.3x the mocap's jitter at 3 px. 1.5 Hz / 3 / 3 Hz
# (a faster speed estimate, opening sooner) leaves the same jitter at 3 px for 1.2 mm less; the reference noise
# (0.015 m per frame^3; the jerk reads 0.005 at 0 px, 0.009 at 1 px, 0.014 at 2 px, 0.019 at 3 px, 0.029 at 5 px on
# the validation subjects) keeps 3 px and more where they were and opens the filter up to 30x below that.
POSE_FILTER = (1.5, 3.0, 3.0)
POSE_NOISE_REF = 0.015
POSE_OPEN_MAX = 30.0
# A bone of length L whose image is l pixels long is at most f L / l from the camera (as long as it is when it lies
# across the view): the root depth is capped by the second tightest such bound over the thighs, shins, upper arms and
# spine (one keypoint off by a throw cannot pull the body in), times DEPTH_CAP for the performer's lengths being the
# network's median ones. In the demo clip the man found again on all fours after his jump is lifted 13-15 m away and
# glides in at the 10 m/s bound for 20 frames; once his limbs unfold in the image they rule that out (the session's
# keypoints replayed: 8.3 m by his 10th frame against 11.9; live, on raw keypoints, the cap binds on fewer frames and
# he comes in 2-3 frames sooner). Normal tracks sit at 0.7-0.85 of the cap. At a margin of 1.1 it bound on the
# validation subjects' clips too (root path +1.0 mm/s, the pin's cost +0.9 mm: the network's limbs are a little
# short); at 1.3 no frame of theirs or of the 131 walks moves.
DEPTH_CAP = 1.3
DEPTH_CAP_BONES = [(_LH, J["l_knee"]), (_RH, J["r_knee"]), (J["l_knee"], _ANKLES[0]), (J["r_knee"], _ANKLES[1]),
                   (_LS, J["l_elbow"]), (_RS, J["r_elbow"])]
# The limb and turn fits smooth the pixels they fit to (min_cutoff Hz, beta per pixel/s) and the limb fit's correction
# (min_cutoff Hz): a fit to raw pixels passes their noise on as depth jitter. On clean input they open with the pose
# filter: validation 40.4 -> 38.7 mm at 0 px (2026-12-06), 2-5 px unchanged.
FIT_PX_FILTER = (1.0, 0.05)
FIT_FILTER = 1.0
_LIMB_UPPER = [(a, b) for a, b, _, _ in LIMBS]
_LIMB_LOWER = [(b, c) for _, b, c, _ in LIMBS]
_REST_CHAIN = vertical_chain(REST_LENGTHS)  # the 1.75 m rest skeleton's spine + neck + leg
_EYE3, _EYE6_TINY = np.eye(3), np.eye(6) * 1e-9


def _rotation(v: np.ndarray) -> np.ndarray:
    """The rotation matrix of an axis x angle vector (``axis_angle``; the identity for a null one)."""
    angle = math.sqrt(float(v @ v))
    return np.eye(3) if angle < 1e-9 else axis_angle(v, angle)


def _dot(a: list[float], b: list[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


class LearnedLifter:
    """Monocular COCO-17 lifting with the temporal network: (17,2) pixels + (17,) scores + t -> (17,3) world metres
    or None; ``contacts`` holds the last frame's (left, right) foot contact probabilities."""

    wants_raw = True  # give it raw detections (missing points held), not One Euro filtered ones (track_signal.py)

    def __init__(
        self,
        image_size: tuple[int, int],
        focal: float | None = None,
        hfov_deg: float = DEFAULT_HFOV_DEG,
        height_m: float = REST_HEIGHT,
        min_score: float = 0.3,
        camera_pitch_deg: float | None = 0.0,
        hold_s: float = 0.5,
        foot_lock: bool = True,
        model: str | Path = "default",
        root_min_cutoff: float = 0.8,
        depth_min_cutoff: float = 0.3,
        calib_frames: int = 45,
        smooth: bool = True,
        bone_fit: float = 0.5,
        world: SharedWorld | None = None,
        depth_gate: tuple[float, float] | None = DEPTH_GATE,
        mirror: bool = True,
        turn_fit: float = 1.0,
        turn_damping: float = 0.05,
        pose_filter: tuple[float, float, float] = POSE_FILTER,
        pose_noise_ref: float | None = POSE_NOISE_REF,
        depth_cap: float | None = DEPTH_CAP,
        engine: str = "onnxruntime",
        **_unused: object,
    ) -> None:
        self.image_size, self.focal, self.center = lifter_camera(image_size, focal, hfov_deg, height_m)
        self.height_m = float(height_m)
        self.min_score = float(min_score)
        self.camera_pitch_deg = camera_pitch_deg
        self.hold_s = float(hold_s)
        self.foot_lock = foot_lock
        self.depth_gate = depth_gate  # None: the foot lock moves the root in depth whatever its speed
        # the network's step: one ONNX Runtime call a frame (temporal_onnx.py says why), or "numpy"
        self.model = load_model(DEFAULT_TEMPORAL_LIFTER if model == "default" else model, mirror=mirror, engine=engine)
        self._root_params = (root_min_cutoff, depth_min_cutoff)
        self.calib_frames = int(calib_frames)
        # The network's poses jitter with the keypoints' noise and its bones breathe a little: a One Euro filter on
        # the pelvis-relative pose, opened as far as the measured noise allows (POSE_FILTER, POSE_NOISE_REF), and the
        # bones given their lengths measured over the first frames.
        self.smooth = smooth
        self.pose_filter = (float(pose_filter[0]), float(pose_filter[1]), float(pose_filter[2]))
        self.pose_noise_ref = None if pose_noise_ref is None else float(pose_noise_ref)  # None: fixed cutoffs
        # Half of the limb fit (_fit_limbs): on the validation subjects it took 2.7 mm off MPJPE (59.6 -> 56.9 at
        # 0 px, 61.9 -> 59.4 at 3 px) for 5 % more jitter; the network alone regresses limbs a little short or long.
        self.bone_fit = float(bone_fit)
        # The whole body turned about its pelvis to fit the (smoothed) pixels, one damped Gauss-Newton step a frame
        # (_fit_turn): on the validation subjects 47.2 / 51.1 -> 46.2 / 50.0 mm at 0 / 3 px, CMU 131 walks 66.8 / 68.4
        # -> 65.7 / 67.3, jitter +2 %; half of it, or a fifth or a 25th of the damping, gained less.
        self.turn_fit = float(turn_fit)
        self.turn_damping = float(turn_damping)
        self.depth_cap = None if depth_cap is None else float(depth_cap)  # the bones' depth bound's margin; None: off
        self._own_world = world is None  # alone: the origin under this performer's first pelvis
        self.world = SharedWorld() if world is None else world
        self._key = self.world.join()
        self.reset()

    @property
    def lengths(self) -> dict[str, float]:
        """The performer's bone lengths (m): the network's own, median over the first frames, scaled to the
        height."""
        return self._lengths

    def set_params(self, **params: float) -> None:
        """Live tuning: min_score (others belong to the geometric lifter and are ignored)."""
        if "min_score" in params:
            self.min_score = float(params["min_score"])

    def reset(self) -> None:
        """Forget the performer (history, floor; the origin too unless it is shared with other tracks)."""
        if self._own_world:
            self.world = SharedWorld()
            self._key = self.world.join()
        self.model.reset()
        self._set_lengths(Proportions(self.height_m).lengths)
        self._samples: list[list[float]] = []  # bone lengths (measure_lengths' order) per frame, over _scale
        self._chains: list[float] = []  # the network's vertical chain per frame (its 1.75 m body's units)
        self._scale = self.height_m / REST_HEIGHT
        cutoff, beta, d_cutoff = self.pose_filter
        self._smoother = KeypointFilter(17, 3, min_cutoff=cutoff, beta=beta, d_cutoff=d_cutoff, min_score=0.0,
                                        hold_s=0.0)
        self._fit_px = KeypointFilter(17, 2, min_cutoff=FIT_PX_FILTER[0], beta=FIT_PX_FILTER[1], min_score=0.0,
                                      hold_s=0.0)
        self._fit_smoother = KeypointFilter(17, 3, min_cutoff=FIT_FILTER, beta=0.0, min_score=0.0, hold_s=0.0)
        self._turn: tuple[np.ndarray, float] | None = None  # the low-passed turn and its time
        self._raw_pose: deque[np.ndarray] = deque(maxlen=4)  # the unsmoothed pose of the last 4 frames
        self._pose_noise: deque[float] = deque(maxlen=30)  # its jerk per frame, over the last second
        self.pose_noise = 0.0  # their median (m per frame^3); 0 until measured
        self._gate: tuple[float, float] | None = None  # the last root depth let through and its time
        self._prev_px: np.ndarray | None = None
        self._t_seen = -np.inf
        self._last: np.ndarray | None = None
        plane, depth = self._root_params
        self._root_plane = KeypointFilter(1, 2, min_cutoff=plane, beta=0.5, min_score=0.0, hold_s=0.0)
        self._root_depth = KeypointFilter(1, 1, min_cutoff=depth, beta=0.3, min_score=0.0, hold_s=0.0)
        self.contacts = np.zeros(2)
        self._planted = np.zeros(2, dtype=bool)
        self._anchor = np.zeros((2, 3))
        self._offset = np.zeros(3)  # root path correction from the planted feet (world)
        self._depth_at: tuple[float, float] | None = None  # (pelvis depth, t) of the last frame placed
        self._depth_speed = 0.0  # m/s, smoothed
        self._floor_samples: list[float] = []
        self._warm_floor: list[float] = []  # floor heights seen while warming up (dropped when it ends)
        self._t_start = -np.inf
        self.floor: float | None = None
        self.origin: np.ndarray | None = None
        told = self.camera_pitch_deg
        self._set_pitch(told if told is not None else (self.world.pitch_deg or 0.0))

    @property
    def pitch_deg(self) -> float:
        """The camera pitch (deg, looking down positive) the world frame is built with: told, or estimated
        (``SharedWorld.observe_pitch``; level until a straight body was seen)."""
        return self._pitch

    def _set_pitch(self, pitch_deg: float) -> None:
        self._pitch = float(pitch_deg)
        p = math.radians(self._pitch)
        up = np.array([0.0, -math.cos(p), -math.sin(p)])  # world up in camera axes
        fwd = np.array([0.0, 0.0, 1.0]) - up[2] * up
        fwd /= np.linalg.norm(fwd)
        self._world = np.stack([np.cross(fwd, up), fwd, up])  # rows: world X, Y, Z in camera axes

    def _lose(self) -> None:
        self.model.reset()
        self._prev_px = None
        self._last = None
        self._root_plane.reset()
        self._root_depth.reset()
        self._smoother.reset()
        self._fit_px.reset()
        self._fit_smoother.reset()
        self._turn = None
        self._gate = None
        self._raw_pose.clear()
        self._planted[:] = False

    def __call__(self, keypoints_2d: np.ndarray, scores: np.ndarray, t: float) -> np.ndarray | None:
        with blas_threads(1):  # one hold a frame for the network's products and the turn fit's solve
            return self._lift(keypoints_2d, scores, t)

    def _lift(self, keypoints_2d: np.ndarray, scores: np.ndarray, t: float) -> np.ndarray | None:
        px = np.asarray(keypoints_2d, dtype=np.float64)
        sc = np.asarray(scores, dtype=np.float64)
        if px.shape != (17, 2) or sc.shape != (17,):
            raise ValueError(f"LearnedLifter expects COCO-17 keypoints (17, 2) and scores (17,), got {px.shape} and "
                             f"{sc.shape}; lifting of other skeletons is not supported")
        sc = np.where(np.isfinite(sc), sc, 0.0)  # a NaN score kept in the features poisoned the network's history
        ok = (sc >= self.min_score) & np.isfinite(px).all(axis=1)
        if not ok[[_LS, _RS, _LH, _RH]].all():
            if self._last is None:
                return None
            if float(t) - self._t_seen > self.hold_s:
                self._lose()
                return None
            return self._last
        self._t_seen = float(t)
        if self._prev_px is None:  # a track's first frame, or the first after it was lost
            self._t_start = self._t_seen
            self._warm_floor.clear()
        px = np.where(np.isfinite(px), px, 0.0)
        sc = np.where(ok, sc, np.minimum(sc, 0.2))
        feats = frame_features(px, sc, self._prev_px, self.center, self.focal)
        self._prev_px = px
        rel, contacts = self.model.step(feats)
        rel = rel.astype(np.float64)
        self._fit_stature(rel)
        rel = rel * self._scale
        self.contacts = contacts.astype(np.float64)
        weight = np.where(ok, sc, 0.0)
        root = self._solve_root(rel, px, weight)
        rel_root = rel  # the pose the root was solved for (the depth gate below solves it again)
        smooth_px = self._fit_px.smooth(px, t) if self.bone_fit > 0.0 or self.turn_fit > 0.0 else px
        if self.turn_fit > 0.0:
            turn = self._smooth_turn(self._fit_turn(rel, root, smooth_px, weight), float(t))
            rel = rel @ _rotation(turn * self.turn_fit).T
            root = self._solve_root(rel, px, weight)
            rel_root = rel
        if self.bone_fit > 0.0:  # on smoothed pixels: a fit to raw ones passes their noise on as depth jitter
            cam = rel + root
            correction = self._fit_limbs(cam, smooth_px, ok) - cam
            rel = rel + self._fit_smoother.smooth(correction, t)
        root = self._gate_depth(root, rel_root, px, weight, float(t))
        if self.depth_cap is not None:
            root = self._cap_depth(root, rel_root, px, weight, ok)
        root[:2] = self._root_plane.smooth(root[None, :2], t)[0]
        root[2:] = self._root_depth.smooth(root[None, 2:], t)[0]
        if self.camera_pitch_deg is None:  # not told: the pitch the performers show (world.py), shared by the tracks
            pitch = self.world.observe_pitch(rel)
            if pitch is not None and pitch != self._pitch:
                self._set_pitch(pitch)
        rel_w = rel @ self._world.T  # world axes (Y = depth), pelvis-relative
        self._fit_lengths(rel_w)
        if self.smooth:
            if self.pose_noise_ref is not None:
                self._open_filters(rel_w)
            rel_w = self._smoother.smooth(rel_w, t)
        rel_w = rigid(rel_w, self._lengths)
        world = rel_w + root @ self._world.T
        self._last = self._place(world, float(t)).astype(np.float32)
        return self._last

    def _open_filters(self, rel: np.ndarray) -> None:
        """Open the pose filter, and the fits' filters of the pixels and of the limb fit, as far as the noise allows:
        their cutoffs x (POSE_NOISE_REF / noise)^2, within [1, POSE_OPEN_MAX] (the fits take it from the next
        frame). The noise is the pose's third difference over four frames (median over the joints and the last
        second): a few mm for body motion at video rates, centimetres for the network's answer to detector noise. A
        first-order low-pass leaves noise in proportion to the square root of its cutoff, hence the square: the same
        jitter left at any noise."""
        h = self._raw_pose
        h.append(rel)  # kept, not copied (the caller makes a new array a frame): a copy gives up the GIL (_fit_turn)
        if len(h) < 4:
            return
        jerk = h[3] - 3.0 * h[2] + 3.0 * h[1] - h[0]
        self._pose_noise.append(sorted(np.einsum("ij,ij->i", jerk, jerk).tolist())[8] ** 0.5)  # median of 17
        self.pose_noise = statistics.median(self._pose_noise)
        ratio = float(self.pose_noise_ref) / max(self.pose_noise, 1e-9)
        scale = min(max(ratio * ratio, 1.0), POSE_OPEN_MAX)
        cutoff, beta, _ = self.pose_filter
        self._smoother.set_params(min_cutoff=cutoff * scale, beta=beta * scale)
        self._fit_px.set_params(min_cutoff=FIT_PX_FILTER[0] * scale, beta=FIT_PX_FILTER[1] * scale)
        self._fit_smoother.set_params(min_cutoff=FIT_FILTER * scale)

    def _fit_lengths(self, rel: np.ndarray) -> None:
        """Over the first ``calib_frames`` frames: each bone's median length in the network's poses (already
        scaled to the performer's height). (Rescaling them so the vertical chain matches the height's adult
        proportions instead cost 6 mm MPJPE on CMU 131_01.)"""
        if len(self._samples) >= self.calib_frames:
            return
        lengths = measure_lengths(rel)
        self._samples.append([v / self._scale for v in lengths.values()])  # _scale settles over the same frames
        medians = np.median(self._samples, axis=0) * self._scale  # one call, not one per bone: this ran 1 ms a frame
        self._set_lengths({k: float(v) for k, v in zip(lengths, medians, strict=True)})

    def _fit_stature(self, rel: np.ndarray) -> None:
        """Over the first ``calib_frames`` frames: the scale that gives the network's body, by its median vertical
        chain (spine, neck, legs), the performer's height. The network sizes every body by its legs (that is how its
        training targets are normalised) and sees the trunk's and arms' proportions in the image; a height counts
        the trunk too, so scaling by the height alone made long-legged performers too small."""
        if len(self._chains) >= self.calib_frames:
            return
        self._chains.append(vertical_chain(measure_lengths(rel)))
        self._scale = self.height_m / REST_HEIGHT * _REST_CHAIN / statistics.median(self._chains)

    def _set_lengths(self, lengths: dict[str, float]) -> None:
        self._lengths = lengths
        # the limb fit's bones (parent, child, length), upper bones first: looked up once, not every frame
        self._limb_bones = [(p, c, lengths[f"{p}-{c}"]) for p, c in _LIMB_UPPER + _LIMB_LOWER]
        self._cap_bones = [(a, b, lengths[f"{a}-{b}"]) for a, b in DEPTH_CAP_BONES]

    def _solve_root(self, rel: np.ndarray, px: np.ndarray, weight: np.ndarray, tz: float | None = None
                    ) -> np.ndarray:
        """Pelvis position (camera axes) that best projects ``rel`` onto ``px``: for each joint and image axis,
        f (X + T_x) = u (Z + T_z) with u the pixel offset from the principal point -- linear in T. Weighted least
        squares, solved in closed form: the normal equations' first two rows give T_x and T_y from T_z,
        T_x = (S_bx + S_ux T_z) / (f W), and the third then T_z (S_q are the weighted sums of q over the joints,
        b the right-hand sides u Z - f X); it is numpy's lstsq to 1e-9, in a fifth of the time. ``tz``: the depth
        given, only T_x and T_y solved."""
        u = px - self.center
        f = float(self.focal)
        b = u * rel[:, 2:] - f * rel[:, :2]
        w = weight + 1e-3
        big_w, (s_ux, s_uy), (s_bx, s_by) = float(w.sum()), (w @ u).tolist(), (w @ b).tolist()
        s_uu, s_ub = float(w @ np.einsum("ij,ij->i", u, u)), float(w @ np.einsum("ij,ij->i", u, b))
        if tz is None:
            tz = (s_ux * s_bx + s_uy * s_by - big_w * s_ub) / max(big_w * s_uu - s_ux * s_ux - s_uy * s_uy, 1e-12)
        return np.array([(s_bx + s_ux * tz) / (f * big_w), (s_by + s_uy * tz) / (f * big_w), max(tz, 0.5)])

    def _gate_depth(self, root: np.ndarray, rel: np.ndarray, px: np.ndarray, weight: np.ndarray, t: float
                    ) -> np.ndarray:
        """The root with its depth moved at most MAX_ROOT_SPEED since the last frame, its image-plane position solved
        again for that depth (so the body still projects onto the keypoints)."""
        if self._gate is not None and t > self._gate[1]:
            last, seen = self._gate
            step = MAX_ROOT_SPEED * (t - seen)
            if abs(root[2] - last) > step:
                root = self._solve_root(rel, px, weight, tz=last + math.copysign(step, root[2] - last))
        self._gate = (float(root[2]), t)
        return root

    def _cap_depth(self, root: np.ndarray, rel: np.ndarray, px: np.ndarray, weight: np.ndarray, ok: np.ndarray
                   ) -> np.ndarray:
        """The root no farther than the bones allow (DEPTH_CAP_BONES), its image-plane position solved again for
        that depth; after the speed gate, which must not hold a body at a depth its bones rule out."""
        bounds = []
        for a, b, length in self._cap_bones:
            if ok[a] and ok[b]:
                seen = math.hypot(px[a, 0] - px[b, 0], px[a, 1] - px[b, 1])
                bounds.append(self.focal * length / max(seen, 1.0))
        if ok[[_LS, _RS, _LH, _RH]].all():
            d = 0.5 * (px[_LS] + px[_RS] - px[_LH] - px[_RH])
            bounds.append(self.focal * self._lengths["spine"] / max(math.hypot(d[0], d[1]), 1.0))
        if len(bounds) < 2:
            return root
        cap = self.depth_cap * sorted(bounds)[1]
        if root[2] <= cap:
            return root
        root = self._solve_root(rel, px, weight, tz=cap)
        self._gate = (float(root[2]), self._gate[1])  # set by _gate_depth, just before
        return root

    def _smooth_turn(self, turn: np.ndarray, t: float) -> np.ndarray:
        """A 1 Hz first-order low-pass of the turn (the One Euro filter's, without its speed term): the pixels' noise
        would otherwise turn the body frame to frame."""
        if self._turn is not None and t > self._turn[1]:
            turn = self._turn[0] + float(smoothing_factor(t - self._turn[1], 1.0)) * (turn - self._turn[0])
        elif self._turn is not None:
            turn = self._turn[0]
        self._turn = (turn, t)
        return turn

    def _fit_turn(self, rel: np.ndarray, root: np.ndarray, px: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """The small rotation (axis x angle, camera axes) of the whole body about its pelvis that, with a new root,
        best projects it onto ``px``: one Gauss-Newton step, the rotation damped. A joint's pixel gradient g (per
        image axis) gives d(pixel)/d(translation) = g and d(pixel)/d(rotation) = rel x g."""
        cam = rel + root
        inv_z = 1.0 / cam[:, 2]
        # (joint, image axis): rel x g, then g (the cross products written out). Each column is computed into its
        # place (ufuncs with out=) rather than assigned: numpy 1.26 gives up the interpreter lock for every array
        # copy, however small, and beside a thread running Python each may wait its switch interval (5 ms).
        jac = np.zeros((17, 2, 6))
        g_u, g_v = jac[:, 0], jac[:, 1]  # g_u = (a, 0, c_u), g_v = (0, a, c_v)
        a = np.multiply(float(self.focal), inv_z, out=g_u[:, 3])
        np.multiply(float(self.focal), inv_z, out=g_v[:, 4])
        c_u = np.multiply(-a * cam[:, 0], inv_z, out=g_u[:, 5])
        c_v = np.multiply(-a * cam[:, 1], inv_z, out=g_v[:, 5])
        r0, r1, r2 = rel[:, 0], rel[:, 1], rel[:, 2]
        np.multiply(r1, c_u, out=g_u[:, 0])
        np.subtract(r2 * a, r0 * c_u, out=g_u[:, 1])
        np.multiply(-r1, a, out=g_u[:, 2])
        np.subtract(r1 * c_v, r2 * a, out=g_v[:, 0])
        np.multiply(-r0, c_v, out=g_v[:, 1])
        np.multiply(r0, a, out=g_v[:, 2])
        res = ((px - self.center) - a[:, None] * cam[:, :2]).reshape(34)  # pixel residuals, u and v per joint
        jw = (jac * weight[:, None, None]).reshape(34, 6).T
        jac = jac.reshape(34, 6)
        # einsum, not @, and LAPACK held to one thread (__call__): BLAS threads fought the inference threads for the
        # two cores (inside the server the lifter's wall time went from 1.7 to 4.6 ms per frame)
        lhs = np.einsum("ij,jk->ik", jw, jac)
        lhs[:3, :3] += _EYE3 * (self.turn_damping * (lhs[0, 0] + lhs[1, 1] + lhs[2, 2]))  # only where pixels ask
        step = np.linalg.solve(lhs + _EYE6_TINY, np.einsum("ij,j->i", jw, res))
        return np.clip(step[:3], -0.3, 0.3)

    def _fit_limbs(self, cam: np.ndarray, px: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Limb joints (camera axes) moved along their pixel's ray so each limb bone has its length: of the two
        points at that distance from the (fitted) parent, the one nearer the network's; ``bone_fit`` of the way.
        Upper bones, then lower bones. (Plain floats: on 3-vectors, numpy's per-call cost made this 3x slower.)"""
        out, net_pose, pts, good = cam.tolist(), cam.tolist(), px.tolist(), ok.tolist()
        (cx, cy), f, w = self.center.tolist(), float(self.focal), self.bone_fit
        for parent, child, length in self._limb_bones:
            p, was = out[parent], net_pose[parent]
            net = [c + (q - v) for c, q, v in zip(net_pose[child], p, was, strict=True)]  # hung from the fit
            out[child] = net
            if not good[child]:
                continue
            ray = [(pts[child][0] - cx) / f, (pts[child][1] - cy) / f, 1.0]
            norm = math.sqrt(_dot(ray, ray))
            ray = [r / norm for r in ray]
            along = _dot(ray, p)
            root = math.sqrt(max(along * along - _dot(p, p) + length * length, 0.0))
            near = _dot(ray, net)
            t = along - root if abs(along - root - near) < abs(along + root - near) else along + root
            bone = [t * r - q for r, q in zip(ray, p, strict=True)]
            scale = length / max(math.sqrt(_dot(bone, bone)), 1e-9)
            out[child] = [n + w * (q + b * scale - n) for n, q, b in zip(net, p, bone, strict=True)]
        return np.array(out)

    def _ankle_height(self) -> float:
        return float(REST_JOINTS[J["l_ankle"], 2] * self.height_m / REST_HEIGHT)

    def _place(self, world: np.ndarray, t: float) -> np.ndarray:
        """Floor, origin and the planted-feet correction of the root path."""
        on = self.contacts > 0.6
        off = self.contacts < 0.4
        planted = (self._planted | on) & ~off
        ankle_h = self._ankle_height()
        samples = self._warm_floor if t - self._t_start < WARMUP_S else self._floor_samples
        for k, a in enumerate(_ANKLES):
            if planted[k]:
                samples.append(float(world[a, 2]) - ankle_h)
        if not samples and not self._floor_samples:  # nothing planted yet: the lower ankle is on the floor
            samples.append(float(min(world[a, 2] for a in _ANKLES)) - ankle_h)
        del self._floor_samples[:-150]
        # (statistics.median: np.median took 10x the time on 150 floats)
        self.floor = float(statistics.median(self._floor_samples or self._warm_floor))
        pelvis = 0.5 * (world[_LH] + world[_RH])
        self.origin = self.world.place(self._key, pelvis[:2], self.floor)
        pelvis_y = float(pelvis[1])
        if self._depth_at is not None and t > self._depth_at[1]:  # the measured path's depth speed, smoothed 0.3 s
            dt = t - self._depth_at[1]
            speed = (pelvis_y - self._depth_at[0]) / dt
            self._depth_speed += (speed - self._depth_speed) * (1.0 - math.exp(-dt / 0.3))
        self._depth_at = (pelvis_y, t)
        out = world - self.origin + self._offset
        ankle_z = ankle_h + self.floor - self.origin[2]  # on this track's floor, in the shared frame
        if self.foot_lock:
            errs = []
            for k, a in enumerate(_ANKLES):
                if planted[k] and not self._planted[k]:
                    self._anchor[k] = out[a]
                    self._anchor[k, 2] = ankle_z
                if planted[k]:
                    errs.append(self._anchor[k] - out[a])
            if errs:  # in depth only while the root is not travelling in depth (DEPTH_GATE says why)
                err = errs[0] if len(errs) == 1 else 0.5 * (errs[0] + errs[1])
                if self.depth_gate is not None:
                    slow, fast = self.depth_gate
                    free = err[1] * (1.0 - min(max((fast - abs(self._depth_speed)) / (fast - slow), 0.0), 1.0))
                    err[1] -= free
                    # the anchors follow the depth the lock lets through, so stopping does not snap it back
                    self._anchor[planted, 1] -= free
                self._offset += err
                out = out + err
        self._planted = planted
        return out
