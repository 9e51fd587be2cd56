"""scripts/fetch_embedded_model.py: what `make` runs to put the embedded model in place."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from pose_server.blazepose import embedded_dir
from pose_server.blazepose.files import MODEL_FILES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fetch_embedded_model.py"
FETCHED = embedded_dir()


def _script():
    spec = importlib.util.spec_from_file_location("fetch_embedded_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_wheel_that_is_not_the_pinned_one_is_refused(tmp_path):
    fake = tmp_path / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(MODEL_FILES["full"].member, b"not a model")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--wheel", str(fake), "--dest", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "is not the pinned wheel" in proc.stderr and "refusing" in proc.stderr
    assert not (tmp_path / "out" / MODEL_FILES["full"].name).exists()


def test_up_to_date_only_when_every_file_has_its_pinned_hash(tmp_path):
    fetch = _script()
    dest = tmp_path / "embedded"
    dest.mkdir()
    assert not fetch.fetched(dest)
    for key in ("detector", "full"):
        shutil.copy(FETCHED / MODEL_FILES[key].name, dest / MODEL_FILES[key].name)
    assert not fetch.fetched(dest)  # no stamp: the extraction did not finish
    (dest / fetch.STAMP).write_text("x\n")
    assert fetch.fetched(dest)
    with open(dest / MODEL_FILES["detector"].name, "r+b") as f:
        f.write(b"\0\0\0\0")
    assert not fetch.fetched(dest)  # a damaged file is fetched again
