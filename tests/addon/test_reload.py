"""Loading another file stops the receiver (socket closed) and the add-on keeps working afterwards."""

from __future__ import annotations

import socket
import time

import bpy
import pytest

from blender_addon.core import state, tick

from .helpers import wait_until
from .packets import encode, make_packet

pytestmark = pytest.mark.bpy42


def _start_and_receive(free_port, sender) -> None:
    settings = bpy.context.scene.vitpose_mocap
    settings.port = free_port
    assert bpy.ops.vitpose_mocap.start() == {"FINISHED"}
    rx = state.receiver(bpy.context.scene)
    sender.sendto(encode(make_packet(0, time.time())), ("127.0.0.1", free_port))
    wait_until(lambda: rx.received == 1, what="one packet")
    assert tick.apply_tick(bpy.context.scene) == tick.TICK_INTERVAL_S
    assert settings.received == 1 and settings.status == "RECEIVING"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("reload", ["read_homefile", "open_mainfile"])
def test_file_load_stops_the_receiver_and_it_restarts(scene, free_port, sender, tmp_path, reload):
    _start_and_receive(free_port, sender)
    assert not _port_is_free(free_port)
    if reload == "open_mainfile":
        path = str(tmp_path / "saved_while_receiving.blend")
        bpy.ops.wm.save_as_mainfile(filepath=path)
        bpy.ops.wm.open_mainfile(filepath=path)
    else:
        bpy.ops.wm.read_homefile(use_empty=True)
    assert state.running_scenes() == []
    assert _port_is_free(free_port)
    settings = bpy.context.scene.vitpose_mocap
    assert settings.status == "STOPPED"  # not the status the file was saved with
    assert tick.apply_tick(bpy.context.scene) is None
    _start_and_receive(free_port, sender)
