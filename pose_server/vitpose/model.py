"""ViTPose and ViTPose+ in plain PyTorch.

Module and parameter names follow the official mmpose checkpoints (`backbone.blocks.0.attn.qkv`,
`keypoint_head.deconv_layers.0`, ...) so an official state dict loads without renaming; the
Hugging Face naming is handled in `convert.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ViTPoseArch:
    """Everything needed to build the network (no weights, no dataset names)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    img_size: tuple[int, int] = (256, 192)  # (height, width)
    patch_size: int = 16
    patch_padding: int = 2
    num_experts: int = 1  # > 1: ViTPose+ mixture-of-experts MLPs
    part_features: int = 0  # output width of each expert (ViTPose+ only)
    decoder: str = "classic"  # "classic" (2 deconvs) or "simple" (bilinear x4 + 3x3 conv)
    num_keypoints: int = 17
    deconv_channels: int = 256
    upsample: int = 4  # simple decoder only

    def __post_init__(self) -> None:
        if self.decoder not in ("classic", "simple"):
            raise ValueError(f"decoder must be 'classic' or 'simple', got {self.decoder!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.num_experts > 1 and not 0 < self.part_features < self.embed_dim:
            raise ValueError(f"ViTPose+ needs 0 < part_features < embed_dim, got {self.part_features}")
        object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (rows, cols) that the padded patch convolution produces, 16x12 at 256x192."""
        h, w = self.img_size
        p, pad = self.patch_size, self.patch_padding
        return (h + 2 * pad - p) // p + 1, (w + 2 * pad - p) // p + 1

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """Heatmap (height, width): the token grid upsampled x4 by either decoder."""
        rows, cols = self.grid_size
        return rows * 4, cols * 4

    def to_dict(self) -> dict:
        return asdict(self)


class PatchEmbed(nn.Module):
    """Image to patch tokens with a padded strided convolution."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768, padding: int = 2) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, padding=padding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(x)
        grid = (x.shape[2], x.shape[3])
        return x.flatten(2).transpose(1, 2), grid


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Two-layer GELU MLP."""

    def __init__(self, in_features: int, hidden_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: torch.Tensor, dataset_index: int = 0) -> torch.Tensor:
        # dataset_index is unused: the same call signature as MoEMlp keeps Block simple.
        return self.fc2(self.act(self.fc1(x)))


class MoEMlp(nn.Module):
    """ViTPose+ MLP: shared fc2 for most channels, one expert per dataset for the last `part_features`."""

    def __init__(self, in_features: int, hidden_features: int, num_experts: int, part_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features - part_features)
        self.experts = nn.ModuleList(nn.Linear(hidden_features, part_features) for _ in range(num_experts))

    def forward(self, x: torch.Tensor, dataset_index: int = 0) -> torch.Tensor:
        x = self.act(self.fc1(x))
        # The official model masks and sums every expert per sample; with one dataset per call,
        # running just the selected expert gives the same numbers for a fraction of the work.
        return torch.cat([self.fc2(x), self.experts[dataset_index](x)], dim=-1)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        num_experts: int = 1,
        part_features: int = 0,
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        if num_experts > 1:
            self.mlp: nn.Module = MoEMlp(dim, hidden, num_experts, part_features)
        else:
            self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor, dataset_index: int = 0) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x), dataset_index)
        return x


class ViT(nn.Module):
    """ViTPose backbone: plain ViT returning a (N, C, rows, cols) feature map."""

    def __init__(self, arch: ViTPoseArch) -> None:
        super().__init__()
        rows, cols = arch.grid_size
        self.patch_embed = PatchEmbed(arch.patch_size, 3, arch.embed_dim, arch.patch_padding)
        # One extra slot (the unused class token's) is added to every patch token, as in training.
        self.pos_embed = nn.Parameter(torch.zeros(1, rows * cols + 1, arch.embed_dim))
        self.blocks = nn.ModuleList(
            Block(
                arch.embed_dim,
                arch.num_heads,
                arch.mlp_ratio,
                arch.qkv_bias,
                arch.norm_eps,
                arch.num_experts,
                arch.part_features,
            )
            for _ in range(arch.depth)
        )
        self.last_norm = nn.LayerNorm(arch.embed_dim, eps=arch.norm_eps)

    def forward(self, x: torch.Tensor, dataset_index: int = 0) -> torch.Tensor:
        x, (rows, cols) = self.patch_embed(x)
        x = x + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for block in self.blocks:
            x = block(x, dataset_index)
        x = self.last_norm(x)
        return x.transpose(1, 2).reshape(x.shape[0], -1, rows, cols)


class ClassicDecoder(nn.Module):
    """Two stride-2 deconvolutions (BN + ReLU) and a 1x1 conv to heatmaps."""

    def __init__(self, in_channels: int, num_keypoints: int, channels: int = 256) -> None:
        super().__init__()
        self.deconv_layers = nn.Sequential(
            nn.ConvTranspose2d(in_channels, channels, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(x))


class SimpleDecoder(nn.Module):
    """ReLU, bilinear upsampling and a 3x3 conv to heatmaps."""

    def __init__(self, in_channels: int, num_keypoints: int, upsample: int = 4) -> None:
        super().__init__()
        self.upsample = upsample
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(F.relu(x), scale_factor=self.upsample, mode="bilinear", align_corners=False)
        return self.final_layer(x)


class ViTPose(nn.Module):
    """Top-down pose model: (N, 3, 256, 192) normalised crops -> (N, K, 64, 48) heatmaps."""

    def __init__(self, arch: ViTPoseArch, dataset_index: int = 0) -> None:
        super().__init__()
        # A ViTPose+ network keeps every expert but one head: `dataset_index` picks the expert and the
        # loader builds the head of the same dataset, so forward(x) needs no other input (ONNX friendly).
        if arch.num_experts > 1 and not 0 <= dataset_index < arch.num_experts:
            raise ValueError(f"dataset_index {dataset_index} out of range for {arch.num_experts} experts")
        self.arch = arch
        self.dataset_index = dataset_index if arch.num_experts > 1 else 0
        self.backbone = ViT(arch)
        if arch.decoder == "classic":
            self.keypoint_head: nn.Module = ClassicDecoder(arch.embed_dim, arch.num_keypoints, arch.deconv_channels)
        else:
            self.keypoint_head = SimpleDecoder(arch.embed_dim, arch.num_keypoints, arch.upsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.keypoint_head(self.backbone(x, self.dataset_index))
