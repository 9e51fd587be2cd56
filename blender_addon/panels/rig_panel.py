"""Rig and retargeting UI: `draw_rig_settings` (called inside the main panel) and the bone map list."""

from __future__ import annotations

import bpy


class VITPOSE_UL_bone_map(bpy.types.UIList):
    """Bone map rows: canonical bone -> target bone (picked from the armature's bones), mode."""

    bl_idname = "VITPOSE_UL_bone_map"

    def draw_item(self, context, layout, _data, item, _icon, _active_data, _active_prop, _index=0, _flt_flag=0):
        row = layout.row(align=True)
        row.prop(item, "canonical", text="")
        target = context.scene.vitpose_mocap.target
        if target is not None and target.type == "ARMATURE":
            row.prop_search(item, "target", target.data, "bones", text="")
        else:
            row.prop(item, "target", text="")
        row.prop(item, "mode", text="")


def draw_rig_settings(layout: bpy.types.UILayout, context: bpy.types.Context) -> None:
    """Rig section of the main panel: capture rig, drive mode, masks, bone map, calibration."""
    settings = context.scene.vitpose_mocap
    rig = settings.rig
    col = layout.column()
    col.operator("vitpose_mocap.create_capture_rig", icon="ARMATURE_DATA")
    col.prop(rig, "drive_mode", expand=True)
    row = col.row(align=True)
    row.prop(rig, "upper_body_only", toggle=True)
    row.prop(rig, "lock_root", toggle=True)
    row.prop(rig, "lock_legs", toggle=True)
    row.prop(rig, "plant_feet", toggle=True)
    row = col.row(align=True)
    row.prop(rig, "hands_only", toggle=True)
    row.prop(rig, "no_fingers", toggle=True)

    box = col.box()
    box.label(text="Bone map", icon="GROUP_BONE")
    row = box.row(align=True)
    row.prop(rig, "preset", text="")
    row.operator("vitpose_mocap.load_bone_map", text="", icon="IMPORT")
    row.operator("vitpose_mocap.save_bone_map", text="", icon="EXPORT")
    row.operator("vitpose_mocap.detect_bone_map", text="Detect", icon="VIEWZOOM")
    row = box.row()
    row.template_list("VITPOSE_UL_bone_map", "", rig, "bone_map", rig, "bone_map_index", rows=4)
    ops = row.column(align=True)
    ops.operator("vitpose_mocap.bone_map_edit", text="", icon="ADD").remove = False
    ops.operator("vitpose_mocap.bone_map_edit", text="", icon="REMOVE").remove = True
    row = box.row(align=True)
    row.operator("vitpose_mocap.calibrate_rest", icon="POSE_HLT")
    row.label(text="Calibrated" if rig.calibrated else "Not calibrated",
              icon="CHECKMARK" if rig.calibrated else "ERROR")
    box.prop(rig, "location_scale")
    box.prop(rig, "performer_trunk")


classes = (VITPOSE_UL_bone_map,)
