"""Convert ViTPose weights between the official mmpose naming (ours) and Hugging Face transformers.

mmpose: `backbone.blocks.0.attn.qkv.weight` (fused q/k/v), `keypoint_head.deconv_layers.0.weight`,
`keypoint_head.final_layer.weight`, ViTPose+ extra heads in `associate_keypoint_heads.N`.
transformers (`VitPoseForPoseEstimation`): `backbone.encoder.layer.0.attention.attention.query.weight`,
`head.deconv1.weight`, `head.conv.weight`, a single head.

Run as `python -m pose_server.vitpose.convert SRC DST` to turn an HF folder into an mmpose .pth or back.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import torch

from .configs import ModelLoadError
from .model import ViTPoseArch

StateDict = dict[str, torch.Tensor]

# mmpose key <-> HF key, for every 1:1 renaming ({n} is one dotted name part); the fused qkv is handled apart.
_RENAMES = [
    ("backbone.patch_embed.proj.{0}", "backbone.embeddings.patch_embeddings.projection.{0}"),
    ("backbone.pos_embed", "backbone.embeddings.position_embeddings"),
    ("backbone.blocks.{0}.norm1.{1}", "backbone.encoder.layer.{0}.layernorm_before.{1}"),
    ("backbone.blocks.{0}.norm2.{1}", "backbone.encoder.layer.{0}.layernorm_after.{1}"),
    ("backbone.blocks.{0}.attn.proj.{1}", "backbone.encoder.layer.{0}.attention.output.dense.{1}"),
    ("backbone.blocks.{0}.mlp.fc1.{1}", "backbone.encoder.layer.{0}.mlp.fc1.{1}"),
    ("backbone.blocks.{0}.mlp.fc2.{1}", "backbone.encoder.layer.{0}.mlp.fc2.{1}"),
    ("backbone.blocks.{0}.mlp.experts.{1}.{2}", "backbone.encoder.layer.{0}.mlp.experts.{1}.{2}"),
    ("backbone.last_norm.{0}", "backbone.layernorm.{0}"),
    ("keypoint_head.deconv_layers.0.{0}", "head.deconv1.{0}"),
    ("keypoint_head.deconv_layers.1.{0}", "head.batchnorm1.{0}"),
    ("keypoint_head.deconv_layers.3.{0}", "head.deconv2.{0}"),
    ("keypoint_head.deconv_layers.4.{0}", "head.batchnorm2.{0}"),
    ("keypoint_head.final_layer.{0}", "head.conv.{0}"),
]
_QKV_MM = re.compile(r"backbone\.blocks\.(\d+)\.attn\.qkv\.(\w+)")
_QKV_HF = re.compile(r"backbone\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(\w+)")


def _compile(template: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{\d\\\}", "([^.]+)", re.escape(template)))


def _rename(key: str, table: list[tuple[re.Pattern, str]]) -> str | None:
    for pattern, template in table:
        match = pattern.fullmatch(key)
        if match:
            return template.format(*match.groups())
    return None


_MM_TO_HF = [(_compile(mm), hf) for mm, hf in _RENAMES]
_HF_TO_MM = [(_compile(hf), mm) for mm, hf in _RENAMES]


def select_head(state: StateDict, head_index: int) -> StateDict:
    """Keep one head of a multi-head (ViTPose+) state dict, renamed to `keypoint_head`."""
    if head_index == 0:
        prefix = "keypoint_head."
    else:
        prefix = f"associate_keypoint_heads.{head_index - 1}."
    if not any(k.startswith(prefix) for k in state):
        raise ModelLoadError(f"the checkpoint has no head {prefix.rstrip('.')} (head index {head_index})")
    out = {k: v for k, v in state.items() if not k.startswith(("keypoint_head.", "associate_keypoint_heads."))}
    out.update({"keypoint_head." + k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    return out


def mmpose_to_hf(state: StateDict, head_index: int = 0) -> StateDict:
    """mmpose state dict -> `VitPoseForPoseEstimation` state dict (transformers keeps a single head)."""
    state = select_head(state, head_index)
    out: StateDict = {}
    for key, value in state.items():
        qkv = _QKV_MM.fullmatch(key)
        if qkv:
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0), strict=True):
                out[f"backbone.encoder.layer.{qkv[1]}.attention.attention.{name}.{qkv[2]}"] = part.clone()
            continue
        new_key = _rename(key, _MM_TO_HF)
        if new_key is None:
            raise ModelLoadError(f"no Hugging Face name for mmpose weight {key!r}")
        out[new_key] = value
    return out


def hf_to_mmpose(state: StateDict) -> StateDict:
    """`VitPoseForPoseEstimation` state dict -> mmpose state dict (one `keypoint_head`)."""
    out: StateDict = {}
    qkv_parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        qkv = _QKV_HF.fullmatch(key)
        if qkv:
            qkv_parts.setdefault((qkv[1], qkv[3]), {})[qkv[2]] = value
            continue
        new_key = _rename(key, _HF_TO_MM)
        if new_key is None:
            raise ModelLoadError(f"no mmpose name for Hugging Face weight {key!r}")
        out[new_key] = value
    for (layer, kind), parts in qkv_parts.items():
        if set(parts) != {"query", "key", "value"}:
            raise ModelLoadError(f"layer {layer}: query/key/value {kind} incomplete ({sorted(parts)})")
        out[f"backbone.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return out


def merge_experts(state: StateDict, arch: ViTPoseArch, expert: int) -> tuple[StateDict, ViTPoseArch]:
    """Fold one ViTPose+ expert into fc2, giving a plain ViT (what the official single-dataset split does)."""
    if arch.num_experts <= 1:
        return state, arch
    out = {k: v for k, v in state.items() if ".mlp.experts." not in k}
    for layer in range(arch.depth):
        for kind in ("weight", "bias"):
            fc2 = f"backbone.blocks.{layer}.mlp.fc2.{kind}"
            out[fc2] = torch.cat([state[fc2], state[f"backbone.blocks.{layer}.mlp.experts.{expert}.{kind}"]])
    return out, ViTPoseArch(**{**arch.to_dict(), "num_experts": 1, "part_features": 0})


def hf_config_dict(arch: ViTPoseArch) -> dict[str, Any]:
    """Keyword arguments of `transformers.VitPoseConfig` for an architecture."""
    if arch.patch_padding != 2:
        raise ModelLoadError("transformers' ViTPose has a fixed patch padding of 2")
    if arch.decoder == "classic" and arch.deconv_channels != 256:
        raise ModelLoadError("transformers' classic ViTPose decoder has a fixed width of 256")
    backbone = dict(
        image_size=list(arch.img_size),
        patch_size=[arch.patch_size, arch.patch_size],
        hidden_size=arch.embed_dim,
        num_hidden_layers=arch.depth,
        num_attention_heads=arch.num_heads,
        mlp_ratio=int(arch.mlp_ratio),
        num_experts=arch.num_experts,
        part_features=arch.part_features if arch.num_experts > 1 else 256,
        layer_norm_eps=arch.norm_eps,
        qkv_bias=arch.qkv_bias,
        out_indices=[arch.depth],
    )
    return dict(backbone=backbone, use_simple_decoder=arch.decoder == "simple", scale_factor=arch.upsample,
                num_labels=arch.num_keypoints)


def hf_config(arch: ViTPoseArch):  # -> transformers.VitPoseConfig (imported lazily: transformers is slow to import)
    """A `transformers.VitPoseConfig` for an architecture."""
    from transformers import VitPoseBackboneConfig, VitPoseConfig

    kwargs = hf_config_dict(arch)
    backbone = VitPoseBackboneConfig(**kwargs.pop("backbone"))
    return VitPoseConfig(backbone_config=backbone, **kwargs)


def arch_from_hf_config(config: dict[str, Any], source: str = "config.json") -> ViTPoseArch:
    """Architecture from a Hugging Face `config.json` dict (read as JSON, transformers not needed)."""
    if config.get("model_type") != "vitpose":
        raise ModelLoadError(f"{source} is not a ViTPose config (model_type={config.get('model_type')!r})")
    backbone = config.get("backbone_config") or {}
    depth = int(backbone.get("num_hidden_layers", 12))
    out_indices = backbone.get("out_indices")
    if out_indices and list(out_indices)[-1] not in (depth, -1):
        raise ModelLoadError(f"{source}: heads on intermediate layers (out_indices={out_indices}) are not supported")
    labels = config.get("id2label") or {}
    num_keypoints = int(config.get("num_labels", len(labels) or 17))
    patch = backbone.get("patch_size", 16)
    num_experts = int(backbone.get("num_experts", 1))
    return ViTPoseArch(
        embed_dim=int(backbone.get("hidden_size", 768)),
        depth=depth,
        num_heads=int(backbone.get("num_attention_heads", 12)),
        mlp_ratio=float(backbone.get("mlp_ratio", 4)),
        qkv_bias=bool(backbone.get("qkv_bias", True)),
        # transformers' own default is 1e-12; the hub configs store the value the weights were trained with.
        norm_eps=float(backbone.get("layer_norm_eps", 1e-12)),
        img_size=tuple(backbone.get("image_size", (256, 192))),
        patch_size=int(patch[0] if isinstance(patch, list | tuple) else patch),
        num_experts=num_experts,
        part_features=int(backbone.get("part_features", 256)) if num_experts > 1 else 0,
        decoder="simple" if config.get("use_simple_decoder", True) else "classic",
        num_keypoints=num_keypoints,
        upsample=int(config.get("scale_factor", 4)),
    )


def _main(argv: list[str] | None = None) -> None:
    from .loading import load_vitpose, save_hf, save_mmpose

    parser = argparse.ArgumentParser(description="Convert a ViTPose checkpoint: mmpose .pth <-> HF folder")
    parser.add_argument("src", help=".pth, HF folder, hub id or configs/*.json")
    parser.add_argument("dst", help="a .pth path (mmpose format) or a folder (HF format)")
    parser.add_argument("--config", help="official .py config or configs/*.json describing src")
    parser.add_argument("--dataset", help="ViTPose+ head to keep (coco, aic, mpii, ap10k, apt36k, wholebody)")
    args = parser.parse_args(argv)
    loaded = load_vitpose(args.src, config=args.config, dataset=args.dataset)
    dst = Path(args.dst)
    written = save_mmpose(loaded, dst) if dst.suffix in (".pth", ".pt") else save_hf(loaded, dst)
    print(json.dumps({"written": str(written), "spec": loaded.spec.to_dict()}, indent=2))


if __name__ == "__main__":
    _main()
