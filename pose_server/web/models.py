"""The web page's model chooser: the `--model` choices of the CLI (ViTPose sizes, the embedded BlazePose, auto),
labelled with whether their weights are already on this machine, plus the checkpoint the app was started with."""

from __future__ import annotations

from pathlib import Path

from ..config import AUTO_MODEL, EMBEDDED_MODELS, HUB_MODELS

STARTED = "started"  # the value of "the model `pose-server web` was started with" (--checkpoint / --model)


def _vitpose_here(hub_id: str) -> bool:
    from ..vitpose.hub import REQUIRED_FILES, snapshot_dir

    return all((snapshot_dir(hub_id) / name).is_file() for name in REQUIRED_FILES)


def _blazepose_here(variant: str) -> bool:
    from ..blazepose.files import MODEL_FILES, embedded_dir

    return all((embedded_dir() / MODEL_FILES[k].name).is_file() for k in ("detector", variant))


def model_choices(checkpoint: str | None, model: str, downloads: bool = True) -> list[tuple[str, str]]:
    """(label, value) pairs for a Dropdown; the first is what the app was started with."""
    started = Path(checkpoint).name if checkpoint else model
    out = [(f"as started: {started}", STARTED), ("auto: ViTPose if its weights are here, else BlazePose", AUTO_MODEL)]
    for size, hub_id in HUB_MODELS.items():
        where = ("weights here" if _vitpose_here(hub_id) else "downloads once, needs network" if downloads
                 else "not on this server")
        out.append((f"ViTPose {size} ({hub_id}, {where})", size))
    for name, variant in EMBEDDED_MODELS.items():
        if name != "blazepose":  # only another name for -full
            where = "embedded" if _blazepose_here(variant) else "not here: docs/models.md says where to get it"
            out.append((f"BlazePose {variant} ({where})", name))
    return out


def model_fields(choice: str, checkpoint: str | None, model: str, downloads: bool = True) -> dict[str, str | None]:
    """PipelineConfig's checkpoint / model_size for a chooser value (the CLI's _checkpoint_of, for the page).
    Without `downloads`, a ViTPose whose weights are not here is refused: anyone reaching a page served beyond
    loopback could otherwise make the server fetch gigabytes (ViTPose-huge)."""
    if choice == STARTED:
        if checkpoint:
            return {"checkpoint": checkpoint, "model_size": None}
        choice = model
    elif choice not in HUB_MODELS and choice != AUTO_MODEL and choice not in EMBEDDED_MODELS:
        raise ValueError(f"unknown model {choice!r}: pick one of the list")
    if choice in HUB_MODELS:
        if not downloads and not _vitpose_here(HUB_MODELS[choice]):
            raise ValueError(f"ViTPose {choice}'s weights are not on this server, and this page does not download "
                             "them: pick another model (whoever runs it can fetch them once with `pose-server run "
                             f"--model {choice}`, or start the page with --allow-downloads)")
        return {"checkpoint": None, "model_size": choice}
    return {"checkpoint": choice, "model_size": None}  # auto, blazepose-*, or the hub id it was started with
