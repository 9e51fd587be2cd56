"""Output smoothing of the lifted pose (One Euro, adapted to the input's noise) and the rigid bone fit after it."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from pose_server.filters import KeypointFilter
from pose_server.lift.proportions import FACE, HALF_CENTRE, LH, LS, RH, RS, SEGMENT_FROM, SEGMENT_NAMES, SEGMENT_TO
from pose_server.lift.skeleton3d import J

CORE = [*FACE, LS, RS, LH, RH]  # head and trunk: depth from short lines (hips 14 cm), smoothed more
_LEAR, _REAR = J["l_ear"], J["r_ear"]
# rigid's segments: (from row, to row, length name, the row a half-width line lies about or None)
_SEGMENTS = [(a, b, name, HALF_CENTRE.get(name))
             for a, b, name in zip(SEGMENT_FROM.tolist(), SEGMENT_TO.tolist(), SEGMENT_NAMES, strict=True)]


class OutputSmoother:
    """Smooths a root-relative pose (17, 3; world axes, Y = depth) and its root path separately.

    A walk's speed must not make the limbs lag, so body and path get their own filters. Depth is far noisier
    than the image-plane axes: it gets its own, lower cutoffs, and the head and trunk depths ``core_depth_ratio``
    of those (they come from short lines). The face then gets a second stage relative to the shoulders
    (``face_ratio`` times the body's cutoffs): its points carry the trunk's noise too, while the head moves slowly
    on the shoulders. With ``adaptive``, the cutoffs follow the measured noise (``adapt``)."""

    def __init__(self, min_cutoff: float, beta: float, depth_min_cutoff: float, depth_beta: float,
                 adaptive: bool = True) -> None:  # fmt: skip
        self.adaptive = adaptive
        # Noise-adaptive smoothing: the cutoffs are multiplied by noise_ref / measured noise (image-plane axes,
        # depth), within adapt_range: clean input is barely smoothed, noisy input gets the configured cutoffs.
        self.noise_ref, self.adapt_range = (0.015, 0.025), (1.0, 10.0)
        self.core_depth_ratio = 0.6
        self.face_ratio, self.face_smoothing = 1.5, True
        self._filter_params = {"min_cutoff": min_cutoff, "beta": beta}
        self._depth_params = {"min_cutoff": depth_min_cutoff, "beta": depth_beta}
        self.reset()

    def reset(self) -> None:
        """New filters with the configured cutoffs; the noise measurement starts again."""
        self._plane = KeypointFilter(17, 2, min_score=0.0, hold_s=0.0, **self._filter_params)
        self._depth = KeypointFilter(17, 1, min_score=0.0, hold_s=0.0, **self._depth_params)
        self._root = KeypointFilter(1, 3, min_cutoff=1.0, beta=0.5, min_score=0.0, hold_s=0.0)
        self._core_depth = KeypointFilter(len(CORE), 1, min_score=0.0, hold_s=0.0, **self._core_params())
        self._face = KeypointFilter(len(FACE), 3, min_score=0.0, hold_s=0.0, **self._face_params())
        self._raw_hist: deque[np.ndarray] = deque(maxlen=4)  # unsmoothed root-relative pose, last 4 frames
        self._noise: deque[tuple[float, float]] = deque(maxlen=30)  # its jerk per frame: image plane, depth

    def restart(self) -> None:
        """Forget the motion (the performer was lost) but keep the cutoffs and the noise measured so far."""
        for f in (self._plane, self._depth, self._root, self._core_depth, self._face):
            f.reset()
        self._raw_hist.clear()

    def set_params(self, **params: float) -> None:
        """Live tuning: min_cutoff, beta (image-plane axes), depth_min_cutoff, depth_beta."""
        for name in ("depth_min_cutoff", "depth_beta"):
            if name in params:
                self._depth_params[name.removeprefix("depth_")] = float(params.pop(name))
        self._filter_params.update(params)
        self._plane.set_params(**self._filter_params)
        self._depth.set_params(**self._depth_params)
        self._core_depth.set_params(**self._core_params())
        self._face.set_params(**self._face_params())

    def _face_params(self) -> dict[str, float]:
        return {k: v * self.face_ratio for k, v in self._filter_params.items()}

    def _core_params(self) -> dict[str, float]:
        return {k: v * self.core_depth_ratio for k, v in self._depth_params.items()}

    def __call__(self, root: np.ndarray, rel: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Smoothed (root (3,), root-relative pose (17, 3)) at time ``t`` (s); ``rel`` is smoothed in place."""
        if self.adaptive:
            self.adapt(rel)
        ones = np.ones(17)
        rel[:, [0, 2]] = self._plane(rel[:, [0, 2]], ones, t)[0]
        depth = self._depth(rel[:, [1]], ones, t)[0]
        depth[CORE] = self._core_depth(rel[CORE][:, [1]], ones[CORE], t)[0]
        rel[:, [1]] = depth
        if self.face_smoothing:
            # The face points come from short lines (eyes 6 cm apart) and carry the trunk's noise too: a second
            # stage on the face relative to the shoulders, where the head moves slowly, removes what is left.
            mid_sh = 0.5 * (rel[LS] + rel[RS])
            face = self._face(rel[list(FACE)] - mid_sh, np.ones(len(FACE)), t)[0]
            rel[list(FACE)] = mid_sh + face
        root = self._root(root[None], np.ones(1), t)[0][0].astype(np.float64)
        return root, rel

    def adapt(self, rel: np.ndarray) -> None:
        """Scale the cutoffs by how noisy the unsmoothed pose is. The third difference over four frames is tiny
        for body motion at video rates (a few mm) but large for detector noise (2-3 px: 2-8 cm), so its median
        over joints and the last second measures the noise and not the motion."""
        self._raw_hist.append(rel.copy())
        if len(self._raw_hist) < 4:
            return
        h = self._raw_hist
        jerk = h[3] - 3 * h[2] + 3 * h[1] - h[0]
        plane, depth = np.median(np.linalg.norm(jerk[:, [0, 2]], axis=1)), np.median(np.abs(jerk[:, 1]))
        self._noise.append((float(plane), float(depth)))
        noise = np.median(np.array(self._noise), axis=0)
        scale = np.clip(np.array(self.noise_ref) / np.maximum(noise, 1e-6), *self.adapt_range)
        self._plane.set_params(**{k: v * scale[0] for k, v in self._filter_params.items()})
        self._depth.set_params(**{k: v * scale[1] for k, v in self._depth_params.items()})
        self._core_depth.set_params(**{k: v * scale[1] for k, v in self._core_params().items()})
        self._face.set_params(**{k: v * scale[0] for k, v in self._face_params().items()})


def _scaled(a: list[float], b: list[float], length: float) -> list[float]:
    """The vector from a to b given ``length`` (plain floats)."""
    x, y, z = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    s = length / (math.sqrt(x * x + y * y + z * z) + 1e-9)
    return [x * s, y * s, z * s]


def midpoint(a: list[float], b: list[float]) -> list[float]:
    """The midpoint of two 3-vectors (plain floats: see rigid)."""
    return [0.5 * (a[0] + b[0]), 0.5 * (a[1] + b[1]), 0.5 * (a[2] + b[2])]


def rigid(rel: np.ndarray, lengths: dict[str, float]) -> np.ndarray:
    """Give every bone of a root-relative pose its length again (smoothing and image noise stretch them),
    keeping the directions: measure_lengths' segments (proportions.py), placed from the pelvis out, the half-width
    lines about their midpoints. (Plain floats: numpy 1.26 gives up the interpreter lock for every array copy,
    however small, and the index assignments of an array version did 20 a frame; beside a thread running Python
    each one may wait its switch interval.)"""
    p = rel.tolist()
    ext = [*p, [0.0, 0.0, 0.0], midpoint(p[LS], p[RS]), midpoint(p[_LEAR], p[_REAR])]
    out: list[list[float]] = [[]] * 20
    out[17] = ext[17]
    for a, b, name, centre in _SEGMENTS:  # parents first
        x, y, z = _scaled(ext[a], ext[b], lengths[name])
        o = out[a if centre is None else centre]
        out[b] = [o[0] + x, o[1] + y, o[2] + z]
        if centre is not None:
            out[a] = [o[0] - x, o[1] - y, o[2] - z]
    return np.array(out[:17])
