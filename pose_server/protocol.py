"""Pose packet encoder: one processed frame -> one compact JSON datagram (docs/protocol.md).

The wire contract is protocol/pose_packet.schema.json; the Blender side validates with
blender_addon/core/packet.py. Everything here refuses bad input with a ValueError that says what to do,
so a packet that leaves the server always validates on the other side.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_DATAGRAM = 65507  # largest UDP payload over IPv4 (65535 - 8 UDP - 20 IP header bytes)
SINGLE_FRAME_BUDGET = 1400  # fits one Ethernet frame (1500 MTU) with IP/UDP headers to spare
MAX_PEOPLE = 16
SKELETON_SIZES = {"coco17": 17, "wholebody133": 133}
NUM_JOINTS_3D = 17
NUM_BONES = 12  # CANONICAL_BONES, docs/architecture.md
NUM_HAND_BONES = 16  # per hand: the palm, then 3 bones per finger (pose_server/hands/model.py)
MAX_INT = 9007199254740991  # 2**53 - 1: the largest integer every JSON reader keeps exact
MAX_ID = 2147483647
MAX_TIME = 1e11
COORD_LIMIT = 1e6  # pixels
METRES_LIMIT = 1e4
MAX_STRING = 256
MAX_META = 32
MAX_LATENCY_KEYS = 16
MAX_LATENCY_MS = 1e6
KEEP_META = ("token",)  # never shed: the add-on rejects packets without its token (blender_addon/core/receiver.py)

# Decimal places on the wire: 0.1 px, 1 mm, 0.01 confidence, 1e-3 quaternion, 1 us timestamps.
# A quaternion step of 1e-3 is ~0.11 degrees, ~1 mm at the tip of a 0.5 m bone: the precision of joints_3d.
# (1e-4 would push a worst-case COCO-17 v2 packet past the single-datagram budget; docs/protocol.md.)
PX_DECIMALS = 1
METRES_DECIMALS = 3
SCORE_DECIMALS = 2
QUAT_DECIMALS = 3
TIME_DECIMALS = 6
META_DECIMALS = 3
LATENCY_DECIMALS = 1


class PacketTooLarge(ValueError):
    """The encoded packet does not fit in one UDP datagram."""


@dataclass
class Person:
    """One tracked person of a frame, as the pipeline hands it to the encoder."""

    id: int
    bbox: Any  # (4,) x1, y1, x2, y2 pixels
    keypoints: Any  # (K, 2) pixels
    scores: Any  # (K,) in [0, 1]
    held: Any = ()  # indices of held/predicted keypoints, or a (K,) bool mask
    joints_3d: Any = None  # (17, 3) metres or None
    rotations: Any = None  # (12, 4) unit quaternions w, x, y, z or None
    contacts: Any = None  # (2,) left/right foot contact probabilities in [0, 1] or None (version 3)
    hands: Any = None  # [left, right], each (16, 4) quaternions or None; whole-body skeletons only (version 4)


def _field(person: Any, name: str, default: Any = None) -> Any:
    if isinstance(person, Mapping):
        return person.get(name, default)
    return getattr(person, name, default)


def _rounded(values: Any, shape: tuple[int, ...], decimals: int, limit: float, what: str) -> list:
    """Float array of exactly `shape`, finite, rounded, within +-limit, as nested lists."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: expected numbers of shape {shape}, got {type(values).__name__} ({e})") from None
    if arr.shape != shape:
        raise ValueError(f"{what}: expected shape {shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise ValueError(f"{what}: NaN or inf at index {bad}; drop or hold that value before encoding")
    arr = np.round(arr, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0 (one byte shorter, same value)
    if np.abs(arr).max(initial=0.0) > limit:
        raise ValueError(f"{what}: values beyond +-{limit:g} (max |x| = {np.abs(arr).max():g}); check the units")
    return arr.tolist()


def _integer(value: Any, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(f"{what}: expected an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{what}: {value} is outside [{lo}, {hi}]")
    return int(value)


def _seconds(value: Any, what: str) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected seconds since the epoch (time.time()), got {value!r}") from None
    if not math.isfinite(t) or not 0.0 <= t <= MAX_TIME:
        raise ValueError(f"{what}: {value!r} is not a time in seconds since the epoch (time.time())")
    return round(t, TIME_DECIMALS)


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a string, got {type(value).__name__}")
    if len(value) > MAX_STRING:
        raise ValueError(f"{what}: {len(value)} characters, at most {MAX_STRING} allowed; shorten it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what}: contains a lone surrogate and cannot be sent as UTF-8") from None
    return value


def check_token(token: str) -> None:
    """Raise ValueError unless ``token`` can go out as meta.token (at most MAX_STRING characters of UTF-8)."""
    _string(token, "udp token (meta.token)")


def _held(held: Any, k: int, what: str) -> list[int]:
    arr = np.asarray(held if held is not None else (), dtype=None)
    if arr.dtype == np.bool_:
        if arr.shape != (k,):
            raise ValueError(f"{what}: a bool mask must have shape ({k},), got {arr.shape}")
        return np.flatnonzero(arr).tolist()
    if arr.size == 0:
        return []
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what}: expected keypoint indices (ints) or a ({k},) bool mask, got {arr.dtype} {arr.shape}")
    if arr.min() < 0 or arr.max() >= k:
        raise ValueError(f"{what}: indices must be in [0, {k - 1}], got {arr.min()}..{arr.max()}")
    return np.unique(arr).tolist()


def _rotations(values: Any, what: str, bones: int = NUM_BONES) -> list:
    try:
        q = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: expected ({bones}, 4) quaternions, got {type(values).__name__} ({e})") from None
    if q.shape != (bones, 4):
        raise ValueError(f"{what}: expected shape ({bones}, 4) (w, x, y, z per bone, docs/protocol.md), got {q.shape}")
    norm = np.linalg.norm(q, axis=1) if np.isfinite(q).all() else np.zeros(len(q))
    if (norm < 0.5).any() or (norm > 2.0).any():
        bone = int(np.argmax((norm < 0.5) | (norm > 2.0)))
        raise ValueError(f"{what}: bone {bone} is not a rotation (norm {norm[bone]:g}, NaN or inf); fix the IK")
    return _rounded(q / norm[:, None], (bones, 4), QUAT_DECIMALS, 1.0, what)


def _hands(values: Any, skeleton: str, what: str) -> list:
    if skeleton == "coco17":
        raise ValueError(f"{what}: hands need a whole-body skeleton; COCO-17 has no hand keypoints")
    if isinstance(values, np.ndarray) and values.ndim == 3:
        values = list(values)
    if not isinstance(values, Sequence) or len(values) != 2:
        raise ValueError(f"{what}: expected [left, right], each ({NUM_HAND_BONES}, 4) quaternions or None")
    return [None if h is None else _rotations(h, f"{what}[{i}]", NUM_HAND_BONES) for i, h in enumerate(values)]


def _meta_value(value: Any, decimals: int, what: str) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what}: NaN or inf cannot be sent; leave the key out instead")
        return round(value, decimals) + 0.0
    if isinstance(value, str):
        return _string(value, what)
    raise ValueError(f"{what}: meta values must be flat (str, number, bool or None), got {type(value).__name__}")


def _meta(meta: Mapping | None) -> dict | None:
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise ValueError(f"meta: expected a mapping, got {type(meta).__name__}")
    if len(meta) > MAX_META:
        raise ValueError(f"meta: {len(meta)} keys, at most {MAX_META} allowed")
    out: dict[str, Any] = {}
    for key, value in meta.items():
        key = _string(key, "meta key")
        if key == "latency_ms":
            if not isinstance(value, Mapping) or len(value) > MAX_LATENCY_KEYS:
                raise ValueError(f"meta.latency_ms: expected a mapping of at most {MAX_LATENCY_KEYS} stage -> ms")
            stages = {}
            for stage, ms in value.items():
                ms = _meta_value(ms, LATENCY_DECIMALS, f"meta.latency_ms.{stage}")
                if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 <= ms <= MAX_LATENCY_MS:
                    raise ValueError(f"meta.latency_ms.{stage}: expected milliseconds in [0, {MAX_LATENCY_MS:g}]")
                stages[_string(stage, "meta.latency_ms key")] = ms
            out[key] = stages
            continue
        value = _meta_value(value, META_DECIMALS, f"meta.{key}")
        if key == "fps" and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1e4):
            raise ValueError(f"meta.fps: expected a number in [0, 10000], got {value!r}")
        if key == "model" and not isinstance(value, str):
            raise ValueError(f"meta.model: expected a string, got {value!r}")
        out[key] = value
    return out


def _version(persons: list[dict]) -> int:
    """The lowest version that carries every field present (older receivers keep reading what they can)."""
    for version, field in ((4, "hands"), (3, "contacts"), (2, "rotations")):
        if any(field in p for p in persons):
            return version
    return 1


def _dumps(packet: dict) -> bytes:
    return json.dumps(packet, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


class PacketEncoder:
    """Encodes frames of one sender into pose packets (bytes) with a monotonic per-sender `seq`."""

    def __init__(
        self,
        source: str,
        skeleton: str = "coco17",
        image_size: Sequence[int] = (1920, 1080),
        max_bytes: int = MAX_DATAGRAM,
        start_seq: int = 0,
        meta_budget: int = SINGLE_FRAME_BUDGET,
    ) -> None:
        if skeleton not in SKELETON_SIZES:
            raise ValueError(f"skeleton {skeleton!r} cannot be sent; use one of {sorted(SKELETON_SIZES)}")
        if len(image_size) != 2:
            raise ValueError(f"image_size: expected (width, height), got {image_size!r}")
        if not 0 < max_bytes <= MAX_DATAGRAM:
            raise ValueError(f"max_bytes must be in [1, {MAX_DATAGRAM}], got {max_bytes}")
        self.source = _string(source, "source")
        self.skeleton = skeleton
        self.num_keypoints = SKELETON_SIZES[skeleton]
        self.image_size = [_integer(v, 1, 65535, "image_size") for v in image_size]
        self.max_bytes = max_bytes
        self.seq = _integer(start_seq, 0, MAX_INT, "start_seq")  # the seq of the next packet
        self.meta_budget = meta_budget  # meta is left out when it alone pushes a packet past this size
        self.meta_dropped = 0
        self.hands_dropped = 0  # packets sent without hands because they would not fit one datagram with them
        self.last_packet: dict | None = None  # the newest packet encoded, as a dict (for previews/status)

    def _person(self, person: Any, index: int) -> dict:
        k = self.num_keypoints
        pid = _integer(_field(person, "id"), 0, MAX_ID, f"people[{index}].id")
        what = f"person id {pid}"
        out: dict[str, Any] = {
            "id": pid,
            "bbox": _rounded(_field(person, "bbox"), (4,), PX_DECIMALS, COORD_LIMIT, f"{what} bbox"),
            "keypoints": _rounded(_field(person, "keypoints"), (k, 2), PX_DECIMALS, COORD_LIMIT, f"{what} keypoints"),
            "scores": _rounded(_field(person, "scores"), (k,), SCORE_DECIMALS, 1.0, f"{what} scores"),
        }
        if min(out["scores"]) < 0.0:
            raise ValueError(f"{what} scores: confidences must be in [0, 1], got {min(out['scores'])}")
        held = _held(_field(person, "held", ()), k, f"{what} held")
        if held:
            out["held"] = held
        joints = _field(person, "joints_3d")
        out["joints_3d"] = None
        if joints is not None:
            out["joints_3d"] = _rounded(joints, (NUM_JOINTS_3D, 3), METRES_DECIMALS, METRES_LIMIT, f"{what} joints_3d")
        rotations = _field(person, "rotations")
        if rotations is not None:
            out["rotations"] = _rotations(rotations, f"{what} rotations")
        contacts = _field(person, "contacts")
        if contacts is not None:
            out["contacts"] = _rounded(contacts, (2,), SCORE_DECIMALS, 1.0, f"{what} contacts")
            if min(out["contacts"]) < 0.0:
                raise ValueError(f"{what} contacts: probabilities must be in [0, 1], got {out['contacts']}")
        hands = _field(person, "hands")
        if hands is not None:
            out["hands"] = _hands(hands, self.skeleton, f"{what} hands")
        return out

    def encode(
        self,
        frame_index: int,
        timestamp: float,
        people: Sequence[Any],
        meta: Mapping | None = None,
        sent: float | None = None,
    ) -> bytes:
        """One frame -> UTF-8 JSON bytes. `timestamp` is the capture time (time.time() clock); `sent`
        defaults to now. The seq only advances when a packet is produced, so receivers see no gaps
        caused by refused frames."""
        if len(people) > MAX_PEOPLE:
            raise ValueError(f"{len(people)} people in one frame, at most {MAX_PEOPLE}; lower max_people")
        persons = [self._person(p, i) for i, p in enumerate(people)]
        try:
            return self._encode(persons, frame_index, timestamp, meta, sent)
        except PacketTooLarge:
            if not any("hands" in p for p in persons):
                raise
        # Hands are the first thing to go: the bodies of up to 16 whole-body people still fit (docs/protocol.md).
        self.hands_dropped += 1
        return self._encode([{k: v for k, v in p.items() if k != "hands"} for p in persons], frame_index,
                            timestamp, meta, sent)

    def _encode(self, persons: list[dict], frame_index: int, timestamp: float, meta: Mapping | None,
                sent: float | None) -> bytes:
        packet: dict[str, Any] = {
            "v": _version(persons),
            "seq": self.seq,
            "timestamp": _seconds(timestamp, "timestamp"),
            "sent": _seconds(time.time() if sent is None else sent, "sent"),
            "frame": _integer(frame_index, 0, MAX_INT, "frame_index"),
            "source": self.source,
            "skeleton": self.skeleton,
            "image_size": self.image_size,
            "people": persons,
        }
        meta_out = _meta(meta)
        kept = {k: meta_out[k] for k in KEEP_META if k in meta_out} if meta_out else {}
        data = _dumps({**packet, "meta": kept} if kept else packet)
        if meta_out is not None:
            with_meta = _dumps({**packet, "meta": meta_out})
            # meta is best effort: it never costs a packet its single-datagram size (docs/protocol.md), nor one
            # already past that size its place in a datagram
            past_budget = len(data) > self.meta_budget and len(with_meta) <= self.max_bytes
            if len(with_meta) <= self.meta_budget or past_budget:
                packet["meta"], data = meta_out, with_meta
            else:
                self.meta_dropped += 1
                if kept:
                    packet["meta"] = kept
        if len(data) > self.max_bytes:
            raise PacketTooLarge(
                f"packet of {len(data)} bytes exceeds the {self.max_bytes}-byte datagram limit "
                f"({len(persons)} people, {self.skeleton}); send fewer people or use the coco17 skeleton"
            )
        self.seq = self.seq + 1 if self.seq < MAX_INT else 0
        self.last_packet = packet
        return data
