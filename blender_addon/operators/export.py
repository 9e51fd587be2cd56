"""Export the last take as .fbx / .bvh, or save a .blend copy."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from ..core.export import ExportError, export_bvh, export_bvh_take, export_fbx, export_fbx_take, save_blend_copy

_EXT = {"FBX": ".fbx", "BVH": ".bvh", "BLEND": ".blend"}


def take_parts(settings) -> tuple[list[tuple[str, bpy.types.Object, bpy.types.Action]], list[str]]:
    """(performer, armature, Action) of the last take when several performers recorded it ([] for a one-armature
    take), and the performers left out because their armature or Action was deleted since."""
    parts = [(p.performer, p.armature, p.action) for p in settings.take_parts]
    return ([(p, o, a) for p, o, a in parts if o is not None and a is not None],
            [p for p, o, a in parts if o is None or a is None])


def single_take_action(settings) -> bpy.types.Action | None:
    """A one-armature take's Action: by its name, or, renamed since, the one the target armature holds (Stop
    Recording assigns the take to it)."""
    if not settings.last_take:
        return None  # no take yet (the target's own animation is not one)
    action = bpy.data.actions.get(settings.last_take)
    target = settings.target
    if action is None and target is not None and target.animation_data is not None:
        action = target.animation_data.action
    return action


class MOCAP_OT_export(bpy.types.Operator):
    """Write the last take: FBX (every armature of the take in one file) or BVH (one file per performer) of only
    the take's armatures and Actions, or a copy of this .blend"""

    bl_idname = "vitpose_mocap.export"
    bl_label = "Export Take"

    format: EnumProperty(name="Format", items=[
        ("FBX", "FBX", "Armatures and the take's animation, for game engines and other DCCs"),
        ("BVH", "BVH", "Motion capture hierarchy and motion; several performers: one file each, <name>_P<id>.bvh"),
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
        parts, missing = take_parts(settings)
        action = None if settings.take_parts else single_take_action(settings)
        try:
            if self.format == "BLEND":
                playing = [(o, a) for _p, o, a in parts] or ([(settings.target, action)] if action and
                                                             settings.target else None)
                paths = [save_blend_copy(self.filepath, scene, playing)]
            elif parts and self.format == "FBX":
                paths = [export_fbx_take(scene, [(o, a) for _p, o, a in parts], self.filepath, settings.last_take)]
            elif parts:
                paths = export_bvh_take(scene, parts, bpy.path.abspath(self.filepath))
            elif self.format == "FBX":
                paths = [export_fbx(scene, settings.target, action, self.filepath)]
            else:
                paths = [export_bvh(scene, settings.target, action, self.filepath)]
        except (ExportError, OSError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if missing and self.format != "BLEND":
            self.report({"WARNING"}, f"Wrote {', '.join(paths)}; left out {', '.join(missing)}: its armature or "
                                     "Action was deleted")
        else:
            self.report({"INFO"}, "Wrote " + ", ".join(paths))
        return {"FINISHED"}


classes = (MOCAP_OT_export,)
