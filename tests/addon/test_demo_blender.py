"""The demo's Blender side (scripts/demo_blender.py) on this Blender: a recorded session from the pose server
(tiny random-weight checkpoint, tests/addon/data) arrives over UDP on loopback, at its own pace; the take is
written as .blend/.fbx/.bvh plus a rendered preview, and the FBX imports with keys on every frame both here
and in Blender 4.2 LTS, the oldest Blender the add-on supports.

Standard library and bpy only: it runs on every Blender `make test` covers. The 4.2 importer is
$VITPOSE_BPY42_PYTHON (the Makefile sets it), else .venv-bpy42/bin/python.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.fbx_import import imported_keys

from .packets import make_packet

pytestmark = pytest.mark.bpy42
SESSION = ROOT / "tests" / "addon" / "data" / "tiny_demo_session.jsonl"
DUO_PACKETS, LATE = 45, 10
BONES = ["hips", "spine", "neck", "head", "upper_arm.L", "forearm.L", "upper_arm.R", "forearm.R",
         "thigh.L", "shin.L", "thigh.R", "shin.R"]


def bpy42_python() -> str:
    path = os.environ.get("VITPOSE_BPY42_PYTHON") or str(ROOT / ".venv-bpy42" / "bin" / "python")
    if not Path(path).is_file():
        raise AssertionError(f"no Blender 4.2 interpreter at {path}: run `make test-bpy42` once, or set "
                             "VITPOSE_BPY42_PYTHON to a Python that has bpy 4.2 installed")
    return path


def replay(packets: list[dict], sock, port: int) -> int:
    """Send the packets at their recorded pace, re-stamped to now as a live server would stamp them."""
    shift = time.time() - packets[0]["timestamp"]
    start = time.monotonic()
    for packet in packets:
        offset = packet["timestamp"] + shift - time.time()
        packet["timestamp"] += shift
        packet["sent"] = time.time()
        if offset > 0:
            time.sleep(offset)
        sock.sendto(json.dumps(packet, separators=(",", ":")).encode(), ("127.0.0.1", port))
    assert time.monotonic() - start < 10.0
    return len(packets)


def run_demo_blender(out: Path, packets: list[dict], *extra: str) -> tuple[int, dict]:
    """scripts/demo_blender.py fed `packets` over UDP; (packets sent, its summary)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo_blender.py"), "--port", str(port),
                             "--out", str(out), "--max-wait", "120", *extra],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # Blender prints its own lines first
            if line.startswith("READY"):
                break
        else:
            raise AssertionError("demo_blender.py ended before READY: " + proc.stderr.read()[-3000:])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sent = replay(packets, sock, port)
        time.sleep(0.3)
        stdout, stderr = proc.communicate("stop\n", timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    line = next(ln for ln in stdout.splitlines() if ln.startswith("SUMMARY "))
    return sent, json.loads(line[8:])


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_blender")
    packets = [json.loads(line) for line in SESSION.read_text().splitlines() if line.strip()]
    sent, summary = run_demo_blender(out, packets)
    return out, sent, summary


@pytest.fixture(scope="module")
def duo(tmp_path_factory):
    """Two performers (synthetic packets: the second stands a metre to the side and enters at packet LATE)."""
    out = tmp_path_factory.mktemp("demo_duo")
    packets = [make_packet(seq, 1000.0 + seq / 30.0, people=2) for seq in range(DUO_PACKETS)]
    for packet in packets[:LATE]:
        packet["people"] = packet["people"][:1]
    sent, summary = run_demo_blender(out, packets)
    return out, sent, summary


def test_every_packet_of_the_session_reaches_the_take(demo):
    _, sent, summary = demo
    assert sent == 45
    assert (summary["received"], summary["invalid"], summary["stale"]) == (sent, 0, 0)
    assert summary["applied"] == sent and summary["samples"] == sent
    [performer] = summary["performers"]  # one person in the session: one rig, one take
    assert (performer["name"], performer["packets"], performer["frames"]) == (
        "Performer 0", sent, summary["frame_end"] - summary["frame_start"] + 1)
    # 45 frames captured at 30 fps, resampled at the scene's 30 fps: one key per frame.
    assert abs(summary["frame_end"] - summary["frame_start"] + 1 - sent) <= 1


def test_it_writes_the_blend_the_bvh_and_a_rendered_preview(demo):
    out, _, summary = demo
    files = summary["files"]
    assert set(files) == {"blend", "fbx", "bvh", "preview"}
    for path in files.values():
        assert Path(path).is_file() and Path(path).stat().st_size > 0, path
    with open(files["preview"], "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (640, 480)
    bvh = Path(files["bvh"]).read_text()
    frames = bvh.split("MOTION", 1)[1].split()
    assert frames[0] == "Frames:" and int(frames[1]) == summary["frame_end"] - summary["frame_start"] + 1


@pytest.mark.parametrize("importer", ["this Blender", "Blender 4.2 LTS"])
def test_the_fbx_imports_with_keys_on_every_frame(demo, importer):
    _, _, summary = demo
    start, end = summary["frame_start"], summary["frame_end"]
    python = sys.executable if importer == "this Blender" else bpy42_python()
    keys = imported_keys(summary["files"]["fbx"], [start, (start + end) // 2, end], python)
    if importer != "this Blender":
        assert keys["version"].startswith("4.2")
    for bone in BONES:
        assert bone in keys["frames"], f"no keys on {bone}"
        missing = set(range(start, end + 1)) - set(keys["frames"][bone])
        assert not missing, f"{bone}: no key at frames {sorted(missing)[:10]}"


def test_blender_4_2_shows_the_pose_this_blender_exported(demo):
    _, _, summary = demo
    start, end = summary["frame_start"], summary["frame_end"]
    frames = [start, (start + end) // 2, end]
    here = imported_keys(summary["files"]["fbx"], frames)
    old = imported_keys(summary["files"]["fbx"], frames, bpy42_python())
    for frame in map(str, frames):
        for bone in BONES:
            assert old["heads"][frame][bone] == pytest.approx(here["heads"][frame][bone], abs=1e-3), (frame, bone)
    # The pose moves: the comparison is not between two rest poses.
    assert here["heads"][str(start)]["forearm.L"] != pytest.approx(here["heads"][str(end)]["forearm.L"], abs=1e-3)


def test_two_performers_give_two_animated_armatures_in_one_fbx_and_a_bvh_each(duo):
    out, sent, summary = duo
    assert summary["applied"] == sent == DUO_PACKETS
    p0, p1 = summary["performers"]
    assert (p0["name"], p0["label"], p0["track_ids"]) == ("Performer 0", "P0", [0])
    assert (p1["name"], p1["label"], p1["track_ids"]) == ("Performer 1", "P1", [1])
    assert (p0["packets"], p1["packets"]) == (DUO_PACKETS, DUO_PACKETS - LATE)
    assert p0["action"] == f"{summary['take']}_P0" and p1["action"] == f"{summary['take']}_P1"
    # One clock: the second performer's keys start where it entered the shot.
    assert (p0["frame_start"], p0["frames"]) == (summary["frame_start"], DUO_PACKETS)
    assert (p1["frame_start"], p1["frames"]) == (summary["frame_start"] + LATE, DUO_PACKETS - LATE)
    for p in (p0, p1):
        bvh = Path(p["bvh"]).read_text()
        assert Path(p["bvh"]).name == f"demo_{p['label']}.bvh"
        assert int(bvh.split("Frames:", 1)[1].split()[0]) == p["frames"]
    assert Path(summary["files"]["preview"]).stat().st_size > 0  # the preview frames both performers
    keys = imported_keys(summary["files"]["fbx"])
    armatures = keys["armatures"]
    assert sorted(armatures) == ["Performer 0", "Performer 1"]
    for p in (p0, p1):
        found = armatures[p["name"]]
        assert found["action"] == f"{p['name']}|{summary['take']}"
        assert found["frames"][0] <= p["frame_start"] and found["frames"][-1] == p["frame_end"]
