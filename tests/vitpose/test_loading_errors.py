"""Every way loading can fail ends in a ModelLoadError that says what is wrong and what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from pose_server.vitpose import ModelLoadError, load_vitpose
from pose_server.vitpose.configs import python_config_text
from pose_server.vitpose.tiny import tiny_arch


def test_missing_file_points_to_checkpoints_and_hub(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found") as error:
        load_vitpose(tmp_path / "vitpose_small.pth", checkpoints_dir=tmp_path)
    assert str(tmp_path) in str(error.value) and "usyd-community/" in str(error.value)


def test_truncated_file_is_not_a_checkpoint(tiny_pth: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.pth"
    broken.write_bytes(tiny_pth.read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="not a readable PyTorch checkpoint"):
        load_vitpose(broken)


def test_other_model_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1), "fc.bias": torch.zeros(1)}}, path)
    with pytest.raises(ModelLoadError, match="does not look like a ViTPose checkpoint.*conv1.weight"):
        load_vitpose(path)


def test_config_that_does_not_fit_names_the_first_keys(tiny_pth: Path, tmp_path: Path) -> None:
    config = tmp_path / "deeper.py"
    config.write_text(python_config_text(tiny_arch(depth=3)))
    with pytest.raises(ModelLoadError, match=r"missing: backbone\.blocks\.2\.") as error:
        load_vitpose(tiny_pth, config=config)
    assert str(config) in str(error.value)
    wider = tmp_path / "wider.py"
    wider.write_text(python_config_text(tiny_arch(embed_dim=64)))
    with pytest.raises(ModelLoadError, match="wrong shape"):
        load_vitpose(tiny_pth, config=wider)


def test_dataset_choices(tiny_pth: Path, tiny_checkpoint) -> None:
    with pytest.raises(ModelLoadError, match="has 133 keypoints but the checkpoint's head has 17"):
        load_vitpose(tiny_pth, dataset="wholebody")
    with pytest.raises(ModelLoadError, match="unknown dataset 'crowdpose'.*wholebody"):
        load_vitpose(tiny_pth, dataset="crowdpose")
    with pytest.raises(ModelLoadError, match="keeps only its first head"):
        load_vitpose(tiny_checkpoint(fmt="hf", moe=True), dataset="wholebody")
    assert load_vitpose(tiny_checkpoint(moe=True), dataset=5).spec.dataset == "wholebody"


def test_incomplete_hf_folder(tiny_checkpoint, tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    shutil.copytree(tiny_checkpoint(fmt="hf"), folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="model.safetensors missing"):
        load_vitpose(folder)


def test_config_passed_as_checkpoint(tmp_path: Path) -> None:
    config = tmp_path / "ViTPose_base_coco_256x192.py"
    config.write_text(python_config_text(tiny_arch()))
    with pytest.raises(ModelLoadError, match="is a config file, not weights"):
        load_vitpose(config)


def test_config_without_model(tiny_pth: Path, tmp_path: Path) -> None:
    config = tmp_path / "runtime.py"
    config.write_text("log_level = 'INFO'\n")
    with pytest.raises(ModelLoadError, match="has no `model = dict"):
        load_vitpose(tiny_pth, config=config)


def test_missing_local_path_is_not_mistaken_for_a_hub_id(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ModelLoadError, match="checkpoint checkpoints/vitpose_small not found"):
        load_vitpose("checkpoints/vitpose_small", checkpoints_dir=tmp_path / "checkpoints")


def test_checkpoints_mmcv_and_pytorch_would_load_are_read(tiny_pth: Path, tmp_path: Path) -> None:
    """Files saved by other tools around the same weights: EMA copies beside them (mmcv's EMA hook), a wrapper's
    nested prefix, BatchNorm counters left out, a stray non-tensor entry, numpy arrays in the meta. Each was
    refused ("does not match the model", "no state dict of tensors", or "re-download it if it is truncated")."""
    import numpy as np

    obj = torch.load(tiny_pth, map_location="cpu", weights_only=False)
    sd = obj["state_dict"]
    reference = load_vitpose(tiny_pth).model.state_dict()
    variants = {
        "mmcv_ema": {"state_dict": {**sd, **{"ema_" + k.replace(".", "_"): v.clone() for k, v in sd.items()}}},
        "model_module": {"state_dict": {"model.module." + k: v for k, v in sd.items()}},
        "no_bn_counters": {"state_dict": {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}},
        "stray_entry": {"state_dict": {**sd, "_version": 1}},
        "numpy_meta": {"state_dict": sd, "meta": {**(obj.get("meta") or {}), "CLASSES": np.array(["person"]),
                                                  "flip": np.array([[1, 2]])}},
    }
    for name, content in variants.items():
        path = tmp_path / f"{name}.pth"
        torch.save({"meta": obj.get("meta"), **content}, path)  # (the tiny file's meta holds its config)
        loaded = load_vitpose(path).model.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in reference.items() if "num_batches" not in k), name


def test_a_folder_saved_in_shards_loads_as_one(tiny_checkpoint, tmp_path: Path) -> None:
    """transformers' save_pretrained(max_shard_size=...) writes model-0000i-of-0000n.safetensors and an index; such a
    folder was refused as "model.safetensors missing"."""
    from transformers import VitPoseForPoseEstimation

    single = tiny_checkpoint(fmt="hf")
    sharded = tmp_path / "sharded"
    VitPoseForPoseEstimation.from_pretrained(single).save_pretrained(sharded, max_shard_size="100KB")
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert len(shards) > 1 and not (sharded / "model.safetensors").exists()
    reference = load_vitpose(single).model.state_dict()
    loaded = load_vitpose(sharded).model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in reference.items())
    shards[0].unlink()
    with pytest.raises(ModelLoadError, match=f"names the shard {shards[0].name}, which is missing"):
        load_vitpose(sharded)
