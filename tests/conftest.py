"""Shared pytest set-up. Keep this importable with only the standard library and pytest:
the Blender 4.2 environment (.venv-bpy42) runs tests/addon with nothing else installed."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def stop_process(proc) -> None:
    """Terminate a server the test started; kill it if it has not gone after 10 s."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
