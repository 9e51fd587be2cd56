"""Canonical skeleton maths and retargeting onto any armature (mathutils only, no bpy.ops).

Everything here works on *world-frame deltas*: for each canonical bone, the rotation that takes the
bone from its canonical rest orientation (T-pose, facing -Y, Z up) to its current orientation, in the
packet frame. Deltas come from protocol v2 `rotations` (`deltas_from_rotations`) or from `joints_3d`
(`deltas_from_joints`); `TargetSolver` turns them into pose-bone transforms of a target armature.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import bpy
from mathutils import Matrix, Quaternion, Vector

# COCO-17 body joints (the first 17 keypoints of wholebody133 too).
NOSE, EYE_L, EYE_R, EAR_L, EAR_R = 0, 1, 2, 3, 4
SHOULDER_L, SHOULDER_R, ELBOW_L, ELBOW_R, WRIST_L, WRIST_R = 5, 6, 7, 8, 9, 10
HIP_L, HIP_R, KNEE_L, KNEE_R, ANKLE_L, ANKLE_R = 11, 12, 13, 14, 15, 16
NUM_JOINTS = 17

CANONICAL_BONES = ("hips", "spine", "neck", "head", "upper_arm.L", "forearm.L", "upper_arm.R", "forearm.R",
                   "thigh.L", "shin.L", "thigh.R", "shin.R")
CANONICAL_PARENTS = {"hips": None, "spine": "hips", "neck": "spine", "head": "neck",
                     "upper_arm.L": "spine", "forearm.L": "upper_arm.L",
                     "upper_arm.R": "spine", "forearm.R": "upper_arm.R",
                     "thigh.L": "hips", "shin.L": "thigh.L", "thigh.R": "hips", "shin.R": "thigh.R"}
# The add-on's skeleton: the 12 protocol bones with the trunk split in two (`spine` becomes the lower spine,
# `chest` the upper one, ending at the mid-shoulder point) and clavicles from the chest's top to each shoulder.
# The extra bones are derived from joints_3d (protocol v2 rotations have none; without joints they follow the
# protocol's spine rigidly).
TRUNK_BONES = ("chest", "clavicle.L", "clavicle.R")
RIG_BONES = CANONICAL_BONES + TRUNK_BONES
RIG_PARENTS = {**CANONICAL_PARENTS, "chest": "spine", "neck": "chest", "clavicle.L": "chest", "clavicle.R": "chest",
               "upper_arm.L": "clavicle.L", "upper_arm.R": "clavicle.R"}
# Rest direction (head to tail) of each bone in the T-pose.
REST_DIRECTIONS = {"hips": (0, 0, 1), "spine": (0, 0, 1), "chest": (0, 0, 1), "neck": (0, 0, 1), "head": (0, 0, 1),
                   "clavicle.L": (1, 0, 0), "clavicle.R": (-1, 0, 0),
                   "upper_arm.L": (1, 0, 0), "forearm.L": (1, 0, 0), "upper_arm.R": (-1, 0, 0),
                   "forearm.R": (-1, 0, 0), "thigh.L": (0, 0, -1), "shin.L": (0, 0, -1),
                   "thigh.R": (0, 0, -1), "shin.R": (0, 0, -1)}
# Joints (or joint pairs, averaged) at the head and tail of each bone that has a direction in COCO.
_MID_HIP, _MID_SHOULDER, _MID_EAR = (HIP_L, HIP_R), (SHOULDER_L, SHOULDER_R), (EAR_L, EAR_R)
BONE_JOINTS = {"spine": (_MID_HIP, _MID_SHOULDER), "neck": (_MID_SHOULDER, _MID_EAR),
               "upper_arm.L": ((SHOULDER_L,), (ELBOW_L,)), "forearm.L": ((ELBOW_L,), (WRIST_L,)),
               "upper_arm.R": ((SHOULDER_R,), (ELBOW_R,)), "forearm.R": ((ELBOW_R,), (WRIST_R,)),
               "thigh.L": ((HIP_L,), (KNEE_L,)), "shin.L": ((KNEE_L,), (ANKLE_L,)),
               "thigh.R": ((HIP_R,), (KNEE_R,)), "shin.R": ((KNEE_R,), (ANKLE_R,))}
# Normal of the bend plane (upper dir x lower dir) of a bent elbow or knee, in the T-pose: elbows
# fold forward (-Y) with palms down, knees fold backward (+Y). Used to twist the upper bone so the
# joint bends about its own hinge axis.
HINGES = {"upper_arm.L": ("forearm.L", (0, 0, -1)), "upper_arm.R": ("forearm.R", (0, 0, 1)),
          "thigh.L": ("shin.L", (1, 0, 0)), "thigh.R": ("shin.R", (1, 0, 0))}
# Effector slots a bone map may drive by location (IK controls): slot -> COCO joint.
EFFECTOR_JOINTS = {"hand.L": WRIST_L, "hand.R": WRIST_R, "foot.L": ANKLE_L, "foot.R": ANKLE_R}
# IK controls mapped in BOTH mode are also turned in IK mode (without it they keep their rest orientation, and a
# Rigify rig's wrists never turn and its feet keep pointing the rest way when the performer turns round): a hand
# control (Rigify's hand_ik) as the performer's forearm turns (the hand continues the forearm); a foot control
# (foot_ik) about the vertical only, to where the performer's knee faces (COCO has no toes; the foot stays flat,
# `foot_heading`). effector slot -> the bone whose rotation it follows.
EFFECTOR_TURNS = {"hand.L": "forearm.L", "hand.R": "forearm.R", "foot.L": "shin.L", "foot.R": "shin.R"}
# Rest direction of each effector's control in the canonical T-pose (calibration): hands along the forearms, feet
# forward (toes; the T-pose faces -Y).
EFFECTOR_DIRECTIONS = {"hand.L": (1, 0, 0), "hand.R": (-1, 0, 0), "foot.L": (0, -1, 0), "foot.R": (0, -1, 0)}
_FORWARD = Vector((0.0, -1.0, 0.0))

# Clavicles are aimed, not only rotated: a target's clavicle rarely starts at the chest's top (Mixamo's and the
# metarig's start in front of it), so each one is turned until its arm starts on the performer's shoulder line,
# at the target's own shoulder width. slot -> (upper arm slot, COCO shoulder).
AIM_SLOTS = {"clavicle.L": ("upper_arm.L", SHOULDER_L), "clavicle.R": ("upper_arm.R", SHOULDER_R)}
# IK drive mode on rotation-mapped legs: thigh slot -> (shin slot, COCO ankle). The two bones are turned in their
# bend plane so the target's own leg reaches the (scaled) ankle: the feet stay planted whatever its proportions.
# Only a foot near the floor is reached (fully below PLANT_FULL m above the lowest ankle seen, not at all above
# PLANT_NONE): a foot in the air keeps the performer's limb directions, which reaching would bend by the
# difference in leg proportions.
REACH_SLOTS = {"thigh.L": ("shin.L", ANKLE_L), "thigh.R": ("shin.R", ANKLE_R)}
PLANT_FULL, PLANT_NONE = 0.04, 0.10


def split_yaw(rotation: Matrix) -> tuple[Matrix, Matrix]:
    """An armature object's world rotation (3x3) as (its turn about the world's vertical, the rest): rotation =
    turn @ rest. The packet frame turns with the first (a character placed facing another way performs facing its
    way); the rest, an FBX import's 90 degrees about X for one, is undone."""
    q = rotation.to_quaternion()
    yaw = 2.0 * math.atan2(q.z, q.w) if math.hypot(q.z, q.w) > 1e-9 else 0.0  # (upside down: no vertical turn)
    turn = Matrix.Rotation(yaw, 3, "Z")
    return turn, turn.transposed() @ rotation


def plant_weight(ankle_height: float, floor: float) -> float:
    """How much a foot is reached (REACH_SLOTS) at this ankle height over the lowest ankle seen: 1 planted, 0 in
    the air, linear between."""
    h = ankle_height - floor
    return min(max((PLANT_NONE - h) / (PLANT_NONE - PLANT_FULL), 0.0), 1.0)


def foot_heading(shin: Matrix, hips: Matrix) -> Matrix:
    """A turn about the vertical (world Z) from the T-pose's forward to where the knee faces (the shin's front,
    projected on the floor); the hips' facing where the shin lies too flat to say (a kick, kneeling)."""
    for delta in (shin, hips):
        front = delta @ _FORWARD
        front.z = 0.0
        if front.length > 0.3:
            return _FORWARD.rotation_difference(front.normalized()).to_matrix()
    return Matrix.Identity(3)


def columns(x: tuple, y: tuple, z: tuple) -> Matrix:
    """A 3x3 matrix from its columns (a bone's rest frame: local X, Y = head to tail, Z)."""
    m = Matrix.Identity(3)
    m.col[0], m.col[1], m.col[2] = x, y, z
    return m


# Rest frame of each bone (columns: local X, Y = head to tail, Z), as in docs/lifting.md and
# pose_server.lift.skeleton3d.REST_ROTATIONS: trunk and legs have Blender roll 0; the arms are rolled so
# that, like the legs, each limb's hinge is its local X and it bends towards local +Z.
_UP, _LEG = columns((1, 0, 0), (0, 0, 1), (0, -1, 0)), columns((1, 0, 0), (0, 0, -1), (0, 1, 0))
_ARM_L, _ARM_R = columns((0, 0, -1), (1, 0, 0), (0, -1, 0)), columns((0, 0, 1), (-1, 0, 0), (0, -1, 0))
REST_FRAMES = {"hips": _UP, "spine": _UP, "chest": _UP, "neck": _UP, "head": _UP,
               "clavicle.L": _ARM_L, "clavicle.R": _ARM_R,
               "upper_arm.L": _ARM_L, "forearm.L": _ARM_L, "upper_arm.R": _ARM_R, "forearm.R": _ARM_R,
               "thigh.L": _LEG, "shin.L": _LEG, "thigh.R": _LEG, "shin.R": _LEG}
# The canonical rest face (docs/lifting.md): ears 15 cm apart, nose 10 cm forward and 2 cm below them.
REST_NOSE_OFFSET = Vector((0.0, -0.10, -0.02))
_EPS = 1e-6


def mid(joints: Sequence[Vector], idx: Sequence[int]) -> Vector:
    """The mean of one or more joints."""
    if len(idx) == 1:
        return joints[idx[0]].copy()
    return (joints[idx[0]] + joints[idx[1]]) * 0.5


def frame(y_axis: Vector, z_hint: Vector) -> Matrix | None:
    """A rotation whose Y column is `y_axis` and whose Z column lies towards `z_hint`; None if degenerate."""
    y = y_axis.normalized()
    x = y.cross(z_hint)
    if x.length < _EPS or y.length < _EPS:
        return None
    x.normalize()
    m = Matrix.Identity(3)
    m.col[0], m.col[1], m.col[2] = x, y, x.cross(y)
    return m


# A limb swung far from its rest direction: beyond SWING_DETOUR[0] radians the smallest rotation is blended into one
# that goes through the body's forward direction (fully at SWING_DETOUR[1]). Near the rest direction's antipode the
# smallest rotation's axis turns over within a degree of motion: a straight arm swept across the chest snapped 38
# degrees in twist in one frame. Both point the bone exactly at the joints; they differ only in twist about it.
SWING_DETOUR = (math.radians(120.0), math.radians(160.0))
FORWARD = Vector((0.0, -1.0, 0.0))  # where the canonical body faces


def swing(parent_delta: Matrix, rest_dir: Vector, cur_dir: Vector, forward: Vector | None = None) -> Matrix:
    """The parent's delta followed by the smallest rotation that points the carried rest direction at cur_dir;
    with ``forward`` (perpendicular to rest_dir, carried by the parent too) far swings detour through it."""
    carried = parent_delta @ rest_dir
    if cur_dir.length < _EPS:
        return parent_delta.copy()
    turn = carried.rotation_difference(cur_dir)
    if forward is not None:
        lo, hi = SWING_DETOUR
        w = min(max((carried.angle(cur_dir, 0.0) - lo) / (hi - lo), 0.0), 1.0)
        if w > 0.0:
            ahead = parent_delta @ forward
            detour = ahead.rotation_difference(cur_dir) @ carried.rotation_difference(ahead)
            turn = turn.slerp(detour, w * w * (3.0 - 2.0 * w))  # smoothstep: no kink where it starts
    return turn.to_matrix() @ parent_delta


def torso_delta(up: Vector, left: Vector, exact: str = "up") -> Matrix | None:
    """World delta of a torso segment from its up axis and its right-to-left line (rest: +Z and +X).
    `exact` says which of the two is kept as measured ("up" or "left"); the other is orthogonalised."""
    if exact == "left":
        x = left.normalized()
        y = up - x * up.dot(x)
    else:
        y = up.normalized()
        x = left - y * left.dot(y)
    if x.length < _EPS or y.length < _EPS:
        return None
    x.normalize()
    y.normalize()
    m = Matrix.Identity(3)
    m.col[0], m.col[1], m.col[2] = x, x.cross(y) * -1.0, y  # columns = images of +X, +Y, +Z
    return m


_REST_FACE_INV = torso_delta(REST_NOSE_OFFSET.cross(Vector((1, 0, 0))), Vector((1, 0, 0))).transposed()


@dataclass(frozen=True)
class Trunk:
    """The trunk's bone lengths in the performer's metres: `hips` from the pelvis (mid-hip) up to the lower
    spine's head, `lower` spine, `upper` (chest) up to the mid-shoulder point. Fixed lengths make the spine
    bend when the performer's pelvis-to-shoulders distance shrinks, instead of the shoulders drifting."""

    hips: float
    lower: float
    upper: float


def _bend_point(start: Vector, end: Vector, first: float, second: float, towards: Vector) -> Vector:
    """The joint of a two-bone chain (lengths first, second) from start to end, bent towards `towards`;
    on the straight line when the end is out of reach."""
    axis = end - start
    dist = axis.length
    if dist < _EPS:
        return start + towards.normalized() * first
    axis /= dist
    if dist >= first + second:
        return start + axis * first
    along = (first * first - second * second + dist * dist) / (2 * dist)
    side = towards - axis * towards.dot(axis)
    if side.length < _EPS:
        side = axis.orthogonal()
    return start + axis * along + side.normalized() * max(first * first - along * along, 0.0) ** 0.5


def trunk_points(joints: Sequence[Vector], hips: Matrix, trunk: Trunk | None) -> tuple[Vector, Vector, Vector]:
    """(lower spine head, chest head, chest tail = mid-shoulder) from the joints and the hips' delta. The spine
    starts `trunk.hips` above the pelvis along the hips' up axis and bends backwards (a rounding back) when the
    shoulders come closer than its length; without a Trunk it is straight, starting half a hip width up."""
    pelvis, neck_base = mid(joints, _MID_HIP), mid(joints, _MID_SHOULDER)
    up = hips @ Vector((0, 0, 1))
    if trunk is None:
        start = pelvis + up * ((joints[HIP_L] - joints[HIP_R]).length / 2)
        return start, (start + neck_base) * 0.5, neck_base
    start = pelvis + up * trunk.hips
    return start, _bend_point(start, neck_base, trunk.lower, trunk.upper, hips @ Vector((0, 1, 0))), neck_base


def trunk_deltas(joints: Sequence[Vector], hips: Matrix, trunk: Trunk | None = None) -> dict[str, Matrix]:
    """World deltas of the lower spine, the chest (its X along the shoulder line) and both clavicles."""
    start, chest_head, neck_base = trunk_points(joints, hips, trunk)
    d = {"spine": swing(hips, Vector((0, 0, 1)), chest_head - start)}
    chest = torso_delta(neck_base - chest_head, joints[SHOULDER_L] - joints[SHOULDER_R])
    d["chest"] = d["spine"] if chest is None else chest
    for name, joint in (("clavicle.L", SHOULDER_L), ("clavicle.R", SHOULDER_R)):
        d[name] = swing(d["chest"], Vector(REST_DIRECTIONS[name]), joints[joint] - neck_base)
    return d


def deltas_from_joints(joints: Sequence[Vector], trunk: Trunk | None = None) -> dict[str, Matrix]:
    """World-frame rotation deltas of every bone of RIG_BONES from 17 COCO joints (metres, packet frame).
    `trunk`: the target's trunk lengths in the performer's metres (None: a straight spine)."""
    pelvis, neck_base, head_base = mid(joints, _MID_HIP), mid(joints, _MID_SHOULDER), mid(joints, _MID_EAR)
    # The hip convention shared with pose_server.ik.solve_rotations (docs/lifting.md): the hip line is kept
    # exactly, the spine orthogonalised, so the thigh tops land on the hip joints and a straight leg stays
    # straight under IK (tests/data/hip_convention.json is checked on both sides).
    hips = torso_delta(neck_base - pelvis, joints[HIP_L] - joints[HIP_R], exact="left")
    hips = Matrix.Identity(3) if hips is None else hips
    d = {"hips": hips, **trunk_deltas(joints, hips, trunk)}
    d["neck"] = swing(d["chest"], Vector(REST_DIRECTIONS["neck"]), head_base - neck_base)
    # Head: the frame of the ear line and the ear-to-nose line, relative to the same frame at rest.
    ears = joints[EAR_L] - joints[EAR_R]
    head = torso_delta((joints[NOSE] - head_base).cross(ears), ears)
    d["head"] = (head @ _REST_FACE_INV) if head is not None else d["neck"]
    for upper, (lower, hinge) in HINGES.items():
        parent = d[RIG_PARENTS[upper]]
        (a, b), (_, c) = BONE_JOINTS[upper], BONE_JOINTS[lower]
        u_dir, l_dir = mid(joints, b) - mid(joints, a), mid(joints, c) - mid(joints, b)
        normal = u_dir.cross(l_dir)
        rest_dir = Vector(REST_DIRECTIONS[upper])
        d[upper] = swing(parent, rest_dir, u_dir, FORWARD)
        # A bent joint fixes the upper bone's twist (its hinge along the bend normal); a nearly straight
        # one keeps the parent's twist. Blend between the two (a twist about the bone) so it never pops.
        cur = frame(u_dir, normal)
        bend_sin = normal.length / max(u_dir.length * l_dir.length, _EPS)
        weight = min(max((bend_sin - 0.05) / 0.2, 0.0), 1.0)
        if cur is not None and weight > 0.0:
            hinged = (cur @ frame(rest_dir, Vector(hinge)).transposed()).to_quaternion()
            d[upper] = d[upper].to_quaternion().slerp(hinged, weight).to_matrix()
        d[lower] = swing(d[upper], Vector(REST_DIRECTIONS[lower]), l_dir)
    return d


def deltas_from_rotations(rotations: Sequence[Sequence[float]]) -> dict[str, Matrix]:
    """World-frame deltas (RIG_BONES) from protocol v2 rotations: `hips` is a world-frame delta, the others are
    local pose rotations (Blender's pose-bone rotation_quaternion on the canonical rest skeleton)."""
    if len(rotations) < len(CANONICAL_BONES):
        raise ValueError(f"rotations has {len(rotations)} bones, protocol v2 needs {len(CANONICAL_BONES)}")
    world: dict[str, Matrix] = {}
    deltas: dict[str, Matrix] = {}
    for name, q in zip(CANONICAL_BONES, rotations, strict=False):
        rot = Quaternion(q).normalized().to_matrix()
        parent = CANONICAL_PARENTS[name]
        if parent is None:
            world[name] = rot @ REST_FRAMES[name]
        else:
            rest_rel = REST_FRAMES[parent].transposed() @ REST_FRAMES[name]
            world[name] = world[parent] @ rest_rel @ rot
        deltas[name] = world[name] @ REST_FRAMES[name].transposed()
    for name in TRUNK_BONES:  # not in v2: carried rigidly by the protocol's spine (drive.py splits it from joints)
        deltas[name] = deltas["spine"].copy()
    return deltas


# Protocol v2 quaternions carry 3 decimals: about 0.1 degree per bone, compounded down each chain, which is
# 1-2 mm of jitter at the feet. Where a limb's rotation agrees with the packet's joints to within this angle
# (it was only rounded, not limited by the server's IK), it is snapped onto the joints' bone direction.
SNAP_ANGLE = 0.0175  # radians, 1 degree
_SNAP_BONES = tuple(b for b in BONE_JOINTS if b not in ("spine", "neck"))


def snap_to_joints(deltas: dict[str, Matrix], joints: Sequence[Vector], max_angle: float = SNAP_ANGLE) -> None:
    """Turn each limb delta (in place) onto its bone direction in `joints` when it is within `max_angle` of it."""
    for bone in _SNAP_BONES:
        (a, b) = BONE_JOINTS[bone]
        want = mid(joints, b) - mid(joints, a)
        have = deltas[bone] @ Vector(REST_DIRECTIONS[bone])
        if want.length > _EPS and have.angle(want, math.pi) <= max_angle:
            deltas[bone] = have.rotation_difference(want).to_matrix() @ deltas[bone]


def local_rotations(deltas: dict[str, Matrix]) -> list[Quaternion]:
    """The inverse of `deltas_from_rotations`: protocol v2 rotations of the canonical skeleton."""
    out = []
    for name in CANONICAL_BONES:
        world = deltas[name] @ REST_FRAMES[name]
        parent = CANONICAL_PARENTS[name]
        if parent is None:
            out.append(deltas[name].to_quaternion())
            continue
        parent_world = deltas[parent] @ REST_FRAMES[parent]
        rest_rel = REST_FRAMES[parent].transposed() @ REST_FRAMES[name]
        out.append((rest_rel.transposed() @ parent_world.transposed() @ world).to_quaternion())
    return out


@dataclass
class SolverBone:
    """One target bone the solver walks: mapped, or an ancestor of a mapped bone."""

    name: str
    parent: int  # index into TargetSolver.bones, -1 for none
    rest_rel: Matrix  # 4x4: parent rest^-1 @ rest (armature rest if no parent)
    rest: Matrix  # 4x4 armature-space rest matrix
    slot: str | None = None  # canonical bone or effector driving it
    rotate: bool = False
    locate: bool = False
    offset: Matrix = field(default_factory=lambda: Matrix.Identity(3))  # calibration, armature space
    aim: tuple[Vector, float] | None = None  # clavicles: rest centre of both arm heads, distance to this one
    reach: tuple[str, float, float] | None = None  # thighs: (shin slot, hip-to-knee, knee-to-ankle rest lengths)
    hip_offset: Vector | None = None  # the located root: its rest head minus the rest mid-point of the thigh heads


class TargetSolver:
    """Pose-bone transforms of one armature from canonical deltas, walking the hierarchy itself so no
    depsgraph evaluation is needed between a parent and its children."""

    def __init__(self, armature: bpy.types.Armature, entries: Sequence[tuple[str, str, str, Quaternion]]):
        """entries: (slot, target bone name, mode ROTATION|LOCATION|BOTH, calibration offset)."""
        bones = armature.bones
        wanted = {}
        for slot, target, mode, offset in entries:
            wanted[target] = (slot, mode, offset)
        keep: set[str] = set()
        for target in wanted:
            b = bones[target]
            while b is not None and b.name not in keep:
                keep.add(b.name)
                b = b.parent
        self.bones: list[SolverBone] = []
        index: dict[str, int] = {}
        for b in bones:  # armature.bones lists parents before children
            if b.name not in keep:
                continue
            parent = index.get(b.parent.name, -1) if b.parent else -1
            rest = b.matrix_local.copy()
            rest_rel = (b.parent.matrix_local.inverted() @ rest) if b.parent else rest
            sb = SolverBone(b.name, parent, rest_rel, rest)
            if b.name in wanted:
                slot, mode, offset = wanted[b.name]
                sb.slot = slot
                sb.rotate = mode in ("ROTATION", "BOTH") and (slot in REST_FRAMES or slot in EFFECTOR_TURNS)
                sb.locate = mode in ("LOCATION", "BOTH")
                sb.offset = Quaternion(offset).normalized().to_matrix()
            index[b.name] = len(self.bones)
            self.bones.append(sb)
        by_slot = {sb.slot: sb for sb in self.bones if sb.slot is not None}
        # The packet's pelvis is the mid-hip point: a root bone that starts elsewhere (the metarig's, 6 cm below
        # its hip joints) is placed so that its thigh heads, not its own head, land on it.
        root = by_slot.get("hips")
        thighs = [bones[by_slot[t].name].head_local for t in ("thigh.L", "thigh.R") if t in by_slot]
        # Half the distance between the thigh heads (armature units): planted feet go under the target's own hips,
        # not under the performer's.
        self.half_hips = (thighs[0] - thighs[1]).length * 0.5 if len(thighs) == 2 else None
        if root is not None and root.locate and len(thighs) == 2:
            root.hip_offset = root.rest.translation - (thighs[0] + thighs[1]) * 0.5
        for upper, (lower, _ankle) in REACH_SLOTS.items():
            if upper in by_slot and lower in by_slot and by_slot[upper].rotate and by_slot[lower].rotate:
                shin = bones[by_slot[lower].name]
                thigh_to_knee = (shin.head_local - bones[by_slot[upper].name].head_local).length
                by_slot[upper].reach = (lower, thigh_to_knee, shin.length)
        arms = {slot: bones[target].head_local for target, (slot, _m, _o) in wanted.items()
                if slot in ("upper_arm.L", "upper_arm.R")}
        if len(arms) == 2:
            centre = (arms["upper_arm.L"] + arms["upper_arm.R"]) * 0.5
            for sb in self.bones:
                if sb.rotate and sb.slot in AIM_SLOTS:
                    sb.aim = (centre, (arms[AIM_SLOTS[sb.slot][0]] - centre).length)

    def solve(self, pose: bpy.types.Pose, deltas: dict[str, Matrix], points: dict[str, Vector],
              skip: frozenset[str] = frozenset(), aims: dict[str, Vector] | None = None,
              reach: dict[str, tuple[Vector, float]] | None = None) -> None:
        """Write pose-bone rotations/locations. deltas: armature-space deltas per canonical bone;
        points: armature-space positions per slot (bone heads for location mode); skip: slots to leave at rest;
        aims: armature-space directions from the mid-shoulder point to each shoulder (AIM_SLOTS);
        reach: per shin slot (REACH_SLOTS), the armature-space ankle position the leg is bent to reach and how much
        (0: the rotations as given, 1: the ankle exactly there)."""
        pose_mats: list[Matrix] = []
        ends: dict[str, tuple[Vector, float]] = {}  # shin slot -> (point its tail must reach, weight), by its thigh
        for sb in self.bones:
            pb = pose.bones[sb.name]
            chain = (pose_mats[sb.parent] @ sb.rest_rel) if sb.parent >= 0 else sb.rest_rel
            slot = sb.slot
            if slot is not None and slot in skip:
                basis = Matrix.Identity(4)
                write_pose(pb, basis, rotate=sb.rotate or not sb.locate, locate=sb.locate)
            elif slot is not None and (sb.rotate and slot in deltas or sb.locate and slot in points):
                current = chain @ pb.matrix_basis
                rot = (deltas[slot] @ sb.offset @ sb.rest.to_3x3()) if sb.rotate and slot in deltas \
                    else current.to_3x3()
                if sb.aim is not None and aims and slot in aims and slot in deltas:
                    rot = self._aimed(sb, rot, chain, pose_mats, aims[slot])
                if sb.reach is not None and reach and sb.reach[0] in reach and sb.reach[0] not in skip \
                        and slot in deltas and reach[sb.reach[0]][1] > 0.0:
                    ankle, weight = reach[sb.reach[0]]
                    turn = _reach_turn(rot, chain.translation, ankle, sb.reach[1], sb.reach[2],
                                       deltas.get("hips", Matrix.Identity(3)) @ Vector((0, -1, 0)))
                    rot = _partial(turn, weight).to_matrix() @ rot
                    ends[sb.reach[0]] = (ankle, weight)
                if slot in ends and sb.rotate:
                    point, weight = ends[slot]
                    want = point - chain.translation
                    if want.length > _EPS:
                        rot = _partial(rot.col[1].rotation_difference(want), weight).to_matrix() @ rot
                loc = points[slot] if sb.locate and slot in points else current.translation
                if sb.hip_offset is not None and sb.locate and slot in points:
                    loc = loc + rot @ sb.rest.to_3x3().transposed() @ sb.hip_offset
                desired = Matrix.LocRotScale(loc, rot.normalized(), current.to_scale())
                basis = chain.inverted_safe() @ desired
                write_pose(pb, basis, rotate=sb.rotate and slot in deltas, locate=sb.locate and slot in points)
            else:
                basis = pb.matrix_basis
            pose_mats.append(chain @ basis)

    def _aimed(self, sb: SolverBone, rot: Matrix, chain: Matrix, pose_mats: list[Matrix], direction: Vector) -> Matrix:
        """`rot` turned so the bone's tail points at the posed centre of the arm heads plus the target's half
        shoulder width along `direction`."""
        centre, half = sb.aim
        if sb.parent >= 0:
            parent = self.bones[sb.parent]
            centre = pose_mats[sb.parent] @ parent.rest.inverted_safe() @ centre
        want = centre + direction.normalized() * half - chain.translation
        y = rot.col[1]
        if want.length < _EPS or y.length < _EPS:
            return rot
        return y.rotation_difference(want).to_matrix() @ rot


def _partial(turn: Quaternion, weight: float) -> Quaternion:
    """`weight` of a rotation (0: none, 1: all of it)."""
    return turn if weight >= 1.0 else Quaternion().slerp(turn, weight)


def _reach_turn(rot: Matrix, hip: Vector, ankle: Vector, thigh: float, shin: float, forward: Vector) -> Quaternion:
    """The turn of the thigh's rotation `rot`, in the plane of its current bend, after which a shin of length
    `shin` hung from its knee can end on `ankle` (the farthest point on the hip-ankle line when it cannot)."""
    line = ankle - hip
    dist = line.length
    if dist < _EPS or thigh < _EPS:
        return Quaternion()
    line /= dist
    dist = min(max(dist, abs(thigh - shin) + 1e-6), thigh + shin - 1e-6)
    cos_hip = min(max((thigh * thigh + dist * dist - shin * shin) / (2 * thigh * dist), -1.0), 1.0)
    current = rot.col[1]
    # The knee goes where the rotated thigh already points, away from the hip-ankle line (the bend plane is kept
    # exactly, so a leg of the performer's proportions is not moved); a nearly straight leg (within ~1 degree)
    # leans towards in front of the body (knees bend forwards).
    bend = current - line * current.dot(line)
    if bend.length < 0.02:
        bend = bend + forward * 0.02
        bend = bend - line * bend.dot(line)
    if bend.length < _EPS:
        return Quaternion()
    want = line * cos_hip + bend.normalized() * (1.0 - cos_hip * cos_hip) ** 0.5
    return current.rotation_difference(want)


def write_pose(pb: bpy.types.PoseBone, basis: Matrix, rotate: bool, locate: bool) -> None:
    """Set a pose bone's location and/or rotation from a basis matrix, in the bone's own rotation mode."""
    if locate:
        pb.location = basis.translation
    if not rotate:
        return
    q = basis.to_quaternion()
    mode = pb.rotation_mode
    if mode == "QUATERNION":
        if pb.rotation_quaternion.dot(q) < 0.0:  # stay on the same hemisphere: no flips when keyed
            q.negate()
        pb.rotation_quaternion = q
    elif mode == "AXIS_ANGLE":
        axis, angle = q.to_axis_angle()
        pb.rotation_axis_angle = (angle, *axis)
    else:
        pb.rotation_euler = q.to_euler(mode, pb.rotation_euler)
