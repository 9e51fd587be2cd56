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
    (tmp_path / "take.jsonl").write_text(json.dumps(_packet(0, 1_700_000_000.0)) + "\n")
    assert [p["seq"] for p in read_recording("~/take.jsonl")] == [0]


def test_a_take_keeps_no_token_and_replay_sends_the_one_it_is_given(tmp_path, receiver):
    """Takes stored the UDP token they went out with (a secret in a file people share), and a replay sent that old
    token whatever the receiver now expected: a take recorded without one could not drive a Blender that needs one."""
    path = tmp_path / "take.jsonl"
    with Recorder(path) as rec:
        for i in range(3):
            packet = dict(_packet(i, 1_700_000_000.0 + i / 30), meta={"token": "old-secret", "fps": 30.0})
            rec.write(json.dumps(packet).encode() if i % 2 else packet)  # bytes as the server sends, or a dict
    assert "old-secret" not in path.read_text()
    assert [p["meta"] for p in read_recording(path)] == [{"fps": 30.0}] * 3

    sender = UdpSender([receiver.target])
    for token in ("new-secret", None):
        assert replay(path, lambda data, _p: sender.send(data), speed=50.0, token=token) == 3
        got = [json.loads(d) for d in receiver.collect(idle=0.3)]
        assert [p["meta"].get("token") for p in got] == [token] * 3
        assert all(p["meta"]["fps"] == 30.0 for p in got)
        for p in got:
            jsonschema.validate(p, SCHEMA)
    sender.close()

    proc = subprocess.run([sys.executable, "-m", "pose_server.cli", "replay", str(path), "--udp", receiver.target,
                           "--speed", "50", "--udp-token", "cli-secret"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(d)["meta"]["token"] for d in receiver.collect(idle=0.5)] == ["cli-secret"] * 3


def test_a_file_that_is_no_session_is_refused_before_anything_is_sent(tmp_path, receiver):
    """replay sent any JSON object of a .jsonl (another program's log, say) to the receiver."""
    path = tmp_path / "app.jsonl"
    lines = [json.dumps(_packet(0, 1_700_000_000.0)), json.dumps({"level": "info", "msg": "started"})]
    path.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "pose_server.cli", "replay", str(path), "--udp", receiver.target],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "app.jsonl line 2 is not a pose packet" in proc.stderr and "'v' is None" in proc.stderr
    assert not receiver.collect(idle=0.3)
    for bad, why in ((["not", "an", "object"], "a JSON list"), (dict(_packet(0, 1.0), v=9), "'v' is 9"),
                     (dict(_packet(0, 1.0), timestamp="noon"), "'timestamp' is 'noon'"),
                     (dict(_packet(0, 1.0), people=None), "no 'people' list")):
        path.write_text(json.dumps(bad) + "\n")
        with pytest.raises(ValueError, match=why):
            replay(path, lambda data, _p: pytest.fail("sent"))


def test_a_name_with_both_addresses_is_sent_to_over_ipv4(monkeypatch):
    """`localhost` resolves to ::1 first on Windows; the first answer was taken, so packets went over IPv6 to
    receivers listening on IPv4 only (Blender's add-on by default, VSeeFace) and nothing arrived, nothing said."""
    v4 = Receiver()
    real = socket.getaddrinfo

    def both(host, port, *args, **kwargs):  # this machine's resolver, as Windows answers for localhost
        if host != "dualstack.test":
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET6, socket.SOCK_DGRAM, 17, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", both)
    sender = UdpSender([f"dualstack.test:{v4.target.rsplit(':', 1)[1]}"])
    try:
        assert sender.send(b'{"x":1}') == 1
        assert v4.collect(idle=0.5) == [b'{"x":1}']
    finally:
        sender.close()
        v4.close()
