"""The Streamlit control panel. `pose-server panel` calls launch(); the page itself is app.py.

The page steers the pose server with the control API's token, so it is served on loopback unless it has a password
of its own (--password or $POSE_PANEL_TOKEN): then it asks for that before it shows anything of the server.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from pose_server.control.server import is_loopback

APP = Path(__file__).with_name("app.py")


def panel_command(port: int = 8501, address: str = "127.0.0.1", extra: list[str] | None = None) -> list[str]:
    """The `streamlit run` command line of the panel (headless: it prints the URL instead of opening a browser)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "viewer",  # no "Deploy" button: this page steers a local server
        *(extra or []),
    ]


def launch(argv: list[str] | None = None) -> int:
    """Run the panel until Ctrl-C. argv: [--control URL] [--token T] [--port N] [--address A] [streamlit options]."""
    parser = argparse.ArgumentParser(prog="pose-server panel", description="Streamlit control panel")
    parser.add_argument("--control", default="ws://127.0.0.1:8765", help="control API URL of the pose server")
    parser.add_argument("--token", default=os.environ.get("POSE_SERVER_TOKEN", ""),
                        help="control API token (or set POSE_SERVER_TOKEN)")
    parser.add_argument("--port", type=int, default=8501, help="port of the panel's web page")
    parser.add_argument("--address", default="127.0.0.1",
                        help="address of the web page; anything but loopback needs --password")
    parser.add_argument("--password", default=os.environ.get("POSE_PANEL_TOKEN", ""),
                        help="password the page asks for before it shows anything (or set POSE_PANEL_TOKEN); "
                             "required when --address is reachable from other machines")
    args, extra = parser.parse_known_args(argv)
    if any(a.split("=")[0] in ("--server.address", "--server.port") for a in extra):
        print("pose-server panel: give the address and port with --address and --port (the page's password check "
              "depends on them), not as streamlit's --server.address / --server.port", file=sys.stderr)
        return 2
    if not is_loopback(args.address) and not args.password:
        print(f"pose-server panel: refusing to serve on {args.address} without a password: the page steers the pose "
              "server (start, stop, record) for anyone who reaches it. Set one with --password or $POSE_PANEL_TOKEN, "
              "or keep the default 127.0.0.1 and reach it through an SSH tunnel "
              "(ssh -L 8501:127.0.0.1:8501 this-machine).", file=sys.stderr)
        return 2
    # Tokens go through the environment, not the command line that `ps` shows.
    env = {**os.environ, "POSE_SERVER_CONTROL_URL": args.control, "POSE_SERVER_TOKEN": args.token,
           "POSE_PANEL_TOKEN": args.password}
    print(f"panel: http://{args.address}:{args.port}  (control API {args.control})", file=sys.stderr)
    proc = subprocess.Popen(panel_command(args.port, args.address, extra), env=env)
    # Stopping `pose-server panel` stops the page too (SIGTERM would otherwise orphan streamlit).
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached streamlit as well (same process group)
        return proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
