"""Recording live packets and importing a recorded session both give takes keyed from capture timestamps."""

from __future__ import annotations

import json
import re
import time

import bpy
import pytest

from blender_addon.core import compat, state, tick
from blender_addon.core.session_import import SessionImportError, import_session

from .helpers import capture_rig, wait_until
from .packets import encode, make_packet

pytestmark = pytest.mark.bpy42
HIPS_X = 'pose.bones["hips"].location'
SPEED = 0.5  # metres per second the performer walks along +X in these takes


def _packets(n: int, rate: float, t0: float = 5000.0):
    """n packets captured at `rate` Hz, hips walking along +X at SPEED."""
    return [make_packet(i, t0 + i / rate, phase=SPEED * i / rate) for i in range(n)]


def _hips_keys(action):
    fc = compat.find_fcurve(action, HIPS_X, 0)
    assert fc is not None
    return [(round(kp.co[0]), kp.co[1]) for kp in fc.keyframe_points]


def test_packets_arriving_within_one_tick_all_reach_the_take(scene, free_port, sender):
    """Two or more packets between ticks: live driving needs only the newest, but the take keeps them all."""
    capture_rig(scene)
    settings = scene.vitpose_mocap
    settings.port = free_port
    assert bpy.ops.vitpose_mocap.start() == {"FINISHED"}
    rx = state.receiver(scene)
    packets = _packets(12, 30.0)

    def burst(batch):
        before = rx.received
        for p in batch:
            sender.sendto(encode(p), ("127.0.0.1", free_port))
        wait_until(lambda: rx.received >= before + len(batch))
        tick.apply_tick(scene)

    burst(packets[:3])  # not recording: the newest is applied, two are dropped
    assert (settings.applied, settings.dropped) == (1, 2)
    assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    burst(packets[3:6])
    burst(packets[6:7])
    burst(packets[7:12])
    assert settings.recorded_samples == 9 and settings.applied == 10 and settings.dropped == 2
    assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}


def test_recording_n_packets_gives_keys_on_the_frame_grid(scene, free_port, sender):
    rig = capture_rig(scene)
    settings = scene.vitpose_mocap
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.frame_set(5)
    settings.port = free_port
    assert bpy.ops.vitpose_mocap.start() == {"FINISHED"}
    assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    rx = state.receiver(scene)
    # 21 packets captured at 20 Hz (1.0 s) but sent as fast as possible: the timing comes from capture time.
    for packet in _packets(21, 20.0):
        before = rx.received
        sender.sendto(encode(packet), ("127.0.0.1", free_port))
        wait_until(lambda before=before: rx.received > before)
        tick.apply_tick(scene)
    assert settings.recorded_samples == 21
    assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}
    assert not settings.is_recording
    action = bpy.data.actions[settings.last_take]
    assert re.fullmatch(r"Take_001_\d{4}-\d\d-\d\d_\d{4}", action.name)
    assert rig.animation_data.action == action
    keys = _hips_keys(action)
    assert [f for f, _ in keys] == list(range(5, 5 + 25))  # 1.0 s at 24 fps from frame 5
    for f, x in keys:  # visual keys of the IK rig, interpolated between 20 Hz samples
        assert x == pytest.approx(SPEED * (f - 5) / 24, abs=0.01)
    # Every bone of the rig is keyed.
    bones = {fc.data_path.split('"')[1] for fc in compat.action_fcurves(action)}
    assert bones == {pb.name for pb in rig.pose.bones}
    # A new take starts from the live pose: the previous take is unassigned but kept.
    assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    assert rig.animation_data.action is None and action.use_fake_user
    assert bpy.ops.vitpose_mocap.record_stop() == {"CANCELLED"}  # nothing applied: no empty take
    bpy.ops.vitpose_mocap.stop()


def test_record_needs_a_running_connection(scene):
    capture_rig(scene)
    with pytest.raises(RuntimeError, match="Start the connection"):
        bpy.ops.vitpose_mocap.record_start()
    assert not scene.vitpose_mocap.is_recording


def test_stopping_the_connection_finishes_the_take(scene, free_port, sender):
    capture_rig(scene)
    settings = scene.vitpose_mocap
    settings.port = free_port
    bpy.ops.vitpose_mocap.start()
    bpy.ops.vitpose_mocap.record_start()
    rx = state.receiver(scene)
    for packet in _packets(3, 24.0, t0=time.time()):
        before = rx.received
        sender.sendto(encode(packet), ("127.0.0.1", free_port))
        wait_until(lambda before=before: rx.received > before)
        tick.apply_tick(scene)
    bpy.ops.vitpose_mocap.stop()
    assert not settings.is_recording and state.recording(scene) is None
    assert len(_hips_keys(bpy.data.actions[settings.last_take])) == 3


def test_session_import_skips_bad_lines_and_keys_from_timestamps(scene, tmp_path):
    rig = capture_rig(scene)
    scene.render.fps, scene.render.fps_base = 30, 1.0
    path = tmp_path / "session.jsonl"
    packets = _packets(16, 10.0)  # 1.5 s at 10 Hz
    lines = [json.dumps(p) for p in packets]
    lines[3], lines[9] = lines[9], lines[3]  # out of order in the file
    lines.insert(5, '{"v": 1, "seq": "broken"')
    lines.append('{"v": 1, "seq": 99, "timest')  # truncated by a killed recorder
    path.write_text("\n".join(lines) + "\n")
    fractions = []
    action, skipped = import_session(scene, rig, str(path), start_frame=1, progress=fractions.append)
    assert skipped == 2 and fractions == [0.0]
    keys = _hips_keys(action)
    assert [f for f, _ in keys] == list(range(1, 47))  # 1.5 s at 30 fps
    for f, x in keys:
        assert x == pytest.approx(SPEED * (f - 1) / 30, abs=0.01)


def test_session_import_operator_and_its_errors(scene, tmp_path):
    capture_rig(scene)
    settings = scene.vitpose_mocap
    empty = tmp_path / "empty.jsonl"
    empty.write_text("not json\n")
    with pytest.raises(RuntimeError, match="no valid pose packets"):
        bpy.ops.vitpose_mocap.import_session(filepath=str(empty))
    with pytest.raises(SessionImportError, match="not found"):
        import_session(scene, settings.target, str(tmp_path / "missing.jsonl"))
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(p) for p in _packets(4, 30.0)))
    assert bpy.ops.vitpose_mocap.import_session(filepath=str(good)) == {"FINISHED"}
    assert settings.last_take in bpy.data.actions


def test_a_hand_keyed_action_survives_record_and_save(scene, free_port, tmp_path):
    """Record unassigns the armature's Action so its keys do not fight the live pose; one with no other user (keyed
    by hand, no fake user) was then deleted when the file was saved."""
    rig = capture_rig(scene)
    rig.pose.bones[0].keyframe_insert("location", frame=1)
    hand = rig.animation_data.action
    hand.name = "HandKeyed"
    assert not hand.use_fake_user
    scene.vitpose_mocap.port = free_port
    assert bpy.ops.vitpose_mocap.start() == {"FINISHED"}
    assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    assert rig.animation_data.action is None
    bpy.ops.vitpose_mocap.record_stop()  # nothing arrived: no take
    bpy.ops.vitpose_mocap.stop()
    path = str(tmp_path / "kept.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    assert "HandKeyed" in bpy.data.actions


def test_an_import_that_cannot_drive_the_armature_says_so_and_changes_nothing(scene, tmp_path):
    """An armature no bone map fits: the import used to end in a Python traceback with the armature's Action
    already taken off."""
    from .helpers import make_armature

    prop = make_armature("Prop", ("a", "b"))
    own = bpy.data.actions.new("PropAnim")
    prop.animation_data_create().action = own
    scene.vitpose_mocap.target = prop
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(p) for p in _packets(4, 30.0)))
    with pytest.raises(SessionImportError, match="cannot drive 'Prop'"):
        import_session(scene, prop, str(good))
    assert prop.animation_data.action == own
    with pytest.raises(RuntimeError, match="cannot drive 'Prop'") as err:  # the operator's report, no traceback
        bpy.ops.vitpose_mocap.import_session(filepath=str(good))
    assert "Traceback" not in str(err.value)
    assert prop.animation_data.action == own


def test_renaming_the_armature_during_a_take_keeps_the_take(scene, free_port, sender):
    """Users rename "CaptureRig": the take, matched by name, stopped sampling and Stop Recording said "Nothing
    recorded", losing the poses taken before the rename too."""
    rig = capture_rig(scene)
    settings = scene.vitpose_mocap
    settings.port = free_port
    bpy.ops.vitpose_mocap.start()
    bpy.ops.vitpose_mocap.record_start()
    rx = state.receiver(scene)
    for i, packet in enumerate(_packets(6, 24.0, t0=time.time())):
        if i == 3:
            rig.name = "Hero"
        before = rx.received
        sender.sendto(encode(packet), ("127.0.0.1", free_port))
        wait_until(lambda before=before: rx.received > before)
        tick.apply_tick(scene)
    assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}
    bpy.ops.vitpose_mocap.stop()
    action = bpy.data.actions[settings.last_take]
    assert len(_hips_keys(action)) == 6 and rig.animation_data.action == action
