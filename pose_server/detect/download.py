"""Fetch a model file on first use into checkpoints/, with a progress bar and a clear offline error."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm


def checkpoints_dir() -> Path:
    """Where model files live: $VITPOSE_CHECKPOINTS, else checkpoints/ of this repository (as the ViTPose loader)."""
    env = os.environ.get("VITPOSE_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


class ModelFileMissing(FileNotFoundError):
    """A model file is absent and could not be downloaded; the message names the file to place."""


def fetch(url: str, dest: Path, member_suffix: str = ".onnx", timeout: float = 20.0) -> Path:
    """Download `url` to `dest` (extracting the first `member_suffix` file when it is a zip)."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    archive = dest.with_suffix(".zip")
    try:
        if not archive.is_file() or not url.endswith(".zip"):
            tmp = Path(tempfile.mkstemp(dir=dest.parent, suffix=".part")[1])
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {Path(url).name}") as bar:
                        while chunk := resp.read(1 << 16):
                            out.write(chunk)
                            bar.update(len(chunk))
                shutil.move(tmp, archive if url.endswith(".zip") else dest)
            finally:
                tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise ModelFileMissing(
            f"could not download {url} ({exc}). Without network, fetch it elsewhere and place "
            f"{'the .onnx inside the zip' if url.endswith('.zip') else 'it'} at {dest}"
            + (f" (or the zip itself at {archive})" if url.endswith(".zip") else "")) from None
    if url.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if m.endswith(member_suffix)]
            if not members:
                raise ModelFileMissing(f"{archive} holds no {member_suffix} file; place the model at {dest}")
            with zf.open(members[0]) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
    return dest
