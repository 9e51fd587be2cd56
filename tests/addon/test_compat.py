"""One test per difference between the Blenders the add-on supports (4.2 LTS, 4.5 LTS, 5.0, 5.3).

`make test` runs each on all four; every test asserts the same behaviour whatever the API underneath
(blender_addon/core/compat.py lists the differences, found by diffing the four releases' RNA).
"""

from __future__ import annotations

import ast
import tomllib

import bpy
import pytest

from blender_addon.core import compat, export, recorder
from tests.conftest import ROOT

from .helpers import capture_rig, make_armature

pytestmark = pytest.mark.bpy42


def test_the_api_is_detected_from_the_rna_not_the_version_number():
    # Layered Actions arrived in 4.4; channelbag fcurves.new() took a group from 5.0 on. Detection reads the RNA,
    # so these flags must agree with the releases where that happened.
    assert compat.LAYERED_ACTIONS == (bpy.app.version >= (4, 4, 0))
    assert compat.FCURVE_NEW_TAKES_GROUP == (bpy.app.version >= (5, 0, 0))
    assert ("fcurves" in bpy.types.Action.bl_rna.properties) == (bpy.app.version < (5, 0, 0))  # 5.0 removed it


def test_an_assigned_action_plays_on_the_object_with_one_slot(scene):
    arm = make_armature()
    action = compat.new_action("Take")
    compat.assign_action(arm, action)
    compat.assign_action(arm, action)  # twice: still one slot, still playing
    fc = compat.new_fcurve(action, arm, 'pose.bones["root"].location', 2, "root")
    fc.keyframe_points.insert(1, 0.0)
    fc.keyframe_points.insert(11, 1.0)
    scene.frame_set(11)
    assert arm.pose.bones["root"].location[2] == pytest.approx(1.0)
    scene.frame_set(6)
    assert 0.0 < arm.pose.bones["root"].location[2] < 1.0
    assert arm.animation_data.action == action
    if compat.LAYERED_ACTIONS:
        assert len(action.slots) == 1 and action.slots[0].target_id_type == "OBJECT"
        assert arm.animation_data.action_slot == action.slots[0]


def test_fcurves_are_grouped_by_bone_on_every_version(scene):
    # 4.2: action_group=; 4.4/4.5: the group is made and assigned after fcurves.new(); 5.0+: group_name=.
    arm = make_armature()
    action = compat.new_action("Take")
    compat.assign_action(arm, action)
    for bone in ("root", "child"):
        for index in range(3):
            compat.new_fcurve(action, arm, f'pose.bones["{bone}"].location', index, bone)
    curves = compat.action_fcurves(action)
    assert len(curves) == 6
    assert {fc.group.name for fc in curves} == {"root", "child"}  # reused, never "root.001"
    for fc in curves:
        assert fc.group.name == fc.data_path.split('"')[1]
    groups = {fc.group.name: fc.group for fc in curves}
    assert sorted(c.array_index for c in groups["root"].channels) == [0, 1, 2]


def test_find_fcurve_reads_every_layout(scene):
    # 5.0 removed Action.fcurves: curves live in the layer/strip/channelbag of the object's slot.
    arm = make_armature()
    action = compat.new_action("Take")
    compat.assign_action(arm, action)
    made = compat.new_fcurve(action, arm, 'pose.bones["child"].rotation_quaternion', 3, "child")
    assert compat.find_fcurve(action, 'pose.bones["child"].rotation_quaternion', 3) == made
    assert compat.find_fcurve(action, 'pose.bones["child"].rotation_quaternion', 2) is None
    assert compat.find_fcurve(compat.new_action("Empty"), 'pose.bones["child"].location') is None


def test_a_recorded_take_survives_save_and_reopen(scene, tmp_path):
    # The layered data (slot, layer, strip, channelbag) must round-trip through .blend like 4.2's flat Action.
    arm = make_armature()
    take = recorder.TakeRecorder(arm, 24.0, start_frame=1, name=recorder.next_take_name())
    for i in range(5):
        arm.pose.bones["root"].location = (0.0, 0.1 * i, 0.0)
        recorder.evaluated_view_layer(scene)
        take.sample(arm, i / 24.0)
    name = take.finish(arm).name
    path = str(tmp_path / "take.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    action = bpy.data.actions[name]
    fc = compat.find_fcurve(action, 'pose.bones["root"].location', 1)
    assert fc is not None and fc.group.name == "root"
    assert [round(k.co[1], 4) for k in fc.keyframe_points] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert bpy.data.objects["Arm"].animation_data.action == action


def _operator_calls(path) -> list[tuple[str, int, list[str]]]:
    """(operator id, line, keyword names) of every literal `bpy.ops.<module>.<name>(...)` call in a file."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        parts, f = [], node.func
        while isinstance(f, ast.Attribute):
            parts.append(f.attr)
            f = f.value
        if isinstance(f, ast.Name) and f.id == "bpy" and parts[-1:] == ["ops"] and len(parts) == 3:
            calls.append((f"{parts[1]}.{parts[0]}", node.lineno, [k.arg for k in node.keywords if k.arg]))
    return calls


def test_every_operator_option_the_addon_passes_exists_on_this_blender():
    # Exporter and importer options are renamed and removed between releases (5.0 dropped save_as_mainfile's
    # filter_collada, a release after 5.0 added export_anim.bvh's sort_children_by_names): check each option we pass.
    files = sorted((ROOT / "blender_addon").rglob("*.py")) + [ROOT / "scripts" / "demo_blender.py"]
    seen, missing = set(), []
    for path in files:
        for op_id, line, keywords in _operator_calls(path):
            module, name = op_id.split(".")
            if module == "vitpose_mocap":
                continue
            seen.add(op_id)
            where = f"{path.relative_to(ROOT)}:{line}"
            try:
                props = getattr(getattr(bpy.ops, module), name).get_rna_type().properties
            except (AttributeError, KeyError):
                missing.append(f"{where}: no operator bpy.ops.{op_id}")
                continue
            missing += [f"{where}: bpy.ops.{op_id} has no option {k!r}" for k in keywords if k not in props]
    assert {"export_scene.fbx", "export_anim.bvh", "wm.save_as_mainfile"} <= seen, seen
    assert not missing, "\n".join(missing)


def test_bvh_joints_keep_the_armatures_bone_order(scene, tmp_path):
    # After 5.0 the BVH exporter learned to sort children by name (sort_children_by_names, off by default): a
    # changed default would reorder the joints and the channels of every BVH the add-on writes.
    arm = capture_rig(scene)
    take = recorder.TakeRecorder(arm, 30.0, start_frame=1, name=recorder.next_take_name())
    for i in range(2):
        recorder.evaluated_view_layer(scene)
        take.sample(arm, i / 30.0)
    action = take.finish(arm)
    text = open(export.export_bvh(scene, arm, action, str(tmp_path / "order.bvh"))).read()
    joints = [ln.split()[1] for ln in text.split("MOTION")[0].splitlines() if ln.split()[:1] in (["ROOT"], ["JOINT"])]

    def depth_first(bone):
        yield bone.name
        for child in bone.children:
            yield from depth_first(child)

    roots = [b for b in arm.data.bones if b.parent is None]
    expected = [name for root in roots for name in depth_first(root)]
    assert joints == expected
    assert joints != sorted(joints)  # the capture rig's order is not alphabetical: the test can tell them apart


def test_the_manifest_admits_this_blender():
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())

    def version(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in text.split("."))

    assert version(manifest["blender_version_min"]) <= bpy.app.version
    # blender_version_max is exclusive; absent, the add-on claims every later release (tested up to 5.3).
    if "blender_version_max" in manifest:
        assert bpy.app.version < version(manifest["blender_version_max"])


def test_settings_are_rna_properties_that_survive_save_and_reopen(scene, tmp_path):
    # 5.0 stopped storing bpy.props values as ID properties: scene["vitpose_mocap"] is gone there, so the add-on
    # reads and writes its settings only through RNA, and a saved file must bring every one of them back.
    arm = make_armature()
    settings = scene.vitpose_mocap
    settings.port, settings.person_mode, settings.person_id, settings.target = 9123, "ID", 3, arm
    settings.rig.drive_mode, settings.rig.lock_legs, settings.rig.location_scale = "DIRECT", True, 0.5
    entry = settings.rig.bone_map.add()
    entry.target, entry.offset = "root", (0.0, 1.0, 0.0, 0.0)
    assert ("vitpose_mocap" in scene.keys()) == (bpy.app.version < (5, 0, 0))
    path = str(tmp_path / "settings.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.open_mainfile(filepath=path)
    settings = bpy.context.scene.vitpose_mocap
    assert (settings.port, settings.person_mode, settings.person_id) == (9123, "ID", 3)
    assert settings.target == bpy.data.objects["Arm"]
    assert (settings.rig.drive_mode, settings.rig.lock_legs, settings.rig.location_scale) == ("DIRECT", True, 0.5)
    assert [(e.target, tuple(e.offset)) for e in settings.rig.bone_map] == [("root", (0.0, 1.0, 0.0, 0.0))]
