"""The Streamlit panel (streamlit.testing AppTest) against a real control server and pipeline."""

from __future__ import annotations

import json
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pose_server.control.server import serve_in_thread
from tests.control.live import free_port, write_session

APP = str(Path(__file__).resolve().parents[2] / "pose_server/panel/app.py")


def panel(url: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("POSE_SERVER_CONTROL_URL", url)
    monkeypatch.delenv("POSE_SERVER_TOKEN", raising=False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def chart(at: AppTest, first_trace: str) -> dict:
    """The plotly figure whose first trace has this name."""
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [f for f in figures if f["data"] and f["data"][0].get("name") == first_trace]
    assert len(found) == 1, [f["data"][0].get("name") for f in figures if f["data"]]
    return found[0]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_live_view_shows_status_preview_and_charts(live, monkeypatch):
    at = panel(live[1].url, monkeypatch)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["State"] == "running"
    assert float(metrics["FPS"]) > 0
    assert metrics["Recording"] == "off"
    assert len(at.image) == 1  # the preview JPEG from the server
    fps = chart(at, "fps")
    assert len(fps["data"][0]["y"]) == 1
    assert [t["name"] for t in chart(at, "latency p50 (ms)")["data"]] == ["latency p50 (ms)", "latency p95 (ms)"]
    assert not at.error
    caption = " ".join(texts(at.caption))
    assert "vitpose_tiny.pth" in caption and "torch" in caption
    # the sidebar mirrors the server's settings
    assert at.sidebar.selectbox(key="w_backend").value == "torch"
    assert Path(at.sidebar.selectbox(key="w_checkpoint").value).name == "vitpose_tiny.pth"
    assert at.sidebar.text_area(key="w_udp").value == "\n".join(live[0].config.udp)
    at.run()  # the history grows with every refresh
    assert len(chart(at, "fps")["data"][0]["y"]) == 2


def test_apply_changes_smoothing_live(live, monkeypatch):
    at = panel(live[1].url, monkeypatch)
    at.sidebar.number_input(key="w_min_cutoff").set_value(0.4)
    at.sidebar.number_input(key="w_beta").set_value(0.03)
    at.sidebar.slider(key="w_kpt_threshold").set_value(0.05)
    at.sidebar.button(key="apply").click().run()
    assert any("Applied without a restart" in t and "min_cutoff" in t for t in texts(at.success)), texts(at.success)
    assert (live[0].config.min_cutoff, live[0].config.beta, live[0].config.kpt_threshold) == (0.4, 0.03, 0.05)
    at.sidebar.button(key="apply").click().run()
    assert any("Nothing to apply" in t for t in texts(at.info))


def test_3d_switches_reach_the_server(live, monkeypatch):
    at = panel(live[1].url, monkeypatch)
    assert at.sidebar.checkbox(key="w_lift_3d").value and at.sidebar.checkbox(key="w_depth_prior").value
    assert at.sidebar.checkbox(key="w_swap_guard").value
    try:
        assert not at.sidebar.checkbox(key="w_camera_pitch_auto").value  # a number: level by default
        at.sidebar.checkbox(key="w_camera_pitch_auto").check()
        at.sidebar.button(key="apply").click().run()
        assert live[0].config.camera_pitch is None, texts(at.error)  # estimated by the lifter
        at.sidebar.number_input(key="w_performer_height").set_value(1.62)
        at.sidebar.checkbox(key="w_camera_pitch_auto").uncheck().run()
        at.sidebar.number_input(key="w_camera_pitch").set_value(12.0)
        at.sidebar.checkbox(key="w_depth_prior").uncheck()
        at.sidebar.checkbox(key="w_swap_guard").uncheck()
        at.sidebar.button(key="apply").click().run()
        assert (live[0].config.depth_prior, live[0].config.swap_guard) == (False, False), texts(at.error)
        assert (live[0].config.performer_height, live[0].config.camera_pitch) == (1.62, 12.0)
        at.sidebar.checkbox(key="w_lift_3d").uncheck()
        at.sidebar.button(key="apply").click().run()
        assert live[0].config.lift_3d is False
        assert any("lift_3d" in t for t in texts(at.success)), texts(at.success)
    finally:  # the server is shared by this module's tests: put it back, running and streaming again
        at.sidebar.checkbox(key="w_lift_3d").check().run()  # the prior's switch is disabled while lifting is off
        at.sidebar.checkbox(key="w_depth_prior").check()
        at.sidebar.checkbox(key="w_swap_guard").check()
        at.sidebar.number_input(key="w_performer_height").set_value(1.75)
        at.sidebar.checkbox(key="w_camera_pitch_auto").uncheck().run()
        at.sidebar.number_input(key="w_camera_pitch").set_value(0.0)
        at.sidebar.button(key="apply").click().run()
        assert (live[0].config.lift_3d, live[0].config.depth_prior, live[0].config.swap_guard) == (True, True, True)
        assert (live[0].config.performer_height, live[0].config.camera_pitch) == (1.75, 0.0)
        before, deadline = live[0].status()["frames_read"], time.monotonic() + 60
        while not (live[0].running and live[0].status()["frames_read"] > before + 2):
            assert time.monotonic() < deadline, "the pipeline did not stream again after the restart"
            time.sleep(0.1)


def test_bad_entries_are_explained_and_not_sent(live, monkeypatch):
    before = list(live[0].config.udp)
    at = panel(live[1].url, monkeypatch)
    at.sidebar.text_area(key="w_udp").set_value("127.0.0.1:9000\nnot-a-target")
    at.sidebar.button(key="apply").click().run()
    assert any("Not applied" in t and "not-a-target" in t for t in texts(at.error)), texts(at.error)
    assert live[0].config.udp == before
    at.sidebar.text_area(key="w_udp").set_value("\n".join(before))
    assert at.sidebar.radio(key="w_source_kind").value == "Video file"  # the generated clip
    at.sidebar.text_input(key="w_path").set_value("  ")
    at.sidebar.button(key="apply").click().run()
    assert any("enter the path" in t for t in texts(at.error))


def test_recording_buttons(live, monkeypatch, tmp_path):
    path = tmp_path / "take.jsonl"
    at = panel(live[1].url, monkeypatch)
    at.text_input(key="w_rec_path").set_value(str(path))
    at.button(key="rec_start").click().run()
    assert any(str(path) in t for t in texts(at.success)), texts(at.success)
    assert {m.label: m.value for m in at.metric}["Recording"] == "on"
    deadline = time.monotonic() + 30  # let at least one packet reach the take before stopping
    while live[0].status()["recording"]["packets"] < 1:
        assert time.monotonic() < deadline, "nothing was recorded"
        time.sleep(0.05)
    at.button(key="rec_stop").click().run()
    assert any("Recording stopped" in t for t in texts(at.success))
    assert path.read_text().count("\n") >= 1
    at.button(key="rec_start").click().run()  # the same file again: refused, the take is kept
    assert any("exists" in t for t in texts(at.error))


def test_server_down_is_reported_then_reconnects(live, monkeypatch):
    port = free_port()
    at = panel(f"ws://127.0.0.1:{port}", monkeypatch)
    assert any("Control server unreachable" in t and "Retrying" in t for t in texts(at.error))
    assert not at.metric and not at.sidebar.button  # nothing to steer
    with serve_in_thread(live[0], "127.0.0.1", port):
        at.run()
        assert not at.exception
        assert {m.label: m.value for m in at.metric}["State"] == "running"
        assert at.sidebar.button(key="apply")


def test_empty_checkpoint_folder_reminds_how_to_get_one(live, monkeypatch, tmp_path):
    with serve_in_thread(live[0], "127.0.0.1", 0, checkpoints_dir=tmp_path / "none") as handle:
        at = panel(handle.url, monkeypatch)
        assert any("README.md" in t for t in texts(at.sidebar.info)), texts(at.sidebar.info)


def test_stop_and_start_buttons(live, monkeypatch):
    at = panel(live[1].url, monkeypatch)
    at.button(key="stop").click().run()
    assert any("Capture stopped" in t for t in texts(at.success))
    assert {m.label: m.value for m in at.metric}["State"] == "stopped" and not live[0].running
    at.button(key="start").click().run()
    assert any("Capture started" in t for t in texts(at.success)) and live[0].running


def test_replayed_session_shows_the_3d_skeleton(live, monkeypatch, tmp_path):
    pipeline = live[0]
    old = pipeline.config.source
    session = write_session(tmp_path / "take.jsonl")
    try:
        assert pipeline.update(source=str(session), loop=True)["restarted"] is True
        end = time.monotonic() + 10
        while not (pipeline.latest_packet() or {}).get("people") and time.monotonic() < end:
            time.sleep(0.05)
        at = panel(live[1].url, monkeypatch)
        figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        skeleton = [f for f in figures if f["data"] and f["data"][0]["type"] == "scatter3d"]
        assert len(skeleton) == 1, [f["data"][0]["type"] for f in figures]
        assert skeleton[0]["data"][0]["name"] == "person 3"
        assert max(z for z in skeleton[0]["data"][0]["z"] if z is not None) > 1.4  # a standing person, Z up
    finally:
        pipeline.update(source=old)


def test_a_page_password_hides_the_server_until_it_is_given(monkeypatch):
    monkeypatch.setenv("POSE_SERVER_CONTROL_URL", f"ws://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("POSE_SERVER_TOKEN", "control-secret")
    monkeypatch.setenv("POSE_PANEL_TOKEN", "page-secret")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    # only the prompt: no settings, and the control token is in no widget the browser gets
    assert [t.label for t in at.text_input] == ["Panel password"]
    assert all(t.value != "control-secret" for t in at.text_input)
    at.text_input[0].input("wrong").run()
    assert [e.value for e in at.error] == ["Wrong password."]
    assert [t.label for t in at.text_input] == ["Panel password"]
    at.text_input[0].input("page-secret").run()
    assert not at.exception, at.exception
    labels = [t.label for t in at.text_input]
    assert "Panel password" not in labels and "Control API" in labels
