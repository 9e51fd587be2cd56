"""The "Mocap" sidebar tab: connection, live status, target, recording, import and export."""

from __future__ import annotations

import bpy

from . import performers_panel, rig_panel


class MOCAP_PT_main(bpy.types.Panel):
    """ViTPose Mocap: receive, drive, record"""

    bl_label = "ViTPose Mocap"
    bl_idname = "MOCAP_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Mocap"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.vitpose_mocap
        running = settings.status in {"LISTENING", "RECEIVING"}

        box = layout.box()
        box.label(text="Connection", icon="LINKED" if running else "UNLINKED")
        row = box.row(align=True)
        row.enabled = not running
        row.prop(settings, "host", text="")
        row.prop(settings, "port", text="")
        row = box.row()
        row.enabled = not running
        row.prop(settings, "token")
        if running:
            box.operator("vitpose_mocap.stop", icon="PAUSE")
        else:
            box.operator("vitpose_mocap.start", icon="PLAY")

        col = box.column(align=True)
        col.label(text=f"{settings.status.title()}: {settings.packets_per_s:.0f} packets/s, "
                       f"server {settings.fps:.0f} fps")
        col.label(text=f"Latency {settings.latency_ms:.0f} ms   applied {settings.applied}")
        col.label(text=f"Dropped {settings.dropped}   stale {settings.stale}   invalid {settings.invalid}")
        if settings.last_error:
            # The text is stored once in a property, so the panel shows it without repeating reports.
            col.label(text=settings.last_error, icon="ERROR")

        box = layout.box()
        box.label(text="Target", icon="ARMATURE_DATA")
        box.prop(settings, "target")
        row = box.row(align=True)
        row.prop(settings, "person_mode", text="")
        if settings.person_mode == "ID":
            row.prop(settings, "person_id", text="")
        row = box.row(align=True)
        row.prop(settings, "foot_lock")
        sub = row.row(align=True)
        sub.active = settings.foot_lock
        sub.prop(settings, "pin_at", slider=True)
        sub.prop(settings, "settle_feet", slider=True)
        rig_panel.draw_rig_settings(box, context)
        performers_panel.draw_performers(layout, context)

        box = layout.box()
        box.label(text="Recording", icon="REC")
        if settings.is_recording:
            box.operator("vitpose_mocap.record_stop", icon="SNAP_FACE")
            box.label(text=f"{settings.recorded_samples} poses captured")
        else:
            box.operator("vitpose_mocap.record_start", icon="REC")
        row = box.row(align=True)
        row.prop(settings, "reduce_keys")
        sub = row.row()
        sub.enabled = settings.reduce_keys
        sub.prop(settings, "reduce_tolerance", text="")
        if settings.last_take:
            parts = f" ({len(settings.take_parts)} performers)" if len(settings.take_parts) else ""
            box.label(text=f"Last take: {settings.last_take}{parts}", icon="ACTION")

        box = layout.box()
        box.label(text="Files", icon="FILE")
        box.operator("vitpose_mocap.import_session", icon="IMPORT")
        row = box.row(align=True)
        for fmt in ("FBX", "BVH", "BLEND"):
            row.operator("vitpose_mocap.export", text=fmt).format = fmt


classes = (MOCAP_PT_main,)
