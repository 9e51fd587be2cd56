"""PacketEncoder: compact, rounded, versioned packets that always validate on both sides, and clear refusals."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from pose_server.protocol import MAX_DATAGRAM, SINGLE_FRAME_BUDGET, PacketEncoder, PacketTooLarge, Person
from tests.protocol.packets import SCHEMA, validate_packet

RNG = np.random.default_rng(7)


def _quats(n: int = 12) -> np.ndarray:
    q = RNG.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _person(pid: int = 3, k: int = 17, rotations: bool = False, joints: bool = True) -> Person:
    return Person(
        id=pid,
        bbox=np.array([10.04, 20.06, 630.0, 470.0], np.float32),
        keypoints=(RNG.random((k, 2)) * [640, 480]).astype(np.float32),
        scores=RNG.random(k).astype(np.float32),
        held=np.array([0, 5]),
        joints_3d=RNG.normal(size=(17, 3)).astype(np.float32) if joints else None,
        rotations=_quats() if rotations else None,
    )


def _both_accept(data: bytes) -> dict:
    ok, packet = validate_packet(data)
    assert ok, packet
    assert SCHEMA.is_valid(json.loads(data)), list(SCHEMA.iter_errors(json.loads(data)))[:3]
    return packet


@pytest.mark.parametrize(
    ("skeleton", "people", "rotations"),
    [("coco17", 1, False), ("coco17", 1, True), ("coco17", 0, False), ("coco17", 16, True), ("wholebody133", 4, False)],
)
def test_output_validates_on_both_sides(skeleton: str, people: int, rotations: bool) -> None:
    k = 17 if skeleton == "coco17" else 133
    enc = PacketEncoder("clip.mp4", skeleton, (640, 480))
    meta = {"fps": np.float32(29.97), "model": "vitpose_small.pth", "latency_ms": {"infer": 12.34}, "gpu": False}
    data = enc.encode(7, time.time(), [_person(i, k, rotations) for i in range(people)], meta)
    packet = _both_accept(data)
    assert packet["v"] == (2 if rotations and people else 1)
    assert packet["skeleton"] == skeleton and packet["frame"] == 7 and len(packet["people"]) == people
    assert packet == enc.last_packet


def test_compact_and_rounded() -> None:
    enc = PacketEncoder("cam", "coco17", (1920, 1080))
    kp = np.full((17, 2), 123.456)
    kp[0] = [-0.04, 1919.96]
    joints = np.full((17, 3), -1.23456)
    q = np.tile([0.70710678, -0.70710678, 0.0, 0.0], (12, 1))
    people = [{"id": 1, "bbox": [0.04, 1.25, 2.351, 3.0], "keypoints": kp, "scores": np.full(17, 0.456),
               "held": [], "joints_3d": joints, "rotations": q}]
    data = enc.encode(0, 1764040069.1234567, people, sent=1764040069.2)
    assert b" " not in data and b"\n" not in data
    p = json.loads(data)["people"][0]
    assert p["bbox"] == [0.0, 1.2, 2.4, 3.0]
    assert p["keypoints"][0] == [0.0, 1920.0] and p["keypoints"][1] == [123.5, 123.5]
    assert p["scores"][0] == 0.46
    assert p["joints_3d"][0] == [-1.235, -1.235, -1.235]
    assert p["rotations"][0] == [0.707, -0.707, 0.0, 0.0]
    assert "held" not in p  # empty lists are left out
    assert json.loads(data)["timestamp"] == 1764040069.123457
    assert b"-0.0," not in data  # negative zero is written as 0.0


def test_held_mask_becomes_indices() -> None:
    enc = PacketEncoder("cam")
    mask = np.zeros(17, bool)
    mask[[2, 9]] = True
    p = _person()
    p.held = mask
    packet = _both_accept(enc.encode(0, 1.0, [p]))
    assert packet["people"][0]["held"] == [2, 9]


def test_version_follows_rotations() -> None:
    enc = PacketEncoder("cam")
    assert json.loads(enc.encode(0, 1.0, [_person(1)]))["v"] == 1
    data = enc.encode(1, 1.0, [_person(1), _person(2, rotations=True)])
    packet = _both_accept(data)
    assert packet["v"] == 2 and "rotations" not in packet["people"][0] and len(packet["people"][1]["rotations"]) == 12
    q = np.asarray(packet["people"][1]["rotations"])
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=3e-3)


def test_contacts_make_a_version_3_packet() -> None:
    enc = PacketEncoder("cam")
    p = _person(1, rotations=True)
    p.contacts = np.array([0.9712, 0.0])
    packet = _both_accept(enc.encode(0, 1.0, [p, _person(2)]))
    assert packet["v"] == 3 and packet["people"][0]["contacts"] == [0.97, 0.0]
    assert "contacts" not in packet["people"][1]
    p.contacts = [1.2, 0.0]
    with pytest.raises(ValueError, match="contacts"):
        enc.encode(1, 1.0, [p])


def test_seq_is_monotonic_and_skips_refused_frames() -> None:
    enc = PacketEncoder("cam", start_seq=5)
    seqs = [json.loads(enc.encode(i, 1.0, []))["seq"] for i in range(3)]
    assert seqs == [5, 6, 7]
    bad = _person()
    bad.scores = np.full(17, np.nan)
    with pytest.raises(ValueError):
        enc.encode(3, 1.0, [bad])
    assert json.loads(enc.encode(4, 1.0, []))["seq"] == 8


@pytest.mark.parametrize("field", ["bbox", "keypoints", "scores", "joints_3d", "rotations"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_refuses_non_finite(field: str, bad: float) -> None:
    p = _person(rotations=True)
    arr = np.array(getattr(p, field), dtype=np.float64)
    arr.flat[1] = bad
    setattr(p, field, arr)
    with pytest.raises(ValueError, match="NaN or inf"):
        PacketEncoder("cam").encode(0, 1.0, [p])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keypoints": np.zeros((16, 2))}, r"shape \(17, 2\)"),
        ({"scores": np.zeros(133)}, r"shape \(17,\)"),
        ({"scores": np.full(17, 1.2)}, "scores"),
        ({"scores": np.full(17, -0.5)}, r"\[0, 1\]"),
        ({"joints_3d": np.zeros((17, 2))}, r"shape \(17, 3\)"),
        ({"joints_3d": np.full((17, 3), 2e4)}, "units"),
        ({"keypoints": np.full((17, 2), 2e6)}, "units"),
        ({"rotations": np.zeros((12, 4))}, "not a rotation"),
        ({"rotations": _quats(11)}, r"\(12, 4\)"),
        ({"held": [17]}, r"\[0, 16\]"),
        ({"held": np.zeros(5, bool)}, "bool mask"),
        ({"held": [0.5]}, "indices"),
        ({"id": -1}, "outside"),
        ({"id": True}, "integer"),
        ({"id": 1.0}, "integer"),
        ({"bbox": "0 0 1 1"}, "expected"),
    ],
)
def test_refuses_bad_people_with_a_clear_error(change: dict, message: str) -> None:
    p = _person(rotations=True)
    for key, value in change.items():
        setattr(p, key, value)
    with pytest.raises(ValueError, match=message):
        PacketEncoder("cam").encode(0, 1.0, [p])


def test_refuses_bad_frames_and_senders() -> None:
    with pytest.raises(ValueError, match="coco17"):
        PacketEncoder("cam", "coco18")
    with pytest.raises(ValueError, match="image_size"):
        PacketEncoder("cam", image_size=(0, 480))
    with pytest.raises(ValueError, match="256"):
        PacketEncoder("c" * 300)
    enc = PacketEncoder("cam")
    with pytest.raises(ValueError, match="time.time"):
        enc.encode(0, float("nan"), [])
    with pytest.raises(ValueError, match="time.time"):
        enc.encode(0, 1764040069123.0, [])  # milliseconds by mistake
    with pytest.raises(ValueError, match="frame_index"):
        enc.encode(-1, 1.0, [])
    with pytest.raises(ValueError, match="max_people"):
        enc.encode(0, 1.0, [_person(i) for i in range(17)])
    with pytest.raises(ValueError, match="NaN or inf"):
        enc.encode(0, 1.0, [], {"fps": float("nan")})
    with pytest.raises(ValueError, match="flat"):
        enc.encode(0, 1.0, [], {"nested": {"a": 1}})
    with pytest.raises(ValueError, match="latency"):
        enc.encode(0, 1.0, [], {"latency_ms": {"infer": -3}})
    assert enc.seq == 0


def test_too_large_for_a_datagram() -> None:
    enc = PacketEncoder("cam", "wholebody133", (3840, 2160))
    people = []
    for i in range(16):
        p = _person(i, 133, rotations=True)
        p.keypoints = np.full((133, 2), -987654.3)
        p.held = np.ones(133, bool)
        people.append(p)
    with pytest.raises(PacketTooLarge, match="65507-byte datagram limit"):
        enc.encode(0, 1.0, people)
    assert enc.seq == 0
    with pytest.raises(PacketTooLarge, match="500-byte"):
        PacketEncoder("cam", max_bytes=500).encode(0, 1.0, [_person()])
    assert len(enc.encode(0, 1.0, people[:8])) <= MAX_DATAGRAM  # half of them fit


def _worst_case_person(rotations: bool, pid: int = 9999, held: int = 4, z: float = 1.876) -> Person:
    """The longest numbers each field carries in a 4K frame: 4-digit pixels with a decimal, negative
    metres with 3 decimals (z, the height above the floor, is positive but for noise), negative
    quaternion components with 3 decimals, 2-decimal scores."""
    return Person(
        id=pid,
        bbox=[3839.9, 2159.9, 3839.9, 2159.9],
        keypoints=np.tile([3839.9, 2159.9], (17, 1)),
        scores=np.full(17, 0.87),
        held=np.arange(held),
        joints_3d=np.tile([-9.876, -9.876, z], (17, 1)),
        rotations=np.tile([-0.5123, -0.4877, -0.5011, -0.4987], (12, 1)) if rotations else None,
    )


NOW = 1764040069.123456
META = {"fps": 29.97, "model": "vitpose_small.pth", "latency_ms": {"infer": 31.5, "p50": 48.25}}


@pytest.mark.parametrize("rotations", [False, True])
def test_single_coco_person_fits_the_datagram_budget(rotations: bool) -> None:
    """docs/protocol.md: a 16-character source, over a day of frames at 60 fps (7-digit seq and frame),
    4-digit track ids, up to 4 held keypoints: one COCO-17 person with 3D (and rotations) <= 1400 bytes."""
    enc = PacketEncoder("rtsp://cam-01/c1", "coco17", (3840, 2160), start_seq=9_999_999)
    data = enc.encode(9_999_999, NOW, [_worst_case_person(rotations)], META, sent=NOW + 0.048765)
    print(f"worst-case coco17 v{2 if rotations else 1}: {len(data)} bytes, meta dropped {enc.meta_dropped}")
    assert len(data) <= SINGLE_FRAME_BUDGET, len(data)
    assert enc.meta_dropped == (1 if rotations else 0)  # v1 has room for meta, v2 sheds it
    packet = _both_accept(data)
    assert packet["people"][0]["joints_3d"][0] == [-9.876, -9.876, 1.876]


def test_every_number_at_its_longest_still_fits_an_ethernet_frame() -> None:
    """Max seq, frame and id, all 17 keypoints held, z negative too: not fragmented on a 1500-byte MTU
    over IPv4 (1472 bytes of UDP payload)."""
    enc = PacketEncoder("rtsp://cam-01/c1", "coco17", (3840, 2160), start_seq=2**53 - 1)
    person = _worst_case_person(True, pid=2**31 - 1, held=17, z=-9.876)
    data = enc.encode(2**53 - 1, NOW, [person], sent=NOW + 0.048765)
    print(f"longest coco17 v2: {len(data)} bytes")
    assert len(data) <= 1472, len(data)
    _both_accept(data)


def test_meta_is_dropped_rather_than_break_the_budget() -> None:
    enc = PacketEncoder("cam", "coco17", (3840, 2160))
    big_meta = {f"note{i}": "x" * 40 for i in range(8)}
    data = enc.encode(0, 1.0, [_worst_case_person(True)], big_meta)
    assert len(data) <= SINGLE_FRAME_BUDGET and "meta" not in json.loads(data) and enc.meta_dropped == 1
    data = enc.encode(1, 1.0, [], big_meta)  # small packet: meta fits and is kept
    assert json.loads(data)["meta"]["note0"] == "x" * 40 and enc.meta_dropped == 1
    data = enc.encode(2, 1.0, [_worst_case_person(True)], {**big_meta, "token": "s3cret"})
    assert json.loads(data)["meta"] == {"token": "s3cret"} and enc.meta_dropped == 2  # the token is never shed
    wb = PacketEncoder("cam", "wholebody133", (640, 480))
    data = wb.encode(0, 1.0, [_person(1, 133)], big_meta)  # over the budget anyway: meta costs nothing extra
    assert "meta" in json.loads(data) and wb.meta_dropped == 0
    # ... unless the meta is what would push it past the datagram: then meta goes and the packet is sent
    without = len(PacketEncoder("cam", "wholebody133", (640, 480)).encode(0, 1.0, [_person(1, 133)]))
    tight = PacketEncoder("cam", "wholebody133", (640, 480), max_bytes=without + 40)
    data = tight.encode(0, 1.0, [_person(1, 133)], {**big_meta, "token": "s3cret"})
    assert json.loads(data)["meta"] == {"token": "s3cret"} and tight.meta_dropped == 1


def _hands() -> list:
    return [_quats(16), None]


def test_hands_make_a_version_4_packet() -> None:
    enc = PacketEncoder("cam", "wholebody133", (640, 480))
    p = _person(1, 133, rotations=True)
    p.hands = _hands()
    packet = _both_accept(enc.encode(0, 1.0, [p, _person(2, 133)]))
    assert packet["v"] == 4 and packet["people"][0]["hands"][1] is None
    q = np.asarray(packet["people"][0]["hands"][0])
    assert q.shape == (16, 4) and np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=3e-3)
    assert "hands" not in packet["people"][1]
    p.hands = [np.zeros((16, 4)), None]
    with pytest.raises(ValueError, match=r"hands\[0\]: bone 0 is not a rotation"):
        enc.encode(1, 1.0, [p])
    p.hands = [None]
    with pytest.raises(ValueError, match=r"expected \[left, right\]"):
        enc.encode(1, 1.0, [p])
    coco = _person(1)
    coco.hands = _hands()
    with pytest.raises(ValueError, match="whole-body skeleton"):
        PacketEncoder("cam").encode(0, 1.0, [coco])


WHOLEBODY_HANDS_MAX_PEOPLE = 14  # docs/protocol.md: worst-case whole-body people with both hands per datagram


def test_whole_body_people_with_hands_within_the_documented_limit() -> None:
    """Worst-case magnitudes (4K frame, negative 3-decimal quaternions): WHOLEBODY_HANDS_MAX_PEOPLE people
    with 3D, rotations, contacts and both hands fit one 65507-byte datagram; with more, hands are shed."""
    def worst(pid: int) -> Person:
        p = _worst_case_person(True, pid=pid)
        p.keypoints = np.tile([3839.9, 2159.9], (133, 1))
        p.scores = np.full(133, 0.87)
        p.contacts = [0.97, 0.03]
        p.hands = [np.tile([-0.5123, -0.4877, -0.5011, -0.4987], (16, 1))] * 2
        return p

    enc = PacketEncoder("rtsp://cam-01/c1", "wholebody133", (3840, 2160), start_seq=9_999_999)
    data = enc.encode(9_999_999, NOW, [worst(9000 + i) for i in range(WHOLEBODY_HANDS_MAX_PEOPLE)], META)
    print(f"worst-case wholebody v4, {WHOLEBODY_HANDS_MAX_PEOPLE} people: {len(data)} bytes")
    assert len(data) <= MAX_DATAGRAM
    assert _both_accept(data)["v"] == 4
    assert enc.hands_dropped == 0
    # more people: the packet goes without hands (version 3) rather than not at all
    data = enc.encode(0, NOW, [worst(9000 + i) for i in range(16)], META)
    packet = _both_accept(data)
    assert packet["v"] == 3 and not any("hands" in p for p in packet["people"]) and enc.hands_dropped == 1
