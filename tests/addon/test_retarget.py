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

from blender_addon.core import bonemaps, drive, rig, state, tick
from blender_addon.core import retarget as rt
from blender_addon.rig_properties import map_entries, set_map_entries

from .test_rig import LIMBS, bone_dir, evaluated, make_packet, posed_joints

MIXAMO_SCALE = 1.1  # the Mixamo-like character is 10% taller than the default performer


def build_armature(name: str, bones: dict, obj_matrix: Matrix | None = None) -> bpy.types.Object:
    """bones: name -> (head_world, tail_world, parent, roll); heads/tails are converted into the object's space."""
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(obj)
    obj_matrix = obj_matrix or Matrix.Identity(4)
    obj.matrix_world = obj_matrix
    bpy.context.view_layer.objects.active = obj
    inv = obj_matrix.inverted()
    bpy.ops.object.mode_set(mode="EDIT")
    for bone_name, (head, tail, parent, roll) in bones.items():
        eb = arm.edit_bones.new(bone_name)
        eb.head, eb.tail, eb.roll = inv @ Vector(head), inv @ Vector(tail), roll
        if parent:
            eb.parent = arm.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def a_pose_joints(scale: float) -> list[Vector]:
    """Default proportions scaled, arms 45 degrees down (an A-pose rest)."""
    j = [p * scale for p in rig.Proportions().rest_joints()]
    for sh, el, wr, sign in ((rt.SHOULDER_L, rt.ELBOW_L, rt.WRIST_L, 1), (rt.SHOULDER_R, rt.ELBOW_R, rt.WRIST_R, -1)):
        down = Vector((sign, 0, -1)).normalized()
        j[el] = j[sh] + down * (j[el] - j[sh]).length
        j[wr] = j[el] + down * (j[wr] - j[el]).length
    return j


def mixamo_like(prefix: str = "mixamorig1:") -> bpy.types.Object:
    """Mixamo names, A-pose, cm units in a Y-up space: object rotated 90 degrees about X and scaled 0.01."""
    j = a_pose_joints(MIXAMO_SCALE)
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
             "neck": (neck, head, "chest", 0.0), "head": (head, head + Vector((0, 0, 0.2)), "neck", 0.0),
             "DEF-spine": (pelvis, neck, None, 0.0), "ORG-spine": (pelvis, neck, None, 0.0)}
    for s, i in (("L", 0), ("R", 1)):
        bones[f"upper_arm_fk.{s}"] = (j[rt.SHOULDER_L + i], j[rt.ELBOW_L + i], "chest", 0.0)
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
    assert fresh.vitpose_mocap.rig.bone_map[4].target == "mixamorig1:LeftArm"  # namespace resolved
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
    # Direct mode leaves the IK controls alone.
    rig_settings.drive_mode = "DIRECT"
    before = obj.pose.bones["hand_ik.L"].location.copy()
    drive.apply_person(fresh, obj, *make_packet(posed_joints(rig.Proportions(), seed=14)))
    assert obj.pose.bones["hand_ik.L"].location == before


@pytest.mark.bpy42
def test_wrong_bone_map_names_the_missing_bones(fresh, free_port):
    obj = mixamo_like()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    rig_settings.bone_map[4].target = "mixamorig1:LeftArmm"
    rig_settings.bone_map[9].target = "Nope"
    person, packet = make_packet(posed_joints(rig.Proportions(), seed=1))
    with pytest.raises(bonemaps.BoneMapError, match=r"upper_arm\.L -> 'mixamorig1:LeftArmm'.*'Nope'"):
        drive.apply_person(fresh, obj, person, packet)
    assert all(pb.matrix_basis == Matrix.Identity(4) for pb in obj.pose.bones)  # nothing half-applied
    with pytest.raises(RuntimeError, match="LeftArmm"):
        bpy.ops.vitpose_mocap.calibrate_rest()
    # Through the live tick: an error in the panel, no exception.
    fresh.vitpose_mocap.target = obj
    rx = state.start_receiver(fresh.name, "127.0.0.1", free_port)
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
