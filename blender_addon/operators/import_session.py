"""Import a recorded server session (.jsonl) as a take."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..core.session_import import SessionImportError, import_session


class MOCAP_OT_import_session(bpy.types.Operator):
    """Bake a session recorded by the pose server (.jsonl) onto the target armature as a new take"""

    bl_idname = "vitpose_mocap.import_session"
    bl_label = "Import Session"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.jsonl;*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        scene = context.scene
        settings = scene.vitpose_mocap
        wm = context.window_manager
        wm.progress_begin(0, 100)
        try:
            action, skipped = import_session(
                scene, settings.target, bpy.path.abspath(self.filepath), settings.person_mode, settings.person_id,
                reduce=settings.reduce_keys, tolerance=settings.reduce_tolerance,
                progress=lambda done: wm.progress_update(int(done * 100)))
        except SessionImportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        settings.last_take = action.name
        settings.take_parts.clear()  # the last take is now this one armature's
        if skipped:
            self.report({"WARNING"}, f"{action.name}: skipped {skipped} invalid lines")
        else:
            self.report({"INFO"}, f"Imported {action.name}")
        return {"FINISHED"}


classes = (MOCAP_OT_import_session,)
