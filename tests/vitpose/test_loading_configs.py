"""Config files: official ViTPose python configs (read with ast, no mmcv) and our configs/*.json."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from pose_server.vitpose import ModelLoadError, load_vitpose
from pose_server.vitpose.configs import SIZES, arch_from_python_config, parse_python_config, read_config
from pose_server.vitpose.tiny import make_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]

# Written in the style of the official configs: `_base_` files, `{{_base_.x}}` references, variables,
# subscripts, f-strings and calls we do not evaluate (they are not model settings).
OFFICIAL_STYLE = textwrap.dedent(
    """
    _base_ = ['../_base_/default_runtime.py', '../_base_/datasets/coco.py']
    evaluation = dict(interval=10, metric='mAP', save_best='AP')
    optimizer = dict(type='AdamW', lr=5e-4, paramwise_cfg=dict(num_layers=2, custom_keys={'bias': dict(decay_mult=0.)}))
    channel_cfg = dict(num_output_channels=17, dataset_joints=17, inference_channel=list(range(17)))
    wholebody_channel_cfg = dict(num_output_channels=133, dataset_channel=[list(range(133))])
    embed = 32
    model = dict(
        type='TopDownMoE',
        pretrained=None,
        backbone=dict(type='ViTMoE', img_size=(256, 192), patch_size=16, embed_dim=embed, depth=2,
                      num_heads=2, ratio=1, mlp_ratio=4, qkv_bias=True, drop_path_rate=0.3,
                      num_expert=6, part_features=8),
        keypoint_head=dict(type='TopdownHeatmapSimpleHead', in_channels=embed, num_deconv_layers=2,
                           num_deconv_filters=(256, 256), num_deconv_kernels=(4, 4),
                           extra=dict(final_conv_kernel=1, ), out_channels=channel_cfg['num_output_channels']),
        associate_keypoint_head=[
            dict(type='TopdownHeatmapSimpleHead', in_channels=embed, num_deconv_layers=2, out_channels=k)
            for k in (14, 16, 17, 17)
        ] + [dict(type='TopdownHeatmapSimpleHead', in_channels=embed, num_deconv_layers=2,
                  out_channels=wholebody_channel_cfg['num_output_channels'])],
        test_cfg=dict(flip_test=True, use_udp=True))
    data_root = 'data/coco'
    data = dict(
        train=dict(type='TopDownCocoDataset', ann_file=f'{data_root}/annotations/train.json',
                   dataset_info={{_base_.dataset_info}}),
        test=dict(pipeline=some_function(1)))
    """
)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_official_style_moe_config_parses_without_mmcv(tmp_path: Path) -> None:
    # The list comprehension is not evaluated: the associate heads must then come from the weights.
    config = _write(tmp_path / "cfg" / "vitpose_plus.py", OFFICIAL_STYLE)
    info = arch_from_python_config(config)
    arch = info.arch
    assert (arch.embed_dim, arch.depth, arch.num_heads, arch.num_experts, arch.part_features) == (32, 2, 2, 6, 8)
    assert (arch.decoder, arch.img_size, arch.num_keypoints) == ("classic", (256, 192), 17)
    variables = parse_python_config(config)
    assert variables["channel_cfg"]["inference_channel"] == list(range(17))
    assert variables["optimizer"]["paramwise_cfg"]["custom_keys"]["bias"]["decay_mult"] == 0.0


def test_official_config_plus_checkpoint(tmp_path: Path) -> None:
    """The tiny file has no config in it, so its attention heads can only come from the config file."""
    pth = make_tiny_checkpoint(tmp_path / "vitpose+_tiny.pth", moe=True, with_config_meta=False)
    with pytest.raises(ModelLoadError, match="pass a config"):
        load_vitpose(pth)
    config = _write(tmp_path / "vitpose_plus.py", OFFICIAL_STYLE)
    model, spec = load_vitpose(pth, config=config, dataset="wholebody")
    assert (spec.num_keypoints, spec.num_experts, spec.name) == (133, 6, "vitpose_plus")
    reference, _ = load_vitpose(make_tiny_checkpoint(tmp_path / "same.pth", moe=True), dataset="wholebody")
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


def test_base_inheritance_merges_dicts(tmp_path: Path) -> None:
    _write(tmp_path / "_base_" / "vit_base.py", textwrap.dedent("""
        model = dict(type='TopDown',
                     backbone=dict(type='ViT', img_size=(256, 192), patch_size=16, embed_dim=768, depth=12,
                                   num_heads=12, mlp_ratio=4, qkv_bias=True),
                     keypoint_head=dict(type='TopdownHeatmapSimpleHead', in_channels=768, num_deconv_layers=2,
                                        out_channels=17))
    """))
    child = _write(tmp_path / "body" / "vit_small_simple_wholebody.py", textwrap.dedent("""
        _base_ = '../_base_/vit_base.py'
        model = dict(backbone=dict(embed_dim=384), keypoint_head=dict(in_channels=384, num_deconv_layers=0,
                     upsample=4, extra=dict(final_conv_kernel=3), out_channels=133))
    """))
    arch = arch_from_python_config(child).arch
    assert (arch.embed_dim, arch.depth, arch.num_heads) == (384, 12, 12)
    assert (arch.decoder, arch.num_keypoints) == ("simple", 133)


def test_repository_model_files_describe_official_sizes() -> None:
    files = sorted((REPO / "configs").glob("*.json"))
    assert files, "configs/*.json missing"
    for path in files:
        info = read_config(path)
        data = json.loads(path.read_text())
        assert (info.arch.embed_dim, info.arch.depth, info.arch.num_heads) == SIZES[data["size"]], path
        if info.arch.num_experts > 1:
            assert info.head_keypoints == (17, 14, 16, 17, 17, 133)


def test_json_model_file_names_its_checkpoint(tmp_path: Path) -> None:
    make_tiny_checkpoint(tmp_path / "checkpoints" / "tiny_plus.pth", moe=True)
    model_file = _write(tmp_path / "configs" / "tiny_plus_wholebody.json", json.dumps({
        "name": "tiny-plus-wholebody", "size": "base", "embed_dim": 32, "depth": 2, "num_heads": 2,
        "num_experts": 6, "part_features": 8, "head_keypoints": [17, 14, 16, 17, 17, 133],
        "dataset": "wholebody", "checkpoint": "checkpoints/tiny_plus.pth",
    }))
    model, spec = load_vitpose(model_file, checkpoints_dir=tmp_path / "checkpoints")
    assert (spec.name, spec.num_keypoints, spec.skeleton) == ("tiny-plus-wholebody", 133, "wholebody133")
    assert load_vitpose(model_file, dataset="mpii", checkpoints_dir=tmp_path / "checkpoints").spec.num_keypoints == 16


def test_json_model_file_without_its_weights_says_where_they_go(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="vitpose_small.pth") as error:
        load_vitpose(REPO / "configs" / "vitpose_s_coco.json", checkpoints_dir=tmp_path)
    assert "--checkpoint" in str(error.value)
