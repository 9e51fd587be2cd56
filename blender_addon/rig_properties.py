"""Rig and retargeting settings: `scene.vitpose_mocap.rig` (RigSettings)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    StringProperty,
)

from .core.bonemaps import MODES, SLOTS, list_presets

_MODE_ITEMS = [
    ("ROTATION", "Rotation", "Copy the bone's rotation"),
    ("LOCATION", "Location", "Move the bone's head to the joint (IK controls, root)"),
    ("BOTH", "Both", "Rotation and location (the root)"),
]
assert tuple(m[0] for m in _MODE_ITEMS) == MODES


def _bump(self, _context) -> None:
    """Any edit of the map or the drive settings invalidates drive.py's per-armature cache."""
    rig = self.id_data.vitpose_mocap.rig
    rig.revision += 1


_PRESET_ITEMS: list[tuple[str, str, str]] = []  # Blender needs Python to keep the item strings alive


def _preset_items(_self, _context):
    items = [(name, name.replace("_", " ").title(), f"Bone map preset {name}.json") for name in list_presets()]
    _PRESET_ITEMS[:] = items or [("NONE", "None", "No presets found")]
    return _PRESET_ITEMS


class BoneMapEntry(bpy.types.PropertyGroup):
    """One canonical bone (or IK effector) and the target bone it drives."""

    canonical: EnumProperty(name="Canonical", items=[(s, s, "") for s in SLOTS], update=_bump,
                            description="Bone of the canonical skeleton, or hand/foot effector (wrist/ankle)")
    target: StringProperty(name="Target bone", update=_bump, description="Bone of the target armature")
    mode: EnumProperty(name="Mode", items=_MODE_ITEMS, default="ROTATION", update=_bump)
    offset: FloatVectorProperty(name="Rest offset", size=4, subtype="QUATERNION", default=(1.0, 0.0, 0.0, 0.0),
                                description="Calibration: rotation from the target's rest to the canonical T-pose, "
                                            "in armature space")


class RigSettings(bpy.types.PropertyGroup):
    """How incoming people drive an armature: drive mode, bone map, masks, calibration."""

    drive_mode: EnumProperty(name="Drive", default="IK", update=_bump, items=[
        ("IK", "IK rig", "Move IK targets/controls to the 3D joints (capture rig: empties; others: LOCATION bones)"),
        ("DIRECT", "Direct rotations", "Set bone rotations: protocol v2 rotations when present, else from joints"),
    ])
    preset: EnumProperty(name="Preset", items=_preset_items, description="Bone map preset to load")
    bone_map: CollectionProperty(type=BoneMapEntry)
    bone_map_index: IntProperty(name="Active entry")
    upper_body_only: BoolProperty(name="Upper body only", default=False, update=_bump,
                                  description="Drive spine, neck, head and arms; hips and legs stay at rest")
    hands_only: BoolProperty(name="Hands only", default=False, update=_bump,
                             description="Drive only the hand and finger bones (whole-body models); every other "
                                         "bone keeps its pose, so hands can be recorded over an animated body")
    no_fingers: BoolProperty(name="No fingers", default=False, update=_bump,
                             description="Finger bones stay at rest; the wrists still turn with the hands")
    lock_root: BoolProperty(name="Lock root", default=False, update=_bump,
                            description="Keep the root over its place (no horizontal travel); height still follows")
    lock_legs: BoolProperty(name="Lock legs", default=False, update=_bump,
                            description="Legs stay in their rest pose relative to the hips")
    plant_feet: BoolProperty(name="Plant feet", default=True, update=_bump,
                             description="While a foot is on the floor, bend a mapped armature's leg so its foot "
                                         "stays where the performer's is (under the armature's own hips); off: "
                                         "the legs copy the performer's rotations exactly, and legs of other "
                                         "proportions slide")
    location_scale: FloatProperty(name="Location scale", default=1.0, min=0.001, soft_max=100.0, update=_bump,
                                  description="Metres of the performer to armature units; Calibrate sets it from "
                                              "the target's hip height")
    performer_trunk: FloatProperty(name="Performer trunk", default=0.52, min=0.05, soft_max=1.0, update=_bump,
                                   unit="LENGTH",
                                   description="The performer's pelvis-to-shoulders distance standing (metres); "
                                               "Calibrate measures it from the stream. The spine bends when it "
                                               "gets shorter")
    calibrated: BoolProperty(name="Calibrated", default=False,
                             description="Rest offsets were measured for the current bone map")
    revision: IntProperty(name="Revision", default=0, options={"HIDDEN"},
                          description="Bumped by every edit so cached bone lookups are rebuilt")


classes = (BoneMapEntry, RigSettings)


def map_entries(rig: RigSettings) -> list[dict]:
    """The UI bone map as plain dicts (with calibration offsets)."""
    return [{"canonical": e.canonical, "target": e.target, "mode": e.mode, "offset": tuple(e.offset)}
            for e in rig.bone_map]


def set_map_entries(rig: RigSettings, entries: list[dict]) -> None:
    """Replace the UI bone map (offsets reset to identity: calibrate again)."""
    rig.bone_map.clear()
    for entry in entries:
        item = rig.bone_map.add()
        item.canonical, item.target, item.mode = entry["canonical"], entry["target"], entry["mode"]
        item.offset = entry.get("offset", (1.0, 0.0, 0.0, 0.0))
    rig.calibrated = False
    rig.revision += 1
