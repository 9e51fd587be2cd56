"""Registering and unregistering the add-on, twice, leaves Blender clean and closes sockets."""

from __future__ import annotations

import socket

import bpy
import pytest

import blender_addon
from blender_addon.core import state

pytestmark = pytest.mark.bpy42


def _registered() -> bool:
    classes = [cls for module in blender_addon._MODULES for cls in module.classes]
    flags = {cls.is_registered for cls in classes}
    assert len(flags) == 1, "partly registered"
    return hasattr(bpy.types.Scene, "vitpose_mocap") and flags == {True}


def test_register_unregister_twice(addon, free_port):
    assert _registered()
    assert blender_addon._on_load_pre in bpy.app.handlers.load_pre
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.vitpose_mocap.port = free_port
    assert bpy.ops.vitpose_mocap.start() == {"FINISHED"}
    assert state.receiver(bpy.context.scene).running
    for _ in range(2):
        blender_addon.unregister()
        assert not _registered()
        assert blender_addon._on_load_pre not in bpy.app.handlers.load_pre
        assert state.running_scenes() == []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", free_port))  # unregister closed the socket
        blender_addon.register()
        assert _registered()
        assert bpy.app.handlers.load_pre.count(blender_addon._on_load_pre) == 1
    # Settings and operators work again after re-registering.
    bpy.ops.wm.read_factory_settings(use_empty=True)
    settings = bpy.context.scene.vitpose_mocap
    assert (settings.host, settings.port, settings.status) == ("127.0.0.1", 9000, "STOPPED")
    assert settings.rig is not None
    settings.port = free_port
    assert bpy.ops.vitpose_mocap.start() == {"FINISHED"}
    assert bpy.ops.vitpose_mocap.stop() == {"FINISHED"}
    assert settings.status == "STOPPED"


def test_every_module_exposes_classes_registered_in_order(addon):
    from blender_addon import operators, panels, properties, rig_properties

    assert blender_addon._MODULES == (rig_properties, properties, operators, panels)
    for module in blender_addon._MODULES:
        assert isinstance(module.classes, tuple) and module.classes
        for cls in module.classes:
            assert cls.is_registered, cls


def test_start_on_a_busy_port_shows_one_clear_error(scene, free_port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("127.0.0.1", free_port))
        settings = scene.vitpose_mocap
        settings.port = free_port
        with pytest.raises(RuntimeError, match="pick a free port"):
            bpy.ops.vitpose_mocap.start()
        assert settings.status == "ERROR"
        assert "pick a free port" in settings.last_error
        assert state.receiver(scene) is None


def test_disabling_during_a_take_writes_it_and_shows_stopped(addon, free_port, sender):
    """Disabled (or updated) in the middle of a take: the take used to be dropped, and the re-enabled add-on still
    showed RECEIVING and recording, with Record greyed out."""
    import time

    from blender_addon.core import tick

    from .helpers import capture_rig, wait_until
    from .packets import encode, make_packet

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    capture_rig(scene)
    settings = scene.vitpose_mocap
    settings.port = free_port
    assert bpy.ops.vitpose_mocap.start() == {"FINISHED"}
    assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    rx = state.receiver(scene)
    t0 = time.time()
    for i in range(4):
        before = rx.received
        sender.sendto(encode(make_packet(i, t0 + i / 30)), ("127.0.0.1", free_port))
        wait_until(lambda before=before: rx.received > before)
        tick.apply_tick(scene)
    actions_before = set(bpy.data.actions.keys())
    blender_addon.unregister()
    blender_addon.register()
    settings = bpy.context.scene.vitpose_mocap
    assert settings.status == "STOPPED" and not settings.is_recording
    new = set(bpy.data.actions.keys()) - actions_before
    assert len(new) == 1 and bpy.data.actions[new.pop()].use_fake_user
    assert bpy.ops.vitpose_mocap.record_start.poll()
