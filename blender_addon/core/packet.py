"""Pose packet validation for the add-on: standard library only (Blender ships no jsonschema).

`validate_packet` checks one datagram against protocol/pose_packet.schema.json plus the rules JSON Schema
cannot express (size, UTF-8, nesting depth, NaN/Infinity, duplicate keys, lone surrogates, unit quaternions),
and never raises: a bad packet must not kill the receiver thread. tests/protocol runs it side by side with
jsonschema on a corpus and on generated packets; the two must agree. `SeqGate` drops stale packets.
See docs/protocol.md.
"""

from __future__ import annotations

import json
import math
import re
from collections import OrderedDict
from itertools import accumulate, chain

MAX_DATAGRAM = 65507
MAX_DEPTH = 8  # a valid packet nests 5 deep (packet > people > person > keypoints > [x, y])
MAX_PEOPLE = 16
SKELETON_SIZES = {"coco17": 17, "wholebody133": 133}
NUM_JOINTS_3D = 17
NUM_BONES = 12
NUM_HAND_BONES = 16  # per hand: the palm, then thumb.01 ... pinky.03 (docs/protocol.md, Hands)
MAX_INT = 9007199254740991
MAX_ID = 2147483647
MAX_TIME = 1e11
COORD_LIMIT = 1e6
METRES_LIMIT = 1e4
MAX_STRING = 256
MAX_META = 32
MAX_LATENCY_KEYS = 16
MAX_LATENCY_MS = 1e6
QUAT_NORM_TOLERANCE = 0.01  # rounding to 1e-3 per component moves the norm by < 0.002

PACKET_REQUIRED = ("v", "seq", "timestamp", "sent", "frame", "source", "skeleton", "image_size", "people")
PACKET_FIELDS = frozenset((*PACKET_REQUIRED, "meta"))
PERSON_REQUIRED = ("id", "bbox", "keypoints", "scores")
PERSON_FIELDS = frozenset((*PERSON_REQUIRED, "held", "joints_3d", "rotations", "contacts", "hands"))
VERSIONS = (1, 2, 3, 4)  # every version this add-on reads: 2 added rotations, 3 foot contacts, 4 hands

# A JSON string, or an unterminated one up to the end. Unrolled and never failing once a quote is seen, so
# the scan is linear: the naive `"(?:[^"\\]|\\.)*"` retries from every quote of `"\"\"\"...` (seconds at 64 KB).
_STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_DEPTH_STEP = [1 if c in b"[{" else -1 if c in b"]}" else 0 for c in range(256)]


class PacketError(Exception):
    """Why a packet was rejected (internal; validate_packet returns the message)."""


def _check_depth(data: bytes) -> None:
    """Reject deep nesting before json sees it: json's parser recurses and a 100000-deep `[[[[` would
    raise RecursionError (or worse, exhaust the C stack) inside Blender."""
    brackets = _STRING_LITERAL.sub(b"", data).translate(None, _NOT_BRACKET)
    if max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH:
        raise PacketError(f"nesting deeper than {MAX_DEPTH} levels")


def _reject_constant(name: str) -> None:
    raise PacketError(f"{name} is not valid JSON (NaN and Infinity are not allowed)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PacketError(f"number {text[:32]} overflows a double")
    return value


def _object(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise PacketError(f"duplicate key {dup[:64]!r}")
    return obj


def parse(data: bytes) -> object:
    """Bytes -> JSON value, or PacketError for everything that is not a well-formed, finite JSON text."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise PacketError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_DATAGRAM:
        raise PacketError(f"{len(data)} bytes, larger than a UDP datagram ({MAX_DATAGRAM})")
    _check_depth(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PacketError(f"not UTF-8: {e.reason} at byte {e.start}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_object)
    except RecursionError:
        raise PacketError("nesting too deep") from None
    except ValueError as e:  # JSONDecodeError, or an integer with more than 4300 digits
        raise PacketError(f"invalid JSON: {e}") from None


# ---- typed field checks; `where` is a path like people[0].keypoints[3] for the message


_NUMBER_TYPES = {int, float}


def _is_number(x: object) -> bool:
    return type(x) is int or type(x) is float  # JSON never yields subclasses; this also excludes bool


def _number(x: object, lo: float, hi: float, where: str) -> None:
    if not _is_number(x):
        raise PacketError(f"{where}: expected a number, got {type(x).__name__}")
    if not lo <= x <= hi:
        raise PacketError(f"{where}: {x!r} is outside [{lo:g}, {hi:g}]"[:200])


def _integer(x: object, lo: int, hi: int, where: str) -> int:
    """JSON Schema counts 3.0 as an integer; accept it like the schema does and hand back an int."""
    if type(x) is float and x.is_integer():
        x = int(x)
    if type(x) is not int:
        raise PacketError(f"{where}: expected an integer, got {type(x).__name__} {x!r}"[:200])
    if not lo <= x <= hi:
        raise PacketError(f"{where}: {x} is outside [{lo}, {hi}]"[:200])
    return x


def _string(x: object, max_len: int, where: str) -> None:
    if type(x) is not str:
        raise PacketError(f"{where}: expected a string, got {type(x).__name__}")
    if len(x) > max_len:
        raise PacketError(f"{where}: {len(x)} characters, at most {max_len}")
    try:
        x.encode("utf-8")
    except UnicodeEncodeError:
        raise PacketError(f"{where}: lone surrogate escape, not representable in UTF-8") from None


def _array(x: object, lo: int, hi: int, where: str) -> list:
    if type(x) is not list:
        raise PacketError(f"{where}: expected an array, got {type(x).__name__}")
    if not lo <= len(x) <= hi:
        size = f"{lo}" if lo == hi else f"{lo} to {hi}"
        raise PacketError(f"{where}: {len(x)} items, expected {size}")
    return x


def _all_numbers_in(values: list, lo: float, hi: float) -> bool:
    """Fast path (C-level map/min/max): 16 whole-body people are ~6000 numbers per packet."""
    return not values or (set(map(type, values)) <= _NUMBER_TYPES and lo <= min(values) and max(values) <= hi)


def _numbers(x: object, n: int, lo: float, hi: float, where: str) -> None:
    """An array of exactly n numbers in [lo, hi]."""
    _array(x, n, n, where)
    if not _all_numbers_in(x, lo, hi):
        for i, v in enumerate(x):
            _number(v, lo, hi, f"{where}[{i}]")


def _points(x: object, n: int, dims: int, limit: float, where: str) -> None:
    """An array of exactly n points, each an array of `dims` numbers within +-limit."""
    _array(x, n, n, where)
    if set(map(type, x)) <= {list} and set(map(len, x)) <= {dims}:
        if _all_numbers_in(list(chain.from_iterable(x)), -limit, limit):
            return
    for i, p in enumerate(x):  # slow path, only to name the culprit
        _numbers(p, dims, -limit, limit, f"{where}[{i}]")


def _object_fields(x: object, allowed: frozenset, required: tuple, where: str) -> dict:
    if type(x) is not dict:
        raise PacketError(f"{where}: expected an object, got {type(x).__name__}")
    unknown = x.keys() - allowed
    if unknown:
        names = ", ".join(sorted(repr(k[:32]) for k in unknown)[:5])
        raise PacketError(f"{where}: unknown field(s) {names}")
    missing = [k for k in required if k not in x]
    if missing:
        raise PacketError(f"{where}: missing field(s) {', '.join(missing)}")
    return x


def _quaternions(x: object, n: int, where: str) -> None:
    _points(x, n, 4, 1, where)
    for i, q in enumerate(x):
        if abs(math.sqrt(sum(c * c for c in q)) - 1.0) > QUAT_NORM_TOLERANCE:
            raise PacketError(f"{where}[{i}]: not a unit quaternion")


def _person(p: object, k: int, version: int, where: str) -> None:
    _object_fields(p, PERSON_FIELDS, PERSON_REQUIRED, where)
    p["id"] = _integer(p["id"], 0, MAX_ID, f"{where}.id")
    _numbers(p["bbox"], 4, -COORD_LIMIT, COORD_LIMIT, f"{where}.bbox")
    _points(p["keypoints"], k, 2, COORD_LIMIT, f"{where}.keypoints")
    _numbers(p["scores"], k, 0, 1, f"{where}.scores")
    if "held" in p:
        held = _array(p["held"], 0, k, f"{where}.held")
        p["held"] = held = [_integer(h, 0, k - 1, f"{where}.held[{i}]") for i, h in enumerate(held)]
        if len(set(held)) != len(held):
            raise PacketError(f"{where}.held: repeated index")
    if p.get("joints_3d") is not None:
        _points(p["joints_3d"], NUM_JOINTS_3D, 3, METRES_LIMIT, f"{where}.joints_3d")
    if "rotations" in p:
        if version < 2:
            raise PacketError(f"{where}.rotations: only allowed in version 2 packets")
        _quaternions(p["rotations"], NUM_BONES, f"{where}.rotations")
    if "contacts" in p:
        if version < 3:
            raise PacketError(f"{where}.contacts: only allowed in version 3 packets")
        _numbers(p["contacts"], 2, 0, 1, f"{where}.contacts")
    if "hands" in p:
        if version < 4:
            raise PacketError(f"{where}.hands: only allowed in version 4 packets")
        if k == 17:
            raise PacketError(f"{where}.hands: only allowed with a whole-body skeleton")
        for i, hand in enumerate(_array(p["hands"], 2, 2, f"{where}.hands")):
            if hand is not None:
                _quaternions(hand, NUM_HAND_BONES, f"{where}.hands[{i}]")


def _meta(meta: object) -> None:
    if type(meta) is not dict:
        raise PacketError(f"meta: expected an object, got {type(meta).__name__}")
    if len(meta) > MAX_META:
        raise PacketError(f"meta: {len(meta)} fields, at most {MAX_META}")
    for key, value in meta.items():
        where = f"meta.{key[:32]}"
        _string(key, MAX_DATAGRAM, f"{where} (key)")
        if key == "fps":
            _number(value, 0, 1e4, where)
        elif key == "model":
            _string(value, MAX_STRING, where)
        elif key == "latency_ms":
            if type(value) is not dict:
                raise PacketError(f"{where}: expected an object, got {type(value).__name__}")
            if len(value) > MAX_LATENCY_KEYS:
                raise PacketError(f"{where}: {len(value)} fields, at most {MAX_LATENCY_KEYS}")
            for stage, ms in value.items():
                _string(stage, MAX_DATAGRAM, f"{where} (key)")
                _number(ms, 0, MAX_LATENCY_MS, f"{where}.{stage[:32]}")
        elif type(value) is str:
            _string(value, MAX_STRING, where)
        elif not (value is None or type(value) is bool or _is_number(value)):
            raise PacketError(f"{where}: meta values must be a string, number, boolean or null")


def check_packet(packet: object) -> dict:
    """The schema's rules on an already parsed packet; returns it with integer fields as ints."""
    p = _object_fields(packet, PACKET_FIELDS, PACKET_REQUIRED, "packet")
    v = p["v"]
    if not (_is_number(v) and v in VERSIONS):
        raise PacketError(f"v: unsupported protocol version {v!r}"[:80] + " (this add-on reads versions 1 to 4)")
    p["v"] = int(v)
    p["seq"] = _integer(p["seq"], 0, MAX_INT, "seq")
    _number(p["timestamp"], 0, MAX_TIME, "timestamp")
    _number(p["sent"], 0, MAX_TIME, "sent")
    p["frame"] = _integer(p["frame"], 0, MAX_INT, "frame")
    _string(p["source"], MAX_STRING, "source")
    if type(p["skeleton"]) is not str or p["skeleton"] not in SKELETON_SIZES:
        raise PacketError(f"skeleton: {p['skeleton']!r}"[:80] + f" is not one of {', '.join(SKELETON_SIZES)}")
    k = SKELETON_SIZES[p["skeleton"]]
    size = _array(p["image_size"], 2, 2, "image_size")
    p["image_size"] = [_integer(s, 1, 65535, f"image_size[{i}]") for i, s in enumerate(size)]
    for i, person in enumerate(_array(p["people"], 0, MAX_PEOPLE, "people")):
        _person(person, k, p["v"], f"people[{i}]")
    if "meta" in p:
        _meta(p["meta"])
    return p


def validate_packet(data: bytes) -> tuple[bool, dict | str]:
    """(True, packet) for a valid datagram, else (False, why). Never raises."""
    try:
        return True, check_packet(parse(data))
    except PacketError as e:
        reason = str(e)
    except Exception as e:  # a validator bug must cost one packet, not the receiver thread
        reason = f"validator error {type(e).__name__}: {e}"[:200]
    # the reason may quote a key with a lone surrogate: make it safe for Blender string properties
    return False, reason.encode("utf-8", "backslashreplace").decode("utf-8")


class SeqGate:
    """Passes only the newest packet of each sender; older ones are stale: dropped and counted.

    Senders are keyed by (address, source). Within a run, a packet is newer when its seq is higher. A
    sender that restarts counts from seq 0 again; `sent` (sender clock) tells its packets from late ones:
    a lower seq sent more than `restart_after_s` after the newest accepted packet starts a new run, and a
    higher seq sent more than `restart_after_s` before it is a leftover of an earlier run. If the sender's
    clock steps, `resync_after` stale packets in a row re-anchor the sender, so the stream never stalls
    for long.
    """

    def __init__(self, restart_after_s: float = 1.0, resync_after: int = 30, max_senders: int = 64) -> None:
        self.restart_after_s = restart_after_s
        self.resync_after = resync_after
        self.max_senders = max_senders
        self._newest: OrderedDict[tuple, list] = OrderedDict()  # key -> [seq, sent, stale packets in a row]
        self.accepted = 0
        self.invalid = 0
        self.stale = 0
        self.restarts = 0
        self.last_error = ""

    def _is_newer(self, newest: list, seq: int, sent: float) -> bool:
        if seq > newest[0]:
            return sent >= newest[1] - self.restart_after_s
        return sent > newest[1] + self.restart_after_s  # a restarted sender, not a late packet

    def accept(self, packet: dict, sender: object = None) -> bool:
        """True if a validated packet is the newest of its sender (and remember it), False if stale."""
        key = (sender, packet["source"])
        seq, sent = packet["seq"], packet["sent"]
        newest = self._newest.get(key)
        if newest is not None and not self._is_newer(newest, seq, sent):
            if newest[2] < self.resync_after:
                newest[2] += 1
                self.stale += 1
                return False
            self.restarts += 1  # a clock step made every packet look old for a while: follow the sender
        elif newest is not None and seq <= newest[0]:
            self.restarts += 1
        self._newest[key] = [seq, sent, 0]
        self._newest.move_to_end(key)
        while len(self._newest) > self.max_senders:
            self._newest.popitem(last=False)
        self.accepted += 1
        return True

    def feed(self, data: bytes, sender: object = None) -> dict | None:
        """Validate one datagram and gate it: the packet, or None (counted as invalid or stale)."""
        ok, result = validate_packet(data)
        if not ok:
            self.invalid += 1
            self.last_error = result
            return None
        return result if self.accept(result, sender) else None

    def reset(self) -> None:
        self._newest.clear()
        self.accepted = self.invalid = self.stale = self.restarts = 0
        self.last_error = ""
