"""Non-blocking UDP output to one or more targets ('HOST:PORT', '[::1]:PORT').

A datagram that the kernel cannot take right now is dropped, never waited for: a slow or missing
receiver must not stall capture. Each failing target is logged once (and again once it recovers
and fails anew); streaming to the others goes on.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


def parse_target(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[IPv6]:PORT' -> (host, port); raises ValueError with the expected form."""
    s = str(text).strip()
    try:
        if s.startswith("["):
            host, _, rest = s[1:].partition("]")
            if not rest.startswith(":"):
                raise ValueError
            port = int(rest[1:])
        else:
            host, sep, port_s = s.rpartition(":")
            if not sep or ":" in host:
                raise ValueError
            port = int(port_s)
    except ValueError:
        raise ValueError(f"bad UDP target {text!r}: use HOST:PORT (127.0.0.1:9000) "
                         "or [IPv6]:PORT ([::1]:9000)") from None
    if not host or not 0 < port < 65536:
        raise ValueError(f"bad UDP target {text!r}: host must be set and the port in 1-65535")
    return host, port


@dataclass
class _Target:
    text: str
    family: int = socket.AF_INET
    addr: tuple | None = None
    sent: int = 0
    dropped: int = 0
    failing: bool = False
    error: str = ""


class UdpSender:
    """Sends each datagram to every target without ever blocking."""

    def __init__(self, targets: list[str] | tuple[str, ...] = ()) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[int, socket.socket] = {}
        self._targets: list[_Target] = []
        self.set_targets(targets)

    def _socket(self, family: int) -> socket.socket:
        sock = self._sockets.get(family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            self._sockets[family] = sock
        return sock

    def set_targets(self, targets: list[str] | tuple[str, ...]) -> None:
        """Replace the targets (validated first: a bad one raises and leaves the old set in place)."""
        if isinstance(targets, str):
            targets = [t for t in targets.replace(",", " ").split() if t]
        parsed = [(t, *parse_target(t)) for t in targets]
        new = []
        for text, host, port in parsed:
            tgt = _Target(text)
            try:
                # IPv4 first where a name has both: `localhost` resolves to ::1 first on Windows, where most
                # receivers (Blender's add-on by default, VSeeFace, Warudo) listen on IPv4 only
                answers = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
                family, _, _, _, addr = min(answers, key=lambda a: a[0] != socket.AF_INET)
                tgt.family, tgt.addr = family, addr
            except OSError as exc:
                tgt.failing, tgt.error = True, f"cannot resolve: {exc}"
                log.warning("UDP target %s: cannot resolve host (%s); skipping it", text, exc)
            new.append(tgt)
        with self._lock:
            self._targets = new

    @property
    def targets(self) -> list[str]:
        return [t.text for t in self._targets]

    def send(self, data: bytes) -> int:
        """Send to every target; returns how many accepted the datagram."""
        ok = 0
        with self._lock:
            for t in self._targets:
                if t.addr is None:
                    t.dropped += 1
                    continue
                try:
                    self._socket(t.family).sendto(data, t.addr)
                except BlockingIOError:
                    t.dropped += 1  # kernel buffer full: drop rather than wait
                    continue
                except OSError as exc:
                    t.dropped += 1
                    if not t.failing:
                        log.warning("UDP target %s unreachable (%s); still streaming, will not repeat this", t.text,
                                    exc)
                    t.failing, t.error = True, str(exc)
                    continue
                if t.failing:
                    log.info("UDP target %s reachable again", t.text)
                    t.failing, t.error = False, ""
                t.sent += 1
                ok += 1
        return ok

    def stats(self) -> list[dict]:
        with self._lock:
            return [{"target": t.text, "sent": t.sent, "dropped": t.dropped, "error": t.error or None}
                    for t in self._targets]

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()
