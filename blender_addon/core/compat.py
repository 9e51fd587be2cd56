"""Differences between the Blender versions the add-on supports (4.2 LTS, 4.5 LTS, 5.0, 5.3).

Found by diffing the RNA of the four releases (tests/addon/test_compat.py holds one test per difference):

- 4.4 introduced layered Actions (slots, layers, strips, channelbags); 4.2 has only ``Action.fcurves``.
- 4.4 and 4.5 create channelbag F-Curves without a group (``fcurves.new`` takes ``group_name`` from 5.0
  on), so the group is made and assigned afterwards.
- 5.0 removed the legacy ``Action.fcurves`` proxy.

Everything that touches F-Curves goes through this module. Detection reads the RNA, never version
numbers, so a later release that keeps an API keeps working. Operators, properties, timers and the
exporters' options the add-on uses are the same from 4.2 to 5.3 (tested, not assumed).
"""

from __future__ import annotations

import bpy

LAYERED_ACTIONS = "slots" in bpy.types.Action.bl_rna.properties
FCURVE_NEW_TAKES_GROUP = LAYERED_ACTIONS and (
    "group_name" in bpy.types.ActionChannelbagFCurves.bl_rna.functions["new"].parameters)


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
    if not LAYERED_ACTIONS:
        return action.fcurves.new(data_path, index=index, action_group=group)
    bag = _channelbag(action, obj, create=True)
    if FCURVE_NEW_TAKES_GROUP:
        return bag.fcurves.new(data_path, index=index, group_name=group)
    fc = bag.fcurves.new(data_path, index=index)
    fc.group = bag.groups.get(group) or bag.groups.new(group)
    return fc


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
