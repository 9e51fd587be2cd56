"""Hugging Face hub checkpoints: download once into `checkpoints/hf/<owner>--<name>/`, then work offline."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .configs import ModelLoadError

# The ViTPose checkpoints published by the authors' organisation on the hub (transformers format).
HUB_MODELS = {
    "usyd-community/vitpose-base-simple": "ViTPose-B, simple decoder, COCO 17",
    "usyd-community/vitpose-base": "ViTPose-B, classic decoder, COCO 17",
    "usyd-community/vitpose-base-coco-aic-mpii": "ViTPose-B trained on COCO+AIC+MPII, COCO 17",
    "usyd-community/vitpose-plus-small": "ViTPose+-S (6 experts), COCO head",
    "usyd-community/vitpose-plus-base": "ViTPose+-B (6 experts), COCO head",
    "usyd-community/vitpose-plus-large": "ViTPose+-L (6 experts), COCO head",
    "usyd-community/vitpose-plus-huge": "ViTPose+-H (6 experts), COCO head",
}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
REQUIRED_FILES = ("config.json", "model.safetensors")


def default_checkpoints_dir() -> Path:
    """`$VITPOSE_CHECKPOINTS`, else `checkpoints/` of this repository."""
    env = os.environ.get("VITPOSE_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "checkpoints"


def is_hub_id(text: str) -> bool:
    """`owner/name` that is not a local path (`checkpoints/x` is a missing file, not a repo) nor a file name."""
    path = Path(text)
    if not _HUB_ID.fullmatch(text) or path.exists() or path.parent.is_dir():
        return False
    return path.suffix not in (".pth", ".pt", ".json", ".py", ".safetensors")


def snapshot_dir(repo_id: str, checkpoints_dir: str | Path | None = None) -> Path:
    """Where a hub model lives locally: `checkpoints/hf/<owner>--<name>/`."""
    return Path(checkpoints_dir or default_checkpoints_dir()) / "hf" / repo_id.replace("/", "--")


def ensure_snapshot(repo_id: str, checkpoints_dir: str | Path | None = None, revision: str | None = None) -> Path:
    """The local folder of a hub model, downloading `config.json` + `model.safetensors` (with a progress bar)
    if they are not there yet. Raises `ModelLoadError` saying where to put the files when offline."""
    target = snapshot_dir(repo_id, checkpoints_dir)
    if all((target / name).is_file() for name in REQUIRED_FILES):
        return target
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id, revision=revision, local_dir=target, allow_patterns=list(REQUIRED_FILES))
    except Exception as exc:  # offline, unknown repo, auth, disk: all end in the same instructions
        known = "" if repo_id in HUB_MODELS else f" (known ids: {', '.join(sorted(HUB_MODELS))})"
        raise ModelLoadError(
            f"could not download {repo_id!r} from the Hugging Face hub{known}: {type(exc).__name__}: {exc}\n"
            f"Without network, download https://huggingface.co/{repo_id} elsewhere and copy "
            f"{' and '.join(REQUIRED_FILES)} into {target}/ , or put an official ViTPose .pth in "
            f"{target.parent.parent}/ and pass it with --checkpoint (see docs/models.md)."
        ) from exc
    missing = [name for name in REQUIRED_FILES if not (target / name).is_file()]
    if missing:
        raise ModelLoadError(f"{repo_id!r} on the hub has no {', '.join(missing)}; is it a transformers ViTPose model?")
    return target
