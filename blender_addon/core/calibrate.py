"""Rest-pose calibration: per-bone offsets from a target's rest pose to the canonical T-pose.

An A-pose character's arms hang ~45 degrees below the T-pose arms of the canonical skeleton. For each
ROTATION bone whose rest direction is within `MAX_OFFSET` of its canonical direction, the offset is the
smallest rotation (armature space) that lines it up; bones further off are controls with their own
orientation (Rigify's horizontal `torso`), and keep no offset.

The location scale (performer metres to armature units) is the target's leg length over the performer's
own (thigh + shin, measured from the stream's joints when there are any), so the root travels as far as
the target's legs can carry it and the feet do not slide. Without leg bones in the map it falls back to
the root's rest height over the performer's pelvis height. The performer's trunk length (pelvis to
mid-shoulder) is stored too: drive.py scales the target's spine to it, so the spine bends as the
performer's does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import bpy
from mathutils import Quaternion, Vector

from . import bonemaps, rig
from . import retarget as rt

MAX_OFFSET = math.radians(60.0)


LEG_SIDES = (("thigh.L", "shin.L"), ("thigh.R", "shin.R"))


def performer_measures(joints: Sequence[Sequence[float]] | None) -> tuple[rig.Proportions, str]:
    """The performer's proportions from `joints` (one packet's joints_3d) and where they came from; the
    canonical proportions without (plausible) joints."""
    if joints is not None:
        try:
            return rig.Proportions.from_joints(joints), "the performer's"
        except ValueError:
            pass
    return rig.Proportions(), "canonical"


def target_leg_length(obj: bpy.types.Object, resolved: Sequence[dict]) -> float | None:
    """World length of the mapped thigh + shin bones, averaged over the legs the map has; None without legs."""
    names = {e["canonical"]: e["target"] for e in resolved if e["mode"] != "LOCATION"}
    world = obj.matrix_world
    legs = []
    for thigh, shin in LEG_SIDES:
        if thigh in names and shin in names:
            bones = [obj.data.bones[names[thigh]], obj.data.bones[names[shin]]]
            legs.append(sum((world @ b.tail_local - world @ b.head_local).length for b in bones))
    return sum(legs) / len(legs) if legs else None


def calibrate(obj: bpy.types.Object, rig_settings, joints: Sequence[Sequence[float]] | None = None) -> list[str]:
    """Write offsets into rig_settings.bone_map and set location_scale; returns notes for the user.
    `joints`: one packet's joints_3d of the performer (their leg length sets the scale); None: canonical
    proportions. Raises BoneMapError if the map names bones the armature lacks."""
    entries = [{"canonical": e.canonical, "target": e.target, "mode": e.mode} for e in rig_settings.bone_map]
    resolved = bonemaps.require_entries(obj.name, obj.data.bones.keys(), entries)
    world_rot = rt.split_yaw(obj.matrix_world.to_3x3().normalized())[1]  # in the packet frame (drive._placement)
    to_arm = world_rot.transposed()
    notes, offsets = [], 0
    by_slot = {e["canonical"]: e for e in resolved}  # optional hand bones the armature lacks are left out
    directions = {**rt.REST_DIRECTIONS, **rt.EFFECTOR_DIRECTIONS}
    for item in rig_settings.bone_map:
        item.offset = (1.0, 0.0, 0.0, 0.0)
        entry = by_slot.get(item.canonical)
        if entry is None or entry["mode"] == "LOCATION" or entry["canonical"] not in directions:
            continue
        bone = obj.data.bones[entry["target"]]
        rest_dir = (bone.matrix_local.to_3x3() @ Vector((0, 1, 0))).normalized()
        canonical_dir = (to_arm @ Vector(directions[entry["canonical"]])).normalized()
        if rest_dir.angle(canonical_dir, math.pi) <= MAX_OFFSET:
            item.offset = rest_dir.rotation_difference(canonical_dir)
            offsets += item.offset.angle > 1e-4
        else:
            item.offset = Quaternion()
    notes.append(f"{offsets} rest offset(s)")
    performer, source = performer_measures(joints)
    performer_leg = performer.thigh + performer.shin
    rig_settings.performer_trunk = performer.torso
    target_leg = target_leg_length(obj, resolved)
    root = next((e for e in resolved if e["canonical"] == bonemaps.ROOT_SLOT and e["mode"] != "ROTATION"), None)
    scale = None
    if target_leg is not None and target_leg > 1e-4:
        scale = target_leg / performer_leg
    elif root is not None:
        head_world = obj.matrix_world @ obj.data.bones[root["target"]].head_local
        height = head_world.z - obj.matrix_world.translation.z
        if height > 1e-4:
            scale = height / performer.pelvis_height
    if scale is not None:
        rig_settings.location_scale = scale
        notes.append(f"location scale {scale:.3f} ({source} legs)")
    rig_settings.calibrated = True
    rig_settings.revision += 1
    return notes
