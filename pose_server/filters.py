"""One Euro filter for keypoints (Casiez, Roussel, Vogel, CHI 2012), vectorised over keypoints.

Per keypoint ``k`` and frame interval ``dt`` (from timestamps, so variable frame rates are fine)::

    alpha(fc) = 1 / (1 + tau / dt),  tau = 1 / (2 pi fc)
    dx        = (x - x_hat_prev) / dt
    dx_hat    = dx_hat_prev + alpha(d_cutoff) * (dx - dx_hat_prev)
    fc        = min_cutoff + beta * |dx_hat|
    x_hat     = x_hat_prev + alpha(fc) * (x - x_hat_prev)

``|dx_hat|`` is the speed of the keypoint (Euclidean norm over its 2 or 3 coordinates), so all
coordinates of one keypoint share a cutoff and the filter does not depend on the axes' orientation;
with ``dims=1`` it is exactly the scalar filter of the paper.

Keypoints whose score drops below ``min_score`` are not fed to the filter (a detector's guess for an
occluded joint jumps around). For ``hold_s`` seconds they are predicted from the last filtered
position and velocity, with the velocity decaying (time constant ``hold_s / 3``), and flagged in the
returned ``held`` mask with their last confident score. After that they pass through unfiltered with
their own low score, and the keypoint's filter restarts from the next confident sample.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["KeypointFilter", "smoothing_factor"]

_TWO_PI = 2.0 * math.pi


def smoothing_factor(dt: float | np.ndarray, cutoff: float | np.ndarray) -> np.ndarray:
    """alpha = 1 / (1 + tau / dt) with tau = 1 / (2 pi cutoff)."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / np.asarray(dt, dtype=np.float64))


class KeypointFilter:
    """One Euro filter over (K, dims) keypoints with hold/predict of low-confidence keypoints."""

    def __init__(
        self,
        num_keypoints: int = 17,
        dims: int = 2,
        min_cutoff: float = 1.0,
        beta: float = 0.05,
        d_cutoff: float = 1.0,
        min_score: float = 0.3,
        hold_s: float = 0.25,
    ) -> None:
        if num_keypoints < 1 or dims < 1:
            raise ValueError(f"num_keypoints and dims must be >= 1, got {num_keypoints}, {dims}")
        self.num_keypoints = int(num_keypoints)
        self.dims = int(dims)
        self.min_cutoff = self.beta = self.d_cutoff = self.min_score = self.hold_s = 0.0
        self.set_params(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff, min_score=min_score, hold_s=hold_s)
        self.reset()

    def set_params(self, **params: float) -> None:
        """Change any of min_cutoff, beta, d_cutoff, min_score, hold_s while running (state is kept)."""
        allowed = ("min_cutoff", "beta", "d_cutoff", "min_score", "hold_s")
        for name, value in params.items():
            if name not in allowed:
                raise ValueError(f"unknown filter parameter {name!r}; expected one of {', '.join(allowed)}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"filter parameter {name} must be finite, got {value}")
            if name in ("min_cutoff", "d_cutoff") and value <= 0:
                raise ValueError(f"{name} is a cutoff frequency in Hz and must be > 0, got {value}")
            if name in ("beta", "hold_s") and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
            setattr(self, name, value)

    def reset(self) -> None:
        """Forget all state (e.g. when the tracked person is lost)."""
        k, d = self.num_keypoints, self.dims
        self._x = np.zeros((k, d))  # filtered position
        self._dx = np.zeros((k, d))  # filtered velocity
        self._active = np.zeros(k, dtype=bool)  # has filter state
        self._t_good = np.full(k, -np.inf)  # time of the last confident sample
        self._score_good = np.zeros(k)  # its score
        self._t_prev: float | None = None
        self._synced = False  # every keypoint has state, last updated at _t_prev (smooth's one-dt step applies)

    def __call__(
        self, points: np.ndarray, scores: np.ndarray, t: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Filter one frame: points (K, dims), scores (K,), t seconds -> (points, scores, held)."""
        x = np.asarray(points, dtype=np.float64)
        s = np.asarray(scores, dtype=np.float64)
        if x.shape != (self.num_keypoints, self.dims):
            raise ValueError(
                f"points must have shape ({self.num_keypoints}, {self.dims}), got {x.shape}; "
                "create one KeypointFilter per person with the right num_keypoints/dims"
            )
        if s.shape != (self.num_keypoints,):
            raise ValueError(f"scores must have shape ({self.num_keypoints},), got {s.shape}")
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"timestamp must be finite, got {t}")
        if self._t_prev is not None and t <= self._t_prev:
            # A repeated or out-of-order timestamp carries no new information about motion.
            t = self._t_prev + 1e-6

        good = (s >= self.min_score) & np.isfinite(x).all(axis=1)
        if good.all() and self._active.all():  # the usual frame, without the masks' indexing (a third of the time)
            self._update(x, (t - self._t_good)[:, None], slice(None))
            self._t_good[:] = t
            self._score_good[:] = s
            self._t_prev = t
            self._synced = True
            return self._x.astype(np.float32), s.astype(np.float32), np.zeros(self.num_keypoints, dtype=bool)
        out = x.copy()
        out_s = s.copy()
        held = np.zeros(self.num_keypoints, dtype=bool)

        # Confident keypoints with state: One Euro update with their own dt since their last update.
        upd = good & self._active
        if upd.any():
            self._update(x, (t - self._t_good[upd])[:, None], upd)
        # Confident keypoints without state start their filter here.
        new = good & ~self._active
        self._x[new] = x[new]
        self._dx[new] = 0.0
        self._active |= good
        self._t_good[good] = t
        self._score_good[good] = s[good]
        out[good] = self._x[good]

        # Low-confidence keypoints: predict with the decaying last velocity while within hold_s.
        low = ~good & self._active
        if low.any():
            elapsed = t - self._t_good[low]
            within = elapsed <= self.hold_s
            idx = np.flatnonzero(low)
            hold_idx, drop_idx = idx[within], idx[~within]
            if hold_idx.size:
                tau = max(self.hold_s / 3.0, 1e-6)
                travel = tau * (1.0 - np.exp(-elapsed[within] / tau))  # integral of exp(-t/tau)
                out[hold_idx] = self._x[hold_idx] + self._dx[hold_idx] * travel[:, None]
                out_s[hold_idx] = self._score_good[hold_idx]
                held[hold_idx] = True
            self._active[drop_idx] = False  # restart from the next confident sample

        self._t_prev = t
        self._synced = bool(good.all())  # all updated or started at t
        return out.astype(np.float32), out_s.astype(np.float32), held

    def smooth(self, points: np.ndarray, t: float) -> np.ndarray:
        """Filter one frame whose every keypoint is confident: (K, dims) -> (K, dims) float64. The same as
        ``self(points, ones, t)[0]`` without its scores, masks and float32 copies (the lifters' filters call it
        several times a frame)."""
        x = np.asarray(points, dtype=np.float64)
        if not self._synced or x.shape != self._x.shape or not np.isfinite(x).all():
            return self(x, np.ones(self.num_keypoints), t)[0].astype(np.float64)  # checks, starts, holds
        t = float(t)
        dt = t - self._t_prev if t > self._t_prev else 1e-6  # (synced: there was a previous frame)
        # one dt for every keypoint, a float: the lifters call this five times a frame, and per-keypoint dt arrays
        # were half its time
        self._update(x, dt, slice(None))
        self._t_prev = t = self._t_prev + dt
        self._t_good.fill(t)
        self._score_good.fill(1.0)
        return self._x.copy()

    def _update(self, x: np.ndarray, dt: float | np.ndarray, idx: slice | np.ndarray) -> None:
        """The One Euro step of the keypoints ``idx`` (all: a slice, no copies) over ``dt``: one for all, or (n, 1),
        each keypoint's time since its last update."""
        # smoothing_factor's arithmetic, inlined: its array conversions were a third of a lifter filter's time
        x_prev = self._x[idx]
        alpha_d = 1.0 / (1.0 + (1.0 / (_TWO_PI * self.d_cutoff)) / dt)
        dx_hat = self._dx[idx] + alpha_d * ((x[idx] - x_prev) / dt - self._dx[idx])
        fc = self.min_cutoff + self.beta * np.sqrt(np.einsum("ij,ij->i", dx_hat, dx_hat))[:, None]
        self._x[idx] = x_prev + 1.0 / (1.0 + (1.0 / (_TWO_PI * fc)) / dt) * (x[idx] - x_prev)
        self._dx[idx] = dx_hat
