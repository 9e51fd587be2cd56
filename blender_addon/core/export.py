"""Saving a take: .blend copy, FBX of only the take's armature and Action, BVH.

Both exporters evaluate the scene frame by frame, so while exporting the armature plays its take
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


@contextlib.contextmanager
def _take_only(scene: bpy.types.Scene, armature_obj: bpy.types.Object, action: bpy.types.Action):
    """Select only the armature, play only `action` over its range, constraints muted; then restore."""
    if armature_obj is None or armature_obj.type != "ARMATURE":
        raise ExportError("pick the armature that holds the take")
    if action is None:
        raise ExportError("no take to export: record or import one first")
    view_layer = scene.view_layers[0]
    anim = armature_obj.animation_data or armature_obj.animation_data_create()
    saved = {
        "action": anim.action,
        "slot": getattr(anim, "action_slot", None),
        "range": (scene.frame_start, scene.frame_end, scene.frame_current),
        "selected": [o for o in view_layer.objects if o.select_get(view_layer=view_layer)],
        "active": view_layer.objects.active,
        "muted": [(c, c.mute) for pb in armature_obj.pose.bones for c in pb.constraints]
                 + [(c, c.mute) for c in armature_obj.constraints],
    }
    try:
        compat.assign_action(armature_obj, action)
        scene.frame_start, scene.frame_end = take_frame_range(action)
        for c, _ in saved["muted"]:
            c.mute = True
        for o in saved["selected"]:
            o.select_set(False, view_layer=view_layer)
        armature_obj.select_set(True, view_layer=view_layer)
        view_layer.objects.active = armature_obj
        yield view_layer
    finally:
        for c, mute in saved["muted"]:
            c.mute = mute
        anim.action = saved["action"]
        if saved["slot"] is not None and saved["action"] is not None:
            anim.action_slot = saved["slot"]
        scene.frame_start, scene.frame_end, current = saved["range"]
        scene.frame_set(current)
        armature_obj.select_set(False, view_layer=view_layer)
        for o in saved["selected"]:
            o.select_set(True, view_layer=view_layer)
        view_layer.objects.active = saved["active"]


def _prepare_path(filepath: str, ext: str) -> str:
    if not filepath:
        raise ExportError(f"choose a {ext} file to write")
    path = bpy.path.abspath(filepath)
    if not path.lower().endswith(ext):
        path += ext
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return path


def _override(scene: bpy.types.Scene, view_layer, armature_obj):
    window = bpy.context.window or (bpy.context.window_manager.windows[0] if bpy.context.window_manager
                                    and bpy.context.window_manager.windows else None)
    kwargs = {"scene": scene, "view_layer": view_layer, "active_object": armature_obj,
              "object": armature_obj, "selected_objects": [armature_obj]}
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


def export_fbx(scene: bpy.types.Scene, armature_obj: bpy.types.Object, action: bpy.types.Action,
               filepath: str) -> str:
    """FBX holding only the armature and this take's animation (one stack named after the take). Leaf bones
    keep every bone's end: import with "Ignore Leaf Bones" to get the same bones with the same lengths back.
    Returns the written path."""
    path = _prepare_path(filepath, ".fbx")
    with (_take_only(scene, armature_obj, action) as view_layer, _scene_named_as(scene, action.name),
          _override(scene, view_layer, armature_obj)):
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
    start, end = take_frame_range(action) if action is not None else (scene.frame_start, scene.frame_end)
    with _take_only(scene, armature_obj, action) as view_layer, _override(scene, view_layer, armature_obj):
        result = bpy.ops.export_anim.bvh(filepath=path, frame_start=start, frame_end=end, root_transform_only=False)
    if "FINISHED" not in result:
        raise ExportError(f"BVH export did not finish ({result})")
    return path


def save_blend_copy(filepath: str) -> str:
    """Save a copy of the current file (the open file keeps its own path)."""
    path = _prepare_path(filepath, ".blend")
    bpy.ops.wm.save_as_mainfile(filepath=path, copy=True)
    return path
