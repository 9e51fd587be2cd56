"""Checks on output paths before any work: a run that cannot write its output, or that would write over its own
input, is refused with what to do, before the model loads and before anything is read or replaced."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (it need not exist yet; links and relative forms resolved)."""
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    try:
        if pa.exists() and pb.exists():
            return pa.samefile(pb)
    except OSError:
        pass
    return pa.resolve() == pb.resolve()


def check_output(path: str | Path, what: str, inputs: Iterable[str | Path] = ()) -> Path:
    """``path`` as a Path, or ValueError saying why it cannot be written: it is one of ``inputs`` (the run would
    overwrite what it reads), a folder, under a file, or in a folder that cannot be written or made."""
    p = Path(path).expanduser()
    for src in inputs:
        if src is not None and Path(src).expanduser().is_file() and same_file(p, src):
            raise ValueError(f"the {what} {path} is the input {src} itself: writing it would destroy the input; "
                             "give the output another name")
    if p.is_dir():
        raise ValueError(f"the {what} {path} is a folder: give a file name in it")
    parent = p.parent
    while not parent.exists():  # the writers make missing folders: the nearest existing one decides
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write the {what} {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write the {what} {path}: the folder {parent} is not writable")
    return p
