"""The pose server's own encoder and UDP sender feeding the add-on's receiver and capture rig.

Blender 5.0 environment only (pose_server needs the main environment); not marked bpy42.
"""

from __future__ import annotations

import time

import bpy
import pytest

from blender_addon.core import state, tick

from .helpers import bone_head, capture_rig, wait_until
from .packets import pose_at


def test_server_packets_drive_and_record_the_capture_rig(scene, free_port):
    from pose_server import protocol, udp  # the main environment only: this test is not marked bpy42

    rig = capture_rig(scene)
    settings = scene.vitpose_mocap
    settings.port = free_port
    assert bpy.ops.vitpose_mocap.start() == {"FINISHED"}
    assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    rx = state.receiver(scene)
    encoder = protocol.PacketEncoder(source="test-cam", image_size=(640, 480))
    sender = udp.UdpSender([f"127.0.0.1:{free_port}"])
    try:
        t0 = time.time()
        for i in range(10):
            joints = pose_at(0.05 * i)
            person = {"id": 3, "bbox": [100, 50, 300, 450], "keypoints": [[320.0, 240.0]] * 17,
                      "scores": [0.9] * 17, "joints_3d": joints}
            data = encoder.encode(i, t0 + i / 30.0, [person], meta={"fps": 30.0, "latency_ms": {"total": 12.0}})
            before = rx.received
            assert sender.send(data) == 1
            wait_until(lambda before=before: rx.received > before, what=f"server packet {i}")
            tick.apply_tick(scene)
    finally:
        sender.close()
    assert (settings.received, settings.applied, settings.invalid, settings.stale) == (10, 10, 0, 0)
    assert settings.fps == pytest.approx(30.0)
    assert bone_head(rig, "hips").x == pytest.approx(0.45, abs=0.02)
    assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}
    action = bpy.data.actions[settings.last_take]
    assert tuple(round(f) for f in action.frame_range) == (1, 1 + round(9 / 30 * 24))
