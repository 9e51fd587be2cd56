"""VMC output into a real OSC receiver (python-osc's UDP server on loopback): every message checked, and the
pose rebuilt from the received local rotations and offsets with Unity's own conventions, written here
independently of pose_server.vmc: hands and feet must land within 2 cm of ours."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from scipy.spatial.transform import Rotation

from pose_server.cli import main as cli_main
from pose_server.config import PipelineConfig
from pose_server.ik import fk_joints
from pose_server.lift.skeleton3d import REST_HEIGHT, REST_JOINTS, J
from pose_server.lift.synthetic import walk
from pose_server.pipeline import Pipeline
from pose_server.record import Recorder
from pose_server.vmc import VmcSender

# Unity's HumanBodyBones and the humanoid hierarchy, as Unity defines them (the parent when every optional
# bone in between is present).
UNITY_PARENT = {
    "Hips": None, "Spine": "Hips", "Chest": "Spine", "UpperChest": "Chest", "Neck": "Chest", "Head": "Neck",
    "LeftShoulder": "Chest", "LeftUpperArm": "LeftShoulder", "LeftLowerArm": "LeftUpperArm",
    "LeftHand": "LeftLowerArm", "RightShoulder": "Chest", "RightUpperArm": "RightShoulder",
    "RightLowerArm": "RightUpperArm", "RightHand": "RightLowerArm", "LeftUpperLeg": "Hips",
    "LeftLowerLeg": "LeftUpperLeg", "LeftFoot": "LeftLowerLeg", "LeftToes": "LeftFoot", "RightUpperLeg": "Hips",
    "RightLowerLeg": "RightUpperLeg", "RightFoot": "RightLowerLeg", "RightToes": "RightFoot",
}  # fmt: skip
# Unity's finger bones: Proximal under the Hand, Intermediate under Proximal, Distal under Intermediate.
UNITY_FINGERS = ("Thumb", "Index", "Middle", "Ring", "Little")
PHALANGES = ("Proximal", "Intermediate", "Distal")
for _side in ("Left", "Right"):
    for _f in UNITY_FINGERS:
        for _j, _p in enumerate(PHALANGES):
            UNITY_PARENT[f"{_side}{_f}{_p}"] = f"{_side}Hand" if _j == 0 else f"{_side}{_f}{PHALANGES[_j - 1]}"
ENDS = {"LeftHand": "l_wrist", "RightHand": "r_wrist", "LeftFoot": "l_ankle", "RightFoot": "r_ankle"}
HEIGHT = 1.62


def unity_to_world(p: np.ndarray) -> np.ndarray:
    """Unity (left-handed, Y up, avatar facing +Z, its left at -X) -> ours (Z up, facing -Y, left at +X)."""
    return np.array([-p[0], -p[2], p[1]])


class Receiver:
    """A python-osc server on loopback that keeps every message, in arrival order, split into frames at /T."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple]] = []
        d = Dispatcher()
        d.set_default_handler(lambda address, *args: self.messages.append((address, args)))
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.target = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while sum(a == "/VMC/Ext/T" for a, _ in self.messages) < count and time.monotonic() < end:
            time.sleep(0.02)
        seen = -1
        while seen != len(self.messages) and time.monotonic() < end:  # the frame's last bundle may still come
            seen = len(self.messages)
            time.sleep(0.2)

    def frames(self) -> list[list[tuple[str, tuple]]]:
        out: list[list[tuple[str, tuple]]] = []
        for address, args in self.messages:
            if address == "/VMC/Ext/OK":  # the first message of each frame
                out.append([])
            out[-1].append((address, args))
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.close()


def check_frame(frame: list[tuple[str, tuple]]) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Assert every message of one frame is well formed; the bones (local position, local xyzw) or None."""
    (ok_addr, ok), (t_addr, t) = frame[0], frame[1]
    assert ok_addr == "/VMC/Ext/OK" and len(ok) == 4 and all(type(v) is int for v in ok), ok
    assert ok[0] == 1 and ok[1] == 3 and ok[3] in (0, 1)
    assert t_addr == "/VMC/Ext/T" and len(t) == 1 and type(t[0]) is float
    if ok[3] == 0:
        assert len(frame) == 2, "tracking lost: no pose follows"
        return None
    assert frame[2][0] == "/VMC/Ext/Root/Pos"
    assert frame[2][1][0] == "root" and np.allclose(frame[2][1][1:], [0, 0, 0, 0, 0, 0, 1])
    bones = {}
    for address, args in frame[3:]:
        assert address == "/VMC/Ext/Bone/Pos", address
        assert len(args) == 8 and type(args[0]) is str and all(type(v) is float for v in args[1:]), args
        assert args[0] in UNITY_PARENT, f"{args[0]} is not a Unity HumanBodyBones name"
        q = np.array(args[4:])
        assert abs(np.linalg.norm(q) - 1.0) < 1e-5
        bones[args[0]] = (np.array(args[1:4]), q)
    assert set(ENDS) | {"Hips", "Spine", "Head"} <= set(bones)
    return bones


def rebuild(bones: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Unity forward kinematics from local positions and rotations: every received bone's world position."""
    world: dict[str, tuple[np.ndarray, Rotation]] = {}

    def resolve(name: str) -> tuple[np.ndarray, Rotation]:
        if name not in world:
            parent = UNITY_PARENT[name]
            while parent is not None and parent not in bones:  # optional bones not sent: skip to the next one
                parent = UNITY_PARENT[parent]
            p_pos, p_rot = resolve(parent) if parent else (np.zeros(3), Rotation.identity())
            pos, q = bones[name]
            world[name] = (p_pos + p_rot.apply(pos), p_rot * Rotation.from_quat(q))
        return world[name]

    return {name: resolve(name)[0] for name in bones}


def packet(i: int, joints: np.ndarray, quats: np.ndarray, people: bool = True) -> dict:
    person = {"id": 7, "bbox": [100, 50, 300, 450], "joints_3d": joints.tolist(), "rotations": quats.tolist()}
    small = {"id": 2, "bbox": [0, 0, 20, 20], "joints_3d": REST_JOINTS.tolist(), "rotations": [[1, 0, 0, 0]] * 12}
    return {"timestamp": 1_700_000_000.0 + i / 30, "people": [small, person] if people else []}


def test_vmc_stream_rebuilds_hands_and_feet_within_2cm(receiver):
    joints, quats = walk(seconds=1.0, fps=30.0, height=HEIGHT, turn_deg_s=40.0)
    rest = REST_JOINTS * (HEIGHT / REST_HEIGHT)
    vmc = VmcSender([receiver.target], height=HEIGHT)
    for i in range(len(quats)):
        vmc.send_packet(packet(i, joints[i], quats[i], people=i != 5))  # frame 5: nobody in view
    receiver.wait_for(len(quats))
    vmc.close()
    frames = receiver.frames()
    assert len(frames) == len(quats)
    times = [f[1][1][0] for f in frames]
    assert times[0] == 0.0 and np.all(np.diff(times) > 0)
    worst = 0.0
    for i, frame in enumerate(frames):
        bones = check_frame(frame)
        if i == 5:
            assert bones is None
            continue
        got = rebuild(bones)
        pelvis = 0.5 * (joints[i][J["l_hip"]] + joints[i][J["r_hip"]])
        ours = fk_joints(quats[i], pelvis=pelvis, joints_rest=rest)
        for bone, joint in ENDS.items():
            worst = max(worst, float(np.linalg.norm(unity_to_world(got[bone]) - ours[J[joint]])))
        # Unity's conventions, independent of the conversion: the head is above the hips, the avatar's left
        # hand is on its left (facing +Z, left is -X when it faces +Z; the walk turns, so use its own frame).
        assert got["Head"][1] > got["Hips"][1] + 0.4
    assert worst < 0.02, f"hands/feet off by up to {worst * 100:.2f} cm"


def test_rest_pose_is_the_unity_t_pose(receiver):
    """Identity rotations (our T-pose facing -Y) arrive as identity local rotations: the VRM T-pose, facing +Z,
    with the left hand at -X and the knees bending towards +Z."""
    ident = np.tile([1.0, 0, 0, 0], (12, 1))
    bent = ident.copy()
    bent[8] = Rotation.from_euler("x", -0.8).as_quat()[[3, 0, 1, 2]]  # left thigh raised forwards (towards -Y)
    vmc = VmcSender([receiver.target])
    vmc.send_packet({"timestamp": 1.0, "people": [{"id": 1, "bbox": [0, 0, 1, 1], "joints_3d": REST_JOINTS.tolist(),
                                                   "rotations": ident.tolist()}]})
    vmc.send_packet({"timestamp": 1.1, "people": [{"id": 1, "bbox": [0, 0, 1, 1], "joints_3d": REST_JOINTS.tolist(),
                                                   "rotations": bent.tolist()}]})
    receiver.wait_for(2)
    vmc.close()
    rest_frame, bent_frame = (check_frame(f) for f in receiver.frames())
    for _name, (_pos, q) in rest_frame.items():
        assert np.allclose(q, [0, 0, 0, 1], atol=1e-6)
    pos = rebuild(rest_frame)
    assert pos["LeftHand"][0] < -0.6 and pos["RightHand"][0] > 0.6
    assert abs(pos["LeftHand"][1] - pos["LeftUpperArm"][1]) < 1e-6  # arms level: a T-pose
    assert pos["Hips"][1] == pytest.approx(0.92, abs=1e-3)
    knee = rebuild(bent_frame)["LeftLowerLeg"]
    assert knee[2] > 0.25, f"a thigh raised forwards must put the knee towards +Z, got {knee}"


def test_v1_packets_get_rotations_solved(receiver):
    """A protocol v1 stream (joints only) still drives the avatar: the rotations are solved on the way out."""
    joints, quats = walk(seconds=0.2, fps=30.0)
    vmc = VmcSender([receiver.target])
    for i in range(len(joints)):
        vmc.send_packet({"timestamp": float(i), "people": [{"id": 1, "bbox": [0, 0, 1, 1],
                                                            "joints_3d": joints[i].tolist()}]})
    receiver.wait_for(len(joints))
    vmc.close()
    for i, frame in enumerate(receiver.frames()):
        got = rebuild(check_frame(frame))
        assert np.linalg.norm(unity_to_world(got["LeftHand"]) - joints[i][J["l_wrist"]]) < 0.02


def write_session(path, joints: np.ndarray, quats: np.ndarray) -> None:
    with Recorder(path) as rec:
        for i in range(len(joints)):
            t = 1_700_000_000.0 + i / 30
            rec.write({"v": 2, "seq": i, "timestamp": t, "sent": t, "frame": i, "source": "s", "skeleton": "coco17",
                       "image_size": [640, 480],
                       "people": [{"id": 3, "bbox": [100, 50, 300, 450], "keypoints": [[200.0, 250.0]] * 17,
                                   "scores": [0.9] * 17, "joints_3d": joints[i].round(3).tolist(),
                                   "rotations": quats[i].round(3).tolist()}]})


def test_pipeline_streams_vmc_beside_udp(receiver, tmp_path):
    joints, quats = walk(seconds=0.5, fps=30.0)
    session = tmp_path / "take.jsonl"
    write_session(session, joints, quats)
    p = Pipeline(PipelineConfig(source=str(session), udp=[], vmc=[receiver.target], replay_speed=4.0))
    p.start()
    p.wait(20)
    p.stop()
    receiver.wait_for(len(joints))
    frames = receiver.frames()
    assert len(frames) == len(joints)
    assert p.status()["vmc"][0]["sent"] >= len(joints)
    assert all(check_frame(f) is not None for f in frames)


def test_cli_run_vmc_flag(receiver, tmp_path):
    joints, quats = walk(seconds=0.3, fps=30.0)
    session = tmp_path / "take.jsonl"
    write_session(session, joints, quats)
    assert cli_main(["run", "--source", str(session), "--udp", "127.0.0.1:9", "--vmc", receiver.target]) == 0
    receiver.wait_for(len(joints))
    assert len(receiver.frames()) == len(joints)


def test_cli_rejects_a_bad_vmc_target(capsys):
    assert cli_main(["run", "--source", "nothing.jsonl", "--vmc", "localhost"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_vmc_targets_change_live(receiver, tmp_path):
    """`vmc` is a live field (control API set_config): added to a running pipeline, then removed again."""
    joints, quats = walk(seconds=0.5, fps=30.0)
    session = tmp_path / "take.jsonl"
    write_session(session, joints, quats)
    p = Pipeline(PipelineConfig(source=str(session), udp=[], loop=True))
    p.start()
    try:
        time.sleep(0.3)
        assert receiver.messages == []
        assert p.update(vmc=[receiver.target])["restarted"] is False
        receiver.wait_for(5)
        assert len(receiver.frames()) >= 5
        p.update(vmc=[])
        time.sleep(0.3)
        count = len(receiver.messages)
        time.sleep(0.5)
        assert len(receiver.messages) == count, "no VMC after the last target was removed"
        assert p.status()["vmc"] == []
    finally:
        p.stop()


def test_v4_hands_turn_the_unity_hand_and_finger_bones(receiver):
    """A v4 person with hands (random palm orientations, finger angles within the model's limits): rebuilt by
    Unity's FK from what arrives, every finger joint lies where the hand model puts it (within 1 mm); a null
    hand arrives at rest; a person without `hands` sends no finger bones."""
    from pose_server.hands.model import HIGH, LOW, MIRROR, forward
    from pose_server.hands.tracker import hand_quaternions

    joints, quats = walk(seconds=0.1, fps=30.0, height=HEIGHT, turn_deg_s=40.0)
    rng = np.random.default_rng(5)
    angles = {s: rng.uniform(LOW, HIGH) for s in "LR"}
    palms = {s: Rotation.random(random_state=i).as_matrix() for i, s in enumerate("LR")}
    hands = [hand_quaternions(s, palms[s], angles[s]).round(3).tolist() for s in "LR"]
    vmc = VmcSender([receiver.target], height=HEIGHT)
    for i, field in enumerate((hands, [hands[0], None], None)):
        p = packet(i, joints[i], quats[i])
        if field is not None:
            p["people"][1]["hands"] = field
        vmc.send_packet(p)
    receiver.wait_for(3)
    vmc.close()
    both, left_only, body_only = (check_frame(f) for f in receiver.frames())
    fingers = {name for name in UNITY_PARENT if name.endswith(PHALANGES)}
    assert set(both) >= fingers and set(left_only) >= fingers and not set(body_only) & fingers
    got = rebuild(both)
    scale = HEIGHT / REST_HEIGHT
    worst = 0.0
    for s, side in (("L", "Left"), ("R", "Right")):
        points, _frames = forward(angles[s], scale)  # left-hand coordinates: x to the little finger, y along the palm
        flip = MIRROR if s == "R" else np.eye(3)
        for k, finger in enumerate(UNITY_FINGERS):
            for j, phalanx in enumerate(PHALANGES):
                want = palms[s] @ flip @ points[1 + 4 * k + j]
                offset = unity_to_world(got[f"{side}{finger}{phalanx}"] - got[f"{side}Hand"])
                worst = max(worst, float(np.linalg.norm(offset - want)))
    assert worst < 0.001, f"finger joints off by up to {worst * 1000:.2f} mm"
    pelvis = 0.5 * (joints[0][J["l_hip"]] + joints[0][J["r_hip"]])
    wrist = fk_joints(quats[0], pelvis=pelvis, joints_rest=REST_JOINTS * scale)[J["l_wrist"]]
    assert np.linalg.norm(unity_to_world(got["LeftHand"]) - wrist) < 0.02
    # The null right hand: at rest under the lower arm, fingers straight.
    for name, (_pos, q) in left_only.items():
        if name.startswith("Right") and (name == "RightHand" or name in fingers):
            assert np.allclose(q, [0, 0, 0, 1], atol=1e-6), name
    assert not np.allclose(left_only["LeftIndexIntermediate"][1], [0, 0, 0, 1], atol=1e-3)


def _hips(frame: list[tuple[str, tuple]]) -> np.ndarray | None:
    bones = check_frame(frame)
    return None if bones is None else bones["Hips"][0]


def test_the_avatar_stays_with_one_performer_and_stands_on_their_floor(receiver):
    """Two people of about the same size: the avatar went to whichever box was larger in each frame, metres and
    half a turn at a time, and a second person (on the ground 2 m below the first one's roof, the packets' Z = 0)
    stood 2 m under the receiver's floor. Now it keeps the first person chosen while they are tracked (a gap under
    a second is tracking lost), then takes the other one, on that person's own floor."""
    joints, quats = walk(seconds=3.0, fps=30.0, height=HEIGHT)
    rest = REST_JOINTS * (HEIGHT / REST_HEIGHT)
    pelvis_height = 0.5 * (rest[J["l_hip"], 2] + rest[J["r_hip"], 2])
    below = joints + np.array([2.0, 0.0, -2.0])  # 2 m to the side, on ground 2 m lower
    vmc = VmcSender([receiver.target], height=HEIGHT)
    for i in range(len(quats)):
        roof = {"id": 1, "bbox": [0, 0, 100, 204 - (i % 2) * 4], "joints_3d": joints[i].tolist(),
                "rotations": quats[i].tolist()}
        ground = {"id": 2, "bbox": [200, 0, 300, 202], "joints_3d": below[i].tolist(), "rotations": quats[i].tolist()}
        people = [ground] if 30 <= i < 45 or i >= 60 else [roof, ground]  # the roof man is lost twice
        vmc.send_packet({"timestamp": 1_700_000_000.0 + i / 30, "people": people})
    receiver.wait_for(len(quats))
    vmc.close()
    hips = [_hips(f) for f in receiver.frames()]
    assert len(hips) == len(quats)
    for i, h in enumerate(hips):
        if 30 <= i < 45 or 60 <= i < 90:  # roof man missing, under a second: tracking lost, not the other person
            assert h is None, i
            continue
        assert h is not None, i
        x_world = -h[0]  # Unity's -X is our +X
        want = joints[i] if i < 90 else below[i]
        assert abs(x_world - 0.5 * (want[J["l_hip"], 0] + want[J["r_hip"], 0])) < 0.01, i
        assert abs(h[1] - pelvis_height) < 0.12, (i, h[1])  # Unity's Y up: the pelvis above this person's floor


def test_the_avatar_follows_the_track_id_asked_for_and_its_clock_runs_on(receiver, tmp_path, capsys):
    """`vmc_person` picks the performer; /VMC/Ext/T restarted at 0 on every pass of a looped replay."""
    joints, quats = walk(seconds=0.2, fps=30.0)
    vmc = VmcSender([receiver.target], person_id=2)
    for i in [*range(len(quats)), *range(len(quats))]:  # a replay looping back to its start
        small = {"id": 2, "bbox": [0, 0, 10, 10], "joints_3d": (joints[i] + [3.0, 0, 0]).tolist(),
                 "rotations": quats[i].tolist()}
        big = {"id": 1, "bbox": [0, 0, 100, 200], "joints_3d": joints[i].tolist(), "rotations": quats[i].tolist()}
        vmc.send_packet({"timestamp": 1_700_000_000.0 + i / 30, "people": [big, small]})
    receiver.wait_for(2 * len(quats))
    vmc.close()
    frames = receiver.frames()
    assert all(-_hips(f)[0] > 2.5 for f in frames)  # id 2, three metres along +X
    times = [f[1][1][0] for f in frames]
    assert np.all(np.diff(times) > 0) and times[-1] == pytest.approx((2 * len(quats) - 1) / 30, abs=1e-3)

    session = tmp_path / "take.jsonl"
    write_session(session, joints, quats)
    assert cli_main(["run", "--source", str(session), "--udp", "127.0.0.1:9", "--vmc", receiver.target,
                     "--vmc-person", "4"]) == 0  # nobody has id 4: tracking lost, every frame
    with pytest.raises(SystemExit):
        cli_main(["run", "--source", str(session), "--vmc-person", "-1"])
    assert "--vmc-person: -1 is outside 0-2147483647" in capsys.readouterr().err
