"""Our ViTPose against transformers' `VitPoseForPoseEstimation` on identical random weights."""

from __future__ import annotations

import pytest
import torch
from transformers import VitPoseForPoseEstimation

from pose_server.vitpose.configs import SIZES
from pose_server.vitpose.convert import hf_config, hf_to_mmpose, mmpose_to_hf
from pose_server.vitpose.loading import load_vitpose
from pose_server.vitpose.model import ViTPose, ViTPoseArch
from pose_server.vitpose.tiny import randomize_

TOL = 1e-4


def _hf_twin(model: ViTPose) -> VitPoseForPoseEstimation:
    """A transformers model holding exactly our model's weights (converted to HF names)."""
    twin = VitPoseForPoseEstimation(hf_config(model.arch)).eval()
    twin.load_state_dict(mmpose_to_hf(model.state_dict()), strict=True)
    return twin


def _compare(model: ViTPose, batch: int = 2, seed: int = 1) -> float:
    x = torch.randn(batch, 3, *model.arch.img_size, generator=torch.Generator().manual_seed(seed))
    twin = _hf_twin(model)
    dataset_index = torch.full((batch,), model.dataset_index) if model.arch.num_experts > 1 else None
    with torch.no_grad():
        ours = model(x)
        theirs = twin(x, dataset_index=dataset_index).heatmaps
    assert ours.shape == theirs.shape == (batch, model.arch.num_keypoints, 64, 48)
    assert ours.abs().max() > 1e-3  # random weights must produce a non-trivial output to compare
    return float((ours - theirs).abs().max())


@pytest.mark.parametrize("decoder", ["classic", "simple"])
def test_tiny_matches_transformers(tiny_checkpoint, decoder: str) -> None:
    model, _ = load_vitpose(tiny_checkpoint(decoder=decoder))
    assert _compare(model) < TOL


@pytest.mark.parametrize("dataset", ["coco", "mpii", "wholebody"])
def test_vitpose_plus_expert_and_head_match_transformers(tiny_checkpoint, dataset: str) -> None:
    model, spec = load_vitpose(tiny_checkpoint(moe=True), dataset=dataset)
    assert model.arch.num_experts == 6 and model.dataset_index == spec.dataset_index
    assert _compare(model) < TOL


def test_vitpose_plus_experts_change_the_output(tiny_checkpoint) -> None:
    """Same head, other expert: the dataset index really selects different weights."""
    model, _ = load_vitpose(tiny_checkpoint(moe=True), dataset="coco")
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        coco = model(x)
        model.dataset_index = 3  # AP-10K expert, COCO head (both 17 channels)
        other = model(x)
    assert (coco - other).abs().max() > 1e-3


@pytest.mark.slow
def test_full_size_vitpose_s_matches_transformers() -> None:
    dim, depth, heads = SIZES["small"]
    model = ViTPose(ViTPoseArch(embed_dim=dim, depth=depth, num_heads=heads)).eval()
    randomize_(model, torch.Generator().manual_seed(0))
    assert model.backbone.patch_embed.proj.padding == (2, 2)
    assert model.backbone.pos_embed.shape == (1, 16 * 12 + 1, 384)
    assert _compare(model, batch=1) < TOL


def test_state_dict_round_trip_is_lossless(tiny_checkpoint) -> None:
    model, _ = load_vitpose(tiny_checkpoint(moe=True))
    state = model.state_dict()
    back = hf_to_mmpose(mmpose_to_hf(state))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)
