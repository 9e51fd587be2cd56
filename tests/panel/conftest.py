import pytest
import torch

from tests.control.live import live_server


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(pipeline, server handle, UDP receiver) shared by the tests of a module."""
    torch.set_num_threads(1)  # two shared cores
    with live_server(tmp_path_factory.mktemp("live")) as running:
        yield running
