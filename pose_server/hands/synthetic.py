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


def convention_fixture(seed: int = 11) -> dict:
    """Both hands of one performer as the server sends them, with what the add-on must make of them: the
    finger angles, each hand bone's rotation relative to its parent in the world frame (D_parent^T D_bone; the
    palm's parent is the forearm, at rest here) and the palm's world delta. tests/data/hand_pose.json holds
    it; tests/server checks it against this code, tests/addon drives armatures with it (real bpy)."""
    from .model import BASE_REST, local_rotations, mirrored
    from .tracker import REST_FRAMES, hand_quaternions

    rng = np.random.default_rng(seed)
    out: dict = {"hands": [], "angles_deg": [], "relative": [], "palm_delta": []}
    for side in ("L", "R"):
        angles = random_angles(rng, margin=0.15)
        palm = Rotation.from_euler("xyz", rng.uniform(-0.6, 0.6, 3)).as_matrix() @ REST_FRAMES[side]
        local = mirrored(side, local_rotations(angles)).reshape(5, 3, 3, 3)
        rest_rel = mirrored(side, BASE_REST)
        rel = []
        for f in range(5):
            rest = REST_FRAMES[side] @ rest_rel[f]  # every bone of a finger rests like its first bone
            for j in range(3):
                rel.append(rest @ local[f, j] @ rest.T)
        delta = palm @ REST_FRAMES[side].T
        out["hands"].append(np.round(hand_quaternions(side, palm, angles), 3).tolist())
        out["angles_deg"].append(np.round(np.degrees(angles), 6).tolist())
        out["relative"].append(np.round(np.stack([delta, *rel]), 6).tolist())
        out["palm_delta"].append(np.round(delta, 6).tolist())
    return out
