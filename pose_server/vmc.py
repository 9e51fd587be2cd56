"""VMC output: the motion as Virtual Motion Capture protocol messages (OSC over UDP) for Unity, Unreal,
VSeeFace, Warudo and other VRM tools.

VMC (protocol.vmc.info) is OSC 1.0 over UDP; a "performer" (us) sends, per frame:

    /VMC/Ext/OK        (int) loaded, (int) calibration state, (int) calibration mode, (int) tracking status
    /VMC/Ext/T         (float) seconds since the stream began
    /VMC/Ext/Root/Pos  (string) "root", (float) p.x p.y p.z, (float) q.x q.y q.z q.w
    /VMC/Ext/Bone/Pos  (string) Unity HumanBodyBones name, (float) p.x p.y p.z, (float) q.x q.y q.z q.w

Bone positions and rotations are **local** (relative to the Unity parent bone), in Unity's frame: metres,
left-handed, Y up, the avatar facing +Z (so its left hand is at -X). Rotations are relative to a T-pose
humanoid whose bones all have the world's orientation at rest, the "normalised" bones VRM and the VMC
receivers animate: a bone's rotation is ``D[parent]^-1 D[bone]``, where ``D`` is how far the bone has turned
from the T-pose in the world. Our own rest pose (``skeleton3d.REST_JOINTS``) is that T-pose, so
``D[b] = W[b] R[b]^T`` with ``W`` from ``ik.forward_rotations``. Humanoid bones we do not solve (chest,
shoulders, feet; hands without a v4 ``hands`` field) are sent at rest under their parent, so every receiver
ends in the same pose.

A person with protocol v4 ``hands`` also turns the Hand bones (the palm's world delta) and sends Unity's 30
finger bones (Left/Right Thumb, Index, Middle, Ring, Little x Proximal, Intermediate, Distal): a finger bone's
turn from its parent is its pose rotation under its canonical rest frame (docs/protocol.md, "Hands"),
``F q F^T``, converted like the body's; a hand that is null is sent at rest.

Only the Hips carry a moving position (the pelvis, relative to a root that stays at the origin); the other
bones' positions are the T-pose skeleton's offsets scaled to the performer's height, which receivers with
their own avatar ignore. The Hips' height is taken above the driven performer's own floor (the median height of
their lower ankle over the last 3 s, less the rest pose's ankle height): the packets' Z = 0 is the first tracked
performer's floor, and anyone else (a second person walking on the ground below the first one's roof) would have
stood metres under the receiver's floor.

One avatar per stream: the track id asked for (`person_id`), or else the largest lifted person, kept while they
are tracked: a performer missing for less than `patience` seconds is sent as tracking lost (receivers hold the
pose) and only then does the avatar go to the largest person in view. Chosen afresh every frame, it jumped
between two people of about the same size, metres and half a turn at a time.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from scipy.spatial.transform import Rotation

from .hands.model import BASE_REST, FINGERS, MIRROR, mirrored
from .hands.model import forward as hand_forward
from .hands.tracker import REST_FRAMES as PALM_REST
from .hands.tracker import SIDES
from .ik import forward_rotations, solve_rotations
from .lift.skeleton3d import CANONICAL_BONES, REST_HEIGHT, REST_JOINTS, REST_ROTATIONS, J, derived_points
from .udp import UdpSender

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PORT", "UNITY_FROM_WORLD", "UNITY_BONES", "UNITY_FINGER_BONES", "VmcSender", "vmc_messages",
           "tpose_offsets"]

DEFAULT_PORT = 39539  # the port VMC receivers listen on by default
# Our world (right-handed, Z up, facing -Y, left = +X) -> Unity (left-handed, Y up, facing +Z, left = -X).
# A reflection (determinant -1): points map as p' = M p, rotations as R' = M R M^T.
UNITY_FROM_WORLD = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# (Unity bone, Unity parent, our bone whose turn it takes or None = rests under its parent, where its head is)
UNITY_BONES: tuple[tuple[str, str | None, str | None, str], ...] = (
    ("Hips", None, "hips", "pelvis"),
    ("Spine", "Hips", "spine", "pelvis"),
    ("Chest", "Spine", None, "chest"),
    ("Neck", "Chest", "neck", "mid_shoulder"),
    ("Head", "Neck", "head", "mid_ear"),
    ("LeftShoulder", "Chest", None, "mid_shoulder"),
    ("LeftUpperArm", "LeftShoulder", "upper_arm.L", "l_shoulder"),
    ("LeftLowerArm", "LeftUpperArm", "forearm.L", "l_elbow"),
    ("LeftHand", "LeftLowerArm", None, "l_wrist"),
    ("RightShoulder", "Chest", None, "mid_shoulder"),
    ("RightUpperArm", "RightShoulder", "upper_arm.R", "r_shoulder"),
    ("RightLowerArm", "RightUpperArm", "forearm.R", "r_elbow"),
    ("RightHand", "RightLowerArm", None, "r_wrist"),
    ("LeftUpperLeg", "Hips", "thigh.L", "l_hip"),
    ("LeftLowerLeg", "LeftUpperLeg", "shin.L", "l_knee"),
    ("LeftFoot", "LeftLowerLeg", None, "l_ankle"),
    ("RightUpperLeg", "Hips", "thigh.R", "r_hip"),
    ("RightLowerLeg", "RightUpperLeg", "shin.R", "r_knee"),
    ("RightFoot", "RightLowerLeg", None, "r_ankle"),
)  # fmt: skip
_SIDE_NAMES = {"L": "Left", "R": "Right"}
_UNITY_FINGERS = {"thumb": "Thumb", "index": "Index", "middle": "Middle", "ring": "Ring", "pinky": "Little"}
_PHALANGES = ("Proximal", "Intermediate", "Distal")
# (Unity finger bone, Unity parent, side, finger index, joint 0-2): the hand's quaternion 1 + 3 * finger + joint
UNITY_FINGER_BONES: tuple[tuple[str, str, str, int, int], ...] = tuple(
    (f"{_SIDE_NAMES[s]}{_UNITY_FINGERS[f]}{_PHALANGES[j]}",
     f"{_SIDE_NAMES[s]}Hand" if j == 0 else f"{_SIDE_NAMES[s]}{_UNITY_FINGERS[f]}{_PHALANGES[j - 1]}", s, k, j)
    for s in SIDES for k, f in enumerate(FINGERS) for j in range(3))
# Rest frame (world) of each finger's bones: the palm's, the thumb turned out of it (hands.model.BASE_REST).
_FINGER_REST = {s: [PALM_REST[s] @ mirrored(s, BASE_REST[k]) for k in range(len(FINGERS))] for s in SIDES}
_B = {b: i for i, b in enumerate(CANONICAL_BONES)}
_REST = np.array([REST_ROTATIONS[b] for b in CANONICAL_BONES])
_UNITY_INDEX = {name: i for i, (name, *_rest) in enumerate(UNITY_BONES)}


def _heads(joints: np.ndarray) -> dict[str, np.ndarray]:
    """Where each Unity bone starts, for (17, 3) joints in our world frame."""
    d = derived_points(joints)
    points = {name: joints[i] for name, i in J.items()} | d
    points["chest"] = 0.5 * (d["pelvis"] + d["mid_shoulder"])
    return points


def tpose_offsets(height: float = REST_HEIGHT) -> np.ndarray:
    """(len(UNITY_BONES) + len(UNITY_FINGER_BONES), 3) local positions of the Unity bones, then of the finger
    bones (Unity frame), on the T-pose of a performer ``height`` metres tall (the canonical hand scaled with
    the body); the Hips row is the pelvis above the root."""
    scale = height / REST_HEIGHT
    heads = _heads(REST_JOINTS * scale)
    out = np.zeros((len(UNITY_BONES) + len(UNITY_FINGER_BONES), 3))
    for i, (_name, parent, _ours, at) in enumerate(UNITY_BONES):
        base = heads[UNITY_BONES[_UNITY_INDEX[parent]][3]] if parent else np.zeros(3)
        out[i] = UNITY_FROM_WORLD @ (heads[at] - base)
    points, _frames = hand_forward(np.zeros(4 * len(FINGERS)), scale)  # left-hand coordinates, rest hand
    for i, (_name, _parent, side, k, j) in enumerate(UNITY_FINGER_BONES, start=len(UNITY_BONES)):
        step = points[1 + 4 * k] if j == 0 else points[1 + 4 * k + j] - points[4 * k + j]  # from the parent's head
        out[i] = UNITY_FROM_WORLD @ PALM_REST[side] @ (MIRROR @ step if side == "R" else step)
    return out


def unity_turns(quats: np.ndarray) -> np.ndarray:
    """(12, 4) protocol v2 quaternions [w, x, y, z] -> (len(UNITY_BONES), 3, 3) each Unity bone's turn from the
    T-pose, Unity frame."""
    world = forward_rotations(np.asarray(quats, dtype=np.float64))
    turn = world @ np.transpose(_REST, (0, 2, 1))  # D[b] = W[b] R[b]^T: the turn from the T-pose, world frame
    d_unity = np.zeros((len(UNITY_BONES), 3, 3))
    for i, (_name, parent, ours, _at) in enumerate(UNITY_BONES):
        d_parent = d_unity[_UNITY_INDEX[parent]] if parent else np.eye(3)
        d_unity[i] = UNITY_FROM_WORLD @ turn[_B[ours]] @ UNITY_FROM_WORLD.T if ours else d_parent
    return d_unity


def _local(d_unity: np.ndarray) -> np.ndarray:
    """Local rotations D[parent]^T D[bone] of the Unity bones, (len(UNITY_BONES), 3, 3)."""
    parents = [_UNITY_INDEX[parent] if parent else None for _name, parent, *_rest in UNITY_BONES]
    return np.stack([d_unity[p].T @ d if p is not None else d for p, d in zip(parents, d_unity, strict=True)])


def unity_local_rotations(quats: np.ndarray) -> np.ndarray:
    """(12, 4) protocol v2 quaternions [w, x, y, z] -> (len(UNITY_BONES), 4) local Unity rotations [x, y, z, w]."""
    return Rotation.from_matrix(_local(unity_turns(quats))).as_quat()  # scipy's order is Unity's: x, y, z, w


def _matrix(q: Sequence[float]) -> np.ndarray:
    w, x, y, z = q
    return Rotation.from_quat([x, y, z, w]).as_matrix()  # normalises


def unity_hand_rotations(hands: Sequence, quats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A v4 ``hands`` field ([left, right], each 16 quaternions [w, x, y, z] or null) and the body's v2
    quaternions -> (the whole (len(UNITY_BONES), 4) local rotations with the Hand bones turned as the palms,
    (len(UNITY_FINGER_BONES), 4) local finger rotations), Unity [x, y, z, w]."""
    turns = unity_turns(quats)
    fingers = np.tile(np.eye(3), (len(UNITY_FINGER_BONES), 1, 1))
    for s, side in enumerate(SIDES):
        hand = hands[s] if s < len(hands) else None
        if not hand:
            continue
        i = _UNITY_INDEX[f"{_SIDE_NAMES[side]}Hand"]
        turns[i] = UNITY_FROM_WORLD @ _matrix(hand[0]) @ UNITY_FROM_WORLD.T  # the palm's world delta
        for row, (_name, _parent, bone_side, k, j) in enumerate(UNITY_FINGER_BONES):
            if bone_side == side:
                rest = _FINGER_REST[side][k]
                fingers[row] = UNITY_FROM_WORLD @ rest @ _matrix(hand[1 + 3 * k + j]) @ rest.T @ UNITY_FROM_WORLD.T
    return Rotation.from_matrix(_local(turns)).as_quat(), Rotation.from_matrix(fingers).as_quat()


def _message(address: str, *args: tuple[str, object]) -> OscMessage:
    b = OscMessageBuilder(address=address)
    for arg_type, value in args:
        b.add_arg(value, arg_type)
    return b.build()


def _pose_message(address: str, name: str, p: Sequence[float], q: Sequence[float]) -> OscMessage:
    return _message(address, ("s", name), *(("f", float(v)) for v in (*p, *q)))


def vmc_messages(person: dict | None, t: float, offsets: np.ndarray, floor: float = 0.0) -> list[OscMessage]:
    """One frame of VMC messages for one person of a pose packet (None or one without 3D: tracking lost), the Hips
    taken above `floor` (world Z)."""
    rotations = None
    if person is not None and person.get("joints_3d") is not None:
        rotations = person.get("rotations")
        if rotations is None:  # a protocol v1 stream: solve the rotations here
            rotations = solve_rotations(np.asarray(person["joints_3d"], dtype=np.float64))
    tracking = rotations is not None
    msgs = [_message("/VMC/Ext/OK", ("i", 1), ("i", 3), ("i", 0), ("i", int(tracking))),
            _message("/VMC/Ext/T", ("f", float(t)))]
    if not tracking:
        return msgs
    msgs.append(_pose_message("/VMC/Ext/Root/Pos", "root", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)))
    pelvis = derived_points(np.asarray(person["joints_3d"], dtype=np.float64))["pelvis"] - (0.0, 0.0, floor)
    hands = person.get("hands")
    if hands is None:
        local_q, finger_q = unity_local_rotations(np.asarray(rotations)), None
    else:
        local_q, finger_q = unity_hand_rotations(hands, np.asarray(rotations))
    for i, (name, *_rest) in enumerate(UNITY_BONES):
        p = UNITY_FROM_WORLD @ pelvis if i == 0 else offsets[i]
        msgs.append(_pose_message("/VMC/Ext/Bone/Pos", name, p, local_q[i]))
    if finger_q is not None:
        for i, (name, *_rest) in enumerate(UNITY_FINGER_BONES):
            msgs.append(_pose_message("/VMC/Ext/Bone/Pos", name, offsets[len(UNITY_BONES) + i], finger_q[i]))
    return msgs


def _bundles(msgs: list[OscMessage], max_bytes: int) -> list[bytes]:
    """Messages packed into as few OSC bundles as fit ``max_bytes`` each (one Ethernet frame by default)."""
    out: list[bytes] = []
    builder, size = OscBundleBuilder(IMMEDIATELY), 16  # "#bundle\0" + time tag
    count = 0
    for m in msgs:
        need = 4 + m.size
        if count and size + need > max_bytes:
            out.append(builder.build().dgram)
            builder, size, count = OscBundleBuilder(IMMEDIATELY), 16, 0
        builder.add_content(m)
        size += need
        count += 1
    if count:
        out.append(builder.build().dgram)
    return out


def select_person(people: Sequence[dict], person_id: int | None) -> dict | None:
    """The track id asked for, or else the person with the largest box."""
    if not people:
        return None
    if person_id is not None:
        return next((p for p in people if p.get("id") == person_id), None)
    return max(people, key=lambda p: (p["bbox"][2] - p["bbox"][0]) * (p["bbox"][3] - p["bbox"][1]))


class Performer:
    """Who the avatar follows, frame by frame: `person_id`, or the largest lifted person kept while tracked (a gap
    under `patience` seconds is tracking lost, not a new person); and where their floor is."""

    FLOOR_FRAMES = 90  # 3 s at 30 fps of lower-ankle heights

    def __init__(self, person_id: int | None = None, patience: float = 1.0, height: float = REST_HEIGHT) -> None:
        self.person_id, self.patience = person_id, patience
        self.rest_ankle = float(REST_JOINTS[J["l_ankle"], 2] * height / REST_HEIGHT)
        self.track_id: int | None = None
        self._lost_at: float | None = None
        self._ankles: deque[float] = deque(maxlen=self.FLOOR_FRAMES)

    def choose(self, people: Sequence[dict], stamp: float) -> dict | None:
        lifted = [p for p in people if p.get("joints_3d") is not None]
        if self.person_id is not None:
            return self._follow(select_person(lifted, self.person_id))
        current = next((p for p in lifted if p.get("id") == self.track_id), None)
        if current is not None or self.track_id is None:
            return self._follow(current or select_person(lifted, None))
        if self._lost_at is None:
            self._lost_at = stamp
        if stamp - self._lost_at < self.patience:
            return None
        return self._follow(select_person(lifted, None))

    def _follow(self, person: dict | None) -> dict | None:
        if person is not None:
            if person.get("id") != self.track_id:
                self.track_id = person.get("id")
                self._ankles.clear()  # a new performer stands on their own floor
            self._lost_at = None
        return person

    def floor(self, joints: np.ndarray) -> float:
        """This frame's estimate of the followed performer's floor height (world Z), `joints` added to it."""
        self._ankles.append(float(min(joints[J["l_ankle"], 2], joints[J["r_ankle"], 2])))
        return float(np.median(self._ankles)) - self.rest_ankle


class VmcSender:
    """Streams pose packets to one or more VMC receivers, never blocking (datagrams the kernel cannot take
    are dropped, like the pose packets)."""

    def __init__(self, targets: Sequence[str] | str, height: float = REST_HEIGHT, person_id: int | None = None,
                 max_bytes: int = 1400, patience: float = 1.0) -> None:
        self.sender = UdpSender(targets)
        self.offsets = tpose_offsets(height)
        self.performer = Performer(person_id, patience, height)
        self.max_bytes = max_bytes
        self._t0: float | None = None
        self._t_last = 0.0
        self.frames = 0
        self.closed = False

    def set_targets(self, targets: Sequence[str]) -> None:
        """New receivers, the same stream: its clock and its performer go on."""
        self.sender.set_targets(list(targets))

    @property
    def targets(self) -> list[str]:
        return self.sender.targets

    def send_packet(self, packet: dict) -> int:
        """Send one pose packet (a dict as the encoder or a recording has it); returns the datagrams sent."""
        stamp = float(packet.get("timestamp", time.time()))
        if self._t0 is None:
            self._t0 = stamp
        if stamp - self._t0 < self._t_last:  # a replay looping back to its start: /VMC/Ext/T goes on forward
            self._t0 = stamp - self._t_last - 1.0 / 30.0
        t = self._t_last = stamp - self._t0
        person = self.performer.choose(packet.get("people") or [], stamp)
        try:
            floor = self.performer.floor(np.asarray(person["joints_3d"])) if person is not None else 0.0
            msgs = vmc_messages(person, t, self.offsets, floor)
        except ValueError as exc:  # a degenerate skeleton the IK refuses: report tracking lost this frame
            log.debug("VMC: frame skipped (%s)", exc)
            msgs = vmc_messages(None, t, self.offsets)
        n = 0
        for dgram in _bundles(msgs, self.max_bytes):
            n += self.sender.send(dgram)
        self.frames += 1
        return n

    def stats(self) -> list[dict]:
        return self.sender.stats()

    def close(self) -> None:
        self.closed = True
        self.sender.close()
