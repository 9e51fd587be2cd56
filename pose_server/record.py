"""Recording sessions as JSON lines and replaying them with their original timing.

One packet per line, the bytes that went out over UDP less the UDP token (`meta.token`): a take is a file people
share, the token a secret, and a replay sends the token it is given (the receiver's), not the one of the day it was
recorded. Each line is written whole and flushed to the OS right away (well within the promised once a second), so
a process killed with SIGKILL leaves a file that parses up to its last complete line.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

VERSIONS = (1, 2, 3, 4)  # the packet versions a replay sends (blender_addon/core/packet.py reads the same)


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
        """Append one packet; a packet carrying `meta.token` is written without it."""
        if isinstance(packet, bytes) and b'"token"' in packet:  # the rare case: parse only when a token can be there
            packet = json.loads(packet)
        if isinstance(packet, dict) and "token" in (packet.get("meta") or {}):
            packet = dict(packet, meta={k: v for k, v in packet["meta"].items() if k != "token"})
        data = packet if isinstance(packet, bytes) else json.dumps(
            packet, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
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
    """Packets of a recording in order; a truncated or damaged line is skipped with one warning. A line that is
    JSON but not a pose packet (another program's log, say) raises ValueError naming the line: nothing of such a
    file is sent."""
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
            why = packet_problem(packet)
            if why:
                raise ValueError(f"{path} line {n} is not a pose packet ({why}); replay takes a session written by "
                                 "`pose-server run --record` or `pose-server convert`")
            yield packet


def load_session(path: str | Path) -> list[dict]:
    """Every packet of a recording, checked before anything is sent; ValueError for a file that holds none."""
    packets = list(read_recording(path))
    if not packets:
        raise ValueError(f"recording {path} holds no packets")
    return packets


def packet_problem(packet: object) -> str | None:
    """Why `packet` cannot be replayed as a pose packet, or None. Only what replay relies on is checked: the
    receiver validates the rest (a damaged person is its to refuse, and it says so)."""
    if not isinstance(packet, dict):
        return f"a JSON {type(packet).__name__}, not an object"
    v = packet.get("v")
    if isinstance(v, bool) or v not in VERSIONS:
        return f"its version 'v' is {v!r}, not one of {', '.join(map(str, VERSIONS))}"
    t = packet.get("timestamp")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        return f"its 'timestamp' is {t!r}, not seconds"
    if not isinstance(packet.get("people"), list):
        return "it has no 'people' list"
    if not isinstance(packet.get("meta", {}), dict):
        return "its 'meta' is not an object"
    return None


def replay(path: str | Path | list[dict], send: Callable[[bytes, dict], object], speed: float = 1.0, loop: bool = False,
           stop: threading.Event | None = None, on_packet: Callable[[int], object] | None = None,
           token: str | None = None) -> int:
    """Re-send the packets of a recording (a path, or its packets as read by `read_recording`), spaced by their
    original capture timestamps / `speed`.

    `seq` is renumbered from 0 (so loops stay monotonic for receivers), `sent` is the new send time and
    `meta.token` is `token` (none without one, whatever the file holds); everything else is as recorded. Returns
    the number of packets sent.
    """
    if speed <= 0:
        raise ValueError("--speed must be > 0")
    packets = path if isinstance(path, list) else load_session(path)
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
            meta = {k: v for k, v in (packet.get("meta") or {}).items() if k != "token"}
            if token:
                meta["token"] = token
            out = dict(packet, seq=seq, sent=time.time(), meta=meta)
            if not meta and "meta" not in packet:
                del out["meta"]
            send(json.dumps(out, separators=(",", ":")).encode(), out)
            seq += 1
            if on_packet is not None:
                on_packet(seq)
        if not loop:
            break
    return seq
