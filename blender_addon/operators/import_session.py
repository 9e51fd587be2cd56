"""Import a recorded server session (.jsonl) as a take."""

from __future__ import annotations

import bpy
from bpy.props import StringProperty

from ..core import performers, recorder
from ..core.session_import import SessionImportError, import_session, import_session_performers


class MOCAP_OT_import_session(bpy.types.Operator):
    """Bake a session recorded by the pose server (.jsonl) as a new take: onto every bound performer's armature
    (one Action each), or onto the target armature when nobody is bound"""

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
        bound = performers.bound_armatures(settings)
        wm.progress_begin(0, 100)
        try:
            if bound:  # several performers: one Action per bound armature, one take
                takes, skipped = import_session_performers(
                    scene, bound, bpy.path.abspath(self.filepath),
                    progress=lambda done: wm.progress_update(int(done * 100)))
                name = ", ".join(a.name for a in recorder.finish_takes(settings, takes))
            else:
                action, skipped = import_session(
                    scene, settings.target, bpy.path.abspath(self.filepath), settings.person_mode,
                    settings.person_id, reduce=settings.reduce_keys, tolerance=settings.reduce_tolerance,
                    progress=lambda done: wm.progress_update(int(done * 100)))
                settings.last_take = name = action.name
                settings.take_parts.clear()  # the last take is now this one armature's
        except SessionImportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        finally:
            wm.progress_end()
        if skipped:
            self.report({"WARNING"}, f"{name}: skipped {skipped} invalid lines")
        else:
            self.report({"INFO"}, f"Imported {name}")
        return {"FINISHED"}


classes = (MOCAP_OT_import_session,)
