"""Procedural hands for tests and scripts/bench_hands.py: known finger angles and wrist orientation,
seen by a virtual pinhole camera (lift/camera.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from pose_server.lift.camera import PinholeCamera

from .model import HIGH, LOW, MIRROR, forward


@dataclass
class SyntheticHand:
    side: str
    angles: np.ndarray  # (20,) radians, left-hand convention
    world_rotation: np.ndarray  # (3, 3) hand-local -> world
    wrist: np.ndarray  # (3,) world metres
    camera_rotation: np.ndarray  # (3, 3) hand-local -> camera
    pixels: np.ndarray  # (21, 2)


def random_angles(rng: np.random.Generator, margin: float = 0.1) -> np.ndarray:
    """Finger angles drawn uniformly inside the limits, ``margin`` (fraction of each range) away from them."""
    span = HIGH - LOW
    return rng.uniform(LOW + margin * span, HIGH - margin * span)


def random_hand(rng: np.random.Generator, side: str, camera: PinholeCamera, wrist: np.ndarray,
                angles: np.ndarray | None = None, noise_px: float = 0.0, scale: float = 1.0) -> SyntheticHand:
    """A hand with random angles (unless given) and a uniformly random wrist orientation, projected by
    ``camera`` with Gaussian pixel noise of ``noise_px`` (standard deviation per coordinate)."""
    angles = random_angles(rng) if angles is None else np.asarray(angles, dtype=np.float64)
    rot = Rotation.random(random_state=rng).as_matrix()
    local, _ = forward(angles, scale)
    if side == "R":
        local = local @ MIRROR
    world = np.asarray(wrist, dtype=np.float64) + local @ rot.T
    pixels = camera.project(world) + rng.normal(scale=noise_px, size=(21, 2)) * (noise_px > 0)
    return SyntheticHand(side, angles, rot, np.asarray(wrist, dtype=np.float64), camera.r_cw @ rot, pixels)
