"""Analytic IK: rest pose, round trips through forward kinematics, joint limits, quaternion conventions."""

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from pose_server.ik import JOINT_LIMITS_DEG, fk_joints, forward_rotations, solve_rotations
from pose_server.lift.skeleton3d import CANONICAL_BONES, REST_JOINTS, REST_ROTATIONS, J, bone_endpoints
from pose_server.lift.synthetic import walk

B = {b: i for i, b in enumerate(CANONICAL_BONES)}


def quats_from_rotvec(rv: np.ndarray) -> np.ndarray:
    q = Rotation.from_rotvec(rv).as_quat()
    return np.concatenate([q[:, 3:], q[:, :3]], axis=1)


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """Local rotations inside the IK's limits: trunk within its cones, hinge-only elbows/knees bent 15-120 deg."""
    rv = rng.normal(0, 0.25, (12, 3))
    rv[B["hips"]] = Rotation.from_euler("zx", [rng.uniform(-np.pi, np.pi), rng.uniform(-0.3, 0.3)]).as_rotvec()
    for hinge in ("forearm.L", "forearm.R", "shin.L", "shin.R"):
        rv[B[hinge]] = [rng.uniform(0.25, 2.1), 0.0, 0.0]
    return quats_from_rotvec(rv)


def test_rest_pose_is_identity():
    q = solve_rotations(REST_JOINTS)
    assert q.shape == (12, 4) and q.dtype == np.float32
    np.testing.assert_allclose(q, np.tile([1, 0, 0, 0], (12, 1)), atol=1e-6)
    np.testing.assert_allclose(fk_joints(q), REST_JOINTS, atol=1e-9)
    world = forward_rotations(q)
    for b, name in enumerate(CANONICAL_BONES):
        np.testing.assert_allclose(world[b], REST_ROTATIONS[name], atol=1e-6)


def test_rest_frames_follow_blender_convention():
    """Local Y runs head to tail; elbows and knees hinge about local X (flexion = +X rotation)."""
    ends = bone_endpoints(REST_JOINTS)
    for name, (head, tail) in ends.items():
        y = REST_ROTATIONS[name][:, 1]
        np.testing.assert_allclose(y, (tail - head) / np.linalg.norm(tail - head), atol=1e-9)
        assert np.linalg.det(REST_ROTATIONS[name]) == pytest.approx(1.0)
    # flexing the left elbow by +90 deg about local X swings the forearm forwards (-Y)
    q = np.tile([1.0, 0, 0, 0], (12, 1))
    q[B["forearm.L"]] = quats_from_rotvec(np.array([[np.pi / 2, 0, 0]]))[0]
    wrist = fk_joints(q)[J["l_wrist"]] - REST_JOINTS[J["l_elbow"]]
    np.testing.assert_allclose(wrist / np.linalg.norm(wrist), [0, -1, 0], atol=1e-9)
    # flexing the knee swings the shin backwards (+Y)
    q[B["shin.L"]] = quats_from_rotvec(np.array([[np.pi / 2, 0, 0]]))[0]
    ankle = fk_joints(q)[J["l_ankle"]] - REST_JOINTS[J["l_knee"]]
    np.testing.assert_allclose(ankle / np.linalg.norm(ankle), [0, 1, 0], atol=1e-9)


def test_round_trip_random_poses():
    rng = np.random.default_rng(1)
    for _ in range(100):
        q = random_pose(rng)
        joints = fk_joints(q, pelvis=rng.normal(0, 1, 3))
        q2 = solve_rotations(joints)
        np.testing.assert_allclose(np.linalg.norm(q2, axis=1), 1.0, atol=1e-5)
        assert np.all(q2[:, 0] >= 0)  # canonical hemisphere
        np.testing.assert_allclose(fk_joints(q2, pelvis=joints[[J["l_hip"], J["r_hip"]]].mean(0)), joints, atol=2e-3)


def test_bone_directions_reproduced_on_a_walk():
    joints, _ = walk(seconds=2.0, height=1.6)
    for frame in joints[::5]:
        world = forward_rotations(solve_rotations(frame))
        for name, (head, tail) in bone_endpoints(frame).items():
            if name in ("hips", "head"):
                continue  # their Y is not a joint direction
            d = (tail - head) / np.linalg.norm(tail - head)
            angle = np.degrees(np.arccos(np.clip(world[B[name]][:, 1] @ d, -1, 1)))
            assert angle < 0.5, name


def test_knee_cannot_hyperextend_and_elbow_flex_is_capped():
    joints = REST_JOINTS.copy()
    joints[J["l_knee"]] = [0.095, 0.0, 0.49]
    joints[J["l_ankle"]] = [0.095, -0.3, 0.2]  # shin bent forwards: a knee bending the wrong way
    joints[J["r_elbow"]] = [-0.47, 0.0, 1.44]
    joints[J["r_wrist"]] = [-0.22, -0.005, 1.44]  # forearm folded back onto the upper arm (180 deg)
    q = solve_rotations(joints)
    world = forward_rotations(q)
    shin = Rotation.from_quat(np.roll(q[B["shin.L"]], -1))
    forearm = Rotation.from_quat(np.roll(q[B["forearm.R"]], -1))
    # hinge about local X only, inside [0, max flexion]
    for rot, limit in ((shin, JOINT_LIMITS_DEG["knee_flex"]), (forearm, JOINT_LIMITS_DEG["elbow_flex"])):
        rv = rot.as_rotvec()
        assert abs(rv[1]) < 1e-6 and abs(rv[2]) < 1e-6
        assert -1e-6 <= np.degrees(rv[0]) <= limit + 1e-4
    assert np.degrees(forearm.magnitude()) == pytest.approx(JOINT_LIMITS_DEG["elbow_flex"], abs=1e-3)
    # the hyperextended knee is limited by the thigh's twist limit: the shin never points forwards of the thigh
    thigh_z = world[B["thigh.L"]][:, 2]
    shin_y = world[B["shin.L"]][:, 1]
    assert shin_y @ thigh_z >= -1e-6


def test_bad_input_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match=r"\(17, 3\)"):
        solve_rotations(np.zeros((16, 3)))
    bad = REST_JOINTS.copy()
    bad[J["l_elbow"]] = bad[J["l_shoulder"]]
    with pytest.raises(ValueError, match="coincide"):
        solve_rotations(bad)


def test_shared_hip_convention_keeps_thigh_tops_on_the_hips_and_straight_knees_straight():
    """tests/data/hip_convention.json, also checked by the add-on (tests/addon/test_retarget.py): a hip line tilted
    against the spine. The hips keep the hip line exactly, so the thigh tops carried by the hips bone land on
    the hip joints; straight legs get no knee flexion."""
    import json
    from pathlib import Path

    doc = json.loads((Path(__file__).resolve().parents[1] / "data" / "hip_convention.json").read_text())
    p = np.array(doc["joints_3d"])
    q = solve_rotations(p)
    world = forward_rotations(q)
    pelvis = 0.5 * (p[J["l_hip"]] + p[J["r_hip"]])
    half = 0.5 * np.linalg.norm(p[J["l_hip"]] - p[J["r_hip"]])
    hips = world[B["hips"]] @ REST_ROTATIONS["hips"].T
    np.testing.assert_allclose(pelvis + hips @ [half, 0, 0], p[J["l_hip"]], atol=1e-6)
    np.testing.assert_allclose(pelvis + hips @ [-half, 0, 0], p[J["r_hip"]], atol=1e-6)
    for shin in ("shin.L", "shin.R"):
        assert np.degrees(Rotation.from_quat(q[B[shin], [1, 2, 3, 0]]).magnitude()) < 0.1, shin


def test_quaternions_match_scipys_on_every_branch():
    """The IK's own matrix -> quaternion (plain floats, for speed) against scipy's, on rotations whose largest
    component is w, x, y or z in turn (angles near 180 deg take the x, y and z branches), signs made w >= 0."""
    from pose_server.ik.solve import _quaternion

    rng = np.random.default_rng(3)
    axes = rng.normal(size=(400, 3))
    angles = np.concatenate([rng.uniform(0.0, 1.0, 100), rng.uniform(3.0, np.pi, 300)])
    mats = Rotation.from_rotvec(axes / np.linalg.norm(axes, axis=1)[:, None] * angles[:, None]).as_matrix()
    ours = np.array([_quaternion(m) for m in mats])
    ref = Rotation.from_matrix(mats).as_quat()
    ref = np.concatenate([ref[:, 3:], ref[:, :3]], axis=1) * np.where(ref[:, 3:] < 0, -1.0, 1.0)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    largest = np.argmax(np.abs(ref), axis=1)
    assert set(largest.tolist()) == {0, 1, 2, 3}  # every branch was taken


@pytest.mark.parametrize(("limb", "direction"), [
    (("upper_arm.L", "l_shoulder", "l_elbow", "l_wrist"), lambda t: (math.cos(t), -math.sin(t), 0.05)),  # across
    (("thigh.L", "l_hip", "l_knee", "l_ankle"), lambda t: (0.05, -math.sin(t), -math.cos(t))),  # a kick overhead
])
def test_a_straight_limb_swept_past_its_rest_antipode_turns_smoothly(limb, direction):
    """The smallest rotation from the rest direction turns its axis over near the antipode: a straight arm swept
    across the chest 1 degree a frame snapped 38.5 degrees in one frame. Every step now stays near the sweep's."""
    bone, a, m, e = limb
    upper = np.linalg.norm(REST_JOINTS[J[m]] - REST_JOINTS[J[a]])
    lower = np.linalg.norm(REST_JOINTS[J[e]] - REST_JOINTS[J[m]])
    i = CANONICAL_BONES.index(bone)
    steps, previous = [], None
    for k in range(240):
        d = np.array(direction(math.radians(k)))
        d /= np.linalg.norm(d)
        j = REST_JOINTS.copy()
        j[J[m]] = j[J[a]] + d * upper
        bent = d + np.array([0.0, -0.02, 0.0])  # about a degree: "nearly straight"
        j[J[e]] = j[J[m]] + bent / np.linalg.norm(bent) * lower
        r = Rotation.from_quat(solve_rotations(j)[i][[1, 2, 3, 0]])
        if previous is not None:
            steps.append(math.degrees((previous.inv() * r).magnitude()))
        previous = r
    assert max(steps) < 3.0, (int(np.argmax(steps)), max(steps))
