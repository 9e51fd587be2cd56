"""Where running receivers live while Blender runs.

A socket and a thread cannot be stored in Blender properties, so each scene's receiver (and its
take being recorded) sits in this small registry keyed by scene name. Everything the user sees
(host, port, counters, errors, recording flag) stays in `scene.vitpose_mocap`.
"""

from __future__ import annotations

from .receiver import Receiver

_receivers: dict[str, Receiver] = {}
_recordings: dict[str, object] = {}


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
    rx = _receivers.pop(scene_name, None)
    if rx is not None:
        rx.stop()


def running_scenes() -> list[str]:
    return list(_receivers)


def recording(scene_name: str):
    """The TakeRecorder collecting samples for a scene, or None."""
    return _recordings.get(scene_name)


def set_recording(scene_name: str, recorder) -> None:
    if recorder is None:
        _recordings.pop(scene_name, None)
    else:
        _recordings[scene_name] = recorder


def stop_all() -> None:
    """Close every socket and forget every take in progress (file load, unregister)."""
    for name in list(_receivers):
        stop_receiver(name)
    _recordings.clear()
