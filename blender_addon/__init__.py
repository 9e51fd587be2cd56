"""ViTPose Mocap: receive pose packets over UDP, drive an armature live, record takes, export them.

Installed as a Blender 4.2+ extension (blender_manifest.toml); `bl_info` below, kept in step with the manifest
(tests/addon/test_build.py), names it to tools that still read it. Uses only the standard library, bpy and
mathutils.
"""

from __future__ import annotations

bl_info = {
    "name": "ViTPose Mocap",
    "author": "ViTPose Mocap contributors",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "View3D > Sidebar > Mocap",
    "description": "Live markerless motion capture from the ViTPose pose server: drive, record, export",
    "category": "Animation",
}

import bpy  # noqa: E402
from bpy.app.handlers import persistent  # noqa: E402

from . import operators, panels, properties, rig_properties  # noqa: E402
from .core import drive, foot_lock, recorder, state, tick  # noqa: E402

_MODULES = (rig_properties, properties, operators, panels)


@persistent
def _on_load_pre(*_args) -> None:
    """A file is about to replace the current one: close every socket and drop takes in progress."""
    tick.stop_timer()
    state.stop_all()
    drive.clear_cache()
    foot_lock.clear()


@persistent
def _on_load_post(*_args) -> None:
    """A loaded file remembers the status it was saved with; nothing is listening now."""
    for scene in bpy.data.scenes:
        settings = scene.vitpose_mocap
        if settings.status != "STOPPED":
            settings.status = "STOPPED"
        if settings.is_recording:
            settings.is_recording = False


def _finish_takes() -> None:
    """Disabled or updated during a take: write what was recorded as Actions (as Stop Recording does) and show
    every scene as stopped, so nothing is lost and a re-enabled add-on does not show a take that is gone."""
    try:
        scenes = list(bpy.data.scenes)
    except AttributeError:  # bpy.data is restricted in some contexts (while add-ons are being (re)loaded)
        return
    for scene in scenes:
        settings = scene.vitpose_mocap
        takes = state.recording(scene)
        if takes:
            try:
                written = recorder.finish_takes(settings, takes)
                names = ", ".join(a.name for a in written) or "nothing"
                print(f"ViTPose Mocap: disabled while recording; wrote {names}")
            except Exception as exc:  # noqa: BLE001 - unregistering must go on
                print(f"ViTPose Mocap: the take in progress could not be written: {exc}")
        if settings.is_recording:
            settings.is_recording = False
        if settings.status != "STOPPED":
            settings.status = "STOPPED"


def register() -> None:
    for module in _MODULES:
        for cls in module.classes:
            bpy.utils.register_class(cls)
    properties.register_scene_property()
    bpy.app.handlers.load_pre.append(_on_load_pre)
    bpy.app.handlers.load_post.append(_on_load_post)


def unregister() -> None:
    for handler, fn in ((bpy.app.handlers.load_pre, _on_load_pre), (bpy.app.handlers.load_post, _on_load_post)):
        if fn in handler:
            handler.remove(fn)
    tick.stop_timer()
    _finish_takes()
    state.stop_all()
    drive.clear_cache()
    foot_lock.clear()
    properties.unregister_scene_property()
    for module in reversed(_MODULES):
        for cls in reversed(module.classes):
            bpy.utils.unregister_class(cls)
