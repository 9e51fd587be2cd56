"""Train the learned depth prior of the lifter on DeepMimic motion capture (pybullet_data's humanoid3d clips).

    .venv/bin/pip install pybullet==3.2.7        # only for its data: 15 mocap clips (walk, run, dance, ...)
    .venv/bin/python scripts/train_lifter.py [--members 9:0 9:0:15] [--out FILE.npz]
    .venv/bin/python scripts/train_lifter.py --combine a.npz b.npz --out ensemble.npz

Each member (window:seed[:perturb]) is one network seeing that many frames; together they form the ensemble
the lifter reads. Every clip is loaded at three speeds, twice with bone lengths varied by +-10 % (four times,
with every ball joint turned by about `perturb` degrees, for perturbed members), and mirrored; samples come
from random virtual cameras (pose_server/lift/training.py). About 5 minutes per member on 2 CPU cores. The
shipped resources/models/depth_prior.npz is the default: two networks seeing 9 frames, one trained on the
plain clips and one on clips perturbed by 15 deg.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pose_server.lift.deepmimic import find_motions, load_motion, mirror
from pose_server.lift.learned import DEFAULT_DEPTH_PRIOR, DepthPrior
from pose_server.lift.training import DepthNet, combine, export, train

BONES = ("chest", "neck", "hip", "knee", "ankle", "shoulder", "elbow", "wrist")


def load_clips(paths: list[Path], seed: int, perturb_deg: float = 0.0, variants: int = 2) -> list[np.ndarray]:
    """Every clip at three speeds, ``variants`` times with random bone lengths and overall size (and joints
    turned by about ``perturb_deg``), and mirrored."""
    rng = np.random.default_rng(seed)
    clips = []
    for path in paths:
        for speed in (0.8, 1.0, 1.25):
            for _ in range(variants):
                bones = {name: rng.uniform(0.9, 1.1) for name in BONES} | {"head": rng.uniform(0.8, 1.2)}
                x = load_motion(path, time_scale=speed, bone_scale=bones, perturb_deg=perturb_deg, rng=rng)
                x = x * rng.uniform(0.95, 1.2)
                clips += [x, mirror(x)]
    return clips


def train_member(paths: list[Path], spec: str, args: argparse.Namespace) -> tuple[DepthNet, str]:
    """One network from a spec ``window:seed[:perturb_deg]`` (perturbed members see 4 variants per clip)."""
    window, seed, perturb = (*(int(v) for v in spec.split(":")[:2]), float((spec.split(":") + ["0"])[2]))
    variants = 4 if perturb > 0 else 2
    clips = load_clips(paths, seed, perturb, variants)
    bar = tqdm(total=args.steps, desc=f"window {window}, seed {seed}, perturb {perturb:g}", unit="step")
    losses: list[float] = []

    def progress(step: int, loss: float) -> None:
        losses.append(loss)
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")

    net = train(clips, window=window, hidden=args.hidden, steps=args.steps, seed=seed, progress=progress)
    bar.close()
    frames = sum(len(c) for c in clips)
    return net, (f"window {window}, seed {seed}: {len(paths)} DeepMimic clips ({frames} frames with augmentation), "
                 f"{args.steps} steps, hidden {args.hidden}, perturb {perturb:g} deg x {variants}, "
                 f"final L1 {np.mean(losses[-200:]):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--motions", nargs="*", type=Path, help="DeepMimic humanoid3d .txt clips (default: pybullet's)")
    ap.add_argument("--members", nargs="+", default=["9:0", "9:0:15"],
                    help="networks as window:seed[:perturb_deg]")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--combine", nargs="+", type=Path, help="merge these prior files into --out instead of training")
    ap.add_argument("--out", type=Path, default=DEFAULT_DEPTH_PRIOR)
    args = ap.parse_args()
    if args.combine:
        out = combine(args.combine, args.out)
    else:
        paths = args.motions or find_motions()
        if not paths:
            raise SystemExit("no motion clips: `.venv/bin/pip install pybullet==3.2.7` (its pybullet_data has them) "
                             "or pass --motions FILE...")
        nets, infos = [], []
        for spec in args.members:
            net, info = train_member(paths, spec, args)
            nets.append(net)
            infos.append(info)
        out = export(nets, args.out, f"trained {datetime.date.today()}; " + " | ".join(infos))
    prior = DepthPrior.load(out)
    print(f"{out}: {len(prior.members)} networks, window {prior.window}\n{prior.info}")


if __name__ == "__main__":
    main()
