"""Frame sources: webcam, video file, image folder, stream URL.

Every source yields `Frame`s through `read()`. Live sources (webcams, stream URLs) grab in a
background thread and keep only the newest frame, so a slow consumer never builds up latency:
older frames are dropped and counted. Files deliver every frame in order, paced to real time
with `realtime=True` or as fast as the consumer reads.

A recorded session (`.jsonl`) is not a frame source: `is_recording()` tells the pipeline to
replay it instead (see `pose_server.record`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

BAD_RUN = 60  # consecutive frames that fail to decode before a video is taken to have ended
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
URL_PREFIXES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
CAPTURE_BACKENDS = {
    "any": cv2.CAP_ANY,
    "v4l2": cv2.CAP_V4L2,
    "ffmpeg": cv2.CAP_FFMPEG,
    "gstreamer": cv2.CAP_GSTREAMER,
    "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF,
    "avfoundation": cv2.CAP_AVFOUNDATION,
}


class SourceError(RuntimeError):
    """A source that cannot be opened; the message says what to do."""


@dataclass
class Frame:
    """One captured frame: its index in the source and the time it was captured (time.time()); a file's frame also
    its own time in the file (seconds from its start, from the file's timestamps: variable frame rates too)."""

    index: int
    image: np.ndarray
    timestamp: float
    media_t: float | None = None


def open_video(path: str | Path) -> cv2.VideoCapture:
    """A video file's capture, its frames upright: phones store a portrait video as landscape pixels and a rotation
    tag, which OpenCV ignores unless told (the performer came out lying on their side, found in a third of the
    frames, and 0.74 m tall instead of 1.27 on a phone clip)."""
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def _frame_rate(cap: cv2.VideoCapture) -> float:
    """The capture's frame rate, 30 where it gives none: 0, or NaN (FFmpeg's answer for some files without one),
    which made every media time NaN and every keypoint with it."""
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    return fps if math.isfinite(fps) and fps > 0 else 30.0


def is_recording(spec: str) -> bool:
    """True when `spec` names a recorded session (JSON lines) to replay rather than frames."""
    return str(spec).lower().endswith((".jsonl", ".ndjson"))


def _camera_index(spec: str) -> int | None:
    s = str(spec).strip()
    if s.lower().startswith(("cam:", "webcam:")):
        s = s.split(":", 1)[1]
    return int(s) if s.isdigit() else None


def probe_cameras(max_index: int = 10, backend: str = "any") -> list[int]:
    """Indices 0..max_index-1 that open and deliver a frame."""
    found = []
    api = CAPTURE_BACKENDS.get(backend, cv2.CAP_ANY)
    with _quiet_opencv():  # probing absent devices otherwise prints two warnings per index
        for i in range(max_index):
            cap = cv2.VideoCapture(i, api)
            try:
                if cap.isOpened() and cap.read()[0]:
                    found.append(i)
            finally:
                cap.release()
    return found


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    level = cv2.getLogLevel()
    cv2.setLogLevel(0)  # 0 = silent
    try:
        yield
    finally:
        cv2.setLogLevel(level)


class Source:
    """Base class: `read()` returns the next Frame, or None at the end (or when closed)."""

    live = False
    name = "source"
    fps = 30.0
    frame_count: int | None = None
    size: tuple[int, int] = (0, 0)

    def __init__(self) -> None:
        self.dropped = 0  # live frames overwritten before anyone read them
        self.corrupt = 0  # frames that failed to decode and were skipped

    def read(self, timeout: float = 1.0) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Pacer:
    """Sleeps so that frame i is delivered no earlier than start + i / fps."""

    def __init__(self, fps: float, enabled: bool) -> None:
        self.period = 1.0 / fps if fps and fps > 0 else 0.0
        self.enabled = enabled and self.period > 0
        self.start: float | None = None

    def wait(self, i: int, t: float | None = None) -> None:
        """Until frame i is due: at `t` seconds into the source when given (a file's own timestamps), else i / fps."""
        if not self.enabled:
            return
        t = i * self.period if t is None else t
        now = time.perf_counter()
        if self.start is None:
            self.start = now - t
        delay = self.start + t - now
        if delay > 0:
            time.sleep(delay)


class VideoFileSource(Source):
    """Every frame of a video file, in order."""

    def __init__(self, path: str | Path, realtime: bool = False) -> None:
        super().__init__()
        url = str(path).lower().startswith(URL_PREFIXES)  # a video file on a web server: read it as a file
        shown = redact_url(str(path)) if url else Path(path)
        if not url and not Path(path).is_file():
            raise SourceError(f"video file not found: {path} (check the path; supported: {', '.join(VIDEO_EXTS)})")
        self.cap = open_video(path)
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) if self.cap.isOpened() else 0
        self.frame_count = n if n > 0 else None
        self.index = 0
        self.name = Path(str(shown).split("?")[0] if url else shown).name  # (a URL's query is no part of its name)
        self.fps = _frame_rate(self.cap)
        self._t = -1.0  # the last frame's time in the file
        first = self._decode() if self.cap.isOpened() else None  # a bad first frame is skipped like any other
        if first is None:
            self.cap.release()
            raise SourceError(f"OpenCV cannot read the video {shown}: the file is damaged or its codec is "
                              "unsupported; re-encode it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`")
        self._pending: np.ndarray | None = first
        self.size = (first.shape[1], first.shape[0])
        self.pacer = _Pacer(self.fps, realtime)

    def _decode(self) -> np.ndarray | None:
        """The next frame that decodes, each one that does not skipped and counted; None at the end. A damaged patch
        can fail several frames in a row before decoding goes on: only a run of BAD_RUN failures, or one where the
        file says it has no frames left, is its end (one failed read and grab ended a file at its first patch)."""
        ok, img = self.cap.read()
        failed = 0
        while not ok:
            failed += 1
            left = self.frame_count is None or self.index + failed < self.frame_count
            if failed > BAD_RUN or not left:
                if self.frame_count is not None and self.index + failed < self.frame_count:
                    log.warning("%s ended at frame %d of the %d its header gives", self.name, self.index,
                                self.frame_count)
                return None
            ok, img = self.cap.read()
        self.corrupt += failed
        self.index += failed
        # The frame's own time: a variable frame rate (phones) spaces frames unevenly, and index / the average rate
        # put a frame 0.6 s off after a change of rate. A time that does not move forward falls back to the grid.
        t = float(self.cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        self._t = t if math.isfinite(t) and t > self._t else max(self.index / self.fps, self._t + 1e-3)
        return img

    def read(self, timeout: float = 1.0) -> Frame | None:
        if self._pending is not None:
            img, self._pending = self._pending, None
        else:
            img = self._decode()
            if img is None:
                return None
        i = self.index
        self.index += 1
        self.pacer.wait(i, self._t)
        return Frame(i, img, time.time(), self._t)

    def close(self) -> None:
        self.cap.release()


class ImageFolderSource(Source):
    """The images of a folder in name order (or one image file); unreadable images are skipped and counted."""

    def __init__(self, path: str | Path, realtime: bool = False, fps: float = 30.0) -> None:
        super().__init__()
        path = Path(path)
        if path.is_file():  # one photo: read as an image (a phone's EXIF turn applied), not as a one-frame video
            self.files = [path]
        else:
            # natural order (frame_2 before frame_10: numbered without zero padding, the motion was scrambled),
            # files only (a folder named x.jpg is none)
            self.files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()),
                                key=_natural_key)
        if not self.files:
            raise SourceError(f"no images in folder {path} (looked for {', '.join(IMAGE_EXTS)})")
        self.name = path.name or str(path)
        self.fps = fps
        self.frame_count = len(self.files)
        self.pos = 0
        self.pacer = _Pacer(fps, realtime)
        self.size = (0, 0)

    def read(self, timeout: float = 1.0) -> Frame | None:
        while self.pos < len(self.files):
            i = self.pos
            self.pos += 1
            img = cv2.imread(str(self.files[i]), cv2.IMREAD_COLOR)
            if img is None or img.size == 0:
                self.corrupt += 1
                log.warning("skipping unreadable image %s", self.files[i])
                continue
            self.size = (img.shape[1], img.shape[0])
            self.pacer.wait(i)
            return Frame(i, img, time.time())
        return None


class LiveSource(Source):
    """A webcam or stream URL read in a background thread that keeps only the newest frame."""

    live = True

    def __init__(self, cap: cv2.VideoCapture, name: str) -> None:
        super().__init__()
        self.cap = cap
        self.name = name
        self.fps = _frame_rate(cap)
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._index = 0
        self._ended = False
        self.lost = False  # the camera or stream stopped sending (unplugged, the stream ended)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._grab_loop, name=f"grab-{name}", daemon=True)
        self._thread.start()

    def _grab_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            ok, img = self.cap.read()
            if not ok or img is None:
                failures += 1
                if failures > 50:  # the device or stream went away: its last failures were no corrupt frames
                    self.lost = True
                    log.warning("%s stopped sending frames after %d", self.name, self._index)
                    break
                time.sleep(0.01)
                continue
            self.corrupt += failures  # failures a frame followed: frames that would not decode
            failures = 0
            frame = Frame(self._index, img, time.time())
            self._index += 1
            with self._cond:
                if self._latest is not None:
                    self.dropped += 1  # nobody took the previous one: it is stale now
                self._latest = frame
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def read(self, timeout: float = 1.0) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None and not self._ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no frame from {self.name} within {timeout:.1f} s")
                self._cond.wait(left)
            frame, self._latest = self._latest, None
            return frame

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.cap.release()


def open_camera(index: int, backend: str = "any", width: int | None = None, height: int | None = None,
                fps: float | None = None) -> LiveSource:
    """Open webcam `index`; when it does not open, the error lists the indices that do."""
    if backend not in CAPTURE_BACKENDS:
        raise SourceError(f"unknown capture backend {backend!r}; choose one of {', '.join(CAPTURE_BACKENDS)}")
    with _quiet_opencv():
        cap = cv2.VideoCapture(index, CAPTURE_BACKENDS[backend])
    if cap.isOpened():
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # ask the driver not to queue frames either
    if not cap.isOpened() or not cap.grab():
        cap.release()
        found = [i for i in probe_cameras(backend=backend) if i != index]
        listed = ", ".join(str(i) for i in found) if found else "none (no camera is connected or permitted)"
        raise SourceError(f"no camera at index {index} (backend {backend}). Cameras that open: {listed}. "
                          "Pass one of them with --source, or a video file / image folder / URL.")
    return LiveSource(cap, f"camera {index}")


def redact_url(spec: str) -> str:
    """A source as it may be shown: a URL's user and password replaced by ***."""
    if not spec.lower().startswith(URL_PREFIXES):
        return spec
    scheme, sep, rest = spec.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}{sep}***@{host.rsplit('@', 1)[1]}{slash}{path}" if "@" in host else spec


def open_url(url: str) -> LiveSource:
    shown = redact_url(url)
    log.info("connecting to %s (OpenCV gives up after about 30 s)", shown)
    cap = cv2.VideoCapture(url)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"OpenCV cannot open the stream {shown}: check the address, credentials and that "
                          "the stream is running")
    return LiveSource(cap, url.split("@")[-1])  # keep credentials out of logs and packets


def _natural_key(path: Path) -> list:
    """frame_2 < frame_10: the name's digit runs compared as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"(\d+)", path.name) if part]


def open_configured_source(cfg: Any) -> Source:
    """`open_source` with a PipelineConfig's source settings (realtime, the camera's backend, size and rate)."""
    return open_source(cfg.source, realtime=cfg.realtime, backend=cfg.camera_backend, width=cfg.camera_width,
                       height=cfg.camera_height, fps=cfg.camera_fps)


def open_source(spec: str | int, realtime: bool = False, backend: str = "any", width: int | None = None,
                height: int | None = None, fps: float | None = None) -> Source:
    """Open a camera index ('0', 'cam:0'), a URL, a video file or an image folder."""
    spec = str(spec)
    index = _camera_index(spec)
    if index is not None:
        return open_camera(index, backend, width, height, fps)
    if spec.lower().startswith(URL_PREFIXES):
        if spec.lower().startswith(("http://", "https://")) and spec.split("?")[0].lower().endswith(VIDEO_EXTS):
            # a video file on a web server, not a camera: every frame in order, paced by --realtime (read as a
            # live stream, newest frame only, it was decoded as fast as it downloaded and lost but a frame)
            log.info("reading the video file at %s (OpenCV gives up after about 30 s)", redact_url(spec))
            return VideoFileSource(spec, realtime=realtime)
        return open_url(spec)
    if is_recording(spec):
        raise SourceError(f"{spec} is a recorded session: replay it with `pose-server replay {spec}`")
    path = Path(spec).expanduser()
    if path.is_dir() or path.is_file() and path.suffix.lower() in IMAGE_EXTS:
        return ImageFolderSource(path, realtime=realtime, fps=fps or 30.0)
    if not path.exists():
        raise SourceError(f"source not found: {spec}. Give a camera index (0), a video file, an image folder, "
                          "a stream URL (rtsp://...) or a recorded session (.jsonl)")
    return VideoFileSource(path, realtime=realtime)
