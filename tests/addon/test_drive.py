"""apply_person edge cases on real bpy: the per-armature cache follows renames, deleted IK empties and
missing joints give clear errors or no-ops, Euler/axis-angle bones are driven like quaternion ones."""

from __future__ import annotations

import math

import bpy
import pytest

from blender_addon.core import bonemaps, drive, rig

from .test_retarget import mixamo_like, use_preset
from .test_rig import LIMBS, bone_dir, evaluated, make_packet, posed_joints


@pytest.fixture
def fresh(scene):
    drive.clear_cache()
    return scene


@pytest.mark.bpy42
def test_cache_follows_bone_renames(fresh):
    obj = mixamo_like()
    use_preset(fresh, obj)
    rig_settings = fresh.vitpose_mocap.rig
    rig_settings.drive_mode = "DIRECT"
    packet = make_packet(posed_joints(rig.Proportions(), seed=2))
    drive.apply_person(fresh, obj, *packet)
    obj.data.bones["mixamorig1:LeftArm"].name = "L_Arm"
    with pytest.raises(bonemaps.BoneMapError, match="'mixamorig1:LeftArm'"):
        drive.apply_person(fresh, obj, *packet)
    entry = next(e for e in rig_settings.bone_map if e.canonical == "upper_arm.L")
    entry.target = "L_Arm"
    obj.pose.bones["L_Arm"].rotation_quaternion = (1, 0, 0, 0)
    drive.apply_person(fresh, obj, *packet)
    assert obj.pose.bones["L_Arm"].rotation_quaternion.angle > 0.1


@pytest.mark.bpy42
def test_deleted_ik_empty_is_reported(fresh):
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    packet = make_packet(posed_joints(rig.Proportions(), seed=2))
    drive.apply_person(fresh, obj, *packet)
    bpy.data.objects.remove(bpy.data.objects[obj[rig.TARGETS_KEY]["wrist.L"]])
    for _ in range(2):
        with pytest.raises(drive.RigError, match=r"lost its target empties \(wrist\.L\); create the capture rig"):
            drive.apply_person(fresh, obj, *packet)
    fresh.vitpose_mocap.rig.drive_mode = "DIRECT"  # direct rotations need no empties
    drive.apply_person(fresh, obj, *packet)


@pytest.mark.bpy42
def test_person_without_joints_changes_nothing(fresh):
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    targets = {k: bpy.data.objects[v].location.copy() for k, v in obj[rig.TARGETS_KEY].items()}
    drive.apply_person(fresh, obj, *make_packet(None))
    assert all(bpy.data.objects[obj[rig.TARGETS_KEY][k]].location == v for k, v in targets.items())
    fresh.vitpose_mocap.rig.drive_mode = "DIRECT"
    before = {pb.name: pb.matrix_basis.copy() for pb in obj.pose.bones}
    drive.apply_person(fresh, obj, *make_packet(None))
    assert all(pb.matrix_basis == before[pb.name] for pb in obj.pose.bones)


@pytest.mark.bpy42
@pytest.mark.parametrize("rotation_mode", ["XYZ", "ZXY", "AXIS_ANGLE"])
def test_euler_and_axis_angle_bones(fresh, rotation_mode):
    obj = mixamo_like()
    for pb in obj.pose.bones:
        pb.rotation_mode = rotation_mode
    use_preset(fresh, obj)
    fresh.vitpose_mocap.rig.drive_mode = "DIRECT"
    joints = posed_joints(rig.Proportions(), seed=9)
    drive.apply_person(fresh, obj, *make_packet(joints))
    ev = evaluated(obj)
    names = {e.canonical: e.target for e in fresh.vitpose_mocap.rig.bone_map}
    for bone, a, b in LIMBS:
        assert math.degrees(bone_dir(ev, names[bone]).angle(joints[b] - joints[a])) < 1.0, bone
