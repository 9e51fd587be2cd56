"""Recording several performers: one Action per bound armature per take, named by take and performer; the FBX
holds every armature of the take (re-imported: N armatures, each keyed), BVH one file per performer."""

from __future__ import annotations

import json
import re

import bpy
import pytest

from blender_addon.core import compat, performers, recorder

from .packets import make_packet

pytestmark = pytest.mark.bpy42
HIPS = 'pose.bones["hips"].location'
N = 12  # packets captured at 30 fps: one key per frame at the scene's 30 fps
GONE = (4, 5, 6)  # packets without performer 1


def _packet(seq: int, t0: float, ids: tuple[int, ...]) -> dict:
    packet = make_packet(seq, t0 + seq / 30.0, phase=0.02 * seq, people=2)
    packet["people"] = [p for p in packet["people"] if p["id"] in ids]
    return packet


def _start_take(scene, send, ids: tuple[int, ...] = (0, 1)) -> float:
    """Capture rigs for the people of `ids`, bound, and Record pressed at frame 1 (30 fps). Returns the take's
    first capture time: packet seq k is captured at t0 + k / 30."""
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.frame_set(1)
    t0 = 7000.0
    send(_packet(0, t0 - 1.0, ids))
    assert bpy.ops.vitpose_mocap.create_rigs_for_everyone() == {"FINISHED"}
    assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    return t0


def _record(scene, send, gone: tuple[int, ...] = GONE) -> list[str]:
    """Two performers bound to capture rigs, N packets recorded (performer 1 is missing from packets `gone`); the
    take's Action names."""
    t0 = _start_take(scene, send)
    for seq in range(N):
        send(_packet(seq + 1, t0, (0,) if seq in gone else (0, 1)))
    settings = scene.vitpose_mocap
    assert settings.recorded_samples == 2 * N - len(gone)
    assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}
    return [p.action.name for p in settings.take_parts]


def _keys(action, path: str = HIPS, index: int = 0) -> list[tuple[int, float]]:
    fc = compat.find_fcurve(action, path, index)
    assert fc is not None, (action.name, path)
    return [(round(k.co[0]), k.co[1]) for k in fc.keyframe_points]


def test_one_action_per_bound_armature_named_by_take_and_performer(scene, send):
    names = _record(scene, send)
    settings = scene.vitpose_mocap
    take = settings.last_take
    assert recorder.TAKE_PATTERN.match(take) and not take.endswith(("_P0", "_P1"))
    assert names == [f"{take}_P0", f"{take}_P1"]
    assert [(p.performer, p.armature.name) for p in settings.take_parts] == [("P0", "Performer 0"),
                                                                            ("P1", "Performer 1")]
    for part in settings.take_parts:
        assert part.armature.animation_data.action == part.action
        assert part.action.use_fake_user
    p0, p1 = (_keys(p.action) for p in settings.take_parts)
    # Both span the take on the frame grid (performer 1's gap is interpolated, not a hole).
    assert [f for f, _v in p0] == list(range(1, N + 1)) == [f for f, _v in p1]
    # Two performers, two motions: the second stands a metre away.
    assert max(abs(a - b) for (_f, a), (_g, b) in zip(p0, p1, strict=True)) > 0.5
    # The next take counts on from this one.
    number = int(recorder.TAKE_PATTERN.match(take).group(1))
    assert recorder.next_take_name().startswith(f"Take_{number + 1:03d}_")


def test_a_performer_who_enters_later_starts_later_in_the_take(scene, send):
    """One clock for the take: performer 1, missing from the first 4 packets, is keyed from frame 5 on."""
    _record(scene, send, gone=(0, 1, 2, 3))
    p0, p1 = (_keys(p.action) for p in scene.vitpose_mocap.take_parts)
    assert [f for f, _v in p0] == list(range(1, N + 1))
    assert [f for f, _v in p1] == list(range(5, N + 1))


def test_fbx_holds_every_armature_of_the_take_and_bvh_one_file_per_performer(scene, send, tmp_path):
    _record(scene, send)
    take = scene.vitpose_mocap.last_take
    assert bpy.ops.vitpose_mocap.export(format="FBX", filepath=str(tmp_path / "take.fbx")) == {"FINISHED"}
    assert bpy.ops.vitpose_mocap.export(format="BVH", filepath=str(tmp_path / "take.bvh")) == {"FINISHED"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.fbx", "take_P0.bvh", "take_P1.bvh"]
    for label in ("P0", "P1"):
        bvh = (tmp_path / f"take_{label}.bvh").read_text()
        assert bvh.count("JOINT") >= 12
        assert re.search(r"Frames:\s+(\d+)", bvh).group(1) == str(N)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(tmp_path / "take.fbx"), anim_offset=0.0, ignore_leaf_bones=True)
    armatures = sorted((o for o in bpy.data.objects if o.type == "ARMATURE"), key=lambda o: o.name)
    assert [o.name for o in armatures] == ["Performer 0", "Performer 1"]
    hips_x = []
    for obj in armatures:
        action = obj.animation_data.action
        assert action.name == f"{obj.name}|{take}"  # one animation stack, named after the take
        frames = {round(k.co[0]) for fc in compat.action_fcurves(action) for k in fc.keyframe_points}
        assert frames == set(range(1, N + 1)), obj.name
        bpy.context.scene.frame_set(N)
        hips_x.append((obj.matrix_world @ obj.pose.bones["hips"].head).x)
    # Each armature plays its own performer: person 1 stands a metre along +X of person 0.
    assert hips_x[1] - hips_x[0] == pytest.approx(1.0, abs=0.05)


def test_importing_a_session_bakes_every_bound_performer_into_one_take(scene, tmp_path):
    """A recorded two-person session (performer 1 enters at packet 4) imported with both ids bound: one Action per
    armature on one clock, like a live take; an id the session lacks drives nothing."""
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.frame_set(1)
    packets = [_packet(seq, 9000.0, (0,) if seq < 4 else (0, 1)) for seq in range(N)]
    path = tmp_path / "session.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in packets) + "\n")
    created = performers.create_rigs_for_everyone(bpy.context, _packet(0, 9000.0, (0, 1)), with_mesh=False)
    performers.bind(scene.vitpose_mocap, 7, created[0])  # a second binding onto Performer 0's rig...
    scene.vitpose_mocap.bindings[2].enabled = False  # ...disabled: not imported
    assert bpy.ops.vitpose_mocap.import_session(filepath=str(path)) == {"FINISHED"}
    settings = scene.vitpose_mocap
    assert [(p.performer, p.armature.name) for p in settings.take_parts] == [("P0", "Performer 0"),
                                                                            ("P1", "Performer 1")]
    p0, p1 = (_keys(p.action) for p in settings.take_parts)
    assert [f for f, _v in p0] == list(range(1, N + 1))
    assert [f for f, _v in p1] == list(range(5, N + 1))
    assert [p.action.name for p in settings.take_parts] == [f"{settings.last_take}_P0", f"{settings.last_take}_P1"]
    # Only ids the session lacks bound: a clear error.
    for binding in settings.bindings:
        binding.track_id += 100
    with pytest.raises(RuntimeError, match="no packet in .* shows a bound performer"):
        bpy.ops.vitpose_mocap.import_session(filepath=str(path))


def test_an_imported_session_hands_a_lost_performer_over_as_live_does(scene, tmp_path):
    """With Hand over lost performers on, the live take follows a performer the tracker found again under a new id;
    Import Session of the same session stopped that performer's Action where the first id ended."""
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.frame_set(1)
    # performer 1 (id 1) is lost after packet 3 and found again as id 5 from packet 5 on
    packets = [_packet(seq, 9000.0, (0, 1) if seq < 4 else (0,)) for seq in range(N)]
    for packet in packets[5:]:
        packet["people"].append(dict(_packet(packet["seq"], 9000.0, (0, 1))["people"][1], id=5))
    path = tmp_path / "session.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in packets) + "\n")
    settings = scene.vitpose_mocap
    performers.create_rigs_for_everyone(bpy.context, packets[0], with_mesh=False)
    settings.handover, settings.handover_after = True, 0
    assert bpy.ops.vitpose_mocap.import_session(filepath=str(path)) == {"FINISHED"}
    p0, p1 = (_keys(p.action) for p in settings.take_parts)
    assert [f for f, _v in p0] == list(range(1, N + 1))
    assert [f for f, _v in p1] == list(range(1, N + 1))  # ids 1 then 5: frames 5 (gap) interpolated
    assert [b.track_id for b in settings.bindings] == [0, 1]  # the bindings stay as the user set them
    settings.handover = False
    assert bpy.ops.vitpose_mocap.import_session(filepath=str(path)) == {"FINISHED"}
    assert [f for f, _v in _keys(settings.take_parts[1].action)] == list(range(1, 5))


def test_a_performer_not_lifted_for_a_few_frames_is_interpolated_not_held_then_jumped(scene, send, tmp_path):
    """A bound person sent without 3D (the lifter failed on those frames) was sampled at its held pose: the take
    stood still, then jumped. Now those frames are a gap, interpolated like a performer out of the shot."""
    t0 = _start_take(scene, send)
    for seq in range(1, N + 1):
        packet = _packet(seq, t0, (0, 1))
        if seq in (5, 6, 7, 8):
            packet["people"][1]["joints_3d"] = None
        send(packet)
    assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}
    _assert_moves_evenly(scene.vitpose_mocap.take_parts[1].action)
    # Import Session of the same kind of packets: the same gap (it recorded the held pose, then the jump)
    packets = [_packet(seq, t0, (0, 1)) for seq in range(1, N + 1)]
    for packet in packets[4:8]:
        packet["people"][1]["joints_3d"] = None
    path = tmp_path / "session.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in packets) + "\n")
    assert bpy.ops.vitpose_mocap.import_session(filepath=str(path)) == {"FINISHED"}
    _assert_moves_evenly(scene.vitpose_mocap.take_parts[1].action)


def _assert_moves_evenly(action) -> None:
    xs = [v for _f, v in _keys(action)]
    steps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    assert min(steps) > 0 and max(steps) < 2.5 * min(steps), xs  # the hips move on evenly across the gap


def test_a_deleted_performers_rig_leaves_the_others_exportable(scene, send, tmp_path):
    """One performer's rig deleted after the take: export fell back to the (empty) target and said to pick the
    armature that holds the take; the other performers could not be exported at all."""
    _record(scene, send)
    settings = scene.vitpose_mocap
    gone = settings.take_parts[1].armature
    bpy.data.objects.remove(gone)
    assert bpy.ops.vitpose_mocap.export(format="BVH", filepath=str(tmp_path / "take.bvh")) == {"FINISHED"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take_P0.bvh"]


def test_a_performer_bound_after_record_joins_the_take_later_in_it(scene, send):
    """Someone who walks in after Record is pressed gets a rig from Create Rigs for Everyone: it was driven live
    but never recorded (the take held only the performers bound at Record)."""
    t0 = _start_take(scene, send, (0,))
    for seq in range(1, 5):
        send(_packet(seq, t0, (0,)))
    assert bpy.ops.vitpose_mocap.create_rigs_for_everyone() == {"CANCELLED"}  # nobody new yet
    send(_packet(5, t0, (0, 1)))  # performer 1 walks in
    assert bpy.ops.vitpose_mocap.create_rigs_for_everyone() == {"FINISHED"}
    for seq in range(6, N + 1):
        send(_packet(seq, t0, (0, 1)))
    settings = scene.vitpose_mocap
    assert settings.recorded_samples == N + (N - 5)
    assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}
    take = settings.last_take
    assert [(p.performer, p.action.name) for p in settings.take_parts] == [("P0", f"{take}_P0"), ("P1", f"{take}_P1")]
    p0, p1 = (p.action for p in settings.take_parts)
    assert [f for f, _v in _keys(p0)] == list(range(1, N + 1))
    assert [f for f, _v in _keys(p1)] == list(range(6, N + 1))  # from the packet after its rig was made, on P0's clock
