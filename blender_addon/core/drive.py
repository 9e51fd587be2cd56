"""Drive an armature from one person of a packet: `apply_person`, called by the tick.

Two drive modes (scene.vitpose_mocap.rig.drive_mode):
- IK (default): the capture rig's empties move to the 3D joints and its constraints do the rest;
  any other armature gets its LOCATION bones (IK controls, root) moved to the joints and its
  ROTATION bones rotated.
- DIRECT: bone rotations, from protocol v2 `rotations` when present, else computed from `joints_3d`.
Hand and finger bones (protocol v4 `hands`) are rotated in both modes, relative to their parents
(`hands.HandDriver`); the masks "Hands only" and "No fingers" choose what of it is driven.

Per tick this touches only pose-bone and empty transforms: no bpy.ops, no depsgraph evaluation.
Bone-map resolution, rest matrices and empty lookups are cached per armature and rebuilt when a
name, the bone count or any rig setting changes (RigSettings.revision).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import bpy
from mathutils import Matrix, Quaternion, Vector

from . import bonemaps, hands, rig
from . import retarget as rt

_MAX_CACHED = 16


class RigError(RuntimeError):
    """The armature cannot be driven as it is; the message says what to do."""


@dataclass
class _Cached:
    signature: tuple
    capture: bool
    solver: rt.TargetSolver
    slots: frozenset[str]
    targets: dict[str, bpy.types.Object] = field(default_factory=dict)
    rest_pelvis: Vector = field(default_factory=Vector)
    trunk: rt.Trunk | None = None  # the target's trunk lengths in the performer's metres (None: a straight spine)
    constraint_state: tuple | None = None
    floor: float | None = None  # the lowest ankle height seen (packet metres): where IK mode plants the feet
    hands: hands.HandDriver | None = None  # the mapped hand and finger bones, if any


_cache: dict[tuple[int, int], _Cached] = {}
_last_joints: dict[int, list] = {}  # scene session_uid -> joints_3d last applied (Create Capture Rig sizes from it)


def clear_cache() -> None:
    """Forget every cached armature (after file loads and in tests)."""
    _cache.clear()
    _last_joints.clear()


def last_joints(scene: bpy.types.Scene) -> list | None:
    """joints_3d of the last person applied in this scene, or None."""
    return _last_joints.get(scene.session_uid)


def bone_map_entries(obj: bpy.types.Object, rig_settings) -> list[dict]:
    """The scene's bone map, or (when it is empty) the preset detected from the armature's bones. Another armature
    than the scene's target (a bound performer's) uses the scene's map only if it has every bone the map names."""
    entries = [{"canonical": e.canonical, "target": e.target, "mode": e.mode, "offset": tuple(e.offset)}
               for e in rig_settings.bone_map]
    if entries and (rig_settings.id_data.vitpose_mocap.target == obj
                    or not bonemaps.resolve_entries(obj.data.bones.keys(), entries)[1]):
        return entries
    name, _score = bonemaps.detect_preset(obj.data.bones.keys())
    return bonemaps.load_preset(name)["bones"]


def _build(obj: bpy.types.Object, rig_settings, signature: tuple) -> _Cached:
    entries = bone_map_entries(obj, rig_settings)
    resolved = bonemaps.require_entries(obj.name, obj.data.bones.keys(), entries)
    hand_entries = [(e["canonical"], e["target"]) for e in resolved if e["canonical"] in hands.REST_FRAMES]
    resolved = [e for e in resolved if e["canonical"] not in hands.REST_FRAMES]
    solver = rt.TargetSolver(obj.data, [(e["canonical"], e["target"], e["mode"], e.get("offset", (1, 0, 0, 0)))
                                        for e in resolved])
    cached = _Cached(signature, rig.is_capture_rig(obj), solver, frozenset(e["canonical"] for e in resolved))
    # the forearms' calibration offsets (an A-pose rig's): the hands hang from them (HandDriver says why)
    forearm_offsets = {e["canonical"][-1]: Quaternion(e.get("offset", (1, 0, 0, 0))).normalized().to_matrix()
                       for e in resolved if e["canonical"] in ("forearm.L", "forearm.R")}
    cached.hands = hands.HandDriver(obj.data, hand_entries, forearm_offsets) if hand_entries else None
    if cached.capture:
        props = rig.Proportions(**obj.get(rig.PROPORTIONS_KEY, {}).to_dict()) \
            if obj.get(rig.PROPORTIONS_KEY) else rig.Proportions()
        cached.rest_pelvis = Vector((0.0, 0.0, props.pelvis_height))
        cached.trunk = props.trunk()
    else:
        cached.trunk = target_trunk(obj, resolved, rig_settings.performer_trunk)
    return cached


def target_trunk(obj: bpy.types.Object, resolved: list[dict], performer_trunk: float) -> rt.Trunk | None:
    """The trunk of a mapped armature (rest distances root -> spine -> chest -> neck heads) scaled so that it
    spans the performer's standing trunk: the spine then bends as much as the performer's, whatever the
    target's proportions. None when the map lacks one of these bones."""
    names = {e["canonical"]: e["target"] for e in resolved if e["mode"] != "LOCATION" or e["canonical"] == "hips"}
    if not all(k in names for k in ("hips", "spine", "chest", "neck")):
        return None
    world = obj.matrix_world
    root, spine, chest, neck = (world @ obj.data.bones[names[k]].head_local for k in ("hips", "spine", "chest", "neck"))
    span = (neck - root).length
    if span < 1e-6:
        return None
    axis = (neck - root) / span  # lengths along the trunk: a rest spine that curves is straight at rest here too
    lengths = [(spine - root).dot(axis), (chest - spine).dot(axis), (neck - chest).dot(axis)]
    if min(lengths) < 0.0 or min(lengths[1:]) < 1e-6:
        return None
    return rt.Trunk(*(length * performer_trunk / span for length in lengths))


def _capture_targets(obj: bpy.types.Object, cached: _Cached) -> dict[str, bpy.types.Object]:
    """The capture rig's IK empties, looked up once per cache entry (only IK mode needs them)."""
    if not cached.targets:
        names = obj.get(rig.TARGETS_KEY) or {}
        missing = [k for k in rig.TARGETS if bpy.data.objects.get(names.get(k, "")) is None]
        if missing:
            raise RigError(f"capture rig {obj.name!r} lost its target empties ({', '.join(missing)}); "
                           f"create the capture rig again or switch Drive to Direct rotations")
        cached.targets = {k: bpy.data.objects[names[k]] for k in rig.TARGETS}
    return cached.targets


def cached_rig(scene: bpy.types.Scene, obj: bpy.types.Object) -> _Cached:
    """The cache entry of an armature, rebuilt when its names or the rig settings changed."""
    rig_settings = scene.vitpose_mocap.rig
    key = (scene.session_uid, obj.session_uid)  # unique per session, unlike pointers after a file load
    signature = (obj.name, obj.data.name, len(obj.data.bones), rig_settings.revision)
    cached = _cache.get(key)
    if cached is None or cached.signature != signature:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        _cache.pop(key, None)
        cached = _build(obj, rig_settings, signature)
        _cache[key] = cached
    return cached


def _placement(obj: bpy.types.Object, scale: float) -> tuple[Matrix, Matrix]:
    """(packet point -> armature space 4x4, the packet frame -> the armature's rotation 3x3). The packet frame is
    put at the armature object's origin, turned with the object about the vertical (positions and rotations alike:
    with positions world-aligned and rotations in the object's frame, a rig turned 90 degrees had its pelvis 90
    degrees off its hip line), in metres times `scale`."""
    world = obj.matrix_world
    turn, rest = rt.split_yaw(world.to_3x3().normalized())
    to_arm = world.inverted_safe() @ Matrix.Translation(world.translation) @ turn.to_4x4() @ Matrix.Scale(scale, 4)
    return to_arm, rest


def _location_scale(obj: bpy.types.Object, cached: _Cached, rig_settings) -> float:
    """Performer metres to armature units: the rig settings' scale (calibrated for the target armature), except for
    a bound capture rig other than the target, which is built at its performer's size."""
    if cached.capture and rig_settings.id_data.vitpose_mocap.target != obj:
        return 1.0
    return rig_settings.location_scale


def _joints(person: dict) -> list[Vector] | None:
    joints = person.get("joints_3d")
    if not joints:
        return None
    if len(joints) != rt.NUM_JOINTS:
        raise ValueError(f"joints_3d has {len(joints)} joints, expected {rt.NUM_JOINTS} (COCO body)")
    return [Vector(p) for p in joints]


def _masked_shift(joints: list[Vector], rest_pelvis: Vector, rig_settings) -> Vector:
    """Offset added to every joint: upper-body-only pins the pelvis at rest, lock-root keeps it over its place."""
    pelvis = rt.mid(joints, (rt.HIP_L, rt.HIP_R))
    if rig_settings.upper_body_only:
        return rest_pelvis - pelvis
    if rig_settings.lock_root:
        return Vector((rest_pelvis.x - pelvis.x, rest_pelvis.y - pelvis.y, 0.0))
    return Vector()


def drivable(person: dict | None, rig_settings) -> bool:
    """Whether a packet's person can pose an armature: lifted to 3D (or, with Hands only, carrying hands). One
    that is not (absent, or the lifter failed on that frame) leaves the armature's last pose, and a take records
    nothing for it: the gap is interpolated, instead of a held pose and then a jump."""
    return person is not None and bool(person.get("joints_3d") or rig_settings.hands_only and person.get("hands"))


def apply_person(scene: bpy.types.Scene, armature_obj: bpy.types.Object, person: dict, packet: dict) -> None:
    """Pose `armature_obj` from one person of a packet, per scene.vitpose_mocap.rig. Raises
    BoneMapError/RigError/ValueError with a message for the panel when the armature cannot be driven."""
    rig_settings = scene.vitpose_mocap.rig
    if person.get("joints_3d"):
        _last_joints[scene.session_uid] = person["joints_3d"]
    key = (scene.session_uid, armature_obj.session_uid)
    for attempt in range(2):
        cached = cached_rig(scene, armature_obj)
        try:
            deltas = None
            if rig_settings.hands_only:
                pass  # every bone but the hands' keeps its pose
            elif cached.capture and rig_settings.drive_mode == "IK":
                deltas = _drive_capture_targets(armature_obj, cached, person, rig_settings)
            else:
                deltas = _drive_bones(armature_obj, cached, person, packet, rig_settings)
            _drive_hands(armature_obj, cached, person, packet, rig_settings, deltas)
            return
        except (KeyError, ReferenceError):
            # A bone was renamed or a cached empty deleted since the cache was built: rebuild once,
            # which raises a BoneMapError/RigError naming what is missing.
            _cache.pop(key, None)
            if attempt:
                raise RigError(f"{armature_obj.name!r} changed while it was being driven; "
                               f"press Detect or create the capture rig again") from None


def _sync_capture_constraints(obj: bpy.types.Object, cached: _Cached, ik: bool, legs: bool) -> None:
    """Mute the capture rig's constraints in Direct mode (and the leg IK when legs are masked)."""
    state = (ik, legs)
    if cached.constraint_state == state:
        return
    for pb in obj.pose.bones:
        for con in pb.constraints:
            if not con.name.startswith(rig.CONSTRAINT_PREFIX):
                continue
            is_leg = pb.name.startswith(("shin.", "thigh."))
            mute = not ik or (is_leg and not legs)
            if con.mute != mute:
                con.mute = mute
    if ik:  # constraints start from the rest pose (IK chains from a small pre-bend); the hands are not the IK's:
        rig.reset_ik_pose(obj, keep=frozenset(hands.HAND_SLOTS))  # a packet without hands leaves them as they are
    cached.constraint_state = state


def _drive_hands(obj: bpy.types.Object, cached: _Cached, person: dict, packet: dict, rig_settings,
                 deltas: dict[str, Matrix] | None) -> None:
    """Rotate the mapped hand bones from a v4 packet's `hands`: the palm relative to the performer's forearm
    (from the body's `deltas`, or from the person's joints/rotations when the body was not driven)."""
    field = person.get("hands") if packet.get("v", 1) >= 4 else None
    if not field or cached.hands is None:
        return
    if deltas is None:
        joints, rotations = _joints(person), person.get("rotations")
        deltas = rt.deltas_from_joints(joints, cached.trunk) if joints is not None else \
            rt.deltas_from_rotations(rotations) if rotations else {}
    forearms = {s: deltas[f"forearm.{s}"] for s in hands.SIDES if f"forearm.{s}" in deltas}
    skip = hands.FINGER_SLOTS if rig_settings.no_fingers else frozenset()
    _to_arm, rot = _placement(obj, rig_settings.location_scale)
    cached.hands.solve(obj.pose, hands.relative_deltas(field, forearms), rot, skip)


def _drive_capture_targets(obj: bpy.types.Object, cached: _Cached, person: dict,
                           rig_settings) -> dict[str, Matrix] | None:
    legs = not (rig_settings.lock_legs or rig_settings.upper_body_only)
    _capture_targets(obj, cached)
    _sync_capture_constraints(obj, cached, ik=True, legs=legs)
    joints = _joints(person)
    if joints is None:
        return None
    shift = _masked_shift(joints, cached.rest_pelvis, rig_settings)
    if shift.length_squared:
        joints = [p + shift for p in joints]
    deltas = rt.deltas_from_joints(joints, cached.trunk)
    if rig_settings.upper_body_only:  # the hips stay at rest: the trunk starts from the rest hips
        deltas["hips"] = Matrix.Identity(3)
        deltas.update(rt.trunk_deltas(joints, deltas["hips"], cached.trunk))
    to_arm, rot = _placement(obj, _location_scale(obj, cached, rig_settings))
    rot_t = rot.transposed()
    targets = _capture_targets(obj, cached)
    for key, pos in rig.target_positions(joints, deltas, cached.trunk).items():
        if not legs and key in rig.LEG_TARGETS:
            continue
        targets[key].location = to_arm @ pos
    hips = rot_t @ deltas["hips"] @ rot @ rt.REST_FRAMES["hips"]
    targets["pelvis"].rotation_quaternion = hips.to_quaternion()
    return deltas


def _drive_bones(obj: bpy.types.Object, cached: _Cached, person: dict, packet: dict,
                 rig_settings) -> dict[str, Matrix] | None:
    ik = rig_settings.drive_mode == "IK"
    if cached.capture:
        _sync_capture_constraints(obj, cached, ik=False, legs=True)
    joints = _joints(person)
    rotations = person.get("rotations") if packet.get("v", 1) >= 2 else None
    if rotations and not ik:
        deltas = rt.deltas_from_rotations(rotations)
        if joints is not None:  # v2 has one rigid trunk: split it and add the clavicles from the joints
            deltas.update(rt.trunk_deltas(joints, deltas["hips"], cached.trunk))
            rt.snap_to_joints(deltas, joints)  # undo the quaternions' rounding, keep the server's limits
    elif joints is not None:
        deltas = rt.deltas_from_joints(joints, cached.trunk)
    elif rotations:
        deltas = rt.deltas_from_rotations(rotations)
    else:
        return None
    skip = set()
    if rig_settings.upper_body_only:
        skip |= bonemaps.LEG_SLOTS | {bonemaps.ROOT_SLOT}
    if rig_settings.lock_legs:
        skip |= bonemaps.LEG_SLOTS
    to_arm, rot = _placement(obj, _location_scale(obj, cached, rig_settings))
    rot_t = rot.transposed()
    if ik:  # IK hand and foot controls turn with the forearms and knees (retarget.EFFECTOR_TURNS); Direct mode
        # leaves them alone
        turns = {slot: deltas[bone] for slot, bone in rt.EFFECTOR_TURNS.items() if bone in deltas}
        hips = deltas.get("hips", Matrix.Identity(3))
        turns = {slot: rt.foot_heading(d, hips) if slot.startswith("foot") else d for slot, d in turns.items()}
    else:
        turns = {}
    deltas_arm = {name: rot_t @ d @ rot for name, d in (deltas | turns).items()}
    points: dict[str, Vector] = {}
    aims: dict[str, Vector] = {}
    reach: dict[str, tuple[Vector, float]] = {}
    if joints is not None:
        shift = _masked_shift(joints, cached.rest_pelvis, rig_settings) if rig_settings.lock_root else Vector()
        points[bonemaps.ROOT_SLOT] = to_arm @ (rt.mid(joints, (rt.HIP_L, rt.HIP_R)) + shift)
        linear = to_arm.to_3x3()
        # the capture rig's legs are the performer's: nothing to make up for
        plant = rig_settings.plant_feet and not cached.capture
        if ik or plant:  # feet go under the target's own hips: the performer's ankles, moved out by the difference in
            # hip width (a leg of the same proportions on wider hips is then not bent inwards to reach them)
            widen = _stance_widening(linear @ (joints[rt.HIP_L] - joints[rt.HIP_R]), cached.solver.half_hips)
            feet = {rt.ANKLE_L: to_arm @ (joints[rt.ANKLE_L] + shift) + widen,
                    rt.ANKLE_R: to_arm @ (joints[rt.ANKLE_R] + shift) - widen}
        if ik:
            for slot, index in rt.EFFECTOR_JOINTS.items():
                if slot in cached.slots:
                    points[slot] = feet[index] if index in feet else to_arm @ (joints[index] + shift)
        if plant:  # the legs bend to keep the target's own feet there while they are on the floor
            low = min(joints[ankle].z for _shin, ankle in rt.REACH_SLOTS.values())
            cached.floor = low if cached.floor is None else min(cached.floor, low)
            reach = {shin: (feet[ankle], rt.plant_weight(joints[ankle].z, cached.floor))
                     for shin, ankle in rt.REACH_SLOTS.values()}
        neck_base = rt.mid(joints, (rt.SHOULDER_L, rt.SHOULDER_R))
        aims = {slot: linear @ (joints[joint] - neck_base) for slot, (_arm, joint) in rt.AIM_SLOTS.items()}
    cached.solver.solve(obj.pose, deltas_arm, points, frozenset(skip), aims, reach)
    return deltas


def _stance_widening(hip_line: Vector, half_hips: float | None) -> Vector:
    """Armature-space offset of the left foot (the right one's is its negative) that puts the feet as far apart as
    the target's thigh heads are wider than the performer's scaled hip joints. hip_line: left minus right hip joint
    in armature space."""
    if half_hips is None or hip_line.length < 1e-9:
        return Vector((0.0, 0.0, 0.0))
    return hip_line.normalized() * (half_hips - hip_line.length * 0.5)
