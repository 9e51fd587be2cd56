"""Small random-weight ViTPose checkpoints in the real file formats, for tests and demos.

`make_tiny_checkpoint("t.pth")` writes an official-style mmpose file (`state_dict` + `meta`, ViTPose+
files with one head per dataset); `fmt="hf"` writes a folder with `config.json` + `model.safetensors`
through transformers' own `save_pretrained`. CLI: `python -m pose_server.vitpose.tiny OUT [--fmt hf]`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .configs import DATASETS, python_config_text
from .convert import hf_config, mmpose_to_hf
from .model import ClassicDecoder, SimpleDecoder, ViTPose, ViTPoseArch


def randomize_(module: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Fill every weight and statistic with random values of a realistic scale, so that tests comparing
    two implementations exercise all of them (default init leaves norms at 1/0 and pos_embed at 0)."""
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if not tensor.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.ndim == 1 and leaf == "weight":  # LayerNorm / BatchNorm scale
                tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=generator))
            else:
                fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
                std = 0.1 if tensor.ndim == 1 or leaf == "pos_embed" else fan_in**-0.5
                tensor.copy_(std * torch.randn(tensor.shape, generator=generator))
    return module


def tiny_arch(
    decoder: str = "classic",
    num_keypoints: int = 17,
    embed_dim: int = 32,
    depth: int = 2,
    heads: int = 2,
    moe: bool = False,
    num_experts: int = 6,
    part_features: int = 8,
    img_size: tuple[int, int] = (256, 192),
) -> ViTPoseArch:
    """The architecture `make_tiny_checkpoint` builds (for ViTPose+, `num_keypoints` is the COCO head's)."""
    return ViTPoseArch(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=heads,
        img_size=img_size,
        num_experts=num_experts if moe else 1,
        part_features=part_features if moe else 0,
        decoder=decoder,
        num_keypoints=num_keypoints,
    )


def make_tiny_state_dict(
    arch: ViTPoseArch, head_keypoints: tuple[int, ...] | None = None, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random mmpose-format weights: `keypoint_head` plus one `associate_keypoint_heads.N` per extra count."""
    generator = torch.Generator().manual_seed(seed)
    counts = head_keypoints or (arch.num_keypoints,)
    state = dict(randomize_(ViTPose(arch), generator).state_dict())
    for i, k in enumerate(counts[1:]):
        if arch.decoder == "classic":
            head: torch.nn.Module = ClassicDecoder(arch.embed_dim, k, arch.deconv_channels)
        else:
            head = SimpleDecoder(arch.embed_dim, k, arch.upsample)
        for name, value in randomize_(head, generator).state_dict().items():
            state[f"associate_keypoint_heads.{i}.{name}"] = value
    return state


def make_tiny_checkpoint(
    path: str | Path,
    fmt: str = "mmpose",
    decoder: str = "classic",
    num_keypoints: int = 17,
    embed_dim: int = 32,
    depth: int = 2,
    heads: int = 2,
    moe: bool = False,
    num_experts: int = 6,
    part_features: int = 8,
    seed: int = 0,
    with_config_meta: bool = True,
) -> Path:
    """Write a random-weight checkpoint and return its path (a .pth file, or a folder for `fmt="hf"`).

    `moe=True` makes a ViTPose+ model: `num_experts` experts and, in mmpose format, one head per
    dataset in the official order (COCO 17, AIC 14, MPII 16, AP-10K 17, APT-36K 17, whole-body 133;
    the first head has `num_keypoints`). Transformers' format keeps only the first head, as on the hub.
    `with_config_meta=False` leaves the config out of the .pth so that the loader must infer everything
    from the weights (attention heads are then taken from the official width table).
    """
    arch = tiny_arch(decoder, num_keypoints, embed_dim, depth, heads, moe, num_experts, part_features)
    counts = (num_keypoints,)
    if moe:
        counts = (num_keypoints,) + tuple(d.num_keypoints for d in DATASETS[1:num_experts])
    state = make_tiny_state_dict(arch, counts, seed)
    path = Path(path)
    if fmt == "mmpose":
        return save_mmpose_checkpoint(state, path, python_config_text(arch, counts) if with_config_meta else None)
    if fmt == "hf":
        return save_hf_checkpoint(state, arch, path)
    raise ValueError(f"fmt must be 'mmpose' or 'hf', got {fmt!r}")


def save_mmpose_checkpoint(
    state: dict[str, torch.Tensor], path: Path, config_text: str | None = None, dataset: str | None = None
) -> Path:
    """Save like mmcv's `save_checkpoint`: `{"state_dict": ..., "meta": {...}}` (config text in meta)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: dict = {"mmpose_version": "0.24.0", "written_by": "pose_server.vitpose"}
    if config_text is not None:
        meta["config"] = config_text
    if dataset is not None:
        meta["dataset"] = dataset
    torch.save({"state_dict": {k: v.contiguous() for k, v in state.items()}, "meta": meta}, path)
    return path


def save_hf_checkpoint(state: dict[str, torch.Tensor], arch: ViTPoseArch, path: Path, head_index: int = 0) -> Path:
    """Save through transformers (`VitPoseForPoseEstimation.save_pretrained`): config.json + model.safetensors."""
    from transformers import VitPoseForPoseEstimation

    head_arch = arch
    if head_index:
        head_keypoints = state[f"associate_keypoint_heads.{head_index - 1}.final_layer.weight"].shape[0]
        head_arch = ViTPoseArch(**{**arch.to_dict(), "num_keypoints": int(head_keypoints)})
    model = VitPoseForPoseEstimation(hf_config(head_arch))
    model.load_state_dict(mmpose_to_hf(state, head_index), strict=True)
    model.save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a small random-weight ViTPose checkpoint")
    parser.add_argument("out", help="output .pth (mmpose) or folder (hf)")
    parser.add_argument("--fmt", choices=("mmpose", "hf"), default="mmpose")
    parser.add_argument("--decoder", choices=("classic", "simple"), default="classic")
    parser.add_argument("--keypoints", type=int, default=17, help="keypoints of the (first) head")
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--moe", action="store_true", help="ViTPose+: experts and one head per dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = make_tiny_checkpoint(
        args.out, fmt=args.fmt, decoder=args.decoder, num_keypoints=args.keypoints, embed_dim=args.embed_dim,
        depth=args.depth, heads=args.heads, moe=args.moe, seed=args.seed,
    )
    print(out)


if __name__ == "__main__":
    main()
