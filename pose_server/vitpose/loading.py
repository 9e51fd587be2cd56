"""Load ViTPose / ViTPose+ from whatever the user has: an official .pth, a Hugging Face folder or hub id,
one of our `configs/*.json` model files, optionally with an official python config.

    loaded = load_vitpose("checkpoints/vitpose_small.pth")            # everything inferred from the weights
    loaded = load_vitpose("usyd-community/vitpose-plus-base")         # hub id, cached in checkpoints/hf/
    loaded = load_vitpose("vitpose+_base.pth", dataset="wholebody")   # ViTPose+ expert and head of a dataset
    model, spec = loaded                                              # spec.num_keypoints, spec.skeleton, ...
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch

from .configs import (
    DATASETS,
    HEADS_BY_DIM,
    ConfigInfo,
    Dataset,
    ModelLoadError,
    arch_from_python_config,
    dataset_for_keypoints,
    get_dataset,
    read_config,
    size_name,
)
from .convert import arch_from_hf_config, hf_to_mmpose, merge_experts, select_head
from .hub import default_checkpoints_dir, ensure_snapshot, is_hub_id
from .model import ViTPose, ViTPoseArch

StateDict = dict[str, torch.Tensor]
_BLOCK = re.compile(r"backbone\.blocks\.(\d+)\.")
_EXPERT = re.compile(r"backbone\.blocks\.0\.mlp\.experts\.(\d+)\.weight")
_ASSOCIATE = re.compile(r"associate_keypoint_heads\.(\d+)\.final_layer\.weight")


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of the server needs to know about a loaded model."""

    name: str
    num_keypoints: int
    skeleton: str  # "coco17", "wholebody133", "aic14", "mpii16", "ap10k17", ...
    dataset: str  # "coco", "wholebody", ...
    dataset_index: int  # ViTPose+ expert / head index (DATASETS order); -1 for an unknown dataset
    decoder: str  # "classic" | "simple"
    input_size: tuple[int, int]  # (height, width) of the model input, (256, 192)
    heatmap_size: tuple[int, int]  # (height, width) of the output heatmaps, (64, 48)
    size: str  # "small" | "base" | "large" | "huge" | "custom"
    num_experts: int
    weights_hash: str  # sha256 of the loaded weights and architecture: a cache key for exports
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadedModel(NamedTuple):
    """A ViTPose network in eval mode and its spec."""

    model: ViTPose
    spec: ModelSpec


def load_vitpose(
    source: str | Path,
    config: str | Path | None = None,
    dataset: str | int | None = None,
    device: str | torch.device = "cpu",
    checkpoints_dir: str | Path | None = None,
) -> LoadedModel:
    """Load a ViTPose model from `source`:

    - an official mmpose `.pth` (top-level `state_dict`; ViTPose+ files and single-dataset splits too),
    - a Hugging Face folder with `config.json` + `model.safetensors`, or a hub id (`usyd-community/...`)
      downloaded once into `checkpoints/hf/`,
    - one of our JSON model files (`configs/vitpose_s_coco.json`), which names its checkpoint.

    `config` (official `.py` or our `.json`) describes the architecture; without it everything is
    inferred from the weights. `dataset` picks a ViTPose+ expert and head ("coco" by default,
    "wholebody", "aic", "mpii", "ap10k", "apt36k", or the index). Raises `ModelLoadError`.
    """
    explicit = read_config(config) if config is not None else None
    state, hf_arch, file_info, origin = _read_source(source, checkpoints_dir)
    info = explicit or file_info
    if dataset is None and info is not None and info.dataset:
        dataset = info.dataset
    # An HF config.json always describes its weights exactly (including layer_norm_eps): it wins.
    arch, head_counts = _architecture(state, None if hf_arch else info, hf_arch, origin)
    if arch.num_experts == 1 and any(".mlp.experts." in k for k in state):
        # The official split tool folds expert 0 into fc2 for its coco.pth but keeps the other heads:
        # only the first head matches that backbone.
        head_counts = head_counts[:1]
    chosen = _choose_dataset(arch, head_counts, dataset, hint=f"{origin} {info.name if info else ''}")
    head_index = _head_index(chosen, head_counts)
    state = select_head(state, head_index)
    if arch.num_experts == 1:
        # Single-dataset splits of ViTPose+ have the expert merged into fc2 but may keep the expert weights.
        state = {k: v for k, v in state.items() if ".mlp.experts." not in k}
    arch = ViTPoseArch(**{**arch.to_dict(), "num_keypoints": head_counts[head_index]})
    model = ViTPose(arch, dataset_index=chosen.index if arch.num_experts > 1 else 0)
    _load_state(model, state, origin, config)
    model.eval().to(device)
    spec = ModelSpec(
        name=(info.name if info and info.name else Path(origin).stem) or "vitpose",
        num_keypoints=arch.num_keypoints,
        skeleton=chosen.skeleton,
        dataset=chosen.name,
        dataset_index=chosen.index,
        decoder=arch.decoder,
        input_size=arch.img_size,
        heatmap_size=arch.heatmap_size,
        size=size_name(arch.embed_dim),
        num_experts=arch.num_experts,
        weights_hash=weights_hash(model),
        source=str(origin),
    )
    return LoadedModel(model, spec)


def weights_hash(model: ViTPose) -> str:
    """sha256 over the architecture, the expert index and every tensor (name, dtype, shape, bytes).

    It depends only on what the network computes, so the same weights read from a .pth or from an
    HF folder hash the same, and two heads of one ViTPose+ file hash differently."""
    digest = hashlib.sha256(json.dumps([model.arch.to_dict(), model.dataset_index], sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy() if tensor.numel() else b"")
    return digest.hexdigest()


def save_mmpose(loaded: LoadedModel, path: str | Path) -> Path:
    """Write an official-format .pth (a ViTPose+ model is saved as the single-dataset split of its dataset)."""
    from .configs import python_config_text
    from .tiny import save_mmpose_checkpoint

    state, arch = merge_experts(loaded.model.state_dict(), loaded.model.arch, loaded.model.dataset_index)
    return save_mmpose_checkpoint(state, Path(path), python_config_text(arch), dataset=loaded.spec.dataset)


def save_hf(loaded: LoadedModel, path: str | Path) -> Path:
    """Write a transformers folder (config.json + model.safetensors); ViTPose+ is saved as a single-dataset split."""
    from .tiny import save_hf_checkpoint

    state, arch = merge_experts(loaded.model.state_dict(), loaded.model.arch, loaded.model.dataset_index)
    return save_hf_checkpoint(state, arch, Path(path))


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

def _read_source(
    source: str | Path, checkpoints_dir: str | Path | None
) -> tuple[StateDict, ViTPoseArch | None, ConfigInfo | None, str]:
    """(mmpose-named state dict, arch from an HF config if any, config stored in the file if any, path)."""
    path = Path(source)
    if not path.exists():
        if isinstance(source, str) and is_hub_id(source):
            return _read_hf_folder(ensure_snapshot(source, checkpoints_dir))
        where = Path(checkpoints_dir) if checkpoints_dir else default_checkpoints_dir()
        raise ModelLoadError(
            f"checkpoint {source} not found. Put an official ViTPose .pth file in {where}/ and pass its path "
            f"(--checkpoint), or use a hub id such as usyd-community/vitpose-base-simple (see docs/models.md)."
        )
    if path.is_dir():
        return _read_hf_folder(path)
    if path.suffix == ".py":
        raise ModelLoadError(f"{path} is a config file, not weights: pass the .pth as checkpoint and this as --config")
    if path.suffix == ".json":
        return _read_json_source(path, checkpoints_dir)
    if path.suffix == ".safetensors":
        return _read_hf_folder(path.parent) if (path.parent / "config.json").is_file() else (
            _to_mmpose(_load_safetensors(path), path), None, None, str(path))
    state, meta = _load_pth(path)
    meta_info = None
    if isinstance(meta, dict) and isinstance(meta.get("config"), str):
        try:  # mmcv stores the training config's text in the checkpoint's meta
            meta_info = arch_from_python_config(path.with_suffix(".py"), text=meta["config"])
        except (ModelLoadError, TypeError, ValueError):
            meta_info = None
    if meta_info is not None and isinstance(meta.get("dataset"), str):
        meta_info = replace(meta_info, dataset=meta["dataset"])
    return state, None, meta_info, str(path)


def _read_json_source(path: Path, checkpoints_dir: str | Path | None) -> tuple:
    """Either an HF `config.json` (its folder) or one of our model files (its checkpoint)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if isinstance(data, dict) and data.get("model_type") == "vitpose":
        return _read_hf_folder(path.parent)
    info = read_config(path)
    candidates = []
    if info.checkpoint:
        ckpt = Path(info.checkpoint)
        root = Path(checkpoints_dir) if checkpoints_dir else default_checkpoints_dir()
        candidates = [ckpt] if ckpt.is_absolute() else [ckpt, root / ckpt.name, root.parent / ckpt, path.parent / ckpt]
    for candidate in candidates:
        if candidate.exists():
            state, hf_arch, _, origin = _read_source(candidate, checkpoints_dir)
            return state, hf_arch, info, origin
    if info.hub_id:
        state, hf_arch, _, origin = _read_hf_folder(ensure_snapshot(info.hub_id, checkpoints_dir))
        return state, hf_arch, info, origin
    tried = ", ".join(str(c) for c in candidates) or "(the file names no `checkpoint`)"
    raise ModelLoadError(
        f"model file {path} needs its weights: tried {tried}. Put the .pth there or pass --checkpoint PATH "
        f"with --config {path}."
    )


def _numpy_globals() -> list:
    """numpy types that mmcv training checkpoints carry in their meta (e.g. `hook_msgs.best_score`)."""
    import numpy as np

    dtypes = {type(np.dtype(code)) for code in "?bhilqBHILQefdgFDGUS"}
    # and arrays (mmengine's dataset_meta, some hooks'): rebuilt from their bytes, no code run
    return [np.core.multiarray.scalar, np.dtype, *dtypes, np.core.multiarray._reconstruct, np.ndarray]


def _load_pth(path: Path) -> tuple[StateDict, Any]:
    try:
        # weights_only: a .pth is a pickle, and a pickle from the internet must not run code.
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise ModelLoadError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {str(exc)[:200]}). "
            "Expected an official ViTPose .pth (mmpose format, top-level 'state_dict'); "
            "re-download it if it is truncated."
        ) from exc
    meta = obj.get("meta") if isinstance(obj, dict) else None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if isinstance(obj, dict):  # a stray non-tensor entry (a version number) is not a weight: torch ignores it too
        obj = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not isinstance(obj, dict) or not obj:
        raise ModelLoadError(f"{path} holds no state dict of tensors; expected an official ViTPose .pth")
    return _to_mmpose(obj, path), meta


def _load_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{path} is not a readable safetensors file ({exc}); re-download it") from exc


def _read_shards(index_path: Path) -> StateDict:
    """The weights of a folder saved in shards (transformers' save_pretrained with max_shard_size): the index
    names the file of every tensor."""
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"cannot read the shard index {index_path}: {exc}") from exc
    state: StateDict = {}
    for name in sorted(set(weight_map.values())):
        shard = index_path.parent / name
        if not shard.is_file():
            raise ModelLoadError(f"{index_path} names the shard {name}, which is missing; download it again")
        state.update(_load_safetensors(shard))
    return state


def _read_hf_folder(folder: Path) -> tuple[StateDict, ViTPoseArch, None, str]:
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    if not weights_path.is_file() and (folder / "model.safetensors.index.json").is_file():
        weights_path = folder / "model.safetensors.index.json"  # saved in shards
    missing = [p.name for p in (config_path, weights_path) if not p.is_file()]
    if missing:
        raise ModelLoadError(
            f"{folder} is not a Hugging Face ViTPose folder: {' and '.join(missing)} missing. "
            "It needs config.json and model.safetensors (as downloaded from usyd-community/vitpose-*)."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {config_path}: {exc}") from exc
    arch = arch_from_hf_config(config, str(config_path))
    state = _read_shards(weights_path) if weights_path.name.endswith(".index.json") else _load_safetensors(weights_path)
    return _to_mmpose(state, weights_path), arch, None, str(folder)


def _to_mmpose(state: StateDict, path: Path) -> StateDict:
    """Strip wrapper prefixes and convert HF names, so that everything downstream sees mmpose names."""
    # mmcv's EMA hook keeps a copy of every weight as "ema_<name with _ for .>" beside them: not the model's
    state = {k: v for k, v in state.items() if not k.startswith("ema_")} or state
    for _ in range(2):  # "module.", "model.", and the two nested ("model.module.")
        for prefix in ("module.", "model."):
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
    if any(k.startswith("backbone.encoder.") for k in state):
        state = hf_to_mmpose(state)
    if not any(k.startswith("backbone.blocks.") for k in state):
        raise ModelLoadError(
            f"{path} does not look like a ViTPose checkpoint: no 'backbone.blocks.*' weights "
            f"(first keys: {', '.join(list(state)[:5])})"
        )
    return state


# --------------------------------------------------------------------------------------------
# Architecture and dataset
# --------------------------------------------------------------------------------------------

def _architecture(
    state: StateDict, info: ConfigInfo | None, hf_arch: ViTPoseArch | None, origin: str
) -> tuple[ViTPoseArch, tuple[int, ...]]:
    """The architecture (from a config if given, else the weights) and the keypoint count of every head."""
    head_counts = _head_counts(state, origin)
    if info is not None:
        arch = info.arch
        if arch.num_experts > 1 and _experts_merged(state, arch.embed_dim):
            arch = ViTPoseArch(**{**arch.to_dict(), "num_experts": 1, "part_features": 0})
        return arch, head_counts
    if hf_arch is not None:
        return hf_arch, head_counts
    return infer_arch(state, origin), head_counts


def _head_counts(state: StateDict, origin: str) -> tuple[int, ...]:
    if "keypoint_head.final_layer.weight" not in state:
        raise ModelLoadError(f"{origin} has no keypoint head ('keypoint_head.final_layer.weight' missing)")
    counts = [int(state["keypoint_head.final_layer.weight"].shape[0])]
    extra = sorted(int(m[1]) for k in state if (m := _ASSOCIATE.fullmatch(k)))
    counts += [int(state[f"associate_keypoint_heads.{i}.final_layer.weight"].shape[0]) for i in extra]
    return tuple(counts)


def _experts_merged(state: StateDict, embed_dim: int) -> bool:
    """True for the single-dataset splits of ViTPose+: fc2 already has all `embed_dim` outputs."""
    fc2 = state.get("backbone.blocks.0.mlp.fc2.weight")
    return fc2 is not None and fc2.shape[0] == embed_dim


def infer_arch(state: StateDict, origin: str = "checkpoint") -> ViTPoseArch:
    """Architecture from the weights alone (official sizes; other widths need a config)."""
    try:
        pos, proj = state["backbone.pos_embed"], state["backbone.patch_embed.proj.weight"]
        fc1 = state["backbone.blocks.0.mlp.fc1.weight"]
        head = state["keypoint_head.final_layer.weight"]
    except KeyError as exc:
        raise ModelLoadError(f"{origin}: weight {exc} missing; is this a ViTPose checkpoint?") from None
    embed_dim, patch = int(pos.shape[-1]), int(proj.shape[-1])
    if embed_dim not in HEADS_BY_DIM:
        raise ModelLoadError(
            f"{origin}: embedding width {embed_dim} is not an official ViTPose size, so the number of attention "
            "heads cannot be inferred; pass a config (official .py or configs/*.json)."
        )
    rows, cols = _grid(int(pos.shape[1]) - 1, origin)
    experts = sorted(int(m[1]) for k in state if (m := _EXPERT.fullmatch(k)))
    num_experts = len(experts) if experts and not _experts_merged(state, embed_dim) else 1
    part = int(state["backbone.blocks.0.mlp.experts.0.weight"].shape[0]) if num_experts > 1 else 0
    deconv = state.get("keypoint_head.deconv_layers.0.weight")
    return ViTPoseArch(
        embed_dim=embed_dim,
        depth=1 + max(int(m[1]) for k in state if (m := _BLOCK.match(k))),
        num_heads=HEADS_BY_DIM[embed_dim],
        mlp_ratio=fc1.shape[0] / embed_dim,
        qkv_bias="backbone.blocks.0.attn.qkv.bias" in state,
        img_size=(rows * patch, cols * patch),
        patch_size=patch,
        num_experts=num_experts,
        part_features=part,
        decoder="classic" if deconv is not None else "simple",
        num_keypoints=int(head.shape[0]),
        deconv_channels=int(deconv.shape[1]) if deconv is not None else 256,
    )


def _grid(num_tokens: int, origin: str) -> tuple[int, int]:
    """Token grid of a position embedding, assuming the 4:3 portrait crops all ViTPose models use."""
    cols = round((num_tokens * 3 / 4) ** 0.5)
    if cols <= 0 or num_tokens % cols or (num_tokens // cols) * 3 != cols * 4:
        raise ModelLoadError(f"{origin}: {num_tokens} position tokens are not a 4:3 grid; pass a config file")
    return num_tokens // cols, cols


def _choose_dataset(arch: ViTPoseArch, head_counts: tuple[int, ...], dataset: str | int | None, hint: str) -> Dataset:
    multi = arch.num_experts > 1 or len(head_counts) > 1
    if dataset is None:
        first = DATASETS[0]
        if multi and head_counts[0] == first.num_keypoints:
            return first
        return dataset_for_keypoints(head_counts[0], hint)
    chosen = get_dataset(dataset)
    if len(head_counts) > 1:
        if chosen.index >= len(head_counts):
            raise ModelLoadError(
                f"the checkpoint has heads for {len(head_counts)} datasets ({_names(len(head_counts))}); "
                f"{chosen.name!r} is not one of them"
            )
        count = head_counts[_head_index(chosen, head_counts)]
    else:
        count = head_counts[0]
        if arch.num_experts > 1 and chosen.index != 0:
            raise ModelLoadError(
                f"this ViTPose+ checkpoint keeps only its first head ({count} keypoints, as the Hugging Face "
                f"ones do); for {chosen.name!r} use the official ViTPose+ .pth with all heads (docs/models.md)"
            )
    if arch.num_experts > 1 and chosen.index >= arch.num_experts:
        raise ModelLoadError(
            f"the checkpoint has {arch.num_experts} experts; {chosen.name!r} needs expert {chosen.index}"
        )
    if count != chosen.num_keypoints:
        raise ModelLoadError(
            f"dataset {chosen.name!r} has {chosen.num_keypoints} keypoints but the checkpoint's head has {count}; "
            f"leave dataset unset or pick one with {count} keypoints"
        )
    return chosen


def _head_index(chosen: Dataset, head_counts: tuple[int, ...]) -> int:
    """Head of a dataset: its index, or else the only head with its keypoint count (one published ViTPose+
    config has an extra CrowdPose head in the middle, which shifts the later ones)."""
    if len(head_counts) == 1:
        return 0
    if chosen.index < len(head_counts) and head_counts[chosen.index] == chosen.num_keypoints:
        return chosen.index
    same = [i for i, count in enumerate(head_counts) if count == chosen.num_keypoints]
    return same[0] if len(same) == 1 else chosen.index


def _names(n: int) -> str:
    return ", ".join(d.name for d in DATASETS[:n])


def _load_state(model: ViTPose, state: StateDict, origin: str, config: str | Path | None) -> None:
    expected = model.state_dict()
    # BatchNorm's step counter is bookkeeping, not a weight: files saved without it load (torch fills it in)
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape (file vs model)", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
        advice = (f"check that {config} belongs to this checkpoint, or drop the config to infer it from the weights"
                  if config else "is this a ViTPose top-down checkpoint? pass its config file if it is a variant")
        raise ModelLoadError(f"{origin} does not match the model ({'; '.join(parts)}); {advice}")
    # (the model's own values stand in for what the file left out: only num_batches_tracked, above)
    model.load_state_dict({**expected, **{k: v.to(expected[k].dtype) for k, v in state.items()}}, strict=True)
