"""Rest-pose calibration: per-bone offsets from a target's rest pose to the canonical T-pose.

An A-pose character's arms hang ~45 degrees below the T-pose arms of the canonical skeleton. For each
ROTATION bone whose rest direction is within `MAX_OFFSET` of its canonical direction, the offset is the
smallest rotation (armature space) that lines it up; bones further off are controls with their own
orientation (Rigify's horizontal `torso`), and keep no offset. The root's rest height sets the
location scale (performer metres to armature units).
"""

from __future__ import annotations

import math

import bpy
from mathutils import Quaternion, Vector

from . import bonemaps, rig
from . import retarget as rt

MAX_OFFSET = math.radians(60.0)


def calibrate(obj: bpy.types.Object, rig_settings) -> list[str]:
    """Write offsets into rig_settings.bone_map and set location_scale; returns notes for the user.
    Raises BoneMapError if the map names bones the armature lacks."""
    entries = [{"canonical": e.canonical, "target": e.target, "mode": e.mode} for e in rig_settings.bone_map]
    resolved = bonemaps.require_entries(obj.name, obj.data.bones.keys(), entries)
    world_rot = obj.matrix_world.to_3x3().normalized()
    to_arm = world_rot.transposed()
    notes, offsets = [], 0
    for item, entry in zip(rig_settings.bone_map, resolved, strict=True):
        item.offset = (1.0, 0.0, 0.0, 0.0)
        if entry["mode"] == "LOCATION" or entry["canonical"] not in rt.REST_DIRECTIONS:
            continue
        bone = obj.data.bones[entry["target"]]
        rest_dir = (bone.matrix_local.to_3x3() @ Vector((0, 1, 0))).normalized()
        canonical_dir = (to_arm @ Vector(rt.REST_DIRECTIONS[entry["canonical"]])).normalized()
        if rest_dir.angle(canonical_dir, math.pi) <= MAX_OFFSET:
            item.offset = rest_dir.rotation_difference(canonical_dir)
            offsets += item.offset.angle > 1e-4
        else:
            item.offset = Quaternion()
    notes.append(f"{offsets} rest offset(s)")
    root = next((e for e in resolved if e["canonical"] == bonemaps.ROOT_SLOT and e["mode"] != "ROTATION"), None)
    if rig.is_capture_rig(obj):
        rig_settings.location_scale = 1.0
    elif root is not None:
        head_world = obj.matrix_world @ obj.data.bones[root["target"]].head_local
        height = head_world.z - obj.matrix_world.translation.z
        if height > 1e-4:
            rig_settings.location_scale = height / rig.Proportions().pelvis_height
            notes.append(f"location scale {rig_settings.location_scale:.3f}")
    rig_settings.calibrated = True
    rig_settings.revision += 1
    return notes
