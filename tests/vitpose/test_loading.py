"""load_vitpose on every supported source, checked against transformers' own loading where it applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import VitPoseForPoseEstimation

from pose_server.vitpose import ModelLoadError, load_vitpose
from pose_server.vitpose.convert import _main as convert_main
from pose_server.vitpose.tiny import make_tiny_checkpoint, save_mmpose_checkpoint

X = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(3))


def _heatmaps(model: torch.nn.Module, dataset_index: int | None = None) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(model, VitPoseForPoseEstimation):
            index = None if dataset_index is None else torch.full((X.shape[0],), dataset_index)
            return model(X, dataset_index=index).heatmaps
        return model(X)


def _transformers(folder: Path) -> VitPoseForPoseEstimation:
    return VitPoseForPoseEstimation.from_pretrained(folder).eval()


def test_mmpose_pth_loads_the_file_weights_with_a_full_spec(tiny_pth: Path) -> None:
    model, spec = load_vitpose(tiny_pth)
    stored = torch.load(tiny_pth, weights_only=True)["state_dict"]
    assert model.state_dict().keys() == stored.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stored.items())
    assert not model.training
    assert (spec.num_keypoints, spec.skeleton, spec.dataset, spec.dataset_index) == (17, "coco17", "coco", 0)
    assert (spec.decoder, spec.input_size, spec.heatmap_size) == ("classic", (256, 192), (64, 48))
    assert len(spec.weights_hash) == 64 and spec.source == str(tiny_pth)
    assert _heatmaps(model).shape == (2, 17, 64, 48)


@pytest.mark.parametrize("kwargs", [{}, {"decoder": "simple"}, {"moe": True}])
def test_hf_folder_gives_what_transformers_gives(tiny_checkpoint, kwargs: dict) -> None:
    folder = tiny_checkpoint(fmt="hf", **kwargs)
    model, spec = load_vitpose(folder)
    expected = _heatmaps(_transformers(folder), 0 if kwargs.get("moe") else None)
    torch.testing.assert_close(_heatmaps(model), expected, atol=1e-4, rtol=0)
    assert spec.num_experts == (6 if kwargs.get("moe") else 1)


def test_hf_config_layer_norm_eps_is_used(tiny_checkpoint, tmp_path: Path) -> None:
    folder = tmp_path / "eps"
    folder.mkdir()
    source = tiny_checkpoint(fmt="hf")
    config = json.loads((source / "config.json").read_text())
    config["backbone_config"]["layer_norm_eps"] = 1e-12  # transformers' default, which some exports keep
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes())
    model, _ = load_vitpose(folder)
    assert model.backbone.last_norm.eps == 1e-12 and model.backbone.blocks[0].norm1.eps == 1e-12
    torch.testing.assert_close(_heatmaps(model), _heatmaps(_transformers(folder)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("dataset", [None, "wholebody"])
def test_mmpose_to_hf_conversion_loads_in_transformers(tiny_wholebody_pth: Path, tmp_path: Path, dataset) -> None:
    args = [str(tiny_wholebody_pth), str(tmp_path / "hf")] + (["--dataset", dataset] if dataset else [])
    convert_main(args)
    ours, spec = load_vitpose(tiny_wholebody_pth, dataset=dataset)
    theirs = _transformers(tmp_path / "hf")
    assert theirs.config.num_labels == spec.num_keypoints == (133 if dataset else 17)
    torch.testing.assert_close(_heatmaps(theirs), _heatmaps(ours), atol=1e-4, rtol=0)


def test_hf_to_mmpose_conversion_loads_in_ours(tiny_checkpoint, tmp_path: Path) -> None:
    folder = tiny_checkpoint(fmt="hf", decoder="simple")
    convert_main([str(folder), str(tmp_path / "converted.pth")])
    stored = torch.load(tmp_path / "converted.pth", weights_only=True)
    assert "backbone.blocks.0.attn.qkv.weight" in stored["state_dict"] and "config" in stored["meta"]
    model, spec = load_vitpose(tmp_path / "converted.pth")
    assert spec.decoder == "simple"
    torch.testing.assert_close(_heatmaps(model), _heatmaps(_transformers(folder)), atol=1e-4, rtol=0)


def test_weights_hash_follows_the_weights_not_the_format(tiny_checkpoint) -> None:
    mm = load_vitpose(tiny_checkpoint(moe=True)).spec
    hf = load_vitpose(tiny_checkpoint(moe=True, fmt="hf")).spec
    other_seed = load_vitpose(tiny_checkpoint(moe=True, seed=1)).spec
    wholebody = load_vitpose(tiny_checkpoint(moe=True), dataset="wholebody").spec
    assert mm.weights_hash == hf.weights_hash
    assert len({mm.weights_hash, other_seed.weights_hash, wholebody.weights_hash}) == 3


def test_vitpose_plus_wholebody_end_to_end(tiny_wholebody_pth: Path) -> None:
    model, spec = load_vitpose(tiny_wholebody_pth, dataset="wholebody")
    assert (spec.num_keypoints, spec.skeleton, spec.dataset_index, model.dataset_index) == (133, "wholebody133", 5, 5)
    assert _heatmaps(model).shape == (2, 133, 64, 48)
    for name, (k, skeleton) in {"aic": (14, "aic14"), "mpii": (16, "mpii16"), "ap10k": (17, "ap10k17")}.items():
        spec = load_vitpose(tiny_wholebody_pth, dataset=name).spec
        assert (spec.num_keypoints, spec.skeleton) == (k, skeleton)


def _official_split(path: Path, split: Path, dataset_index: int) -> None:
    """What ViTPose's tools/model_split.py produces: the expert folded into fc2 and the dataset's head
    moved to keypoint_head; its coco.pth keeps the expert and associate weights, the others drop them."""
    ckpt = torch.load(path, weights_only=True)
    state = dict(ckpt["state_dict"])
    for key in [k for k in state if ".mlp.fc2." in k]:
        state[key] = torch.cat([state[key], state[key.replace("fc2.", f"experts.{dataset_index}.")]])
    if dataset_index:
        prefix = f"associate_keypoint_heads.{dataset_index - 1}."
        for key in [k for k in state if k.startswith(prefix)]:
            state["keypoint_head." + key[len(prefix):]] = state[key]
        state = {k: v for k, v in state.items() if "expert" not in k and not k.startswith("associate")}
    save_mmpose_checkpoint(state, split, ckpt["meta"]["config"])


@pytest.mark.parametrize("dataset,index", [("coco", 0), ("wholebody", 5), ("mpii", 2)])
def test_official_single_dataset_splits(tiny_wholebody_pth: Path, tmp_path: Path, dataset: str, index: int) -> None:
    _official_split(tiny_wholebody_pth, tmp_path / f"{dataset}.pth", index)
    split, spec = load_vitpose(tmp_path / f"{dataset}.pth")
    full, _ = load_vitpose(tiny_wholebody_pth, dataset=dataset)
    assert spec.num_experts == 1 and spec.dataset == dataset
    torch.testing.assert_close(_heatmaps(split), _heatmaps(full), atol=1e-4, rtol=1e-4)
    if dataset == "coco":  # the split's leftover heads do not match its backbone any more
        with pytest.raises(ModelLoadError, match="wholebody"):
            load_vitpose(tmp_path / "coco.pth", dataset="wholebody")


@pytest.mark.parametrize("kwargs", [{}, {"decoder": "simple"}, {"moe": True}])
def test_architecture_inferred_from_weights_alone(tmp_path: Path, kwargs: dict) -> None:
    path = make_tiny_checkpoint(tmp_path / "bare.pth", embed_dim=384, depth=1, heads=12, with_config_meta=False,
                                **kwargs)
    assert "config" not in torch.load(path, weights_only=True)["meta"]
    model, spec = load_vitpose(path)
    arch = model.arch
    assert (arch.embed_dim, arch.depth, arch.num_heads, arch.img_size) == (384, 1, 12, (256, 192))
    assert spec.decoder == kwargs.get("decoder", "classic") and spec.size == "small"
    assert (arch.num_experts, arch.part_features) == ((6, 8) if kwargs.get("moe") else (1, 0))
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert all(torch.equal(model.state_dict()[k], stored[k]) for k in model.state_dict())


def test_hub_id_uses_the_local_snapshot_without_network(tiny_checkpoint, tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    target = tmp_path / "hf" / "usyd-community--vitpose-base-simple"
    target.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (target / name).write_bytes((tiny_checkpoint(fmt="hf", decoder="simple") / name).read_bytes())
    _, spec = load_vitpose("usyd-community/vitpose-base-simple", checkpoints_dir=tmp_path)
    assert spec.decoder == "simple" and spec.source == str(target)


def test_hub_id_offline_says_where_to_put_the_files(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError) as error:
        load_vitpose("usyd-community/vitpose-plus-base", checkpoints_dir=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "hf" / "usyd-community--vitpose-plus-base") in message
    assert "config.json" in message and "model.safetensors" in message and "--checkpoint" in message
    assert not any((tmp_path / "hf").rglob("*.safetensors"))


def test_training_checkpoint_with_numpy_meta_and_optimizer(tiny_pth: Path, tmp_path: Path) -> None:
    """mmcv training checkpoints carry numpy scalars in meta and an optimizer state; both are fine."""
    import numpy as np

    ckpt = torch.load(tiny_pth, weights_only=True)
    ckpt["meta"]["hook_msgs"] = {"best_score": np.float64(0.756), "best_ckpt": "epoch_210.pth"}
    ckpt["optimizer"] = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 5e-4}]}
    torch.save(ckpt, tmp_path / "epoch_210.pth")
    model, spec = load_vitpose(tmp_path / "epoch_210.pth")
    assert spec.weights_hash == load_vitpose(tiny_pth).spec.weights_hash


def test_tiny_cli_writes_loadable_checkpoints(tmp_path: Path) -> None:
    from pose_server.vitpose.tiny import main

    main([str(tmp_path / "cli.pth"), "--moe"])
    main([str(tmp_path / "cli_hf"), "--fmt", "hf", "--decoder", "simple", "--keypoints", "133"])
    assert load_vitpose(tmp_path / "cli.pth", dataset="wholebody").spec.num_keypoints == 133
    spec = load_vitpose(tmp_path / "cli_hf").spec
    assert (spec.decoder, spec.skeleton) == ("simple", "wholebody133")
