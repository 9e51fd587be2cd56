"""The `pose-server` command: help, clean one-line errors, a real run with recording, Ctrl-C, control API."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from pose_server.cli import build_parser, main
from pose_server.config import PipelineConfig
from pose_server.pipeline import Pipeline

from .conftest import ROOT


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pose_server.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_help_documents_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    flat = "".join(text.split())  # argparse wraps long lines, also at hyphens
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    for action in run._actions:
        for flag in action.option_strings:
            assert flag in text
    for needle in ("--source", "--udp", "--record", "--preview", "--max-frames", "--realtime", "--detector",
                   "--det-interval", "--max-people", "--control", "--checkpoint", "--model", "--device", "--backend",
                   "(default:30)", "usyd-community/vitpose-base-simple"):
        assert needle in flat
    for sub in ("replay", "export-onnx"):
        with pytest.raises(SystemExit):
            main([sub, "--help"])
    top = build_parser().format_help()
    assert all(cmd in top for cmd in ("run", "replay", "export-onnx", "bench", "panel"))


def test_missing_video_is_one_clean_line(tmp_path, tiny_checkpoint):
    proc = _cli("run", "--source", str(tmp_path / "missing.mp4"), "--checkpoint", str(tiny_checkpoint),
                "--detector", "full-frame")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("pose-server: error: source not found") and "missing.mp4" in last


def test_missing_checkpoint_is_one_clean_line(tmp_path, clip):
    proc = _cli("run", "--source", str(clip), "--checkpoint", str(tmp_path / "vitpose_small.pth"),
                "--detector", "full-frame")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    error = proc.stderr[proc.stderr.index("pose-server: error:"):]
    assert "vitpose_small.pth" in error and "--checkpoint" in error


def test_run_records_every_frame_and_ctrl_c_closes_the_recording(tmp_path, clip, tiny_checkpoint, receiver):
    take = tmp_path / "take.jsonl"
    proc = _cli("run", "--source", str(clip), "--checkpoint", str(tiny_checkpoint), "--backend", "torch",
                "--no-quantize", "--detector", "full-frame", "--udp", receiver.target, "--record", str(take),
                "--max-frames", "10", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert len(take.read_text().splitlines()) == 10 == len(receiver.collect(idle=0.3))

    live = tmp_path / "live.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "pose_server.cli", "run", "--source", str(clip), "--checkpoint",
                          str(tiny_checkpoint), "--backend", "torch", "--no-quantize", "--detector", "full-frame",
                          "--udp", receiver.target, "--record", str(live), "--loop", "--realtime", "--no-progress"],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while (not live.exists() or len(live.read_bytes().splitlines()) < 15) and time.monotonic() < deadline:
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode in (0, 130), err
    assert "Traceback" not in err
    raw = live.read_bytes()
    assert raw.endswith(b"\n")  # closed after a whole line
    assert len([json.loads(line) for line in raw.splitlines()]) >= 15


def test_control_api_drives_the_pipeline(clip, tiny_checkpoint, receiver):
    from pose_server.control.client import ControlClient
    from pose_server.control.server import serve_in_thread

    pipe = Pipeline(PipelineConfig(source=str(clip), checkpoint=str(tiny_checkpoint), backend="torch", quantize=False,
                                   detector="full-frame", udp=[receiver.target], realtime=True, loop=True,
                                   kpt_threshold=0.0))
    handle = serve_in_thread(pipe, "127.0.0.1", 0)
    try:
        with ControlClient(handle.url) as client:
            client.request("start")
            deadline = time.monotonic() + 30
            while client.status().get("frames", 0) < 3:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            out = client.set_config(min_cutoff=0.5, det_interval=7)
            assert out["restarted"] is False and out["config"]["min_cutoff"] == 0.5
            assert client.keypoints()["people"]
            assert client.preview(max_width=64)[:2] == b"\xff\xd8"
            client.request("stop")
            assert client.status()["running"] is False
    finally:
        handle.stop()
        pipe.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_with_control_flag_serves_the_api(tmp_path, clip, tiny_checkpoint, receiver):
    from pose_server.control.client import ControlClient

    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "pose_server.cli", "run", "--source", str(clip), "--checkpoint",
                          str(tiny_checkpoint), "--backend", "torch", "--no-quantize", "--detector", "full-frame",
                          "--udp", receiver.target, "--realtime", "--loop", "--no-progress",
                          "--control", f"127.0.0.1:{port}"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            try:
                with ControlClient(f"ws://127.0.0.1:{port}", timeout=2) as client:
                    status = client.status()
                    if status.get("frames", 0) >= 3:
                        out = client.set_config(max_people=2)
                        break
            except (ConnectionError, OSError):
                pass
            time.sleep(0.2)
        assert status is not None and status["running"], "control API never answered"
        assert out["restarted"] is False and out["config"]["max_people"] == 2
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    assert p.returncode in (0, 130) and "Traceback" not in err


def test_pipeline_replays_a_session_source(tmp_path, receiver):
    from pose_server.record import Recorder

    path = tmp_path / "session.jsonl"
    with Recorder(path) as rec:
        for i in range(6):
            rec.write({"v": 1, "seq": 40 + i, "timestamp": 1000.0 + i / 60, "sent": 1000.0 + i / 60, "frame": i,
                       "source": "cam", "skeleton": "coco17", "image_size": [64, 48], "people": []})
    pipe = Pipeline(PipelineConfig(source=str(path), udp=[receiver.target]))
    pipe.start()
    assert pipe.wait(timeout=20)
    got = [json.loads(d) for d in receiver.collect(idle=0.5)]
    assert [p["frame"] for p in got] == list(range(6)) and [p["seq"] for p in got] == list(range(6))
    assert pipe.status()["frames"] == 6 and pipe.status()["state"] == "finished"
    assert pipe.latest_packet()["frame"] == 5
    assert all("meta" not in p for p in got)  # no token given, none sent

    pipe = Pipeline(PipelineConfig(source=str(path), udp=[receiver.target], udp_token="blender-secret"))
    pipe.start()
    assert pipe.wait(timeout=20)
    assert [json.loads(d)["meta"] for d in receiver.collect(idle=0.5)] == [{"token": "blender-secret"}] * 6

    path.write_text('{"v": 1, "people": []}\n')  # no timestamp: refused on start, not in the replay thread
    with pytest.raises(ValueError, match="line 1 is not a pose packet"):
        Pipeline(PipelineConfig(source=str(path), udp=[receiver.target])).start()


def test_export_onnx_writes_an_int8_model(tmp_path, tiny_checkpoint):
    import os

    import onnx

    out = tmp_path / "model.onnx"
    env = dict(os.environ, VITPOSE_CHECKPOINTS=str(tmp_path / "ckpt"))
    proc = subprocess.run([sys.executable, "-m", "pose_server.cli", "export-onnx", "--checkpoint", str(tiny_checkpoint),
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    model = onnx.load(str(out))
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear", "QLinearMatMul") for n in model.graph.node)


def test_run_with_dataset_picks_the_wholebody_head_of_a_vitpose_plus_file(tmp_path, clip, receiver):
    from pose_server.vitpose.tiny import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny_plus.pth", moe=True)
    take = tmp_path / "take.jsonl"
    common = ["run", "--source", str(clip), "--checkpoint", str(ckpt), "--backend", "torch", "--no-quantize",
              "--detector", "full-frame", "--kpt-threshold", "0", "--udp", receiver.target, "--max-frames", "3",
              "--no-progress"]
    proc = _cli(*common, "--dataset", "wholebody", "--record", str(take))
    assert proc.returncode == 0, proc.stderr
    packets = [json.loads(line) for line in take.read_text().splitlines()]
    assert len(packets) == 3
    assert all(p["skeleton"] == "wholebody133" and len(p["people"][0]["keypoints"]) == 133 for p in packets)
    take.unlink()
    proc = _cli(*common, "--record", str(take))  # no --dataset: the COCO head
    assert proc.returncode == 0, proc.stderr
    assert json.loads(take.read_text().splitlines()[0])["skeleton"] == "coco17"


def test_what_one_camera_cannot_measure_reaches_the_config(capsys):
    from pose_server.cli import config_from_args

    args = build_parser().parse_args(["run", "--source", "clip.mp4", "--performer-height", "1.6", "--hfov", "75",
                                      "--camera-pitch", "-5"])
    cfg = config_from_args(args)
    assert (cfg.performer_height, cfg.camera_hfov, cfg.camera_pitch) == (1.6, 75.0, -5.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--performer-height", "3"])
    assert "--performer-height: 3 is outside 0.6-2.4" in capsys.readouterr().err
    # the pitch not given: level; "auto": estimated by the lifter (None); out of range: refused with the range
    assert config_from_args(build_parser().parse_args(["run", "--source", "clip.mp4"])).camera_pitch == 0.0
    args = build_parser().parse_args(["run", "--source", "clip.mp4", "--camera-pitch", "Auto"])
    assert config_from_args(args).camera_pitch is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--camera-pitch", "95"])
    assert "--camera-pitch: 95 is outside -80-80" in capsys.readouterr().err


def test_lifter_and_protocol_flags_reach_the_config(capsys):
    from pose_server.cli import config_from_args

    cfg = config_from_args(build_parser().parse_args(["run", "--source", "clip.mp4"]))
    assert (cfg.lifter, cfg.protocol_version) == ("learned", 4)
    cfg = config_from_args(build_parser().parse_args(["run", "--source", "clip.mp4", "--lifter", "geometric",
                                                      "--protocol", "2"]))
    assert (cfg.lifter, cfg.protocol_version) == ("geometric", 2)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--lifter", "magic"])
    assert "invalid choice: 'magic'" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--max-frames", "-3", "outside 1-"), ("--max-frames", "2.5", "not a whole number"),
    ("--det-threshold", "5", "outside 0-1"), ("--fps-limit", "-5", "outside 0-240"),
    ("--max-people", "0", "outside 1-16"), ("--threads", "0", "outside 1-256"), ("--hold", "-1", "outside 0-10"),
])
def test_numbers_outside_the_control_apis_ranges_are_refused(capsys, flag, value, message):
    """They used to run: --max-frames -3 sent nothing and exited 0, --det-threshold 5 was taken as given."""
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", flag, value])
    assert exit_.value.code == 2
    assert f"argument {flag}: " in (err := capsys.readouterr().err) and message in err


def test_a_source_none_of_whose_frames_can_be_read_is_an_error(tmp_path, tiny_checkpoint):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        (folder / f"f{i}.png").write_text("not an image")
    proc = _cli("run", "--source", str(folder), "--checkpoint", str(tiny_checkpoint), "--detector", "full-frame")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "none of the 3 frames" in proc.stderr.strip().splitlines()[-1]
