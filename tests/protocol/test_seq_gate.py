"""SeqGate: newest-only per sender, stale counting, sender restarts; and the whole path over real UDP."""

from __future__ import annotations

import json
import random
import socket

import numpy as np

from pose_server.protocol import PacketEncoder, Person
from tests.protocol.packets import SeqGate, dumps, packet


def _p(seq: int, sent: float, source: str = "cam") -> dict:
    return {**packet(1), "seq": seq, "sent": sent, "source": source}


def test_in_order_accepted_backwards_and_repeats_stale() -> None:
    gate = SeqGate()
    verdicts = [gate.accept(_p(s, 100.0 + s / 30)) for s in (0, 1, 2, 5, 3, 5, 4, 6)]
    assert verdicts == [True, True, True, True, False, False, False, True]
    assert (gate.accepted, gate.stale, gate.invalid, gate.restarts) == (5, 3, 0, 0)


def test_sources_and_senders_are_separate() -> None:
    gate = SeqGate()
    assert gate.accept(_p(10, 100.0, "a"))
    assert gate.accept(_p(3, 100.1, "b"))  # another source has its own seq
    assert gate.accept(_p(3, 100.1, "b"), sender=("127.0.0.1", 50001))  # same source, another sender
    assert not gate.accept(_p(9, 100.2, "a"))
    assert gate.stale == 1


def test_restart_is_told_from_a_late_packet_by_its_send_time() -> None:
    gate = SeqGate(restart_after_s=1.0)
    for s in range(500):
        assert gate.accept(_p(s, 1000.0 + s / 30))
    last_sent = 1000.0 + 499 / 30
    assert not gate.accept(_p(3, last_sent - 10))  # sent earlier: a late packet
    assert not gate.accept(_p(0, last_sent + 0.5))  # too close to tell: dropped
    assert gate.accept(_p(0, last_sent + 4.0))  # the sender restarted
    assert gate.accept(_p(1, last_sent + 4.03))
    assert not gate.accept(_p(498, last_sent))  # the old run's stragglers are now stale
    assert (gate.restarts, gate.stale) == (1, 3)


def test_a_clock_step_back_stalls_the_sender_only_briefly() -> None:
    gate = SeqGate(restart_after_s=1.0, resync_after=30)
    assert gate.accept(_p(100, 5000.0))
    verdicts = [gate.accept(_p(101 + i, 4000.0 + i / 30)) for i in range(40)]  # clock stepped back 1000 s
    assert verdicts == [False] * 30 + [True] * 10
    assert (gate.stale, gate.restarts) == (30, 1)


def test_feed_counts_invalid_and_keeps_the_reason() -> None:
    gate = SeqGate()
    assert gate.feed(dumps(_p(1, 5.0)))["seq"] == 1
    assert gate.feed(b"{not json") is None
    assert gate.feed(dumps({**_p(2, 5.1), "v": 9})) is None
    assert "version" in gate.last_error
    assert gate.feed(dumps(_p(1, 5.0))) is None
    assert (gate.accepted, gate.invalid, gate.stale) == (1, 2, 1)
    gate.reset()
    assert (gate.accepted, gate.invalid, gate.stale) == (0, 0, 0)
    assert gate.feed(dumps(_p(1, 5.0))) is not None


def test_sender_table_is_bounded() -> None:
    gate = SeqGate(max_senders=4)
    for port in range(10):
        gate.accept(_p(5, 1.0), sender=("127.0.0.1", port))
    assert len(gate._newest) == 4
    assert gate.accept(_p(5, 1.0), sender=("127.0.0.1", 0))  # forgotten, so accepted afresh


def test_encoder_to_gate_over_loopback_udp() -> None:
    """Real sockets: reordered datagrams are counted stale, corrupt ones invalid, a 133-keypoint crowd
    (a single ~40 KB datagram, fragmented on real networks) arrives whole on loopback."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5.0)
        addr = rx.getsockname()
        rng = np.random.default_rng(1)
        enc = PacketEncoder("loopback-test", "coco17", (640, 480))
        datagrams = []
        for i in range(40):
            person = Person(id=1, bbox=[0, 0, 10, 10], keypoints=rng.random((17, 2)) * 600, scores=rng.random(17),
                            joints_3d=rng.normal(size=(17, 3)))
            datagrams.append(enc.encode(i, 1000.0 + i / 30, [person], {"fps": 30.0}, sent=1000.0 + i / 30))
        order = list(range(40))
        random.Random(3).shuffle(order)
        expected_stale = sum(1 for n, i in enumerate(order) if any(j > i for j in order[:n]))
        crowd_enc = PacketEncoder("crowd", "wholebody133", (3840, 2160))
        crowd = [Person(id=i, bbox=[0, 0, 1, 1], keypoints=rng.random((133, 2)) * 3800, scores=rng.random(133))
                 for i in range(16)]
        big = crowd_enc.encode(0, 1.0, crowd)
        assert len(big) > 30_000
        for i in order:
            tx.sendto(datagrams[i], addr)
        tx.sendto(b'{"v":1,"seq":', addr)
        tx.sendto(big, addr)
        gate = SeqGate()
        got = []
        for _ in range(42):
            data, sender = rx.recvfrom(65535)
            result = gate.feed(data, sender)
            if result is not None:
                got.append(result)
        assert (gate.invalid, gate.stale) == (1, expected_stale)
        assert gate.accepted == 40 - expected_stale + 1
        seqs = [p["seq"] for p in got if p["source"] == "loopback-test"]
        assert seqs == sorted(seqs) and seqs[-1] == 39
        assert got[-1]["source"] == "crowd" and len(got[-1]["people"]) == 16
        assert got[-1]["people"][5]["keypoints"] == json.loads(big)["people"][5]["keypoints"]
    finally:
        rx.close()
        tx.close()
