"""Record the live motion into a new take: one Action per driven armature."""

from __future__ import annotations

import bpy

from ..core import performers, recorder, state


class MOCAP_OT_record_start(bpy.types.Operator):
    """Start a take: the driven armatures' evaluated poses are captured on every applied packet (every bound
    performer's armature, or the target armature when nobody is bound)"""

    bl_idname = "vitpose_mocap.record_start"
    bl_label = "Record"

    @classmethod
    def poll(cls, context):
        settings = context.scene.vitpose_mocap
        return not settings.is_recording and (settings.target is not None
                                              or bool(performers.bound_armatures(settings)))

    def execute(self, context):
        scene = context.scene
        settings = scene.vitpose_mocap
        if state.receiver(scene) is None:
            self.report({"ERROR"}, "Start the connection first: recording captures incoming packets")
            return {"CANCELLED"}
        bound = performers.bound_armatures(settings)
        if bound:
            takes = recorder.performer_takes(scene, bound)
        elif settings.target is not None:
            takes = [recorder.TakeRecorder(settings.target, recorder.scene_fps(scene), scene.frame_current,
                                           recorder.next_take_name())]
        else:
            self.report({"ERROR"}, "Pick an armature or bind a performer to one first")
            return {"CANCELLED"}
        for take in takes:
            recorder.detach_action(take.armature())
        state.set_recording(scene, takes)
        settings.is_recording = True
        settings.recorded_samples = 0
        return {"FINISHED"}


class MOCAP_OT_record_stop(bpy.types.Operator):
    """Stop the take and write one new Action per recorded armature"""

    bl_idname = "vitpose_mocap.record_stop"
    bl_label = "Stop Recording"

    @classmethod
    def poll(cls, context):
        return context.scene.vitpose_mocap.is_recording

    def execute(self, context):
        scene = context.scene
        settings = scene.vitpose_mocap
        takes = state.recording(scene) or []
        state.set_recording(scene, None)
        settings.is_recording = False
        written = recorder.finish_takes(settings, takes)
        if not written:
            self.report({"WARNING"}, "Nothing recorded: no packet was applied while recording")
            return {"CANCELLED"}
        start, end = min(a.frame_range[0] for a in written), max(a.frame_range[1] for a in written)
        names = ", ".join(a.name for a in written)
        self.report({"INFO"}, f"{names}: frames {int(start)}-{int(end)}")
        return {"FINISHED"}


classes = (MOCAP_OT_record_start, MOCAP_OT_record_stop)
