"""Rig operators: create the capture rig, detect/load/save bone maps, calibrate the rest pose."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from ..core import bonemaps, calibrate, drive, rig, state
from ..rig_properties import map_entries, set_map_entries


def _armature(context) -> bpy.types.Object | None:
    obj = context.scene.vitpose_mocap.target
    if obj is None and context.object is not None and context.object.type == "ARMATURE":
        obj = context.object
    return obj


def _stream_joints(scene) -> list | None:
    """joints_3d of the newest person seen: the last one driven, else the receiver's waiting packet."""
    joints = drive.last_joints(scene)
    if joints is not None:
        return joints
    rx = state.receiver(scene)
    packet = rx.peek_latest() if rx is not None else None  # the next tick still applies it
    for person in (packet or {}).get("people", []):
        if person.get("joints_3d"):
            return person["joints_3d"]
    return None


class VITPOSE_OT_create_capture_rig(bpy.types.Operator):
    """Add the capture rig (armature with IK targets and a simple body) and make it the driven armature"""

    bl_idname = "vitpose_mocap.create_capture_rig"
    bl_label = "Create Capture Rig"
    bl_options = {"REGISTER", "UNDO"}

    from_stream: BoolProperty(name="Size from stream", default=True,
                              description="Measure bone lengths from the incoming 3D joints when any arrived; "
                                          "default proportions otherwise")

    def execute(self, context):
        joints = _stream_joints(context.scene) if self.from_stream else None
        try:
            obj = rig.create_capture_rig(context, joints)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        settings = context.scene.vitpose_mocap
        settings.target = obj
        set_map_entries(settings.rig, bonemaps.load_preset("capture_rig")["bones"])
        settings.rig.location_scale = 1.0
        sized = "from the stream" if joints is not None else "with default proportions"
        self.report({"INFO"}, f"Created {obj.name} {sized}")
        return {"FINISHED"}


class VITPOSE_OT_detect_bone_map(bpy.types.Operator):
    """Pick the bone map preset that fits the armature's bone names best, load it and calibrate"""

    bl_idname = "vitpose_mocap.detect_bone_map"
    bl_label = "Detect Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = _armature(context)
        if obj is None:
            self.report({"ERROR"}, "Pick an armature first (Armature field, or select one)")
            return {"CANCELLED"}
        try:
            name, score = bonemaps.detect_preset(obj.data.bones.keys())
            preset = bonemaps.load_preset(name)
            found = bonemaps.require_entries(obj.name, obj.data.bones.keys(), preset["bones"])
        except bonemaps.BoneMapError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        rig_settings = context.scene.vitpose_mocap.rig
        rig_settings.preset = name
        set_map_entries(rig_settings, found)
        calibrate.calibrate(obj, rig_settings, _stream_joints(context.scene))
        self.report({"INFO"}, f"{obj.name}: preset {name} ({score:.0%} of its bones found), calibrated")
        return {"FINISHED"}


class VITPOSE_OT_load_bone_map(bpy.types.Operator):
    """Load a bone map preset (the Preset menu, or a .json file) into the bone map list"""

    bl_idname = "vitpose_mocap.load_bone_map"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File", subtype="FILE_PATH", default="",
                             description="Preset .json to load; empty loads the preset chosen in the menu")

    def execute(self, context):
        rig_settings = context.scene.vitpose_mocap.rig
        try:
            preset = bonemaps.load_preset(self.filepath or rig_settings.preset)
        except bonemaps.BoneMapError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        set_map_entries(rig_settings, preset["bones"])
        obj = _armature(context)
        if obj is not None:
            _found, missing = bonemaps.resolve_entries(obj.data.bones.keys(), preset["bones"])
            if missing:
                names = ", ".join(e["target"] for e in missing)
                self.report({"WARNING"}, f"Loaded {preset['name']}; {obj.name} lacks {names}: fix them in the list")
                return {"FINISHED"}
        self.report({"INFO"}, f"Loaded bone map {preset['name']} ({len(preset['bones'])} bones)")
        return {"FINISHED"}


class VITPOSE_OT_save_bone_map(bpy.types.Operator):
    """Save the bone map list as a preset .json"""

    bl_idname = "vitpose_mocap.save_bone_map"
    bl_label = "Save Bone Map"

    filepath: StringProperty(name="File", subtype="FILE_PATH", default="")

    def invoke(self, context, _event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        if not self.filepath:
            self.report({"ERROR"}, "Choose a file to save the bone map to")
            return {"CANCELLED"}
        path = bpy.path.ensure_ext(bpy.path.abspath(self.filepath), ".json")
        entries = map_entries(context.scene.vitpose_mocap.rig)
        try:
            bonemaps.save_preset(path, bpy.path.display_name_from_filepath(path), entries)
        except (bonemaps.BoneMapError, OSError) as exc:
            self.report({"ERROR"}, f"Bone map not saved: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved bone map to {path}")
        return {"FINISHED"}


class VITPOSE_OT_bone_map_edit(bpy.types.Operator):
    """Add or remove a bone map entry"""

    bl_idname = "vitpose_mocap.bone_map_edit"
    bl_label = "Edit Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    remove: BoolProperty(name="Remove", default=False)

    def execute(self, context):
        rig_settings = context.scene.vitpose_mocap.rig
        if self.remove:
            if 0 <= rig_settings.bone_map_index < len(rig_settings.bone_map):
                rig_settings.bone_map.remove(rig_settings.bone_map_index)
                rig_settings.bone_map_index = max(0, rig_settings.bone_map_index - 1)
        else:
            rig_settings.bone_map.add()
            rig_settings.bone_map_index = len(rig_settings.bone_map) - 1
        rig_settings.revision += 1
        return {"FINISHED"}


class VITPOSE_OT_calibrate_rest(bpy.types.Operator):
    """Measure the armature's rest pose against the canonical T-pose (A-pose arms) and its legs against the
    performer's (location scale), and store the offsets in the bone map"""

    bl_idname = "vitpose_mocap.calibrate_rest"
    bl_label = "Calibrate Rest Pose"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = _armature(context)
        if obj is None:
            self.report({"ERROR"}, "Pick an armature first (Armature field, or select one)")
            return {"CANCELLED"}
        try:
            notes = calibrate.calibrate(obj, context.scene.vitpose_mocap.rig, _stream_joints(context.scene))
        except bonemaps.BoneMapError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Calibrated {obj.name}: " + "; ".join(notes))
        return {"FINISHED"}


classes = (VITPOSE_OT_create_capture_rig, VITPOSE_OT_detect_bone_map, VITPOSE_OT_load_bone_map,
           VITPOSE_OT_save_bone_map, VITPOSE_OT_bone_map_edit, VITPOSE_OT_calibrate_rest)
