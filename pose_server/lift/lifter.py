"""Causal monocular 3D lifting of COCO-17 keypoints with bone-length priors.

Every joint lies on its camera ray and every bone keeps its length (Taylor 2000, under full
perspective), so each bone leaves two depth solutions (towards or away from the camera). Per frame:

1. pelvis depth: the second tightest bound ``f * L / image length`` of the spine and leg bones (a bone
   cannot look longer than its length allows; the bound is exact when it is parallel to the image),
   corrected by each bone's depth offset in the last frame, then One Euro smoothed;
2. torso (8 hypotheses: spine, shoulder line, hip line), each leg pair (16) and each arm (4): every
   hypothesis gets a prior cost (``priors.py``: upright spine, shoulders parallel to the hips, the face
   turned the way the nose and eyes say, knees bending backwards, elbows forwards, thighs and shins swinging
   in the sagittal plane rather than sideways, upper arms not crossing the chest, no ankle under the floor;
   here: the lower ankle on the floor, and the learned depth prior's vote, ``learned.py``), and a causal
   min-sum tracker (``tracker.py``) picks the cheapest history, so the depth signs stay continuous and a
   branch taken at an ambiguous moment (bone parallel to the image) is dropped as soon as the priors
   accumulate against it;
3. face: the mid-ear point above the mid-shoulder, the face points in front of it;
4. output (``smoothing.py``): root-relative pose and root path One Euro smoothed separately, with cutoffs
   that adapt to the input's noise, then every bone given its length again.

Bone proportions (``proportions.py``) start from adult priors and are fitted to the performer over the first
``calib_frames`` confident frames (upper percentile of each bone's image length over the spine's);
the overall scale is the performer's height, a setting: monocular video cannot observe it. The
camera height above the floor is estimated in the same frames from the stance foot; the camera pitch
is a setting (default: level camera), since it is not observable from one static viewpoint.

Frames: camera (OpenCV: x right, y down, z forward) internally; the output is the world frame of
the packet: metres, Z up, Y = the camera's horizontal viewing direction (so a performer facing the
camera faces -Y), origin shared by every track of the session (``world.py``: on the floor under the first
performer's first lifted pelvis; alone, that is this performer); each track's floor (the camera's height above
the surface its feet stand on) is its own, so a person on a roof stays at the roof's height.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from pose_server.filters import KeypointFilter
from pose_server.lift.camera import DEFAULT_HFOV_DEG, lifter_camera
from pose_server.lift.learned import DEFAULT_DEPTH_PRIOR, DepthPrior, load_cached, window_features
from pose_server.lift.priors import LimbPriors, torso_cost
from pose_server.lift.proportions import FACE, LH, LIMBS, LS, REST_LENGTHS, RH, RS, Proportions
from pose_server.lift.skeleton3d import REST_HEIGHT, REST_JOINTS, J
from pose_server.lift.smoothing import OutputSmoother, rigid
from pose_server.lift.tracker import HypothesisTracker
from pose_server.lift.world import SharedWorld

__all__ = ["Lifter"]


def _resolve_prior(prior: DepthPrior | str | Path | None) -> DepthPrior | None:
    if prior is None or isinstance(prior, DepthPrior):
        return prior
    return load_cached(str(DEFAULT_DEPTH_PRIOR if prior == "default" else Path(prior)))


def _taylor(parent: np.ndarray, ray: np.ndarray, length: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The two points on unit ``ray`` (through the camera centre) at ``length`` from ``parent``.

    Returns (near, far, slack): slack < 0 means the image bone is too long for ``length`` and both
    points collapse to the ray point closest to the parent (bone parallel to the image)."""
    b = float(ray @ parent)
    disc = b * b - float(parent @ parent) + length * length
    root = np.sqrt(max(disc, 0.0))
    return (b - root) * ray, (b + root) * ray, disc


class Lifter:
    """Monocular COCO-17 lifting: (17,2) pixels + (17,) scores + t -> (17,3) world metres, or None."""

    def __init__(
        self,
        image_size: tuple[int, int],
        focal: float | None = None,
        hfov_deg: float = DEFAULT_HFOV_DEG,
        height_m: float = REST_HEIGHT,
        min_score: float = 0.3,
        calib_frames: int = 45,
        camera_pitch_deg: float | None = None,
        smooth: bool = True,
        hold_s: float = 0.5,
        min_cutoff: float = 1.0,
        beta: float = 1.0,
        depth_min_cutoff: float = 0.5,
        depth_beta: float = 0.2,
        adaptive_smoothing: bool = True,
        depth_prior: DepthPrior | str | Path | None = "default",
        world: SharedWorld | None = None,
    ) -> None:
        self.image_size, self.focal, self.center = lifter_camera(image_size, focal, hfov_deg, height_m)
        self.height_m = float(height_m)
        self.min_score = float(min_score)
        self.calib_frames = int(calib_frames)
        self.camera_pitch_deg = camera_pitch_deg
        self.smooth = smooth
        self.hold_s = float(hold_s)
        self.tracker = HypothesisTracker()  # which depth solution each body part takes (tracker.py)
        self.priors = LimbPriors()  # how implausible each limb choice is (priors.py)
        self.w_contact = 1.0  # weight of the "lower ankle on the floor" term
        # Learned depth prior (learned.py): cost per squared (error / sigma) of a bone's depth against the network's,
        # capped per bone so that one confident mistake of the network cannot outvote the anatomy.
        self.depth_prior = _resolve_prior(depth_prior)
        self.w_learned, self.learned_sigma, self.learned_cap, self.spread_gain = 1.0, 0.15, 4.0, 1.0
        self.smoother = OutputSmoother(min_cutoff, beta, depth_min_cutoff, depth_beta, adaptive_smoothing)
        self._own_world = world is None  # alone: the origin under this performer's first pelvis
        self.world = SharedWorld() if world is None else world
        self._key = self.world.join()
        self.reset()

    def reset(self) -> None:
        """Forget the performer (proportions, floor, history; the origin unless shared with other tracks)."""
        if self._own_world:
            self.world = SharedWorld()
            self._key = self.world.join()
        self.proportions = Proportions(self.height_m)
        self.frames = 0
        self._prev: np.ndarray | None = None  # root-relative camera-frame joints of the last frame
        self._vel = np.zeros((17, 3))
        self._t_prev: float | None = None
        self._t_seen = -np.inf  # last time the torso was seen
        self._pelvis_cam = np.zeros(3)
        self._depth_filter = KeypointFilter(1, 1, min_cutoff=0.8, beta=0.3, min_score=0.0, hold_s=0.0)
        self.smoother.reset()
        self.tracker.clear()
        self._floor_samples: list[float] = []
        window = self.depth_prior.window if self.depth_prior is not None else 1
        self._px_hist: deque[np.ndarray] = deque(maxlen=window)  # keypoints of the last frames, for the prior
        self._dz_learned: np.ndarray | None = None  # its joint depths relative to the pelvis (m), this frame
        self._dz_spread: np.ndarray | None = None  # and how much the ensemble's networks disagree on each (m)
        self.up_cam = self._pitch_up(self.camera_pitch_deg or 0.0)
        self.floor = None  # height of the floor along up_cam, camera frame
        self.origin: np.ndarray | None = None

    @property
    def lengths(self) -> dict[str, float]:
        """The performer's bone lengths (m) as fitted so far (proportions.py)."""
        return self.proportions.lengths

    @staticmethod
    def _pitch_up(pitch_deg: float) -> np.ndarray:
        """World up in camera coordinates for a camera pitched down by ``pitch_deg``."""
        p = np.radians(pitch_deg)
        return np.array([0.0, -np.cos(p), -np.sin(p)])

    def set_params(self, **params: float) -> None:
        """Live tuning of the output smoothing (min_cutoff, beta, depth_min_cutoff, depth_beta) and min_score."""
        if "min_score" in params:
            self.min_score = float(params.pop("min_score"))
        self.smoother.set_params(**params)

    # ------------------------------------------------------------------ helpers
    def _rays(self, kpts: np.ndarray) -> np.ndarray:
        v = np.empty((kpts.shape[0], 3))
        v[:, :2] = (kpts - self.center) / self.focal
        v[:, 2] = 1.0
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def _pelvis_depth(self, px: np.ndarray, ok: np.ndarray) -> float | None:
        """Depth bound from the vertical bones: depth <= f * L / image length (equality when parallel)."""
        pelvis = 0.5 * (px[LH] + px[RH])
        mid_sh = 0.5 * (px[LS] + px[RS])
        cands = []
        prev = self._prev
        spine_px = np.linalg.norm(mid_sh - pelvis)
        if spine_px > 1.0:
            dz = 0.0 if prev is None else 0.5 * (prev[LS, 2] + prev[RS, 2])
            cands.append(self.focal * self.lengths["spine"] / spine_px - 0.5 * dz)
        for a, b, c, kind in LIMBS:
            if kind != "leg":
                continue
            for p, q in ((a, b), (b, c)):
                if ok[p] and ok[q]:
                    d = np.linalg.norm(px[q] - px[p])
                    if d > 1.0:
                        dz = 0.0 if prev is None else 0.5 * (prev[p, 2] + prev[q, 2])
                        cands.append(self.focal * self.lengths[f"{p}-{q}"] / d - dz)
        if not cands:
            return None
        cands.sort()  # the second tightest: one noisy or badly proportioned bone does not decide alone
        return cands[1] if len(cands) > 2 else cands[0]

    # ------------------------------------------------------------------ main
    def __call__(self, keypoints_2d: np.ndarray, scores: np.ndarray, t: float) -> np.ndarray | None:
        """Lift one person's frame. Returns None until the hips and shoulders have been seen confidently."""
        px = np.asarray(keypoints_2d, dtype=np.float64)
        sc = np.asarray(scores, dtype=np.float64)
        if px.shape != (17, 2) or sc.shape != (17,):
            raise ValueError(
                f"Lifter expects COCO-17 keypoints (17, 2) and scores (17,), got {px.shape} and {sc.shape}; "
                "lifting of other skeletons is not supported"
            )
        ok = (sc >= self.min_score) & np.isfinite(px).all(axis=1)
        torso_ok = ok[[LS, RS, LH, RH]].all()
        dt = 1 / 30 if self._t_prev is None else max(float(t) - self._t_prev, 1e-3)
        if torso_ok and self.frames < self.calib_frames:
            self.proportions.add(px, ok)
        depth = self._pelvis_depth(px, ok) if torso_ok else None
        if depth is None:  # no torso: hold the body (moving with its damped velocity) for hold_s, then give up
            if self._prev is None:
                return None
            if float(t) - self._t_seen > self.hold_s:
                self._lose()
                return None
            return self._emit(self._pelvis_cam + self._predict(dt), t, dt, ok)
        self._t_seen = float(t)
        depth = float(self._depth_filter(np.array([[depth]]), np.ones(1), t)[0][0, 0])
        rays = self._rays(px)
        if self.frames < self.calib_frames:
            self._calibrate_world(rays, depth, ok)
        pred = self._predict(dt)  # root-relative camera-frame prediction, or None
        self._dz_learned = self._learned_depths(px, ok, depth) if self.depth_prior is not None else None
        cam = self._lift(rays, ok, depth, pred)
        self.frames += 1
        return self._emit(cam, t, dt, ok)

    def _learned_depths(self, px: np.ndarray, ok: np.ndarray, depth: float) -> np.ndarray:
        """The depth prior's joint depths relative to the pelvis (m). Missing keypoints keep their last position,
        as the server's keypoint filter does while it holds them; the first frames repeat the oldest one."""
        cur = px.copy()
        if self._px_hist:
            cur[~ok] = self._px_hist[-1][~ok]
        self._px_hist.append(cur)
        hist = list(self._px_hist)
        hist = [hist[0]] * (self.depth_prior.window - len(hist)) + hist
        feats, scale = window_features(np.array(hist) - self.center)
        dz, spread = self.depth_prior.predict(feats)
        to_m = depth * float(scale) / self.focal
        self._dz_spread = None if spread is None else spread.astype(np.float64) * to_m
        return dz.astype(np.float64) * to_m

    def _learned_cost(
        self, joints: list[int], pts: np.ndarray, pelvis: np.ndarray, parents: list[int] | None = None,
        parent_pts: np.ndarray | None = None,
    ) -> np.ndarray | float:
        """Disagreement of hypotheses ``pts`` (S, n, 3) with the learned depths of ``joints``: their depths
        relative to the pelvis, or with ``parents``, the depth of each bone (joint minus parent)."""
        if self._dz_learned is None or self.w_learned == 0:
            return 0.0
        z = pts[..., 2] - pelvis[2]
        want = self._dz_learned[joints]
        sigma = self.learned_sigma
        if self._dz_spread is not None:
            spread = self._dz_spread[joints] + (self._dz_spread[parents] if parents is not None else 0.0)
            sigma = np.sqrt(sigma**2 + (self.spread_gain * spread) ** 2)
        if parents is not None:
            z = z - (parent_pts[..., 2] - pelvis[2])
            want = want - self._dz_learned[parents]
        err = ((z - want) / sigma) ** 2
        return self.w_learned * np.minimum(err, self.learned_cap).sum(-1)

    def _lose(self) -> None:
        """The performer is gone: forget the motion (not the proportions, floor or origin)."""
        self._prev = None
        self._t_prev = None
        self._vel = np.zeros((17, 3))
        self.tracker.clear()
        self._depth_filter.reset()
        self.smoother.restart()
        self._px_hist.clear()

    def _predict(self, dt: float) -> np.ndarray | None:
        if self._prev is None:
            return None
        return self._prev + self._vel * min(dt, 0.2) * self.tracker.vel_gain

    def _lift(self, rays: np.ndarray, ok: np.ndarray, depth: float, pred: np.ndarray | None) -> np.ndarray:
        L = self.lengths
        up = self.up_cam
        pel_ray = 0.5 * (rays[LH] + rays[RH])
        pelvis = depth * pel_ray / pel_ray[2]
        out = np.zeros((17, 3))

        # Where the face points sideways in the image (nose and eyes against the ears) tells which way
        # the trunk is turned: the depth sign of the shoulder and hip lines.
        face_x = None
        if ok[J["l_ear"]] and ok[J["r_ear"]] and ok[[J["nose"], J["l_eye"], J["r_eye"]]].any():
            front = [k for k in (J["nose"], J["l_eye"], J["r_eye"]) if ok[k]]
            ear_mid = 0.5 * (rays[J["l_ear"]] + rays[J["r_ear"]])
            face_x = float(np.mean(rays[front, 0] / rays[front, 2]) - ear_mid[0] / ear_mid[2]) * depth
        face_fwd = 0.09 * self.height_m / REST_HEIGHT
        hl_n, hl_f, _ = _taylor(pelvis, rays[LH], L["hip_half"])
        hr_n, hr_f, _ = _taylor(pelvis, rays[RH], L["hip_half"])
        hip_opts = [(hl_n, hr_f), (hl_f, hr_n)]
        # Spine: mid-shoulder point from the pelvis.
        ms_ray = rays[LS] + rays[RS]
        ms_ray /= np.linalg.norm(ms_ray)
        s_n, s_f, _ = _taylor(pelvis, ms_ray, L["spine"])
        states = []
        for sp in (s_n, s_f):
            sl_n, sl_f, _ = _taylor(sp, rays[LS], L["shoulder_half"])
            sr_n, sr_f, _ = _taylor(sp, rays[RS], L["shoulder_half"])
            for ls, rs in ((sl_n, sr_f), (sl_f, sr_n)):
                for lh, rh in hip_opts:
                    states.append((ls, rs, lh, rh, sp))
        cand = np.array(states)  # (8, 5, 3): l/r shoulder, l/r hip, mid-shoulder
        pts = cand[:, :4]
        emission = torso_cost(cand, pelvis, L, up, face_x, face_fwd) + self._learned_cost([LS, RS, LH, RH], pts, pelvis)
        pick = self.tracker("torso", emission, pts - pelvis)
        out[[LS, RS, LH, RH]] = pts[pick]
        mid_sh = 0.5 * (out[LS] + out[RS])
        # Facing direction of the chest (left x up), used by the limb and face priors.
        left = out[LS] - out[RS] + out[LH] - out[RH]
        trunk_up = mid_sh - 0.5 * (out[LH] + out[RH])
        forward = np.cross(left, trunk_up)
        forward /= np.linalg.norm(forward) + 1e-9

        left_u = left / (np.linalg.norm(left) + 1e-9)
        ctx = (mid_sh, forward, left_u)
        legs = [self._limb_states(limb, out, rays, ok, pred, pelvis, ctx) for limb in LIMBS[2:]]
        if self.floor is not None and legs[0] is not None and legs[1] is not None:
            # Both legs in one state space: the lower ankle stands on the floor (walking, standing).
            (pl, el), (pr, er) = legs
            pts = np.concatenate([np.repeat(pl, len(pr), axis=0), np.tile(pr, (len(pl), 1, 1))], axis=1)
            emission = (el[:, None] + er[None, :]).ravel()
            ankle_h = self._ankle_height()
            lowest = np.minimum(pts[:, 1] @ up, pts[:, 3] @ up) + self.floor
            emission = emission + self.w_contact * np.minimum(((lowest - ankle_h) / 0.03) ** 2, 4.0)
            pick = self.tracker("legs", emission, pts - pelvis)
            out[[J["l_knee"], J["l_ankle"], J["r_knee"], J["r_ankle"]]] = pts[pick]
        else:
            self.tracker.drop("legs")
            for (a, b, c, _), st in zip(LIMBS[2:], legs, strict=True):
                if st is not None:
                    out[[b, c]] = st[0][self.tracker(a, st[1], st[0] - pelvis)]
        for limb in LIMBS[:2]:
            st = self._limb_states(limb, out, rays, ok, pred, pelvis, ctx)
            if st is None:
                continue
            pts, emission = st
            out[list(limb[1:3])] = pts[self.tracker(limb[0], emission, pts - pelvis)]

        # Face: mid-ear from the mid-shoulder point, then each face point from the mid-ear point. Missing
        # points keep last frame's offsets (or the rest pose's, turned with the chest).
        rest_me = 0.5 * (REST_JOINTS[J["l_ear"]] + REST_JOINTS[J["r_ear"]])
        frame = np.stack([left_u, -forward, up], axis=1)  # rest-pose axes (X left, -Y forward, Z up) now
        pred_me = None if pred is None else 0.5 * (pred[J["l_ear"]] + pred[J["r_ear"]])
        if ok[J["l_ear"]] and ok[J["r_ear"]]:
            me_ray = rays[J["l_ear"]] + rays[J["r_ear"]]
            me_ray /= np.linalg.norm(me_ray)
            n_, f_, _ = _taylor(mid_sh, me_ray, L["neck"])
            head_want = mid_sh + L["neck"] * (0.9 * up + 0.4 * forward)  # the head sits up and a bit forward
            mid_ear = min((n_, f_), key=lambda p: float(np.sum((p - head_want) ** 2)))
        elif pred is not None:
            mid_ear = mid_sh + pred_me - 0.5 * (pred[LS] + pred[RS])
        else:
            mid_ear = mid_sh + L["neck"] * up
        for k in FACE:
            want = frame @ (REST_JOINTS[k] - rest_me) * (L[f"face{k}"] / REST_LENGTHS[f"face{k}"])
            if not ok[k]:
                out[k] = mid_ear + (pred[k] - pred_me if pred is not None else want)
                continue
            n_, f_, _ = _taylor(mid_ear, rays[k], L[f"face{k}"])
            out[k] = min((n_, f_), key=lambda p, want=want: float(np.sum((p - mid_ear - want) ** 2)))
        return out

    def _limb_states(
        self,
        limb: tuple[int, int, int, str],
        out: np.ndarray,
        rays: np.ndarray,
        ok: np.ndarray,
        pred: np.ndarray | None,
        pelvis: np.ndarray,
        ctx: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Depth hypotheses (S, 2, 3) of a limb's middle and end joints with their prior costs (S,).
        Returns None (after holding the limb where it was relative to the body) when the middle joint is missing."""
        a, b, c, kind = limb
        L = self.lengths
        root = out[a]
        if not ok[b]:  # hold the limb where it was relative to the body; never seen: hanging straight down
            self.tracker.drop(a)
            down = -self.up_cam
            out[b] = pelvis + pred[b] if pred is not None else root + down * L[f"{a}-{b}"]
            out[c] = pelvis + pred[c] if pred is not None else out[b] + down * L[f"{b}-{c}"]
            return None
        side = 1.0 if a in (LS, LH) else -1.0
        mids, ends = [], []
        for mid in _taylor(root, rays[b], L[f"{a}-{b}"])[:2]:
            for end in _taylor(mid, rays[c], L[f"{b}-{c}"])[:2] if ok[c] else (None,):
                mids.append(mid)
                if end is None:  # end joint missing: carry it rigidly with the middle joint, or keep the limb straight
                    straight = (mid - root) * (L[f"{b}-{c}"] / L[f"{a}-{b}"])
                    end = mid + (pred[c] - pred[b] if pred is not None else straight)
                ends.append(end)
        mids_a, ends_a = np.array(mids), np.array(ends)
        floor = None if self.floor is None else (self.up_cam, self.floor, self._ankle_height())
        emission = self.priors(kind, side, root, mids_a, ends_a if ok[c] else None, ctx, L["shoulder_half"], floor)
        both = np.stack([mids_a, ends_a], axis=1)
        par = np.stack([np.broadcast_to(root, mids_a.shape), mids_a], axis=1)
        emission = emission + self._learned_cost([b, c], both, pelvis, [a, b], par)
        return np.stack([mids_a, ends_a], axis=1), emission

    def _calibrate_world(self, rays: np.ndarray, depth: float, ok: np.ndarray) -> None:
        """Camera height above the floor from the stance foot: the lower ankle in the image is on the floor, at
        about the pelvis's horizontal distance. (The camera pitch is not observable this way: it is a setting.)"""
        ankles = [k for k in (J["l_ankle"], J["r_ankle"]) if ok[k]]
        if not ankles:
            return
        ray = rays[max(ankles, key=lambda k: rays[k, 1] / rays[k, 2])]
        rp = 0.5 * (rays[LH] + rays[RH])
        pelvis = depth * rp / rp[2]
        u = self.up_cam
        fwd = np.array([0.0, u[2], -u[1]])  # horizontal forward: perpendicular to up in the camera's y-z plane
        ankle = (fwd @ pelvis) / (fwd @ ray) * ray
        ankle_h = self._ankle_height()
        self._floor_samples.append(ankle_h - float(ankle @ u))
        if len(self._floor_samples) >= 5:
            self.floor = float(np.median(self._floor_samples))  # camera height above the floor

    def _world_rotation(self) -> np.ndarray:
        """Rows: world X, Y, Z axes in camera coordinates (Y = camera forward made horizontal)."""
        z = self.up_cam
        y = np.array([0.0, 0.0, 1.0]) - z[2] * z
        y /= np.linalg.norm(y)
        x = np.cross(y, z)
        return np.stack([x, y, z])

    def _emit(self, cam: np.ndarray | None, t: float, dt: float, ok: np.ndarray) -> np.ndarray | None:
        if cam is None:
            return None
        pelvis = 0.5 * (cam[LH] + cam[RH])
        self._pelvis_cam = pelvis
        rel = cam - pelvis
        if self._prev is not None:
            self._vel = 0.5 * self._vel + 0.5 * (rel - self._prev) / dt
        self._prev = rel
        self._t_prev = float(t)
        rot = self._world_rotation()
        world = cam @ rot.T
        if self.floor is not None:
            floor = -self.floor
        else:
            floor = min(world[J["l_ankle"], 2], world[J["r_ankle"], 2]) - self._ankle_height()
        self.origin = self.world.place(self._key, world[LH:RH + 1, :2].mean(axis=0), floor)
        world = world - self.origin
        root = 0.5 * (world[LH] + world[RH])
        rel = world - root
        if self.smooth:  # the body and its path are smoothed separately (smoothing.py)
            root, rel = self.smoother(root, rel, t)
        return (root + rigid(rel, self.lengths)).astype(np.float32)

    def _ankle_height(self) -> float:
        """Height (m) of the ankle joint above the floor when the foot stands on it."""
        return REST_JOINTS[J["l_ankle"], 2] * self.height_m / REST_HEIGHT
