"""`pose-server panel` (panel.launch) serves the page, and stopping it stops streamlit too."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.control.live import free_port

ROOT = Path(__file__).resolve().parents[2]


def health(port: int) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
            return r.read().strip()
    except OSError:
        return None


def test_launch_serves_the_panel_and_stops_with_it():
    port = free_port()
    code = f"from pose_server.panel import launch; raise SystemExit(launch(['--port', '{port}']))"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 60
        while health(port) != b"ok":
            assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.poll() else "timeout"
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        end = time.monotonic() + 10
        while health(port) is not None and time.monotonic() < end:
            time.sleep(0.2)
        assert health(port) is None  # streamlit went away with its parent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def test_launch_refuses_an_address_beyond_loopback_without_a_password(capsys, monkeypatch):
    from pose_server.panel import launch

    monkeypatch.delenv("POSE_PANEL_TOKEN", raising=False)
    assert launch(["--address", "0.0.0.0", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "without a password" in err and "--password" in err

    for sneaked in (["--server.address", "0.0.0.0"], ["--server.address=0.0.0.0"], ["--server.port", "80"]):
        assert launch(["--port", str(free_port()), *sneaked]) == 2, sneaked
        assert "--address and --port" in capsys.readouterr().err
