"""The capture rig on real bpy: building it, IK mode (end effectors reach their targets after depsgraph
evaluation, elbows/knees bend towards the measured joints) and direct rotations."""

from __future__ import annotations

import math
import random

import bpy
import pytest
from mathutils import Euler, Matrix, Quaternion, Vector

from blender_addon.core import drive, hands, rig
from blender_addon.core import retarget as rt

LIMBS = (("upper_arm.L", rt.SHOULDER_L, rt.ELBOW_L), ("forearm.L", rt.ELBOW_L, rt.WRIST_L),
         ("upper_arm.R", rt.SHOULDER_R, rt.ELBOW_R), ("forearm.R", rt.ELBOW_R, rt.WRIST_R),
         ("thigh.L", rt.HIP_L, rt.KNEE_L), ("shin.L", rt.KNEE_L, rt.ANKLE_L),
         ("thigh.R", rt.HIP_R, rt.KNEE_R), ("shin.R", rt.KNEE_R, rt.ANKLE_R))


def posed_joints(props: rig.Proportions, seed: int, travel: tuple = (0.3, -0.2, -0.05),
                 swing: float = 0.9) -> list[Vector]:
    """A reachable pose: the rest skeleton with a rigid torso turn/lean, limbs swung by up to `swing`
    radians about each axis and bent at elbows/knees, and some travel."""
    rnd = random.Random(seed)
    rest = props.rest_joints()
    pelvis = rt.mid(rest, (rt.HIP_L, rt.HIP_R))
    torso = Euler((rnd.uniform(-0.3, 0.3), rnd.uniform(-0.2, 0.2), rnd.uniform(-0.8, 0.8))).to_matrix()
    move = Vector(travel)
    j = [pelvis + move + torso @ (p - pelvis) for p in rest]

    def limb(root: int, mid: int, end: int, rest_dir: Vector, hinge: Vector, upper: float, lower: float) -> None:
        turn = Euler([rnd.uniform(-swing, swing) for _ in range(3)]).to_matrix()
        bend = Quaternion(hinge, rnd.uniform(0.3, 1.8)).to_matrix()
        j[mid] = j[root] + torso @ turn @ rest_dir * upper
        j[end] = j[mid] + torso @ turn @ bend @ rest_dir * lower

    limb(rt.SHOULDER_L, rt.ELBOW_L, rt.WRIST_L, Vector((1, 0, 0)), Vector((0, 0, -1)), props.upper_arm, props.forearm)
    limb(rt.SHOULDER_R, rt.ELBOW_R, rt.WRIST_R, Vector((-1, 0, 0)), Vector((0, 0, 1)), props.upper_arm, props.forearm)
    limb(rt.HIP_L, rt.KNEE_L, rt.ANKLE_L, Vector((0, 0, -1)), Vector((1, 0, 0)), props.thigh, props.shin)
    limb(rt.HIP_R, rt.KNEE_R, rt.ANKLE_R, Vector((0, 0, -1)), Vector((1, 0, 0)), props.thigh, props.shin)
    return j


def make_packet(joints: list[Vector] | None, rotations: list | None = None) -> tuple[dict, dict]:
    person = {"id": 0, "bbox": [0, 0, 100, 200], "keypoints": [[0.0, 0.0]] * 17, "scores": [1.0] * 17,
              "joints_3d": [list(p) for p in joints] if joints is not None else None}
    if rotations is not None:
        person["rotations"] = [list(q) for q in rotations]
    packet = {"v": 2 if rotations is not None else 1, "seq": 0, "timestamp": 1.0, "sent": 1.0, "frame": 0,
              "source": "test", "skeleton": "coco17", "image_size": [640, 480], "people": [person]}
    return person, packet


def evaluated(obj: bpy.types.Object) -> bpy.types.Object:
    depsgraph = bpy.context.evaluated_depsgraph_get()
    depsgraph.update()
    return obj.evaluated_get(depsgraph)


def bone_dir(ev: bpy.types.Object, name: str) -> Vector:
    pb = ev.pose.bones[name]
    m = ev.matrix_world
    return (m @ pb.tail - m @ pb.head).normalized()


@pytest.fixture
def capture(scene):
    drive.clear_cache()
    obj = rig.create_capture_rig(bpy.context)
    scene.vitpose_mocap.target = obj
    return obj


@pytest.mark.bpy42
def test_capture_rig_has_canonical_bones_constraints_targets_and_body(capture):
    obj = capture
    assert set(rt.CANONICAL_BONES) <= set(obj.data.bones.keys())
    ik = {pb.name: c for pb in obj.pose.bones for c in pb.constraints if c.type == "IK"}
    assert set(ik) == {"forearm.L", "forearm.R", "shin.L", "shin.R"}
    assert all(c.chain_count == 2 and c.target and c.pole_target for c in ik.values())
    tracks = {pb.name for pb in obj.pose.bones for c in pb.constraints if c.type == "DAMPED_TRACK"}
    assert tracks == {"spine", "chest", "clavicle.L", "clavicle.R", "neck", "head"}
    body = next(c for c in obj.children if c.type == "MESH")
    assert set(body.vertex_groups.keys()) == set(rt.RIG_BONES) | set(hands.HAND_SLOTS)
    assert body.modifiers[0].object == obj
    for name, direction in rt.REST_DIRECTIONS.items():  # rest frames are the canonical ones (roll 0)
        rest = obj.data.bones[name].matrix_local.to_3x3()
        assert (rest @ Vector((0, 1, 0)) - Vector(direction)).length < 1e-5
        assert max(abs(a - b) for ra, rb in zip(rest, rt.REST_FRAMES[name], strict=True)
                   for a, b in zip(ra, rb, strict=True)) < 1e-5


@pytest.mark.bpy42
def test_capture_rig_sized_from_packet_joints(scene):
    props = rig.Proportions(upper_arm=0.31, forearm=0.24, thigh=0.47, shin=0.40, torso=0.55, shoulder_half=0.2)
    joints = posed_joints(props, seed=3)
    obj = rig.create_capture_rig(bpy.context, [list(p) for p in joints], with_mesh=False)
    bones = obj.data.bones
    for name, length in (("upper_arm.L", 0.31), ("forearm.R", 0.24), ("thigh.L", 0.47), ("shin.R", 0.40),
                         ("clavicle.L", 0.2)):
        assert bones[name].length == pytest.approx(length, abs=1e-4)
    # hips, lower spine and chest stack up to the mid-shoulder point
    assert sum(bones[b].length for b in ("hips", "spine", "chest")) == pytest.approx(0.55, abs=1e-4)
    assert bones["chest"].tail_local.z - bones["hips"].head_local.z == pytest.approx(0.55, abs=1e-4)
    assert bones["upper_arm.L"].head_local.x == pytest.approx(0.2, abs=1e-4)
    with pytest.raises(ValueError, match="standing person"):
        rig.create_capture_rig(bpy.context, [[0.0, 0.0, 0.0]] * 17)


@pytest.mark.bpy42
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ik_mode_reaches_targets_and_bends_the_right_way(capture, scene, seed):
    obj = capture
    obj.location = (1.0, 2.0, 0.0)  # the packet frame sits at the armature's origin
    props = rig.Proportions()
    joints = posed_joints(props, seed)
    drive.apply_person(scene, obj, *make_packet(joints))
    ev = evaluated(obj)
    m = ev.matrix_world
    offset = Vector((1.0, 2.0, 0.0))
    for bone, joint in (("forearm.L", rt.WRIST_L), ("forearm.R", rt.WRIST_R),
                        ("shin.L", rt.ANKLE_L), ("shin.R", rt.ANKLE_R)):
        assert (m @ ev.pose.bones[bone].tail - (joints[joint] + offset)).length < 0.01, bone
    for bone, joint in (("forearm.L", rt.ELBOW_L), ("forearm.R", rt.ELBOW_R),
                        ("shin.L", rt.KNEE_L), ("shin.R", rt.KNEE_R)):  # bend plane from the poles
        assert (m @ ev.pose.bones[bone].head - (joints[joint] + offset)).length < 0.02, bone
    neck_base = rt.mid(joints, (rt.SHOULDER_L, rt.SHOULDER_R))
    assert (m @ ev.pose.bones["chest"].tail - (neck_base + offset)).length < 0.01
    for bone, joint in (("clavicle.L", rt.SHOULDER_L), ("clavicle.R", rt.SHOULDER_R)):
        assert (m @ ev.pose.bones[bone].tail - (joints[joint] + offset)).length < 0.01, bone
    pelvis = rt.mid(joints, (rt.HIP_L, rt.HIP_R))
    assert (m @ ev.pose.bones["hips"].head - (pelvis + offset)).length < 1e-4


@pytest.mark.bpy42
def test_direct_mode_from_joints_matches_bone_directions(capture, scene):
    obj = capture
    scene.vitpose_mocap.rig.drive_mode = "DIRECT"
    joints = posed_joints(rig.Proportions(), seed=5)
    drive.apply_person(scene, obj, *make_packet(joints))
    ev = evaluated(obj)
    assert all(c.mute for pb in obj.pose.bones for c in pb.constraints)
    for bone, a, b in LIMBS:
        want = (joints[b] - joints[a]).normalized()
        assert math.degrees(bone_dir(ev, bone).angle(want)) < 0.5, bone
    spine = rt.mid(joints, (rt.SHOULDER_L, rt.SHOULDER_R)) - rt.mid(joints, (rt.HIP_L, rt.HIP_R))
    assert math.degrees(bone_dir(ev, "spine").angle(spine)) < 0.5
    # Back to IK: constraints come back on.
    scene.vitpose_mocap.rig.drive_mode = "IK"
    drive.apply_person(scene, obj, *make_packet(joints))
    assert not any(c.mute for pb in obj.pose.bones for c in pb.constraints)


@pytest.mark.bpy42
def test_direct_mode_uses_v2_rotations(capture, scene):
    obj = capture
    scene.vitpose_mocap.rig.drive_mode = "DIRECT"
    rotations = [(1.0, 0.0, 0.0, 0.0)] * 12
    # upper_arm.L rest frame: X=-Z, Y=+X, Z=-Y; 90 degrees about its local X (the hinge) swings it
    # from +X to -Y (forward).
    rotations[4] = tuple(Quaternion((1, 0, 0), math.pi / 2))
    # hips: a world-frame yaw of 90 degrees turns the whole body to face +X.
    rotations[0] = tuple(Quaternion((0, 0, 1), math.pi / 2))
    drive.apply_person(scene, obj, *make_packet(None, rotations))
    ev = evaluated(obj)
    yaw = Matrix.Rotation(math.pi / 2, 3, "Z")
    assert (bone_dir(ev, "upper_arm.L") - yaw @ Vector((0, -1, 0))).length < 1e-3
    assert (bone_dir(ev, "upper_arm.R") - yaw @ Vector((-1, 0, 0))).length < 1e-3
    assert (bone_dir(ev, "thigh.L") - Vector((0, 0, -1))).length < 1e-3
    # The round trip through local rotations reproduces the joints' directions.
    joints = posed_joints(rig.Proportions(), seed=8)
    rotations = rt.local_rotations(rt.deltas_from_joints(joints))
    drive.apply_person(scene, obj, *make_packet(None, rotations))
    ev = evaluated(obj)
    for bone, a, b in LIMBS:
        assert math.degrees(bone_dir(ev, bone).angle(joints[b] - joints[a])) < 0.5, bone


@pytest.mark.parametrize("seed", [21, 22])
def test_direct_mode_with_the_pose_servers_rotations(capture, scene, seed):
    """Interop: protocol v2 rotations from pose_server.ik reproduce the joints' bone directions
    (.venv only: the server needs numpy/scipy, which the Blender 4.2 environment lacks). Limbs swing
    less here so the server's joint limits (leg twist 50 degrees) do not clamp the pose."""
    import numpy as np

    from pose_server.ik import solve_rotations

    scene.vitpose_mocap.rig.drive_mode = "DIRECT"
    joints = posed_joints(rig.Proportions(), seed, swing=0.45)
    rotations = solve_rotations(np.array([list(p) for p in joints])).tolist()
    drive.apply_person(scene, capture, *make_packet(joints, rotations))
    ev = evaluated(capture)
    for bone, a, b in LIMBS:
        assert math.degrees(bone_dir(ev, bone).angle(joints[b] - joints[a])) < 2.0, bone
    neck = rt.mid(joints, (rt.EAR_L, rt.EAR_R)) - rt.mid(joints, (rt.SHOULDER_L, rt.SHOULDER_R))
    assert math.degrees(bone_dir(ev, "neck").angle(neck)) < 2.0


def test_create_capture_rig_operator_sizes_from_last_person(scene):
    drive.clear_cache()
    props = rig.Proportions(upper_arm=0.33)
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    drive.apply_person(scene, obj, *make_packet(posed_joints(props, seed=1)))
    assert bpy.ops.vitpose_mocap.create_capture_rig(from_stream=True) == {"FINISHED"}
    new = scene.vitpose_mocap.target
    assert new != obj and rig.is_capture_rig(new)
    assert new.data.bones["upper_arm.R"].length == pytest.approx(0.33, abs=1e-4)
    assert [e.target for e in scene.vitpose_mocap.rig.bone_map][:2] == ["hips", "spine"]


def glb_json(path) -> dict:
    """The JSON chunk of a .glb file."""
    import json
    import struct

    data = path.read_bytes()
    assert data[:4] == b"glTF"
    (length,) = struct.unpack("<I", data[12:16])
    return json.loads(data[20:20 + length])


def skin_joints(gltf: dict) -> set[str]:
    return {gltf["nodes"][i]["name"] for i in gltf["skins"][0]["joints"]}


@pytest.mark.bpy42
def test_export_default_model_writes_a_skinned_glb(scene, tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "export_default_model.py"
    spec = importlib.util.spec_from_file_location("export_default_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gltf = glb_json(module.export(tmp_path / "model.glb"))
    joints = skin_joints(gltf)
    assert joints == set(rt.RIG_BONES) | set(hands.HAND_SLOTS)
    assert len(gltf["meshes"]) == 1
    assert not any("pole" in n.get("name", "") for n in gltf["nodes"])  # IK empties stay out


@pytest.mark.bpy42
def test_the_shipped_default_model_is_the_current_capture_rig(scene):
    """resources/models/default_model.glb is the capture rig (README): regenerate it with
    scripts/export_default_model.py when the rig's bones change."""
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "resources" / "models" / "default_model.glb"
    obj = rig.create_capture_rig(bpy.context, with_mesh=False)
    assert skin_joints(glb_json(shipped)) == {b.name for b in obj.data.bones}


@pytest.mark.bpy42
def test_capture_rig_keeps_each_sides_limb_lengths(scene):
    """Real performers (and mocap) are a few mm asymmetric; an IK chain of averaged lengths bends the elbow wrong."""
    props = rig.Proportions(upper_arm_skew=0.006, forearm_skew=-0.004, thigh_skew=-0.0025, shin_skew=0.003)
    turn = Matrix.Rotation(0.7, 4, "Z") @ Matrix.Translation((0.2, -0.4, 0.0))
    joints = [turn @ p for p in props.rest_joints()]
    measured = rig.Proportions.from_joints([list(p) for p in joints])
    for field in ("upper_arm_skew", "forearm_skew", "thigh_skew", "shin_skew"):
        assert getattr(measured, field) == pytest.approx(getattr(props, field), abs=1e-5), field
    obj = rig.create_capture_rig(bpy.context, [list(p) for p in joints], with_mesh=False)
    bones = obj.data.bones
    for bone, a, b in LIMBS:
        assert bones[bone].length == pytest.approx((joints[b] - joints[a]).length, abs=1e-4), bone


@pytest.mark.bpy42
def test_direct_mode_undoes_the_rounding_of_v2_rotations(capture, scene):
    """Protocol v2 sends quaternions with 3 decimals (pose_server.protocol): about 0.1 degree per bone, compounded
    down a chain, i.e. millimetres of jitter at the feet. With the packet's joints at hand Direct mode snaps
    the limbs back onto them, as long as a rotation was only rounded (within 1 degree)."""
    scene.vitpose_mocap.rig.drive_mode = "DIRECT"
    worst = 0.0
    for seed in (71, 72, 73):
        joints = posed_joints(rig.Proportions(), seed=seed)
        rotations = [[round(c, 3) for c in q] for q in rt.local_rotations(rt.deltas_from_joints(joints))]
        drive.apply_person(scene, capture, *make_packet(joints, rotations))
        ev = evaluated(capture)
        for bone, a, b in LIMBS:
            worst = max(worst, math.degrees(bone_dir(ev, bone).angle(joints[b] - joints[a])))
    assert worst < 0.01, worst
    # A rotation further off than rounding (the server limited it) is kept as sent.
    joints = posed_joints(rig.Proportions(), seed=74)
    deltas = rt.deltas_from_joints(joints)
    deltas["shin.L"] = Matrix.Rotation(math.radians(5), 3, "X") @ deltas["shin.L"]
    drive.apply_person(scene, capture, *make_packet(joints, rt.local_rotations(deltas)))
    ev = evaluated(capture)
    off = math.degrees(bone_dir(ev, "shin.L").angle(joints[rt.ANKLE_L] - joints[rt.KNEE_L]))
    assert off > 2.0, off
