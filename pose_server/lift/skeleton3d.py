"""The canonical 3D skeleton: COCO-17 joints, the 12 bones of protocol v2, the rest pose and bone-length priors.

World frame everywhere: metres, right-handed, Z up, the performer facing -Y (so their left is +X).
The rest pose is a T-pose of a 1.75 m adult standing on the floor (Z = 0) with the pelvis above the
origin. ``docs/lifting.md`` lists the same numbers for the Blender rig.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "COCO17",
    "J",
    "CANONICAL_BONES",
    "BONE_PARENT",
    "REST_JOINTS",
    "REST_ROTATIONS",
    "REST_HEIGHT",
    "LIMB_SEGMENTS",
    "derived_points",
    "bone_endpoints",
    "segment_lengths",
]

COCO17 = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)  # fmt: skip
J = {name: i for i, name in enumerate(COCO17)}

CANONICAL_BONES = (
    "hips", "spine", "neck", "head", "upper_arm.L", "forearm.L", "upper_arm.R", "forearm.R",
    "thigh.L", "shin.L", "thigh.R", "shin.R",
)  # fmt: skip
BONE_PARENT = {
    "hips": None, "spine": "hips", "neck": "spine", "head": "neck",
    "upper_arm.L": "spine", "forearm.L": "upper_arm.L", "upper_arm.R": "spine", "forearm.R": "upper_arm.R",
    "thigh.L": "hips", "shin.L": "thigh.L", "thigh.R": "hips", "shin.R": "thigh.R",
}  # fmt: skip

REST_HEIGHT = 1.75  # top of the head, metres
HIPS_LENGTH = 0.10  # the short root bone pointing up
HEAD_LENGTH = 0.15  # mid-ear point to the top of the head

# T-pose, facing -Y, left = +X. Eyes/nose/ears: a head 15 cm wide, eyes 9 cm in front of the ear line.
REST_JOINTS = np.array(
    [
        [0.000, -0.100, 1.580],  # nose
        [0.032, -0.085, 1.625],  # l_eye
        [-0.032, -0.085, 1.625],  # r_eye
        [0.075, 0.000, 1.600],  # l_ear
        [-0.075, 0.000, 1.600],  # r_ear
        [0.190, 0.000, 1.440],  # l_shoulder
        [-0.190, 0.000, 1.440],  # r_shoulder
        [0.470, 0.000, 1.440],  # l_elbow
        [-0.470, 0.000, 1.440],  # r_elbow
        [0.720, 0.000, 1.440],  # l_wrist
        [-0.720, 0.000, 1.440],  # r_wrist
        [0.095, 0.000, 0.920],  # l_hip
        [-0.095, 0.000, 0.920],  # r_hip
        [0.095, 0.000, 0.490],  # l_knee
        [-0.095, 0.000, 0.490],  # r_knee
        [0.095, 0.000, 0.080],  # l_ankle
        [-0.095, 0.000, 0.080],  # r_ankle
    ]
)

# Rest orientation of each bone in the world: columns are the bone's local X, Y (head to tail), Z axes.
_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=float)  # X=+X, Y=+Z, Z=-Y   (Blender roll 0)
_ARM_L = np.array([[0, 1, 0], [0, 0, -1], [-1, 0, 0]], dtype=float)  # X=-Z, Y=+X, Z=-Y: elbow bends about +X
_ARM_R = np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], dtype=float)  # X=+Z, Y=-X, Z=-Y
_LEG = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=float)  # X=+X, Y=-Z, Z=+Y   (Blender roll 0)
REST_ROTATIONS = {
    "hips": _UP, "spine": _UP, "neck": _UP, "head": _UP,
    "upper_arm.L": _ARM_L, "forearm.L": _ARM_L, "upper_arm.R": _ARM_R, "forearm.R": _ARM_R,
    "thigh.L": _LEG, "shin.L": _LEG, "thigh.R": _LEG, "shin.R": _LEG,
}  # fmt: skip

# Segments between COCO joints used as length priors by the lifter: (parent, child).
LIMB_SEGMENTS = (
    (J["l_shoulder"], J["l_elbow"]), (J["l_elbow"], J["l_wrist"]),
    (J["r_shoulder"], J["r_elbow"]), (J["r_elbow"], J["r_wrist"]),
    (J["l_hip"], J["l_knee"]), (J["l_knee"], J["l_ankle"]),
    (J["r_hip"], J["r_knee"]), (J["r_knee"], J["r_ankle"]),
)  # fmt: skip


def derived_points(joints: np.ndarray) -> dict[str, np.ndarray]:
    """Pelvis, mid-shoulder and mid-ear points of (..., 17, 3) joints."""
    return {
        "pelvis": 0.5 * (joints[..., J["l_hip"], :] + joints[..., J["r_hip"], :]),
        "mid_shoulder": 0.5 * (joints[..., J["l_shoulder"], :] + joints[..., J["r_shoulder"], :]),
        "mid_ear": 0.5 * (joints[..., J["l_ear"], :] + joints[..., J["r_ear"], :]),
    }


def bone_endpoints(joints: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Head and tail of every canonical bone for (17, 3) joints (hips/head tails lie along their rest Y)."""
    d = derived_points(joints)
    up = np.array([0.0, 0.0, 1.0])
    return {
        "hips": (d["pelvis"], d["pelvis"] + HIPS_LENGTH * up),
        "spine": (d["pelvis"], d["mid_shoulder"]),
        "neck": (d["mid_shoulder"], d["mid_ear"]),
        "head": (d["mid_ear"], d["mid_ear"] + HEAD_LENGTH * up),
        "upper_arm.L": (joints[J["l_shoulder"]], joints[J["l_elbow"]]),
        "forearm.L": (joints[J["l_elbow"]], joints[J["l_wrist"]]),
        "upper_arm.R": (joints[J["r_shoulder"]], joints[J["r_elbow"]]),
        "forearm.R": (joints[J["r_elbow"]], joints[J["r_wrist"]]),
        "thigh.L": (joints[J["l_hip"]], joints[J["l_knee"]]),
        "shin.L": (joints[J["l_knee"]], joints[J["l_ankle"]]),
        "thigh.R": (joints[J["r_hip"]], joints[J["r_knee"]]),
        "shin.R": (joints[J["r_knee"]], joints[J["r_ankle"]]),
    }


# Segments whose length is constant on a rigid skeleton; used for the bone-length CV metric and priors.
RIGID_SEGMENTS = LIMB_SEGMENTS + (
    (J["l_shoulder"], J["r_shoulder"]), (J["l_hip"], J["r_hip"]), (J["l_ear"], J["r_ear"]),
)  # fmt: skip


def segment_lengths(joints: np.ndarray, segments: tuple = RIGID_SEGMENTS) -> np.ndarray:
    """Lengths (..., S) of the given (parent, child) segments of (..., 17, 3) joints."""
    a = np.array([s[0] for s in segments])
    b = np.array([s[1] for s in segments])
    return np.linalg.norm(joints[..., b, :] - joints[..., a, :], axis=-1)
