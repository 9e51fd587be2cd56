from pathlib import Path

import pytest
import torch

from tests.control.live import live_server

CLIP = Path(__file__).resolve().parents[2] / "resources/videos/default.mp4"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(pipeline, server handle, UDP receiver) on the bundled demo clip with the embedded real model (BlazePose,
    fetched by `make`), so the screenshot shows real people, real keypoints and a lifted 3D skeleton."""
    torch.set_num_threads(1)  # two shared cores
    real = {"checkpoint": "blazepose", "detector": "blazepose", "kpt_threshold": 0.3, "max_people": 2, "threads": 1}
    with live_server(tmp_path_factory.mktemp("live"), source=str(CLIP), config=real) as running:
        yield running
