"""Several performers: capture rigs for every tracked id, and the bindings list (track id -> armature)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty

from ..core import performers, state


class VITPOSE_OT_create_rigs_for_everyone(bpy.types.Operator):
    """Add one capture rig per tracked person in the newest packet whose track id has no binding yet, named after
    the id ("Performer 3"), and bind each id to its rig. Ids already bound keep their armatures"""

    bl_idname = "vitpose_mocap.create_rigs_for_everyone"
    bl_label = "Create Capture Rigs for Everyone"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        scene = context.scene
        settings = scene.vitpose_mocap
        packet = state.newest_packet(scene)
        if packet is None:
            self.report({"ERROR"}, "No packet yet: press Start and let the pose server send people first")
            return {"CANCELLED"}
        created = performers.create_rigs_for_everyone(context, packet, settings.rig_spacing)
        if not created:
            ids = performers.format_ids(p["id"] for p in packet.get("people") or [])
            self.report({"WARNING"}, f"Every tracked person already has an armature (ids in the newest packet: "
                                     f"{ids or 'none'}; people without 3D joints get none)")
            return {"CANCELLED"}
        self.report({"INFO"}, "Created " + ", ".join(o.name for o in created))
        return {"FINISHED"}


class VITPOSE_OT_binding_edit(bpy.types.Operator):
    """Add a binding (the first tracked id without one, else the next free id) or remove the selected one"""

    bl_idname = "vitpose_mocap.binding_edit"
    bl_label = "Edit Performer Bindings"
    bl_options = {"REGISTER", "UNDO"}

    remove: BoolProperty(name="Remove", default=False)

    def execute(self, context):
        settings = context.scene.vitpose_mocap
        bindings = settings.bindings
        if self.remove:
            if 0 <= settings.binding_index < len(bindings):
                bindings.remove(settings.binding_index)
                settings.binding_index = max(0, settings.binding_index - 1)
            return {"FINISHED"}
        packet = state.newest_packet(context.scene) or {}
        waiting = [p["id"] for p in packet.get("people") or [] if performers.binding_for(settings, p["id"]) is None]
        track_id = waiting[0] if waiting else max((b.track_id for b in bindings), default=-1) + 1
        bindings.add().track_id = track_id
        settings.binding_index = len(bindings) - 1
        return {"FINISHED"}


classes = (VITPOSE_OT_create_rigs_for_everyone, VITPOSE_OT_binding_edit)
