"""Recording sessions as JSON lines and replaying them with their original timing.

One packet per line, exactly the bytes that went out over UDP. Each line is written whole and
flushed to the OS right away (well within the promised once a second), so a process killed with
SIGKILL leaves a file that parses up to its last complete line.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class Recorder:
    """Appends packets (bytes or dict) to a JSON-lines file."""

    def __init__(self, path: str | Path, overwrite: bool = False) -> None:
        self.path = Path(path)
        if not overwrite:
            self.check_free(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()
        self.lines = 0

    @staticmethod
    def check_free(path: str | Path) -> None:
        """FileExistsError when ``path`` already holds a recording (a take is never overwritten)."""
        path = Path(path)
        if path.exists() and path.stat().st_size > 0:
            raise FileExistsError(f"{path} already holds a recording; choose another name or delete it first")

    def write(self, packet: bytes | dict) -> None:
        data = packet if isinstance(packet, bytes) else json.dumps(packet, separators=(",", ":")).encode()
        with self._lock:
            if self._file.closed:
                return
            # One write call per whole line, then flush: a kill between lines never leaves half a line
            # in the Python buffer, and the OS keeps what was written even if the process dies.
            self._file.write(data.rstrip(b"\n") + b"\n")
            self._file.flush()
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_recording(path: str | Path) -> Iterator[dict]:
    """Packets of a recording in order; a truncated or damaged line is skipped with one warning."""
    path = Path(path).expanduser()  # a quoted "~/take.jsonl" reaches here unexpanded
    if not path.is_file():
        raise FileNotFoundError(f"recording not found: {path}")
    bad = 0
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                packet = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                if bad == 1:
                    log.warning("%s line %d is not complete JSON (the recorder was interrupted?); skipping it",
                                path, n)
                continue
            if isinstance(packet, dict):
                yield packet


def replay(path: str | Path, send: Callable[[bytes, dict], object], speed: float = 1.0, loop: bool = False,
           stop: threading.Event | None = None, on_packet: Callable[[int], object] | None = None) -> int:
    """Re-send the packets of a recording, spaced by their original capture timestamps / `speed`.

    `seq` is renumbered from 0 (so loops stay monotonic for receivers) and `sent` is the new send
    time; everything else is as recorded. Returns the number of packets sent.
    """
    if speed <= 0:
        raise ValueError("--speed must be > 0")
    packets = list(read_recording(path))
    if not packets:
        raise ValueError(f"recording {path} holds no packets")
    stop = stop or threading.Event()
    seq = 0
    while not stop.is_set():
        t0_rec = float(packets[0].get("timestamp", 0.0))
        t0 = time.perf_counter()
        for packet in packets:
            due = t0 + (float(packet.get("timestamp", t0_rec)) - t0_rec) / speed
            delay = due - time.perf_counter()
            if delay > 0 and stop.wait(delay):
                return seq
            out = dict(packet, seq=seq, sent=time.time())
            send(json.dumps(out, separators=(",", ":")).encode(), out)
            seq += 1
            if on_packet is not None:
                on_packet(seq)
        if not loop:
            break
    return seq
