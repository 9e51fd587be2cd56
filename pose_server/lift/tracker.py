"""Causal choice among depth hypotheses: a min-sum (Viterbi forward) tracker per body part."""

from __future__ import annotations

import numpy as np


class HypothesisTracker:
    """Picks, each frame, the hypothesis with the cheapest history: its prior cost now plus the cheapest way to
    reach it from last frame's hypotheses. Moving joints costs ``w_time`` per m^2 away from where the path's
    velocity (``vel_gain`` of it expected to continue) was heading, so depth signs stay continuous, and a branch
    taken at an ambiguous moment (bone parallel to the image) is left as soon as the priors accumulate against it.
    """

    def __init__(self, w_time: float = 40.0, vel_gain: float = 0.7, jump_m: float = 0.1) -> None:
        self.w_time, self.vel_gain = w_time, vel_gain
        self.jump_m = jump_m  # a path more than this (m per joint, RMS) off its expected place has jumped branches
        self._paths: dict[object, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # key -> cost, points, velocity

    def __call__(self, key: object, emission: np.ndarray, points: np.ndarray) -> int:
        """Index of the chosen hypothesis among ``points`` (S, n, 3) with prior costs ``emission`` (S,)."""
        prev = self._paths.get(key)
        cost, vel = emission, np.zeros_like(points)
        if prev is not None and prev[1].shape == points.shape:
            p_cost, p_pts, p_vel = prev
            expect = p_pts + self.vel_gain * p_vel  # constant velocity: a bone bouncing off the image plane costs
            move = ((points[None] - expect[:, None]) ** 2).sum(axis=(2, 3))
            total = p_cost[:, None] + self.w_time * move
            came_from = np.argmin(total, axis=0)
            came = np.arange(len(points))
            cost = emission + total[came_from, came]
            vel = points - p_pts[came_from]
            # A path that has just jumped to the other depth solution has no velocity yet. Counting the jump as
            # motion would make the new branch overshoot, and pay for it, in every following frame: it could
            # then never win however strongly the priors favour it.
            vel[move[came_from, came] > self.jump_m**2 * points.shape[1]] = 0.0
        cost = cost - cost.min()
        self._paths[key] = (cost, points, vel)
        return int(np.argmin(cost))

    def drop(self, key: object) -> None:
        """Forget one body part's history (its hypotheses changed shape or it is not seen)."""
        self._paths.pop(key, None)

    def clear(self) -> None:
        """Forget every history (the performer is gone)."""
        self._paths.clear()
