"""Rotation helpers on 3-vectors in plain floats, shared by the lifter and the IK (numpy's per-call cost on three
numbers is most of the work there)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["axis_angle"]


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """The rotation by ``angle`` about ``axis`` (Rodrigues: c I + s [k]x + (1 - c) k k^T), in plain floats (numpy's
    per-call cost on 3-vectors tripled it): twelve a frame in the IK, one in the learned lifter's turn fit."""
    n = math.sqrt(float(axis @ axis))
    x, y, z = (float(v) / n for v in axis)
    s, c = math.sin(angle), math.cos(angle)
    t = 1.0 - c
    return np.array([[c + t * x * x, t * x * y - s * z, t * x * z + s * y],
                     [t * x * y + s * z, c + t * y * y, t * y * z - s * x],
                     [t * x * z - s * y, t * y * z + s * x, c + t * z * z]])
