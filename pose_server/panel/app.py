"""Streamlit control panel of the pose server: `pose-server panel` or
`streamlit run pose_server/panel/app.py -- --control ws://127.0.0.1:8765`.

It talks to the server only through the control API (pose_server.control.client): it never runs
inference itself. The live view is a fragment that refreshes itself and reconnects when the server
comes back.
"""

from __future__ import annotations

import argparse
import hmac
import os
import sys
from pathlib import Path
from typing import Any

import streamlit as st
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `streamlit run` puts only this folder on sys.path
    sys.path.insert(0, str(ROOT))

from pose_server.control.client import DEFAULT_URL, ControlClient, ControlError, ServerUnavailable  # noqa: E402
from pose_server.control.messages import CONFIG_FIELDS  # noqa: E402
from pose_server.panel import logic  # noqa: E402
from pose_server.panel.figures import skeleton_3d_figure, timeline_figure  # noqa: E402

MODEL_SIZES = ("", "small", "base", "large", "huge")
DEVICES = ("cpu", "cuda")
BACKENDS = CONFIG_FIELDS["backend"].choices  # what the server accepts
SLOW_S = 600.0  # a restart may export and quantize a model first: wait for it rather than report a lost server
S = st.session_state


def _defaults() -> tuple[str, str]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--control", default=os.environ.get("POSE_SERVER_CONTROL_URL", DEFAULT_URL))
    args, _ = parser.parse_known_args(sys.argv[1:] if "--control" in sys.argv else [])
    return args.control, os.environ.get("POSE_SERVER_TOKEN", "")


# -- connection ---------------------------------------------------------------------------------
def get_client() -> ControlClient | None:
    """The session's client, (re)connecting when needed; None while the server is unreachable."""
    key = (S.url.strip(), S.token.strip())
    client = S.get("_client")
    if client is not None and S.get("_client_key") == key:
        return client
    drop_client()
    try:
        client = ControlClient(key[0], key[1] or None, timeout=float(S.get("timeout", 10.0)))
    except ServerUnavailable as e:
        S["_conn_error"] = str(e)
        return None
    except Exception as e:  # a malformed URL, for instance
        S["_conn_error"] = f"cannot connect to {key[0]!r}: {e}"
        return None
    S["_client"], S["_client_key"], S["_conn_error"] = client, key, None
    return client


def drop_client() -> None:
    client = S.pop("_client", None)
    if client is not None:
        try:
            client.close()
        except Exception:
            pass


def call(method: str, *args: Any, **kwargs: Any) -> Any:
    """Run one client call; server errors become a message for the user, a lost connection a retry."""
    client = get_client()
    if client is None:
        return None
    try:
        return getattr(client, method)(*args, **kwargs)
    except ControlError as e:
        S.setdefault("_flash", []).append(("error", f"The server refused `{method}`: {e.message}"))
    except (ConnectionClosed, OSError, TimeoutError) as e:
        drop_client()
        S["_conn_error"] = f"lost the connection to {S.url}: {type(e).__name__}: {e}"
    return None


def flash(kind: str, text: str) -> None:
    S.setdefault("_flash", []).append((kind, text))


# -- sidebar ------------------------------------------------------------------------------------
def init_settings(config: dict[str, Any]) -> None:
    """Fill the widgets from the server's config once (and again after "Reload from server")."""
    if S.get("_settings_loaded"):
        return
    src = config.get("source", logic.DEFAULT_CLIP)
    S["w_source_kind"] = logic.source_kind(src)
    S["w_path"] = str(src) if S["w_source_kind"] == "Video file" else ""
    S["w_webcam"] = int(src) if S["w_source_kind"] == "Webcam" else 0
    S["w_upload_path"] = str(src) if S["w_source_kind"] == "Upload" else None
    S["w_model_size"] = config.get("model_size") or ""
    S["w_checkpoint"] = config.get("checkpoint") or ""
    S["w_device"] = str(config.get("device", "cpu"))
    S["w_backend"] = config.get("backend", "torch")
    for name, default in (("det_threshold", 0.5), ("kpt_threshold", 0.3), ("min_cutoff", 1.0), ("beta", 0.05)):
        S[f"w_{name}"] = float(config.get(name, default))
    S["w_det_interval"] = int(config.get("det_interval", 1))
    S["w_lift_3d"] = bool(config.get("lift_3d", True))
    S["w_depth_prior"] = bool(config.get("depth_prior", True))
    S["w_swap_guard"] = bool(config.get("swap_guard", True))
    for name, default in (("performer_height", 1.75), ("camera_hfov", 60.0)):
        S[f"w_{name}"] = float(config.get(name, default))
    S["w_camera_pitch_auto"] = config.get("camera_pitch") is None  # None: the lifter estimates it
    S["w_camera_pitch"] = float(config.get("camera_pitch") or 0.0)
    S["w_udp"] = "\n".join(config.get("udp", []) or [])
    S["_settings_loaded"] = True


def sidebar_settings(config: dict[str, Any]) -> None:
    init_settings(config)
    sb = st.sidebar
    sb.subheader("Source")
    kind = sb.radio("Source", logic.SOURCE_KINDS, key="w_source_kind", horizontal=True, label_visibility="collapsed")
    if kind == "Video file":
        sb.text_input("Path on the server machine", key="w_path", placeholder="/path/to/clip.mp4")
    elif kind == "Webcam":
        sb.number_input("Webcam index", min_value=0, max_value=63, step=1, key="w_webcam")
    elif kind == "Upload":
        up = sb.file_uploader("Video to upload", type=["mp4", "mov", "avi", "mkv", "webm"], key="w_upload")
        if up is not None and S.get("_uploaded_name") != (up.name, up.size):
            S["w_upload_path"] = str(logic.save_upload(up.name, up.getvalue()))
            S["_uploaded_name"] = (up.name, up.size)
        if S.get("w_upload_path"):
            sb.caption(f"Uploaded to `{S.w_upload_path}` (the server must run on this machine).")
    else:
        sb.caption(f"`{logic.DEFAULT_CLIP}` (Sports2D demo clip)")

    sb.subheader("Model")
    if "model_size" in config:
        sb.selectbox("Size (hub model when no checkpoint is chosen)", MODEL_SIZES, key="w_model_size",
                     format_func=lambda v: v or "(server default)")
    listing = call("request", "list_checkpoints") or {}
    options = [""] + list(listing.get("checkpoints", []))
    if S.w_checkpoint and S.w_checkpoint not in options:
        options.append(S.w_checkpoint)
    sb.selectbox("Checkpoint", options, key="w_checkpoint", format_func=lambda p: p or "(server default)")
    if not listing.get("checkpoints"):
        sb.info(listing.get("hint") or "No checkpoints found: put ViTPose weights in checkpoints/ "
                "(see checkpoints/README.md).")
    c1, c2 = sb.columns(2)
    devices = DEVICES if S.w_device in DEVICES else (*DEVICES, S.w_device)  # e.g. "cuda:1" as the server has it
    c1.selectbox("Device", devices, key="w_device")
    c2.selectbox("Backend", BACKENDS, key="w_backend")

    sb.subheader("Detection")
    sb.slider("Person score threshold", 0.0, 1.0, step=0.05, key="w_det_threshold")
    sb.slider("Keypoint score threshold", 0.0, 1.0, step=0.05, key="w_kpt_threshold")
    sb.number_input("Run the detector every N frames", min_value=1, max_value=1000, step=1, key="w_det_interval")
    sb.checkbox("Put back left/right labels the detector exchanged for a few frames (restarts)", key="w_swap_guard")

    sb.subheader("Smoothing (One Euro)")
    sb.number_input("min_cutoff (Hz): lower = smoother", min_value=0.0001, max_value=100.0, step=0.1,
                    format="%.4f", key="w_min_cutoff")
    sb.number_input("beta: higher = less lag", min_value=0.0, max_value=100.0, step=0.005, format="%.4f",
                    key="w_beta")

    sb.subheader("3D")
    sb.checkbox("Lift to 3D joints and rotations", key="w_lift_3d")
    sb.checkbox("Learned depth prior (off: geometric priors only; restarts)", key="w_depth_prior",
                disabled=not S.w_lift_3d)
    lo, hi = logic.field_range("performer_height")
    sb.number_input("Performer height (m)", min_value=lo, max_value=hi, step=0.01, format="%.2f",
                    key="w_performer_height", disabled=not S.w_lift_3d)
    c1, c2 = sb.columns(2)
    lo, hi = logic.field_range("camera_hfov")
    c1.number_input("Camera field of view (deg)", min_value=lo, max_value=hi, step=1.0,
                    key="w_camera_hfov", disabled=not S.w_lift_3d)
    lo, hi = logic.field_range("camera_pitch")
    c2.number_input("Camera pitch (deg down)", min_value=lo, max_value=hi, step=1.0,
                    key="w_camera_pitch", disabled=not S.w_lift_3d or S.w_camera_pitch_auto)
    sb.checkbox("Estimate the camera pitch from the performers", key="w_camera_pitch_auto", disabled=not S.w_lift_3d)
    sb.caption("One camera cannot measure these: they set the skeleton's scale and the floor's angle (restart). "
               "Estimated, the pitch is what upright performers show over their first seconds; a performer seen "
               "from below fools it (docs/lifting.md).")

    sb.subheader("UDP targets")
    sb.text_area("host:port, one per line", key="w_udp", height=80)

    c1, c2 = sb.columns(2)
    if c1.button("Apply", type="primary", key="apply"):
        apply_settings(config)
    if c2.button("Reload from server", key="reload"):
        S["_settings_loaded"] = False
        st.rerun()


def wanted_settings() -> dict[str, Any]:
    """The configuration the widgets ask for; ValueError names a bad entry."""
    return {
        "source": logic.source_value(S.w_source_kind, S.get("w_path", ""), S.get("w_webcam", 0),
                                     S.get("w_upload_path")),
        "model_size": S.get("w_model_size") or None,
        "checkpoint": S.w_checkpoint or None,
        "device": S.w_device,
        "backend": S.w_backend,
        "det_threshold": float(S.w_det_threshold),
        "kpt_threshold": float(S.w_kpt_threshold),
        "det_interval": int(S.w_det_interval),
        "swap_guard": bool(S.w_swap_guard),
        "min_cutoff": float(S.w_min_cutoff),
        "beta": float(S.w_beta),
        "lift_3d": bool(S.w_lift_3d),
        "depth_prior": bool(S.w_depth_prior),
        "performer_height": float(S.w_performer_height),
        "camera_hfov": float(S.w_camera_hfov),
        "camera_pitch": None if S.w_camera_pitch_auto else float(S.w_camera_pitch),
        "udp": logic.parse_udp_targets(S.w_udp),
    }


def apply_settings(config: dict[str, Any]) -> None:
    try:
        changes = logic.config_changes(config, wanted_settings())
    except ValueError as e:
        flash("error", f"Not applied: {e}")
        return
    if not changes:
        flash("info", "Nothing to apply: the server already uses these settings.")
        return
    with st.spinner("Applying (a source or model change restarts the pipeline)..."):
        result = call("set_config", timeout=SLOW_S, **changes)
    if result is not None:
        flash("success", logic.describe_update(result))


# -- main area ----------------------------------------------------------------------------------
def controls() -> None:
    c1, c2, c3, c4, c5 = st.columns([1, 1, 3, 1.4, 1.4], vertical_alignment="bottom")
    if c1.button("Start", icon=":material/play_arrow:", key="start"):
        if call("request", "start", timeout=SLOW_S) is not None:
            flash("success", "Capture started.")
    if c2.button("Stop", icon=":material/stop:", key="stop"):
        if call("request", "stop", timeout=SLOW_S) is not None:
            flash("success", "Capture stopped.")
    c3.text_input("Recording file (empty: out/recordings/session_<time>.jsonl)", key="w_rec_path")
    if c4.button("Start recording", icon=":material/fiber_manual_record:", key="rec_start"):
        r = call("request", "start_recording", path=S.w_rec_path.strip() or None)
        if r is not None:
            flash("success", f"Recording to `{r.get('path')}`.")
    if c5.button("Stop recording", key="rec_stop"):
        r = call("request", "stop_recording")
        if r is not None:
            flash("success", "Recording stopped" + (f": `{r['path']}`." if r.get("path") else "."))


def show_flash() -> None:
    for kind, text in S.pop("_flash", []):
        getattr(st, kind)(text)


def live_view() -> None:
    """Status, preview, charts and 3D skeleton; refreshed by the fragment below."""
    was_down = S.get("_was_down", False)
    status = call("status")
    if status is None:
        S["_was_down"] = True
        st.error(f"Control server unreachable. {S.get('_conn_error') or ''}\n\n"
                 f"Retrying every {S.refresh:g} s. Start the server with "
                 "`pose-server run --control 127.0.0.1:8765`.")
        return
    S["_was_down"] = False
    if was_down:  # the server is back: refresh the sidebar from its config too
        S["_settings_loaded"] = False
        st.rerun(scope="app")
    m = logic.status_metrics(status)
    if m["error"]:
        st.error(f"Pipeline error: {m['error']}")
    S.setdefault("_history", logic.History()).add(m)

    cols = st.columns(6)
    cols[0].metric("State", "running" if m["running"] else "stopped")
    cols[1].metric("FPS", f"{m['fps']:.1f}" if isinstance(m["fps"], (int, float)) else "–")
    cols[2].metric("Latency p50 / p95 (ms)", _pair(m["latency_p50"], m["latency_p95"]))
    cols[3].metric("People", m["people"] if m["people"] is not None else "–")
    cols[4].metric("Dropped frames", m["dropped"] if m["dropped"] is not None else "–")
    cols[5].metric("Recording", "on" if m["recording"] else "off")
    rec = f" · recording to `{m['recording']}`" if m["recording"] else ""
    st.caption(f"Source `{m['source']}` · model `{m['model']}` · {m['device']} / {m['backend']} · "
               f"UDP → {', '.join(m['udp']) or 'none'}{rec}")

    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Preview**")
        jpeg = call("preview", max_width=640)
        if jpeg:
            st.image(jpeg, caption="Live preview with the skeleton overlay", width="stretch")
        else:
            st.info("No preview yet: start the capture.")
    with right:
        st.markdown("**3D skeleton** (drag to rotate)")
        people = logic.joints_3d(call("keypoints"))
        if people:
            st.plotly_chart(skeleton_3d_figure(people), key="skeleton3d", config={"displaylogo": False})
        else:
            st.info("No 3D joints in the latest packet (nobody found yet, or 3D lifting is off).")

    hist: logic.History = S["_history"]
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**FPS**")
        st.plotly_chart(timeline_figure(hist.table(("fps",)), ("fps",), "frames/s"), key="fps_chart",
                        config={"displaylogo": False})
    with c2:
        st.markdown("**Latency (ms)**")
        lat = ("latency p50 (ms)", "latency p95 (ms)")
        st.plotly_chart(timeline_figure(hist.table(lat), lat, "ms"), key="latency_chart",
                        config={"displaylogo": False})


def _pair(a: Any, b: Any) -> str:
    def f(v: Any) -> str:
        return f"{v:.0f}" if isinstance(v, (int, float)) else "–"

    return f"{f(a)} / {f(b)}"


def unlocked() -> bool:
    """With a page password ($POSE_PANEL_TOKEN, set by `pose-server panel --password`): True once this browser
    session has given it. Until then the page shows only the prompt, so neither the server's state nor the control
    token (pre-filled below) reaches the browser."""
    password = os.environ.get("POSE_PANEL_TOKEN", "")
    if not password or S.get("unlocked"):
        return True
    st.title("Pose server")
    given = st.text_input("Panel password", type="password", key="w_password")
    if given and hmac.compare_digest(given.encode(), password.encode()):
        S.unlocked = True
        del S["w_password"]
        st.rerun()
    if given:
        st.error("Wrong password.")
    return False


def main() -> None:
    st.set_page_config(page_title="ViTPose Mocap panel", page_icon=":material/accessibility_new:", layout="wide")
    if not unlocked():
        return
    url, token = _defaults()
    S.setdefault("url", url)
    S.setdefault("token", token)
    S.setdefault("refresh", 1.0)
    S.setdefault("w_rec_path", "")

    st.sidebar.title("ViTPose Mocap")
    st.sidebar.text_input("Control API", key="url")
    st.sidebar.text_input("Token (needed off this machine)", key="token", type="password")
    st.sidebar.select_slider("Refresh every (s)", options=[0.5, 1.0, 2.0, 5.0], key="refresh")

    st.title("Pose server")
    config = call("config")
    if config is not None:
        sidebar_settings(config)
        controls()
    else:
        st.sidebar.warning("Not connected: the settings appear once the server answers.")
    show_flash()
    st.fragment(live_view, run_every=S.refresh)()


main()
