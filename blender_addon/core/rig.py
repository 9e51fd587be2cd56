"""The capture rig: a humanoid armature matching the add-on's skeleton (`retarget.RIG_BONES`: the canonical
bones with a lower spine, a chest and clavicles, plus `hands.HAND_SLOTS`: a palm and 3 bones per finger),
driven by empties through IK (arms, legs), damped/locked tracks (spine, chest, clavicles, neck, head) and
copy-transforms (hips); hand bones are rotated directly (`hands.HandDriver`).

Built once by an operator (bpy.ops is fine here); the per-tick code only moves the empties
(`target_positions` + `drive.apply_person`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import bpy
from mathutils import Matrix, Quaternion, Vector

from . import hands
from . import retarget as rt

CAPTURE_RIG_KEY = "vitpose_capture_rig"  # custom property on the armature object
TARGETS_KEY = "vitpose_targets"  # custom property: target key -> empty object name
PROPORTIONS_KEY = "vitpose_proportions"
CONSTRAINT_PREFIX = "VP "
# Measured (tests/addon/test_rig.py checks the result): with the canonical rolls (hinge = local X,
# bending towards local +Z) this angle makes each elbow/knee bend towards its pole target.
POLE_ANGLES = {"forearm.L": -math.pi / 2, "forearm.R": -math.pi / 2, "shin.L": -math.pi / 2, "shin.R": -math.pi / 2}
# A straight chain gives the IK solver no bend direction: start it from a small bend about the hinge
# (local X of every limb bone, bending towards local +Z).
PREBEND = {name: ((1, 0, 0), 0.1) for name in ("forearm.L", "forearm.R", "shin.L", "shin.R")}
POLE_DISTANCE = 0.4  # metres from the elbow/knee; far enough that the pole never flips sides
HEAD_LENGTH = 0.15
REST_FRAMES = {**rt.REST_FRAMES, **hands.REST_FRAMES}  # every capture-rig bone's rest frame (its roll)
CANONICAL_FOREARM = 0.25  # the canonical hand (hands.py) belongs to a forearm this long


@dataclass
class Proportions:
    """Segment lengths of a performer in metres: limbs as the mean of both sides plus a `*_skew` (half of right
    minus left: real people, and their mocap, are a few millimetres asymmetric, which an IK chain turns into
    centimetres at the elbow)."""

    pelvis_height: float = 0.92  # defaults: the canonical rest pose of docs/lifting.md (1.75 m adult)
    hip_half: float = 0.095
    torso: float = 0.52
    shoulder_half: float = 0.19
    neck: float = 0.16
    ear_half: float = 0.075
    nose_forward: float = 0.102
    upper_arm: float = 0.28
    forearm: float = 0.25
    thigh: float = 0.43
    shin: float = 0.41
    upper_arm_skew: float = 0.0
    forearm_skew: float = 0.0
    thigh_skew: float = 0.0
    shin_skew: float = 0.0

    @classmethod
    def from_joints(cls, joints: Sequence[Sequence[float]]) -> Proportions:
        """Measure a person from one packet's joints_3d (17 COCO joints, metres); ValueError if implausible."""
        j = [Vector(p) for p in joints]
        if len(j) != rt.NUM_JOINTS:
            raise ValueError(f"joints_3d needs {rt.NUM_JOINTS} joints, got {len(j)}")

        def pair(a: int, b: int, c: int, d: int) -> float:
            return ((j[a] - j[b]).length + (j[c] - j[d]).length) / 2

        def skew(a: int, b: int, c: int, d: int) -> float:
            return ((j[c] - j[d]).length - (j[a] - j[b]).length) / 2

        mid_hip, mid_sh = rt.mid(j, (rt.HIP_L, rt.HIP_R)), rt.mid(j, (rt.SHOULDER_L, rt.SHOULDER_R))
        mid_ear = rt.mid(j, (rt.EAR_L, rt.EAR_R))
        p = cls(
            hip_half=(j[rt.HIP_L] - j[rt.HIP_R]).length / 2,
            torso=(mid_sh - mid_hip).length,
            shoulder_half=(j[rt.SHOULDER_L] - j[rt.SHOULDER_R]).length / 2,
            neck=(mid_ear - mid_sh).length,
            ear_half=(j[rt.EAR_L] - j[rt.EAR_R]).length / 2,
            nose_forward=(j[rt.NOSE] - mid_ear).length,
            upper_arm=pair(rt.SHOULDER_L, rt.ELBOW_L, rt.SHOULDER_R, rt.ELBOW_R),
            forearm=pair(rt.ELBOW_L, rt.WRIST_L, rt.ELBOW_R, rt.WRIST_R),
            thigh=pair(rt.HIP_L, rt.KNEE_L, rt.HIP_R, rt.KNEE_R),
            shin=pair(rt.KNEE_L, rt.ANKLE_L, rt.KNEE_R, rt.ANKLE_R),
            upper_arm_skew=skew(rt.SHOULDER_L, rt.ELBOW_L, rt.SHOULDER_R, rt.ELBOW_R),
            forearm_skew=skew(rt.ELBOW_L, rt.WRIST_L, rt.ELBOW_R, rt.WRIST_R),
            thigh_skew=skew(rt.HIP_L, rt.KNEE_L, rt.HIP_R, rt.KNEE_R),
            shin_skew=skew(rt.KNEE_L, rt.ANKLE_L, rt.KNEE_R, rt.ANKLE_R),
        )
        p.pelvis_height = p.thigh + p.shin + 0.08  # ankle height: COCO has no foot
        values = asdict(p)
        bad = [k for k, v in values.items() if not k.endswith("_skew") and not 0.02 <= v <= 2.0]
        bad += [k for k, v in values.items() if k.endswith("_skew") and abs(v) > 0.25 * values[k[:-5]]]
        if bad:
            raise ValueError(f"joints_3d do not look like a standing person (implausible {', '.join(bad)}); "
                             f"create the rig from a frame where the whole body is visible, or use default proportions")
        return p

    def trunk(self) -> rt.Trunk:
        """The capture rig's trunk: hips as long as half the hip width (so an FBX importer, which sizes a bone
        by the mean distance to its children, gets it back), the rest split evenly between spine and chest."""
        rest = max(self.torso - self.hip_half, 0.02)
        return rt.Trunk(hips=self.hip_half, lower=rest / 2, upper=rest / 2)

    def rest_joints(self) -> list[Vector]:
        """The 17 COCO joints in the canonical T-pose facing -Y, feet on the floor, pelvis over the origin."""
        ph, top = self.pelvis_height, self.pelvis_height + self.torso
        head_z = top + self.neck
        j = [Vector()] * rt.NUM_JOINTS
        j[rt.NOSE] = Vector((0, 0, head_z)) + rt.REST_NOSE_OFFSET.normalized() * self.nose_forward
        j[rt.EYE_L], j[rt.EYE_R] = Vector((0.032, -0.085, head_z + 0.025)), Vector((-0.032, -0.085, head_z + 0.025))
        j[rt.EAR_L], j[rt.EAR_R] = Vector((self.ear_half, 0, head_z)), Vector((-self.ear_half, 0, head_z))
        for side, sign in ((0, 1.0), (1, -1.0)):
            sh = Vector((sign * self.shoulder_half, 0, top))
            el = sh + Vector((sign * (self.upper_arm - sign * self.upper_arm_skew), 0, 0))
            hip = Vector((sign * self.hip_half, 0, ph))
            knee = hip - Vector((0, 0, self.thigh - sign * self.thigh_skew))
            j[rt.SHOULDER_L + side], j[rt.ELBOW_L + side] = sh, el
            j[rt.WRIST_L + side] = el + Vector((sign * (self.forearm - sign * self.forearm_skew), 0, 0))
            j[rt.HIP_L + side], j[rt.KNEE_L + side] = hip, knee
            j[rt.ANKLE_L + side] = knee - Vector((0, 0, self.shin - sign * self.shin_skew))
        return j


def bone_layout(p: Proportions) -> dict[str, tuple[Vector, Vector, str | None, bool]]:
    """name -> (head, tail, parent, connected) of the capture rig in rest pose. Every bone with children ends
    where they start (the hips at the same distance from all three), so FBX re-import keeps its length."""
    j = p.rest_joints()
    trunk = p.trunk()
    start, chest_head, neck_base = rt.trunk_points(j, Matrix.Identity(3), trunk)
    pelvis, head_base = rt.mid(j, (rt.HIP_L, rt.HIP_R)), rt.mid(j, (rt.EAR_L, rt.EAR_R))
    bones = {
        "hips": (pelvis, start, None, False),
        "spine": (start, chest_head, "hips", True),
        "chest": (chest_head, neck_base, "spine", True),
        "neck": (neck_base, head_base, "chest", True),
        "head": (head_base, head_base + Vector((0, 0, HEAD_LENGTH)), "neck", True),
    }
    for s, side in (("L", 0), ("R", 1)):
        bones[f"clavicle.{s}"] = (neck_base, j[rt.SHOULDER_L + side], "chest", False)
        bones[f"upper_arm.{s}"] = (j[rt.SHOULDER_L + side], j[rt.ELBOW_L + side], f"clavicle.{s}", True)
        bones[f"forearm.{s}"] = (j[rt.ELBOW_L + side], j[rt.WRIST_L + side], f"upper_arm.{s}", True)
        bones[f"thigh.{s}"] = (j[rt.HIP_L + side], j[rt.KNEE_L + side], "hips", False)
        bones[f"shin.{s}"] = (j[rt.KNEE_L + side], j[rt.ANKLE_L + side], f"thigh.{s}", True)
        for name, (head, tail, parent) in hands.layout(j[rt.WRIST_L + side], s, p.forearm / CANONICAL_FOREARM).items():
            bones[name] = (head, tail, parent, not name.split(".")[1] == "01")  # palm and .02/.03 connected
    return bones


# Targets the rig's constraints follow: key -> (display type, size).
TARGETS = {
    "pelvis": ("ARROWS", 0.15), "chest_base": ("SPHERE", 0.03), "neck_base": ("SPHERE", 0.04),
    "shoulder.L": ("SPHERE", 0.03), "shoulder.R": ("SPHERE", 0.03),
    "head_base": ("SPHERE", 0.03), "head_top": ("SPHERE", 0.04), "ear.L": ("SPHERE", 0.02),
    "wrist.L": ("CUBE", 0.04), "wrist.R": ("CUBE", 0.04), "ankle.L": ("CUBE", 0.05), "ankle.R": ("CUBE", 0.05),
    "elbow_pole.L": ("CONE", 0.04), "elbow_pole.R": ("CONE", 0.04),
    "knee_pole.L": ("CONE", 0.05), "knee_pole.R": ("CONE", 0.05),
}
LEG_TARGETS = ("ankle.L", "ankle.R", "knee_pole.L", "knee_pole.R")
# (bone, constraint type, target key, settings)
CONSTRAINTS = (
    ("hips", "COPY_TRANSFORMS", "pelvis", {}),
    ("spine", "DAMPED_TRACK", "chest_base", {"track_axis": "TRACK_Y"}),
    ("chest", "DAMPED_TRACK", "neck_base", {"track_axis": "TRACK_Y"}),
    ("chest", "LOCKED_TRACK", "shoulder.L", {"lock_axis": "LOCK_Y", "track_axis": "TRACK_X"}),
    ("clavicle.L", "DAMPED_TRACK", "shoulder.L", {"track_axis": "TRACK_Y"}),
    ("clavicle.R", "DAMPED_TRACK", "shoulder.R", {"track_axis": "TRACK_Y"}),
    ("neck", "DAMPED_TRACK", "head_base", {"track_axis": "TRACK_Y"}),
    ("head", "DAMPED_TRACK", "head_top", {"track_axis": "TRACK_Y"}),
    ("head", "LOCKED_TRACK", "ear.L", {"lock_axis": "LOCK_Y", "track_axis": "TRACK_X"}),
    ("forearm.L", "IK", "wrist.L", {"pole": "elbow_pole.L"}),
    ("forearm.R", "IK", "wrist.R", {"pole": "elbow_pole.R"}),
    ("shin.L", "IK", "ankle.L", {"pole": "knee_pole.L"}),
    ("shin.R", "IK", "ankle.R", {"pole": "knee_pole.R"}),
)


def _pole(root: Vector, middle: Vector, end: Vector, fallback: Vector, length: float) -> Vector:
    """Where to put a pole so the chain bends in the plane of the measured joints: out from the middle
    joint, away from the root-end line; a straight limb uses the fallback direction."""
    axis = end - root
    bend = middle - root
    if axis.length > 1e-6:
        a = axis.normalized()
        bend = bend - a * bend.dot(a)
    direction = bend + fallback * 0.002  # the fallback only wins when the limb is (nearly) straight (2 mm)
    if direction.length < 1e-9:
        direction = fallback
    return middle + direction.normalized() * length


def target_positions(j: Sequence[Vector], deltas: dict[str, Matrix], trunk: rt.Trunk) -> dict[str, Vector]:
    """Packet-frame position of every rig target from 17 joints and the deltas of `retarget.deltas_from_joints`."""
    _start, chest_base, neck_base = rt.trunk_points(j, deltas["hips"], trunk)
    head_base = rt.mid(j, (rt.EAR_L, rt.EAR_R))
    back = deltas["chest"] @ Vector((0, 1, 0))
    front = deltas["hips"] @ Vector((0, -1, 0))
    pos = {
        "pelvis": rt.mid(j, (rt.HIP_L, rt.HIP_R)), "chest_base": chest_base, "neck_base": neck_base,
        "shoulder.L": j[rt.SHOULDER_L], "shoulder.R": j[rt.SHOULDER_R], "head_base": head_base,
        "head_top": head_base + deltas["head"] @ Vector((0, 0, HEAD_LENGTH)), "ear.L": j[rt.EAR_L],
        "wrist.L": j[rt.WRIST_L], "wrist.R": j[rt.WRIST_R], "ankle.L": j[rt.ANKLE_L], "ankle.R": j[rt.ANKLE_R],
    }
    for s, side in (("L", 0), ("R", 1)):
        pos[f"elbow_pole.{s}"] = _pole(j[rt.SHOULDER_L + side], j[rt.ELBOW_L + side], j[rt.WRIST_L + side],
                                       back, POLE_DISTANCE)
        pos[f"knee_pole.{s}"] = _pole(j[rt.HIP_L + side], j[rt.KNEE_L + side], j[rt.ANKLE_L + side],
                                      front, POLE_DISTANCE)
    return pos


def reset_ik_pose(obj: bpy.types.Object, keep: frozenset[str] = frozenset()) -> None:
    """Rest pose plus the small pre-bend the IK chains start from; the bones named in `keep` stay as they are."""
    for pb in obj.pose.bones:
        if pb.name in keep:
            continue
        pb.matrix_basis = Matrix.Identity(4)
        if pb.name in PREBEND:
            axis, angle = PREBEND[pb.name]
            pb.rotation_quaternion = Quaternion(axis, angle)


def is_capture_rig(obj: bpy.types.Object) -> bool:
    return obj is not None and obj.type == "ARMATURE" and bool(obj.get(CAPTURE_RIG_KEY))


def create_capture_rig(context: bpy.types.Context, joints: Sequence[Sequence[float]] | None = None,
                       name: str = "CaptureRig", with_mesh: bool = True) -> bpy.types.Object:
    """Build the capture rig in the active collection: sized from `joints` (one packet's joints_3d) or
    default proportions. Returns the armature object, left active and in object mode."""
    props = Proportions.from_joints(joints) if joints is not None else Proportions()
    collection = context.collection or context.scene.collection
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    arm = bpy.data.armatures.new(name)
    arm.display_type = "STICK"
    obj = bpy.data.objects.new(name, arm)
    collection.objects.link(obj)
    obj.show_in_front = True
    for other in context.view_layer.objects.selected:
        other.select_set(False)
    context.view_layer.objects.active = obj
    obj.select_set(True)

    layout = bone_layout(props)
    bpy.ops.object.mode_set(mode="EDIT")
    for bone_name, (head, tail, parent, connected) in layout.items():
        eb = arm.edit_bones.new(bone_name)
        eb.head, eb.tail = head, tail
        eb.align_roll(REST_FRAMES[bone_name].col[2])  # the canonical roll
        if parent:
            eb.parent = arm.edit_bones[parent]
            eb.use_connect = connected
    bpy.ops.object.mode_set(mode="OBJECT")

    rest = props.rest_joints()
    deltas = {b: Matrix.Identity(3) for b in rt.RIG_BONES}
    positions = target_positions(rest, deltas, props.trunk())
    targets = {}
    for key, (display, size) in TARGETS.items():
        empty = bpy.data.objects.new(f"{name}_{key}", None)
        empty.empty_display_type, empty.empty_display_size = display, size
        empty.parent = obj
        empty.location = positions[key]
        empty.rotation_mode = "QUATERNION"
        collection.objects.link(empty)
        targets[key] = empty.name
    # The pelvis target carries the hips bone's whole rest frame (Copy Transforms copies rotation too).
    pelvis = bpy.data.objects[targets["pelvis"]]
    pelvis.rotation_quaternion = rt.REST_FRAMES["hips"].to_quaternion()

    for bone_name, ctype, key, settings in CONSTRAINTS:
        pb = obj.pose.bones[bone_name]
        con = pb.constraints.new(ctype)
        con.name = f"{CONSTRAINT_PREFIX}{ctype.replace('_', ' ').title()} {key}"
        con.target = bpy.data.objects[targets[key]]
        if ctype == "IK":
            con.chain_count = 2
            con.pole_target = bpy.data.objects[targets[settings["pole"]]]
            con.pole_angle = POLE_ANGLES[bone_name]
            con.use_tail = True
        else:
            for attr, value in settings.items():
                setattr(con, attr, value)
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    reset_ik_pose(obj)

    obj[CAPTURE_RIG_KEY] = 1
    obj[TARGETS_KEY] = targets
    obj[PROPORTIONS_KEY] = asdict(props)
    if with_mesh:
        _add_mesh(obj, layout, props, collection)
    return obj


# Half-widths (x, z in the bone's frame) of the box drawn around each bone.
_BOX = {"hips": (0.14, 0.10), "spine": (0.14, 0.09), "chest": (0.16, 0.10), "clavicle": (0.04, 0.04),
        "neck": (0.05, 0.05), "head": (0.09, 0.10), "upper_arm": (0.05, 0.05), "forearm": (0.04, 0.04),
        "thigh": (0.07, 0.07), "shin": (0.05, 0.05), "palm": (0.04, 0.012), "thumb": (0.01, 0.009),
        "index": (0.008, 0.008), "middle": (0.008, 0.008), "ring": (0.008, 0.008), "pinky": (0.007, 0.007)}


def _add_mesh(obj: bpy.types.Object, layout: dict, props: Proportions, collection) -> bpy.types.Object:
    """A body of boxes, one per bone, rigidly skinned (one vertex group per bone) so it exports to glTF."""
    verts: list[Vector] = []
    faces: list[tuple[int, ...]] = []
    groups: dict[str, list[int]] = {}
    quad = ((0, 1, 2, 3), (7, 6, 5, 4), (0, 4, 5, 1), (1, 5, 6, 2), (2, 6, 7, 3), (3, 7, 4, 0))
    for bone_name, (head, tail, _parent, _c) in layout.items():
        wx, wz = _BOX[bone_name.split(".")[0]]
        frame = REST_FRAMES[bone_name]
        x, z = frame.col[0] * wx, frame.col[2] * wz
        if bone_name == "hips":  # a pelvis block from hip to hip
            x = frame.col[0] * (props.hip_half + 0.05)
        start = len(verts)
        for end in (head, tail):
            verts += [end - x - z, end + x - z, end + x + z, end - x + z]
        faces += [tuple(start + i for i in f) for f in quad]
        groups[bone_name] = list(range(start, start + 8))
    mesh = bpy.data.meshes.new(f"{obj.name}_body")
    mesh.from_pydata([tuple(v) for v in verts], [], faces)
    mesh.update()
    body = bpy.data.objects.new(f"{obj.name}_body", mesh)
    collection.objects.link(body)
    body.parent = obj
    for bone_name, idx in groups.items():
        body.vertex_groups.new(name=bone_name).add(idx, 1.0, "REPLACE")
    body.modifiers.new("Armature", "ARMATURE").object = obj
    return body
