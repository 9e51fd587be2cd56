"""Property tests: validate_packet never raises, on any bytes, and agrees with jsonschema (plus the listed
gaps, packets.expected_verdict) on every JSON text: random ones, and valid packets mutated at random."""

from __future__ import annotations

import json
import os
import re

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pose_server.protocol import PacketEncoder, Person
from tests.protocol.packets import BASES, SCHEMA, dumps, expected_verdict, mutated, paths, validate_packet

# PROTOCOL_EXAMPLES=5000 for a long hunt; the default keeps the whole folder well under a minute
EXAMPLES = int(os.environ.get("PROTOCOL_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE_NAMES = sorted(BASES)
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _check(data: bytes) -> None:
    ok, result = validate_packet(data)  # must not raise, whatever the bytes
    assert isinstance(ok, bool)
    if ok:
        assert isinstance(result, dict)
    else:
        assert isinstance(result, str) and result
        result.encode("utf-8")  # safe to show in Blender's UI, even when the packet quoted a lone surrogate
    assert ok == expected_verdict(data), result
    event("valid" if ok else "invalid")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 16, 17, 132, 133, 65535, 65536, 2**31 - 1, 2**31, 2**53 - 1, 2**53, 10**400]),
    st.sampled_from([0.0, 1.0, 2.0, 16.0, -0.0, 1e-300, 1e4, -1e4, 1e6, -1e6, 1e11, 1.0000001, 0.9999999, 1e4 + 1e-9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2, max_value=2),
    st.text(max_size=12),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),  # lone surrogates
    st.sampled_from(["coco17", "wholebody133", "x" * 257, ""]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@SETTINGS
@given(st.binary(max_size=3000))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@SETTINGS
@given(json_values)
def test_random_json_values(value: object) -> None:
    _check(dumps(value))


@st.composite
def mutated_packets(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(BASE_NAMES))
    packet = BASES[name]
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(packet)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        if draw(st.booleans()) and isinstance(path[-1], str):
            packet = mutated(packet, path, delete=True)
        else:
            packet = mutated(packet, path, draw(json_values))
    if draw(st.integers(0, 9)) == 0 and isinstance(packet, dict):  # sometimes an extra key in some object
        objects = [()] + [p for p in paths(packet) if isinstance(_at(packet, p), dict)]
        parent = draw(st.sampled_from(objects))
        packet = mutated(packet, (*parent, draw(st.text(max_size=8))), draw(scalars))
    return dumps(packet)


def _at(obj: object, path: tuple) -> object:
    for key in path:
        obj = obj[key]
    return obj


@SETTINGS
@given(mutated_packets())
def test_mutated_packets(data: bytes) -> None:
    _check(data)


@SETTINGS
@given(st.sampled_from(BASE_NAMES), st.data())
def test_numbers_replaced_by_any_literal(name: str, data: st.DataObject) -> None:
    """Swap one number of a valid packet for an odd literal: huge, tiny, NaN, exponent forms, garbage."""
    text = dumps(BASES[name])
    spans = [m.span() for m in NUMBER.finditer(text)]
    start, end = data.draw(st.sampled_from(spans))
    literal = data.draw(st.sampled_from([
        b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1e-400", b"1E2", b"-0", b"0.0", b"00", b"1.",
        b".5", b"+1", b"1e308", b"9" * 400, b"9" * 5000, b"true", b"null", b'"1"', b"[]", b"0x10",
    ]) | st.from_regex(rb"\A-?[0-9]{1,25}(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?\Z"))
    _check(text[:start] + literal + text[end:])


@SETTINGS
@given(st.sampled_from(BASE_NAMES), st.data())
def test_byte_damage(name: str, data: st.DataObject) -> None:
    """Truncations, flipped bytes, inserted bytes and repeated slices of valid packets."""
    raw = bytearray(dumps(BASES[name]))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw)))
        kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "repeat"]))
        if kind == "truncate":
            raw = raw[:i]
        elif kind == "flip" and i < len(raw):
            raw[i] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"[", b"{", b'"', b"\\", b","]))
        else:
            raw[i:i] = raw[i : i + data.draw(st.integers(1, 64))]
    _check(bytes(raw))


def _array(data: st.DataObject, rng: np.random.Generator, shape: tuple, lo: float, hi: float, dtype: type,
           ) -> np.ndarray:
    """Seeded uniform values (fast for 133x2) with a few entries chosen by hypothesis: bounds, rounding ties."""
    arr = rng.uniform(lo, hi, size=shape).astype(dtype)
    special = st.floats(lo, hi, allow_nan=False, width=32 if dtype == np.float32 else 64)
    for _ in range(data.draw(st.integers(0, 3))):
        arr.flat[data.draw(st.integers(0, arr.size - 1))] = data.draw(special | st.sampled_from([lo, hi]))
    return arr


@SETTINGS
@given(st.integers(0, 3), st.integers(0, 2**32 - 1), st.data())
def test_encoder_output_always_validates(num_people: int, seed: int, data: st.DataObject) -> None:
    """Any in-range arrays (float32 or float64) encode to a packet both sides accept, within rounding."""
    rng = np.random.default_rng(seed)
    skeleton = data.draw(st.sampled_from(["coco17", "wholebody133"]))
    k = 17 if skeleton == "coco17" else 133
    scale = data.draw(st.sampled_from([1.0, 4000.0, 999_999.0]))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    people = []
    for _ in range(num_people):
        quats = rng.normal(size=(12, 4))
        quats *= data.draw(st.floats(0.6, 1.9)) / np.linalg.norm(quats, axis=1, keepdims=True)  # not quite unit
        people.append(Person(
            id=data.draw(st.integers(0, 2**31 - 1)),
            bbox=_array(data, rng, (4,), -scale, scale, dtype),
            keypoints=_array(data, rng, (k, 2), -scale, scale, dtype),
            scores=_array(data, rng, (k,), 0.0, 1.0, dtype),
            held=rng.random(k) < data.draw(st.sampled_from([0.0, 0.2, 1.0])),
            joints_3d=_array(data, rng, (17, 3), -9999.0, 9999.0, dtype) if data.draw(st.booleans()) else None,
            rotations=quats if data.draw(st.booleans()) else None,
        ))
    enc = PacketEncoder(data.draw(st.text(max_size=256)), skeleton, (3840, 2160))
    t = data.draw(st.floats(0, 1e11, allow_nan=False))
    out = enc.encode(data.draw(st.integers(0, 2**53 - 1)), t, people, {"fps": 30.0}, sent=t)
    ok, packet = validate_packet(out)
    assert ok, packet
    assert SCHEMA.is_valid(json.loads(out))
    for sent, got in zip(people, packet["people"], strict=True):
        tol = np.finfo(dtype).eps * scale
        np.testing.assert_allclose(got["keypoints"], sent.keypoints, rtol=0, atol=0.05 + tol)
        np.testing.assert_allclose(got["scores"], sent.scores, rtol=0, atol=0.005 + 1e-6)
        assert got.get("held", []) == np.flatnonzero(sent.held).tolist()
        if sent.joints_3d is not None:
            atol = 0.0005 + np.finfo(dtype).eps * 9999
            np.testing.assert_allclose(got["joints_3d"], sent.joints_3d, rtol=0, atol=atol)
        if sent.rotations is not None:
            unit = sent.rotations / np.linalg.norm(sent.rotations, axis=1, keepdims=True)
            np.testing.assert_allclose(got["rotations"], unit, rtol=0, atol=0.0005 + 1e-9)
