"""The panel's plain decisions: source choice, UDP parsing, what Apply sends, status figures."""

from __future__ import annotations

import math

import pytest

from pose_server.panel import logic
from pose_server.panel.figures import skeleton_3d_figure


@pytest.mark.parametrize("source, kind", [(0, "Webcam"), ("2", "Webcam"), (logic.DEFAULT_CLIP, "Bundled clip"),
                                          ("/data/take.mp4", "Video file"), ("out/uploads/a.mp4", "Upload")])
def test_source_kind(source, kind):
    assert logic.source_kind(source) == kind


def test_source_value():
    assert logic.source_value("Bundled clip") == logic.DEFAULT_CLIP
    assert logic.source_value("Webcam", webcam=2) == 2
    assert logic.source_value("Video file", path=" /a/b.mp4 ") == "/a/b.mp4"
    with pytest.raises(ValueError, match="enter the path"):
        logic.source_value("Video file", path="  ")
    with pytest.raises(ValueError, match="upload"):
        logic.source_value("Upload")


def test_parse_udp_targets():
    assert logic.parse_udp_targets("127.0.0.1:9000\n localhost:9001, \n") == ["127.0.0.1:9000", "localhost:9001"]
    assert logic.parse_udp_targets("") == []
    for bad in ("127.0.0.1", ":9000", "host:0", "host:99999", "host:abc"):
        with pytest.raises(ValueError, match="host:port"):
            logic.parse_udp_targets(bad)


def test_config_changes_only_sends_known_and_different_fields():
    current = {"beta": 0.01, "min_cutoff": 1.0, "udp": ["a:1"], "device": "cpu"}
    wanted = {"beta": 0.01 + 1e-15, "min_cutoff": 0.5, "udp": ["a:1"], "device": "cpu", "model_size": "base"}
    assert logic.config_changes(current, wanted) == {"min_cutoff": 0.5}


def test_describe_update():
    assert logic.describe_update({"applied": {"beta": 0.1}, "restarted": False}) == \
        "Applied without a restart: beta."
    assert "Restarted the pipeline to apply: source" in logic.describe_update(
        {"applied": {"source": "x.mp4"}, "restarted": True, "restart_reason": ["source"]})
    assert logic.describe_update({"applied": {}, "restarted": False}) == "Nothing changed."


def test_save_upload_never_overwrites(tmp_path):
    a = logic.save_upload("../../etc/my clip.mp4", b"one", tmp_path)
    b = logic.save_upload("my clip.mp4", b"two", tmp_path)
    assert a.parent == tmp_path and a.name == "my_clip.mp4" and b.name == "my_clip_1.mp4"
    assert (a.read_bytes(), b.read_bytes()) == (b"one", b"two")


def test_status_metrics_and_history():
    status = {"running": True, "fps": 12.5, "latency_ms": {"p50": 40.0, "p95": None}, "people": 2,
              "dropped_frames": 3, "udp_targets": ["127.0.0.1:9000"],
              "recording": {"active": True, "path": "out/t.jsonl", "packets": 4}}
    m = logic.status_metrics(status)
    assert (m["fps"], m["latency_p50"], m["latency_p95"], m["dropped"], m["recording"]) == \
        (12.5, 40.0, None, 3, "out/t.jsonl")
    assert logic.status_metrics({"recording": {"active": False, "path": None}})["recording"] is None
    # The panel shows what runs (the server's "inference"), not just the setting ("auto").
    assert logic.status_metrics({"backend": "auto", "inference": "openvino fp32 (auto)"})["backend"] == \
        "openvino fp32 (auto)"
    assert logic.status_metrics({"backend": "onnx"})["backend"] == "onnx"
    h = logic.History(maxlen=3)
    for t in range(5):
        h.add(m, t=float(t))
    table = h.table(("fps", "latency p95 (ms)"))
    assert table["seconds ago"] == [-2.0, -1.0, 0.0] and table["fps"] == [12.5] * 3
    assert all(math.isnan(v) for v in table["latency p95 (ms)"])


def test_skeleton_3d_figure():
    joints = [[i * 0.1, 0.0, 1.0 + i * 0.01] for i in range(17)]
    assert logic.joints_3d({"people": [{"id": 4, "joints_3d": joints}, {"id": 5, "joints_3d": None}]}) == [(4, joints)]
    fig = skeleton_3d_figure([(4, joints)])
    lines = fig.data[0]
    assert lines.name == "person 4" and lines.type == "scatter3d"
    assert len(lines.x) == 3 * 19  # every COCO bone, separated by gaps
    assert fig.layout.uirevision == "keep-camera" and fig.layout.scene.aspectmode == "cube"
    ranges = [getattr(fig.layout.scene, f"{a}axis").range for a in "xyz"]
    assert len({round(hi - lo, 6) for lo, hi in ranges}) == 1  # equal scale on every axis
    assert ranges[0][0] < 0.0 and ranges[0][1] > 1.6 and ranges[2][0] < 1.0 < 1.16 < ranges[2][1]
