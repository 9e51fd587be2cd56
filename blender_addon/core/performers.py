"""Several performers: which tracked person drives which armature (`scene.vitpose_mocap.bindings`).

A binding is (track id -> armature, enabled), stored in Blender properties. While any enabled binding has an
armature, the tick drives every bound armature from the person with its track id in each packet, instead of the
single Armature/Person pair. A performer who leaves the shot and comes back under the same track id finds its
armature again; an id nobody bound drives nothing, and a rig is only created for it when the user asks
(`create_rigs_for_everyone`), so a flickering track cannot fill the scene with rigs.
"""

from __future__ import annotations

from collections.abc import Iterable

import bpy

from . import rig

RIG_NAME = "Performer {id}"


def performer_label(track_id: int) -> str:
    """The performer's part of take and file names: `P3` for track id 3."""
    return f"P{track_id}"


def _enabled(settings):
    """(index, binding) of every enabled binding that has an armature."""
    for i, b in enumerate(settings.bindings):
        if b.enabled and b.armature is not None and b.armature.type == "ARMATURE":
            yield i, b


def bound_armatures(settings) -> list[tuple[int, bpy.types.Object]]:
    """(track id, armature) of every enabled binding that has an armature, in list order. An armature two enabled
    bindings name is driven by the first only: two people posing one rig in turn would make it jump between them
    and record both into one take (`shadowed_bindings` tells the panel)."""
    shadowed = shadowed_bindings(settings)
    return [(b.track_id, b.armature) for i, b in _enabled(settings) if i not in shadowed]


def shadowed_bindings(settings) -> dict[int, int]:
    """{index of an enabled binding whose armature an earlier enabled binding drives: that binding's track id}."""
    first: dict[int, int] = {}  # armature session id -> the track id driving it
    shadowed = {}
    for i, b in _enabled(settings):
        uid = b.armature.session_uid
        if uid in first:
            shadowed[i] = first[uid]
        else:
            first[uid] = b.track_id
    return shadowed


def binding_for(settings, track_id: int):
    """The binding of a track id (enabled or not), or None."""
    return next((b for b in settings.bindings if b.track_id == track_id), None)


def bind(settings, track_id: int, armature: bpy.types.Object):
    """Bind a track id to an armature: the id's binding is updated, or a new one added."""
    binding = binding_for(settings, track_id)
    if binding is None:
        binding = settings.bindings.add()
        binding.track_id = track_id
    binding.armature = armature
    binding.enabled = True
    return binding


def people_by_id(packet: dict) -> dict[int, dict]:
    return {p["id"]: p for p in packet.get("people") or []}


def format_ids(ids: Iterable[int]) -> str:
    return ", ".join(str(i) for i in sorted(ids))


def _lifted_largest_first(packet: dict) -> list[dict]:
    people = [p for p in packet.get("people") or [] if p.get("joints_3d")]
    return sorted(people, key=lambda p: -(p["bbox"][2] - p["bbox"][0]) * (p["bbox"][3] - p["bbox"][1]))


def unbound_people(settings, packet: dict) -> list[dict]:
    """People of a packet, lifted to 3D, whose track id has no binding yet (largest box first)."""
    return [p for p in _lifted_largest_first(packet) if binding_for(settings, p["id"]) is None]


def hand_over(ids: list[int], missing: list[int], packet: dict, after: int, taken: set[int]) -> int:
    """One packet of Hand over lost performers on plain lists: `missing[k]` counts the packets `ids[k]` has been
    missing; past `after`, `ids[k]` becomes the id of the largest lifted person whose id is not in `taken` (the ids
    any binding holds, updated here). Returns how many ids changed."""
    present = {p["id"] for p in packet.get("people") or [] if p.get("joints_3d")}
    changed = 0
    for k, track_id in enumerate(ids):
        if track_id in present:
            missing[k] = 0
            continue
        missing[k] += 1
        free = [p["id"] for p in _lifted_largest_first(packet) if p["id"] not in taken] if missing[k] > after else []
        if free:
            ids[k], missing[k] = free[0], 0
            taken.add(free[0])
            changed += 1
    return changed


def hand_over_lost(settings, packet: dict) -> int:
    """`hand_over` on the enabled bindings (their ids and missing counts). Returns how many bindings changed id.
    Called per packet by the tick when `settings.handover` is on."""
    enabled = [b for b in settings.bindings if b.enabled]
    ids, missing = [b.track_id for b in enabled], [b.missing for b in enabled]
    changed = hand_over(ids, missing, packet, settings.handover_after, {b.track_id for b in settings.bindings})
    for binding, track_id, count in zip(enabled, ids, missing, strict=True):
        if binding.missing != count:  # written only when it changes: each write is an undo-able property update
            binding.missing = count
        if binding.track_id != track_id:
            binding.track_id = track_id
    return changed


def create_rig_for(context: bpy.types.Context, person: dict, offset_x: float = 0.0,
                   with_mesh: bool = True) -> tuple[bpy.types.Object, bool]:
    """A capture rig named after the person's track id, sized from its joints (default proportions when they do
    not look like a standing person), its origin `offset_x` along +X. Returns (rig, sized from the joints)."""
    name = RIG_NAME.format(id=person["id"])
    try:
        obj, sized = rig.create_capture_rig(context, person.get("joints_3d"), name=name, with_mesh=with_mesh), True
    except ValueError:  # e.g. a first frame with the legs hidden: the proportions can be measured later
        obj, sized = rig.create_capture_rig(context, None, name=name, with_mesh=with_mesh), False
    obj.location.x = offset_x
    return obj, sized


def create_rigs_for_everyone(context: bpy.types.Context, packet: dict, spacing: float = 0.0,
                             with_mesh: bool = True) -> list[bpy.types.Object]:
    """One capture rig per lifted person of `packet` whose track id is not bound yet, each bound to its id. With
    `spacing` > 0 the n-th binding's rig stands n * spacing along +X; 0 keeps every rig at the origin (each
    performer stands where the server lifted them)."""
    settings = context.scene.vitpose_mocap
    created = []
    for person in unbound_people(settings, packet):
        obj, _sized = create_rig_for(context, person, spacing * len(settings.bindings), with_mesh)
        bind(settings, person["id"], obj)
        created.append(obj)
    return created
