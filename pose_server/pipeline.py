"""The capture server: frames in, pose packets out over UDP.

Four stages overlap in threads joined by small bounded queues:

    capture -> inference (detect/track + ViTPose) -> signal (filter, lift, IK) -> send (UDP, record, preview)

Live sources keep only the newest frame at every hand-over (older ones are dropped and counted) so
latency never builds up; file sources pass every frame on in order. Latency is measured from the
capture timestamp to the moment the packet leaves. A recorded session as the source is replayed:
its packets are re-sent with their original timing and no inference runs.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from . import sources as src
from .config import DEFAULT_MODEL, HUB_MODELS, LIFTERS, LIVE_FIELDS, PipelineConfig, load_estimator
from .detect import make_detector
from .lift.world import SharedWorld
from .outputs import check_output
from .preview import PreviewWriter, draw_people, encode_jpeg
from .protocol import check_token
from .record import Recorder, load_session
from .skeleton import get_skeleton
from .stages import Stages
from .track import Tracker
from .track_signal import TrackSignal
from .udp import UdpSender, parse_target

log = logging.getLogger(__name__)

# Re-exported: callers import the configuration from here too.
__all__ = ["DEFAULT_MODEL", "HUB_MODELS", "LIVE_FIELDS", "Pipeline", "PipelineConfig", "load_estimator"]


def _optional(module: str, name: str) -> Any:
    """A teammate's module that may be absent in a partial checkout: None (with a warning) if so."""
    try:
        mod = __import__(f"pose_server.{module}", fromlist=[name])
        return getattr(mod, name)
    except (ImportError, AttributeError) as exc:
        log.warning("pose_server.%s.%s unavailable (%s): continuing without it", module, name, exc)
        return None


class Pipeline(Stages):
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
        self.vmc: Any = None  # VmcSender while cfg.vmc names targets
        self.source: src.Source | None = None
        self.detector: Any = None
        self.tracker: Tracker | None = None
        self.encoder: Any = None
        self._preview_writer: PreviewWriter | None = None
        self._replay_packets: list[dict] = []  # a recorded session as the source, read and checked on start()
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
                # before the model loads: outputs that cannot be written, or that are the input itself
                if cfg.preview:
                    check_output(cfg.preview, "preview video", [str(cfg.source)])
                if cfg.record and self.recorder is None:
                    Recorder.check_free(check_output(cfg.record, "recording", [str(cfg.source)]))
                if cfg.udp_token:  # one the packets cannot carry would cost every frame: refuse it here
                    check_token(cfg.udp_token)
                self.sender.set_targets(list(cfg.udp))
                self._open_vmc(cfg)
                if src.is_recording(str(cfg.source)):
                    if not Path(str(cfg.source)).expanduser().is_file():
                        raise src.SourceError(f"recording not found: {cfg.source}")
                    self._replay_packets = load_session(cfg.source)  # a file that is no session: refused now
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
                     ", ".join(self.sender.targets) or "no UDP target", cfg.model,
                     getattr(self._estimator, "backend_label", cfg.backend), cfg.device,
                     getattr(self.detector, "name", "-"))
            if self.source is not None and not self.source.live and not cfg.realtime and self.sender.targets:
                log.warning("%s is read as fast as the server goes and its packets carry the time each frame was "
                            "read: a take recorded from them in Blender plays at the processing speed, not the "
                            "clip's; add --realtime to stream it at its own pace (or use `pose-server convert`)",
                            self.source_name)

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
            "refused_packets": self._refused,
            "stage_ms": {k: round(float(np.mean(list(v))), 2) if v else None
                         for k, v in self._stage_ms.items()},
            "source": src.redact_url(str(cfg.source)),
            "source_name": self.source_name,
            "model": cfg.model,
            "device": cfg.device,
            "backend": cfg.backend,
            # what actually runs, e.g. "openvino fp32 (auto)": the panel and `pose-server bench` show it
            "inference": getattr(self._estimator, "backend_label", None),
            "detector": getattr(self.detector, "name", cfg.detector),
            "skeleton": getattr(self._estimator, "skeleton", None),
            "udp": self.sender.stats(),
            "udp_targets": self.sender.targets,
            "vmc": self.vmc.stats() if self.vmc is not None else [],
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
            if "record" in changed and new.record:  # refused before anything changes (an existing take, a folder)
                Recorder.check_free(check_output(new.record, "recording", [str(new.source)]))
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
                if "record" in changed:  # start() opens a new recording but never closes one
                    self._apply_record(new.record)
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
        return (c.model, c.model_config, c.dataset, c.device, c.backend, c.quantize, c.precision, c.flip_test,
                c.threads)

    def _open_inference(self) -> None:
        cfg = self.config
        # The source first: a wrong path or camera index is the likelier mistake and costs no model load.
        self.source = src.open_configured_source(cfg)
        if cfg.drop_stale and not cfg.realtime and not self.source.live:
            raise ValueError(f"drop_stale on {self.source.name}, a file read as fast as the server goes, would drop "
                             "most of its frames: add --realtime (read it at its frame rate, like a camera), or "
                             "leave drop_stale off to process every frame")
        if self._estimator is None or self._estimator_key != self._model_key():
            self._estimator = None
            self._estimator = load_estimator(cfg)
            self._estimator_key = self._model_key()
        from .protocol import SKELETON_SIZES, PacketEncoder

        if self._estimator.skeleton not in SKELETON_SIZES:
            raise ValueError(f"the model's {self._estimator.skeleton} keypoints cannot be streamed: the packets carry "
                             f"a person's {' or '.join(SKELETON_SIZES)}; use --dataset coco or wholebody (`pose-server "
                             "convert VIDEO -o overlay.mp4` draws any model's keypoints)")
        self.detector = make_detector(cfg.detector, cfg.det_threshold)
        self.tracker = Tracker(cfg.max_people, cfg.det_interval, min_keypoint_score=cfg.kpt_threshold)
        self._media_fps = self.source.fps or 30.0
        # seq goes on across restarts: receivers drop packets whose seq goes backwards.
        self.encoder = PacketEncoder(self.source.name, skeleton=self._estimator.skeleton,
                                     image_size=self.source.size if all(self.source.size) else (1, 1),
                                     start_seq=self.encoder.seq if self.encoder is not None else 0)
        self._lift = _optional("lift", LIFTERS[cfg.lifter]) if cfg.lift_3d else None
        self._solve = _optional("ik", "solve_rotations") if cfg.protocol_version >= 2 else None
        self._signals: dict[int, TrackSignal] = {}
        self._world = SharedWorld()  # one world frame for every track of this run (lift/world.py)
        self._warm_up()

    def _warm_up(self) -> None:
        """Make every first call before the stage threads start. The first detection, the estimator's first
        inference (OpenVINO: about 3x a later one) and the first track's lifter (its ONNX session and weights: 130
        ms) cost ~0.3 s together; on the first frame that is ~7 frames a camera-like source drops. A paced file's
        clock starts at its first read, so here it waits; a camera's frames meanwhile are replaced by newer ones."""
        w, h = self.source.size if all(self.source.size) else (640, 480)
        blank = np.full((h, w, 3), 114, np.uint8)
        self.detector(blank)
        side = min(w, h) / 2  # a centred person box, 3:4 like the crops
        box = np.array([[w / 2 - 0.375 * side, h / 2 - side / 2, w / 2 + 0.375 * side, h / 2 + side / 2]], np.float32)
        self._estimator(blank, box)
        TrackSignal(self.config, self._estimator.skeleton, (w, h), self._lift, SharedWorld())  # loads and caches

    def _open_vmc(self, cfg: PipelineConfig) -> None:
        """The VMC sender for cfg.vmc (closed when no target is left); a bad target raises before any change."""
        if not cfg.vmc:
            old, self.vmc = self.vmc, None  # the send thread sees None before the sockets close
            if old is not None:
                old.close()
            return
        from .vmc import VmcSender

        if self.vmc is not None and not self.vmc.closed:  # new receivers, the same stream: its clock goes on
            self.vmc.set_targets(cfg.vmc)
            self.vmc.performer.person_id = cfg.vmc_person
            return
        self.vmc = VmcSender(list(cfg.vmc), height=cfg.performer_height, person_id=cfg.vmc_person)

    def _apply_record(self, path: str | None) -> None:
        if path and (self.recorder is None or str(self.recorder.path) != str(path)):
            self.start_recording(path)
        elif not path:
            self.stop_recording()

    def _apply_live(self, old: PipelineConfig, new: PipelineConfig, changed: dict) -> None:
        # What can be refused goes first, so a refused change changes nothing (the recording's path is checked in
        # update()): the UDP targets' form (VMC's are the same form), the detector (a missing model file).
        for t in (new.udp if "udp" in changed else []) + (new.vmc if "vmc" in changed else []):
            parse_target(t)
        detector = make_detector(new.detector, new.det_threshold) if "detector" in changed and self.running else None
        if "udp" in changed:
            self.sender.set_targets(list(new.udp))
        if {"vmc", "vmc_person"} & set(changed):
            self._open_vmc(new)
        if {"min_cutoff", "beta", "d_cutoff", "hold_s", "kpt_threshold"} & set(changed):
            for sig in list(getattr(self, "_signals", {}).values()):
                sig.set_params(new)
        if self.tracker is not None:
            self.tracker.set_params(max_people=new.max_people, det_interval=new.det_interval)
            self.tracker.min_keypoint_score = new.kpt_threshold
        if detector is not None:
            self.detector = detector
        elif "det_threshold" in changed and self.detector is not None and hasattr(self.detector, "score_threshold"):
            self.detector.score_threshold = new.det_threshold
        if "lift_3d" in changed and self.running:
            self._lift = _optional("lift", LIFTERS[new.lifter]) if new.lift_3d else None
            self._world = SharedWorld()  # (before the new dict: the signal thread reads both)
            self._signals = {}
        if "protocol_version" in changed and self.running:
            self._solve = _optional("ik", "solve_rotations") if new.protocol_version >= 2 else None
        if "record" in changed:
            self._apply_record(new.record)

    def _close_io(self, close_recording: bool = True) -> None:
        if self.vmc is not None:
            self.vmc.close()  # kept (closed) for status(); the next start() opens a new one
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
        self._refused = 0  # frames the encoder refused (too large for a datagram, a value out of range)
        self._t_refused = -1e9
        self._stage_ms: dict[str, deque[float]] = {k: deque(maxlen=100)
                                                   for k in ("detect", "infer", "signal", "lift", "lift_cpu", "send")}
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
            return get_skeleton(getattr(self._estimator, "skeleton", "coco17")).bones
        except ValueError:
            return ()

    def _fps(self) -> float:
        t = self._sent_times
        if len(t) < 2 or time.monotonic() - t[-1] > 2.0:
            return 0.0
        return (len(t) - 1) / max(t[-1] - t[0], 1e-6)


def _drain(q: queue.Queue) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
