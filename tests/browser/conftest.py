from pathlib import Path

import pytest
import torch

from tests.control.live import live_server

CLIP = Path(__file__).resolve().parents[2] / "resources/videos/default.mp4"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(pipeline, server handle, UDP receiver) on the bundled demo clip, so the screenshot shows a person."""
    torch.set_num_threads(1)  # two shared cores
    with live_server(tmp_path_factory.mktemp("live"), source=str(CLIP)) as running:
        yield running
