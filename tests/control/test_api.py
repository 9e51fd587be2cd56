"""The control API against a real server running the real pipeline (tiny random-weight model)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from pose_server.control import messages as m
from pose_server.control.client import AsyncControlClient, ControlClient, ControlError, ServerUnavailable
from tests.control.live import free_port, make_clip, udp_socket

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "protocol/pose_packet.schema.json").read_text())


def wait_for(cond, timeout: float = 10.0, every: float = 0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def ask(ws, payload: str | bytes) -> dict:
    """Send raw text/bytes and return the next reply or error (skipping pushed events)."""
    ws.send(payload)
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if msg["type"] in ("reply", "error"):
            return msg


@pytest.fixture()
def client(live):
    with ControlClient(live[1].url, timeout=90) as c:
        yield c


def test_hello_and_ping(client):
    hello = client.request("hello")
    assert hello["protocol"] == m.PROTOCOL
    assert set(hello["commands"]) == set(m.COMMANDS)
    assert hello["limits"] == {"soft_max_bytes": m.SOFT_MAX_BYTES, "hard_max_bytes": m.HARD_MAX_BYTES}
    assert client.request("ping")["pong"] is True


def test_status_reports_the_running_pipeline(client, live):
    status = wait_for(lambda: (s := client.status())["frames"] > 3 and s)
    for key in ("fps", "latency_ms", "people", "dropped_frames", "source", "model", "device", "backend",
                "udp_targets", "recording", "running", "clients"):
        assert key in status, key
    assert status["running"] is True
    assert status["fps"] > 0
    assert status["latency_ms"]["p50"] > 0 and status["latency_ms"]["p95"] >= status["latency_ms"]["p50"]
    assert status["model"].endswith("vitpose_tiny.pth") and status["backend"] == "torch"
    assert status["udp_targets"] == live[0].config.udp
    assert status["recording"]["active"] is False


def test_get_config_is_the_pipeline_config(client, live):
    config = client.config()
    assert config["source"] == live[0].config.source
    assert config["detector"] == "full-frame"


def test_live_changes_apply_without_restart(client, live):
    pipeline = live[0]
    before = client.status()["uptime_s"]
    result = client.set_config(min_cutoff=0.5, beta=0.1, kpt_threshold=0.1, det_interval=7)
    assert result["restarted"] is False
    assert result["applied"] == {"min_cutoff": 0.5, "beta": 0.1, "kpt_threshold": 0.1, "det_interval": 7}
    assert (pipeline.config.min_cutoff, pipeline.config.beta, pipeline.config.det_interval) == (0.5, 0.1, 7)
    assert result["config"]["min_cutoff"] == 0.5
    assert client.status()["uptime_s"] >= before  # same run, counters not reset
    client.set_config(kpt_threshold=0.0)


def test_udp_targets_change_live_and_packets_arrive(client, live):
    sock, target = udp_socket()
    try:
        result = client.set_config(udp=[target])
        assert result["restarted"] is False
        packet = json.loads(sock.recv(65536))
        jsonschema.validate(packet, SCHEMA)
        assert client.status()["udp_targets"] == [target]
    finally:
        client.set_config(udp=[f"127.0.0.1:{live[2].getsockname()[1]}"])
        sock.close()


def test_source_change_restarts_and_says_so(client, live, tmp_path):
    other = str(make_clip(tmp_path / "other.mp4", frames=10))
    old = live[0].config.source
    try:
        result = client.set_config(source=other)
        assert result["restarted"] is True and result["restart_reason"] == ["source"]
        status = wait_for(lambda: (s := client.status())["frames"] > 0 and s)
        assert status["source"] == other and status["running"]
    finally:
        client.set_config(source=old)


def test_bad_source_is_refused_and_the_old_one_keeps_running(client, live, tmp_path):
    with pytest.raises(ControlError) as e:
        client.set_config(source=str(tmp_path / "missing.mp4"))
    assert e.value.code == "pipeline_error" and "kept the previous settings running" in e.value.message
    assert client.status()["running"] is True


def test_stop_and_start(client):
    assert client.request("stop") == {"running": False}
    assert client.status()["running"] is False
    assert client.request("start") == {"running": True}
    assert wait_for(lambda: client.status()["frames"] > 0)


def test_recording(client, tmp_path):
    path = tmp_path / "take1.jsonl"
    assert client.request("start_recording", path=str(path))["path"] == str(path)
    assert wait_for(lambda: client.status()["recording"]["packets"] >= 2)
    assert client.status()["recording"]["active"] is True
    result = client.request("stop_recording")
    assert result["recording"] is False and result["packets"] >= 2
    lines = path.read_text().splitlines()
    assert len(lines) == result["packets"]
    jsonschema.validate(json.loads(lines[0]), SCHEMA)
    with pytest.raises(ControlError) as e:  # never overwrites a take
        client.request("start_recording", path=str(path))
    assert e.value.code == "exists"
    assert path.read_text().splitlines() == lines


def test_preview_base64_and_binary(client):
    wait_for(lambda: client.request("get_preview")["available"])
    jpeg = client.preview(max_width=96)
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] == 96
    binary = client.request("get_preview", max_width=128, encoding="binary")
    assert binary["bytes"] == len(binary["jpeg"]) and binary["jpeg"][:2] == b"\xff\xd8"


def test_latest_keypoints_is_a_valid_packet(client):
    packet = wait_for(client.keypoints)
    jsonschema.validate(packet, SCHEMA)
    assert packet["skeleton"] == "coco17"


def test_list_checkpoints(client):
    listing = client.request("list_checkpoints")
    assert [Path(p).name for p in listing["checkpoints"]] == ["vitpose_tiny.pth"]
    assert listing["hint"] == ""


def test_subscriptions_stream_and_stop(client):
    assert client.request("subscribe", stream="status", rate=20)["rate"] == 20
    assert client.request("subscribe", stream="keypoints", rate=20)["stream"] == "keypoints"
    assert client.request("subscribe", stream="preview", rate=10, max_width=64, encoding="binary")["max_width"] == 64
    seen: dict[str, int] = {"status": 0, "keypoints": 0, "binary": 0}
    seqs = []
    end = time.monotonic() + 10
    while min(seen.values()) < 3 and time.monotonic() < end:
        ev = client.next_event(timeout=5)
        if isinstance(ev, bytes):
            assert ev[:2] == b"\xff\xd8"
            seen["binary"] += 1
        elif ev["type"] in seen:
            seen[ev["type"]] += 1
            if ev["type"] == "keypoints":
                seqs.append(ev["packet"]["seq"])
    assert min(seen.values()) >= 3, seen
    assert seqs == sorted(set(seqs))  # only new packets, in order
    for stream in ("status", "keypoints", "preview"):
        assert client.request("unsubscribe", stream=stream)["was_subscribed"] is True
    client.events.clear()
    time.sleep(0.5)
    client.request("ping")  # anything still queued arrived before this reply
    client.events.clear()
    time.sleep(0.5)
    assert client.request("ping")["pong"] and not client.events


def test_preview_stream_base64(client):
    client.request("subscribe", stream="preview", rate=10)
    ev = client.next_event(timeout=10)
    while not (isinstance(ev, dict) and ev["type"] == "preview"):
        ev = client.next_event(timeout=10)
    assert base64.b64decode(ev["jpeg_b64"])[:2] == b"\xff\xd8"
    client.request("unsubscribe", stream="preview")


def test_other_clients_hear_about_changes(client, live):
    with ControlClient(live[1].url) as other:
        other.request("ping")
        client.set_config(beta=0.02)
        ev = other.next_event(timeout=5)
        assert ev["type"] == "event" and ev["event"] == "config_changed"
        assert ev["detail"]["applied"] == {"beta": 0.02}


BAD = [
    ("{", "invalid_json"),
    ('{"cmd": "ping",}', "invalid_json"),
    ('{"cmd": "ping", "id": NaN}', "invalid_json"),
    ("[1, 2]", "not_an_object"),
    ('"ping"', "not_an_object"),
    ("{}", "missing_field"),
    ('{"cmd": "fly"}', "unknown_command"),
    ('{"cmd": 7}', "wrong_type"),
    ('{"cmd": "ping", "id": [1]}', "wrong_type"),
    ('{"cmd": "ping", "extra": 1}', "unknown_field"),
    ('{"cmd": "set_config"}', "missing_field"),
    ('{"cmd": "set_config", "changes": []}', "wrong_type"),
    ('{"cmd": "set_config", "changes": {}}', "missing_field"),
    ('{"cmd": "set_config", "changes": {"beta": "high"}}', "wrong_type"),
    ('{"cmd": "set_config", "changes": {"det_interval": 2.5}}', "wrong_type"),
    ('{"cmd": "set_config", "changes": {"min_cutoff": true}}', "wrong_type"),
    ('{"cmd": "set_config", "changes": {"udp": "127.0.0.1:9000"}}', "wrong_type"),
    ('{"cmd": "set_config", "changes": {"beta": -1}}', "out_of_range"),
    ('{"cmd": "set_config", "changes": {"det_threshold": 1.5}}', "out_of_range"),
    ('{"cmd": "set_config", "changes": {"min_cutoff": 1e400}}', "out_of_range"),
    ('{"cmd": "set_config", "changes": {"backend": "tpu"}}', "out_of_range"),
    ('{"cmd": "set_config", "changes": {"udp": ["nohost"]}}', "out_of_range"),
    ('{"cmd": "set_config", "changes": {"udp": ["127.0.0.1:70000"]}}', "out_of_range"),
    ('{"cmd": "set_config", "changes": {"warp_drive": 1}}', "unknown_field"),
    ('{"cmd": "subscribe", "stream": "audio"}', "out_of_range"),
    ('{"cmd": "subscribe", "stream": "status", "rate": 1000}', "out_of_range"),
    ('{"cmd": "subscribe", "stream": "status", "max_width": 100}', "unknown_field"),
    ('{"cmd": "get_preview", "max_width": 4}', "out_of_range"),
    ('{"cmd": "get_preview", "encoding": "png"}', "out_of_range"),
    ('{"cmd": "start_recording", "path": 5}', "wrong_type"),
    ("x" * (m.SOFT_MAX_BYTES + 1), "message_too_large"),
    (b"\x00\x01binary", "binary_not_accepted"),
]


def test_every_bad_message_gets_an_error_and_the_connection_stays_up(live):
    before = dict(live[0].status()["config"])
    with connect(live[1].url) as ws:
        for payload, code in BAD:
            reply = ask(ws, payload)
            assert reply["type"] == "error" and reply["ok"] is False, payload
            assert reply["error"]["code"] == code, (payload, reply)
            assert reply["error"]["message"]
        reply = ask(ws, '{"cmd": "set_config", "id": "a1", "changes": {"beta": -1}}')
        assert reply["id"] == "a1" and reply["cmd"] == "set_config"
        assert "'beta' must be in" in reply["error"]["message"]
        assert ask(ws, '{"cmd": "ping", "id": 9}') ["result"]["pong"] is True
    assert live[0].status()["config"] == before  # nothing bad got through


def test_beyond_the_hard_limit_the_connection_closes_with_1009(live):
    with connect(live[1].url, max_size=None) as ws:
        assert ask(ws, "y" * (m.HARD_MAX_BYTES - 64))["error"]["code"] == "message_too_large"
        ws.send("z" * (m.HARD_MAX_BYTES + 1))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1009
    with ControlClient(live[1].url) as c:  # the server itself is fine
        assert c.request("ping")["pong"]


def test_async_client(live):
    async def session() -> tuple[dict, dict, dict]:
        async with AsyncControlClient(live[1].url) as c:
            status = await c.request("get_status")
            await c.request("subscribe", stream="keypoints", rate=20)
            event = await c.next_event(timeout=10)
            with pytest.raises(ControlError) as e:
                await c.request("set_config", changes={"beta": "fast"})
            assert e.value.code == "wrong_type"
            binary = await c.request("get_preview", encoding="binary", max_width=64)
            return status, event, binary

    status, event, binary = asyncio.run(session())
    assert status["status"]["running"] is True
    assert event["type"] == "keypoints" and event["packet"]["skeleton"] == "coco17"
    assert binary["jpeg"][:2] == b"\xff\xd8"


def test_unreachable_server_says_how_to_start_one():
    with pytest.raises(ServerUnavailable, match="pose-server run --control 127.0.0.1:"):
        ControlClient(f"ws://127.0.0.1:{free_port()}", timeout=2)
