"""Start and stop listening for pose packets."""

from __future__ import annotations

import bpy

from ..core import state, tick


class MOCAP_OT_start(bpy.types.Operator):
    """Listen for pose packets on the host and port above and drive the target armature"""

    bl_idname = "vitpose_mocap.start"
    bl_label = "Start"

    def execute(self, context):
        scene = context.scene
        settings = scene.vitpose_mocap
        try:
            state.start_receiver(scene, settings.host, settings.port, settings.token)
        except OSError as exc:
            settings.status = "ERROR"
            settings.last_error = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for key in ("received", "applied", "invalid", "stale", "dropped"):
            setattr(settings, key, 0)
        settings.packets_per_s = settings.fps = settings.latency_ms = 0.0
        settings.last_error = ""
        settings.status = "LISTENING"
        tick.ensure_timer()
        return {"FINISHED"}


class MOCAP_OT_stop(bpy.types.Operator):
    """Stop listening and close the socket"""

    bl_idname = "vitpose_mocap.stop"
    bl_label = "Stop"

    def execute(self, context):
        scene = context.scene
        if scene.vitpose_mocap.is_recording:
            bpy.ops.vitpose_mocap.record_stop()
        state.stop_receiver(scene)
        scene.vitpose_mocap.status = "STOPPED"
        scene.vitpose_mocap.packets_per_s = 0.0
        return {"FINISHED"}


classes = (MOCAP_OT_start, MOCAP_OT_stop)
