"""Helpers shared by the add-on tests (standard library and bpy only)."""

from __future__ import annotations

import time

import bpy
from mathutils import Matrix, Vector


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


def build_armature(name: str, bones: dict, obj_matrix: Matrix | None = None) -> bpy.types.Object:
    """An armature from bones: name -> (head_world, tail_world, parent, roll), converted into the object's space
    (scripts/bench_retarget.py builds its Mixamo-, Rigify- and metarig-style rigs with it too)."""
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
