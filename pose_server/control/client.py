"""Small clients of the control API: ControlClient (blocking, used by the panel) and AsyncControlClient.

    with ControlClient("ws://127.0.0.1:8765") as c:
        c.status()["fps"]
        c.set_config(min_cutoff=0.5)      # -> {"applied_live": [...], "restarted": False, ...}
        jpeg = c.preview(max_width=480)   # bytes or None
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import json
import time
from typing import Any

from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as sync_connect

from . import messages as m

DEFAULT_URL = f"ws://{m.DEFAULT_HOST}:{m.DEFAULT_PORT}"


class ControlError(Exception):
    """The server answered a request with an error (code as in docs/control-api.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class ServerUnavailable(ConnectionError):
    """No control server answers at the URL, or it refused the handshake (token, origin)."""


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _refusal(url: str, e: Exception) -> ServerUnavailable:
    if isinstance(e, InvalidStatus):
        status = e.response.status_code
        body = e.response.body.decode("utf-8", "replace").strip()
        return ServerUnavailable(f"{url} refused the connection (HTTP {status}): {body}")
    return ServerUnavailable(
        f"no control server at {url} ({type(e).__name__}: {e}). "
        f"Start one with: pose-server run --control {url.removeprefix('ws://')}"
    )


class _Requests:
    """Shared bookkeeping: request ids, reply matching, buffered events."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._ids = itertools.count(1)
        self.events: collections.deque[dict[str, Any] | bytes] = collections.deque(maxlen=256)

    def _encode(self, cmd: str, args: dict[str, Any]) -> tuple[int, str]:
        req_id = next(self._ids)
        return req_id, json.dumps({"id": req_id, "cmd": cmd, **args})

    def _match(self, raw: str | bytes, req_id: int) -> dict[str, Any] | None:
        """The reply to req_id, or None after buffering anything else."""
        if isinstance(raw, bytes):
            self.events.append(raw)
            return None
        msg = json.loads(raw)
        if msg.get("type") in ("reply", "error") and msg.get("id") == req_id:
            if not msg["ok"]:
                raise ControlError(msg["error"]["code"], msg["error"]["message"])
            return msg["result"]
        self.events.append(msg)
        return None


class ControlClient(_Requests):
    """Blocking client; one request at a time. Connects in the constructor."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 5.0) -> None:
        super().__init__(url)
        self.timeout = timeout
        try:
            self.ws = sync_connect(url, additional_headers=_headers(token), open_timeout=timeout,
                                   max_size=16 * m.HARD_MAX_BYTES, compression=None, proxy=None, legacy=True)
        except (OSError, InvalidStatus, TimeoutError) as e:
            raise _refusal(url, e) from None

    def request(self, cmd: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        """Send one command and return its "result"; raises ControlError on an error reply.
        timeout overrides the client's for slow commands (a restart may load a model)."""
        req_id, text = self._encode(cmd, args)
        self.ws.send(text)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            result = self._match(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())), req_id)
            if result is not None:
                if result.get("binary_follows"):
                    result["jpeg"] = self.ws.recv(timeout=max(0.0, deadline - time.monotonic()))
                return result

    def next_event(self, timeout: float = 5.0) -> dict[str, Any] | bytes:
        """The next pushed message (status, preview, keypoints, event, or a binary JPEG)."""
        if self.events:
            return self.events.popleft()
        raw = self.ws.recv(timeout=timeout)
        return raw if isinstance(raw, bytes) else json.loads(raw)

    # Conveniences used by the panel.
    def status(self) -> dict[str, Any]:
        return self.request("get_status")["status"]

    def config(self) -> dict[str, Any]:
        return self.request("get_config")["config"]

    def set_config(self, timeout: float | None = None, **changes: Any) -> dict[str, Any]:
        return self.request("set_config", timeout=timeout, changes=changes)

    def preview(self, max_width: int = 640) -> bytes | None:
        r = self.request("get_preview", max_width=max_width)
        return base64.b64decode(r["jpeg_b64"]) if r.get("available") else None

    def keypoints(self) -> dict[str, Any] | None:
        return self.request("get_keypoints")["packet"]

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncControlClient(_Requests):
    """asyncio client: `async with AsyncControlClient(url) as c: await c.request("get_status")`."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 5.0) -> None:
        super().__init__(url)
        self.token, self.timeout = token, timeout
        self.ws: Any = None

    async def __aenter__(self) -> AsyncControlClient:
        try:
            self.ws = await async_connect(self.url, additional_headers=_headers(self.token),
                                          open_timeout=self.timeout, max_size=16 * m.HARD_MAX_BYTES,
                                          compression=None, proxy=None)
        except (OSError, InvalidStatus, TimeoutError) as e:
            raise _refusal(self.url, e) from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def request(self, cmd: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        req_id, text = self._encode(cmd, args)
        await self.ws.send(text)
        async with asyncio.timeout(self.timeout if timeout is None else timeout):
            while True:
                result = self._match(await self.ws.recv(), req_id)
                if result is not None:
                    if result.get("binary_follows"):
                        result["jpeg"] = await self.ws.recv()
                    return result

    async def next_event(self, timeout: float = 5.0) -> dict[str, Any] | bytes:
        if self.events:
            return self.events.popleft()
        async with asyncio.timeout(timeout):
            raw = await self.ws.recv()
        return raw if isinstance(raw, bytes) else json.loads(raw)
