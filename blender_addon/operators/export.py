"""Export the last take as .fbx / .bvh, or save a .blend copy."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from ..core.export import ExportError, export_bvh, export_fbx, save_blend_copy

_EXT = {"FBX": ".fbx", "BVH": ".bvh", "BLEND": ".blend"}


class MOCAP_OT_export(bpy.types.Operator):
    """Write the last take: FBX or BVH of only the target armature and that take, or a copy of this .blend"""

    bl_idname = "vitpose_mocap.export"
    bl_label = "Export Take"

    format: EnumProperty(name="Format", items=[
        ("FBX", "FBX", "Armature and the take's animation, for game engines and other DCCs"),
        ("BVH", "BVH", "Motion capture hierarchy and motion"),
        ("BLEND", "Blend", "A copy of this file"),
    ], default="FBX")
    filepath: StringProperty(subtype="FILE_PATH")

    def invoke(self, context, event):
        settings = context.scene.vitpose_mocap
        self.filepath = (settings.last_take or "take") + _EXT[self.format]
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        scene = context.scene
        settings = scene.vitpose_mocap
        action = bpy.data.actions.get(settings.last_take) if settings.last_take else None
        try:
            if self.format == "BLEND":
                path = save_blend_copy(self.filepath)
            elif self.format == "FBX":
                path = export_fbx(scene, settings.target, action, self.filepath)
            else:
                path = export_bvh(scene, settings.target, action, self.filepath)
        except (ExportError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {path}")
        return {"FINISHED"}


classes = (MOCAP_OT_export,)
