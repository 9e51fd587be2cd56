"""Shared fixtures of the ViTPose tests: tiny random-weight checkpoints in the real file formats.

`tiny_checkpoint(fmt=..., decoder=..., num_keypoints=..., moe=...)` writes once per session and caches
by arguments, so every test that needs a model gets a real .pth or HF folder for a few milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pose_server.vitpose.tiny import make_tiny_checkpoint


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    # The CI machine has 2 cores shared with other suites.
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: `tiny_checkpoint(**make_tiny_checkpoint_kwargs) -> Path`, cached per argument set."""
    root = tmp_path_factory.mktemp("tiny_vitpose")
    cache: dict[tuple, Path] = {}

    def make(**kwargs) -> Path:
        key = tuple(sorted(kwargs.items()))
        if key not in cache:
            fmt = kwargs.get("fmt", "mmpose")
            name = f"tiny{len(cache)}" + (".pth" if fmt == "mmpose" else "")
            cache[key] = make_tiny_checkpoint(root / name, **kwargs)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_pth(tiny_checkpoint: Callable[..., Path]) -> Path:
    """A tiny COCO-17 classic-decoder ViTPose in official mmpose .pth format."""
    return tiny_checkpoint()


@pytest.fixture(scope="session")
def tiny_wholebody_pth(tiny_checkpoint: Callable[..., Path]) -> Path:
    """A tiny ViTPose+ .pth with all six dataset heads (load with dataset="wholebody" for 133 keypoints)."""
    return tiny_checkpoint(moe=True)
