"""Where running receivers live while Blender runs.

A socket and a thread cannot be stored in Blender properties, so each scene's receiver (and the
takes being recorded, one per armature) sits in this small registry keyed by the scene's session id, not its
name: a scene renamed during a take keeps its receiver and its take. Everything the user sees (host, port,
counters, errors, recording flag) stays in `scene.vitpose_mocap`.
"""

from __future__ import annotations

import bpy

from .receiver import Receiver

_receivers: dict[int, Receiver] = {}
_recordings: dict[int, list] = {}
_last_packets: dict[int, dict] = {}  # the newest packet each scene's tick took ("Create capture rigs for everyone")


def receiver(scene: bpy.types.Scene) -> Receiver | None:
    """The running receiver of a scene, or None."""
    return _receivers.get(scene.session_uid)


def start_receiver(scene: bpy.types.Scene, host: str, port: int, token: str = "") -> Receiver:
    """Start (or restart on a new address) the receiver of a scene; raises OSError if it cannot bind."""
    stop_receiver(scene)
    rx = Receiver(host, port, token)
    rx.start()
    _receivers[scene.session_uid] = rx
    return rx


def stop_receiver(scene: bpy.types.Scene | int) -> None:
    """Close the receiver of a scene (or of a session id whose scene is gone)."""
    uid = scene if isinstance(scene, int) else scene.session_uid
    _last_packets.pop(uid, None)
    rx = _receivers.pop(uid, None)
    if rx is not None:
        rx.stop()


def newest_packet(scene: bpy.types.Scene) -> dict | None:
    """The newest packet of a scene's receiver: the one waiting for the next tick, else the last one a tick took."""
    rx = _receivers.get(scene.session_uid)
    waiting = rx.peek_latest() if rx is not None else None
    return waiting if waiting is not None else last_taken_packet(scene)


def remember_packet(scene: bpy.types.Scene, packet: dict) -> None:
    _last_packets[scene.session_uid] = packet


def last_taken_packet(scene: bpy.types.Scene) -> dict | None:
    """The newest packet a tick of the scene took (None before the first)."""
    return _last_packets.get(scene.session_uid)


def running_scenes() -> list[int]:
    """The session ids of the scenes with a running receiver."""
    return list(_receivers)


def recording(scene: bpy.types.Scene) -> list | None:
    """The TakeRecorders collecting samples for a scene (one per recorded armature), or None."""
    return _recordings.get(scene.session_uid)


def set_recording(scene: bpy.types.Scene, takes) -> None:
    """Start collecting into `takes` (a TakeRecorder, or a list of them: one per armature); None stops."""
    if takes is None:
        _recordings.pop(scene.session_uid, None)
    else:
        _recordings[scene.session_uid] = list(takes) if isinstance(takes, list | tuple) else [takes]


def stop_all() -> None:
    """Close every socket and forget every take in progress (file load, unregister)."""
    for uid in list(_receivers):
        stop_receiver(uid)
    _recordings.clear()
