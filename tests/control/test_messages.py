"""The message schema on its own: any text either parses or becomes a ProtocolError, never a crash."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pose_server.control import messages as m

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_a_protocol_error(text):
    try:
        req = m.parse_request(text)
    except m.ProtocolError as e:
        assert e.code and e.message
    else:
        assert req.cmd in m.COMMANDS


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(m.COMMANDS)), st.dictionaries(st.sampled_from(["changes", "stream", "rate", "path",
                                                                          "max_width", "encoding", "id", "x"]),
                                                         JSON, max_size=4))
def test_commands_with_random_arguments(cmd, args):
    text = json.dumps({"cmd": cmd, **args})
    try:
        req = m.parse_request(text)
    except m.ProtocolError as e:
        assert e.code in {"wrong_type", "out_of_range", "unknown_field", "missing_field", "invalid_json"}
        if e.code != "invalid_json":
            assert e.cmd == cmd  # the error names the command
    else:
        if req.cmd == "set_config":
            try:
                m.validate_config_changes(req.args["changes"], set(m.CONFIG_FIELDS))
            except m.ProtocolError as e:
                assert e.code in {"wrong_type", "out_of_range", "unknown_field", "missing_field"}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(m.CONFIG_FIELDS)), JSON, min_size=1, max_size=3))
def test_config_values_of_any_type_are_checked(changes):
    try:
        m.validate_config_changes(changes)
    except m.ProtocolError as e:
        assert e.code in {"wrong_type", "out_of_range"}
    else:
        for name, value in changes.items():  # what passes has the declared type
            spec = m.CONFIG_FIELDS[name]
            assert value is None or isinstance(value, spec.types)


def test_outgoing_messages_are_strict_json():
    import numpy as np

    text = m.dumps({"fps": float("nan"), "p": np.float32(1.5), "a": np.arange(3), "t": (1, 2)})
    assert json.loads(text) == {"fps": None, "p": 1.5, "a": [0, 1, 2], "t": [1, 2]}


def _error(changes: dict) -> m.ProtocolError | None:
    try:
        m.validate_config_changes(changes)
    except m.ProtocolError as e:
        return e
    return None


def test_values_the_packets_cannot_carry_are_refused_before_they_are_applied():
    """A token the encoder refuses used to be "applied live" and then stop the stream; an IPv6 target without
    brackets passed the API and failed in the sender after the UDP targets had already changed."""
    assert _error({"udp_token": "x" * 256}) is None
    assert _error({"udp_token": "x" * 257}).code == "out_of_range"
    assert _error({"udp_token": "\ud800"}).code == "out_of_range"
    assert _error({"udp": ["[::1]:9000", "127.0.0.1:9001"]}) is None
    for bad in ("::1:9000", "host", "host:0", ":9000"):
        assert _error({"udp": [bad]}).code == "out_of_range", bad
        assert _error({"vmc": [bad]}).code == "out_of_range", bad


def test_threads_and_drop_stale_are_typed():
    """Unchecked, threads "abc" failed the next start with a misleading "cannot read the model file", and
    drop_stale "no" counted as true."""
    assert _error({"threads": "abc"}).code == "wrong_type"
    assert _error({"threads": 0}).code == "out_of_range"
    assert _error({"drop_stale": "no"}).code == "wrong_type"
    assert _error({"threads": None, "drop_stale": None}) is None and _error({"threads": 2, "drop_stale": True}) is None
