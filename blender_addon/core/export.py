"""Saving a take: .blend copy, FBX of only the take's armatures and Actions (several performers: all in one
file), BVH (one file per performer).

Both exporters evaluate the scene frame by frame, so while exporting each armature plays its take
with its own constraints muted (the live rig's constraints would otherwise override the keys) and
the frame range is the take's; everything is put back afterwards.
"""

from __future__ import annotations

import contextlib
import os

import bpy

from . import compat


class ExportError(ValueError):
    """The export cannot run; the message says what to do."""


def take_frame_range(action: bpy.types.Action) -> tuple[int, int]:
    start, end = action.frame_range
    return int(round(start)), int(round(end))


Part = tuple[bpy.types.Object, bpy.types.Action]  # an armature and the Action it plays in the take


def takes_frame_range(actions) -> tuple[int, int]:
    """Frames covering every Action of a take."""
    ranges = [take_frame_range(a) for a in actions]
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def animated_bones(action: bpy.types.Action) -> set[str]:
    """The pose bones an Action's curves name (`pose.bones["NAME"]...`)."""
    names = set()
    for fc in compat.action_fcurves(action):
        path = fc.data_path
        if path.startswith('pose.bones["'):
            names.add(path[len('pose.bones["'):path.find('"]', len('pose.bones["'))])
    return names


def _check_parts(parts: list[Part]) -> None:
    if not parts:
        raise ExportError("no take to export: record or import one first")
    for armature_obj, action in parts:
        if armature_obj is None or armature_obj.type != "ARMATURE":
            raise ExportError("pick the armature that holds the take")
        if action is None:
            raise ExportError("no take to export: record or import one first")
        bones = animated_bones(action)
        if bones and not bones & set(armature_obj.pose.bones.keys()):
            # another Target picked since the take: its bones would stand still in a file named after the take
            raise ExportError(f"{action.name} animates other bones than {armature_obj.name}'s: pick the armature "
                              "the take was recorded on as the Target")


@contextlib.contextmanager
def playing_takes(scene: bpy.types.Scene, parts: list[Part]):
    """Select only the armatures, each playing only its Action over the take's range with its constraints muted;
    then restore everything."""
    _check_parts(parts)
    view_layer = scene.view_layers[0]
    saved_range = (scene.frame_start, scene.frame_end, scene.frame_current)
    saved_selected = [o for o in view_layer.objects if o.select_get(view_layer=view_layer)]
    saved_active = view_layer.objects.active
    saved_anim = []
    muted = []
    for armature_obj, _action in parts:
        anim = armature_obj.animation_data or armature_obj.animation_data_create()
        saved_anim.append((anim, anim.action, getattr(anim, "action_slot", None)))
        muted += [(c, c.mute) for pb in armature_obj.pose.bones for c in pb.constraints]
        muted += [(c, c.mute) for c in armature_obj.constraints]
    try:
        for armature_obj, action in parts:
            compat.assign_action(armature_obj, action)
        scene.frame_start, scene.frame_end = takes_frame_range([a for _o, a in parts])
        for c, _ in muted:
            c.mute = True
        for o in saved_selected:
            o.select_set(False, view_layer=view_layer)
        for armature_obj, _action in parts:
            armature_obj.select_set(True, view_layer=view_layer)
        view_layer.objects.active = parts[0][0]
        yield view_layer
    finally:
        for c, mute in muted:
            c.mute = mute
        for anim, action, slot in saved_anim:
            anim.action = action
            if slot is not None and action is not None:
                anim.action_slot = slot
        scene.frame_start, scene.frame_end, current = saved_range
        scene.frame_set(current)
        for armature_obj, _action in parts:
            armature_obj.select_set(False, view_layer=view_layer)
        for o in saved_selected:
            o.select_set(True, view_layer=view_layer)
        view_layer.objects.active = saved_active


def _prepare_path(filepath: str, ext: str) -> str:
    if not filepath:
        raise ExportError(f"choose a {ext} file to write")
    path = bpy.path.abspath(filepath)
    if not path.lower().endswith(ext):
        path += ext
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


def _override(scene: bpy.types.Scene, view_layer, armatures: list[bpy.types.Object]):
    window = bpy.context.window or (bpy.context.window_manager.windows[0] if bpy.context.window_manager
                                    and bpy.context.window_manager.windows else None)
    kwargs = {"scene": scene, "view_layer": view_layer, "active_object": armatures[0],
              "object": armatures[0], "selected_objects": list(armatures)}
    if window is not None:
        kwargs["window"] = window
    return bpy.context.temp_override(**kwargs)


@contextlib.contextmanager
def _scene_named_as(scene: bpy.types.Scene, name: str):
    """The FBX exporter names its animation stack (the take other programs list; Blender imports it as the
    Action "<Armature>|<stack>") after the scene: call the scene like the take while exporting."""
    original = scene.name
    scene.name = name
    try:
        yield
    finally:
        scene.name = original


REST_VALUES = {"location": (0.0, 0.0, 0.0), "rotation_quaternion": (1.0, 0.0, 0.0, 0.0),
               "rotation_euler": (0.0, 0.0, 0.0), "rotation_axis_angle": (0.0, 0.0, 1.0, 0.0), "scale": (1.0, 1.0, 1.0)}


@contextlib.contextmanager
def rest_before_takes(scene: bpy.types.Scene, parts: list[Part]):
    """Each armature plays a copy of its take with every bone at rest on the frame before the take, the scene on
    that frame: the FBX exporter writes the bones' pose at the current frame as their rest (a file of armatures
    alone has no bind pose), so an exported take's rest was whichever of its frames was current, 43-95 cm from the
    character's. The animation itself is baked over the take's range as before; the copies go afterwards."""
    start = takes_frame_range([a for _o, a in parts])[0]
    copies = []
    try:
        for armature_obj, action in parts:
            copy = action.copy()
            copies.append(copy)
            for fc in compat.action_fcurves(copy):
                prop = fc.data_path.rsplit(".", 1)[-1]
                if fc.data_path.startswith("pose.bones[") and prop in REST_VALUES:
                    fc.keyframe_points.insert(start - 1, REST_VALUES[prop][fc.array_index], options={"FAST"})
            compat.assign_action(armature_obj, copy)
        scene.frame_set(start - 1)
        yield
    finally:
        for copy in copies:
            bpy.data.actions.remove(copy)


def export_fbx(scene: bpy.types.Scene, armature_obj: bpy.types.Object, action: bpy.types.Action,
               filepath: str) -> str:
    """FBX holding only the armature and this take's animation (one stack named after the take). Leaf bones
    keep every bone's end: import with "Ignore Leaf Bones" to get the same bones with the same lengths back.
    Returns the written path."""
    return export_fbx_take(scene, [(armature_obj, action)], filepath, action.name if action is not None else "")


def export_fbx_take(scene: bpy.types.Scene, parts: list[Part], filepath: str, take_name: str) -> str:
    """One FBX holding every armature of a take, each with its own Action's animation, in one animation stack
    named `take_name`. Returns the written path."""
    path = _prepare_path(filepath, ".fbx")
    with (playing_takes(scene, parts) as view_layer, rest_before_takes(scene, parts), _scene_named_as(scene, take_name),
          _override(scene, view_layer, [o for o, _a in parts])):
        result = bpy.ops.export_scene.fbx(
            filepath=path, use_selection=True, object_types={"ARMATURE"}, add_leaf_bones=True,
            bake_anim=True, bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False,
            bake_anim_use_all_actions=False, bake_anim_force_startend_keying=True,
            bake_anim_simplify_factor=0.0,
        )
    if "FINISHED" not in result:
        raise ExportError(f"FBX export did not finish ({result})")
    return path


def export_bvh(scene: bpy.types.Scene, armature_obj: bpy.types.Object, action: bpy.types.Action,
               filepath: str) -> str:
    """BVH of the armature playing this take. Returns the written path."""
    path = _prepare_path(filepath, ".bvh")
    parts = [(armature_obj, action)]
    _check_parts(parts)
    start, end = take_frame_range(action)
    with playing_takes(scene, parts) as view_layer, _override(scene, view_layer, [armature_obj]):
        result = bpy.ops.export_anim.bvh(filepath=path, frame_start=start, frame_end=end, root_transform_only=False)
    if "FINISHED" not in result:
        raise ExportError(f"BVH export did not finish ({result})")
    return path


def export_bvh_take(scene: bpy.types.Scene, parts: list[tuple[str, bpy.types.Object, bpy.types.Action]],
                    filepath: str) -> list[str]:
    """One BVH per performer of a take: (label, armature, action) -> `<filepath stem>_<label>.bvh`. BVH holds one
    skeleton per file. Returns the written paths."""
    stem = filepath[:-4] if filepath.lower().endswith(".bvh") else filepath
    return [export_bvh(scene, armature_obj, action, f"{stem}_{label}.bvh") for label, armature_obj, action in parts]


def save_blend_copy(filepath: str, scene: bpy.types.Scene | None = None, parts: list[Part] | None = None) -> str:
    """Save a copy of the current file (the open file keeps its own path). With the take's `parts`, the copy plays
    it: each armature holds its Action, the capture rigs' constraints muted, the scene's range the take's (it
    opened with the live rig's constraints winning over the keys: nothing moved on Play)."""
    path = _prepare_path(filepath, ".blend")
    with playing_takes(scene, parts) if parts else contextlib.nullcontext():
        bpy.ops.wm.save_as_mainfile(filepath=path, copy=True)
    return path
