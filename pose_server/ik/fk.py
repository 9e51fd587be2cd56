"""Forward kinematics of the canonical skeleton: protocol v2 rotations -> COCO-17 joints."""

from __future__ import annotations

import numpy as np

from pose_server.ik.solve import forward_rotations
from pose_server.lift.skeleton3d import CANONICAL_BONES, REST_JOINTS, REST_ROTATIONS, J, derived_points

__all__ = ["fk_joints"]

_B = {b: i for i, b in enumerate(CANONICAL_BONES)}
_REST = derived_points(REST_JOINTS)
_LIMB_BONES = (
    ("upper_arm.L", "l_shoulder", "l_elbow"), ("forearm.L", "l_elbow", "l_wrist"),
    ("upper_arm.R", "r_shoulder", "r_elbow"), ("forearm.R", "r_elbow", "r_wrist"),
    ("thigh.L", "l_hip", "l_knee"), ("shin.L", "l_knee", "l_ankle"),
    ("thigh.R", "r_hip", "r_knee"), ("shin.R", "r_knee", "r_ankle"),
)  # fmt: skip


def _local_offset(world: np.ndarray, bone: str, rest_offset: np.ndarray) -> np.ndarray:
    """A rest-pose offset carried rigidly by a bone: W[b] R[b]^T offset."""
    return world[_B[bone]] @ REST_ROTATIONS[bone].T @ rest_offset


def fk_joints(
    quats: np.ndarray, pelvis: np.ndarray | None = None, joints_rest: np.ndarray = REST_JOINTS
) -> np.ndarray:
    """(12, 4) quaternions [w, x, y, z] -> (17, 3) joints of the skeleton ``joints_rest`` (default: the rest pose),
    with the pelvis at ``pelvis`` (default: its rest position)."""
    world = forward_rotations(np.asarray(quats))
    rest = derived_points(joints_rest)
    r = joints_rest
    out = np.zeros((17, 3))
    pel = rest["pelvis"] if pelvis is None else np.asarray(pelvis, dtype=float)
    for k in ("l_hip", "r_hip"):
        out[J[k]] = pel + _local_offset(world, "hips", r[J[k]] - rest["pelvis"])
    mid_sh = pel + world[_B["spine"]][:, 1] * np.linalg.norm(rest["mid_shoulder"] - rest["pelvis"])
    for k in ("l_shoulder", "r_shoulder"):
        out[J[k]] = mid_sh + _local_offset(world, "spine", r[J[k]] - rest["mid_shoulder"])
    for bone, a, b in _LIMB_BONES:
        out[J[b]] = out[J[a]] + world[_B[bone]][:, 1] * np.linalg.norm(r[J[b]] - r[J[a]])
    mid_ear = mid_sh + world[_B["neck"]][:, 1] * np.linalg.norm(rest["mid_ear"] - rest["mid_shoulder"])
    for k in ("nose", "l_eye", "r_eye", "l_ear", "r_ear"):
        out[J[k]] = mid_ear + _local_offset(world, "head", r[J[k]] - rest["mid_ear"])
    return out
