"""Training of the temporal lifter (``temporal.py``) on mocap through virtual cameras (``temporal_data.py``).

The network is VideoPose3D's TemporalModel made causal: every convolution sees only the current and past frames, so
a sequence of T frames gives T - receptive_field + 1 outputs in one pass (dense training). Loss: MPJPE (mean joint
distance, metres for a 1.75 m body) plus 0.05 x (``contact_weight``) the contacts' binary cross-entropy (optionally
plus a velocity term, ``velocity``). AdamW with a one-cycle schedule.
``init`` continues from exported weights (``load_exported``): the folded batch norms are unfolded with statistics
measured on training batches, so the network computes exactly what the file does before its first step.
Needs PyTorch (installed with the server); ``scripts/train_temporal_lifter.py`` is the command line.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pose_server.lift.skeleton3d import LIMB_SEGMENTS
from pose_server.lift.temporal import FEATURES
from pose_server.lift.temporal_data import ClipBank, sample_batch

CONTACT_WEIGHT = 0.05  # the contacts' cross-entropy beside the MPJPE (m) in the loss: every shipped run's
_PARENT, _CHILD = (list(ends) for ends in zip(*LIMB_SEGMENTS, strict=True))

__all__ = ["TemporalNet", "train", "export", "evaluate", "load_exported"]


class TemporalNet(nn.Module):
    """Causal dilated TCN: (B, FEATURES, T) -> joints (B, T', 17, 3) and contact logits (B, T', 2)."""

    def __init__(self, channels: int = 256, blocks: int = 3, dropout: float = 0.1,
                 dilations: Sequence[int] | None = None) -> None:
        super().__init__()
        self.dilations = list(dilations) if dilations else [3 ** (i + 1) for i in range(blocks)]
        self.expand = nn.Conv1d(FEATURES, channels, 3, bias=False)
        self.expand_bn = nn.BatchNorm1d(channels, momentum=0.1)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d, bias=False) for d in self.dilations)
        self.conv_bns = nn.ModuleList(nn.BatchNorm1d(channels, momentum=0.1) for _ in self.dilations)
        self.points = nn.ModuleList(nn.Conv1d(channels, channels, 1, bias=False) for _ in self.dilations)
        self.point_bns = nn.ModuleList(nn.BatchNorm1d(channels, momentum=0.1) for _ in self.dilations)
        self.drop = nn.Dropout(dropout)
        self.joints = nn.Conv1d(channels, 51, 1)
        self.contact = nn.Conv1d(channels, 2, 1)

    @property
    def receptive_field(self) -> int:
        return 3 + sum(2 * d for d in self.dilations)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, FEATURES, T) -> the last block's output (B, channels, T'), what both heads read."""
        x = self.drop(torch.relu(self.expand_bn(self.expand(x))))
        for conv, bn, point, pbn in zip(self.convs, self.conv_bns, self.points, self.point_bns, strict=True):
            res = x[:, :, 2 * conv.dilation[0]:]
            x = self.drop(torch.relu(bn(conv(x))))
            x = res + self.drop(torch.relu(pbn(point(x))))
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(x)
        joints = self.joints(x).permute(0, 2, 1)
        return joints.reshape(*joints.shape[:2], 17, 3), self.contact(x).permute(0, 2, 1)


def bone_error(joints: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the 8 limb bones' lengths (m), predicted against true (..., 17, 3): a network
    that hedges between two depths of a limb shortens it; this term asks it to commit to one."""
    length = lambda j: (j[..., _CHILD, :] - j[..., _PARENT, :]).norm(dim=-1)  # noqa: E731
    return (length(joints) - length(want)).abs().mean()


def _loss(net: TemporalNet, batch, rf: int, velocity: float = 0.0, head_only: bool = False,
          contact_weight: float = CONTACT_WEIGHT, bones: float = 0.0, teacher: TemporalNet | None = None,
          distill: float = 0.0) -> tuple[torch.Tensor, float, float]:
    x = torch.from_numpy(batch.features).permute(0, 2, 1)
    if head_only:  # the trunk and the joints head as they are (no graph through them): only the contact head learns
        with torch.no_grad():
            feats = net.features(x)
            joints = net.joints(feats).permute(0, 2, 1).reshape(x.shape[0], -1, 17, 3)
        logits = net.contact(feats).permute(0, 2, 1)
    else:
        joints, logits = net(x)
    want = torch.from_numpy(batch.joints[:, rf - 1:])
    mpjpe = (joints - want).norm(dim=-1).mean()
    c = torch.from_numpy(batch.contacts[:, rf - 1:])
    known = ~torch.isnan(c)
    bce = nn.functional.binary_cross_entropy_with_logits(logits[known], c[known]) if known.any() else mpjpe * 0
    loss = mpjpe + contact_weight * bce
    if velocity > 0.0:  # the joints' frame-to-frame motion against the mocap's (dense outputs are consecutive frames)
        loss = loss + velocity * (joints.diff(dim=1) - want.diff(dim=1)).norm(dim=-1).mean()
    if bones > 0.0:
        loss = loss + bones * bone_error(joints, want)
    if teacher is not None and distill > 0.0:  # the contacts kept near the starting network's own (train's doc)
        with torch.no_grad():
            taught = torch.sigmoid(teacher(x)[1])
        loss = loss + distill * nn.functional.binary_cross_entropy_with_logits(logits, taught)
    return loss, float(mpjpe.detach()), float(bce.detach())


def train(bank: ClipBank, steps: int, batch: int = 32, outputs: int = 32, channels: int = 256, blocks: int = 3,
          lr: float = 1e-3, seed: int = 0, progress: Callable[[int, float, float], None] | None = None,
          init: str | Path | None = None, proportions: float = 0.8, framing: bool = True,
          dilations: Sequence[int] | None = None, velocity: float = 0.0, hold: str = "frozen",
          contact_lead: float = 0.0, head_only: bool = False, hips: float = 0.0,
          contact_weight: float = CONTACT_WEIGHT, bones: float = 0.0, distill_contacts: float = 0.0) -> TemporalNet:
    """Train on ``bank`` (from the exported weights ``init`` if given, else from scratch); ``progress(step,
    mpjpe_m, contact_bce)`` every step; ``proportions``: the share of sequences drawn with other proportions,
    ``framing``: cameras stepped back to keep the performer in view (both ``temporal_data.sample_batch``);
    ``dilations``: the blocks' (default 3, 9, 27, ... for ``blocks``); weights ``init`` with fewer blocks grow
    into them (``load_exported``); ``velocity``: the weight of a velocity term in the loss (the mean distance
    between the predicted and the true joint motion from frame to frame; 0: none); ``hold``: how dropped keypoints
    are held in the training data, ``contact_lead``: contact labels taken that many frames later (both
    ``sample_batch``); ``head_only``: train only the contact head of ``init``'s network, the rest frozen in eval mode
    (its batch norms and dropout as exported: the joints come out as the file computes them); ``hips``: the share
    of sequences with their hip joints moved (``sample_batch``; its own random stream); ``contact_weight``: the
    contacts' cross-entropy's weight in the loss; ``bones``: the weight of ``bone_error`` in it (0: none, as every
    shipped run); ``distill_contacts``: the weight of a cross-entropy of the contact logits against ``init``'s own
    probabilities on the same batch (a frozen copy of the starting network): every fine-tune without it lost 2-3
    points of the held-out subjects' contact recall, with it (0.2) 0.2-0.3 (docs/lifting.md). Deterministic for a
    seed."""
    rng = np.random.default_rng(seed)
    hips_rng = np.random.default_rng([seed, 1])
    torch.manual_seed(seed)
    net = TemporalNet(channels, blocks, dilations=dilations)
    rf = net.receptive_field
    if init is not None:
        load_exported(net, init, bank, rng, batch, rf + outputs - 1, proportions=proportions, framing=framing,
                      hold=hold)
    if (head_only or distill_contacts) and init is None:
        raise ValueError("head_only and distill_contacts start from existing weights: pass init")
    teacher = copy.deepcopy(net).eval().requires_grad_(False) if distill_contacts else None
    opt = torch.optim.AdamW(net.contact.parameters() if head_only else net.parameters(), lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    net.train(not head_only)
    for step in range(steps):
        seqs = sample_batch(bank, batch, rf + outputs - 1, rng, proportions, framing, hold, contact_lead, hips,
                            hips_rng)
        loss, mpjpe, bce = _loss(net, seqs, rf, velocity, head_only, contact_weight, bones, teacher, distill_contacts)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress is not None:
            progress(step, mpjpe, bce)
    return net.eval()


@torch.no_grad()
def evaluate(net: TemporalNet, bank: ClipBank, batches: int = 20, seed: int = 1) -> tuple[float, float]:
    """Mean MPJPE (m) and contact accuracy on ``batches`` fixed random batches of ``bank``."""
    rng = np.random.default_rng(seed)
    rf = net.receptive_field
    net.eval()
    errs, accs = [], []
    for _ in range(batches):
        b = sample_batch(bank, 32, rf + 31, rng)
        joints, logits = net(torch.from_numpy(b.features).permute(0, 2, 1))
        errs.append(float((joints - torch.from_numpy(b.joints[:, rf - 1:])).norm(dim=-1).mean()))
        c = b.contacts[:, rf - 1:]
        known = ~np.isnan(c)
        accs.append(float(((logits.numpy() > 0) == (c > 0.5))[known].mean()))
    return float(np.mean(errs)), float(np.mean(accs))


@torch.no_grad()
def load_exported(net: TemporalNet, path: str | Path, bank: ClipBank, rng: np.random.Generator, batch: int = 32,
                  frames: int = 128, batches: int = 8, proportions: float = 0.8, framing: bool = True,
                  hold: str = "frozen"
                  ) -> TemporalNet:
    """Load weights written by ``export`` into ``net`` (same channels and blocks) so that it computes the same.

    Export folds each batch norm into its convolution (weights W, bias b). Training normalises with the batch's
    statistics, so the convolution gets W and its batch norm the mean m and variance v of W x measured on
    ``batches`` training batches of ``bank``: gain sqrt(v + eps), shift m + b, running statistics m and v. In
    eval mode that is exactly W x + b; in training mode nearly so. A file with fewer blocks than ``net`` (the
    same dilations first) grows: the new blocks add their branch through a point batch norm of gain 0.01, so the
    network computes nearly what the file does and the new blocks still learn (a gain of 0 would stop their
    gradients at the ReLU)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    pairs = [(net.expand, net.expand_bn, "conv0")]
    for i, (conv, bn, point, pbn) in enumerate(zip(net.convs, net.conv_bns, net.points, net.point_bns, strict=True)):
        pairs += [(conv, bn, f"conv{i + 1}"), (point, pbn, f"point{i + 1}")]
    have = [int(arrays[f"conv{i + 1}.dilation"]) for i in range(len(net.convs)) if f"conv{i + 1}.w" in arrays]
    if f"conv{len(net.convs) + 1}.w" in arrays or have != net.dilations[:len(have)] \
            or any(f"{name}.b" not in arrays for *_, name in pairs[:1 + 2 * len(have)]) \
            or arrays["conv0.b"].shape != (net.expand.out_channels,):
        raise ValueError(f"{path}: its layers do not match a TemporalNet of {net.expand.out_channels} channels and "
                         f"dilations {net.dilations}; pass the file's --channels and --blocks (or --dilations)")
    new = [(m, bn, name) for m, bn, name in pairs if f"{name}.w" not in arrays]
    pairs = [(m, bn, name) for m, bn, name in pairs if f"{name}.w" in arrays]
    for pbn in net.point_bns[len(have):]:  # a new block adds nothing while its statistics are measured
        pbn.weight.zero_()
        pbn.bias.zero_()
    for conv, bn, name in pairs:  # first as W x + b: running mean 0, variance 1 - eps, gain 1, shift b
        k, cin, cout = conv.kernel_size[0], conv.in_channels, conv.out_channels
        conv.weight.copy_(torch.from_numpy(arrays[f"{name}.w"].reshape(k, cin, cout)).permute(2, 1, 0))
        bn.running_mean.zero_()
        bn.running_var.fill_(1 - bn.eps)
        bn.weight.fill_(1)
        bn.bias.copy_(torch.from_numpy(arrays[f"{name}.b"]))
    net.joints.weight.copy_(torch.from_numpy(arrays["joints.w"]).T[:, :, None])
    net.joints.bias.copy_(torch.from_numpy(arrays["joints.b"]))
    net.contact.weight.copy_(torch.from_numpy(arrays["contact.w"]).T[:, :, None])
    net.contact.bias.copy_(torch.from_numpy(arrays["contact.b"]))
    net.eval()
    x = [torch.from_numpy(sample_batch(bank, batch, frames, rng, proportions, framing, hold).features).permute(0, 2, 1)
         for _ in range(batches)]
    # a new point convolution's input depends on its block's batch norm: measured in a second pass, after it
    first = pairs + [p for p in new if p[2].startswith("conv")]
    for group in (first, [p for p in new if p[2].startswith("point")]):
        stats = _measure(net, x, group) if group else {}
        for _, bn, name in group:
            mean, var = stats[name]
            if f"{name}.w" in arrays:
                bn.bias.copy_(bn.bias + mean)
                bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.running_mean.copy_(mean)  # a new batch norm starts with the statistics it will see
            bn.running_var.copy_(var)
    for pbn in net.point_bns[len(have):]:
        pbn.weight.fill_(0.01)
    return net


def _measure(net: TemporalNet, x: list[torch.Tensor], layers: list[tuple[nn.Conv1d, nn.BatchNorm1d, str]]
             ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance of the outputs of ``layers``' convolutions on the batches ``x``."""
    outs: dict[str, list[torch.Tensor]] = {name: [] for *_, name in layers}
    hooks = [conv.register_forward_hook(lambda _m, _i, y, name=name: outs[name].append(y)) for conv, _, name in layers]
    for batch in x:
        net(batch)
    for h in hooks:
        h.remove()
    return {name: _stats(outs[name]) for name in outs}


def _stats(outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and variance of convolution outputs (B, C, T) over batches and frames."""
    y = torch.cat([o.permute(0, 2, 1).reshape(-1, o.shape[1]) for o in outputs]).double()
    return y.mean(0), y.var(0, unbiased=False)


def _fold(conv: nn.Conv1d, bn: nn.BatchNorm1d) -> tuple[np.ndarray, np.ndarray]:
    """Conv (no bias) + eval batch norm -> (k*Cin, Cout) weights for [x(t-2d), x(t-d), x(t)] and a bias."""
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    w = conv.weight.detach() * scale[:, None, None]  # (Cout, Cin, k)
    b = (bn.bias - bn.running_mean * scale).detach()
    return w.permute(2, 1, 0).reshape(-1, w.shape[0]).numpy(), b.numpy()


def export(net: TemporalNet, path: str | Path, info: str = "", head_of: str | Path | None = None) -> Path:
    """Write the numpy model (``TemporalLifterModel.load`` reads it), batch norm folded, float32. ``head_of``: the
    file whose every array but the contact head's is written instead, bit for bit (after a ``head_only`` training,
    folding the batch norms back would move the joints by float rounding)."""
    net = net.eval()
    arrays: dict[str, np.ndarray] = {}
    arrays["conv0.w"], arrays["conv0.b"] = _fold(net.expand, net.expand_bn)
    arrays["conv0.dilation"] = np.array(1)
    for i, (conv, bn, point, pbn) in enumerate(zip(net.convs, net.conv_bns, net.points, net.point_bns, strict=True)):
        arrays[f"conv{i + 1}.w"], arrays[f"conv{i + 1}.b"] = _fold(conv, bn)
        arrays[f"conv{i + 1}.dilation"] = np.array(conv.dilation[0])
        arrays[f"point{i + 1}.w"], arrays[f"point{i + 1}.b"] = _fold(point, pbn)
    arrays["joints.w"] = net.joints.weight.detach()[:, :, 0].T.numpy()
    arrays["joints.b"] = net.joints.bias.detach().numpy()
    arrays["contact.w"] = net.contact.weight.detach()[:, :, 0].T.numpy()
    arrays["contact.b"] = net.contact.bias.detach().numpy()
    if head_of is not None:
        with np.load(head_of, allow_pickle=False) as data:
            kept = {k: data[k] for k in data.files if k != "info" and not k.startswith("contact.")}
        if kept.keys() != arrays.keys() - {"contact.w", "contact.b"}:
            raise ValueError(f"{head_of}: its layers are not this network's")
        arrays |= kept
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in arrays.items()},
                        info=np.array(info))
    return path
