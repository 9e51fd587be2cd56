"""The capture server: frames in, pose packets out over UDP.

Four stages overlap in threads joined by small bounded queues:

    capture -> inference (detect/track + ViTPose) -> signal (filter, lift, IK) -> send (UDP, record, preview)

Live sources keep only the newest frame at every hand-over (older ones are dropped and counted) so
latency never builds up; file sources pass every frame on in order. Latency is measured from the
capture timestamp to the moment the packet leaves. A recorded session as the source is replayed:
its packets are re-sent with their original timing and no inference runs.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import sources as src
from .detect import make_detector
from .preview import PreviewWriter, draw_people, encode_jpeg
from .record import Recorder, replay
from .track import Tracker
from .udp import UdpSender

log = logging.getLogger(__name__)

DEFAULT_MODEL = "usyd-community/vitpose-base-simple"
HUB_MODELS = {
    "small": "usyd-community/vitpose-plus-small",
    "base": "usyd-community/vitpose-base-simple",
    "large": "usyd-community/vitpose-plus-large",
    "huge": "usyd-community/vitpose-plus-huge",
}

# Fields applied while running; every other field restarts the pipeline.
LIVE_FIELDS = {"min_cutoff", "beta", "d_cutoff", "hold_s", "kpt_threshold", "det_threshold", "det_interval",
               "max_people", "udp", "fps_limit", "protocol_version", "lift_3d", "detector", "loop", "max_frames",
               "record", "log_every", "udp_token"}
_END = object()  # end-of-stream marker passed down the queues
FRESH_WAIT = 0.25  # camera-like sources: wait for the next frame when it is due within this share of a period


@dataclass
class PipelineConfig:
    """Everything the pipeline needs; the control API reads and changes these fields by name."""

    source: str | int = "0"
    loop: bool = False  # restart a video file / image folder / recording at its end
    realtime: bool = False  # pace files to their frame rate (else as fast as possible)
    drop_stale: bool | None = None  # keep only the newest frame at each stage; None = for live sources only
    max_frames: int | None = None  # stop after this many frames
    camera_backend: str = "any"  # any | v4l2 | ffmpeg | gstreamer | dshow | msmf | avfoundation
    camera_width: int | None = None
    camera_height: int | None = None
    camera_fps: float | None = None
    checkpoint: str | None = None  # file, folder or Hugging Face hub id; None = DEFAULT_MODEL / model_size
    model_config: str | None = None  # official ViTPose python config or configs/*.json for a bare .pth
    dataset: str | None = None  # ViTPose+ head: coco | aic | mpii | ap10k | apt36k | wholebody
    model_size: str | None = None  # small | base | large | huge (hub model when no checkpoint is given)
    device: str = "cpu"
    backend: str = "onnx"  # onnx | torch
    quantize: bool = True  # int8 dynamic quantization (onnx backend)
    flip_test: bool = False
    threads: int | None = None  # inference threads (None = every core)
    detector: str = "auto"  # auto | yolox | yolox-tiny | hog | full-frame | path/to/model.onnx
    det_threshold: float = 0.3
    kpt_threshold: float = 0.3
    det_interval: int = 30  # frames between detector runs while every track holds
    max_people: int = 1
    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0
    hold_s: float = 0.25
    lift_3d: bool = True
    depth_prior: bool = True  # the lifter's learned depth prior (resources/models/depth_prior.npz)
    protocol_version: int = 2  # 2 adds per-bone rotations
    udp: list[str] = field(default_factory=lambda: ["127.0.0.1:9000"])
    # Shared secret sent as meta.token: a Blender listening on anything but 127.0.0.1 accepts only
    # packets that carry its token.
    udp_token: str | None = None
    fps_limit: float = 0.0  # 0 = no limit
    record: str | None = None  # JSON-lines session file
    preview: str | None = None  # overlay .mp4
    replay_speed: float = 1.0
    progress: bool = False  # tqdm bar for files (the CLI turns it on)
    log_every: float = 5.0  # seconds between fps/latency log lines

    @property
    def model(self) -> str:
        if self.checkpoint:
            return str(self.checkpoint)
        return HUB_MODELS.get(self.model_size or "", DEFAULT_MODEL)


@dataclass
class _Item:
    """One frame travelling down the stages."""

    frame: src.Frame
    media_t: float
    stamp: float = 0.0  # the packet's capture timestamp (see _capture_loop)
    ids: list[int] = field(default_factory=list)
    boxes: np.ndarray | None = None
    kpts: np.ndarray | None = None
    scores: np.ndarray | None = None
    people: list[dict] = field(default_factory=list)
    infer_ms: float = 0.0


class _TrackSignal:
    """Per-track state: the 2D One Euro filter and the lifter, whose own 3D One Euro filter (tuned for
    metres by its owner) is the 3D filter; a second one on top would only add lag."""

    def __init__(self, cfg: PipelineConfig, num_keypoints: int, image_size: tuple[int, int], lift: Any) -> None:
        from .filters import KeypointFilter

        self.f2d = KeypointFilter(num_keypoints=num_keypoints, dims=2, **_filter_params(cfg))
        prior = "default" if cfg.depth_prior else None
        self.lifter = (
            lift(image_size=image_size, min_score=cfg.kpt_threshold, depth_prior=prior) if lift is not None else None
        )
        self.last_seen = 0.0

    def set_params(self, cfg: PipelineConfig) -> None:
        self.f2d.set_params(**_filter_params(cfg))
        if self.lifter is not None and hasattr(self.lifter, "set_params"):
            self.lifter.set_params(min_score=cfg.kpt_threshold)


def load_estimator(cfg: PipelineConfig) -> Any:
    """The ViTPose estimator a config asks for (int8 only applies to the ONNX backend)."""
    try:
        from .vitpose import VitPoseEstimator
    except ImportError:
        from .vitpose.estimator import VitPoseEstimator
    quantize = cfg.quantize and cfg.backend == "onnx"
    log.info("loading %s (%s, %s%s)", cfg.model, cfg.backend, cfg.device, ", int8" if quantize else "")
    extra = {"threads": cfg.threads} if cfg.threads else {}
    return VitPoseEstimator(cfg.model, config=cfg.model_config, backend=cfg.backend, device=cfg.device,
                            quantize=quantize, flip_test=cfg.flip_test, dataset=cfg.dataset, **extra)


def _filter_params(cfg: PipelineConfig) -> dict:
    return {"min_cutoff": cfg.min_cutoff, "beta": cfg.beta, "d_cutoff": cfg.d_cutoff, "min_score": cfg.kpt_threshold,
            "hold_s": cfg.hold_s}


def _optional(module: str, name: str) -> Any:
    """A teammate's module that may be absent in a partial checkout: None (with a warning) if so."""
    try:
        mod = __import__(f"pose_server.{module}", fromlist=[name])
        return getattr(mod, name)
    except (ImportError, AttributeError) as exc:
        log.warning("pose_server.%s.%s unavailable (%s): continuing without it", module, name, exc)
        return None


class Pipeline:
    """Runs the capture server for one PipelineConfig; see the module docstring."""

    def __init__(self, config: PipelineConfig | None = None, estimator: Any = None) -> None:
        self.config = config or PipelineConfig()
        self._estimator = estimator  # injected (tests, bench) or loaded on start()
        self._estimator_key: tuple | None = None if estimator is None else self._model_key()
        self._lock = threading.RLock()  # serialises start/stop/update/recording calls
        self._count_lock = threading.Lock()  # stage threads only (stop() joins them while holding _lock)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self.sender = UdpSender([])
        self.recorder: Recorder | None = None
        self.source: src.Source | None = None
        self.detector: Any = None
        self.tracker: Tracker | None = None
        self.encoder: Any = None
        self._preview_writer: PreviewWriter | None = None
        self._latest_packet: dict | None = None
        self._latest_view: tuple[np.ndarray, list[dict]] | None = None
        self._reset_counters()
        self.error: str | None = None
        self.state = "stopped"

    # -- public API ----------------------------------------------------------------------------
    def start(self) -> None:
        """Open the source, load the model (once) and start the threads. No-op when running."""
        with self._lock:
            if self.running:
                return
            self._reset_counters()
            self.error = None
            self._stop.clear()
            self._done.clear()
            cfg = self.config
            try:
                self.sender.set_targets(list(cfg.udp))
                if src.is_recording(str(cfg.source)):
                    if not Path(str(cfg.source)).is_file():
                        raise src.SourceError(f"recording not found: {cfg.source}")
                    stages = [("replay", self._replay_loop)]
                else:
                    self._open_inference()
                    stages = [("capture", self._capture_loop), ("infer", self._infer_loop),
                              ("signal", self._signal_loop), ("send", self._send_loop)]
                if cfg.record and self.recorder is None:
                    self.recorder = Recorder(cfg.record)
                if cfg.preview and not src.is_recording(str(cfg.source)):
                    self._preview_writer = PreviewWriter(cfg.preview, self.source.fps if self.source else 30.0)
            except BaseException:
                self._close_io(close_recording=False)
                self._done.set()
                raise
            # Camera-like: one slot per hand-over, so a stage always takes the newest item. Files: two, so
            # decoding the next frame overlaps with inference on this one.
            newest_only = self.source.live if cfg.drop_stale is None and self.source else bool(cfg.drop_stale)
            self._queues = [queue.Queue(maxsize=1 if newest_only else 2) for _ in range(3)]
            self._threads = [threading.Thread(target=self._guard, args=(fn,), name=f"pose-{name}", daemon=True)
                             for name, fn in stages]
            self._live_threads = len(self._threads)
            self.state = "running"
            self._t_start = time.monotonic()
            self._progress = self._make_progress()
            for t in self._threads:
                t.start()
            log.info("streaming %s -> %s (model %s, %s/%s, detector %s)", self.source_name,
                     ", ".join(self.sender.targets) or "no UDP target", cfg.model, cfg.backend, cfg.device,
                     getattr(self.detector, "name", "-"))

    def stop(self) -> None:
        """Stop every thread, close the source, the recording and the preview. Idempotent."""
        self._halt(close_recording=True)

    def _halt(self, close_recording: bool) -> None:
        with self._lock:
            self._stop.set()
            for q in getattr(self, "_queues", []):
                _drain(q)
            for t in self._threads:
                if t is not threading.current_thread():
                    t.join(timeout=10.0)
            self._threads = []
            self._close_io(close_recording)
            if self.state == "running":
                self.state = "stopped"
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the source ends or stop() is called; True when finished."""
        finished = self._done.wait(timeout)
        if finished and self._threads and not self._stop.is_set():
            self.stop()  # the source ended by itself: release everything
        return finished

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def status(self) -> dict:
        lat = np.array(list(self._latencies), np.float64) if self._latencies else None
        cfg = self.config
        return {
            "state": "running" if self.running else self.state,
            "running": self.running,
            "error": self.error,
            "fps": round(self._fps(), 2),
            "latency_ms": {"p50": None if lat is None else round(float(np.percentile(lat, 50)), 1),
                           "p95": None if lat is None else round(float(np.percentile(lat, 95)), 1)},
            "people": self._people,
            "frames": self._frames_sent,
            "frames_read": self._frames_read,
            "dropped_frames": self._dropped + (self.source.dropped if self.source else 0),
            "corrupt_frames": self.source.corrupt if self.source else self._corrupt,
            "detector_runs": self.tracker.detections if self.tracker else 0,
            "lift_failures": self._lift_failures,
            "stage_ms": {k: round(float(np.mean(list(v))), 1) if v else None
                         for k, v in self._stage_ms.items()},
            "source": str(cfg.source),
            "source_name": self.source_name,
            "model": cfg.model,
            "device": cfg.device,
            "backend": cfg.backend,
            "detector": getattr(self.detector, "name", cfg.detector),
            "skeleton": getattr(self._estimator, "skeleton", None),
            "udp": self.sender.stats(),
            "udp_targets": self.sender.targets,
            "recording": {"active": self.recorder is not None,
                          "path": str(self.recorder.path) if self.recorder else None,
                          "packets": self.recorder.lines if self.recorder else 0},
            "preview": cfg.preview,
            "uptime_s": round(time.monotonic() - self._t_start, 1) if self._t_start else 0.0,
            "config": dataclasses.asdict(cfg),
        }

    def update(self, **changes: Any) -> dict:
        """Change config fields: live ones apply at once, the others restart the pipeline cleanly."""
        names = {f.name for f in dataclasses.fields(PipelineConfig)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        with self._lock:
            old = dataclasses.replace(self.config)
            new = dataclasses.replace(self.config, **changes)
            changed = {k: v for k, v in changes.items() if getattr(old, k) != v}
            restart_keys = sorted(k for k in changed if k not in LIVE_FIELDS)
            if restart_keys and self.running:
                self._halt(close_recording=False)  # a recording in progress goes on across the restart
                self.config = new
                try:
                    self.start()
                except Exception as exc:
                    self.config = old  # put the working set-up back, then report why the change failed
                    self.start()
                    raise ValueError(f"could not apply {', '.join(restart_keys)}: {exc}; kept the previous "
                                     "settings running") from exc
                return {"applied": changed, "restarted": True, "restart_reason": restart_keys,
                        "message": f"restarted the pipeline to apply {', '.join(restart_keys)}"}
            self._apply_live(old, new, changed)
            self.config = new
            message = "nothing changed"
            if changed:
                message = "applied live" if self.running else "saved; used from the next start"
            return {"applied": changed, "restarted": False, "message": message}

    def latest_packet(self) -> dict | None:
        return self._latest_packet

    def latest_preview_jpeg(self, max_width: int = 640) -> bytes | None:
        view = self._latest_view
        if view is None:
            return None
        img, people = view
        return encode_jpeg(draw_people(img, people, self._bones(), self.config.kpt_threshold), max_width)

    def start_recording(self, path: str) -> dict:
        with self._lock:
            rec = Recorder(path)  # first: a refused path leaves the current recording running
            self.stop_recording()
            self.recorder = rec
            self.config.record = str(path)
            return {"path": str(path)}

    def stop_recording(self) -> dict:
        with self._lock:
            rec, self.recorder = self.recorder, None
            self.config.record = None
            if rec is None:
                return {"path": None, "packets": 0}
            rec.close()
            return {"path": str(rec.path), "packets": rec.lines}

    # -- set-up --------------------------------------------------------------------------------
    def _model_key(self) -> tuple:
        c = self.config
        return (c.model, c.model_config, c.dataset, c.device, c.backend, c.quantize, c.flip_test, c.threads)

    def _open_inference(self) -> None:
        cfg = self.config
        # The source first: a wrong path or camera index is the likelier mistake and costs no model load.
        self.source = src.open_source(cfg.source, realtime=cfg.realtime, backend=cfg.camera_backend,
                                      width=cfg.camera_width, height=cfg.camera_height, fps=cfg.camera_fps)
        if self._estimator is None or self._estimator_key != self._model_key():
            self._estimator = None
            self._estimator = load_estimator(cfg)
            self._estimator_key = self._model_key()
        from .protocol import PacketEncoder

        self.detector = make_detector(cfg.detector, cfg.det_threshold)
        self.tracker = Tracker(cfg.max_people, cfg.det_interval, min_keypoint_score=cfg.kpt_threshold)
        self._media_fps = self.source.fps or 30.0
        # seq goes on across restarts: receivers drop packets whose seq goes backwards.
        self.encoder = PacketEncoder(self.source.name, skeleton=self._estimator.skeleton,
                                     image_size=self.source.size if all(self.source.size) else (1, 1),
                                     start_seq=self.encoder.seq if self.encoder is not None else 0)
        self._lift = _optional("lift", "Lifter") if cfg.lift_3d else None
        self._solve = _optional("ik", "solve_rotations") if cfg.protocol_version >= 2 else None
        self._signals: dict[int, _TrackSignal] = {}

    def _apply_live(self, old: PipelineConfig, new: PipelineConfig, changed: dict) -> None:
        if "udp" in changed:
            self.sender.set_targets(list(new.udp))
        if {"min_cutoff", "beta", "d_cutoff", "hold_s", "kpt_threshold"} & set(changed):
            for sig in list(getattr(self, "_signals", {}).values()):
                sig.set_params(new)
        if self.tracker is not None:
            self.tracker.set_params(max_people=new.max_people, det_interval=new.det_interval)
            self.tracker.min_keypoint_score = new.kpt_threshold
        if "detector" in changed and self.running:
            self.detector = make_detector(new.detector, new.det_threshold)
        elif "det_threshold" in changed and self.detector is not None and hasattr(self.detector, "score_threshold"):
            self.detector.score_threshold = new.det_threshold
        if "lift_3d" in changed and self.running:
            self._lift = _optional("lift", "Lifter") if new.lift_3d else None
            self._signals = {}
        if "protocol_version" in changed and self.running:
            self._solve = _optional("ik", "solve_rotations") if new.protocol_version >= 2 else None
        if "record" in changed:
            if new.record:
                self.start_recording(new.record)
            else:
                self.stop_recording()

    def _close_io(self, close_recording: bool = True) -> None:
        if self.source is not None:
            self.source.close()
        if self._preview_writer is not None:
            self._preview_writer.close()
            self._preview_writer = None
        if self.recorder is not None and close_recording:
            self.stop_recording()
        if getattr(self, "_progress", None) is not None:
            self._progress.close()
            self._progress = None

    def _reset_counters(self) -> None:
        self._latencies: deque[float] = deque(maxlen=600)
        self._sent_times: deque[float] = deque(maxlen=120)
        self._frames_read = self._frames_sent = self._dropped = self._corrupt = self._people = 0
        self._lift_failures = 0
        self._stage_ms: dict[str, deque[float]] = {k: deque(maxlen=100) for k in ("detect", "infer", "signal", "send")}
        self._t_start = 0.0
        self._t_log = time.monotonic()

    def _make_progress(self) -> Any:
        total = self.source.frame_count if self.source is not None else None
        if not self.config.progress or self.source is None or self.source.live:
            return None
        from tqdm import tqdm

        if self.config.max_frames:
            total = min(total or self.config.max_frames, self.config.max_frames)
        return tqdm(total=total, unit="frame", desc=self.source_name, dynamic_ncols=True)

    @property
    def source_name(self) -> str:
        return self.source.name if self.source is not None else Path(str(self.config.source)).name

    def _bones(self) -> tuple:
        try:
            from .skeleton import get_skeleton

            return get_skeleton(getattr(self._estimator, "skeleton", "coco17")).bones
        except (ImportError, ValueError):
            return ()

    def _fps(self) -> float:
        t = self._sent_times
        if len(t) < 2 or time.monotonic() - t[-1] > 2.0:
            return 0.0
        return (len(t) - 1) / max(t[-1] - t[0], 1e-6)

    # -- stages --------------------------------------------------------------------------------
    def _guard(self, fn: Any) -> None:
        """Run one stage; any failure stops the whole pipeline with the reason in status()."""
        try:
            fn()
        except Exception as exc:
            log.exception("pipeline stage %s failed", threading.current_thread().name)
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = "error"
            self._stop.set()
        finally:
            with self._count_lock:
                self._live_threads -= 1
                last = self._live_threads == 0
            if last:
                if self.state == "running":
                    self.state = "finished" if not self._stop.is_set() else "stopped"
                self._done.set()

    def _put(self, q: queue.Queue, item: Any, newest_only: bool) -> None:
        """Hand an item to the next stage: live sources replace the stale item, files wait for room."""
        while not self._stop.is_set():
            if newest_only and item is not _END:
                try:
                    q.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        q.get_nowait()
                        self._dropped += 1
                    except queue.Empty:
                        pass
                    continue
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _items(self, q: queue.Queue) -> Iterator[tuple[_Item, np.ndarray, tuple[int, int], float]]:
        """The items of a stage's input queue until the end marker: (item, image, (w, h), start time)."""
        while (item := self._get(q)) is not _END:
            img = item.frame.image
            yield item, img, (img.shape[1], img.shape[0]), time.perf_counter()

    def _get(self, q: queue.Queue) -> Any:
        while not self._stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return _END

    def _newest_only(self) -> bool:
        d = self.config.drop_stale
        return self.source.live if d is None else bool(d)

    def _capture_loop(self) -> None:
        q = self._queues[0]
        live = self.source.live
        newest_only = self._newest_only()
        last = 0.0
        waiting_since: float | None = None
        media_origin: float | None = None
        while not self._stop.is_set():
            cfg = self.config
            if cfg.max_frames and self._frames_read >= cfg.max_frames:
                break
            try:
                frame = self.source.read(timeout=0.5)  # short, so stop() is never held up by a silent camera
                waiting_since = None
            except TimeoutError:
                waiting_since = waiting_since or time.monotonic()
                if time.monotonic() - waiting_since > 5.0:
                    log.warning("no frame from %s for 5 s; still waiting", self.source_name)
                    waiting_since = time.monotonic()
                continue
            if frame is None:
                if cfg.loop and not live:
                    self.source.close()
                    self.source = src.open_source(cfg.source, realtime=cfg.realtime)
                    media_origin = None  # the clip starts again: anchor its time anew so stamps keep rising
                    continue
                break
            if cfg.fps_limit > 0:
                wait = last + 1.0 / cfg.fps_limit - time.monotonic()
                if wait > 0:
                    if live:
                        self._dropped += 1
                        continue
                    time.sleep(wait)
                last = time.monotonic()
            self._frames_read += 1
            if self._progress is not None:
                self._progress.update(1)
            media_t = frame.timestamp if live else frame.index / self._media_fps
            # A file paced in real time was "captured" at its time in the clip: stamping packets with the
            # clip's own timing (anchored at the first frame read) keeps a recorded take as long as the clip
            # even when processing falls behind. Pacing never reads a frame before its time, so the stamp
            # never passes the send time. Latency figures still use the read time.
            paced = not live and cfg.realtime
            if paced and media_origin is None:
                media_origin = frame.timestamp - media_t
            stamp = media_origin + media_t if paced else frame.timestamp
            self._put(q, _Item(frame, media_t, stamp=stamp), newest_only=newest_only)
        self._put(q, _END, newest_only=False)

    def _infer_loop(self) -> None:
        qin, qout = self._queues[0], self._queues[1]
        live = self._newest_only()
        detect_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pose-detect")
        try:
            self._infer_frames(qin, qout, live, detect_pool)
        finally:
            detect_pool.shutdown(wait=True, cancel_futures=True)
        self._put(qout, _END, newest_only=False)

    def _infer_frames(self, qin: queue.Queue, qout: queue.Queue, live: bool,
                      detect_pool: concurrent.futures.ThreadPoolExecutor) -> None:
        pending: concurrent.futures.Future | None = None
        for item, img, size, t0 in self._fresh_items(qin, live):
            tracker = self.tracker
            if pending is not None and pending.done():
                tracker.update_detections(*pending.result(), stale=True)
                pending = None
            if tracker.urgent():
                t_det = time.perf_counter()
                tracker.update_detections(*self.detector(img))
                self._stage_ms["detect"].append((time.perf_counter() - t_det) * 1000)
            elif tracker.needs_detection() and pending is None:
                # Periodic re-detection (new people, drift) runs beside ViTPose: no latency spike on this frame.
                pending = detect_pool.submit(self.detector, img)
                tracker.detection_scheduled()
            ids, boxes = tracker.boxes()
            if len(ids):
                kpts, scores = self._estimator(img, boxes)
                lost = set(tracker.update_keypoints(ids, kpts, scores, size))
                keep = [i for i, tid in enumerate(ids) if tid not in lost]
                item.ids = [ids[i] for i in keep]
                item.boxes, item.kpts, item.scores = boxes[keep], kpts[keep], scores[keep]
            else:
                tracker.frames_since_detection += 1
            item.infer_ms = (time.perf_counter() - t0) * 1000
            self._stage_ms["infer"].append(item.infer_ms)
            self._put(qout, item, newest_only=live)

    def _fresh_items(self, qin: queue.Queue, live: bool) -> Iterator[tuple[_Item, np.ndarray, tuple[int, int], float]]:
        """The inference stage's input. Camera-like sources: a frame that has waited so long that the next one
        is due within FRESH_WAIT of a frame period is swapped for that next one (the stale one is dropped and
        counted). Waiting at most a few ms instead of starting a ~35 ms inference on a frame already ~30 ms old
        caps the queueing part of the latency at (1 - FRESH_WAIT) periods; the short pause also leaves the
        cores to the decoder, which is working on exactly that next frame."""
        period = 1.0 / self._media_fps if self._media_fps > 0 else 0.0
        while (item := self._get(qin)) is not _END:
            due = period - (time.time() - item.frame.timestamp)  # until the next frame should arrive
            if live and period and 0.0 < due < FRESH_WAIT * period:
                try:
                    newer = qin.get(timeout=due + 0.1 * period)
                except queue.Empty:
                    newer = None
                if newer is _END:
                    qin.put(_END)  # finish this frame first, then stop
                elif newer is not None:
                    self._dropped += 1
                    item = newer
            img = item.frame.image
            yield item, img, (img.shape[1], img.shape[0]), time.perf_counter()

    def _signal_loop(self) -> None:
        qin, qout = self._queues[1], self._queues[2]
        live = self._newest_only()
        num_k = self._estimator.num_keypoints
        for item, _img, size, t0 in self._items(qin):
            people = []
            for tid, box, k, s in zip(item.ids, _rows(item.boxes), _rows(item.kpts), _rows(item.scores),
                                      strict=True):
                sig = self._signals.get(tid)
                if sig is None:
                    sig = self._signals[tid] = _TrackSignal(self.config, num_k, size, self._lift)
                sig.last_seen = item.media_t
                pts, sc, held = sig.f2d(k, s, item.media_t)
                person = {"id": int(tid), "bbox": box, "keypoints": pts, "scores": np.clip(sc, 0.0, 1.0),
                          "held": np.flatnonzero(held).tolist(), "joints_3d": None}
                if sig.lifter is not None:
                    person.update(self._lift_person(sig, pts, sc, item.media_t))
                people.append(person)
            # Forget tracks not seen for a second: their filters would only drag stale state along.
            signals = self._signals  # (lift_3d may swap the dict from another thread)
            for tid in [t for t, sig in list(signals.items()) if item.media_t - sig.last_seen > 1.0]:
                signals.pop(tid, None)
            item.people = people
            self._stage_ms["signal"].append((time.perf_counter() - t0) * 1000)
            self._put(qout, item, newest_only=live)
        self._put(qout, _END, newest_only=False)

    def _lift_person(self, sig: _TrackSignal, pts: np.ndarray, scores: np.ndarray, t: float) -> dict:
        """joints_3d (and v2 rotations) of one person; a pose the lifter/IK cannot handle (e.g. two joints on
        one pixel) sends the 2D keypoints alone rather than stopping the stream."""
        try:
            joints = sig.lifter(pts[:17], scores[:17], t)
            if joints is None or not np.isfinite(joints).all():
                return {}
            out = {"joints_3d": joints}
            if self._solve is not None and self.config.protocol_version >= 2:
                out["rotations"] = self._solve(joints)
            return out
        except ValueError as exc:
            self._lift_failures += 1
            if self._lift_failures == 1:
                log.warning("3D lifting skipped for a frame (%s); further failures are only counted", exc)
            return {}

    def _send_loop(self) -> None:
        for item, img, (w, h), t0 in self._items(self._queues[2]):
            lat = self._latencies
            meta = {"fps": round(self._fps(), 2), "model": Path(self.config.model).name[:256],
                    "latency_ms": {"infer": round(item.infer_ms, 1)}}
            if self.config.udp_token:
                meta["token"] = self.config.udp_token
            if lat:
                meta["latency_ms"]["p50"] = float(np.percentile(list(lat), 50))
            if self.encoder.image_size != [w, h]:  # image folders and some streams only tell their size per frame
                self.encoder.image_size = [w, h]
            data = self.encoder.encode(item.frame.index, item.stamp, item.people, meta=meta)
            self.sender.send(data)
            now = time.time()
            self._latencies.append((now - item.frame.timestamp) * 1000)
            self._sent_times.append(time.monotonic())
            packet = self.encoder.last_packet
            self._emit(data, packet, people=len(item.people))
            self._latest_view = (img, packet["people"])
            self._stage_ms["send"].append((time.perf_counter() - t0) * 1000)
            if self._preview_writer is not None:
                self._preview_writer.write(draw_people(img, packet["people"], self._bones(), self.config.kpt_threshold))

    def _emit(self, data: bytes, packet: dict, people: int) -> None:
        """Book-keeping shared by live streaming and replay: recording, latest packet, progress, logs."""
        rec = self.recorder
        if rec is not None:
            rec.write(data)
        self._latest_packet = packet
        self._people = people
        self._frames_sent += 1
        now = time.monotonic()
        if now - self._t_log >= self.config.log_every:
            self._t_log = now
            st = self.status()
            log.info("fps %.1f | latency p50 %s ms p95 %s ms | people %d | frames %d | dropped %d | corrupt %d | "
                     "ms/frame %s", st["fps"], st["latency_ms"]["p50"], st["latency_ms"]["p95"], st["people"],
                     st["frames"], st["dropped_frames"], st["corrupt_frames"],
                     " ".join(f"{k} {v}" for k, v in st["stage_ms"].items() if v is not None))

    def _replay_loop(self) -> None:
        def send(data: bytes, packet: dict) -> None:
            self.sender.send(data)
            self._sent_times.append(time.monotonic())
            self._emit(data, packet, people=len(packet.get("people", ())))

        replay(self.config.source, send, speed=self.config.replay_speed, loop=self.config.loop, stop=self._stop)


def _rows(a: np.ndarray | None) -> Any:
    return () if a is None else a


def _drain(q: queue.Queue) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
