"""Retargeting on real bpy: preset detection (capture rig, Mixamo-like, generated-Rigify-like, the real
Rigify metarig), calibration of A-pose rests, direct/IK driving of foreign armatures, masks, and clear
errors for wrong bone maps."""

from __future__ import annotations

import json
import math

import addon_utils
import bpy
import pytest
from mathutils import Matrix, Vector

from blender_addon.core import bonemaps, calibrate, drive, rig, state, tick
from blender_addon.core import retarget as rt
from blender_addon.rig_properties import map_entries, set_map_entries

from .helpers import build_armature
from .test_rig import LIMBS, bone_dir, evaluated, make_packet, posed_joints

MIXAMO_SCALE = 1.1  # the Mixamo-like character is 10% taller than the default performer
MIXAMO_LIMBS = {"upper_arm.L": "LeftArm", "forearm.L": "LeftForeArm", "upper_arm.R": "RightArm",
                "forearm.R": "RightForeArm", "thigh.L": "LeftUpLeg", "shin.L": "LeftLeg",
                "thigh.R": "RightUpLeg", "shin.R": "RightLeg"}


def a_pose_joints(scale: float) -> list[Vector]:
    """Default proportions scaled, arms 45 degrees down (an A-pose rest)."""
    j = [p * scale for p in rig.Proportions().rest_joints()]
    for sh, el, wr, sign in ((rt.SHOULDER_L, rt.ELBOW_L, rt.WRIST_L, 1), (rt.SHOULDER_R, rt.ELBOW_R, rt.WRIST_R, -1)):
        down = Vector((sign, 0, -1)).normalized()
        upper, forearm = (j[el] - j[sh]).length, (j[wr] - j[el]).length  # measured before the elbow moves
        j[el] = j[sh] + down * upper
        j[wr] = j[el] + down * forearm
    return j


def mixamo_like(prefix: str = "mixamorig1:", wider_hips: float = 0.0) -> bpy.types.Object:
    """Mixamo names, A-pose, cm units in a Y-up space: object rotated 90 degrees about X and scaled 0.01;
    `wider_hips` moves each leg that far out (metres, before the object's scale)."""
    j = a_pose_joints(MIXAMO_SCALE)
    for joint, side in ((rt.HIP_L, 1), (rt.KNEE_L, 1), (rt.ANKLE_L, 1), (rt.HIP_R, -1), (rt.KNEE_R, -1),
                        (rt.ANKLE_R, -1)):
        j[joint] = j[joint] + Vector((side * wider_hips, 0.0, 0.0))
    pelvis, neck = rt.mid(j, (rt.HIP_L, rt.HIP_R)), rt.mid(j, (rt.SHOULDER_L, rt.SHOULDER_R))
    head = rt.mid(j, (rt.EAR_L, rt.EAR_R))
    up = Vector((0, 0, 0.1))
    n = prefix
    bones = {f"{n}Hips": (pelvis, pelvis + up, None, 0.0),
             f"{n}Spine": (pelvis + up, pelvis.lerp(neck, 0.5), f"{n}Hips", 0.0),
             f"{n}Spine1": (pelvis.lerp(neck, 0.5), neck, f"{n}Spine", 0.0),
             f"{n}Neck": (neck, head, f"{n}Spine1", 0.0),
             f"{n}Head": (head, head + up * 2, f"{n}Neck", 0.0)}
    for side, s in (("Left", 0), ("Right", 1)):
        bones[f"{n}{side}Shoulder"] = (neck, j[rt.SHOULDER_L + s], f"{n}Spine1", 0.2)
        bones[f"{n}{side}Arm"] = (j[rt.SHOULDER_L + s], j[rt.ELBOW_L + s], f"{n}{side}Shoulder", 0.4)
        bones[f"{n}{side}ForeArm"] = (j[rt.ELBOW_L + s], j[rt.WRIST_L + s], f"{n}{side}Arm", -0.3)
        bones[f"{n}{side}UpLeg"] = (j[rt.HIP_L + s], j[rt.KNEE_L + s], f"{n}Hips", 0.1)
        bones[f"{n}{side}Leg"] = (j[rt.KNEE_L + s], j[rt.ANKLE_L + s], f"{n}{side}UpLeg", 0.0)
    placement = Matrix.LocRotScale(Vector((2.0, -1.0, 0.0)), Matrix.Rotation(math.pi / 2, 3, "X"), (0.01,) * 3)
    return build_armature("Mixamo", bones, placement)


def rigify_like() -> bpy.types.Object:
    """The control/deform/ORG bone names of a generated Rigify rig, laid out on the default T-pose."""
    j = rig.Proportions().rest_joints()
    pelvis, neck = rt.mid(j, (rt.HIP_L, rt.HIP_R)), rt.mid(j, (rt.SHOULDER_L, rt.SHOULDER_R))
    head = rt.mid(j, (rt.EAR_L, rt.EAR_R))
    bones = {"root": ((0, 0, 0), (0, 0.5, 0), None, 0.0),
             "torso": (pelvis, pelvis + Vector((0, 0.3, 0)), "root", 0.0),  # lies horizontal, like Rigify's
             "hips": (pelvis, pelvis - Vector((0, 0, 0.1)), "torso", 0.0),
             "chest": (pelvis + Vector((0, 0, 0.2)), neck, "torso", 0.0),
             "spine_fk.002": (pelvis + Vector((0, 0, 0.2)), pelvis.lerp(neck, 0.7), "torso", 0.0),
             "spine_fk.003": (pelvis.lerp(neck, 0.7), neck, "spine_fk.002", 0.0),
             "neck": (neck, head, "chest", 0.0), "head": (head, head + Vector((0, 0, 0.2)), "neck", 0.0),
             "DEF-spine": (pelvis, neck, None, 0.0), "ORG-spine": (pelvis, neck, None, 0.0)}
    for s, i in (("L", 0), ("R", 1)):
        bones[f"shoulder.{s}"] = (neck, j[rt.SHOULDER_L + i], "spine_fk.003", 0.0)
        bones[f"upper_arm_fk.{s}"] = (j[rt.SHOULDER_L + i], j[rt.ELBOW_L + i], f"shoulder.{s}", 0.0)
        bones[f"forearm_fk.{s}"] = (j[rt.ELBOW_L + i], j[rt.WRIST_L + i], f"upper_arm_fk.{s}", 0.0)
        bones[f"hand_ik.{s}"] = (j[rt.WRIST_L + i], j[rt.WRIST_L + i] + Vector((0, 0, -0.1)), "root", 0.0)
        bones[f"thigh_fk.{s}"] = (j[rt.HIP_L + i], j[rt.KNEE_L + i], "hips", 0.0)
        bones[f"shin_fk.{s}"] = (j[rt.KNEE_L + i], j[rt.ANKLE_L + i], f"thigh_fk.{s}", 0.0)
        bones[f"foot_ik.{s}"] = (j[rt.ANKLE_L + i], j[rt.ANKLE_L + i] + Vector((0, -0.15, 0)), "root", 0.0)
        bones[f"upper_arm_ik.{s}"] = (j[rt.SHOULDER_L + i], j[rt.ELBOW_L + i], "chest", 0.0)
        bones[f"thigh_ik.{s}"] = (j[rt.HIP_L + i], j[rt.KNEE_L + i], "hips", 0.0)
    return build_armature("RIG-human", bones)


def metarig() -> bpy.types.Object:
    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    return bpy.context.object


@pytest.fixture
def fresh(scene):
    drive.clear_cache()
    return scene


def use_preset(scene, obj) -> str:
    scene.vitpose_mocap.target = obj
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.vitpose_mocap.detect_bone_map() == {"FINISHED"}
    return scene.vitpose_mocap.rig.preset


@pytest.mark.bpy42
def test_detection_picks_the_right_preset(fresh):
    assert use_preset(fresh, rig.create_capture_rig(bpy.context, with_mesh=False)) == "capture_rig"
    assert use_preset(fresh, mixamo_like()) == "mixamo"
    assert {e.target for e in fresh.vitpose_mocap.rig.bone_map} >= {"mixamorig1:LeftArm"}  # namespace resolved
    assert use_preset(fresh, mixamo_like(prefix="mixamorig:")) == "mixamo"
    assert use_preset(fresh, rigify_like()) == "rigify"
    assert use_preset(fresh, metarig()) == "rigify_metarig"
    stranger = build_armature("Stranger", {"Bone": ((0, 0, 0), (0, 0, 1), None, 0.0)})
    fresh.vitpose_mocap.target = stranger
    with pytest.raises(RuntimeError, match="no preset fits"):
        bpy.ops.vitpose_mocap.detect_bone_map()


@pytest.mark.bpy42
def test_metarig_a_pose_calibrated_direct_mode_matches_directions(fresh):
    obj = metarig()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    assert rig_settings.calibrated
    offsets = {e.canonical: e.offset.angle for e in rig_settings.bone_map}
    assert math.degrees(offsets["upper_arm.L"]) > 20  # the metarig's arms hang below the T-pose
    rig_settings.drive_mode = "DIRECT"
    rig_settings.plant_feet = False  # exact rotations: planting would bend its legs (of other proportions)
    joints = posed_joints(rig.Proportions(), seed=11)
    drive.apply_person(fresh, obj, *make_packet(joints))
    ev = evaluated(obj)
    for bone, a, b in LIMBS:
        assert math.degrees(bone_dir(ev, bone).angle(joints[b] - joints[a])) < 1.0, bone
    spine = rt.mid(joints, (rt.SHOULDER_L, rt.SHOULDER_R)) - rt.mid(joints, (rt.HIP_L, rt.HIP_R))
    assert math.degrees(bone_dir(ev, "spine.001").angle(spine)) < 1.0


@pytest.mark.bpy42
def test_mixamo_rotated_scaled_object_direct_mode_and_root_location(fresh):
    obj = mixamo_like()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    assert rig_settings.location_scale == pytest.approx(MIXAMO_SCALE, rel=1e-3)
    rig_settings.drive_mode = "DIRECT"
    joints = posed_joints(rig.Proportions(), seed=12)
    drive.apply_person(fresh, obj, *make_packet(joints))
    ev = evaluated(obj)
    for bone, a, b in LIMBS:
        target = bonemaps.load_preset("mixamo")["bones"]
        name = next(e["target"] for e in target if e["canonical"] == bone).replace("mixamorig:", "mixamorig1:")
        assert math.degrees(bone_dir(ev, name).angle(joints[b] - joints[a])) < 1.0, bone
    hips = ev.matrix_world @ ev.pose.bones["mixamorig1:Hips"].head
    pelvis = rt.mid(joints, (rt.HIP_L, rt.HIP_R))
    assert (hips - (Vector((2.0, -1.0, 0.0)) + pelvis * MIXAMO_SCALE)).length < 1e-3
    # Positions, not only directions: the character is the performer scaled by 1.1, so every limb joint lands
    # on the performer's joint scaled about the armature's origin.
    for bone, a, b in LIMBS:
        name = f"mixamorig1:{MIXAMO_LIMBS[bone]}"
        for end, joint in (("head", a), ("tail", b)):
            got = ev.matrix_world @ getattr(ev.pose.bones[name], end)
            want = Vector((2.0, -1.0, 0.0)) + joints[joint] * MIXAMO_SCALE
            assert (got - want).length < 2e-3, (bone, end, (got - want).length)


@pytest.mark.bpy42
def test_rigify_ik_mode_moves_ik_controls_to_the_joints(fresh):
    obj = rigify_like()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    offsets = {e.canonical: e.offset.angle for e in rig_settings.bone_map}
    assert offsets["hips"] == pytest.approx(0.0)  # the horizontal torso control keeps its own orientation
    assert rig_settings.drive_mode == "IK"
    joints = posed_joints(rig.Proportions(), seed=13)
    drive.apply_person(fresh, obj, *make_packet(joints))
    ev = evaluated(obj)
    scale = rig_settings.location_scale
    for bone, joint in (("hand_ik.L", rt.WRIST_L), ("hand_ik.R", rt.WRIST_R), ("foot_ik.L", rt.ANKLE_L)):
        assert (ev.pose.bones[bone].head - joints[joint] * scale).length < 1e-3, bone
    # The IK hands turn as the forearms do (the hand continues the forearm): the same turn from the rest pose as
    # Direct mode gives the FK forearm, so the wrists of a Rigify rig in IK mode follow the performer's.
    ik_turns = {s: ev.pose.bones[f"hand_ik.{s}"].matrix.to_3x3() @ obj.data.bones[f"hand_ik.{s}"].matrix_local
                .to_3x3().inverted() for s in "LR"}
    rig_settings.drive_mode = "DIRECT"
    drive.apply_person(fresh, obj, *make_packet(joints))
    ev = evaluated(obj)
    for s in "LR":
        fk_turn = ev.pose.bones[f"forearm_fk.{s}"].matrix.to_3x3() @ obj.data.bones[f"forearm_fk.{s}"].matrix_local \
            .to_3x3().inverted()
        assert math.degrees(ik_turns[s].to_quaternion().rotation_difference(fk_turn.to_quaternion()).angle) < 1.0, s
    assert max(q.to_quaternion().angle for q in ik_turns.values()) > 0.3  # the pose does turn them
    # Direct mode leaves the IK controls alone.
    before = obj.pose.bones["hand_ik.L"].location.copy(), obj.pose.bones["hand_ik.L"].rotation_quaternion.copy()
    drive.apply_person(fresh, obj, *make_packet(posed_joints(rig.Proportions(), seed=14)))
    assert obj.pose.bones["hand_ik.L"].location == before[0]
    assert obj.pose.bones["hand_ik.L"].rotation_quaternion == before[1]


def turned_joints(degrees: float) -> list[Vector]:
    """The default performer standing in the T-pose, turned about the vertical: the feet should point that way."""
    turn = Matrix.Rotation(math.radians(degrees), 3, "Z")
    return [turn @ p + Vector((0.2, -0.1, 0.0)) for p in rig.Proportions().rest_joints()]


def heading(v: Vector) -> float:
    """Compass angle of a vector's horizontal part (degrees, 0 = -Y, the T-pose's forward; counter-clockwise)."""
    return math.degrees(math.atan2(v.x, -v.y))


@pytest.mark.bpy42
def test_rigify_ik_feet_turn_with_the_performer(fresh):
    """COCO has no toes: an IK foot control is turned about the vertical to where the knee faces, so the feet do
    not keep pointing the rest way when the performer turns round (they did: 100 degrees off here)."""
    obj = rigify_like()
    use_preset(fresh, obj)
    for degrees in (100.0, -60.0):
        drive.apply_person(fresh, obj, *make_packet(turned_joints(degrees)))
        ev = evaluated(obj)
        for s in "LR":
            foot = ev.matrix_world.to_3x3() @ ev.pose.bones[f"foot_ik.{s}"].matrix.col[1].to_3d()
            assert abs(foot.z) < 1e-3  # still flat
            assert abs((heading(foot) - degrees + 180.0) % 360.0 - 180.0) < 1.0, (s, degrees, heading(foot))


@pytest.mark.bpy42
def test_wrong_bone_map_names_the_missing_bones(fresh, free_port):
    obj = mixamo_like()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    entry = {e.canonical: e for e in rig_settings.bone_map}
    entry["upper_arm.L"].target = "mixamorig1:LeftArmm"
    entry["shin.L"].target = "Nope"
    person, packet = make_packet(posed_joints(rig.Proportions(), seed=1))
    with pytest.raises(bonemaps.BoneMapError, match=r"upper_arm\.L -> 'mixamorig1:LeftArmm'.*'Nope'"):
        drive.apply_person(fresh, obj, person, packet)
    assert all(pb.matrix_basis == Matrix.Identity(4) for pb in obj.pose.bones)  # nothing half-applied
    with pytest.raises(RuntimeError, match="LeftArmm"):
        bpy.ops.vitpose_mocap.calibrate_rest()
    # Through the live tick: an error in the panel, no exception.
    fresh.vitpose_mocap.target = obj
    rx = state.start_receiver(fresh, "127.0.0.1", free_port)
    assert rx.offer(json.dumps(packet).encode())
    tick.apply_tick(fresh)
    assert "LeftArmm" in fresh.vitpose_mocap.last_error and "Nope" in fresh.vitpose_mocap.last_error


@pytest.mark.bpy42
def test_masks_on_direct_retarget(fresh):
    obj = mixamo_like()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    rig_settings.drive_mode = "DIRECT"
    pose = obj.pose.bones
    joints = posed_joints(rig.Proportions(), seed=4, travel=(0.4, 0.3, -0.1))
    pelvis = rt.mid(joints, (rt.HIP_L, rt.HIP_R))
    origin = Vector((2.0, -1.0, 0.0))

    rig_settings.lock_legs = True
    drive.apply_person(fresh, obj, *make_packet(joints))
    assert pose["mixamorig1:LeftUpLeg"].rotation_quaternion.angle < 1e-6
    assert pose["mixamorig1:LeftArm"].rotation_quaternion.angle > 0.1

    rig_settings.lock_legs, rig_settings.lock_root = False, True
    drive.apply_person(fresh, obj, *make_packet(joints))
    ev = evaluated(obj)
    hips = ev.matrix_world @ ev.pose.bones["mixamorig1:Hips"].head
    assert tuple(hips.xy) == pytest.approx(tuple(origin.xy), abs=1e-3)
    assert hips.z == pytest.approx(pelvis.z * MIXAMO_SCALE, abs=1e-3)
    assert pose["mixamorig1:LeftUpLeg"].rotation_quaternion.angle > 0.1

    rig_settings.lock_root, rig_settings.upper_body_only = False, True
    drive.apply_person(fresh, obj, *make_packet(joints))
    assert pose["mixamorig1:Hips"].matrix_basis == Matrix.Identity(4)
    assert pose["mixamorig1:RightLeg"].rotation_quaternion.angle < 1e-6
    ev = evaluated(obj)
    assert math.degrees(bone_dir(ev, "mixamorig1:LeftForeArm").angle(joints[rt.WRIST_L] - joints[rt.ELBOW_L])) < 1


@pytest.mark.bpy42
def test_masks_on_capture_rig_ik(fresh):
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    fresh.vitpose_mocap.target = obj
    rig_settings = fresh.vitpose_mocap.rig
    joints = posed_joints(rig.Proportions(), seed=6)
    rig_settings.lock_legs = True
    drive.apply_person(fresh, obj, *make_packet(joints))
    muted = {pb.name for pb in obj.pose.bones for c in pb.constraints if c.mute}
    assert muted == {"shin.L", "shin.R"}
    ev = evaluated(obj)
    wrist = ev.pose.bones["forearm.L"].tail
    assert (wrist - joints[rt.WRIST_L]).length < 0.01
    hips = ev.pose.bones["hips"].matrix.to_3x3()
    thigh = ev.pose.bones["thigh.L"].matrix.to_3x3()
    assert (hips.transposed() @ thigh @ Vector((0, 1, 0))).angle(Vector((0, -1, 0))) < 0.01  # rest, relative

    rig_settings.lock_legs, rig_settings.upper_body_only = False, True
    drive.apply_person(fresh, obj, *make_packet(joints))
    ev = evaluated(obj)
    assert (ev.pose.bones["hips"].head - Vector((0, 0, rig.Proportions().pelvis_height))).length < 1e-4
    rest = rt.REST_FRAMES["hips"]
    assert ev.pose.bones["hips"].matrix.to_quaternion().rotation_difference(rest.to_quaternion()).angle < 1e-3


def test_presets_round_trip_and_bad_presets(fresh, tmp_path):
    for name in bonemaps.list_presets():
        preset = bonemaps.load_preset(name)
        assert {e["canonical"] for e in preset["bones"]} >= set(rt.CANONICAL_BONES), name
    rig_settings = fresh.vitpose_mocap.rig
    set_map_entries(rig_settings, bonemaps.load_preset("mixamo")["bones"])
    path = tmp_path / "mine.json"
    assert bpy.ops.vitpose_mocap.save_bone_map(filepath=str(path)) == {"FINISHED"}
    rig_settings.bone_map.clear()
    assert bpy.ops.vitpose_mocap.load_bone_map(filepath=str(path)) == {"FINISHED"}
    mixamo = bonemaps.load_preset("mixamo")["bones"]
    assert [e["target"] for e in map_entries(rig_settings)] == [e["target"] for e in mixamo]
    path.write_text("{not json")
    with pytest.raises(bonemaps.BoneMapError, match="not valid JSON"):
        bonemaps.load_preset(path)
    path.write_text(json.dumps({"bones": [{"canonical": "tail", "target": "x", "mode": "SPIN"}]}))
    with pytest.raises(bonemaps.BoneMapError, match="unknown canonical bone 'tail'.*mode 'SPIN'"):
        bonemaps.load_preset(path)


@pytest.mark.bpy42
def test_upper_arm_twist_is_continuous_as_the_elbow_straightens():
    """The twist from the bend plane fades into the parent's twist: no pop when an arm goes straight."""
    j = rig.Proportions().rest_joints()
    upper = Vector((1, 0, 0)) * 0.28
    previous = None
    for step in range(61):
        bend = 0.6 - step * 0.01
        # Bend about an axis rotated 60 degrees away from the arm's natural hinge (-Z).
        hinge = Matrix.Rotation(math.radians(60), 3, "X") @ Vector((0, 0, -1))
        j[rt.ELBOW_L] = j[rt.SHOULDER_L] + upper
        j[rt.WRIST_L] = j[rt.ELBOW_L] + Matrix.Rotation(bend, 3, hinge) @ Vector((0.25, 0, 0))
        q = rt.deltas_from_joints(j)["upper_arm.L"].to_quaternion()
        if previous is not None:
            assert math.degrees(previous.rotation_difference(q).angle) < 6.0, bend
        previous = q


def hip_convention_joints() -> list[Vector]:
    """tests/data/hip_convention.json: the vector the server's IK test checks too (tests/lift/test_ik.py)."""
    from pathlib import Path

    doc = json.loads((Path(__file__).resolve().parents[1] / "data" / "hip_convention.json").read_text())
    return [Vector(p) for p in doc["joints_3d"]]


@pytest.mark.bpy42
def test_shared_hip_convention_thigh_tops_on_the_hips_and_straight_knees_stay_straight(fresh):
    """One hip convention with pose_server.ik.solve_rotations: the hip line is kept exactly, so the thigh tops
    land on the hip joints (Direct and IK) and a straight leg is not bent by the IK (issue 20, defect 2)."""
    joints = hip_convention_joints()
    pelvis = rt.mid(joints, (rt.HIP_L, rt.HIP_R))
    half = (joints[rt.HIP_L] - joints[rt.HIP_R]).length / 2
    hips = rt.deltas_from_joints(joints)["hips"]
    assert (pelvis + hips @ Vector((half, 0, 0)) - joints[rt.HIP_L]).length < 1e-5
    assert (pelvis + hips @ Vector((-half, 0, 0)) - joints[rt.HIP_R]).length < 1e-5
    obj = rig.create_capture_rig(bpy.context, [list(p) for p in joints], with_mesh=False)
    fresh.vitpose_mocap.target = obj
    for mode in ("IK", "DIRECT"):
        fresh.vitpose_mocap.rig.drive_mode = mode
        drive.apply_person(fresh, obj, *make_packet(joints))
        ev = evaluated(obj)
        for s, side in (("L", 0), ("R", 1)):
            thigh, shin = ev.pose.bones[f"thigh.{s}"], ev.pose.bones[f"shin.{s}"]
            assert (thigh.head - joints[rt.HIP_L + side]).length < 1e-3, (mode, s)
            assert (shin.head - joints[rt.KNEE_L + side]).length < 3e-3, (mode, s)
            assert (shin.tail - joints[rt.ANKLE_L + side]).length < 3e-3, (mode, s)
            knee = math.degrees((thigh.tail - thigh.head).angle(shin.tail - shin.head))
            assert knee < 1.0, (mode, s, knee)


# A performer with shorter legs than the canonical 1.75 m adult (CMU subject 131: pelvis 0.88 m).
SHORT_LEGS = rig.Proportions(thigh=0.41, shin=0.39, pelvis_height=0.88)


@pytest.mark.bpy42
def test_root_travel_follows_the_targets_leg_length_over_the_performers(fresh):
    """Calibration scales root travel by target legs / the performer's own legs (measured from the stream), so a
    rig built to the performer travels exactly as far as they do and a 10% taller one 10% further (issue 20, 1)."""
    performer = SHORT_LEGS.rest_joints()
    mixamo = mixamo_like()  # default proportions x 1.1
    own = rig.create_capture_rig(bpy.context, [list(p) for p in performer], with_mesh=False)
    # A person was driven before Detect is pressed: Detect measures the performer from the stream.
    drive.apply_person(fresh, own, *make_packet(performer))
    canonical_leg = rig.Proportions().thigh + rig.Proportions().shin
    for obj, scale in ((own, 1.0), (mixamo, MIXAMO_SCALE * canonical_leg / (SHORT_LEGS.thigh + SHORT_LEGS.shin))):
        use_preset(fresh, obj)
        rig_settings = fresh.vitpose_mocap.rig
        assert rig_settings.location_scale == pytest.approx(scale, rel=1e-3), obj.name
        rig_settings.drive_mode = "DIRECT"
        start = posed_joints(SHORT_LEGS, seed=31, travel=(0.0, 0.0, 0.0))
        end = [p + Vector((0.8, -0.3, 0.0)) for p in start]
        root = next(e.target for e in rig_settings.bone_map if e.canonical == "hips")
        heads = []
        for joints in (start, end):
            drive.apply_person(fresh, obj, *make_packet(joints))
            ev = evaluated(obj)
            heads.append(ev.matrix_world @ ev.pose.bones[root].head)
        travel = (heads[1] - heads[0]).length
        assert travel == pytest.approx(Vector((0.8, -0.3, 0.0)).length * scale, rel=1e-3), obj.name


def slouched_joints(seed: int) -> list[Vector]:
    """A reachable pose whose trunk bends: the upper body (shoulders, arms, head) sinks 3.5 cm towards the
    pelvis and its shoulder line tilts 12 degrees against the trunk, as a real trunk does (issue 20, defect 3)."""
    j = posed_joints(rig.Proportions(), seed=seed)
    pelvis, neck_base = rt.mid(j, (rt.HIP_L, rt.HIP_R)), rt.mid(j, (rt.SHOULDER_L, rt.SHOULDER_R))
    down = (pelvis - neck_base).normalized() * 0.035
    tilt = Matrix.Rotation(math.radians(12), 3, (neck_base - pelvis).cross(j[rt.SHOULDER_L] - j[rt.SHOULDER_R]))
    for k in range(rt.NUM_JOINTS):
        if k < rt.HIP_L:  # face, shoulders, elbows, wrists
            j[k] = neck_base + tilt @ (j[k] - neck_base) + down
    return j


@pytest.mark.bpy42
@pytest.mark.parametrize("seed", [51, 52])
def test_the_trunk_bends_and_the_clavicles_follow_the_shoulder_line(fresh, seed):
    """Capture rig (IK and Direct), Mixamo- and Rigify-like rigs (Direct): the chest reaches the mid-shoulder
    point, the clavicles the shoulders, and the arms stay on their joints."""
    joints = slouched_joints(seed)
    capture = rig.create_capture_rig(bpy.context, with_mesh=False)
    arms = {"clavicle.L": "upper_arm.L", "clavicle.R": "upper_arm.R"}
    cases = [(capture, "IK", 1.0, arms), (capture, "DIRECT", 1.0, arms),
             (mixamo_like(), "DIRECT", MIXAMO_SCALE, {"chest": "mixamorig1:Neck", **{
                 f"clavicle.{s}": f"mixamorig1:{side}Arm" for s, side in (("L", "Left"), ("R", "Right"))}}),
             (rigify_like(), "DIRECT", 1.0, {"clavicle.L": "upper_arm_fk.L", "clavicle.R": "upper_arm_fk.R"})]
    standing = posed_joints(rig.Proportions(), seed=seed)
    for obj, mode, scale, child in cases:
        use_preset(fresh, obj)
        calibrate.calibrate(obj, fresh.vitpose_mocap.rig, [list(p) for p in standing])  # measured standing
        fresh.vitpose_mocap.rig.drive_mode = mode
        drive.apply_person(fresh, obj, *make_packet(joints))
        ev = evaluated(obj)
        names = {e.canonical: e.target for e in fresh.vitpose_mocap.rig.bone_map}
        origin = obj.matrix_world.translation

        def head(slot, ev=ev, names=names, child=child):  # where the bone after `slot` starts
            return ev.matrix_world @ (ev.pose.bones[child[slot]].head if slot in child
                                      else ev.pose.bones[names.get(slot, names["spine"])].tail)

        neck_base = rt.mid(joints, (rt.SHOULDER_L, rt.SHOULDER_R))
        assert (head("chest") - (origin + neck_base * scale)).length < 0.005 * scale, (obj.name, mode)
        for slot, joint in (("clavicle.L", rt.SHOULDER_L), ("clavicle.R", rt.SHOULDER_R)):
            assert (head(slot) - (origin + joints[joint] * scale)).length < 0.005 * scale, (obj.name, mode, slot)
        for bone, joint in (("forearm.L", rt.WRIST_L), ("forearm.R", rt.WRIST_R)):
            if obj is not capture:
                continue  # the A-pose Mixamo-like arms are checked by position in the Mixamo test
            tail = ev.matrix_world @ ev.pose.bones[names[bone]].tail
            assert (tail - (origin + joints[joint] * scale)).length < 0.01 * scale, (obj.name, mode, bone)


@pytest.mark.bpy42
def test_clavicles_that_start_in_front_of_the_chest_still_put_the_arms_on_the_shoulders(fresh):
    """Mixamo's and the metarig's clavicles start a few cm in front of the chest's top: they are aimed so each
    upper arm starts on the performer's shoulder, not 3 cm off."""
    obj = mixamo_like()
    bpy.ops.object.mode_set(mode="EDIT")
    for side in ("Left", "Right"):  # move the clavicle heads 3 cm forward (-Y in the Y-up object is +Z)
        obj.data.edit_bones[f"mixamorig1:{side}Shoulder"].head.z += 3.0
    bpy.ops.object.mode_set(mode="OBJECT")
    use_preset(fresh, obj)
    fresh.vitpose_mocap.rig.drive_mode = "DIRECT"
    joints = slouched_joints(53)
    drive.apply_person(fresh, obj, *make_packet(joints))
    ev = evaluated(obj)
    for side, joint in (("Left", rt.SHOULDER_L), ("Right", rt.SHOULDER_R)):
        got = ev.matrix_world @ ev.pose.bones[f"mixamorig1:{side}Arm"].head
        want = Vector((2.0, -1.0, 0.0)) + joints[joint] * MIXAMO_SCALE
        assert (got - want).length < 0.003, (side, (got - want).length)


@pytest.mark.bpy42
@pytest.mark.parametrize("mode", ["IK", "DIRECT"])
def test_planted_feet_of_a_rig_of_other_proportions(fresh, mode):
    """The Rigify metarig (legs 1.18x the canonical ones, hips 6 cm above its root bone): its thigh heads sit on
    the scaled pelvis; with Plant feet (both drive modes) its own legs bend so a foot on the floor lands where the
    performer's is relative to the hip, scaled (no sliding feet; under the metarig's own hips), while a foot in
    the air keeps the performer's limb directions exactly, as without Plant feet."""
    obj = metarig()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    scale = rig_settings.location_scale
    names = {e.canonical: e.target for e in rig_settings.bone_map}
    joints = posed_joints(rig.Proportions(), seed=61, swing=0.5)
    legs = (("thigh.L", "shin.L", rt.HIP_L, rt.ANKLE_L), ("thigh.R", "shin.R", rt.HIP_R, rt.ANKLE_R))

    def pose(points: list[Vector]) -> tuple[list[float], dict[str, Vector]]:
        drive.apply_person(fresh, obj, *make_packet(points))
        ev = evaluated(obj)
        m = ev.matrix_world
        mid_hips = (m @ ev.pose.bones[names["thigh.L"]].head + m @ ev.pose.bones[names["thigh.R"]].head) / 2
        assert (mid_hips - rt.mid(points, (rt.HIP_L, rt.HIP_R)) * scale).length < 1e-3
        misses = [(m @ ev.pose.bones[names[shin]].tail - m @ ev.pose.bones[names[thigh]].head
                   - (points[ankle] - points[hip]) * scale).length for thigh, shin, hip, ankle in legs]
        return misses, {b: bone_dir(ev, names[b]) for b in ("thigh.L", "shin.L", "thigh.R", "shin.R")}

    def shifted(dz: float) -> list[Vector]:
        return [p + Vector((0.0, 0.0, dz)) for p in joints]

    rig_settings.drive_mode = mode
    rig_settings.plant_feet = False
    exact_misses, exact_dirs = pose(joints)
    assert max(exact_misses) > 0.01, exact_misses  # rotations alone cannot: the legs have other proportions
    rig_settings.plant_feet = True
    pose(shifted(-0.3))  # the floor: 30 cm below the pose
    airborne_misses, airborne_dirs = pose(joints)
    for bone, d in exact_dirs.items():  # both feet 30 cm up: nothing is bent, the directions are the performer's
        assert math.degrees(d.angle(airborne_dirs[bone])) < 0.05, bone
    assert airborne_misses == pytest.approx(exact_misses, abs=1e-4)
    planted_misses, _ = pose(shifted(-0.3))  # back on the floor
    lower = min(range(2), key=lambda side: joints[legs[side][3]].z)
    assert planted_misses[lower] < 2e-3, planted_misses  # the foot on the floor lands on the scaled ankle


@pytest.mark.bpy42
def test_planted_feet_go_under_the_targets_own_hips(fresh):
    """Legs of the performer's proportions (scaled) on hips 4 cm wider each side: a planted foot stays under the
    armature's own hip instead of being pulled in to the performer's narrower stance, so the leg keeps the
    performer's direction (bending it inwards cost the standard Mixamo rig 1.1 degrees of limb direction on a
    walk)."""
    obj = mixamo_like(wider_hips=0.04)
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    assert rig_settings.plant_feet and rig_settings.drive_mode == "IK"
    joints = posed_joints(rig.Proportions(), seed=62, swing=0.5)
    drive.apply_person(fresh, obj, *make_packet(joints))  # the first packet: its lower foot is on the floor
    ev = evaluated(obj)
    for bone, a, b in LIMBS:
        if bone.startswith(("thigh", "shin")):
            got = bone_dir(ev, f"mixamorig1:{MIXAMO_LIMBS[bone]}")
            assert math.degrees(got.angle(joints[b] - joints[a])) < 0.1, bone
    m = ev.matrix_world
    for side, hip, ankle in (("Left", rt.HIP_L, rt.ANKLE_L), ("Right", rt.HIP_R, rt.ANKLE_R)):
        foot = m @ ev.pose.bones[f"mixamorig1:{side}Leg"].tail - m @ ev.pose.bones[f"mixamorig1:{side}UpLeg"].head
        assert (foot - (joints[ankle] - joints[hip]) * MIXAMO_SCALE).length < 1e-3, side


@pytest.mark.bpy42
@pytest.mark.parametrize("yaw", [90.0, 180.0])
def test_an_armature_turned_about_the_vertical_performs_facing_its_way(fresh, yaw):
    """Positions were placed world-aligned but rotations in the object's frame: a Mixamo rig turned 90 degrees had
    its arms 90 degrees off and its pelvis across the hip line, the capture rig's IK limbs 0.13 m off. The packet
    frame now turns with the object: every limb lies along the performer's, turned by the same yaw."""
    from .test_rig import LIMBS, bone_dir, evaluated, make_packet, posed_joints

    turn = Matrix.Rotation(math.radians(yaw), 3, "Z")
    joints = posed_joints(rig.Proportions(), seed=12)
    for build, mode in ((mixamo_like, "DIRECT"), (lambda: rig.create_capture_rig(bpy.context, with_mesh=False), "IK")):
        bpy.ops.wm.read_factory_settings(use_empty=True)
        drive.clear_cache()
        scene = bpy.context.scene
        obj = build()
        obj.matrix_world = Matrix.Rotation(math.radians(yaw), 4, "Z") @ obj.matrix_world
        bpy.context.view_layer.update()
        use_preset(scene, obj)
        scene.vitpose_mocap.rig.drive_mode = mode
        scene.vitpose_mocap.rig.plant_feet = False
        drive.apply_person(scene, obj, *make_packet(joints))
        ev = evaluated(obj)
        names = {e.canonical: bonemaps.resolve_name(obj.data.bones.keys(), e.target)
                 for e in scene.vitpose_mocap.rig.bone_map}
        for bone, a, b in LIMBS:
            off = math.degrees(bone_dir(ev, names[bone]).angle(turn @ (joints[b] - joints[a])))
            assert off < 2.0, (obj.name, bone, off)
        pelvis_x = (ev.matrix_world.to_3x3() @ ev.pose.bones[names["hips"]].matrix.to_3x3()).col[0]
        if mode == "IK":  # the capture rig's hips bone has its X along the hip line
            assert math.degrees(pelvis_x.angle(turn @ (joints[rt.HIP_L] - joints[rt.HIP_R]))) < 2.0


@pytest.mark.bpy42
def test_a_straight_arm_swept_across_the_chest_turns_smoothly(fresh):
    """From joints (IK mode, and packets without rotations) the add-on swings each limb itself: near the rest
    direction's antipode the smallest swing's axis turned over and the upper arm snapped 38.5 degrees in one frame."""
    from mathutils import Quaternion

    from .test_rig import evaluated, make_packet

    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    use_preset(fresh, obj)
    fresh.vitpose_mocap.rig.drive_mode, fresh.vitpose_mocap.rig.plant_feet = "DIRECT", False
    props = rig.Proportions()
    steps, previous = [], None
    for k in range(0, 240, 2):
        t = math.radians(k)
        j = props.rest_joints()
        d = Vector((math.cos(t), -math.sin(t), 0.05)).normalized()
        j[rt.ELBOW_L] = j[rt.SHOULDER_L] + d * props.upper_arm
        j[rt.WRIST_L] = j[rt.ELBOW_L] + (d + Vector((0.0, -0.02, 0.0))).normalized() * props.forearm
        drive.apply_person(fresh, obj, *make_packet(j))
        ev = evaluated(obj)
        q: Quaternion = (ev.matrix_world @ ev.pose.bones["upper_arm.L"].matrix).to_quaternion()
        if previous is not None:
            steps.append(math.degrees(previous.rotation_difference(q).angle))
        previous = q
    steps = [min(s, 360.0 - s) for s in steps]
    assert max(steps) < 5.0, (steps.index(max(steps)), max(steps))  # the direction moves 2 degrees a step
