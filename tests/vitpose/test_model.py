"""The ViTPose network itself: shapes, token grid, position embedding, ViTPose+ experts."""

from __future__ import annotations

import pytest
import torch

from pose_server.vitpose.configs import SIZES
from pose_server.vitpose.model import MoEMlp, ViTPose, ViTPoseArch
from pose_server.vitpose.tiny import randomize_, tiny_arch


def _random(arch: ViTPoseArch, dataset_index: int = 0) -> ViTPose:
    return randomize_(ViTPose(arch, dataset_index), torch.Generator().manual_seed(0)).eval()


@pytest.mark.parametrize("decoder", ["classic", "simple"])
@pytest.mark.parametrize("num_keypoints", [17, 133])
def test_heatmap_shape(decoder: str, num_keypoints: int) -> None:
    model = _random(tiny_arch(decoder=decoder, num_keypoints=num_keypoints))
    with torch.no_grad():
        out = model(torch.randn(3, 3, 256, 192))
    assert out.shape == (3, num_keypoints, 64, 48)
    assert model.arch.grid_size == (16, 12) and model.arch.heatmap_size == (64, 48)


def test_official_sizes_build_with_the_published_parameter_counts() -> None:
    # ViTPose paper, table 1 (backbone only): S ~22M, B ~86M.
    for name, expected in (("small", 22e6), ("base", 86e6)):
        dim, depth, heads = SIZES[name]
        backbone = ViTPose(ViTPoseArch(embed_dim=dim, depth=depth, num_heads=heads)).backbone
        count = sum(p.numel() for p in backbone.parameters())
        assert abs(count - expected) / expected < 0.05, (name, count)


def test_class_slot_of_the_position_embedding_is_added_to_every_token() -> None:
    model = _random(tiny_arch())
    x = torch.randn(1, 3, 256, 192)
    delta = torch.randn(model.arch.embed_dim)  # not constant over channels: LayerNorm would cancel that
    with torch.no_grad():
        before = model(x)
        model.backbone.pos_embed[:, 0] += delta  # the class slot: shifts every patch token
        shifted = model(x)
        model.backbone.pos_embed[:, 0] -= delta
        model.backbone.pos_embed[:, 1:] += delta  # the same shift through the patch slots
        same = model(x)
    assert (before - shifted).abs().max() > 1e-3
    torch.testing.assert_close(shifted, same, atol=1e-5, rtol=1e-5)


def test_moe_mlp_equals_masked_sum_over_experts() -> None:
    """Running only the selected expert is the official per-sample masked sum when the batch shares a dataset."""
    mlp = randomize_(MoEMlp(16, 64, num_experts=3, part_features=4), torch.Generator().manual_seed(0))
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        hidden = mlp.act(mlp.fc1(x))
        for index in range(3):
            indices = torch.full((2, 1, 1), index)
            expert = sum(e(hidden) * (indices == i) for i, e in enumerate(mlp.experts))
            reference = torch.cat([mlp.fc2(hidden), expert], dim=-1)
            torch.testing.assert_close(mlp(x, index), reference)


def test_arch_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="decoder"):
        ViTPoseArch(decoder="fancy")
    with pytest.raises(ValueError, match="divisible"):
        ViTPoseArch(embed_dim=100, num_heads=12)
    with pytest.raises(ValueError, match="part_features"):
        ViTPoseArch(num_experts=6, part_features=0)
    with pytest.raises(ValueError, match="dataset_index"):
        ViTPose(tiny_arch(moe=True), dataset_index=6)
