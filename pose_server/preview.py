"""Overlay drawing (boxes, track ids, skeletons), the preview video writer and JPEG snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

PALETTE = ((66, 135, 245), (245, 135, 66), (80, 200, 120), (200, 80, 200), (60, 200, 220), (220, 220, 60))


def color_of(track_id: int) -> tuple[int, int, int]:
    return PALETTE[int(track_id) % len(PALETTE)]


def draw_people(frame_bgr: np.ndarray, people: Sequence[dict], bones: Sequence[tuple[int, int]] = (),
                min_score: float = 0.3) -> np.ndarray:
    """A copy of the frame with each person's box, id, bones and keypoints drawn in its colour.
    People are dicts with id, bbox, keypoints, scores (as in the packet)."""
    img = frame_bgr.copy()
    scale = max(1, round(max(img.shape[:2]) / 640))  # keep lines visible on large frames
    for p in people:
        color = color_of(p["id"])
        x1, y1, x2, y2 = (int(round(v)) for v in p["bbox"])
        cv2.rectangle(img, (x1, y1), (x2, y2), color, scale)
        cv2.putText(img, f"id {p['id']}", (x1 + 3, max(12 * scale, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * scale, color, scale, cv2.LINE_AA)
        pts = np.asarray(p["keypoints"], np.float32)
        ok = np.asarray(p["scores"], np.float32) >= min_score
        for a, b in bones:
            if a < len(pts) and b < len(pts) and ok[a] and ok[b]:
                cv2.line(img, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), color, scale + 1,
                         cv2.LINE_AA)
        for (x, y), good in zip(pts, ok, strict=True):
            if good:
                cv2.circle(img, (int(x), int(y)), 2 * scale, (255, 255, 255), -1, cv2.LINE_AA)
    return img


def encode_jpeg(img: np.ndarray, max_width: int = 640, quality: int = 80) -> bytes:
    """JPEG bytes of the image, downscaled to at most max_width pixels wide."""
    h, w = img.shape[:2]
    if max_width and w > max_width:
        img = cv2.resize(img, (max_width, max(1, round(h * max_width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the preview as JPEG")
    return buf.tobytes()


class PreviewWriter:
    """Writes overlay frames to an .mp4 (mp4v) file; opened on the first frame, when the size is known."""

    def __init__(self, path: str | Path, fps: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps = fps if fps and fps > 0 else 30.0
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self._t0: float | None = None  # the first frame's capture time (live sources)
        self._last: np.ndarray | None = None

    def write(self, img: np.ndarray, t: float | None = None) -> None:
        """Add a frame. With `t` (a live source's capture time, s) the video keeps the capture's clock: a frame is
        repeated where the source delivered fewer frames than the video's rate and left out where it delivered
        more (a stream sending 10 fps while reporting 25 gave a preview 2.5 times too fast); without, every frame
        is written once (a file: all its frames, at its rate)."""
        if t is not None:
            if self._t0 is None:
                self._t0 = t
            due = int(round((t - self._t0) * self.fps)) + 1  # frames the video should hold once this one is in
            if due <= self.frames:
                return
            for _ in range(min(due - self.frames - 1, int(5 * self.fps))):  # a long stall: 5 s at most
                self._write(self._last if self._last is not None else img)
        self._write(img)

    def _write(self, img: np.ndarray) -> None:
        h, w = img.shape[:2]
        if self.writer is None:
            self.size = (w, h)
            self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                self.writer = None
                raise OSError(f"cannot write the preview video {self.path}: check the folder is writable and "
                              "the name ends in .mp4")
        if (w, h) != self.size:
            img = cv2.resize(img, self.size)
        self.writer.write(img)
        self.frames += 1
        self._last = img

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
