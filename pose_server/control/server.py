"""Websockets control API of the pose server (protocol in docs/control-api.md).

One asyncio event loop in a background thread serves every client. Pipeline calls that may block
(start, stop, a config change that restarts the pipeline, JPEG encoding) run in worker threads so
that the streams of other clients keep flowing meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hmac
import ipaddress
import logging
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import messages as m

log = logging.getLogger(__name__)

LOCAL_ORIGIN_HOSTS = {"localhost", "127.0.0.1", "::1"}
CHECKPOINT_SUFFIXES = {".pth", ".pt", ".safetensors", ".onnx", ".bin"}
RECORDING_DIR = Path("out/recordings")


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "", "0.0.0.0"-like wildcards are addresses; any other hostname may resolve anywhere


def origin_allowed(origin: str | None, extra: frozenset[str] = frozenset()) -> bool:
    """Browsers send Origin; only pages served from this machine (e.g. the panel) may connect.

    No Origin at all means a non-browser client (the panel's Python client, scripts): allowed.
    """
    if origin is None or origin in extra:
        return True
    try:
        parts = urlsplit(origin)
        host = parts.hostname
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and host is not None and (host in LOCAL_ORIGIN_HOSTS or is_loopback(host))


def token_from_request(request: Request) -> str | None:
    """The token from ?token=..., "Authorization: Bearer ..." or "X-Pose-Token: ..."."""
    query = parse_qs(urlsplit(request.path).query)
    if query.get("token"):
        return query["token"][0]
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("X-Pose-Token")


def list_checkpoints(folder: Path) -> list[str]:
    """Weight files and Hugging Face model folders (holding config.json) under folder, and `blazepose` when the
    embedded model `make` fetches is in folder/embedded/."""
    if not folder.is_dir():
        return []
    found = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES and not (p.parent / "config.json").exists():
            found.append(str(p))
        elif p.is_dir() and (p / "config.json").is_file():
            found.append(str(p))
    if (folder / "embedded" / "pose_landmark_full.tflite").is_file():
        found.append("blazepose")
    return found


def _config_of(pipeline: Any) -> dict[str, Any]:
    cfg = getattr(pipeline, "config", None)
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    if isinstance(cfg, dict):
        return dict(cfg)
    return dict(pipeline.status().get("config", {}))


class Session:
    """One connected client: its subscriptions and a send lock shared by its stream tasks."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.streams: dict[str, asyncio.Task] = {}
        self.send_lock = asyncio.Lock()

    async def send(self, msg: dict[str, Any] | bytes) -> None:
        async with self.send_lock:
            await self.ws.send(msg if isinstance(msg, bytes) else m.dumps(msg))

    def cancel(self, stream: str) -> bool:
        task = self.streams.pop(stream, None)
        if task is None:
            return False
        task.cancel()
        return True

    def cancel_all(self) -> None:
        for name in list(self.streams):
            self.cancel(name)


class ControlServer:
    """Serves the control API for one pipeline. Use serve_in_thread() to run it."""

    def __init__(
        self,
        pipeline: Any,
        host: str = m.DEFAULT_HOST,
        port: int = m.DEFAULT_PORT,
        token: str | None = None,
        allowed_origins: tuple[str, ...] = (),
        checkpoints_dir: str | Path = "checkpoints",
    ) -> None:
        if not is_loopback(host) and not token:
            raise ValueError(
                f"the control API on {host!r} is reachable from other machines: give a token "
                "(pose-server run --control HOST:PORT --control-token SECRET, or POSE_SERVER_TOKEN) or bind 127.0.0.1"
            )
        self.pipeline = pipeline
        self.host, self.port = host, port
        self.token = token or None
        self.allowed_origins = frozenset(allowed_origins)
        self.checkpoints_dir = Path(checkpoints_dir)
        self.sessions: set[Session] = set()
        self._lock: asyncio.Lock | None = None  # serialises commands that change the pipeline
        self._server: Server | None = None
        self._previews: dict[int, tuple[Any, bytes | None]] = {}  # max_width -> (frame key, JPEG)

    # -- handshake -----------------------------------------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, self.allowed_origins):
            log.warning("control: refused origin %r", origin)
            return _text_response(HTTPStatus.FORBIDDEN, f"Origin {origin!r} is not allowed: "
                                  "only pages served from this machine may connect.\n")
        if self.token is not None:
            supplied = token_from_request(request)
            if supplied is None or not hmac.compare_digest(supplied.encode(), self.token.encode()):
                return _text_response(HTTPStatus.UNAUTHORIZED, "A valid token is required: connect to "
                                      "ws://HOST:PORT/?token=SECRET or send 'Authorization: Bearer SECRET'.\n")
        return None

    # -- connection ----------------------------------------------------------------------------
    async def _handler(self, ws: ServerConnection) -> None:
        session = Session(ws)
        self.sessions.add(session)
        try:
            async for raw in ws:
                await self._on_message(session, raw)
        except ConnectionClosed:
            pass
        finally:
            session.cancel_all()
            self.sessions.discard(session)

    async def _on_message(self, session: Session, raw: str | bytes) -> None:
        req = None
        try:
            req = m.parse_request(raw)
            result = await self._dispatch(session, req)
            out: dict[str, Any] = m.reply(req, result)
            binary = result.pop("_binary", None)
        except m.ProtocolError as e:
            if req is not None:  # raised after parsing: answer with the request's id
                e.request_id, e.cmd = req.id, req.cmd
            out, binary = m.error_from(e), None
        except (ValueError, TypeError, FileNotFoundError, FileExistsError, RuntimeError, OSError) as e:
            # The pipeline refused: say why, keep the connection.
            out, binary = m.error("pipeline_error", f"{type(e).__name__}: {e}", req and req.id, req and req.cmd), None
        except Exception as e:  # a bug on our side must not cut the client off either
            log.exception("control: %s failed", req.cmd if req else "message")
            out, binary = m.error("internal_error", f"{type(e).__name__}: {e}", req and req.id, req and req.cmd), None
        await session.send(out)
        if binary is not None:
            await session.send(binary)

    async def _broadcast(self, event: str, detail: dict[str, Any], origin: Session) -> None:
        msg = {"type": "event", "event": event, "detail": detail}
        for s in list(self.sessions):
            if s is not origin:
                try:
                    await s.send(msg)
                except ConnectionClosed:
                    pass

    # -- commands ------------------------------------------------------------------------------
    async def _dispatch(self, session: Session, req: m.Request) -> dict[str, Any]:
        p, a = self.pipeline, req.args
        run = asyncio.to_thread
        if req.cmd == "hello":
            return self._hello()
        if req.cmd == "ping":
            return {"pong": True, "time": time.time()}
        if req.cmd == "get_status":
            return await self._status()
        if req.cmd == "get_config":
            return {"config": _config_of(p)}
        if req.cmd == "get_keypoints":
            return {"packet": await run(p.latest_packet)}
        if req.cmd == "list_checkpoints":
            files = list_checkpoints(self.checkpoints_dir)
            hint = "" if files else (f"no checkpoints in {self.checkpoints_dir}/: download ViTPose weights as "
                                     f"{self.checkpoints_dir}/README.md explains")
            return {"dir": str(self.checkpoints_dir), "checkpoints": files, "hint": hint}
        if req.cmd == "get_preview":
            jpeg = await run(self._preview, a.get("max_width", 640))
            if jpeg is None:
                return {"available": False}
            if a.get("encoding", "base64") == "binary":
                return {"available": True, "bytes": len(jpeg), "binary_follows": True, "_binary": jpeg}
            return {"available": True, "bytes": len(jpeg), "jpeg_b64": base64.b64encode(jpeg).decode("ascii")}
        if req.cmd == "subscribe":
            return self._subscribe(session, a)
        if req.cmd == "unsubscribe":
            return {"stream": a["stream"], "was_subscribed": session.cancel(a["stream"])}
        # Commands that change the pipeline run one at a time, whoever sends them.
        async with self._lock:
            if req.cmd == "set_config":
                changes = m.validate_config_changes(a["changes"], set(_config_of(p)) or None)
                result = await run(lambda: p.update(**changes))
                out = {"changes": changes, **(result or {}), "config": _config_of(p)}
                await self._broadcast("config_changed", out, session)
                return out
            if req.cmd == "start":
                await run(p.start)
                await self._broadcast("started", {}, session)
                return {"running": True}
            if req.cmd == "stop":
                await run(p.stop)
                await self._broadcast("stopped", {}, session)
                return {"running": False}
            if req.cmd == "start_recording":
                path = Path(a.get("path") or RECORDING_DIR / time.strftime("session_%Y%m%d_%H%M%S.jsonl"))
                if path.exists():
                    raise m.ProtocolError("exists", f"{path} exists; choose another path (nothing is overwritten)",
                                          req.id, req.cmd)
                path.parent.mkdir(parents=True, exist_ok=True)
                result = await run(p.start_recording, str(path))
                detail = {"recording": True, "path": str(path), **(result if isinstance(result, dict) else {})}
                await self._broadcast("recording_started", detail, session)
                return detail
            if req.cmd == "stop_recording":
                result = await run(p.stop_recording)
                detail = {"recording": False, **(result if isinstance(result, dict) else {})}
                await self._broadcast("recording_stopped", detail, session)
                return detail
        raise m.ProtocolError("unknown_command", f"command '{req.cmd}' is not implemented", req.id, req.cmd)

    def _hello(self) -> dict[str, Any]:
        return {
            "server": "pose-server",
            "protocol": m.PROTOCOL,
            "commands": list(m.COMMANDS),
            "streams": list(m.STREAMS),
            "config_fields": {k: v.doc for k, v in m.CONFIG_FIELDS.items()},
            "limits": {"soft_max_bytes": m.SOFT_MAX_BYTES, "hard_max_bytes": m.HARD_MAX_BYTES},
        }

    async def _status(self) -> dict[str, Any]:
        status = dict(await asyncio.to_thread(self.pipeline.status))
        status["clients"] = len(self.sessions)
        status["server_time"] = time.time()
        return {"status": status}

    def _preview(self, max_width: int) -> bytes | None:
        """The pipeline's JPEG, encoded once per frame and width however many clients ask (~20 ms each)."""
        packet = self.pipeline.latest_packet()
        frame = None if packet is None else (packet.get("seq"), packet.get("timestamp"))
        cached = self._previews.get(max_width)
        if frame is not None and cached is not None and cached[0] == frame:
            return cached[1]
        jpeg = self.pipeline.latest_preview_jpeg(max_width=max_width)
        if len(self._previews) > 8:  # a few widths in use at a time
            self._previews.clear()
        self._previews[max_width] = (frame, jpeg)
        return jpeg

    # -- streams -------------------------------------------------------------------------------
    def _subscribe(self, session: Session, a: dict[str, Any]) -> dict[str, Any]:
        stream = a["stream"]
        if stream != "preview" and ("max_width" in a or "encoding" in a):
            raise m.ProtocolError("unknown_field", "max_width and encoding apply to the preview stream only")
        rate = float(a.get("rate", m.DEFAULT_RATES[stream]))
        opts = {"max_width": a.get("max_width", 640), "encoding": a.get("encoding", "base64")}
        session.cancel(stream)  # re-subscribing changes the rate
        session.streams[stream] = asyncio.create_task(self._stream(session, stream, rate, opts))
        return {"stream": stream, "rate": rate, **(opts if stream == "preview" else {})}

    async def _stream(self, session: Session, stream: str, rate: float, opts: dict[str, Any]) -> None:
        period, last = 1.0 / rate, None
        try:
            while True:
                t0 = time.monotonic()
                if stream == "status":
                    await session.send({"type": "status", **await self._status()})
                elif stream == "keypoints":
                    packet = await asyncio.to_thread(self.pipeline.latest_packet)
                    key = None if packet is None else packet.get("seq")
                    if packet is not None and key != last:  # only new frames
                        last = key
                        await session.send({"type": "keypoints", "packet": packet})
                else:
                    jpeg = await asyncio.to_thread(self._preview, opts["max_width"])
                    if jpeg is not None and jpeg != last:
                        last = jpeg
                        if opts["encoding"] == "binary":
                            await session.send(jpeg)
                        else:
                            await session.send({"type": "preview", "bytes": len(jpeg),
                                                "jpeg_b64": base64.b64encode(jpeg).decode("ascii")})
                await asyncio.sleep(max(0.0, period - (time.monotonic() - t0)))
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("control: %s stream failed", stream)
            try:
                await session.send(m.error("stream_failed", f"the {stream} stream stopped; subscribe again"))
            except ConnectionClosed:
                pass

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> Server:
        self._lock = asyncio.Lock()
        self._server = await serve(
            self._handler, self.host, self.port,
            process_request=self._process_request,
            max_size=m.HARD_MAX_BYTES,
            compression=None,  # JPEG does not deflate; saves CPU on a 2-core box
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self._server


def _text_response(status: HTTPStatus, body: str) -> Response:
    headers = Headers([("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")])
    data = body.encode()
    headers["Content-Length"] = str(len(data))
    return Response(status.value, status.phrase, headers, data)


class ServerHandle:
    """A control server running in its own thread; stop() shuts it down and joins the thread."""

    def __init__(self, server: ControlServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread,
                 stop_event: asyncio.Event) -> None:
        self.server, self._loop, self._thread, self._stop_event = server, loop, thread, stop_event

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"ws://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(timeout)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(
    pipeline: Any,
    host: str = m.DEFAULT_HOST,
    port: int = m.DEFAULT_PORT,
    token: str | None = None,
    **kwargs: Any,
) -> ServerHandle:
    """Start the control API in a daemon thread; returns once it listens (port=0 picks a free port).

    Raises ValueError for a non-loopback host without a token and OSError when the port is taken.
    """
    server = ControlServer(pipeline, host, port, token, **kwargs)
    ready = threading.Event()
    failure: list[BaseException] = []
    holder: dict[str, Any] = {}

    async def main() -> None:
        stop_event = asyncio.Event()
        holder["stop_event"] = stop_event
        try:
            ws_server = await server.start()
        except BaseException as e:
            failure.append(e)
            ready.set()
            return
        ready.set()
        try:
            await stop_event.wait()
        finally:
            ws_server.close()
            await ws_server.wait_closed()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="control-api", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        loop.close()
        raise failure[0]
    log.info("control API on ws://%s:%d%s", host, server.port, " (token required)" if server.token else "")
    return ServerHandle(server, loop, thread, holder["stop_event"])
