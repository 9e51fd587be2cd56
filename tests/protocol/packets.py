"""Shared pieces of the protocol tests: the validator under test, the schema, sample packets and the oracle.

The validator is loaded straight from its file, the way Blender's stdlib-only world sees it: importing the
`blender_addon` package would pull in bpy and every add-on module, none of which packet.py may depend on.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from typing import Any

from jsonschema import Draft202012Validator

from tests.conftest import ROOT

SCHEMA_PATH = ROOT / "protocol" / "pose_packet.schema.json"
VALIDATOR_PATH = ROOT / "blender_addon" / "core" / "packet.py"
SCHEMA = Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
MAX_DATAGRAM = 65507


def _load_validator() -> Any:
    spec = importlib.util.spec_from_file_location("vitpose_packet_validator", VALIDATOR_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


packet_module = _load_validator()
validate_packet = packet_module.validate_packet
SeqGate = packet_module.SeqGate


def dumps(obj: Any) -> bytes:
    """Compact JSON like the encoder writes; allow_nan so tests can smuggle NaN/Infinity in, and ASCII
    escapes so a lone surrogate goes out as the JSON escape \\udXXX."""
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


HAND = [[1.0, 0.0, 0.0, 0.0], [0.6, 0.8, 0.0, 0.0], [0.5, -0.5, 0.5, -0.5]] + [[0.0, 0.0, 0.0, 1.0]] * 13


def person(pid: int = 0, k: int = 17, joints: bool = True, rotations: bool = False, contacts: bool = False,
           hands: bool = False) -> dict:
    p: dict[str, Any] = {
        "id": pid,
        "bbox": [10.5, 20.0, 310.2, 470.9],
        "keypoints": [[100.0 + i, 200.5 - i] for i in range(k)],
        "scores": [round(0.5 + i / (3 * k), 2) for i in range(k)],
        "held": [1, 3],
        "joints_3d": [[0.1 * i, -0.05 * i, 0.9 + 0.01 * i] for i in range(17)] if joints else None,
    }
    if rotations:
        unit = [[1.0, 0.0, 0.0, 0.0], [0.6, 0.8, 0.0, 0.0], [0.5, -0.5, 0.5, -0.5]]
        p["rotations"] = unit + [[0.0, 0.0, 0.0, 1.0]] * (12 - len(unit))
    if contacts:
        p["contacts"] = [0.97, 0.03]
    if hands:
        p["hands"] = [HAND, None]
    return p


def packet(version: int = 1, skeleton: str = "coco17", people: int = 1) -> dict:
    k = 17 if skeleton == "coco17" else 133
    return {
        "v": version,
        "seq": 41,
        "timestamp": 1764040069.123456,
        "sent": 1764040069.145,
        "frame": 1234,
        "source": "webcam:0",
        "skeleton": skeleton,
        "image_size": [1920, 1080],
        "people": [person(i, k, rotations=version >= 2, contacts=version >= 3, hands=version >= 4 and k == 133)
                   for i in range(people)],
        "meta": {"fps": 29.97, "model": "vitpose-b", "latency_ms": {"infer": 31.5, "total": 48.2}, "gpu": False},
    }


BASES = {
    "coco17_v1": packet(1),
    "coco17_v2": packet(2),
    "coco17_v3": packet(3),
    "wholebody_v1": packet(1, "wholebody133"),
    "wholebody_v4": packet(4, "wholebody133"),
}


def mutated(base: dict, path: tuple, value: Any = None, delete: bool = False) -> dict:
    """A deep copy of `base` with the item at `path` replaced (or deleted)."""
    out = copy.deepcopy(base)
    *head, last = path
    node = out
    for key in head:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return out


def paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths to the values inside obj (containers and leaves, not the root). Of a list only the items
    0, 1 and last: the others take the same code path on both sides and would only cost time."""
    out = []
    if isinstance(obj, dict):
        items = list(obj.items())
    elif isinstance(obj, list):
        items = [(i, obj[i]) for i in sorted({0, 1, len(obj) - 1}) if 0 <= i < len(obj)]
    else:
        items = []
    for key, value in items:
        out.append((*prefix, key))
        out.extend(paths(value, (*prefix, key)))
    return out


# ---- the oracle: jsonschema plus, explicitly, the rules the schema cannot express

SCHEMA_CANNOT_EXPRESS = (
    "datagram larger than 65507 bytes",
    "bytes that are not UTF-8",
    "NaN, Infinity, -Infinity, or a number that overflows a double (1e400)",
    "duplicate keys in an object",
    "strings with lone surrogate escapes (cannot be re-encoded as UTF-8)",
    "rotations (and hand rotations) that are not unit quaternions (|q| off 1 by more than 0.01)",
    "nesting deeper than 8 (checked before parsing; deeper than 5 is never schema-valid anyway)",
)


class _Flags:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def constant(self, name: str) -> float:
        self.problems.append(name)
        return float("nan")

    def number(self, text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            self.problems.append("overflow")
        return value

    def pairs(self, pairs: list) -> dict:
        if len({k for k, _ in pairs}) != len(pairs):
            self.problems.append("duplicate key")
        return dict(pairs)


def _strings(obj: Any):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_plain(data: bytes) -> tuple[bool, Any, list[str]]:
    """(parsed?, value, problems) with Python's permissive json and the extra rules noted, not enforced."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False, None, ["not UTF-8"]
    flags = _Flags()
    try:
        value = json.loads(text, parse_constant=flags.constant, parse_float=flags.number, object_pairs_hook=flags.pairs)
    except (ValueError, RecursionError):
        return False, None, ["not JSON"]
    return True, value, flags.problems


def expected_verdict(data: bytes) -> bool:
    """What validate_packet must answer: jsonschema's verdict, tightened by SCHEMA_CANNOT_EXPRESS."""
    if len(data) > MAX_DATAGRAM:
        return False
    parsed, value, problems = parse_plain(data)
    if not parsed or problems or not SCHEMA.is_valid(value):
        return False
    if not all(_encodable(s) for s in _strings(value)):
        return False
    for p in value["people"]:
        hands = [q for hand in p.get("hands", ()) if hand for q in hand]
        for q in [*p.get("rotations", ()), *hands]:
            if abs(math.sqrt(sum(c * c for c in q)) - 1.0) > 0.01:
                return False
    return True
