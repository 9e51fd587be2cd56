"""Takes: visual keying, resampling from capture timestamps, Action layout on 4.2 and 5.x, key reduction."""

from __future__ import annotations

import datetime
import math

import bpy
import pytest

from blender_addon.core import compat, recorder

from .helpers import make_armature

pytestmark = pytest.mark.bpy42


def _keys(action, path, index):
    fc = compat.find_fcurve(action, path, index)
    assert fc is not None, f"no F-Curve for {path}[{index}]"
    return [tuple(kp.co) for kp in fc.keyframe_points]


def test_take_names_count_up_and_carry_the_date(scene):
    now = datetime.datetime(2026, 11, 25, 14, 32)
    assert recorder.next_take_name(now) == "Take_001_2026-11-25_1432"
    bpy.data.actions.new("Take_007_2026-01-01_0000")
    assert recorder.next_take_name(now) == "Take_008_2026-11-25_1432"


def test_keys_sit_on_the_scene_frame_grid_from_capture_timestamps(scene):
    scene.render.fps, scene.render.fps_base = 24, 1.0
    arm = make_armature()
    root = arm.pose.bones["root"]
    take = recorder.TakeRecorder(arm, recorder.scene_fps(scene), start_frame=10, name="Take_t")
    # Irregular 20-30 Hz capture over 1.0 s; location x = 2 * t so the expected key values are known.
    t0 = 1000.0
    stamps = [0.0, 0.05, 0.08, 0.13, 0.2, 0.24, 0.31, 0.4, 0.45, 0.52, 0.6, 0.66, 0.7, 0.78, 0.85, 0.9, 0.97, 1.0]
    for dt in stamps:
        root.location = (2.0 * dt, 0.0, 0.0)
        recorder.evaluated_view_layer(scene)
        take.sample(arm, t0 + dt)
    action = take.finish(arm)
    assert action.name == "Take_t"
    assert arm.animation_data.action == action
    keys = _keys(action, 'pose.bones["root"].location', 0)
    assert [f for f, _ in keys] == list(range(10, 10 + 25))  # 1.0 s at 24 fps: frames 10..34
    for f, v in keys:
        assert v == pytest.approx(2.0 * (f - 10) / 24.0, abs=1e-5)
    # Every bone gets location, rotation and scale channels.
    paths = {(fc.data_path, fc.array_index) for fc in compat.action_fcurves(action)}
    assert len(paths) == 2 * (3 + 4 + 3)


def test_arrival_order_does_not_matter(scene):
    arm = make_armature()
    take = recorder.TakeRecorder(arm, 30.0, start_frame=1, name="T")
    for dt in (0.5, 0.0, 0.25, 0.25):
        arm.pose.bones["root"].location = (dt, 0.0, 0.0)
        recorder.evaluated_view_layer(scene)
        take.sample(arm, dt)
    frames, rows = take.resample()
    assert frames == list(range(1, 17))
    assert rows[-1][0] == pytest.approx(0.5)
    assert rows[3][0] == pytest.approx(0.1)


def test_visual_keying_records_what_constraints_produce(scene):
    arm = make_armature()
    target = bpy.data.objects.new("Target", None)
    scene.collection.objects.link(target)
    con = arm.pose.bones["root"].constraints.new("COPY_LOCATION")
    con.target = target
    take = recorder.TakeRecorder(arm, 24.0, start_frame=0, name="Visual")
    for i in range(3):
        target.location = (0.0, 0.5 * i, 0.0)
        recorder.evaluated_view_layer(scene)
        take.sample(arm, i / 24.0)
    action = take.finish(arm)
    # The bone's own location stayed zero; the keys hold the constrained result (bone Y runs along world Z,
    # so world +Y shows up on a local axis), proving the evaluated pose was read.
    ys = [max(abs(v) for v in row[0:3]) for row in take.resample()[1]]
    assert ys == pytest.approx([0.0, 0.5, 1.0], abs=1e-5)
    assert any(abs(v) > 0.9 for _, v in _keys(action, 'pose.bones["root"].location', 2)
               + _keys(action, 'pose.bones["root"].location', 1))


def test_euler_bones_are_keyed_in_their_own_mode_without_flips(scene):
    arm = make_armature()
    pb = arm.pose.bones["child"]
    pb.rotation_mode = "XYZ"
    take = recorder.TakeRecorder(arm, 10.0, start_frame=0, name="Euler")
    angles = [i * 0.4 for i in range(12)]  # goes past pi: must stay continuous
    for i, a in enumerate(angles):
        pb.rotation_euler = (0.0, 0.0, a)
        recorder.evaluated_view_layer(scene)
        take.sample(arm, i / 10.0)
    action = take.finish(arm)
    z = [v for _, v in _keys(action, 'pose.bones["child"].rotation_euler', 2)]
    assert z == pytest.approx(angles, abs=1e-4)
    assert compat.find_fcurve(action, 'pose.bones["child"].rotation_quaternion', 0) is None


def test_key_reduction_keeps_the_curve_within_tolerance(scene):
    arm = make_armature()
    pb = arm.pose.bones["root"]
    take = recorder.TakeRecorder(arm, 24.0, start_frame=0, name="Reduced")
    for i in range(49):
        t = i / 24.0
        pb.location = (t if t < 1.0 else 1.0, math.sin(t * 3.0), 0.0)  # a ramp then flat; and a sine
        recorder.evaluated_view_layer(scene)
        take.sample(arm, t)
    full = recorder.TakeRecorder.resample(take)[1]
    action = take.finish(arm, reduce=True, tolerance=1e-3)
    x = compat.find_fcurve(action, 'pose.bones["root"].location', 0)
    y = compat.find_fcurve(action, 'pose.bones["root"].location', 1)
    assert [kp.co[0] for kp in x.keyframe_points] == [0, 24, 48]
    assert 3 < len(y.keyframe_points) < 49
    for f in range(49):
        assert x.evaluate(f) == pytest.approx(full[f][0], abs=1e-3)
        assert y.evaluate(f) == pytest.approx(full[f][1], abs=1.01e-3)
    # Constant channels collapse to their two ends.
    assert len(compat.find_fcurve(action, 'pose.bones["child"].scale', 0).keyframe_points) == 2


def test_reduce_keys_on_plain_lists():
    assert recorder.reduce_keys([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], 1e-6) == [0, 4]
    assert recorder.reduce_keys([0, 1, 2, 3, 4], [0, 1, 2, 1, 0], 1e-6) == [0, 2, 4]
    assert recorder.reduce_keys([0, 1], [5, 6], 0.1) == [0, 1]
