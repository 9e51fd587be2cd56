"""The per-tick work: newest packet (all new packets while recording) -> each driven person -> armature -> take.

`apply_tick` is a plain function so tests and benchmarks call it directly (timers never fire when
Blender runs as a Python module); the `bpy.app.timers` callback below only loops over scenes.
"""

from __future__ import annotations

import time

import bpy

from . import drive, foot_lock, performers, recorder, state

TICK_INTERVAL_S = 1.0 / 120.0  # poll faster than any sender so a packet waits at most ~8 ms
_printed_errors: set[str] = set()


def select_person(packet: dict, mode: str = "LARGEST", person_id: int = 0) -> dict | None:
    """The person to drive: the largest box, the first listed, or a fixed track id."""
    people = packet.get("people") or []
    if not people:
        return None
    if mode == "ID":
        return next((p for p in people if p["id"] == person_id), None)
    if mode == "FIRST":
        return people[0]
    return max(people, key=lambda p: (p["bbox"][2] - p["bbox"][0]) * (p["bbox"][3] - p["bbox"][1]))


def report_error(settings, message: str) -> None:
    """Show an error in the panel, and print each distinct message once instead of every tick."""
    if settings.last_error != message:
        settings.last_error = message
    if message and message not in _printed_errors:
        if len(_printed_errors) >= 256:  # hostile input can vary its reasons without end
            _printed_errors.clear()
        _printed_errors.add(message)
        print(f"ViTPose Mocap: {message}")


def _update_status(settings, rx) -> None:
    stats = rx.stats()
    # Only write what changed: every property write tags the UI for a redraw.
    for key in ("received", "invalid", "stale", "dropped"):
        if getattr(settings, key) != stats[key]:
            setattr(settings, key, stats[key])
    if abs(settings.packets_per_s - stats["packets_per_s"]) > 1e-6:
        settings.packets_per_s = stats["packets_per_s"]
    if stats["last_error"] and stats["last_error"] != settings.last_error:
        report_error(settings, stats["last_error"])
    status = "RECEIVING" if stats["packets_per_s"] > 0 else "LISTENING"
    if settings.status != status:
        settings.status = status


def apply_tick(scene: bpy.types.Scene) -> float | None:
    """Apply the newest packet of the scene's receiver (while recording, every packet since the last tick, oldest
    first) to every driven armature: each enabled performer binding's armature from its track id, or without
    bindings the target armature from the selected person. Returns the next interval, or None if not running."""
    rx = state.receiver(scene)
    if rx is None:
        return None
    settings = scene.vitpose_mocap
    bound = performers.bound_armatures(settings)
    drives = bound or [(None, settings.target)]
    in_progress = (state.recording(scene) or []) if settings.is_recording else []
    if bound and in_progress:  # a performer bound since Record joins the take
        joined = recorder.join_take(scene, in_progress, bound)
        if len(joined) > len(in_progress):
            state.set_recording(scene, in_progress := joined)
    # By the armature's session id, not its name: renamed during a take, it is still the take's.
    takes = {t.armature_uid: t for t in in_progress}
    # A take keeps the armature it started on; switching targets mid-take pauses it.
    recording = any(arm is not None and arm.session_uid in takes for _id, arm in drives)
    # Live, only the newest pose matters; a take wants every frame, also two that arrived within one tick.
    packets = rx.take_all() if recording else [p for p in (rx.take_latest(),) if p is not None]
    _update_status(settings, rx)
    for packet in packets:
        _apply_packet(scene, settings, drives, packet, takes if recording else {})
    if packets:
        state.remember_packet(scene, packets[-1])
        ids = performers.format_ids(p["id"] for p in packets[-1].get("people") or [])
        if settings.tracked_ids != ids:
            settings.tracked_ids = ids
    return TICK_INTERVAL_S


def _apply_packet(scene, settings, drives: list[tuple[int | None, bpy.types.Object | None]], packet: dict,
                  takes: dict[int, recorder.TakeRecorder]) -> None:
    meta = packet.get("meta") or {}
    settings.fps = float(meta.get("fps", 0.0) or 0.0)
    settings.latency_ms = max(0.0, (time.time() - packet["timestamp"]) * 1000.0)
    bound = drives[0][0] is not None
    if bound and settings.handover and performers.hand_over_lost(settings, packet):
        drives = performers.bound_armatures(settings)
    by_id = performers.people_by_id(packet) if bound else {}
    applied, to_sample = False, []
    for track_id, armature in drives:
        if armature is None or armature.type != "ARMATURE":
            continue
        person = select_person(packet, settings.person_mode, settings.person_id) if track_id is None \
            else by_id.get(track_id)
        if not drive.drivable(person, settings.rig):  # not in the shot, or not lifted: its last pose holds
            continue
        if settings.foot_lock:  # protocol v3 contacts: planted feet stay put (core/foot_lock.py), per armature
            lock = foot_lock.lock_for((scene.session_uid, armature.session_uid))
            lock.configure(settings)
            person = lock.apply(person, packet["timestamp"])
        try:
            drive.apply_person(scene, armature, person, packet)
        except Exception as exc:  # a bad rig must not kill the timer; the panel shows why
            report_error(settings, f"driving {armature.name} failed: {exc}")
            continue
        applied = True
        if armature.session_uid in takes:
            to_sample.append((takes[armature.session_uid], armature))
    if applied:
        settings.applied += 1
    if to_sample:
        recorder.evaluated_view_layer(scene)  # one evaluation serves every armature of the packet
        for take, armature in to_sample:
            take.sample(armature, packet["timestamp"])
        settings.recorded_samples = sum(len(t) for t in takes.values())


def _timer() -> float | None:
    """bpy.app.timers callback: tick every scene with a running receiver."""
    uids = state.running_scenes()
    if not uids:
        return None
    scenes = {s.session_uid: s for s in bpy.data.scenes}  # by session id: a renamed scene is still found
    for uid in uids:
        scene = scenes.get(uid)
        if scene is None:  # deleted: its receiver has nothing to drive
            state.stop_receiver(uid)
            print("ViTPose Mocap: a scene with a running receiver was deleted; its receiver stopped")
            _mark_stopped()
            continue
        try:
            apply_tick(scene)
        except Exception as exc:
            report_error(scene.vitpose_mocap, f"tick failed: {exc}")
    return TICK_INTERVAL_S if state.running_scenes() else None


def _mark_stopped() -> None:
    """Scenes whose receiver is gone show Stopped instead of their last live status."""
    running = set(state.running_scenes())
    for scene in bpy.data.scenes:
        settings = scene.vitpose_mocap
        if scene.session_uid not in running and settings.status != "STOPPED":
            settings.status = "STOPPED"


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TICK_INTERVAL_S)


def stop_timer() -> None:
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
