"""Re-create the shipped lifter weights (resources/models/temporal_lifter.npz) from CMU motion capture and compare.

The four runs of resources/models/temporal_lifter.md, each from the weights of the one before, then every array of
the result against the shipped file (bit for bit, or the largest difference per array):

    .venv/bin/python scripts/reproduce_temporal_lifter.py ../shared/mocap/train/MANIFEST.csv --work /tmp/lifter
    # only the last run, from the third run's weights as committed (about 45 min):
    .venv/bin/python scripts/reproduce_temporal_lifter.py ../shared/mocap/train/MANIFEST.csv --work /tmp/lifter \\
        --from-stage 4 --start git:b1248b4

All four take about 3 h 10 min of one thread on the 2-core machine (90 + 18.5 + 40 + 42 min; each run is one
thread, so the other core stays free). A stage whose output is already in --work is not run again, so an interrupted
run resumes. Training is deterministic for a seed on one thread with the same torch build on the same instruction
set (pinned torch 2.13.0; an AVX2-only CPU may differ from an AVX-512 one in the last bits, which then grow).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "resources" / "models" / "temporal_lifter.npz"
TRAIN = ROOT / "scripts" / "train_temporal_lifter.py"
# The runs' own arguments (temporal_lifter.md); each after the first also gets --init <the run before's weights>.
STAGES: list[list[str]] = [
    ["--proportions", "0", "--no-framing"],
    ["--lr", "3e-4", "--steps", "4000", "--seed", "1", "--no-framing"],
    ["--lr", "3e-4", "--steps", "8000", "--seed", "3", "--no-framing"],
    ["--dilations", "3", "9", "27", "81", "--lr", "3e-4", "--steps", "3500", "--seed", "8"],
]


def stage_commands(data: list[str], work: Path, first: int = 1, start: Path | None = None) -> list[list[str]]:
    """The training commands from stage ``first`` (1-4) on, their weights in ``work``/stage<k>.npz; ``start``: the
    weights stage ``first`` continues from (stage 1 starts from scratch)."""
    if not 1 <= first <= len(STAGES):
        raise ValueError(f"--from-stage must be 1 to {len(STAGES)}, got {first}")
    if first > 1 and start is None:
        raise ValueError(f"stage {first} continues from stage {first - 1}'s weights: give them with --start")
    if first == 1 and start is not None:
        raise ValueError("stage 1 trains from scratch: --start is for --from-stage 2 to 4")
    commands = []
    for k in range(first, len(STAGES) + 1):
        init = start if k == first else work / f"stage{k - 1}.npz"
        cmd = [sys.executable, str(TRAIN), *data, *STAGES[k - 1], "--out", str(work / f"stage{k}.npz")]
        commands.append(cmd + (["--init", str(init)] if k > 1 else []))
    return commands


def compare_weights(a: Path, b: Path) -> dict[str, float]:
    """The largest absolute difference per array of two exported weight files (``info``, the training note, left
    out); an array in only one of them, or of another shape, is infinitely different."""
    with np.load(a) as x, np.load(b) as y:
        names = sorted((set(x.files) | set(y.files)) - {"info"})
        out = {}
        for k in names:
            if k not in x.files or k not in y.files or x[k].shape != y[k].shape:
                out[k] = float("inf")
            else:
                out[k] = float(np.max(np.abs(x[k].astype(np.float64) - y[k].astype(np.float64)), initial=0.0))
        return out


def start_weights(spec: str, work: Path, write: bool = True) -> Path:
    """A weights file, or ``git:REV``: the shipped file as committed at REV, written into ``work`` (unless not
    ``write``: its path only)."""
    if not spec.startswith("git:"):
        return Path(spec)
    rev = spec[4:]
    out = work / f"start_{rev}.npz"
    if not write:
        return out
    blob = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:resources/models/temporal_lifter.npz"],
                          capture_output=True, check=False)
    if blob.returncode != 0:
        raise SystemExit(f"cannot read the weights at git {rev}: {blob.stderr.decode().strip()}")
    out.write_bytes(blob.stdout)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="+", help="the CMU train/ folder or its MANIFEST.csv")
    ap.add_argument("--work", type=Path, required=True, help="folder for each stage's weights")
    ap.add_argument("--from-stage", type=int, default=1, help="first stage to run (1-4)")
    ap.add_argument("--start", help="the weights the first stage run continues from: a file or git:REV")
    ap.add_argument("--against", type=Path, default=SHIPPED, help="the weights to compare with")
    ap.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = ap.parse_args()
    if not args.dry_run:
        args.work.mkdir(parents=True, exist_ok=True)
    start = start_weights(args.start, args.work, write=not args.dry_run) if args.start else None
    try:
        commands = stage_commands(args.data, args.work, args.from_stage, start)
    except ValueError as exc:
        ap.error(str(exc))
    for k, cmd in enumerate(commands, start=args.from_stage):
        out = args.work / f"stage{k}.npz"
        print(f"stage {k}/{len(STAGES)}: {' '.join(cmd)}", flush=True)
        if args.dry_run:
            continue
        if out.exists():
            print(f"  {out} exists: not run again (delete it to retrain)", flush=True)
            continue
        t0 = time.monotonic()
        if subprocess.run(cmd, check=False).returncode != 0:
            raise SystemExit(f"stage {k} failed (its output is not written); run the same command again to retry it")
        print(f"  stage {k} done in {(time.monotonic() - t0) / 60:.1f} min", flush=True)
    if args.dry_run:
        return
    diffs = compare_weights(args.work / f"stage{len(STAGES)}.npz", args.against)
    worst = max(diffs.values())
    if worst == 0.0:
        print(f"identical: all {len(diffs)} arrays bit for bit the same as {args.against}")
    else:
        print(f"different from {args.against}: largest difference {worst:.3g}")
        for name, d in diffs.items():
            if d:
                print(f"  {name}: {d:.3g}")
        sys.exit(1)


if __name__ == "__main__":
    main()
