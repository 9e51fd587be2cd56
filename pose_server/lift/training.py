"""Training of the learned depth prior (``learned.py``): mocap clips through random virtual cameras.

Each sample: a random clip (mirrored, retimed and with bone lengths varied when the clips were loaded), a
random time, a random camera (any azimuth, 2.5-8 m away, 0.4-2.2 m high, 45-80 deg field of view), the last
``window`` frames projected to pixels with 0-4 px Gaussian noise, and sometimes a keypoint frozen from some
frame on (what the server's keypoint filter does while it holds a missing point). Target: every joint's depth
relative to the pelvis in the current frame, in the units of ``window_features``. Loss: L1.

Needs PyTorch (installed with the server). ``scripts/train_lifter.py`` is the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pose_server.lift.camera import PinholeCamera
from pose_server.lift.learned import window_features
from pose_server.lift.skeleton3d import J

__all__ = ["DepthNet", "sample_batch", "train", "export"]

IMAGE = (1280, 720)
_LH, _RH = J["l_hip"], J["r_hip"]


class DepthNet(nn.Module):
    """Input layer, residual ReLU blocks with dropout, linear output (the numpy ``DepthPrior`` mirrors it)."""

    def __init__(self, window: int, hidden: int = 256, blocks: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.window = window
        self.inp = nn.Linear(window * 34, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout)) for _ in range(blocks)
        )
        self.out = nn.Linear(hidden, 17)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.inp(x))
        for block in self.blocks:
            x = x + block(x)
        return self.out(x)


def sample_batch(
    clips: Sequence[np.ndarray], n: int, window: int, rng: np.random.Generator, noise_px: float = 4.0,
    freeze_p: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples from ``clips`` (each (F, 17, 3) world joints, Z up) -> features (n, window*34), depths (n, 17)."""
    feats = np.empty((n, window, 17, 2))
    target = np.empty((n, 17))
    focal = np.empty(n)
    depth = np.empty(n)
    for i in range(n):
        clip = clips[rng.integers(len(clips))]
        t = int(rng.integers(len(clip)))
        seq = clip[np.clip(np.arange(t - window + 1, t + 1), 0, None)]  # the clip's start repeats its first frame
        centre = seq[-1, [_LH, _RH]].mean(axis=0)
        look_at = np.array([centre[0], centre[1], rng.uniform(0.7, 1.3)])
        az, dist = rng.uniform(0, 2 * np.pi), rng.uniform(2.5, 8.0)
        pos = look_at + np.array([dist * np.sin(az), -dist * np.cos(az), 0.0])
        pos[2] = rng.uniform(0.4, 2.2)
        cam = PinholeCamera(IMAGE, pos, look_at, hfov_deg=rng.uniform(45, 80))
        pc = cam.to_camera(seq)
        px = cam.focal * pc[..., :2] / pc[..., 2:3]
        px += rng.normal(0.0, rng.uniform(0.0, noise_px), px.shape)
        if rng.random() < freeze_p:
            for k in rng.integers(0, 17, rng.integers(1, 3)):
                f0 = rng.integers(0, window)
                px[f0:, k] = px[f0, k]
        feats[i] = px
        z_pelvis = pc[-1, [_LH, _RH], 2].mean()
        target[i] = pc[-1, :, 2] - z_pelvis
        focal[i], depth[i] = cam.focal, z_pelvis
    x, scale = window_features(feats)
    return x.astype(np.float32), (target * focal[:, None] / (depth * scale)[:, None]).astype(np.float32)


def train(
    clips: Sequence[np.ndarray],
    window: int = 9,
    hidden: int = 256,
    steps: int = 4000,
    batch: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
) -> DepthNet:
    """Train a ``DepthNet`` on ``clips``; ``progress(step, loss)`` is called every step."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = DepthNet(window, hidden)
    opt = torch.optim.AdamW(net.parameters(), lr / 2, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    net.train()
    for step in range(steps):
        x, y = sample_batch(clips, batch, window, rng)
        loss = (net(torch.from_numpy(x)) - torch.from_numpy(y)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(step, float(loss.detach()))
    return net.eval()


def export(nets: Sequence[DepthNet] | DepthNet, path: str | Path, info: str = "") -> Path:
    """Write one network or an ensemble as float16 .npz (what ``DepthPrior.load`` reads)."""
    nets = [nets] if isinstance(nets, DepthNet) else list(nets)
    arrays = {}
    for i, net in enumerate(nets):
        arrays |= {f"m{i}/{k}": v.detach().numpy().astype(np.float16) for k, v in net.state_dict().items()}
        arrays[f"m{i}/window"] = np.array(net.window)
    return _save(arrays, path, info)


def combine(paths: Sequence[str | Path], out: str | Path) -> Path:
    """One ensemble file from prior files trained separately (their networks, in order; their infos joined)."""
    arrays, infos, n = {}, [], 0
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            i = 0
            while f"m{i}/window" in data.files:
                arrays |= {f"m{n}/" + k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"m{i}/")}
                i, n = i + 1, n + 1
            infos.append(str(data["info"]) if "info" in data.files else Path(path).name)
    return _save(arrays, out, " | ".join(infos))


def _save(arrays: dict[str, np.ndarray], path: str | Path, info: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays, info=np.array(info))
    return path
