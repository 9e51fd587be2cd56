"""Fit the kinematic hand (model.py) to the 21 2D keypoints of one hand: wrist orientation, depth and the
20 finger angles, within the anatomical limits.

Depth comes from a hand-size prior, not the lifter (which lifts the 17 COCO body joints only): the
canonical hand, scaled by the performer's height, seen through the lifter's pinhole camera. Its apparent
size gives its distance, and the fitted model's shape gives each finger's depth; the one-way limits of the
joints pick between a finger bent towards or away from the camera, and the hand's handedness between palm
and back facing the camera. Solved by bounded least squares (scipy) with a forward-difference Jacobian
computed in one batched forward pass, warm-started from the previous frame; a cold start tries a few
orientations and keeps the best.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from .model import HIGH, LOW, NEUTRAL, forward

# Parameters: rotation increment (3), wrist image offset in hand sizes (2), log depth (1), the 20 finger angles.
PRIOR_WEIGHT = 0.003  # pull of the neutral hand, per radian, against residuals in hand sizes (~1 px per rad)
TEMPORAL_WEIGHT = 0.01  # pull of the previous frame's angles (warm starts only)
_STEP = 1e-4
COLD_SCREEN_NFEV = 6  # iterations per cold-start orientation before the best ones are solved to the end
COLD_POLISH = 3  # how many of the best screened orientations are solved to the end
REFOLD_PX = 0.5  # a finger fitted worse than this (rms px, and twice the hand's) is tried folded the other way
_PALM = ((0, 5), (0, 17), (5, 17), (0, 9))  # wrist-index, wrist-pinky, index-pinky, wrist-middle knuckles


@dataclass
class HandFit:
    """One solved hand, in camera coordinates (OpenCV axes): ``rotation`` maps hand-local to camera."""

    rotation: np.ndarray  # (3, 3)
    angles: np.ndarray  # (20,) radians, left-hand convention (model.py)
    depth: float  # metres, of the wrist
    wrist_px: np.ndarray  # (2,) where the fitted wrist projects
    rms_px: float  # reprojection error over the confident keypoints


class HandFitter:
    """Fits one hand side ("L" or "R") seen by a pinhole camera (focal length and principal point in px)."""

    def __init__(self, side: str, focal: float, center: np.ndarray, scale: float = 1.0) -> None:
        if side not in ("L", "R"):
            raise ValueError(f"side must be 'L' or 'R', got {side!r}")
        self.side = side
        self.focal = float(focal)
        self.center = np.asarray(center, dtype=np.float64)
        self.scale = float(scale)  # hand size relative to the canonical adult hand
        self._flip = np.array([-1.0, 1.0, 1.0]) if side == "R" else np.ones(3)
        self._lo = np.concatenate([np.full(6, -np.inf), LOW])
        self._hi = np.concatenate([np.full(6, np.inf), HIGH])

    def project(self, rotation: np.ndarray, wrist_px: np.ndarray, depth: float, angles: np.ndarray) -> np.ndarray:
        """(21, 2) pixels of a hand with its wrist at ``wrist_px`` and ``depth`` metres."""
        return self._project(rotation[None], wrist_px[None], np.array([depth]), angles[None])[0]

    def _project(self, rot: np.ndarray, wrist_px: np.ndarray, depth: np.ndarray, angles: np.ndarray) -> np.ndarray:
        local, _frames = forward(angles, self.scale)
        cam = np.einsum("bij,bkj->bki", rot, local * self._flip)
        wrist = np.concatenate([(wrist_px - self.center) / self.focal, np.ones((len(depth), 1))], 1) * depth[:, None]
        p = cam + wrist[:, None, :]
        return self.focal * p[..., :2] / np.maximum(p[..., 2:3], 1e-3) + self.center

    def fit(self, points: np.ndarray, weights: np.ndarray, previous: HandFit | None = None) -> HandFit:
        """The hand that best explains ``points`` (21, 2) px with per-point ``weights`` (0 = ignore)."""
        pts = np.asarray(points, dtype=np.float64)
        w = np.sqrt(np.clip(np.asarray(weights, dtype=np.float64), 0.0, 1.0))
        size = max(np.linalg.norm(pts[9] - pts[0]), np.linalg.norm(pts[17] - pts[5]), 1.0)
        depth0 = self._depth_guess(pts, w)
        if previous is not None:
            prev = previous
            return self._solve(pts, w, size, prev.rotation, prev.angles, prev.depth, prev_angles=prev.angles)[0]
        # Cold start: a few iterations from each orientation, then the best few solved to the end.
        screened = [self._solve(pts, w, size, rot, NEUTRAL, depth0, max_nfev=COLD_SCREEN_NFEV)
                    for rot in self._orientations(pts)]
        screened.sort(key=lambda fit_cost: fit_cost[1])
        polished = [self._solve(pts, w, size, f.rotation, f.angles, f.depth) for f, _c in screened[:COLD_POLISH]]
        best = min(polished, key=lambda fit_cost: fit_cost[1])
        return self._refold(pts, w, size, *best)

    def _refold(self, pts: np.ndarray, w: np.ndarray, size: float, fit: HandFit, cost: float) -> HandFit:
        """Fingers left badly fitted (a finger folded the wrong way is a local minimum) start again folded
        the other way; a restart is kept when it explains the points better."""
        for f in range(5):
            err = np.linalg.norm(self.project(fit.rotation, fit.wrist_px, fit.depth, fit.angles) - pts, axis=1)
            seen = w[1 + 4 * f:5 + 4 * f] > 0
            finger = err[1 + 4 * f:5 + 4 * f][seen]
            if not seen.any() or np.sqrt(np.mean(finger**2)) < max(REFOLD_PX, 2.0 * fit.rms_px):
                continue
            angles = fit.angles.copy()
            folded = angles[4 * f:4 * f + 4].copy()
            flex = [0, 2, 3]
            folded[flex] = np.where(folded[flex] > np.radians(35), 0.0, np.radians(70))
            angles[4 * f:4 * f + 4] = folded
            trial, trial_cost = self._solve(pts, w, size, fit.rotation, angles, fit.depth)
            if trial_cost < cost:
                fit, cost = trial, trial_cost
        return fit

    def _solve(self, pts: np.ndarray, w: np.ndarray, size: float, rot0: np.ndarray, ang0: np.ndarray, z0: float,
               prev_angles: np.ndarray | None = None, max_nfev: int = 40) -> tuple[HandFit, float]:
        wrist0 = pts[0].copy()
        x0 = np.concatenate([np.zeros(3), np.zeros(2), [np.log(z0)], np.clip(ang0, LOW, HIGH)])

        def unpack(x: np.ndarray):
            rot = Rotation.from_rotvec(x[:, :3]).as_matrix() @ rot0
            return rot, wrist0 + x[:, 3:5] * size, np.exp(x[:, 5]), x[:, 6:]

        def residuals(x: np.ndarray) -> np.ndarray:
            x = np.atleast_2d(x)
            rot, wp, z, ang = unpack(x)
            r = ((self._project(rot, wp, z, ang) - pts) / size * w[:, None]).reshape(len(x), -1)
            extra = [PRIOR_WEIGHT * (ang - NEUTRAL)]
            if prev_angles is not None:
                extra.append(TEMPORAL_WEIGHT * (ang - prev_angles))
            return np.concatenate([r, *extra], 1)

        def jacobian(x: np.ndarray) -> np.ndarray:
            steps = np.where(x + _STEP > self._hi, -_STEP, _STEP)
            batch = np.vstack([x, x + np.diag(steps)])
            r = residuals(batch)
            return ((r[1:] - r[0]) / steps[:, None]).T

        res = least_squares(lambda x: residuals(x)[0], x0, jac=jacobian, bounds=(self._lo, self._hi),
                            method="trf", x_scale=1.0, max_nfev=max_nfev, xtol=1e-6, ftol=1e-6)
        rot, wp, z, ang = unpack(res.x[None])
        used = w > 0
        err = np.linalg.norm(self.project(rot[0], wp[0], z[0], ang[0]) - pts, axis=1)
        rms = float(np.sqrt(np.mean(err[used] ** 2))) if used.any() else float("inf")
        return HandFit(rot[0], ang[0], float(z[0]), wp[0], rms), float(res.cost)

    def _depth_guess(self, pts: np.ndarray, w: np.ndarray) -> float:
        """The wrist's distance from the palm's largest image-to-model length ratio: a rigid palm never looks
        longer than its size allows, and at least one of its lines is nearly parallel to the image."""
        model, _ = forward(NEUTRAL, self.scale)
        ratios = [np.linalg.norm(pts[a] - pts[b]) / np.linalg.norm(model[a] - model[b])
                  for a, b in _PALM if w[a] > 0 and w[b] > 0]
        ratio = max(ratios) if ratios else self.focal / 2.0
        return float(np.clip(self.focal / max(ratio, 1e-6), 0.2, 20.0))

    def _orientations(self, pts: np.ndarray) -> list[np.ndarray]:
        """Cold-start orientations: the palm's Y along the wrist-to-middle-knuckle image line, palm facing the
        camera or away, tilted about its own axes."""
        d = pts[9] - pts[0]
        angle = np.arctan2(d[1], d[0])
        out = []
        for facing in (0.0, np.pi):
            for roll in (-60.0, 0.0, 60.0):
                for pitch in (-45.0, 0.0, 45.0):
                    # hand-local Y -> image direction (in the camera's x-y plane), Z -> camera +z or -z
                    base = Rotation.from_euler("z", angle - np.pi / 2) * Rotation.from_euler("y", facing)
                    tilt = Rotation.from_euler("yx", [roll, pitch], degrees=True)
                    out.append((base * tilt).as_matrix())
        return out


__all__ = ["HandFit", "HandFitter"]
