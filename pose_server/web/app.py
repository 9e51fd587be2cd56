"""The Gradio page of `pose-server web`: upload a video, convert it (pose_server.convert), look, download.

Each conversion runs in a job folder under the app's own temporary folder (uploads and results never leave
it); one conversion runs at a time and the others wait in Gradio's queue. Cancel stops a waiting job as it starts
and a running one between frames, which removes its folder; closing or reloading the tab does the same (Gradio
drops the session's waiting jobs; the page's unload stops its running one). A session's files are removed an hour
after its last job, Gradio's copies of the uploads likewise. The input is a video or a webcam snapshot (one frame:
the overlay, the 3D pose and its packet; the animation files then hold that one pose).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np

from ..config import PipelineConfig
from ..convert import BODY_SIGMA, ConvertError, ConvertOptions, convert
from .models import STARTED, model_choices, model_fields

FORMATS = ("fbx", "bvh", "glb", "blend", "jsonl")
SMOOTH_2D, SMOOTH_3D = ConvertOptions(outputs=[]).smooth_2d, BODY_SIGMA["learned"]  # the page's lifter: learned
DETECTORS = ("auto", "yolox", "yolox-tiny", "hog", "full-frame")
KEEP_S = 3600  # a finished job's files (and Gradio's copy of its upload) stay this long for the download


class Cancelled(ConvertError):
    """The user pressed Cancel."""


@dataclass
class WebDefaults:
    """What `pose-server web` was started with: the model and the page's initial choices."""

    checkpoint: str | None = None  # file, folder or hub id; None = --model
    model: str = "auto"  # the CLI's --model: auto, a ViTPose size, blazepose-lite|full|heavy or a hub id
    backend: str = "onnx"
    detector: str = "auto"
    kpt_threshold: float = 0.3
    max_frames: int | None = None  # cap per upload (a public instance keeps jobs short)
    work_dir: Path | None = None  # where uploads and results live (default: a fresh temp folder)
    downloads: bool = True  # the page may fetch model weights (off beyond loopback unless --allow-downloads)


class Jobs:
    """Job folders and cancel flags, one per browser session."""

    def __init__(self, root: Path, keep_s: float = KEEP_S) -> None:
        self.root = root
        self.keep_s = keep_s
        self.running: set[str] = set()  # sessions with a job under way
        self.armed: set[str] = set()  # sessions whose Convert was pressed: their job waits or runs
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def path(self, session: str) -> Path:
        return self.root / ("".join(c for c in session if c.isalnum())[:64] or "anonymous")

    def folder(self, session: str) -> Path:
        """A fresh folder for this session's next job (the previous job's files are removed, and every other
        session's that finished more than `keep_s` ago)."""
        path = self.path(session)
        shutil.rmtree(path, ignore_errors=True)
        self.prune()
        path.mkdir(parents=True)
        return path

    def prune(self) -> None:
        """Remove the folders of sessions with no job under way whose files are older than `keep_s`."""
        if not self.root.is_dir():
            return
        busy = {self.path(s).name for s in self.running}
        for old in self.root.iterdir():
            if old.name not in busy and time.time() - old.stat().st_mtime > self.keep_s:
                shutil.rmtree(old, ignore_errors=True)

    def arm(self, session: str) -> None:
        """Convert was pressed: a new job waits; a Cancel from now on is its."""
        self.flag(session).clear()
        self.armed.add(session)

    def cancel(self, session: str) -> bool:
        """Stop the session's job, waiting or running (a waiting one stops as it starts); False: it has none."""
        if session not in self.armed and session not in self.running:
            return False  # nothing to cancel: a flag set now would stop the next job before it began
        self.flag(session).set()
        return True

    def leave(self, session: str) -> None:
        """The session's tab was closed: stop its job (which then removes its folder), or remove its files now."""
        self.cancel(session)
        if session not in self.running:
            self.remove(self.path(session))

    def remove(self, folder: Path) -> None:
        """A cancelled or failed job leaves nothing behind."""
        if folder.resolve().is_relative_to(self.root.resolve()):
            shutil.rmtree(folder, ignore_errors=True)

    def flag(self, session: str) -> threading.Event:
        with self._lock:
            ev = self._cancel.setdefault(session, threading.Event())
        return ev


def overlay_frames(path: Path, count: int = 4) -> list[np.ndarray]:
    """``count`` frames spread over the overlay video, RGB (browsers cannot play OpenCV's mp4v)."""
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for i in np.linspace(0, max(total - 1, 0), num=min(count, max(total, 1))).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, img = cap.read()
        if ok:
            frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def packet_text(packet: dict) -> str:
    """A packet laid out for reading: one line per field, per person (json.dumps(indent) gives a line per number)."""
    def line(key: str, value: Any, pad: str) -> str:
        return f'{pad}"{key}": {json.dumps(value, separators=(", ", ": "))}'

    top = [line(k, v, "  ") for k, v in packet.items() if k != "people"]
    people = ["    {\n" + ",\n".join(line(k, v, "      ") for k, v in p.items()) + "\n    }" for p in packet["people"]]
    return "{\n" + ",\n".join(top + ['  "people": [\n' + ",\n".join(people) + "\n  ]"]) + "\n}"


def first_lifted_packet(session: Path) -> dict | None:
    for line in session.read_text().splitlines():
        packet = json.loads(line)
        if any(p.get("rotations") for p in packet["people"]):
            return packet
    return None


def job_input(folder: Path, video: str | None, snapshot: str | None) -> tuple[Path, float]:
    """Copy the upload (or the snapshot, into a one-image folder: an image source) into the job folder; returns
    (the source for convert, the shortest track kept in seconds)."""
    if video:
        src = folder / ("upload" + Path(video).suffix.lower())
        shutil.copyfile(video, src)
        return src, ConvertOptions(outputs=[]).min_track
    if snapshot:
        src = folder / "snapshot"
        src.mkdir()
        shutil.copyfile(snapshot, src / ("frame" + (Path(snapshot).suffix.lower() or ".png")))
        return src, 0.0  # one frame: keep whoever is in it
    raise gr.Error("upload a video or take a webcam snapshot first")


def session_of(request: gr.Request) -> str:
    """The browser session a request comes from (its jobs, folder and cancel flag)."""
    return getattr(request, "session_hash", None) or "anonymous"


def run_job(jobs: Jobs, defaults: WebDefaults, video: str | None, snapshot: str | None, model: str,
            formats: list[str], person: str, height: float, smooth_2d: float, smooth_3d: float, lock_feet: bool,
            detector: str, request: gr.Request, progress: gr.Progress,
            estimate_pitch: bool = False) -> tuple[list, str, list[str], str | None, str]:
    """One conversion: (overlay frames, packet JSON, files to download, GLB for the 3D view, status line)."""
    session = session_of(request)
    cancel = jobs.flag(session)
    jobs.running.add(session)
    try:
        if cancel.is_set():  # Cancel pressed while it waited in the queue (it used to clear that and convert)
            raise gr.Error("conversion cancelled")
        try:
            fields = model_fields(model or STARTED, defaults.checkpoint, defaults.model, defaults.downloads)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        return _convert_job(jobs, defaults, session, cancel, fields, video, snapshot, formats, person, height,
                            smooth_2d, smooth_3d, lock_feet, detector, progress, estimate_pitch)
    finally:
        jobs.running.discard(session)
        jobs.armed.discard(session)
        cancel.clear()


def _convert_job(jobs: Jobs, defaults: WebDefaults, session: str, cancel: threading.Event, fields: dict,
                 video: str | None, snapshot: str | None, formats: list[str], person: str, height: float,
                 smooth_2d: float, smooth_3d: float, lock_feet: bool, detector: str, progress: gr.Progress,
                 estimate_pitch: bool) -> tuple[list, str, list[str], str | None, str]:
    folder = jobs.folder(session)
    src, min_track = job_input(folder, video, snapshot)  # everything of this job stays in its folder
    wanted = [f for f in formats if f in FORMATS] or ["fbx"]
    outputs = [str(folder / f"take.{ext}") for ext in wanted]
    for extra in ("take.jsonl", "take.glb", "overlay.mp4"):  # what the page itself shows
        if str(folder / extra) not in outputs:
            outputs.append(str(folder / extra))
    cfg = PipelineConfig(source=str(src), backend=defaults.backend, detector=detector,
                         kpt_threshold=defaults.kpt_threshold, max_people=4, performer_height=height,
                         camera_pitch=None if estimate_pitch else 0.0, max_frames=defaults.max_frames, udp=[],
                         **fields)
    opts = ConvertOptions(outputs=outputs, person=person.strip() or "all", smooth_2d=smooth_2d,
                          smooth_3d=smooth_3d, lock_feet=lock_feet, min_track=min_track)

    def on_frame(done: int, total: int | None) -> None:
        if cancel.is_set():
            raise Cancelled("cancelled")
        progress((done, total) if total else None, desc="2D keypoints", unit="frames")

    progress(0.0, desc="loading the model")
    try:
        summary = convert(cfg, opts, progress=False, on_frame=on_frame)
        if cancel.is_set():  # pressed while the files were written: drop them too
            raise Cancelled("cancelled")
    except Cancelled:
        jobs.remove(folder)
        raise gr.Error("conversion cancelled") from None
    except (ConvertError, OSError, RuntimeError, ValueError) as exc:
        jobs.remove(folder)
        # the job's files by their names: where the server keeps them is none of the page's business
        raise gr.Error(str(exc).replace(f"{folder}{os.sep}", "").replace(str(jobs.root), "the job folder")) from None
    files = [p for ext in wanted for p in summary["files"].get(f".{ext}", [])]
    packet = first_lifted_packet(folder / "take.jsonl")
    seconds = summary["frames"] / summary["fps"]
    pitch = (f"; camera pitch estimated: {summary['camera_pitch']:.1f} deg down"
             if summary.get("camera_pitch_estimated") and summary.get("camera_pitch") is not None else "")
    status = (f"{summary['frames']} frames ({seconds:.1f} s) converted in {summary['seconds']['total']:.1f} s{pitch}; "
              f"performers {summary['people']}")
    glb = summary["files"].get(".glb", [None])[0]
    return (overlay_frames(folder / "overlay.mp4"), packet_text(packet) if packet else "{}", files,
            glb, status)


def cancel_job(jobs: Jobs, request: gr.Request) -> str:
    return "cancelling..." if jobs.cancel(session_of(request)) else \
        "nothing to cancel"


def build_app(defaults: WebDefaults) -> tuple[gr.Blocks, Path]:
    """The page, and the folder its jobs live in."""
    root = defaults.work_dir or Path(tempfile.mkdtemp(prefix="pose-web-"))
    jobs = Jobs(root / "jobs")
    # delete_cache: Gradio's own copies of uploads and results, an hour after they were made
    with gr.Blocks(title="ViTPose Mocap", delete_cache=(600, KEEP_S)) as app:
        gr.Markdown("## ViTPose Mocap: video to animation\nUpload a video of one or more people; get an "
                    "animated armature per performer for Blender, Maya, Unity or Unreal (`pose-server convert`).")
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tab("video"):
                    video = gr.Video(label="video", sources=["upload"], elem_id="video")
                with gr.Tab("webcam snapshot"):
                    snapshot = gr.Image(label="one frame from the webcam", sources=["webcam"], type="filepath",
                                        elem_id="snapshot")
                choices = model_choices(defaults.checkpoint, defaults.model, defaults.downloads)
                model = gr.Dropdown(choices, value=STARTED, label="model", elem_id="model")
                formats = gr.CheckboxGroup(list(FORMATS), value=["fbx", "glb"], label="downloads",
                                           info="fbx, glb, blend: every performer in one file (an armature each); "
                                                "bvh: one file per performer")
                person = gr.Textbox("all", label="performer: a track id or 'all'")
                height = gr.Slider(0.6, 2.4, value=1.75, step=0.01, label="performer height (m)")
                pitch = gr.Checkbox(False, label="estimate the camera pitch from the performers",
                                    info="off: the camera is taken as level; on: what upright performers show over "
                                         "the whole video (docs/convert.md)", elem_id="estimate_pitch")
                smooth_2d = gr.Slider(0.0, 0.3, value=SMOOTH_2D, step=0.01, label="2D smoothing sigma (s), two-sided",
                                      elem_id="smooth_2d")
                smooth_3d = gr.Slider(0.0, 0.3, value=SMOOTH_3D, step=0.01, label="3D smoothing sigma (s), two-sided",
                                      info=f"the body; the pelvis path: {ConvertOptions(outputs=[]).smooth_root:g} s",
                                      elem_id="smooth_3d")
                with gr.Accordion("feet and detection", open=False):
                    lock_feet = gr.Checkbox(True, label="foot locking")
                    detector = gr.Dropdown(list(DETECTORS), value=defaults.detector, label="person detector")
                with gr.Row():
                    run = gr.Button("Convert", variant="primary", elem_id="convert")
                    stop = gr.Button("Cancel", elem_id="cancel")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="overlay", columns=4, height=260, elem_id="overlay")
                view3d = gr.Model3D(label="3D (the take as glTF)", elem_id="model3d", height=360)
                files = gr.File(label="downloads", file_count="multiple", elem_id="files")
                packet = gr.Code(label="a pose packet", language="json", elem_id="packet", max_lines=16)

        def job(video: str | None, snapshot: str | None, model: str, formats: list[str], person: str,
                height: float, smooth_2d: float, smooth_3d: float, lock_feet: bool, detector: str,
                estimate_pitch: bool, request: gr.Request,
                progress: gr.Progress = gr.Progress()) -> Any:  # noqa: B008 (Gradio's way)
            return run_job(jobs, defaults, video, snapshot, model, formats, person, height, smooth_2d, smooth_3d,
                           lock_feet, detector, request, progress, estimate_pitch)

        def arm(request: gr.Request) -> None:
            jobs.arm(session_of(request))

        # armed at the click, not when the job starts: a Cancel while it waits in the queue is then its own
        run.click(arm, None, None, queue=False).then(
            job, [video, snapshot, model, formats, person, height, smooth_2d, smooth_3d, lock_feet, detector, pitch],
            [gallery, packet, files, view3d, status], concurrency_limit=1, api_name="convert")

        def cancel(request: gr.Request) -> str:
            return cancel_job(jobs, request)

        def leave(request: gr.Request) -> None:
            jobs.leave(session_of(request))

        stop.click(cancel, None, status, queue=False, api_name="cancel")
        app.unload(leave)  # the tab closed: Gradio drops its waiting jobs, this stops the running one
    return app, root
