"""Import a session recorded by the pose server (.jsonl, one packet per line) into an Action, offline.

Each packet goes through the same validator, person selection, foot pinning (the panel's "Pin planted feet", "Pin
at" and "Settle"), rig drive and visual sampling as live data, and the take is resampled from capture timestamps
exactly like a live recording.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import bpy

from . import bonemaps, drive, performers, recorder
from .foot_lock import FootLock
from .packet import validate_packet
from .tick import select_person


def _foot_lock(scene: bpy.types.Scene) -> FootLock | None:
    """A fresh pinning state for one armature of an import, set as the panel says (None: pinning off)."""
    settings = scene.vitpose_mocap
    return FootLock().configure(settings) if settings.foot_lock else None


def _pin(lock: FootLock | None, person: dict, packet: dict) -> dict:
    """The person with planted feet pinned by ``lock`` (as they are when pinning is off)."""
    return person if lock is None else lock.apply(person, packet["timestamp"])


class SessionImportError(ValueError):
    """The file cannot become a take; the message says why and what to do."""


def read_session(path: str) -> tuple[list[dict], int]:
    """Valid packets of a session file sorted by capture time, and the number of lines skipped."""
    if not os.path.isfile(path):
        raise SessionImportError(f"session file not found: {path}")
    packets, skipped = [], 0
    with open(path, "rb") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            ok, result = validate_packet(line)
            if ok:
                packets.append(result)
            else:
                skipped += 1
    packets.sort(key=lambda p: (p["timestamp"], p["seq"]))
    return packets, skipped


def import_session(scene: bpy.types.Scene, armature_obj: bpy.types.Object, path: str,
                   person_mode: str = "LARGEST", person_id: int = 0, start_frame: int | None = None,
                   reduce: bool = False, tolerance: float = 1e-3,
                   progress: Callable[[float], object] | None = None) -> tuple[bpy.types.Action, int]:
    """Drive `armature_obj` with every packet of the file and bake the result into a new take Action.

    `progress` is called with the fraction done. Returns (action, skipped lines). Raises
    SessionImportError when no packet holds the person.
    """
    if armature_obj is None or armature_obj.type != "ARMATURE":
        raise SessionImportError("pick a target armature first")
    packets, skipped = read_session(path)
    if not packets:
        raise SessionImportError(f"{path} holds no valid pose packets ({skipped} lines rejected); "
                                 "is it a session recorded by pose-server --record?")
    with recorder.actions_set_aside([armature_obj]):  # a failed import leaves the armature's animation as it was
        frame0 = scene.frame_current if start_frame is None else start_frame
        take = recorder.TakeRecorder(armature_obj, recorder.scene_fps(scene), frame0, recorder.next_take_name())
        lock = _foot_lock(scene)
        for i, packet in enumerate(packets):
            if progress is not None and i % 100 == 0:
                progress(i / len(packets))
            person = select_person(packet, person_mode, person_id)
            if not drive.drivable(person, scene.vitpose_mocap.rig):  # as live: a gap, not a held pose
                continue
            _drive(scene, armature_obj, _pin(lock, person, packet), packet)
            recorder.evaluated_view_layer(scene)
            take.sample(armature_obj, packet["timestamp"])
        if not len(take):
            raise SessionImportError(f"no packet in {path} shows the selected person (mode {person_mode}, "
                                     f"id {person_id})")
    return take.finish(armature_obj, reduce=reduce, tolerance=tolerance), skipped


def _drive(scene: bpy.types.Scene, armature_obj: bpy.types.Object, person: dict, packet: dict) -> None:
    """drive.apply_person, its "cannot drive this armature" errors as SessionImportError (the operator's report)."""
    try:
        drive.apply_person(scene, armature_obj, person, packet)
    except (bonemaps.BoneMapError, drive.RigError) as exc:
        raise SessionImportError(f"cannot drive {armature_obj.name!r}: {exc}") from None


def import_session_performers(scene: bpy.types.Scene, bound: list[tuple[int, bpy.types.Object]], path: str,
                              progress: Callable[[float], object] | None = None
                              ) -> tuple[list[recorder.TakeRecorder], int]:
    """Drive every bound (track id, armature) with its person in every packet of the file and sample them into
    one take per armature (`recorder.finish_takes` writes them on one clock). Returns (takes, skipped lines).
    Raises SessionImportError when no packet holds any bound person."""
    packets, skipped = read_session(path)
    if not packets:
        raise SessionImportError(f"{path} holds no valid pose packets ({skipped} lines rejected); "
                                 "is it a session recorded by pose-server --record?")
    takes = recorder.performer_takes(scene, bound)
    settings = scene.vitpose_mocap
    # Hand over lost performers as live does, on copies: the bindings themselves stay as the user set them.
    ids, missing, taken = [i for i, _a in bound], [0] * len(bound), {b.track_id for b in settings.bindings}
    with recorder.actions_set_aside([armature for _id, armature in bound]):
        locks = [_foot_lock(scene) for _ in bound]
        for i, packet in enumerate(packets):
            if progress is not None and i % 100 == 0:
                progress(i / len(packets))
            if settings.handover:
                performers.hand_over(ids, missing, packet, settings.handover_after, taken)
            people = performers.people_by_id(packet)
            driven = [(take, armature, _pin(lock, people[track_id], packet))
                      for take, (_id, armature), lock, track_id in zip(takes, bound, locks, ids, strict=True)
                      if drive.drivable(people.get(track_id), settings.rig)]
            for _take, armature, person in driven:
                _drive(scene, armature, person, packet)
            if driven:
                recorder.evaluated_view_layer(scene)  # one evaluation for every armature of the packet
                for take, armature, _person in driven:
                    take.sample(armature, packet["timestamp"])
        if not any(len(t) for t in takes):
            ids = performers.format_ids(track_id for track_id, _arm in bound)
            raise SessionImportError(f"no packet in {path} shows a bound performer (track ids {ids}): bind the ids "
                                     f"the session holds, or clear the bindings to import onto the target armature")
    return takes, skipped
