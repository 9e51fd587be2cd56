"""Exports of a take: FBX (re-imported to check the keys), BVH (parsed), .blend copy."""

from __future__ import annotations

import bpy
import pytest

from blender_addon.core import compat, export, recorder

from .helpers import make_armature

pytestmark = pytest.mark.bpy42
FRAMES = 25  # 1 s at 24 fps, frames 1..25


def _record_take(scene, arm):
    """A take where the root slides along X and the child bends, plus a constraint the live rig would have."""
    scene.render.fps, scene.render.fps_base = 24, 1.0
    take = recorder.TakeRecorder(arm, 24.0, start_frame=1, name=recorder.next_take_name())
    for i in range(FRAMES):
        arm.pose.bones["root"].location = (0.0, 0.0, 0.04 * i)  # bone Y = world Z; local Z = world -Y
        arm.pose.bones["child"].rotation_quaternion = (1.0, 0.02 * i, 0.0, 0.0)
        arm.pose.bones["child"].rotation_quaternion.normalize()
        recorder.evaluated_view_layer(scene)
        take.sample(arm, 50.0 + i / 24.0)
    action = take.finish(arm)
    for pb in arm.pose.bones:
        pb.location = (0.0, 0.0, 0.0)
        pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
    # A live-rig constraint pinning the root: the export must show the take, not this.
    pin = bpy.data.objects.new("Pin", None)
    scene.collection.objects.link(pin)
    pin.location = (5.0, 5.0, 5.0)
    arm.pose.bones["root"].constraints.new("COPY_LOCATION").target = pin
    return action


def _child_heads(scene, obj, frames):
    out = []
    for f in frames:
        scene.frame_set(f)
        out.append(tuple(obj.matrix_world @ obj.pose.bones["child"].tail))
    return out


def test_fbx_holds_only_the_take_and_reimports_with_its_keys(scene, tmp_path):
    arm = make_armature()
    other = bpy.data.objects.new("Other", bpy.data.meshes.new("Other"))
    scene.collection.objects.link(other)
    action = _record_take(scene, arm)
    bpy.data.actions.new("NotTheTake")  # must not be exported (bake_anim_use_all_actions=False)
    arm.pose.bones["root"].constraints[0].mute = True
    expected = _child_heads(scene, arm, [1, 13, 25])
    arm.pose.bones["root"].constraints[0].mute = False
    scene.frame_start, scene.frame_end = 100, 200
    path = export.export_fbx(scene, arm, action, str(tmp_path / "take"))
    assert path.endswith("take.fbx")
    # Everything restored: constraint live again, scene range back.
    assert not arm.pose.bones["root"].constraints[0].mute
    assert (scene.frame_start, scene.frame_end) == (100, 200)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    # anim_offset=0: the importer otherwise shifts keys by one frame.
    assert "FINISHED" in bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0)
    objs = list(bpy.context.scene.objects)
    assert [o.type for o in objs] == ["ARMATURE"], objs
    imported = objs[0]
    assert len(bpy.data.actions) == 1  # only the take came along
    imp_action = imported.animation_data.action
    curves = compat.action_fcurves(imp_action)
    assert curves
    start, end = imp_action.frame_range
    assert (round(start), round(end)) == (1, FRAMES)
    assert max(len(fc.keyframe_points) for fc in curves) == FRAMES
    got = _child_heads(bpy.context.scene, imported, [1, 13, 25])
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e, abs=1e-3)


def test_bvh_has_the_hierarchy_and_every_frame_of_the_take(scene, tmp_path):
    arm = make_armature()
    action = _record_take(scene, arm)
    path = export.export_bvh(scene, arm, action, str(tmp_path / "take.bvh"))
    text = open(path).read()
    assert "ROOT root" in text and "JOINT child" in text
    motion = text.split("MOTION", 1)[1].strip().splitlines()
    assert motion[0].split() == ["Frames:", str(FRAMES)]
    assert float(motion[1].split()[-1]) == pytest.approx(1 / 24, abs=1e-5)
    rows = [list(map(float, line.split())) for line in motion[2:]]
    assert len(rows) == FRAMES
    # Root position channels follow the take (world -Y from the bone's local Z), not the pinned constraint.
    first, last = rows[0][:3], rows[-1][:3]
    assert max(abs(a - b) for a, b in zip(first, last, strict=True)) == pytest.approx(0.96, abs=0.02)
    assert all(abs(v) < 2.0 for v in last)


def test_export_without_a_take_says_what_to_do(scene, tmp_path):
    arm = make_armature()
    with pytest.raises(export.ExportError, match="record or import"):
        export.export_fbx(scene, arm, None, str(tmp_path / "x.fbx"))
    with pytest.raises(export.ExportError, match="armature"):
        export.export_bvh(scene, None, None, str(tmp_path / "x.bvh"))


def test_blend_copy_keeps_the_take_and_plays_it(scene, tmp_path):
    """The copy held the take, but opened with the live rig's constraints winning over its keys: nothing moved on
    Play (the demo's demo.blend: both performers' hips still all through the take)."""
    arm = make_armature()
    action = _record_take(scene, arm)
    with export.playing_takes(scene, [(arm, action)]):
        playing = _child_heads(scene, arm, (1, FRAMES))  # the take, played with the constraint muted
    path = export.save_blend_copy(str(tmp_path / "session"), scene, [(arm, action)])
    assert path.endswith("session.blend")
    assert not arm.pose.bones["root"].constraints[0].mute  # the open file is as it was
    name, arm_name = action.name, arm.name
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.data.actions.get(name) is None
    bpy.ops.wm.open_mainfile(filepath=path)
    loaded = bpy.data.actions.get(name)
    assert loaded is not None and len(compat.action_fcurves(loaded)) == 20
    scene, arm = bpy.context.scene, bpy.data.objects[arm_name]
    assert (scene.frame_start, scene.frame_end) == (1, FRAMES) and arm.animation_data.action == loaded
    for got, want in zip(_child_heads(scene, arm, (1, FRAMES)), playing, strict=True):
        assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 1e-4, (got, want)


def test_export_operator_writes_the_last_take(scene, tmp_path):
    arm = make_armature()
    action = _record_take(scene, arm)
    settings = scene.vitpose_mocap
    settings.target = arm
    with pytest.raises(RuntimeError, match="record or import"):
        bpy.ops.vitpose_mocap.export(format="FBX", filepath=str(tmp_path / "none.fbx"))
    settings.last_take = action.name
    for fmt in ("FBX", "BVH", "BLEND"):
        out = tmp_path / f"take.{fmt.lower()}"
        assert bpy.ops.vitpose_mocap.export(format=fmt, filepath=str(out)) == {"FINISHED"}
        assert out.stat().st_size > 1000
    # renamed since (found by name, export said there was no take): the one the target holds
    assert arm.animation_data.action == action
    action.name = "hero_walk"
    out = tmp_path / "renamed.fbx"
    assert bpy.ops.vitpose_mocap.export(format="FBX", filepath=str(out)) == {"FINISHED"}
    assert out.stat().st_size > 1000
    # Another Target picked since, with other bone names: its rest pose, frozen, was written under the take's
    # name and the export said it had finished.
    settings.last_take = action.name
    other = bpy.data.objects.new("Character", bpy.data.armatures.new("Character"))
    scene.collection.objects.link(other)
    bpy.context.view_layer.objects.active = other
    bpy.ops.object.mode_set(mode="EDIT")
    other.data.edit_bones.new("Hips").tail = (0.0, 0.0, 0.2)
    bpy.ops.object.mode_set(mode="OBJECT")
    settings.target = other
    for fmt in ("FBX", "BVH"):
        with pytest.raises(RuntimeError, match="animates other bones than Character's: pick the armature"):
            bpy.ops.vitpose_mocap.export(format=fmt, filepath=str(tmp_path / f"wrong.{fmt.lower()}"))
        assert not (tmp_path / f"wrong.{fmt.lower()}").exists()


def _bone_ends(scene, obj, frames) -> dict:
    """World head and tail of every bone of `obj` at each frame."""
    out = {}
    for f in frames:
        scene.frame_set(f)
        m = obj.matrix_world
        out[f] = {pb.name: (m @ pb.head, m @ pb.tail) for pb in obj.pose.bones}
    return out


def test_fbx_round_trip_keeps_bone_ends_and_the_take_name(scene, tmp_path):
    """A capture-rig take exported to FBX and imported back (Ignore Leaf Bones): every bone's head and end lies
    within 0.5 cm of the take's pose, and the imported Action carries the take's name (issue 20, defect 4)."""
    import bpy

    from blender_addon.core import drive, rig

    from .test_rig import make_packet, posed_joints

    drive.clear_cache()
    scene.render.fps, scene.render.fps_base = 24, 1.0
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    scene.vitpose_mocap.target = obj
    scene.vitpose_mocap.rig.drive_mode = "DIRECT"
    take = recorder.TakeRecorder(obj, 24.0, start_frame=1, name=recorder.next_take_name())
    for i in range(3):
        drive.apply_person(scene, obj, *make_packet(posed_joints(rig.Proportions(), seed=40 + i)))
        recorder.evaluated_view_layer(scene)
        take.sample(obj, 10.0 + i / 24.0)
    action = take.finish(obj)
    expected = _bone_ends(scene, obj, (1, 2, 3))
    rest = {b.name: (obj.matrix_world @ b.head_local, obj.matrix_world @ b.tail_local) for b in obj.data.bones}
    take_name = action.name
    scene.frame_set(2)  # the file's rest pose was the pose at the frame current when exporting
    path = export.export_fbx(scene, obj, action, str(tmp_path / "take.fbx"))
    assert scene.frame_current == 2 and obj.animation_data.action == action and action.name in bpy.data.actions
    assert len(bpy.data.actions) == 1  # the copy the export played is gone

    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert "FINISHED" in bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0, ignore_leaf_bones=True)
    imported = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    imp_action = imported.animation_data.action
    assert imp_action.name.split("|")[-1] == take_name, imp_action.name  # Blender prefixes the object's name
    for bone in imported.data.bones:  # the character's rest pose, not one of the take's frames
        head, tail = rest[bone.name]
        assert (imported.matrix_world @ bone.head_local - head).length < 0.005, (bone.name, "rest head")
        assert (imported.matrix_world @ bone.tail_local - tail).length < 0.005, (bone.name, "rest tail")
    got = _bone_ends(bpy.context.scene, imported, (1, 2, 3))
    for f, bones in expected.items():
        assert set(got[f]) == set(bones)
        for name, (head, tail) in bones.items():
            assert (got[f][name][0] - head).length < 0.005, (f, name, "head")
            assert (got[f][name][1] - tail).length < 0.005, (f, name, "tail", (got[f][name][1] - tail).length)
