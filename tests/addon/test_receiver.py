"""The UDP receiver on a real loopback socket: newest-only, counters, hostile input, clean stop."""

from __future__ import annotations

import json
import random
import socket

import pytest

from blender_addon.core.receiver import DEFAULT_HOST, DEFAULT_PORT, MAX_PENDING, Receiver

from .helpers import wait_until
from .packets import encode, make_packet

pytestmark = pytest.mark.bpy42


@pytest.fixture
def rx(free_port):
    r = Receiver("127.0.0.1", free_port)
    r.start()
    yield r
    r.stop()


def _send_all(rx, sender, datagrams, budget=100_000):
    """Send in bursts the kernel buffer holds, waiting for each burst, so nothing is lost and counts are exact."""
    burst, size = [], 0
    for d in [*datagrams, None]:
        if d is not None and (not burst or size + len(d) <= budget):
            burst.append(d)
            size += len(d)
            continue
        target = rx.received + len(burst)
        for b in burst:
            sender.sendto(b, ("127.0.0.1", rx.port))
        wait_until(lambda target=target: rx.received >= target, what=f"{target} datagrams")
        burst, size = ([d], len(d)) if d is not None else ([], 0)


def test_defaults_are_loopback_and_9000():
    assert (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 9000)
    assert (Receiver().host, Receiver().port) == ("127.0.0.1", 9000)


def test_keeps_only_the_newest_packet_and_counts_drops(rx, sender):
    _send_all(rx, sender, [encode(make_packet(seq, 100.0 + seq / 30)) for seq in range(5)])
    packet = rx.take_latest()
    assert packet["seq"] == 4
    assert rx.take_latest() is None
    stats = rx.stats()
    assert (stats["received"], stats["dropped"], stats["invalid"], stats["stale"]) == (5, 4, 0, 0)
    assert stats["packets_per_s"] == pytest.approx(5.0)


def test_peek_shows_the_newest_packet_without_consuming_or_counting(rx, sender):
    assert rx.peek_latest() is None
    _send_all(rx, sender, [encode(make_packet(seq, 100.0 + seq / 30)) for seq in range(2)])
    before = rx.stats()
    assert rx.peek_latest()["seq"] == 1
    assert rx.peek_latest()["seq"] == 1  # peeking twice changes nothing
    assert rx.stats() == before
    assert rx.take_latest()["seq"] == 1  # still there for the tick
    assert rx.peek_latest() is None and rx.take_latest() is None


def test_out_of_order_packets_are_stale_and_never_replace_newer(rx, sender):
    _send_all(rx, sender, [encode(make_packet(10, 10.0))])
    assert rx.take_latest()["seq"] == 10
    _send_all(rx, sender, [encode(make_packet(s, 1.0)) for s in (3, 9, 10)])
    assert rx.take_latest() is None
    assert rx.stats()["stale"] == 3
    _send_all(rx, sender, [encode(make_packet(11, 11.0))])
    assert rx.take_latest()["seq"] == 11


def test_thousands_of_hostile_datagrams_are_counted_and_never_stop_it(rx, sender):
    rng = random.Random(0)
    good = encode(make_packet(1, 1.0))
    bad = []
    for i in range(3000):
        kind = i % 6
        if kind == 0:  # truncated valid packet
            bad.append(good[: rng.randrange(1, len(good))])
        elif kind == 1:  # random bytes
            bad.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        elif kind == 2:  # valid JSON, wrong shape
            bad.append(json.dumps(rng.choice([[], {}, 1, "x", None, {"seq": -1}, {"people": "x"}])).encode())
        elif kind == 3:  # a field mutated to a wrong type or range
            p = make_packet(2, 2.0)
            key = rng.choice(["seq", "timestamp", "people", "skeleton", "image_size", "v"])
            p[key] = rng.choice([None, "1", -5, [1], {"a": 1}, float("nan")])
            bad.append(json.dumps(p).encode())
        elif kind == 4:  # oversized
            bad.append(b"{" + b" " * rng.randrange(60000, 65000) + b"}")
        else:  # invalid UTF-8 / NUL bytes
            bad.append(b"\xff\xfe\x00" + good[3:])
    _send_all(rx, sender, bad)
    stats = rx.stats()
    assert stats["received"] == 3000
    assert stats["invalid"] == 3000
    assert stats["last_error"].startswith("invalid packet:")
    assert rx.take_latest() is None
    assert rx.running
    # Still serving: a valid packet after all that is taken.
    _send_all(rx, sender, [good])
    assert rx.take_latest()["seq"] == 1


def test_stop_closes_the_socket_and_restart_rebinds(free_port, sender):
    r = Receiver("127.0.0.1", free_port)
    r.start()
    r.stop()
    assert not r.running
    r.stop()  # twice is fine
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", free_port))  # the port is free again
    r.start()
    try:
        _send_all(r, sender, [encode(make_packet(0, 0.5))])
        assert r.take_latest()["seq"] == 0
    finally:
        r.stop()


def test_busy_port_gives_an_error_that_says_what_to_do(rx):
    other = Receiver("127.0.0.1", rx.port)
    with pytest.raises(OSError, match="pick a free port"):
        other.start()
    assert not other.running


def test_listening_beyond_loopback_needs_a_token(free_port):
    with pytest.raises(OSError, match="set a token"):
        Receiver("0.0.0.0", free_port).start()


def test_a_token_admits_only_packets_that_carry_it(free_port, sender):
    r = Receiver("127.0.0.1", free_port, token="s3cret")
    r.start()
    try:
        plain, wrong, right = (make_packet(i, float(i + 1)) for i in range(3))
        wrong["meta"]["token"] = "guess"
        right["meta"]["token"] = "s3cret"
        _send_all(r, sender, [encode(plain), encode(wrong)])
        assert r.take_latest() is None
        assert r.stats()["invalid"] == 2 and "token" in r.stats()["last_error"]
        _send_all(r, sender, [encode(right)])
        assert r.take_latest()["seq"] == 2
    finally:
        r.stop()


def test_take_all_hands_out_the_overwritten_packets_oldest_first(rx):
    n = MAX_PENDING + 6
    for seq in range(n):
        assert rx.offer(encode(make_packet(seq, 1000.0 + seq)))
    assert rx.stats()["dropped"] == n - 1
    packets = rx.take_all()
    assert [p["seq"] for p in packets] == list(range(n - MAX_PENDING - 1, n))  # the newest + MAX_PENDING before it
    assert rx.stats()["dropped"] == n - 1 - MAX_PENDING  # only those older than the pending window stay dropped
    assert rx.take_all() == [] and rx.take_latest() is None
    for seq in range(n, n + 3):
        rx.offer(encode(make_packet(seq, 1000.0 + seq)))
    assert rx.take_latest()["seq"] == n + 2  # taking only the newest leaves the other two dropped
    assert rx.take_all() == [] and rx.stats()["dropped"] == n - 1 - MAX_PENDING + 2


def test_it_listens_on_ipv6_loopback_as_the_server_can_send_there():
    """The server sends to `--udp [::1]:PORT` (docs/server.md); the add-on opened an IPv4 socket whatever the Host,
    and Host ::1 failed with an error that blamed another program on the port."""
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.fail("this machine has no IPv6 loopback; the add-on's IPv6 path cannot be checked here")
    for host in ("::1", "[::1]"):
        r = Receiver(host, 0)
        r.start()  # loopback: no token needed
        try:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as out:
                out.sendto(encode(make_packet(0, 1_700_000_000.0)), ("::1", r.port))
            wait_until(lambda r=r: r.received == 1, what="a packet over IPv6")
            assert r.invalid == 0 and r.take_latest() is not None
        finally:
            r.stop()
    with pytest.raises(OSError, match="check the address"):
        Receiver("203.0.113.7", 0, token="t").start()  # not this computer's
