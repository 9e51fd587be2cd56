"""Train the temporal lifter (resources/models/temporal_lifter.npz) on CMU motion capture.

    nice -n 10 .venv/bin/python scripts/train_temporal_lifter.py ../shared/mocap/train/MANIFEST.csv

Reads every clip (files, folders or MANIFEST.csv; pose_server/mocap), holds out the CMU subjects of --val-subjects
(split by subject, never by frames), trains the causal TCN of pose_server/lift/temporal.py on random virtual cameras
(pose_server/lift/temporal_data.py) on one thread, prints progress, reports the MPJPE on random sequences of the
held-out subjects, and writes the numpy weights with a note of what they were trained on. Deterministic for a seed
(one thread). Refuses clips from an ``eval`` folder or the HDM05 / Bandai Namco sources: those are for measurement
only.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pose_server.lift.temporal import DEFAULT_TEMPORAL_LIFTER, TemporalLifterModel
from pose_server.lift.temporal_data import ClipBank
from pose_server.lift.temporal_training import CONTACT_WEIGHT, evaluate, export, train
from pose_server.mocap import find_clips, load_clip

CMU_CREDIT = ("The data used in this project was obtained from mocap.cs.cmu.edu. The database was created with "
              "funding from NSF EIA-0196217.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", type=Path, help="mocap files, folders or MANIFEST.csv (CMU train/ only)")
    ap.add_argument("--val-subjects", nargs="*", default=["cmu07", "cmu14", "cmu61"],
                    help="CMU subjects held out for validation")
    ap.add_argument("--steps", type=int, default=14000)
    ap.add_argument("--batch", type=int, default=32, help="sequences per step")
    ap.add_argument("--outputs", type=int, default=48, help="output frames per sequence (dense training)")
    ap.add_argument("--channels", type=int, default=256)
    ap.add_argument("--blocks", type=int, default=3, help="dilated blocks: receptive field 3^(blocks+1) frames")
    ap.add_argument("--dilations", nargs="+", type=int,
                    help="the blocks' dilations instead of 3, 9, 27, ... (--blocks); --init weights with fewer "
                         "blocks (the same dilations first) grow into the new ones")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", type=Path, default=None,
                    help="continue from these exported weights (same --channels; the same blocks, or their first ones "
                         "with --dilations) instead of from scratch")
    ap.add_argument("--proportions", type=float, default=0.8,
                    help="share of sequences drawn with other bone proportions (0: none, as before 2026-12-04)")
    ap.add_argument("--no-framing", dest="framing", action="store_false",
                    help="leave the virtual cameras where they are drawn, even where the performer runs out of the "
                         "image or past the lens (as before 2026-12-05)")
    ap.add_argument("--velocity", type=float, default=0.0,
                    help="weight of a velocity term in the loss: predicted against true joint motion from frame to "
                         "frame (0: none, as every shipped run)")
    ap.add_argument("--hold", choices=("frozen", "server"), default="frozen",
                    help="dropped keypoints held frozen with a low score (every shipped run) or as the server's 2D "
                         "filter holds them (predicted on, their last score for 0.25 s)")
    ap.add_argument("--contact-lead", type=float, default=0.0,
                    help="take the contact labels this many video frames later (the shipped network's contact "
                         "probabilities lag the labels by a frame; 0: as every shipped run)")
    ap.add_argument("--head-only", action="store_true",
                    help="train only the contact head of --init's weights (the trunk frozen as exported); every "
                         "other array of the output is --init's, bit for bit")
    ap.add_argument("--hips", type=float, default=0.0,
                    help="share of sequences whose hip joints sit elsewhere, in the keypoints and the target alike "
                         "(up to 4 cm up or down, 3 cm forward or back; 0: none, as every shipped run)")
    ap.add_argument("--contact-weight", type=float, default=CONTACT_WEIGHT,
                    help="weight of the contacts' cross-entropy in the loss (every shipped run: 0.05)")
    ap.add_argument("--bones", type=float, default=0.0,
                    help="weight of a bone-length term in the loss: the 8 limb bones' predicted against true lengths "
                         "(m; 0: none, as every shipped run)")
    ap.add_argument("--distill-contacts", type=float, default=0.0, metavar="W",
                    help="with --init: keep the contact head near the starting network's (W x their cross-entropy; "
                         "0.2 kept the held-out recall through a fine-tune; 0: off, as every shipped run)")
    ap.add_argument("--out", type=Path, default=DEFAULT_TEMPORAL_LIFTER)
    args = ap.parse_args()
    torch.set_num_threads(1)
    paths = find_clips(args.data)
    banned = [p for p in paths if "eval" in Path(p).parts or any(s in str(p).lower() for s in ("hdm", "bandai"))]
    if banned:
        raise SystemExit(f"{banned[0]}: evaluation data (measurement only) must never be trained on")
    train_clips, val_clips = [], []
    for p in tqdm(paths, desc="reading clips", unit="clip"):
        clip = load_clip(p)
        (val_clips if clip.subject in args.val_subjects else train_clips).append(clip)
    minutes = sum(len(c.joints) / c.fps for c in train_clips) / 60
    print(f"train: {len(train_clips)} clips, {minutes:.1f} min; validation ({', '.join(args.val_subjects)}): "
          f"{len(val_clips)} clips")
    bank = ClipBank(train_clips)
    bar = tqdm(total=args.steps, desc="training", unit="step")
    recent: list[tuple[float, float]] = []

    def progress(step: int, mpjpe: float, bce: float) -> None:
        recent.append((mpjpe, bce))
        bar.update(1)
        if step % 50 == 0:
            m = np.mean(recent[-50:], axis=0)
            bar.set_postfix(mpjpe_mm=f"{1000 * m[0]:.1f}", contact_bce=f"{m[1]:.3f}")

    t0, c0 = time.time(), time.process_time()
    net = train(bank, args.steps, args.batch, args.outputs, args.channels, args.blocks, args.lr, args.seed, progress,
                args.init, args.proportions, args.framing, args.dilations, args.velocity, args.hold,
                args.contact_lead, args.head_only, args.hips, args.contact_weight, args.bones, args.distill_contacts)
    bar.close()
    wall, cpu = time.time() - t0, time.process_time() - c0
    val = evaluate(net, ClipBank(val_clips)) if val_clips else (float("nan"), float("nan"))
    start = f" from {args.init.name} ({_info(args.init)})" if args.init else ""
    info = (f"trained {datetime.date.today()} by scripts/train_temporal_lifter.py{start}: {len(train_clips)} CMU clips "
            f"({minutes:.1f} min; subjects {', '.join(sorted({c.subject for c in train_clips}))}), validation "
            f"subjects {', '.join(args.val_subjects)} held out; {args.steps} steps x {args.batch} sequences x "
            f"{args.outputs} frames, {args.channels} channels, "
            f"{f'dilations {args.dilations}' if args.dilations else f'{args.blocks} blocks'}, "
            f"learning rate {args.lr:g}, "
            f"seed {args.seed}, other proportions in {100 * args.proportions:.0f} % of sequences"
            f"{'' if args.framing else ', cameras not framing the action'}"
            f"{f', velocity loss x {args.velocity:g}' if args.velocity else ''}"
            f"{', dropped keypoints held as the server holds them' if args.hold == 'server' else ''}"
            f"{f', contact labels {args.contact_lead:g} frames later' if args.contact_lead else ''}"
            f"{', only the contact head trained' if args.head_only else ''}"
            f"{f', hip joints moved in {100 * args.hips:.0f} % of sequences' if args.hips else ''}"
            f"{f', contact loss x {args.contact_weight:g}' if args.contact_weight != CONTACT_WEIGHT else ''}"
            f"{f', bone-length loss x {args.bones:g}' if args.bones else ''}"
            f"{f', contacts distilled x {args.distill_contacts:g}' if args.distill_contacts else ''}; "
            f"{wall / 60:.1f} min on one thread; validation MPJPE on random cameras {1000 * val[0]:.1f} mm, "
            f"contact accuracy {100 * val[1]:.1f} %. {CMU_CREDIT}")
    out = export(net, args.out, info, head_of=args.init if args.head_only else None)
    model = TemporalLifterModel.load(out)
    print(f"{out}: receptive field {model.receptive_field} frames, {out.stat().st_size / 1e6:.1f} MB\n{info}\n"
          f"training wall {wall:.0f} s, CPU {cpu:.0f} s")


def _info(path: Path) -> str:
    """The ``info`` note of exported weights, without its credit line (the new note repeats it)."""
    with np.load(path, allow_pickle=False) as data:
        return str(data["info"]).replace(CMU_CREDIT, "").strip().rstrip(".") if "info" in data.files else "no note"


if __name__ == "__main__":
    main()
