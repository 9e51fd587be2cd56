"""The stage threads of the capture server (capture, inference, signal, send; replay) and their hand-overs."""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import sources as src
from .preview import draw_people
from .record import replay
from .track_signal import TrackSignal

log = logging.getLogger(__name__)

_END = object()  # end-of-stream marker passed down the queues
FRESH_WAIT = 0.25  # camera-like sources: wait for the next frame when it is due within this share of a period


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


class Stages:
    """The thread bodies of Pipeline, a mixin: Pipeline owns, sets up and resets every attribute they use."""

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
        loop_offset, media_t = 0.0, 0.0  # a looped file's time goes on rising: the filters and lifters need it
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
                if live and getattr(self.source, "lost", False) and not self._stop.is_set():
                    # what was captured still goes out; the run then ends as failed, saying why
                    self.error = (f"{self.source_name} stopped sending frames after {self._frames_read}: the camera "
                                  "was unplugged or the stream ended")
                    self.state = "error"
                if cfg.loop and not live:
                    self.source.close()
                    self.source = src.open_configured_source(cfg)  # as opened first: an image folder keeps its rate
                    media_origin = None  # the clip starts again: anchor its time anew so stamps keep rising
                    # ... and its time goes on from the last frame's: back at 0, every filter took the new
                    # frames for a step back in time and the skeleton froze from the second pass on
                    loop_offset = media_t + 1.0 / self._media_fps
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
            if live:
                media_t = frame.timestamp
            else:  # the file's own time of the frame where it has one (variable frame rates), else its index's
                media_t = loop_offset + (frame.media_t if frame.media_t is not None else frame.index / self._media_fps)
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
            elif tracker.needs_detection() and pending is None and tracker.background_detection_useful():
                # Periodic re-detection (new people) runs beside ViTPose: no latency spike on this frame. Skipped
                # while max_people tracks hold: then it could not change anything, only take CPU from ViTPose.
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
                tracker.skip_frame()
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
        layout = self._estimator.skeleton  # its name: a count cannot tell COCO from AP-10K
        for item, _img, size, t0 in self._items(qin):
            people = []
            for tid, box, k, s in zip(item.ids, _rows(item.boxes), _rows(item.kpts), _rows(item.scores),
                                      strict=True):
                sig = self._signals.get(tid)
                if sig is None:
                    sig = self._signals[tid] = TrackSignal(self.config, layout, size, self._lift, self._world)
                solve = self._solve if self.config.protocol_version >= 2 else None
                hands = self.config.protocol_version >= 4 and num_k == 133
                person = sig.person(tid, box, k, s, item.media_t, solve, self._lift_failed, hands)
                if sig.lift_ms is not None:
                    self._stage_ms["lift"].append(sig.lift_ms)  # per person-frame: the 3D lifter alone
                    self._stage_ms["lift_cpu"].append(sig.lift_cpu_ms)
                if self.config.protocol_version < 3:
                    person.pop("contacts", None)  # version 3 added them
                people.append(person)
            # Forget tracks not seen for a second: their filters would only drag stale state along.
            signals = self._signals  # (lift_3d may swap the dict from another thread)
            for tid in [t for t, sig in list(signals.items()) if item.media_t - sig.last_seen > 1.0]:
                signals.pop(tid, None)
            item.people = people
            self._stage_ms["signal"].append((time.perf_counter() - t0) * 1000)
            self._put(qout, item, newest_only=live)
        self._put(qout, _END, newest_only=False)

    def _lift_failed(self, exc: ValueError) -> None:
        self._lift_failures += 1
        if self._lift_failures == 1:
            log.warning("3D lifting skipped for a frame (%s); further failures are only counted", exc)

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
            try:
                data = self.encoder.encode(item.frame.index, item.stamp, item.people, meta=meta)
            except ValueError as exc:  # a frame no packet can carry (too large, a bad value) costs that frame only
                self._refuse_packet(exc)
                continue
            self.sender.send(data)
            now = time.time()
            self._latencies.append((now - item.frame.timestamp) * 1000)
            self._sent_times.append(time.monotonic())
            packet = self.encoder.last_packet
            self._emit(data, packet, people=len(item.people))
            self._latest_view = (img, packet["people"])
            self._stage_ms["send"].append((time.perf_counter() - t0) * 1000)
            if self._preview_writer is not None:
                live = self.source is not None and self.source.live  # its preview keeps the capture's clock
                self._preview_writer.write(draw_people(img, packet["people"], self._bones(), self.config.kpt_threshold),
                                           item.frame.timestamp if live else None)

    def _refuse_packet(self, exc: ValueError) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._t_refused >= 5.0:  # the first, then at most one line every 5 s
            self._t_refused = now
            log.warning("frame not sent (%d so far): %s", self._refused, exc)

    def _emit(self, data: bytes, packet: dict, people: int) -> None:
        """Book-keeping shared by live streaming and replay: recording, latest packet, progress, logs."""
        rec = self.recorder
        if rec is not None:
            rec.write(data)
        vmc = self.vmc
        if vmc is not None:
            vmc.send_packet(packet)
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

        replay(self._replay_packets, send, speed=self.config.replay_speed, loop=self.config.loop, stop=self._stop,
               token=self.config.udp_token)


def _rows(a: np.ndarray | None) -> Any:
    return () if a is None else a
