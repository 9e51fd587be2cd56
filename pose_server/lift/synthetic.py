"""A procedural walker on the canonical skeleton, for tests and demos (no mocap files needed)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from pose_server.ik.fk import fk_joints
from pose_server.lift.skeleton3d import CANONICAL_BONES, REST_HEIGHT, REST_JOINTS, J

__all__ = ["walk"]

_B = {b: i for i, b in enumerate(CANONICAL_BONES)}


def _quat(axes: str, *angles: np.ndarray | float) -> np.ndarray:
    """(n, 4) [w, x, y, z] quaternions of intrinsic Euler rotations (angles in radians, broadcast to n)."""
    n = max(np.size(a) for a in angles)
    q = Rotation.from_euler(axes, np.stack([np.broadcast_to(a, (n,)) for a in angles], axis=1)).as_quat()
    return np.concatenate([q[:, 3:], q[:, :3]], axis=1)


def walk(
    seconds: float = 6.0,
    fps: float = 30.0,
    height: float = REST_HEIGHT,
    speed: float = 1.1,
    cadence_hz: float = 0.9,
    heading_deg: float = 0.0,
    turn_deg_s: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Walking in place along the facing direction: (F, 17, 3) world joints (Z up) and (F, 12, 4) rotations.

    heading 0 walks towards -Y (facing -Y); ``turn_deg_s`` makes the path curve."""
    n = int(round(seconds * fps))
    t = np.arange(n) / fps
    phase = 2 * np.pi * cadence_hz * t
    rest = REST_JOINTS * (height / REST_HEIGHT)
    quats = np.zeros((n, 12, 4))
    quats[:, :, 0] = 1.0
    yaw = np.radians(heading_deg + turn_deg_s * t)
    quats[:, _B["hips"]] = _quat("z", yaw)
    quats[:, _B["spine"]] = _quat("xy", 0.05, 0.08 * np.sin(phase))
    quats[:, _B["neck"]] = _quat("x", 0.1 + 0.03 * np.sin(2 * phase))
    quats[:, _B["head"]] = _quat("xz", 0.05 * np.sin(phase), 0.1 * np.sin(0.3 * phase))
    for side, off, down in (("L", 0.0, -np.pi / 2), ("R", np.pi, np.pi / 2)):
        hip = -0.45 * np.sin(phase + off)  # flexion swings the knee forwards (-Y): negative about local X
        knee = 0.1 + 0.55 * np.clip(np.sin(phase + off + 1.2), 0, None) ** 1.5
        swing = 0.35 * np.sin(phase + off)  # arms swing against the legs
        elbow = 0.35 + 0.2 * np.clip(np.sin(phase + off), 0, None)
        quats[:, _B[f"thigh.{side}"]] = _quat("x", hip)
        quats[:, _B[f"shin.{side}"]] = _quat("x", knee)
        quats[:, _B[f"upper_arm.{side}"]] = _quat("ZX", down, swing)
        quats[:, _B[f"forearm.{side}"]] = _quat("x", elbow)
    joints = np.stack([fk_joints(q, pelvis=np.zeros(3), joints_rest=rest) for q in quats])
    direction = np.stack([np.sin(yaw), -np.cos(yaw)], axis=1)
    path = np.cumsum(direction * speed / fps, axis=0)
    joints[:, :, :2] += path[:, None, :]
    ankle_h = rest[J["l_ankle"], 2]
    joints[:, :, 2] += ankle_h - joints[:, [J["l_ankle"], J["r_ankle"]], 2].min(axis=1, keepdims=True)
    return joints, quats
