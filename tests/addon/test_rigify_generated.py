"""A real generated Rigify rig (Rigify's human metarig through `pose.rigify_generate`, real bpy 4.2 and 5.0):
every bone the `rigify` preset maps exists, Detect picks `rigify`, and a v4 packet's curled fingers curl the
rig's FK finger controls and, through Rigify's own constraints, its deform fingers."""

from __future__ import annotations

import math
import subprocess
import sys

import bpy
import pytest
from mathutils import Matrix, Quaternion

from blender_addon.core import bonemaps, drive, hands, rig
from blender_addon.core import retarget as rt

from .test_hands import FIXTURE, assert_hands_follow_the_fixture, hand_packet, rest_joints
from .test_retarget import heading, turned_joints, use_preset
from .test_rig import evaluated, make_packet, posed_joints

# Generated in a child process of the same Python, which leaves with os._exit: after `pose.rigify_generate`, bpy
# 4.5's module deadlocks in its exit handlers (a condition variable destroyed under a waiting thread), which would
# hang the test run after every test has passed.
_GENERATE = """
import os, sys
import bpy
import addon_utils  # (importable once bpy is)
bpy.ops.wm.read_factory_settings(use_empty=True)
addon_utils.enable("rigify", default_set=True)
bpy.ops.object.armature_human_metarig_add()
metarig = bpy.context.object
assert bpy.ops.pose.rigify_generate() == {"FINISHED"}
rig = next(o for o in bpy.data.objects if o.type == "ARMATURE" and o is not metarig)
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[1], copy=True)
print(rig.name, flush=True)
os._exit(0)
"""


@pytest.fixture(scope="module")
def generated_blend(addon, tmp_path_factory):
    """Rigify's human metarig generated once per module (several seconds) and saved; tests load the rig back."""
    path = tmp_path_factory.mktemp("rigify") / "generated.blend"
    done = subprocess.run([sys.executable, "-c", _GENERATE, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and path.is_file(), done.stderr[-2000:]
    return path, done.stdout.strip().splitlines()[-1]


@pytest.fixture
def generated(scene, generated_blend) -> bpy.types.Object:
    drive.clear_cache()
    path, name = generated_blend
    with bpy.data.libraries.load(str(path)) as (_src, dst):
        dst.objects = [name]
    obj = dst.objects[0]
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    return obj


def world_deltas(obj: bpy.types.Object, names: list[str]) -> dict[str, Matrix]:
    """Evaluated world rotation of each bone from its own rest (constraints applied)."""
    ev = evaluated(obj)
    world = ev.matrix_world.to_3x3().normalized()
    return {n: world @ ev.pose.bones[n].matrix.to_3x3().normalized()
            @ (world @ obj.data.bones[n].matrix_local.to_3x3().normalized()).transposed() for n in names}


@pytest.mark.bpy42
def test_every_bone_of_the_rigify_preset_exists_in_a_generated_rig(generated):
    names = set(generated.data.bones.keys())
    missing = [e["target"] for e in bonemaps.load_preset("rigify")["bones"] if e["target"] not in names]
    assert not missing


@pytest.mark.bpy42
@pytest.mark.parametrize("mode", ["IK", "DIRECT"])
def test_detect_and_curl_the_fingers_of_a_generated_rig(scene, generated, mode):
    """Direct mode with the arms switched to FK (IK_FK = 1, as docs/rigging.md says): the palm control turns
    from the forearm and the finger controls from it. IK mode: Rigify's hand follows `hand_ik`, which the preset turns
    with the forearm (a rest-pose forearm here), so the fingers are checked from the hand they hang from (DEF-hand)."""
    assert use_preset(scene, generated) == "rigify"
    mapped = {e.canonical: e.target for e in scene.vitpose_mocap.rig.bone_map}
    assert set(mapped) >= set(hands.HAND_SLOTS)
    scene.vitpose_mocap.rig.drive_mode = mode
    if mode == "DIRECT":
        for s in hands.SIDES:
            generated.pose.bones[f"upper_arm_parent.{s}"]["IK_FK"] = 1.0
    drive.apply_person(scene, generated, *hand_packet(rest_joints()))
    curled = generated.pose.bones["f_index.02.L"].rotation_quaternion
    assert curled.angle > 0.05  # by the packet's angle (about the rig's own finger axis)
    assert math.degrees(abs(curled.angle - Quaternion(FIXTURE["hands"][0][5]).angle)) < 0.5
    controls = {s: mapped[s] for s in (*hands.HAND_SLOTS, "forearm.L", "forearm.R")}
    if mode == "IK":
        controls.update({f"palm.{s}": f"DEF-hand.{s}" for s in hands.SIDES})
    assert_hands_follow_the_fixture(generated, controls, palms=mode == "DIRECT")
    # The deform bones (what moves the mesh) follow the controls. Rigify aims each finger's first deform bone
    # at the second control (a stretch-to, no twist of its own): that one is checked by its direction.
    fingers = sorted(hands.FINGER_SLOTS)
    d = world_deltas(generated, [mapped[s] for s in fingers] + [f"DEF-{mapped[s]}" for s in fingers])
    errors = {}
    for s in fingers:
        ctrl, deform = d[mapped[s]], d[f"DEF-{mapped[s]}"]
        if s.split(".")[1] == "01":
            axis = generated.data.bones[mapped[s]].matrix_local.col[1].to_3d()
            errors[s] = math.degrees((ctrl @ axis).angle(deform @ axis))
        else:
            errors[s] = math.degrees((ctrl.transposed() @ deform).to_quaternion().angle)
    assert max(errors.values()) < 1.0, {k: round(v, 2) for k, v in errors.items() if v >= 1.0}


@pytest.mark.bpy42
def test_ik_mode_turns_the_hands_with_the_forearms(scene, generated):
    """In IK mode Rigify's hand follows `hand_ik`; the preset turns it as the performer's forearm turns, so the
    deform hand continues the performer's forearm (before, it kept its rest orientation whatever the arm did)."""
    assert use_preset(scene, generated) == "rigify"
    rig_settings = scene.vitpose_mocap.rig
    assert rig_settings.drive_mode == "IK"
    joints = posed_joints(rig.Proportions(), seed=21, swing=0.6)
    drive.apply_person(scene, generated, *make_packet(joints))
    ev = evaluated(generated)
    world = ev.matrix_world.to_3x3().normalized()
    for s, elbow, wrist in (("L", rt.ELBOW_L, rt.WRIST_L), ("R", rt.ELBOW_R, rt.WRIST_R)):
        hand_dir = world @ ev.pose.bones[f"DEF-hand.{s}"].matrix.col[1].to_3d()
        forearm = joints[wrist] - joints[elbow]
        assert math.degrees(hand_dir.angle(forearm)) < 3.0, s


@pytest.mark.bpy42
def test_ik_mode_turns_the_feet_with_the_performer(scene, generated):
    """Rigify's foot follows `foot_ik` in IK mode; the preset turns it about the vertical to where the knee faces,
    so a performer who turns round does not leave the rig's feet pointing the rest way."""
    assert use_preset(scene, generated) == "rigify"
    for degrees in (100.0, -60.0):
        drive.apply_person(scene, generated, *make_packet(turned_joints(degrees)))
        ev = evaluated(generated)
        world = ev.matrix_world.to_3x3().normalized()
        for s in hands.SIDES:
            foot = world @ ev.pose.bones[f"DEF-foot.{s}"].matrix.col[1].to_3d()
            assert abs((heading(foot) - degrees + 180.0) % 360.0 - 180.0) < 3.0, (s, degrees, heading(foot))
