"""UDP output, recording (also under SIGKILL) and replay over real loopback sockets."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jsonschema
import pytest

from pose_server.record import Recorder, read_recording, replay
from pose_server.udp import UdpSender, parse_target

from .conftest import ROOT, SCHEMA, Receiver


def _packet(seq: int, t: float) -> dict:
    kpts = [[10.0 + seq, 20.0]] * 17
    person = {"id": 0, "bbox": [0, 0, 50, 100], "keypoints": kpts, "scores": [0.9] * 17, "joints_3d": None}
    return {"v": 1, "seq": seq, "timestamp": t, "sent": t + 0.01, "frame": seq, "source": "test", "skeleton": "coco17",
            "image_size": [320, 240], "people": [person]}


def test_parse_target_forms():
    assert parse_target("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_target("[::1]:9001") == ("::1", 9001)
    assert parse_target("localhost:1") == ("localhost", 1)
    for bad in ("9000", "host:", "::1:9000", "[::1]9000", "h:70000", ":9000"):
        with pytest.raises(ValueError, match="UDP target"):
            parse_target(bad)


def test_sends_to_ipv4_and_ipv6_targets():
    v4 = Receiver()
    try:
        v6 = Receiver(socket.AF_INET6, "::1")
    except OSError:
        v6 = None  # no IPv6 on this host: the IPv4 half still runs
    sender = UdpSender([v4.target] + ([v6.target] if v6 else []))
    try:
        assert sender.send(b'{"x":1}') == (2 if v6 else 1)
        assert v4.collect(idle=0.5) == [b'{"x":1}']
        if v6:
            assert v6.collect(idle=0.5) == [b'{"x":1}']
    finally:
        sender.close()
        v4.close()
        if v6:
            v6.close()


def test_unreachable_target_logged_once_and_streaming_goes_on(receiver, caplog):
    caplog.set_level(logging.WARNING, logger="pose_server.udp")
    sender = UdpSender(["no-such-host.invalid:9000", "[::1]:9" if socket.has_ipv6 else "bad.invalid:1",
                        receiver.target])
    for i in range(20):
        sender.send(f'{{"i":{i}}}'.encode())
    got = receiver.collect(idle=0.5)
    assert len(got) == 20
    warnings = [r for r in caplog.records if "no-such-host.invalid" in r.getMessage()]
    assert len(warnings) == 1
    stats = {s["target"]: s for s in sender.stats()}
    assert stats["no-such-host.invalid:9000"]["dropped"] == 20 and stats[receiver.target]["sent"] == 20
    sender.close()


def test_a_receiver_that_never_reads_does_not_block_the_sender():
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind(("127.0.0.1", 0))
    sender = UdpSender([f"127.0.0.1:{sink.getsockname()[1]}"])
    try:
        payload = b"x" * 60000
        for _ in range(500):  # ~30 MB into a 4 kB receive buffer: the kernel drops, we never wait
            sender.send(payload)
        assert all(s.gettimeout() == 0.0 for s in sender._sockets.values())  # non-blocking sockets
        assert sender.stats()[0]["sent"] + sender.stats()[0]["dropped"] == 500
    finally:
        sender.close()
        sink.close()


def test_record_then_replay_over_udp_keeps_timing(tmp_path, receiver):
    path = tmp_path / "take.jsonl"
    rec = Recorder(path)
    gaps = [0.0, 0.1, 0.1, 0.3, 0.1, 0.2]  # uneven on purpose
    t = 1_700_000_000.0
    sent = []
    for i, gap in enumerate(gaps):
        t += gap
        sent.append(_packet(i + 5, t))
        rec.write(json.dumps(sent[-1]).encode())
    rec.close()
    assert [p["seq"] for p in read_recording(path)] == [5, 6, 7, 8, 9, 10]

    sender = UdpSender([receiver.target])
    arrivals, packets = [], []
    receiver.sock.settimeout(2.0)

    def send(data: bytes, packet: dict) -> None:
        sender.send(data)
        packets.append(json.loads(receiver.sock.recv(65535)))
        arrivals.append(time.perf_counter())

    n = replay(path, send, speed=2.0)
    sender.close()
    assert n == len(gaps)
    for original, got in zip(sent, packets, strict=True):
        jsonschema.validate(got, SCHEMA)
        assert got["timestamp"] == original["timestamp"] and got["people"] == original["people"]
    assert [p["seq"] for p in packets] == list(range(len(gaps)))  # renumbered: monotonic for receivers
    expected = [g / 2.0 for g in gaps[1:]]  # speed 2 halves every gap
    measured = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    for want, got in zip(expected, measured, strict=True):
        assert abs(got - want) < 0.05, (expected, measured)


def test_replay_cli_streams_a_session(tmp_path, receiver):
    path = tmp_path / "take.jsonl"
    with Recorder(path) as rec:
        for i in range(5):
            rec.write(_packet(i, 1_700_000_000.0 + i / 30))
    proc = subprocess.run([sys.executable, "-m", "pose_server.cli", "replay", str(path), "--udp", receiver.target,
                           "--speed", "4"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(d) for d in receiver.collect(idle=0.5)]
    assert [p["frame"] for p in got] == [0, 1, 2, 3, 4]


def test_recording_survives_sigkill(tmp_path):
    path = tmp_path / "killed.jsonl"
    script = textwrap.dedent(f"""
        import json, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pose_server.record import Recorder
        rec = Recorder({str(path)!r})
        i = 0
        while True:
            packet = {_packet(0, 1.0)!r}
            packet["seq"] = i
            packet["people"] = packet["people"] * (1 + i % 7)  # lines of varying length
            rec.write(json.dumps(packet).encode())
            i += 1
            if i % 50 == 0:
                time.sleep(0.001)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 20
        while (not path.exists() or path.stat().st_size < 200_000) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    assert len(complete) > 10
    seqs = [json.loads(line)["seq"] for line in complete]  # every complete line parses
    assert seqs == list(range(len(seqs)))
    packets = list(read_recording(path))  # the reader stops cleanly at a partial last line, if any
    assert len(packets) == len(complete) + (1 if tail and _parses(tail) else 0)


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def test_a_session_path_with_a_tilde_is_the_home_folder(tmp_path, monkeypatch):
    from pose_server.record import read_recording

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "take.jsonl").write_text('{"v": 1, "seq": 0}\n')
    assert [p["seq"] for p in read_recording("~/take.jsonl")] == [0]
