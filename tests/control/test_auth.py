"""Token and Origin checks at the handshake, against real servers (connecting only to 127.0.0.1)."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pose_server.config import PipelineConfig
from pose_server.control.client import ControlClient, ServerUnavailable
from pose_server.control.server import is_loopback, origin_allowed, serve_in_thread
from pose_server.pipeline import Pipeline

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline(PipelineConfig())  # the handshake never needs it running


@pytest.fixture(scope="module")
def exposed(pipeline):
    """A server on every interface (non-loopback): it must demand the token."""
    with serve_in_thread(pipeline, "0.0.0.0", 0, TOKEN) as handle:
        yield handle


def status_of(url: str, **kw) -> int:
    with pytest.raises(InvalidStatus) as e:
        connect(url, **kw).close()
    return e.value.response.status_code


def test_non_loopback_bind_needs_a_token(pipeline):
    with pytest.raises(ValueError, match="give a token"):
        serve_in_thread(pipeline, "0.0.0.0", 0, None)
    with pytest.raises(ValueError, match="give a token"):
        serve_in_thread(pipeline, "", 0, "")


def test_loopback_range_needs_no_token(pipeline):
    with serve_in_thread(pipeline, "127.0.0.2", 0) as handle:
        with ControlClient(f"ws://127.0.0.2:{handle.port}") as c:
            assert c.request("ping")["pong"]


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.5.0.1", True), ("::1", True), ("localhost", True),
                                        ("0.0.0.0", False), ("", False), ("::", False), ("192.168.1.2", False),
                                        ("myhost.example", False)])
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_missing_or_wrong_token_is_refused_with_401(exposed):
    url = f"ws://127.0.0.1:{exposed.port}/"
    assert status_of(url) == 401
    assert status_of(url + "?token=wrong") == 401
    assert status_of(url, additional_headers={"Authorization": "Bearer nope"}) == 401
    with pytest.raises(ServerUnavailable, match="HTTP 401.*token"):
        ControlClient(url)


def test_right_token_by_query_header_or_bearer(exposed):
    url = f"ws://127.0.0.1:{exposed.port}/"
    with connect(url + f"?token={TOKEN}") as ws:
        ws.send('{"cmd": "ping"}')
        assert '"pong":true' in ws.recv(timeout=5)
    with connect(url, additional_headers={"X-Pose-Token": TOKEN}) as ws:
        ws.send('{"cmd": "ping"}')
        assert '"pong":true' in ws.recv(timeout=5)
    with ControlClient(url, token=TOKEN) as c:  # Authorization: Bearer
        assert c.request("ping")["pong"]


def test_foreign_browser_origins_are_refused(pipeline):
    with serve_in_thread(pipeline, "127.0.0.1", 0) as handle:
        url = handle.url
        assert status_of(url, origin="https://evil.example") == 403
        assert status_of(url, origin="null") == 403
        assert status_of(url, origin="http://192.168.0.10:8501") == 403
        for ok in ("http://localhost:8501", "http://127.0.0.1:8501", "http://[::1]:8501"):
            with connect(url, origin=ok) as ws:
                ws.send('{"cmd": "ping"}')
                assert '"pong":true' in ws.recv(timeout=5)


def test_extra_allowed_origin(pipeline):
    with serve_in_thread(pipeline, "127.0.0.1", 0, allowed_origins=("http://studio.lan:8501",)) as handle:
        with connect(handle.url, origin="http://studio.lan:8501") as ws:
            ws.send('{"cmd": "ping"}')
            assert '"pong":true' in ws.recv(timeout=5)
    assert origin_allowed(None) and not origin_allowed("ftp://localhost")


def test_port_in_use_raises(pipeline, exposed):
    with pytest.raises(OSError):
        serve_in_thread(pipeline, "127.0.0.1", exposed.port)
