"""Record the live motion into a new take Action."""

from __future__ import annotations

import bpy

from ..core import recorder, state


class MOCAP_OT_record_start(bpy.types.Operator):
    """Start a take: the target armature's evaluated pose is captured on every applied packet"""

    bl_idname = "vitpose_mocap.record_start"
    bl_label = "Record"

    @classmethod
    def poll(cls, context):
        settings = context.scene.vitpose_mocap
        return not settings.is_recording and settings.target is not None

    def execute(self, context):
        scene = context.scene
        settings = scene.vitpose_mocap
        if state.receiver(scene.name) is None:
            self.report({"ERROR"}, "Start the connection first: recording captures incoming packets")
            return {"CANCELLED"}
        recorder.detach_action(settings.target)
        take = recorder.TakeRecorder(settings.target, recorder.scene_fps(scene), scene.frame_current,
                                     recorder.next_take_name())
        state.set_recording(scene.name, take)
        settings.is_recording = True
        settings.recorded_samples = 0
        return {"FINISHED"}


class MOCAP_OT_record_stop(bpy.types.Operator):
    """Stop the take and write it as a new Action on the target armature"""

    bl_idname = "vitpose_mocap.record_stop"
    bl_label = "Stop Recording"

    @classmethod
    def poll(cls, context):
        return context.scene.vitpose_mocap.is_recording

    def execute(self, context):
        scene = context.scene
        settings = scene.vitpose_mocap
        take = state.recording(scene.name)
        state.set_recording(scene.name, None)
        settings.is_recording = False
        armature = bpy.data.objects.get(take.armature_name) if take is not None else None
        if take is None or armature is None or not len(take):
            self.report({"WARNING"}, "Nothing recorded: no packet was applied while recording")
            return {"CANCELLED"}
        action = take.finish(armature, reduce=settings.reduce_keys, tolerance=settings.reduce_tolerance)
        settings.last_take = action.name
        start, end = action.frame_range
        self.report({"INFO"}, f"{action.name}: frames {int(start)}-{int(end)} from {len(take)} poses")
        return {"FINISHED"}


classes = (MOCAP_OT_record_start, MOCAP_OT_record_stop)
