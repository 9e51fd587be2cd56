"""UDP receiver: a background thread that validates pose packets and keeps the newest one (and, for a
recording take, the ones it overwrote since the last tick).

Blender's main thread must never block on the network, so the socket lives on a daemon thread and
the timer tick only swaps out the newest packet (`take_latest`). While a take records, the tick takes
the packets a newer one overwrote since the last tick too (`take_all`, up to `MAX_PENDING`), so two
packets arriving within one tick both reach the take. Everything the thread sees is counted so the
panel can say why motion is missing: invalid (failed validation), stale (older seq than one already
accepted), dropped (valid, but overwritten by a newer packet and never used by a tick).
"""

from __future__ import annotations

import collections
import errno
import hmac
import ipaddress
import socket
import threading
import time

from .packet import SeqGate, validate_packet

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
# The largest UDP payload over IPv4; anything longer cannot arrive in one datagram.
MAX_DATAGRAM = 65507
RATE_WINDOW_S = 1.0
MAX_PENDING = 32  # overwritten packets kept for `take_all` (a second at 30 fps); older ones are dropped


def is_loopback(host: str) -> bool:
    """True when only this computer can reach `host`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Receiver:
    """Listens on host:port on a background thread; `take_latest()` hands out the newest valid packet.

    With a `token`, only packets whose `meta.token` matches are accepted; listening anywhere but on
    loopback requires one, because other computers can reach the socket.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str = "") -> None:
        self.host = host
        self.port = port
        self.token = token
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._gate = SeqGate()
        self._latest: dict | None = None
        self._overwritten: collections.deque[dict] = collections.deque(maxlen=MAX_PENDING)
        self._arrivals: collections.deque[float] = collections.deque()
        self.received = 0
        self.accepted = 0
        self.invalid = 0
        self.stale = 0
        self.dropped = 0
        self.last_error = ""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Bind the socket and start the thread. Raises OSError with a message that says what to do."""
        if self.running:
            return
        if not self.token and not is_loopback(self.host):
            raise OSError(f"listening on {self.host} accepts packets from other computers: set a token "
                          "(and give the server the same one) or listen on 127.0.0.1")
        host = self.host.strip("[]")  # [::1] as the server writes IPv6 targets
        family = socket.AF_INET6 if ":" in host else socket.AF_INET  # ::1 or :: (it bound an IPv4 socket: refused)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, self.port))
        except OSError as exc:
            sock.close()
            busy = exc.errno == errno.EADDRINUSE
            raise OSError(
                f"cannot listen on {self.host}:{self.port} ({exc.strerror or exc}); " + (
                    "another program (or another Blender) uses this port: pick a free port here and in the server"
                    if busy else "check the address: one of this computer's, 127.0.0.1, ::1, 0.0.0.0 or ::")
            ) from exc
        # Large receive buffer: bursts are absorbed by the kernel instead of being lost there.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.settimeout(0.1)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"vitpose-mocap-udp-{self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and close the socket; safe to call twice."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _run(self) -> None:
        sock = self._sock
        while not self._stop.is_set() and sock is not None:
            try:
                data, address = sock.recvfrom(MAX_DATAGRAM + 1)
            except (TimeoutError, ConnectionResetError):  # Windows reports ICMP errors on UDP reads: not fatal
                continue
            except OSError as exc:
                if not self._stop.is_set():
                    with self._lock:
                        self.last_error = f"socket error: {exc}"
                break
            self.offer(data, address)

    def offer(self, data: bytes, sender: object = None) -> bool:
        """Validate one datagram from `sender` and keep it if it is the newest; returns whether it was kept."""
        ok, result = validate_packet(data)
        with self._lock:
            self.received += 1
            if not ok:
                self.invalid += 1
                self.last_error = f"invalid packet: {result}"
                return False
            if self.token and not _token_matches(result, self.token):
                self.invalid += 1
                self.last_error = "packet without the right token: give the server the same token as Blender"
                return False
            if not self._gate.accept(result, sender):
                self.stale += 1
                return False
            self.accepted += 1
            if self._latest is not None:
                self.dropped += 1  # until take_all uses it after all
                self._overwritten.append(self._latest)
            self._latest = result
            self._arrivals.append(time.monotonic())
            return True

    def take_latest(self) -> dict | None:
        """The newest packet not handed out yet, or None (the overwritten ones stay dropped)."""
        with self._lock:
            packet, self._latest = self._latest, None
            self._overwritten.clear()
            return packet

    def take_all(self) -> list[dict]:
        """Every packet not handed out yet, oldest first: the overwritten ones (no longer counted as dropped)
        and the newest. For recording, where each packet is a frame of the take."""
        with self._lock:
            if self._latest is None:
                return []
            packets = [*self._overwritten, self._latest]
            self.dropped -= len(self._overwritten)
            self._overwritten.clear()
            self._latest = None
            return packets

    def peek_latest(self) -> dict | None:
        """The newest packet not handed out yet, or None, without consuming it: `take_latest` still returns it."""
        with self._lock:
            return self._latest

    def packets_per_second(self, now: float | None = None) -> float:
        """Accepted packets over the last second."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._arrivals and now - self._arrivals[0] > RATE_WINDOW_S:
                self._arrivals.popleft()
            return len(self._arrivals) / RATE_WINDOW_S

    def stats(self) -> dict:
        """Counters for the status panel."""
        rate = self.packets_per_second()
        with self._lock:
            return {
                "received": self.received,
                "accepted": self.accepted,
                "invalid": self.invalid,
                "stale": self.stale,
                "dropped": self.dropped,
                "packets_per_s": rate,
                "last_error": self.last_error,
            }


def _token_matches(packet: dict, token: str) -> bool:
    sent = (packet.get("meta") or {}).get("token")
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), token.encode())
