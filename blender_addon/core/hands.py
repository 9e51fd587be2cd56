"""Hands and fingers (protocol v4 `hands`): canonical hand bones, their rest frames and rest layout, and the
per-tick drive of the hand bones of any armature (mathutils only, no bpy.ops).

Conventions (docs/protocol.md, "Hands", shared with pose_server/hands): each hand has a palm bone (wrist to
middle knuckle) and 3 bones per finger. The palm's rest frame is the T-pose hand, palm down: local Y along the
arm, Z out of the palm (world -Z); the right hand mirrors the left. Finger bones rest along the palm, except the
thumb, turned out of it (`THUMB_REST`). A packet's first quaternion per hand is the palm's world delta, the
others are finger pose rotations under those rest frames.

Hand bones are driven *relative to their parents*: the palm turns from its forearm as the performer's wrist
does, each finger bone from the bone before it. So fingers land the same on the capture rig in IK mode (whose
forearm the IK constraint places), on an FK rig, or on a rig whose arms are animated by hand ("Hands only").
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mathutils import Euler, Matrix, Quaternion, Vector

from .retarget import columns, write_pose

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
SIDES = ("L", "R")
# Per side, in packet order: the palm, then thumb.01 ... pinky.03.
HAND_ORDER = {s: (f"palm.{s}",) + tuple(f"{f}.0{j}.{s}" for f in FINGERS for j in (1, 2, 3)) for s in SIDES}
HAND_SLOTS = HAND_ORDER["L"] + HAND_ORDER["R"]
PALM_SLOTS = frozenset({"palm.L", "palm.R"})
FINGER_SLOTS = frozenset(HAND_SLOTS) - PALM_SLOTS
PARENTS = {}
for _s in SIDES:
    PARENTS[f"palm.{_s}"] = f"forearm.{_s}"
    for _f in FINGERS:
        PARENTS[f"{_f}.01.{_s}"] = f"palm.{_s}"
        PARENTS[f"{_f}.02.{_s}"] = f"{_f}.01.{_s}"
        PARENTS[f"{_f}.03.{_s}"] = f"{_f}.02.{_s}"

# Canonical adult hand (pose_server/hands/model.py): left-hand local coordinates in metres (x towards the little
# finger, y along the palm, z out of the palm); the right hand has x mirrored.
BASES = {"thumb": (-0.020, 0.028, 0.010), "index": (-0.022, 0.088, 0.0), "middle": (0.0, 0.092, 0.0),
         "ring": (0.019, 0.086, 0.0), "pinky": (0.036, 0.076, 0.0)}
LENGTHS = {"thumb": (0.042, 0.032, 0.028), "index": (0.044, 0.026, 0.022), "middle": (0.048, 0.030, 0.024),
           "ring": (0.045, 0.028, 0.023), "pinky": (0.035, 0.021, 0.020)}
# The palm ends at the mean distance of the finger bases from the wrist (short of the knuckles): an FBX importer
# sizes a bone by the mean distance to its children, so the capture rig survives an FBX round trip unchanged.
PALM_LENGTH = sum(Vector(b).length for b in BASES.values()) / len(BASES)
THUMB_OUT_DEG, THUMB_ROLL_DEG = 40.0, 50.0
_MIRROR = Matrix.Diagonal((-1.0, 1.0, 1.0))


PALM_FRAMES = {"L": columns((0, 1, 0), (1, 0, 0), (0, 0, -1)), "R": columns((0, -1, 0), (-1, 0, 0), (0, 0, -1))}
_THUMB_L = Euler((0.0, math.radians(THUMB_ROLL_DEG), 0.0)).to_matrix()
_THUMB_L = Matrix.Rotation(math.radians(THUMB_OUT_DEG), 3, "Z") @ _THUMB_L
THUMB_REST = {"L": _THUMB_L, "R": _MIRROR @ _THUMB_L @ _MIRROR}  # under the palm, in its side's convention
REST_FRAMES = {}
for _s in SIDES:
    for _slot in HAND_ORDER[_s]:
        REST_FRAMES[_slot] = PALM_FRAMES[_s] @ THUMB_REST[_s] if _slot.startswith("thumb") else PALM_FRAMES[_s]


def layout(wrist: Vector, side: str, scale: float = 1.0) -> dict[str, tuple[Vector, Vector, str]]:
    """slot -> (head, tail, parent) of one hand in the rest pose, the palm starting at `wrist`."""
    frame = PALM_FRAMES[side]
    flip = _MIRROR if side == "R" else Matrix.Identity(3)

    def at(local: Sequence[float]) -> Vector:
        return wrist + frame @ (flip @ Vector(local)) * scale

    bones = {f"palm.{side}": (wrist.copy(), at((0.0, PALM_LENGTH, 0.0)), f"forearm.{side}")}
    for finger in FINGERS:
        head = at(BASES[finger])
        direction = REST_FRAMES[f"{finger}.01.{side}"].col[1]
        for j, length in enumerate(LENGTHS[finger], start=1):
            tail = head + direction * length * scale
            bones[f"{finger}.0{j}.{side}"] = (head, tail, PARENTS[f"{finger}.0{j}.{side}"])
            head = tail
    return bones


def relative_deltas(hands: Sequence | None, forearms: dict[str, Matrix]) -> dict[str, Matrix]:
    """Each hand bone's rotation relative to its parent, in the packet's world frame (D_parent^T @ D_bone),
    from a v4 `hands` field; a hand that is null, or whose forearm delta is unknown, is left out."""
    out: dict[str, Matrix] = {}
    for side, quats in zip(SIDES, hands or (), strict=False):
        if not quats:
            continue
        order = HAND_ORDER[side]
        if side in forearms:
            out[order[0]] = forearms[side].transposed() @ Quaternion(quats[0]).normalized().to_matrix()
        for slot, q in zip(order[1:], quats[1:], strict=True):
            rest = REST_FRAMES[slot]
            out[slot] = rest @ Quaternion(q).normalized().to_matrix() @ rest.transposed()
    return out


class HandDriver:
    """Writes the hand bones of one armature: for each mapped slot, the bone's pose rotation is its relative
    delta conjugated into the bone's own rest frame, so it turns from its parent as the performer's does."""

    def __init__(self, armature, entries: Sequence[tuple[str, str]],
                 forearm_offsets: dict[str, Matrix] | None = None) -> None:
        """entries: (hand slot, target bone name) that exist in `armature` (bpy.types.Armature); forearm_offsets:
        side -> the forearm's calibration offset O (armature space; an A-pose rig's turns its rest arm onto the
        canonical one). The solver poses the forearm as D O, so a hand turning R from its forearm is D R O, not
        D O R: each hand bone's relative rotation is conjugated by O (without it an A-pose rig's hand swung 41
        degrees off the forearm when the wrist only pronated)."""
        self.bones = [(slot, name, armature.bones[name].matrix_local.to_3x3().normalized())
                      for slot, name in entries]
        self.offsets = forearm_offsets or {}

    def solve(self, pose, relative: dict[str, Matrix], world_rotation: Matrix, skip: frozenset[str]) -> None:
        """relative: `relative_deltas` (packet frame); world_rotation: the armature's world rotation (3x3);
        skip: slots put back at rest (masked)."""
        rot_t = world_rotation.transposed()
        for slot, name, rest in self.bones:
            if slot in skip:
                write_pose(pose.bones[name], Matrix.Identity(4), rotate=True, locate=False)
            elif slot in relative:
                turn = rot_t @ relative[slot] @ world_rotation
                offset = self.offsets.get(slot[-1])
                if offset is not None:
                    turn = offset.transposed() @ turn @ offset
                local = rest.transposed() @ turn @ rest
                write_pose(pose.bones[name], local.to_4x4(), rotate=True, locate=False)
