"""Several performers UI: `draw_performers` (called inside the main panel) and the bindings list."""

from __future__ import annotations

import bpy

from ..core import performers


class VITPOSE_UL_bindings(bpy.types.UIList):
    """Binding rows: enabled, track id -> armature."""

    bl_idname = "VITPOSE_UL_bindings"

    def draw_item(self, context, layout, _data, item, _icon, _active_data, _active_prop, index=0, _flt_flag=0):
        row = layout.row(align=True)
        row.alert = index in performers.shadowed_bindings(context.scene.vitpose_mocap)
        row.prop(item, "enabled", text="")
        row.prop(item, "track_id", text="ID")
        row.prop(item, "armature", text="")


def draw_performers(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """Performers box of the main panel: rigs for everyone, the bindings list and who is tracked."""
    settings = context.scene.vitpose_mocap
    box = layout.box()
    box.label(text="Performers", icon="COMMUNITY")
    row = box.row(align=True)
    row.operator("vitpose_mocap.create_rigs_for_everyone", text="Create Rigs for Everyone", icon="ARMATURE_DATA")
    row.prop(settings, "rig_spacing", text="")
    row = box.row()
    row.template_list("VITPOSE_UL_bindings", "", settings, "bindings", settings, "binding_index", rows=2)
    ops = row.column(align=True)
    ops.operator("vitpose_mocap.binding_edit", text="", icon="ADD").remove = False
    ops.operator("vitpose_mocap.binding_edit", text="", icon="REMOVE").remove = True
    row = box.row(align=True)
    row.prop(settings, "handover", text="Hand over lost performers")
    sub = row.row()
    sub.enabled = settings.handover
    sub.prop(settings, "handover_after", text="After")
    bound = performers.bound_armatures(settings)
    col = box.column(align=True)
    for i, first_id in performers.shadowed_bindings(settings).items():
        b = settings.bindings[i]
        col.label(text=f"ID {b.track_id} not driven: {b.armature.name} follows ID {first_id}", icon="ERROR")
    col.label(text=f"Tracked ids: {settings.tracked_ids or 'none'}")
    if bound:
        col.label(text=f"Driving {len(bound)} armature(s) from their ids; Armature/Person unused", icon="INFO")


classes = (VITPOSE_UL_bindings,)
