"""Differences between the Blender versions the add-on supports (4.2 LTS to 5.x).

Blender 4.4 introduced layered Actions (slots, layers, strips, channelbags) and 5.0 removed the
legacy ``Action.fcurves``. Everything that touches F-Curves goes through this module.
"""

from __future__ import annotations

import bpy

LAYERED_ACTIONS = "slots" in bpy.types.Action.bl_rna.properties


def new_action(name: str) -> bpy.types.Action:
    """A new, empty Action; Blender appends .001 if the name is taken."""
    return bpy.data.actions.new(name)


def assign_action(obj: bpy.types.Object, action: bpy.types.Action) -> None:
    """Make `action` the active Action of `obj` (and give it a slot for `obj` on layered Actions)."""
    anim = obj.animation_data or obj.animation_data_create()
    anim.action = action
    if LAYERED_ACTIONS:
        slot = _ensure_slot(action, obj)
        if anim.action_slot != slot:
            anim.action_slot = slot


def _ensure_slot(action: bpy.types.Action, obj: bpy.types.Object):
    for slot in action.slots:
        if slot.target_id_type == "OBJECT":
            return slot
    return action.slots.new(id_type="OBJECT", name=obj.name)


def _channelbag(action: bpy.types.Action, obj: bpy.types.Object, create: bool):
    slot = _ensure_slot(action, obj) if create else next(iter(action.slots), None)
    if slot is None:
        return None
    if not action.layers:
        if not create:
            return None
        action.layers.new("Layer")
    layer = action.layers[0]
    if not layer.strips:
        if not create:
            return None
        layer.strips.new(type="KEYFRAME")
    return layer.strips[0].channelbag(slot, ensure=create)


def new_fcurve(action: bpy.types.Action, obj: bpy.types.Object, data_path: str, index: int, group: str):
    """Create one F-Curve in the part of `action` that animates `obj`."""
    if LAYERED_ACTIONS:
        return _channelbag(action, obj, create=True).fcurves.new(data_path, index=index, group_name=group)
    return action.fcurves.new(data_path, index=index, action_group=group)


def action_fcurves(action: bpy.types.Action) -> list:
    """Every F-Curve of `action`, whatever its layout."""
    if not LAYERED_ACTIONS:
        return list(action.fcurves)
    curves = []
    for layer in action.layers:
        for strip in layer.strips:
            for bag in getattr(strip, "channelbags", ()):
                curves.extend(bag.fcurves)
    return curves


def find_fcurve(action: bpy.types.Action, data_path: str, index: int = 0):
    """The F-Curve for (data_path, index), or None."""
    for fc in action_fcurves(action):
        if fc.data_path == data_path and fc.array_index == index:
            return fc
    return None
