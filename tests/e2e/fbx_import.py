"""`imported_keys`: what Blender's FBX importer finds in a file, via fbx_keys.py in a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

FBX_KEYS = Path(__file__).with_name("fbx_keys.py")


def imported_keys(path: str | Path, frames: Iterable[int] = (), python: str = sys.executable) -> dict:
    """fbx_keys.py's KEYS JSON for `path` (with world head positions at `frames`), imported by `python`'s Blender."""
    proc = subprocess.run([python, str(FBX_KEYS), str(path), *map(str, frames)], capture_output=True, text=True,
                          timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("KEYS ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(line[5:])
