"""Joints -> per-bone rotations of the canonical skeleton (protocol v2), analytic, with joint limits.

Convention (docs/lifting.md): ``W[b]`` is a bone's world orientation (columns: its local X, Y = head to
tail, Z), ``R[b]`` its rest orientation (``skeleton3d.REST_ROTATIONS``). The hips quaternion is a
world-frame rotation, ``W[hips] = Q[hips] R[hips]``; every other bone's quaternion is local to its own
rest frame under its posed parent, ``W[b] = W[parent] R[parent]^T R[b] Q[b]`` (Blender's pose-bone
``rotation_quaternion`` with inherited rotation).

Two-bone limbs are solved in closed form: the upper bone swings from its rest direction (carried by
its parent) onto the joint direction, then twists about itself so that the limb bends towards its
local +Z (the hinge is local X); the twist is limited, and the lower bone gets only a hinge rotation
about X clamped to [0, max flexion], so elbows and knees bend one way only.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial.transform import Rotation

from pose_server.lift.rotation import axis_angle
from pose_server.lift.skeleton3d import BONE_PARENT, CANONICAL_BONES, REST_JOINTS, REST_ROTATIONS, J

__all__ = ["solve_rotations", "forward_rotations", "quaternions", "JOINT_LIMITS_DEG"]

# Degrees. twist: upper bone about its own axis away from the swing-only twist; flex: hinge range of the
# lower bone (0 = straight); cone: largest rotation of the trunk bones from their rest pose under the parent.
JOINT_LIMITS_DEG = {
    "arm_twist": 100.0,
    "leg_twist": 50.0,
    "elbow_flex": 150.0,
    "knee_flex": 150.0,
    "spine_cone": 70.0,
    "neck_cone": 60.0,
    "head_cone": 70.0,
}
_LIMBS = (
    ("upper_arm.L", "forearm.L", J["l_shoulder"], J["l_elbow"], J["l_wrist"], "arm", "elbow"),
    ("upper_arm.R", "forearm.R", J["r_shoulder"], J["r_elbow"], J["r_wrist"], "arm", "elbow"),
    ("thigh.L", "shin.L", J["l_hip"], J["l_knee"], J["l_ankle"], "leg", "knee"),
    ("thigh.R", "shin.R", J["r_hip"], J["r_knee"], J["r_ankle"], "leg", "knee"),
)
_REST = np.array([REST_ROTATIONS[b] for b in CANONICAL_BONES])
_PARENT = [CANONICAL_BONES.index(BONE_PARENT[b]) if BONE_PARENT[b] else -1 for b in CANONICAL_BONES]
# Rest of a child expressed in its parent's rest frame: R[parent]^T R[b].
_REST_REL = np.array([_REST[p].T @ _REST[i] if p >= 0 else _REST[i] for i, p in enumerate(_PARENT)])
_IDX = {b: i for i, b in enumerate(CANONICAL_BONES)}


def _norm(v: np.ndarray) -> float:
    """A 3-vector's length. (np.linalg.norm takes it through BLAS's dot, which gives up the GIL: beside a thread
    running Python each release may wait a switch interval, and the IK made about 40 of them a frame.)"""
    return math.sqrt(float(v @ v))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cross product of two 3-vectors (np.cross: a dozen array calls for six products)."""
    (a0, a1, a2), (b0, b1, b2) = a.tolist(), b.tolist()
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def _unit(v: np.ndarray) -> np.ndarray:
    n = _norm(v)
    if n < 1e-9:
        raise ValueError("degenerate skeleton: two joints coincide; cannot derive a bone direction")
    return v / n


def _frame_x(x: np.ndarray, y_hint: np.ndarray) -> np.ndarray:
    """Orthonormal frame with X exactly along x and Y as close as possible to y_hint (columns X, Y, Z)."""
    xa = _unit(x)
    ya = _unit(y_hint - (y_hint @ xa) * xa)
    return np.column_stack([xa, ya, _cross(xa, ya)])


def _frame_y(y: np.ndarray, x_hint: np.ndarray) -> np.ndarray:
    """Orthonormal frame with Y exactly along y and X as close as possible to x_hint."""
    ya = _unit(y)
    xa = _unit(x_hint - (x_hint @ ya) * ya)
    return np.column_stack([xa, ya, _cross(xa, ya)])


def _rot_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector a onto unit vector b."""
    axis = _cross(a, b)
    s, c = _norm(axis), float(a @ b)
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        perp = _cross(a, np.array([1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0]))
        return axis_angle(perp, np.pi)
    return axis_angle(axis, np.arctan2(s, c))


# A limb swung far from its rest direction: beyond _DETOUR[0] radians the smallest rotation is blended into one that
# goes through the body's forward direction (fully at _DETOUR[1]). Near the rest direction's antipode the smallest
# rotation's axis turns over within a degree: a straight arm swept across the chest snapped 38 degrees in twist in
# one frame. Both point the bone along the joints; they differ only in twist about it. (The add-on's
# retarget.swing does the same: blender_addon/core/retarget.py.)
_DETOUR = (math.radians(120.0), math.radians(160.0))
_FORWARD = np.array([0.0, -1.0, 0.0])  # where the canonical body faces


def _swing(carried: np.ndarray, d: np.ndarray, ahead: np.ndarray) -> np.ndarray:
    """The rotation taking unit vector `carried` onto `d`: the smallest one, or far from it a detour through
    `ahead` (a unit vector perpendicular to `carried`)."""
    direct = _rot_between(carried, d)
    lo, hi = _DETOUR
    w = min(max((math.acos(min(max(float(carried @ d), -1.0), 1.0)) - lo) / (hi - lo), 0.0), 1.0)
    if w <= 0.0:
        return direct
    detour = _rot_between(ahead, d) @ _rot_between(carried, ahead)
    m = detour @ direct.T  # a turn about d: blend its angle
    angle = math.atan2(0.5 * float(np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]) @ d),
                       0.5 * (float(np.trace(m)) - 1.0))
    return axis_angle(d, angle * w * w * (3.0 - 2.0 * w)) @ direct


def _quaternion(m: np.ndarray) -> list[float]:
    """A rotation matrix -> its unit quaternion [w, x, y, z], w >= 0, from the largest of w, x, y, z (the
    well-conditioned branch, as scipy's from_matrix). In plain floats because scipy's Rotation costs about 0.25 ms a
    call in its argument checks, and the IK made four calls a frame for 13 matrices."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = m.tolist()
    tr = m00 + m11 + m22
    if tr >= max(m00, m11, m22):
        q = [1.0 + tr, m21 - m12, m02 - m20, m10 - m01]
    elif m00 >= m11 and m00 >= m22:
        q = [m21 - m12, 1.0 + m00 - m11 - m22, m01 + m10, m02 + m20]
    elif m11 >= m22:
        q = [m02 - m20, m01 + m10, 1.0 + m11 - m00 - m22, m12 + m21]
    else:
        q = [m10 - m01, m02 + m20, m12 + m21, 1.0 + m22 - m00 - m11]
    n = math.copysign(math.sqrt(sum(c * c for c in q)), q[0])
    return [c / n for c in q]


def quaternions(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions [w, x, y, z], w >= 0 (``_quaternion`` each). For
    orthonormal matrices (the IK's and the hands' are, to 1e-15): unlike scipy it does not orthogonalise others."""
    m = np.asarray(m, dtype=np.float64)
    return np.array([_quaternion(r) for r in m.reshape(-1, 3, 3)]).reshape(*m.shape[:-2], 4)


def _limit_cone(local: np.ndarray, max_deg: float) -> np.ndarray:
    """Scale a local rotation's angle down to max_deg (keeps its axis)."""
    w, x, y, z = _quaternion(local)
    lim = math.radians(max_deg)
    if 2.0 * math.atan2(math.sqrt(x * x + y * y + z * z), w) <= lim:
        return local
    return axis_angle(np.array([x, y, z]), lim)


def _child_world(world: np.ndarray, i: int, local: np.ndarray) -> np.ndarray:
    return world[_PARENT[i]] @ _REST_REL[i] @ local


def solve_rotations(joints_3d: np.ndarray) -> np.ndarray:
    """(17, 3) COCO-17 world joints (Z up, facing -Y) -> (12, 4) unit quaternions [w, x, y, z]."""
    p = np.asarray(joints_3d, dtype=np.float64)
    if p.shape != (17, 3) or not np.isfinite(p).all():
        raise ValueError(f"solve_rotations expects finite COCO-17 joints of shape (17, 3), got {p.shape}")
    lim = JOINT_LIMITS_DEG
    world = np.zeros((12, 3, 3))
    local = np.zeros((12, 3, 3))
    pelvis = 0.5 * (p[J["l_hip"]] + p[J["r_hip"]])
    mid_sh = 0.5 * (p[J["l_shoulder"]] + p[J["r_shoulder"]])
    mid_ear = 0.5 * (p[J["l_ear"]] + p[J["r_ear"]])

    # Trunk: hips from the hip line (X) and the spine (Y); spine/neck follow their bone, rolled by the
    # shoulder/ear line; the head from the ear line and the nose.
    world[0] = _frame_x(p[J["l_hip"]] - p[J["r_hip"]], mid_sh - pelvis)
    local[0] = world[0] @ _REST[0].T
    trunk = (
        ("spine", mid_sh - pelvis, p[J["l_shoulder"]] - p[J["r_shoulder"]], lim["spine_cone"]),
        ("neck", mid_ear - mid_sh, p[J["l_ear"]] - p[J["r_ear"]], lim["neck_cone"]),
    )
    for name, y, x_hint, cone in trunk:
        i = _IDX[name]
        target = _frame_y(y, x_hint)
        base = world[_PARENT[i]] @ _REST_REL[i]
        local[i] = _limit_cone(base.T @ target, cone)
        world[i] = base @ local[i]
    rest_me = 0.5 * (REST_JOINTS[J["l_ear"]] + REST_JOINTS[J["r_ear"]])
    face_now = _frame_x(p[J["l_ear"]] - p[J["r_ear"]], mid_ear - p[J["nose"]])
    face_rest = _frame_x(REST_JOINTS[J["l_ear"]] - REST_JOINTS[J["r_ear"]], rest_me - REST_JOINTS[J["nose"]])
    i = _IDX["head"]
    base = world[_PARENT[i]] @ _REST_REL[i]
    local[i] = _limit_cone(base.T @ face_now @ face_rest.T @ _REST[i], lim["head_cone"])
    world[i] = base @ local[i]

    for upper, lower, a, b, c, kind, hinge in _LIMBS:
        iu, il = _IDX[upper], _IDX[lower]
        d = _unit(p[b] - p[a])
        u2 = _unit(p[c] - p[b])
        base = world[_PARENT[iu]] @ _REST_REL[iu]
        ahead = world[_PARENT[iu]] @ _REST[_PARENT[iu]].T @ _FORWARD  # the body's forward, carried by the parent
        swing = _swing(base[:, 1], d, ahead) @ base
        bend = u2 - (u2 @ d) * d
        s = _norm(bend)
        twist = 0.0
        if s > 1e-6:
            z = swing[:, 2]
            twist = np.arctan2(_cross(z, bend / s) @ d, z @ (bend / s))
            twist *= min(max((s - 0.05) / 0.2, 0.0), 1.0)  # nearly straight limb: the bend plane is noise
            max_twist = math.radians(lim[f"{kind}_twist"])
            twist = min(max(float(twist), -max_twist), max_twist)
        world[iu] = axis_angle(d, twist) @ swing
        local[iu] = base.T @ world[iu]
        v = world[iu].T @ u2
        flex = min(max(math.atan2(v[2], v[1]), 0.0), math.radians(lim[f"{hinge}_flex"]))
        local[il] = axis_angle(np.array([1.0, 0.0, 0.0]), flex)
        world[il] = _child_world(world, il, local[il])

    return quaternions(local).astype(np.float32)


def forward_rotations(quats: np.ndarray) -> np.ndarray:
    """(..., 12, 4) quaternions [w, x, y, z] -> (..., 12, 3, 3) world bone orientations (columns X, Y, Z)."""
    q = np.asarray(quats, dtype=np.float64)
    lead = q.shape[:-2]
    flat = q.reshape(-1, 12, 4)
    mats = Rotation.from_quat(np.concatenate([flat[..., 1:], flat[..., :1]], axis=-1).reshape(-1, 4)).as_matrix()
    mats = mats.reshape(-1, 12, 3, 3)
    world = np.zeros_like(mats)
    for i, parent in enumerate(_PARENT):
        if parent < 0:
            world[:, i] = mats[:, i] @ _REST[i]
        else:
            world[:, i] = world[:, parent] @ _REST_REL[i] @ mats[:, i]
    return world.reshape(*lead, 12, 3, 3)
