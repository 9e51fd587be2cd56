"""Hands in a take (real bpy 4.2 and 5.0): v4 packets recorded live key the capture rig's hand bones, and the
take's FBX and BVH carry those bones, keyed: re-imported, every hand bone turns over the take as in Blender."""

from __future__ import annotations

import math

import bpy
import pytest
from mathutils import Matrix, Quaternion, Vector

from blender_addon.core import compat, export, hands

from .helpers import capture_rig
from .packets import make_packet
from .test_hands import FIXTURE
from .test_rig import evaluated

pytestmark = pytest.mark.bpy42
N = 8  # packets at 30 fps: keys on frames 1..N
FRAMES = (1, N // 2, N)


def hands_at(seq: int) -> list:
    """The fixture's hands, turning from the canonical rest (first packet) to the fixture's pose (last)."""
    t = seq / (N - 1)
    return [[list(Quaternion().slerp(Quaternion(q), t)) for q in hand] for hand in FIXTURE["hands"]]


def v4_packet(seq: int, t0: float) -> dict:
    packet = make_packet(seq, t0 + seq / 30.0)
    person = packet["people"][0]
    person["keypoints"] = person["keypoints"] + [[320.0, 240.0]] * 116
    person["scores"] = person["scores"] + [0.9] * 116
    person["hands"] = hands_at(seq)
    packet["v"], packet["skeleton"] = 4, "wholebody133"
    return packet


def angle_deg(m: Matrix) -> float:
    return math.degrees(m.to_quaternion().angle)


def motion(scene, obj: bpy.types.Object) -> dict[tuple[int, str], Matrix]:
    """(frame, hand bone) -> the bone's world rotation since frame 1, relative to its parent's: independent of
    bone rolls and rest poses (each importer picks its own), so an exported and re-imported take compares."""
    rotations = {}
    for f in FRAMES:
        scene.frame_set(f)
        ev = evaluated(obj)
        world = ev.matrix_world.to_3x3().normalized()
        rotations[f] = {n: world @ ev.pose.bones[n].matrix.to_3x3().normalized()
                        for n in (*hands.HAND_SLOTS, "forearm.L", "forearm.R")}
    out = {}
    for f in FRAMES:
        delta = {n: m @ rotations[1][n].transposed() for n, m in rotations[f].items()}
        for slot in hands.HAND_SLOTS:
            out[f, slot] = delta[hands.PARENTS[slot]].transposed() @ delta[slot]
    return out


@pytest.fixture
def hand_take(scene, send):
    """A take of N v4 packets on a capture rig: (the rig, its take's Action)."""
    obj = capture_rig(scene)
    scene.render.fps, scene.render.fps_base = 30, 1.0
    scene.frame_set(1)
    assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    for seq in range(N):
        send(v4_packet(seq, 8000.0))
    assert scene.vitpose_mocap.recorded_samples == N
    assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}
    return obj, bpy.data.actions[scene.vitpose_mocap.last_take]


def test_a_take_keys_the_hand_bones(hand_take):
    _obj, action = hand_take
    for slot in hands.HAND_SLOTS:
        assert compat.find_fcurve(action, f'pose.bones["{slot}"].rotation_quaternion', 0) is not None, slot
    fc = compat.find_fcurve(action, 'pose.bones["index.02.L"].rotation_quaternion', 0)
    keys = [(round(k.co[0]), k.co[1]) for k in fc.keyframe_points]
    assert [f for f, _w in keys] == list(range(1, N + 1))
    # index.02 bends from straight (w = 1) by the packets' angle, key by key
    want = [abs(Quaternion(hands_at(seq)[0][5]).w) for seq in range(N)]
    assert [w for _f, w in keys] == pytest.approx(want, abs=1e-3) and want[-1] < math.cos(math.radians(5))


def ends(scene, obj: bpy.types.Object) -> dict[tuple[int, str, str], Vector]:
    """(frame, hand bone, head/tail) -> world position (the palm's end: it has five children, each format sizes it
    its own way)."""
    out = {}
    for f in FRAMES:
        scene.frame_set(f)
        ev = evaluated(obj)
        for slot in hands.HAND_SLOTS:
            pb = ev.pose.bones[slot]
            out[f, slot, "head"] = ev.matrix_world @ pb.head
            if slot not in hands.PALM_SLOTS:
                out[f, slot, "tail"] = ev.matrix_world @ pb.tail
    return out


def reimport(path, fmt: str) -> bpy.types.Object:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if fmt == "FBX":
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0, ignore_leaf_bones=True)
    else:
        bpy.ops.import_anim.bvh(filepath=str(path), frame_start=1, use_fps_scale=False, axis_forward="Y", axis_up="Z")
    imported = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    assert set(hands.HAND_SLOTS) <= set(imported.data.bones.keys())
    keyed = {fc.data_path for fc in compat.action_fcurves(imported.animation_data.action)}
    assert all(any(f'"{slot}"' in p and "rotation" in p for p in keyed) for slot in hands.HAND_SLOTS)
    return imported


@pytest.mark.parametrize("fmt", ["FBX", "BVH"])
def test_the_exported_take_carries_the_keyed_hand_bones(scene, hand_take, tmp_path, fmt):
    """Re-imported (BVH: with Blender's Z-up axes, as the exporter writes them), every hand bone's joints lie
    where they did in Blender, and every hand bone turns from its parent over the take as it did there."""
    obj, action = hand_take
    with export.playing_takes(scene, [(obj, action)]):  # what the exporters see: the take, constraints muted
        want, want_ends = motion(scene, obj), ends(scene, obj)
    curl = math.degrees(Quaternion(FIXTURE["hands"][0][5]).angle)  # index.02.L from index.01.L at the end
    assert angle_deg(want[N, "index.02.L"]) == pytest.approx(curl, abs=0.5) and curl > 10
    tip = want_ends[N, "index.03.L", "tail"] - want_ends[1, "index.03.L", "tail"]
    assert tip.length > 0.02  # the fingertip travelled
    path = tmp_path / f"take.{fmt.lower()}"
    assert bpy.ops.vitpose_mocap.export(format=fmt, filepath=str(path)) == {"FINISHED"}
    imported = reimport(path, fmt)
    got_ends = ends(bpy.context.scene, imported)
    far = {k: round((want_ends[k] - got_ends[k]).length * 100, 3) for k in want_ends}
    assert max(far.values()) < 0.05, {k: v for k, v in far.items() if v >= 0.05}  # cm
    got = motion(bpy.context.scene, imported)
    errors = {k: angle_deg(want[k].transposed() @ got[k]) for k in want}
    assert max(errors.values()) < 0.5, {k: round(v, 2) for k, v in errors.items() if v >= 0.5}
