"""Hands on real bpy: the capture rig's palm and finger bones, and the fingers of a Mixamo-style and a
Rigify-style armature, reach the rotations a protocol v4 packet carries (tests/data/hand_pose.json, written by
the server's hand code and checked against it in tests/server/test_hands.py); masks; older packets."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import bpy
import pytest
from mathutils import Euler, Matrix, Quaternion, Vector

from blender_addon.core import drive, hands, rig

from .test_retarget import mixamo_like, rigify_like, use_preset
from .test_rig import evaluated, make_packet

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "data" / "hand_pose.json").read_text())
TOLERANCE_DEG = 1.0  # packet quaternions carry 3 decimals (~0.1 degree each); bones chain up to 3 of them
MIRROR = Matrix.Diagonal((-1.0, 1.0, 1.0))
MIXAMO = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Pinky"}


@pytest.fixture
def fresh(scene):
    drive.clear_cache()
    return scene


def hand_packet(joints: list[Vector], hands_field: list | None = FIXTURE["hands"], version: int = 4):
    person, packet = make_packet(joints)
    person["keypoints"], person["scores"] = [[0.0, 0.0]] * 133, [0.9] * 133
    packet["skeleton"], packet["v"] = "wholebody133", version
    if hands_field is not None:
        person["hands"] = hands_field
    return person, packet


def rest_joints() -> list[Vector]:
    """The performer in the T-pose: forearms at rest, so each palm's relative rotation is its world delta."""
    return rig.Proportions().rest_joints()


def deltas(obj: bpy.types.Object, names: dict[str, str]) -> dict[str, Matrix]:
    """World rotation of each slot's bone from its own rest (evaluated: constraints applied)."""
    ev = evaluated(obj)
    world = ev.matrix_world.to_3x3().normalized()
    out = {}
    for slot, name in names.items():
        posed = world @ ev.pose.bones[name].matrix.to_3x3().normalized()
        rest = world @ obj.data.bones[name].matrix_local.to_3x3().normalized()
        out[slot] = posed @ rest.transposed()
    return out


def angle_deg(a: Matrix, b: Matrix) -> float:
    return math.degrees((a.transposed() @ b).to_quaternion().angle)


def forearm_offsets(obj: bpy.types.Object) -> dict[str, Matrix]:
    """side -> the forearm's calibration offset in world axes (identity without one): a hand bone's turn from its
    rest, measured against the canonical rest, is its turn from its own rest conjugated by it."""
    world = obj.matrix_world.to_3x3().normalized()
    out = {s: Matrix.Identity(3) for s in hands.SIDES}
    for e in bpy.context.scene.vitpose_mocap.rig.bone_map:
        if e.canonical in ("forearm.L", "forearm.R"):
            out[e.canonical[-1]] = world @ Quaternion(e.offset).to_matrix() @ world.transposed()
    return out


def assert_hands_follow_the_fixture(obj: bpy.types.Object, names: dict[str, str], palms: bool = True) -> None:
    """Each hand bone turned from its parent as the fixture says (the palm from its forearm, unless not `palms`),
    both measured from the canonical rest (an A-pose rig's forearm offset undone)."""
    d = deltas(obj, names)
    offsets = forearm_offsets(obj)
    errors = {}
    for side, relative in zip(hands.SIDES, FIXTURE["relative"], strict=True):
        o = offsets[side]
        for slot, want in zip(hands.HAND_ORDER[side], relative, strict=True):
            if slot in hands.PALM_SLOTS and not palms:
                continue
            parent = hands.PARENTS[slot]
            errors[slot] = angle_deg(o @ d[parent].transposed() @ d[slot] @ o.transposed(), Matrix(want))
    assert max(errors.values()) < TOLERANCE_DEG, {k: round(v, 2) for k, v in errors.items() if v >= TOLERANCE_DEG}


def capture_names() -> dict[str, str]:
    return {s: s for s in (*hands.HAND_SLOTS, "forearm.L", "forearm.R")}


@pytest.mark.bpy42
def test_capture_rig_hand_bones_rest_like_the_canonical_hand(fresh):
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    for slot in hands.HAND_SLOTS:
        bone = obj.data.bones[slot]
        assert bone.parent.name == hands.PARENTS[slot]
        assert angle_deg(bone.matrix_local.to_3x3(), hands.REST_FRAMES[slot]) < 1e-3
    for s in hands.SIDES:  # the palm continues the forearm; the thumb points out towards the front (-Y)
        assert (obj.data.bones[f"palm.{s}"].head_local - obj.data.bones[f"forearm.{s}"].tail_local).length < 1e-6
        thumb, index = (obj.data.bones[f"{f}.01.{s}"] for f in ("thumb", "index"))
        assert (thumb.tail_local - thumb.head_local).y < 0 and abs((index.tail_local - index.head_local).y) < 1e-6


@pytest.mark.bpy42
@pytest.mark.parametrize("mode", ["IK", "DIRECT"])
def test_capture_rig_fingers_reach_the_angles(fresh, mode):
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    fresh.vitpose_mocap.rig.drive_mode = mode
    drive.apply_person(fresh, obj, *hand_packet(rest_joints()))
    # the pose rotation of each finger bone is its flex (about local X) after its spread (about local Z)
    worst = 0.0
    for side, angles in zip(hands.SIDES, FIXTURE["angles_deg"], strict=True):
        for f, finger in enumerate(hands.FINGERS):
            base, spread, middle, distal = (math.radians(a) for a in angles[4 * f:4 * f + 4])
            want = [Matrix.Rotation(spread, 3, "Z") @ Matrix.Rotation(base, 3, "X"),
                    Matrix.Rotation(middle, 3, "X"), Matrix.Rotation(distal, 3, "X")]
            for j, m in enumerate(want, start=1):
                if side == "R":
                    m = MIRROR @ m @ MIRROR
                got = obj.pose.bones[f"{finger}.0{j}.{side}"].rotation_quaternion.to_matrix()
                worst = max(worst, angle_deg(got, m))
    assert worst < TOLERANCE_DEG
    assert_hands_follow_the_fixture(obj, capture_names())
    if mode == "DIRECT":  # the forearms are at rest: the palms turn as the packet says, in the world
        d = deltas(obj, {"palm.L": "palm.L", "palm.R": "palm.R"})
        for side, want in zip(hands.SIDES, FIXTURE["palm_delta"], strict=True):
            assert angle_deg(d[f"palm.{side}"], Matrix(want)) < TOLERANCE_DEG


def add_hands(obj: bpy.types.Object, name, forearm: dict[str, str], metacarpals: bool, seed: int) -> dict:
    """Hand bones under each forearm, along it (whatever its rest pose), 10% larger than the canonical hand,
    with random rolls; `metacarpals`: fingers hang from palm.01-04 bones under the hand, as in Rigify.
    Returns slot -> bone name (with the forearms)."""
    rnd = random.Random(seed)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    edit = obj.data.edit_bones
    to_arm = obj.matrix_world.inverted()
    names = {f"forearm.{s}": forearm[s] for s in hands.SIDES}
    for s in hands.SIDES:
        fa = edit[forearm[s]]
        wrist = obj.matrix_world @ fa.tail
        along = (wrist - obj.matrix_world @ fa.head).normalized()
        tilt = Vector((1.0 if s == "L" else -1.0, 0.0, 0.0)).rotation_difference(along).to_matrix()
        for slot, (head, tail, parent) in hands.layout(Vector(), s, 1.1).items():
            names[slot] = name(slot)
            eb = edit.new(names[slot])
            eb.head, eb.tail = to_arm @ (wrist + tilt @ head), to_arm @ (wrist + tilt @ tail)
            eb.roll = rnd.uniform(-math.pi, math.pi)
            eb.parent = edit[names[parent]]
        if metacarpals:
            for k, finger in enumerate(("index", "middle", "ring", "pinky"), start=1):
                first = edit[names[f"{finger}.01.{s}"]]
                meta = edit.new(f"palm.0{k}.{s}")
                meta.head, meta.tail, meta.parent = edit[names[f"palm.{s}"]].head, first.head, edit[names[f"palm.{s}"]]
                first.parent = meta
                if finger == "index":
                    edit[names[f"thumb.01.{s}"]].parent = meta
    bpy.ops.object.mode_set(mode="OBJECT")
    return names


def mixamo_hands() -> tuple[bpy.types.Object, dict]:
    obj = mixamo_like()
    side = {"L": "Left", "R": "Right"}

    def name(slot: str) -> str:
        part, *rest = slot.split(".")
        if part == "palm":
            return f"mixamorig1:{side[rest[0]]}Hand"
        return f"mixamorig1:{side[rest[1]]}Hand{MIXAMO[part]}{int(rest[0])}"

    forearm = {s: f"mixamorig1:{side[s]}ForeArm" for s in hands.SIDES}
    return obj, add_hands(obj, name, forearm, metacarpals=False, seed=1)


def rigify_hands() -> tuple[bpy.types.Object, dict]:
    obj = rigify_like()

    def name(slot: str) -> str:
        part, *rest = slot.split(".")
        if part == "palm":
            return f"hand_fk.{rest[0]}"
        return slot if part == "thumb" else f"f_{slot}"

    return obj, add_hands(obj, name, {s: f"forearm_fk.{s}" for s in hands.SIDES}, metacarpals=True, seed=2)


@pytest.mark.bpy42
@pytest.mark.parametrize("make", [mixamo_hands, rigify_hands], ids=["mixamo", "rigify"])
def test_finger_retargeting_onto_mixamo_and_rigify_style_armatures(fresh, make):
    obj, names = make()
    assert use_preset(fresh, obj) == ("mixamo" if make is mixamo_hands else "rigify")
    assert {e.canonical for e in fresh.vitpose_mocap.rig.bone_map} >= set(hands.HAND_SLOTS)
    fresh.vitpose_mocap.rig.drive_mode = "DIRECT"
    drive.apply_person(fresh, obj, *hand_packet(rest_joints()))
    assert_hands_follow_the_fixture(obj, names)


@pytest.mark.bpy42
def test_masks_hands_only_and_no_fingers(fresh):
    obj, names = mixamo_hands()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    rig_settings.drive_mode = "DIRECT"
    arm = obj.pose.bones["mixamorig1:LeftArm"]
    arm.rotation_quaternion = Euler((0.3, 0.2, 0.1)).to_quaternion()  # an animator's pose of the arm
    kept = arm.rotation_quaternion.copy()
    rig_settings.hands_only = True
    drive.apply_person(fresh, obj, *hand_packet(rest_joints()))
    assert arm.rotation_quaternion == kept and obj.pose.bones["mixamorig1:Hips"].matrix_basis == Matrix.Identity(4)
    assert_hands_follow_the_fixture(obj, names)  # the hands turn from wherever the arms are
    rig_settings.hands_only = False
    rig_settings.no_fingers = True
    drive.apply_person(fresh, obj, *hand_packet(rest_joints()))
    assert arm.rotation_quaternion != kept
    for slot in hands.FINGER_SLOTS:
        assert obj.pose.bones[names[slot]].rotation_quaternion.angle < 1e-6
    palm = obj.pose.bones["mixamorig1:LeftHand"].rotation_quaternion
    assert palm.angle > math.radians(5)


@pytest.mark.bpy42
def test_packets_without_hands_leave_the_hands_alone(fresh):
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    drive.apply_person(fresh, obj, *hand_packet(rest_joints(), None, 3))  # (the first tick resets the IK pose)
    curled = Quaternion((1, 0, 0), 0.5)
    obj.pose.bones["index.02.L"].rotation_quaternion = curled
    for field, version in ((None, 3), ([None, None], 4), (FIXTURE["hands"], 3)):
        person, packet = hand_packet(rest_joints(), field, version)
        drive.apply_person(fresh, obj, person, packet)  # (a v3 packet with hands never passes the validator)
        assert obj.pose.bones["index.02.L"].rotation_quaternion == curled
    # Nor a rig setting that resets the IK's start pose (Lock legs, Upper body only, the drive mode): it put every
    # finger back at rest, the hands included.
    fresh.vitpose_mocap.rig.lock_legs = not fresh.vitpose_mocap.rig.lock_legs
    drive.apply_person(fresh, obj, *hand_packet(rest_joints(), None, 3))
    assert obj.pose.bones["index.02.L"].rotation_quaternion == curled


@pytest.mark.bpy42
def test_a_preset_with_hands_drives_an_armature_without_fingers(fresh):
    """Hand slots are optional: the full Mixamo preset (hands included) on a finger-less character calibrates
    and drives its body, and a v4 packet's hands are ignored there."""
    from blender_addon.core import bonemaps, calibrate
    from blender_addon.rig_properties import set_map_entries

    obj = mixamo_like()
    rig_settings = fresh.vitpose_mocap.rig
    set_map_entries(rig_settings, bonemaps.load_preset("mixamo")["bones"])
    assert any(e.canonical == "index.01.L" for e in rig_settings.bone_map)
    calibrate.calibrate(obj, rig_settings)
    rig_settings.drive_mode = "DIRECT"
    drive.apply_person(fresh, obj, *hand_packet(rest_joints()))
    assert obj.pose.bones["mixamorig1:LeftArm"].rotation_quaternion.angle > 0.1  # A-pose arm raised to the T


@pytest.mark.bpy42
@pytest.mark.parametrize("mode", ["IK", "DIRECT"])
def test_palms_turn_as_the_packet_says_on_a_posed_performer(fresh, mode):
    """The palm is driven relative to its forearm; on a posed body (arms swung and bent) its world orientation
    still lands on the packet's palm delta: the capture rig's IK forearm agrees with the joints' forearm."""
    from .test_rig import posed_joints

    worst = 0.0
    for seed in range(4):
        drive.clear_cache()
        obj = rig.create_capture_rig(bpy.context, with_mesh=False)
        fresh.vitpose_mocap.rig.drive_mode = mode
        drive.apply_person(fresh, obj, *hand_packet(posed_joints(rig.Proportions(), seed)))
        d = deltas(obj, {"palm.L": "palm.L", "palm.R": "palm.R"})
        for side, want in zip(hands.SIDES, FIXTURE["palm_delta"], strict=True):
            worst = max(worst, angle_deg(d[f"palm.{side}"], Matrix(want)))
    assert worst < 2.0


@pytest.mark.bpy42
def test_v4_packets_through_the_receiver_and_tick_and_older_versions_still_read(scene, live):
    """A whole-body v4 packet over a real UDP socket, validated by the receiver and applied by the tick, curls
    the capture rig's fingers; v1-v3 packets that follow are read too and leave the fingers as they are."""
    import time

    from blender_addon.core import tick

    from .helpers import capture_rig
    from .packets import make_packet as live_packet

    obj = capture_rig(scene)
    t = time.time()
    packet = live_packet(0, t, version=1)
    person = packet["people"][0]
    person["keypoints"] = person["keypoints"] + [[320.0, 240.0]] * 116
    person["scores"] = person["scores"] + [0.9] * 116
    person["hands"] = FIXTURE["hands"]
    packet["v"], packet["skeleton"] = 4, "wholebody133"
    live(packet)
    tick.apply_tick(scene)
    assert scene.vitpose_mocap.applied == 1 and scene.vitpose_mocap.invalid == 0
    want = Quaternion(FIXTURE["hands"][0][5])  # index.02.L
    got = obj.pose.bones["index.02.L"].rotation_quaternion
    assert math.degrees(got.rotation_difference(want).angle) < 0.5 and got.angle > 0.05
    for seq, version in enumerate((1, 2, 3), start=1):
        older = live_packet(seq, t + seq / 30, version=version)
        if version >= 2:
            older["people"][0]["rotations"] = [[1.0, 0.0, 0.0, 0.0]] * 12
        live(older)
        tick.apply_tick(scene)
        assert scene.vitpose_mocap.applied == 1 + seq and scene.vitpose_mocap.invalid == 0
        assert math.degrees(obj.pose.bones["index.02.L"].rotation_quaternion.rotation_difference(want).angle) < 0.5


@pytest.mark.bpy42
@pytest.mark.parametrize("axis", ["X", "Y", "Z"])
def test_a_hand_on_an_a_pose_rig_points_where_the_performers_does(fresh, axis):
    """An A-pose rig's forearm is posed through its calibration offset; its hand was turned from the offset arm,
    not the performer's: a wrist that only pronated swung the hand 41 degrees off the forearm, a sideways bend 25."""
    from .test_rig import bone_dir

    obj, names = mixamo_hands()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    rig_settings.drive_mode, rig_settings.plant_feet = "DIRECT", False
    assert any(e.canonical == "forearm.L" and Quaternion(e.offset).angle > 0.5 for e in rig_settings.bone_map)
    person, packet = make_packet(rig.Proportions().rest_joints())
    palm = Quaternion(Vector({"X": (1, 0, 0), "Y": (0, 1, 0), "Z": (0, 0, 1)}[axis]), math.radians(60))
    person["hands"] = [[list(palm)] + [[1.0, 0.0, 0.0, 0.0]] * 15, None]
    packet["v"], packet["skeleton"] = 4, "wholebody133"
    drive.apply_person(fresh, obj, person, packet)
    ev = evaluated(obj)
    assert math.degrees(bone_dir(ev, "mixamorig1:LeftForeArm").angle(Vector((1, 0, 0)))) < 1.0
    got = bone_dir(ev, names["palm.L"])
    assert math.degrees(got.angle(palm.to_matrix() @ Vector((1, 0, 0)))) < 1.0
