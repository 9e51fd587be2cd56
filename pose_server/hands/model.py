"""A kinematic hand: canonical adult geometry, anatomical joint limits and batched forward kinematics.

Frames (docs/protocol.md, "Hands"). Hand-local coordinates are the frame of the palm bone: Y from the wrist
towards the middle knuckle, Z out of the palm (the side fingers curl to), X = Y x Z. Everything is written
for the LEFT hand; the right hand is its mirror image through the local X = 0 plane (``MIRROR``): points get
x -> -x and every rotation R becomes MIRROR @ R @ MIRROR, so one set of limits serves both hands.

Each finger has three bones, ``.01`` to ``.03`` (thumb: metacarpal, proximal, distal; the others: proximal,
middle, distal phalanx) and four angles: the base joint flexes (about local X, positive = curl towards +Z)
and spreads (about local Z, positive = towards the thumb side -X), the two others only flex. A bone's pose
rotation is ``Rz(spread) @ Rx(flex)`` under its rest frame; the thumb's rest frame is turned out of the palm
(``THUMB_REST``) so its flexion axis folds it across the palm, as a thumb does.
"""

from __future__ import annotations

import numpy as np

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# Bone names per side, in protocol order after the palm (docs/protocol.md): thumb.01 ... pinky.03.
FINGER_BONES = tuple(f"{f}.0{j}" for f in FINGERS for j in (1, 2, 3))
NUM_HAND_BONES = 1 + len(FINGER_BONES)  # the palm (wrist rotation) and 15 finger bones
NUM_ANGLES = 4 * len(FINGERS)  # per finger: base flex, base spread, middle flex, distal flex
HAND_KEYPOINTS = 21  # COCO-WholeBody: root, then 4 joints per finger (thumb, fore, middle, ring, pinky)
LEFT_HAND_START, RIGHT_HAND_START = 91, 112  # pose_server/skeleton.py WHOLEBODY133_NAMES

# Canonical adult hand in metres, left-hand local coordinates (a 1.75 m performer; scaled with height).
BASES = np.array([
    [-0.020, 0.028, 0.010],  # thumb CMC (on the palm side of the wrist)
    [-0.022, 0.088, 0.0],  # index MCP
    [0.000, 0.092, 0.0],  # middle MCP
    [0.019, 0.086, 0.0],  # ring MCP
    [0.036, 0.076, 0.0],  # pinky MCP
])
LENGTHS = np.array([
    [0.042, 0.032, 0.028],
    [0.044, 0.026, 0.022],
    [0.048, 0.030, 0.024],
    [0.045, 0.028, 0.023],
    [0.035, 0.021, 0.020],
])
THUMB_OUT_DEG, THUMB_ROLL_DEG = 40.0, 50.0  # THUMB_REST = Rz(out) @ Ry(roll), left hand

# Limits in degrees per finger: (base flex, base spread, middle flex, distal flex) as (low, high).
# Fingers curl one way (hyperextension only at the knuckle), spread a little; the thumb has its own ranges.
LIMITS_DEG = np.array([
    [(-20, 50), (-30, 40), (-10, 70), (-15, 85)],  # thumb: CMC flex/abduction, MCP, IP
    [(-20, 90), (-20, 20), (0, 110), (0, 90)],
    [(-20, 90), (-15, 15), (0, 110), (0, 90)],
    [(-20, 90), (-20, 20), (0, 110), (0, 90)],
    [(-20, 90), (-25, 25), (0, 110), (0, 90)],
], dtype=np.float64)
LOW, HIGH = np.radians(LIMITS_DEG[..., 0]).ravel(), np.radians(LIMITS_DEG[..., 1]).ravel()
# A relaxed hand: fingers slightly curled, thumb a little in (what a hand relaxes to when it is lost).
NEUTRAL = np.radians(np.array([
    [10, 10, 10, 10], [15, 0, 20, 10], [15, 0, 20, 10], [15, 0, 20, 10], [15, 0, 20, 10],
], dtype=np.float64)).ravel()
MIRROR = np.diag([-1.0, 1.0, 1.0])


def rot_x(a: np.ndarray) -> np.ndarray:
    """(...,) angles -> (..., 3, 3) rotations about X."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


THUMB_REST = rot_z(np.radians(THUMB_OUT_DEG)) @ rot_y(np.radians(THUMB_ROLL_DEG))
# Rest rotation of each finger's first bone under the palm (left hand); the other bones continue their parent.
BASE_REST = np.stack([THUMB_REST] + [np.eye(3)] * 4)


def local_rotations(angles: np.ndarray) -> np.ndarray:
    """(..., 20) angles -> (..., 15, 3, 3) pose rotations of the finger bones (left-hand convention)."""
    a = np.asarray(angles, dtype=np.float64).reshape(*np.shape(angles)[:-1], 5, 4)
    base = rot_z(a[..., 1]) @ rot_x(a[..., 0])
    return np.stack([base, rot_x(a[..., 2]), rot_x(a[..., 3])], -3).reshape(*a.shape[:-2], 15, 3, 3)


def forward(angles: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(..., 20) angles -> ((..., 21, 3) keypoints in left-hand local coordinates, COCO-WholeBody hand order,
    (..., 15, 3, 3) bone orientations in the same coordinates)."""
    local = local_rotations(angles).reshape(*np.shape(angles)[:-1], 5, 3, 3, 3)
    lead = local.shape[:-4]
    points = np.zeros((*lead, 5, 4, 3))
    frames = np.zeros((*lead, 5, 3, 3, 3))
    points[..., 0, :] = BASES * scale
    orient = np.broadcast_to(BASE_REST, (*lead, 5, 3, 3))
    for j in range(3):
        orient = orient @ local[..., j, :, :]
        frames[..., j, :, :] = orient
        points[..., j + 1, :] = points[..., j, :] + orient[..., :, 1] * (LENGTHS[:, j, None] * scale)
    root = np.zeros((*lead, 1, 3))
    return np.concatenate([root, points.reshape(*lead, 20, 3)], -2), frames.reshape(*lead, 15, 3, 3)


def mirrored(side: str, m: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) of the left-hand convention in the given side's convention ("L" or "R")."""
    return m if side == "L" else MIRROR @ m @ MIRROR
