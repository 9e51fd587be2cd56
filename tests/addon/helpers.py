"""Helpers shared by the add-on tests (standard library and bpy only)."""

from __future__ import annotations

import time

import bpy


def wait_until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    """Poll `predicate` until true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


def make_armature(name: str = "Arm", bones: tuple[str, ...] = ("root", "child")) -> bpy.types.Object:
    """A small chain armature built through the data API, linked to the current scene."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    parent = None
    for i, bone in enumerate(bones):
        eb = data.edit_bones.new(bone)
        eb.head = (0.0, 0.0, float(i))
        eb.tail = (0.0, 0.0, float(i + 1))
        eb.parent = parent
        eb.use_connect = parent is not None
        parent = eb
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def capture_rig(scene) -> bpy.types.Object:
    """The rig helper's capture rig (no mesh), set as the scene's target armature."""
    from blender_addon.core import rig

    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    scene.vitpose_mocap.target = obj
    return obj


def bone_head(obj: bpy.types.Object, bone: str):
    """World position of a pose bone's head after evaluating the scene (constraints applied)."""
    bpy.context.view_layer.update()
    return obj.matrix_world @ obj.pose.bones[bone].head
