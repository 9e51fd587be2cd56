"""Ticks over a real socket: newest packet -> selected person -> capture rig, with live status."""

from __future__ import annotations

import random
import time

import bpy
import pytest

from blender_addon.core import state, tick

from .helpers import bone_head, capture_rig, make_armature, wait_until
from .packets import encode, make_packet

pytestmark = pytest.mark.bpy42


@pytest.mark.parametrize("mode", ["IK", "DIRECT"])
def test_ticks_move_the_capture_rig_and_fill_the_status(scene, live, mode):
    rig = capture_rig(scene)
    settings = scene.vitpose_mocap
    settings.rig.drive_mode = mode
    now = time.time()
    live(make_packet(0, now, phase=0.0))
    assert tick.apply_tick(scene) == tick.TICK_INTERVAL_S
    start = bone_head(rig, "hips").copy()
    wrist_start = bone_head(rig, "forearm.L").copy()
    live(make_packet(1, now + 0.033, phase=0.4))
    tick.apply_tick(scene)
    moved = bone_head(rig, "hips") - start
    assert moved.x == pytest.approx(0.4, abs=0.02)
    assert abs(moved.y) < 0.02 and abs(moved.z) < 0.02
    assert (bone_head(rig, "forearm.L") - wrist_start).length > 0.3
    assert (settings.received, settings.applied, settings.invalid, settings.stale) == (2, 2, 0, 0)
    assert settings.status == "RECEIVING" and settings.packets_per_s >= 2.0
    assert settings.fps == pytest.approx(30.0)
    assert 0.0 <= settings.latency_ms < 5000.0
    assert settings.last_error == ""


def test_only_the_newest_packet_is_applied(scene, live):
    rig = capture_rig(scene)
    t = time.time()
    for seq, phase in enumerate((0.1, 0.2, 0.3)):
        live(make_packet(seq, t + seq / 30, phase=phase))
    tick.apply_tick(scene)
    settings = scene.vitpose_mocap
    assert (settings.received, settings.applied, settings.dropped) == (3, 1, 2)
    assert bone_head(rig, "hips").x == pytest.approx(0.3, abs=0.02)
    assert tick.apply_tick(scene) == tick.TICK_INTERVAL_S  # nothing new: nothing applied
    assert settings.applied == 1


def test_a_peeked_packet_sizes_the_rig_and_the_next_tick_applies_it(scene, live):
    """What the demo does with the first packet: peek, build the rig from its joints, let the tick apply it."""
    from blender_addon.core import rig

    live(make_packet(0, time.time(), phase=0.25))
    packet = state.receiver(scene).peek_latest()
    obj = rig.create_capture_rig(bpy.context, joints=packet["people"][0]["joints_3d"], with_mesh=False)
    scene.vitpose_mocap.target = obj
    tick.apply_tick(scene)
    settings = scene.vitpose_mocap
    assert (settings.received, settings.applied, settings.dropped) == (1, 1, 0)
    assert bone_head(obj, "hips").x == pytest.approx(0.25, abs=0.02)


def test_create_rig_operator_sizes_from_the_waiting_packet_without_taking_it(scene, live):
    """Create Capture Rig before any person was driven: it measures the receiver's waiting packet, which
    the next tick still applies (nothing is lost)."""
    from blender_addon.core import drive

    drive.clear_cache()
    live(make_packet(0, time.time(), phase=0.25))
    assert bpy.ops.vitpose_mocap.create_capture_rig(from_stream=True) == {"FINISHED"}
    assert state.receiver(scene).peek_latest() is not None
    tick.apply_tick(scene)
    settings = scene.vitpose_mocap
    assert (settings.received, settings.applied, settings.dropped) == (1, 1, 0)
    assert bone_head(settings.target, "hips").x == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize(("mode", "person_id", "x"), [("LARGEST", 0, 0.0), ("ID", 1, 1.0), ("FIRST", 0, 0.0)])
def test_the_selected_person_drives_the_rig(scene, live, mode, person_id, x):
    rig = capture_rig(scene)
    settings = scene.vitpose_mocap
    settings.person_mode, settings.person_id = mode, person_id
    live(make_packet(0, time.time(), phase=0.0, people=2))
    tick.apply_tick(scene)
    assert bone_head(rig, "hips").x == pytest.approx(x, abs=0.02)


def test_missing_person_or_target_is_not_an_error(scene, live):
    settings = scene.vitpose_mocap
    live(make_packet(0, time.time()))
    tick.apply_tick(scene)  # no target armature yet
    capture_rig(scene)
    settings.person_mode, settings.person_id = "ID", 7
    live(make_packet(1, time.time()))
    tick.apply_tick(scene)
    assert settings.applied == 0 and settings.received == 2 and settings.last_error == ""


def test_a_rig_that_cannot_be_driven_reports_once(scene, live, capfd):
    settings = scene.vitpose_mocap
    settings.target = make_armature("NotHumanoid")
    for seq in range(5):
        live(make_packet(seq, time.time()))
        assert tick.apply_tick(scene) == tick.TICK_INTERVAL_S  # never raises into the timer
    assert settings.applied == 0
    assert "NotHumanoid" in settings.last_error
    printed = capfd.readouterr().out
    assert printed.count(settings.last_error) == 1, printed


def test_tick_without_a_receiver_ends_the_timer(scene):
    assert tick.apply_tick(scene) is None
    assert tick._timer() is None


def test_a_flood_of_shuffled_and_broken_packets_is_counted_exactly(scene, free_port, sender):
    """2000 valid packets in shuffled order mixed with 2000 broken ones, ticking between bursts."""
    rng = random.Random(1)
    capture_rig(scene)
    settings = scene.vitpose_mocap
    settings.port = free_port
    bpy.ops.vitpose_mocap.start()
    rx = state.receiver(scene)
    t0 = time.time()
    seqs = []
    for block in range(0, 2000, 16):  # reordered within blocks of 16, as a congested network would
        chunk = list(range(block, block + 16))
        rng.shuffle(chunk)
        seqs += chunk
    expected_stale, expected_applied, newest, pending = 0, 0, -1, False
    datagrams = []
    for n, seq in enumerate(seqs):
        # sent times within 1 s of each other: a lower seq is a late packet, not a restarted sender
        good = encode(make_packet(seq, t0 + seq * 1e-4))
        datagrams += [good, rng.choice([good[:-1], good[: len(good) // 2], b"", b"\x00" * 50,
                                        good.replace(b'"v":1', b'"v":9')])]
        expected_stale += seq <= newest
        pending = pending or seq > newest
        newest = max(newest, seq)
        if (n + 1) % 25 == 0:  # a burst of 50 datagrams holds 25 valid ones; one tick after it
            expected_applied += pending
            pending = False
    for i in range(0, len(datagrams), 50):
        before = rx.received
        for d in datagrams[i:i + 50]:
            sender.sendto(d, ("127.0.0.1", free_port))
        wait_until(lambda before=before: rx.received >= before + 50, what="a burst")
        tick.apply_tick(scene)
    tick.apply_tick(scene)
    assert settings.received == 4000 and settings.invalid == 2000
    assert settings.stale == expected_stale
    accepted = 2000 - expected_stale
    assert settings.applied + settings.dropped == accepted
    assert settings.applied == expected_applied  # at most one per burst: the newest
    assert expected_applied > 40
    assert "invalid packet" in settings.last_error


def test_the_timer_callback_ticks_running_scenes_and_forgets_deleted_ones(scene, live):
    """A scene renamed while it receives keeps its receiver and its take (they were keyed by the old name: the
    receiver stopped and Stop Recording found no take); a deleted scene's receiver stops."""
    capture_rig(scene)
    assert bpy.app.timers.is_registered(tick._timer)  # Start registered it
    live(make_packet(0, time.time()))
    assert tick._timer() == tick.TICK_INTERVAL_S
    assert scene.vitpose_mocap.applied == 1
    assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    live(make_packet(1, time.time()))
    scene.name = "Renamed"
    live(make_packet(2, time.time()))
    assert tick._timer() == tick.TICK_INTERVAL_S
    assert scene.vitpose_mocap.applied == 3 and scene.vitpose_mocap.status != "STOPPED"  # recording: every packet
    assert scene.vitpose_mocap.recorded_samples == 2  # the packets before and after the rename
    assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}  # written: the take was found under the new name
    assert scene.vitpose_mocap.last_take in bpy.data.actions

    other = bpy.data.scenes.new("Other")
    state.start_receiver(other, "127.0.0.1", 0)  # any free port
    assert len(state.running_scenes()) == 2
    bpy.data.scenes.remove(other)
    assert tick._timer() == tick.TICK_INTERVAL_S  # the deleted scene's receiver stopped, the renamed one's runs
    assert state.running_scenes() == [scene.session_uid]
    assert bpy.ops.vitpose_mocap.stop() == {"FINISHED"}
    assert tick._timer() is None
    assert scene.vitpose_mocap.status == "STOPPED"
