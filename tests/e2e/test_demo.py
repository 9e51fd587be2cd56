"""`make demo`'s path end to end with a tiny random-weight model on two seconds of the real clip:
pose server -> UDP on loopback -> headless Blender running the real add-on -> take -> files."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.e2e.fbx_import import imported_keys

FRAMES = 60


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from pose_server.vitpose.tiny import make_tiny_checkpoint

    tmp = tmp_path_factory.mktemp("demo")
    ckpt = make_tiny_checkpoint(tmp / "tiny.pth", fmt="mmpose")
    out = tmp / "out"
    # Random weights give low keypoint scores: threshold 0 keeps the person tracked; full-frame
    # detection keeps the test independent of the detector download.
    cmd = [sys.executable, "-m", "pose_server.demo", "--checkpoint", str(ckpt), "--max-frames", str(FRAMES),
           "--detector", "full-frame", "--kpt-threshold", "0", "--backend", "onnx", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "summary.json").read_text())


def test_all_output_files_exist(demo):
    out, _ = demo
    for name in ["demo.blend", "demo.fbx", "demo_P0.bvh", "overlay.mp4", "demo_rig.png", "take.jsonl", "summary.json",
                 "compare.mp4", "demo_sheet.png"]:
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name


def test_no_packet_lost_and_every_packet_applied(demo):
    _, s = demo
    assert s["frames"] == FRAMES
    assert s["packets_sent"] == FRAMES
    assert s["packets_lost"] == 0
    assert s["packets_applied"] == FRAMES
    assert s["dropped_by_receiver"] == 0 and s["invalid"] == 0


def test_summary_lists_each_performer_with_frames_and_packets(demo):
    _, s = demo
    assert s["performers"], "no performer recorded"
    for p in s["performers"]:
        assert p["packets"] >= 1 and p["frames"] == p["frame_end"] - p["frame_start"] + 1, p
        assert p["bvh"].endswith(".bvh") and p["action"].endswith(p["bvh"][-7:-4])  # demo_P0.bvh <-> Take_..._P0
    # Every applied packet carried at least one performer: together they account for all of them.
    assert max(p["packets"] for p in s["performers"]) <= s["packets_applied"] <= sum(
        p["packets"] for p in s["performers"])


def test_latencies_recorded(demo):
    _, s = demo
    for key in ("server_latency_ms", "applied_latency_ms"):
        p50, p95 = s[key]["p50"], s[key]["p95"]
        assert p50 is not None and p95 is not None and 0 < p50 <= p95, (key, s[key])
    # Applying in Blender comes after sending: its latency cannot be smaller.
    assert s["applied_latency_ms"]["p50"] >= s["server_latency_ms"]["p50"] * 0.5
    # Blender's own share (sent -> applied) is part of capture -> applied, and the last packet's is recorded.
    bl = s["blender_latency_ms"]
    assert bl["p50"] is not None and 0 < bl["p50"] <= bl["p95"] <= s["applied_latency_ms"]["p95"], bl
    assert bl["p50"] <= s["applied_latency_ms"]["p50"]
    assert s["applied_latency_ms"]["last"] > 0 and s["paced_file"] is True


def test_fbx_has_keys_on_every_bone_for_every_frame(demo):
    out, s = demo
    keys = imported_keys(out / "demo.fbx")
    start, end = s["blender"]["frame_start"], s["blender"]["frame_end"]
    expected = set(range(start, end + 1))
    # The take is resampled at 30 fps from capture timestamps of a 30 fps clip: one key per streamed frame.
    assert abs(len(expected) - FRAMES) <= 2, (start, end)
    for bone in ["hips", "spine", "neck", "head", "upper_arm.L", "forearm.L", "upper_arm.R", "forearm.R",
                 "thigh.L", "shin.L", "thigh.R", "shin.R"]:
        assert bone in keys["frames"], f"no keys on {bone}"
        missing = expected - set(keys["frames"][bone])
        assert not missing, f"{bone}: no key at frames {sorted(missing)[:10]}"


def test_compare_video_puts_every_streamed_frame_beside_its_rig_render(demo):
    import cv2
    import numpy as np

    out, s = demo
    cap = cv2.VideoCapture(str(out / "compare.mp4"))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    assert len(frames) == FRAMES
    h, w = frames[0].shape[:2]
    assert h == 240 and w > 1.5 * h  # the overlay (16:9) beside the 4:3 render
    rigs = sorted((out / "rig_frames").glob("rig_*.png"))
    assert len(rigs) == s["blender"]["frame_end"] - s["blender"]["frame_start"] + 1
    # The right half is a Workbench render of the take (it changes along the take), not a placeholder.
    right = [f[:, w - 200:].astype(np.int16) for f in frames[5::10]]
    assert max(np.abs(a - b).mean() for a, b in zip(right, right[1:], strict=False)) > 0.5
    sheet = cv2.imread(str(out / "demo_sheet.png"))
    assert sheet.shape[0] == 6 * 200


def test_the_summary_line_tells_the_clips_backlog_from_the_latency():
    """A paced file keeps every frame, so its frames queue where the server is slower than the clip: that wait is
    told as how far the rigs trail the clip, not as latency; from a webcam, capture -> applied is the latency."""
    from pose_server.demo import latency_line

    s = {"server_latency_ms": {"p50": 150.0, "p95": 250.0}, "blender_latency_ms": {"p50": 5.5, "p95": 10.6},
         "applied_latency_ms": {"p50": 650.0, "p95": 1500.0, "last": 1520.0}, "paced_file": True}
    line = latency_line(s)
    assert "sent->applied in Blender p50/p95 5.5/10.6 ms" in line and "trail the clip by 1.5 s" in line
    assert "capture->applied" not in line
    line = latency_line({**s, "paced_file": False})
    assert "capture->applied p50/p95 650.0/1500.0 ms" in line and "trail" not in line


def test_the_report_lists_every_performers_bvh(tmp_path):
    """With two performers the demo wrote demo_P0.bvh and demo_P1.bvh but listed only the first."""
    from pose_server.demo import report

    performers = [{"name": f"Performer {i}", "label": f"P{i}", "track_ids": [i], "action": f"Take_P{i}",
                   "frames": 10, "packets": 10, "bvh": str(tmp_path / f"demo_P{i}.bvh")} for i in (0, 1)]
    s = {"frames": 10, "fps": 30.0, "server_latency_ms": {"p50": 1.0, "p95": 2.0}, "paced_file": True,
         "blender_latency_ms": {"p50": 1.0, "p95": 2.0}, "applied_latency_ms": {"p50": 1.0, "p95": 2.0, "last": 1.0},
         "packets_sent": 10, "packets_received": 10, "packets_lost": 0, "performers": performers,
         "files": {"blend": str(tmp_path / "demo.blend"), "bvh": performers[0]["bvh"]}}
    lines = report(s, tmp_path).splitlines()
    assert [line.split()[-1] for line in lines if line.split()[:1] == ["bvh"]] == [p["bvh"] for p in performers]
    assert any(line.split() == ["blend", str(tmp_path / "demo.blend")] for line in lines)


def test_blenders_egl_notices_are_counted_and_its_other_errors_passed_on(capsys):
    """Headless Blender prints EGL_BAD_MATCH while it picks a GPU configuration, then renders all the same: the demo
    counts those lines (one log line at the end) instead of showing a new user what reads as a failure; anything
    else Blender says on stderr still reaches the terminal."""
    import io
    import types

    from pose_server.demo import BlenderWorker

    worker = object.__new__(BlenderWorker)
    worker.egl_notices = 0
    worker.proc = types.SimpleNamespace(stderr=io.StringIO(
        "EGL Error (0x3009): EGL_BAD_MATCH: Arguments are inconsistent\nError: cannot write demo.fbx\n"
        "EGL Error (0x3009): EGL_BAD_MATCH: Arguments are inconsistent\n"))
    worker._read_errors()
    assert worker.egl_notices == 2
    err = capsys.readouterr().err
    assert err == "Error: cannot write demo.fbx\n"


@pytest.mark.parametrize("webcam", [False, True])
def test_the_demo_passes_precision_on_and_draws_a_clips_overlay_afterwards(monkeypatch, tmp_path, webcam):
    """--precision reaches the pipeline's settings; a clip's overlay.mp4 is drawn after the run from the take (no
    live preview), a webcam's is written live. The settings are read where the model is loaded, before Blender."""
    from pose_server import demo as demo_module

    class Seen(Exception):
        pass

    def load(cfg):
        raise Seen(cfg)

    monkeypatch.setattr(demo_module, "load_estimator", load)
    argv = ["--precision", "bf16", "--out", str(tmp_path)] + (["--webcam", "0"] if webcam else [])
    with pytest.raises(Seen) as seen:
        demo_module.run_demo(demo_module.build_parser().parse_args(argv))
    cfg = seen.value.args[0]
    assert cfg.precision == "bf16"
    assert cfg.preview == (str(tmp_path / "overlay.mp4") if webcam else None)


def test_a_failed_run_keeps_the_last_take(monkeypatch, tmp_path):
    """The demo replaces its previous files, but it deleted the last take before it knew the run would work: a
    missing source cost it, as did a pose server that failed to start."""
    from pose_server import demo as demo_module

    take = tmp_path / "take.jsonl"
    take.write_text('{"v": 3}\n')
    with pytest.raises(demo_module.DemoError, match="source not found: nope.mp4"):
        demo_module.run_demo(demo_module.build_parser().parse_args(["--source", "nope.mp4", "--out", str(tmp_path)]))
    assert take.read_text() == '{"v": 3}\n'

    class Broken(Exception):
        pass

    class Worker:  # headless Blender is not what this is about
        def __init__(self, *args, **kwargs) -> None:
            pass

        def wait_ready(self) -> None:
            raise Broken

        def kill(self) -> None:
            pass

    monkeypatch.setattr(demo_module, "load_estimator", lambda cfg: None)
    monkeypatch.setattr(demo_module, "BlenderWorker", Worker)
    with pytest.raises(Broken):
        demo_module.run_demo(demo_module.build_parser().parse_args(["--out", str(tmp_path)]))
    assert take.read_text() == '{"v": 3}\n' and not (tmp_path / "take.previous.jsonl").exists()
