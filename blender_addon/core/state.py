"""Where running receivers live while Blender runs.

A socket and a thread cannot be stored in Blender properties, so each scene's receiver (and the
takes being recorded, one per armature) sits in this small registry keyed by scene name. Everything the user sees
(host, port, counters, errors, recording flag) stays in `scene.vitpose_mocap`.
"""

from __future__ import annotations

from .receiver import Receiver

_receivers: dict[str, Receiver] = {}
_recordings: dict[str, list] = {}
_last_packets: dict[str, dict] = {}  # the newest packet each scene's tick took ("Create capture rigs for everyone")


def receiver(scene_name: str) -> Receiver | None:
    """The running receiver of a scene, or None."""
    return _receivers.get(scene_name)


def start_receiver(scene_name: str, host: str, port: int, token: str = "") -> Receiver:
    """Start (or restart on a new address) the receiver of a scene; raises OSError if it cannot bind."""
    stop_receiver(scene_name)
    rx = Receiver(host, port, token)
    rx.start()
    _receivers[scene_name] = rx
    return rx


def stop_receiver(scene_name: str) -> None:
    _last_packets.pop(scene_name, None)
    rx = _receivers.pop(scene_name, None)
    if rx is not None:
        rx.stop()


def newest_packet(scene_name: str) -> dict | None:
    """The newest packet of a scene's receiver: the one waiting for the next tick, else the last one a tick took."""
    rx = _receivers.get(scene_name)
    waiting = rx.peek_latest() if rx is not None else None
    return waiting if waiting is not None else last_taken_packet(scene_name)


def remember_packet(scene_name: str, packet: dict) -> None:
    _last_packets[scene_name] = packet


def last_taken_packet(scene_name: str) -> dict | None:
    """The newest packet a tick of the scene took (None before the first)."""
    return _last_packets.get(scene_name)


def running_scenes() -> list[str]:
    return list(_receivers)


def recording(scene_name: str) -> list | None:
    """The TakeRecorders collecting samples for a scene (one per recorded armature), or None."""
    return _recordings.get(scene_name)


def set_recording(scene_name: str, takes) -> None:
    """Start collecting into `takes` (a TakeRecorder, or a list of them: one per armature); None stops."""
    if takes is None:
        _recordings.pop(scene_name, None)
    else:
        _recordings[scene_name] = list(takes) if isinstance(takes, list | tuple) else [takes]


def stop_all() -> None:
    """Close every socket and forget every take in progress (file load, unregister)."""
    for name in list(_receivers):
        stop_receiver(name)
    _recordings.clear()
