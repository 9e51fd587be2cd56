"""Picture of the 3D lifting on real mocap: the mocap's skeleton against what the server lifts, and where it fails.

    .venv/bin/python scripts/plot_lifting.py ../shared/mocap/cmu_131_01_walk_scaled.bvh --azimuth 45 --noise 0 \
        --times 2 4 6.8 7.6 --out docs/images/lifting_cmu131_01.png

The clip goes through one of scripts/bench_lifting.py's cases for each --lifter (its virtual camera, detector noise,
told height and the server's per-track signal step, causal, frame by frame: the numbers are the benchmark's). Top:
each lifter's MPJPE per frame over the clip, the drawn frames marked. Below, each drawn frame seen from the camera
(its x, up) and from the side (depth, up) in the camera's level frame, pelvis on pelvis as MPJPE measures: the
mocap thick and grey, the learned lifter in orange, the geometric one in blue; left limbs solid, right limbs dashed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lifting as bench  # noqa: E402

from pose_server.lift.skeleton3d import J  # noqa: E402
from pose_server.mocap import load_clip  # noqa: E402

LEFT = [(J["l_shoulder"], J["l_elbow"]), (J["l_elbow"], J["l_wrist"]), (J["l_hip"], J["l_knee"]),
        (J["l_knee"], J["l_ankle"])]
RIGHT = [(J["r_shoulder"], J["r_elbow"]), (J["r_elbow"], J["r_wrist"]), (J["r_hip"], J["r_knee"]),
         (J["r_knee"], J["r_ankle"])]
TRUNK = [(J["l_hip"], J["r_hip"]), (J["l_shoulder"], J["r_shoulder"]), (J["l_hip"], J["l_shoulder"]),
         (J["r_hip"], J["r_shoulder"]), (J["nose"], J["l_ear"]), (J["nose"], J["r_ear"])]
COLOUR = {"mocap": "0.6", "learned": "tab:orange", "geometric": "tab:blue"}
WIDTH = {"mocap": 4.0}  # the mocap drawn thick and grey, under the lifted skeletons


def lift_clip(path: Path, lifters: list[str], azimuth: float, elevation: float, sigma: float, fps: float = 30.0,
              seconds: float = 0.0) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, dict]]:
    """The mocap (T, 17, 3) and each lifter's joints (T, 17, 3; NaN where nothing was lifted), both in the camera's
    level frame, and each lifter's benchmark row, from bench_lifting's case with its default settings."""
    args = bench.build_parser().parse_args([str(path), "--fps", str(fps)])
    gt_world, contacts = bench.resample(load_clip(path), fps, seconds)
    height = bench.told_height(gt_world)
    preds, rows = {}, {}
    for lifter in lifters:
        r = bench.run_case(gt_world, contacts, fps, azimuth, elevation, sigma, height, lifter, args, args.seed)
        preds[lifter], gt = r.pop("joints"), r.pop("gt")
        rows[lifter] = r
    return gt, preds, rows


def frame_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-frame MPJPE (mm) as the benchmark averages it (pelvis-relative); NaN where nothing was lifted."""
    return np.linalg.norm(bench.root_relative(pred) - bench.root_relative(gt), axis=-1).mean(-1) * 1000


def draw_skeleton(ax: object, pts: np.ndarray, axis: int, colour: str, width: float = 1.5) -> None:
    """One pelvis-relative skeleton: horizontal = coordinate ``axis`` (0: camera x, 1: depth), vertical = up."""
    p = pts - 0.5 * (pts[J["l_hip"]] + pts[J["r_hip"]])
    for bones, style in ((TRUNK, "-"), (LEFT, "-"), (RIGHT, "--")):
        for a, b in bones:
            ax.plot(p[[a, b], axis], p[[a, b], 2], style, color=colour, lw=width)


def plot(gt: np.ndarray, preds: dict[str, np.ndarray], picks: list[int], fps: float, title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2.2 * len(picks) + 0.6, 7.2))
    grid = fig.add_gridspec(3, len(picks), height_ratios=[1.0, 1.6, 1.6])
    top = fig.add_subplot(grid[0, :])
    t = np.arange(len(gt)) / fps
    for name, pred in preds.items():
        top.plot(t, frame_errors(pred, gt), color=COLOUR.get(name, "grey"), lw=1.2, label=name)
    for k in picks:
        top.axvline(k / fps, color="grey", lw=0.8, ls=":")
    top.set_xlabel("s")
    top.set_ylabel("MPJPE per frame (mm)")
    top.set_xlim(0, t[-1])
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    top.set_title(title, fontsize=10)
    for col, k in enumerate(picks):
        for row, (axis, view) in enumerate(((0, "camera"), (1, "side: depth"))):
            ax = fig.add_subplot(grid[row + 1, col])
            draw_skeleton(ax, gt[k], axis, COLOUR["mocap"], WIDTH["mocap"])
            label = []
            for name, pred in preds.items():
                if np.isfinite(pred[k]).all():
                    draw_skeleton(ax, pred[k], axis, COLOUR.get(name, "grey"))
                    label.append(f"{name} {frame_errors(pred[k:k + 1], gt[k:k + 1])[0]:.0f}")
            ax.set_title(f"{k / fps:.1f} s, {view}" + (f"\n{' / '.join(label)} mm" if row == 0 else ""), fontsize=8)
            ax.set_aspect("equal")
            ax.set_xlim(-0.9, 0.9)
            ax.set_ylim(-1.05, 1.15)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mocap", type=Path, help="a mocap file of any format pose_server.mocap reads")
    ap.add_argument("--lifter", nargs="+", default=["learned", "geometric"], choices=["learned", "geometric"])
    ap.add_argument("--azimuth", type=float, default=45.0, help="degrees from the performer's front")
    ap.add_argument("--elevation", type=float, default=0.0, help="degrees the camera looks down")
    ap.add_argument("--noise", type=float, default=0.0, help="pixel noise sigma (with outliers above 0)")
    ap.add_argument("--seconds", type=float, default=0.0, help="only the clip's first seconds (0: all)")
    ap.add_argument("--times", nargs="+", type=float, help="seconds of the frames to draw (default: six, evenly)")
    ap.add_argument("--out", type=Path, default=Path("docs/images/lifting_cmu131_01.png"))
    args = ap.parse_args()
    if not args.mocap.is_file():
        raise SystemExit(f"{args.mocap}: no such mocap file; pass e.g. ../shared/mocap/cmu_131_01_walk_scaled.bvh")
    fps = 30.0
    gt, preds, rows = lift_clip(args.mocap, args.lifter, args.azimuth, args.elevation, args.noise, fps, args.seconds)
    lifted = np.flatnonzero(np.isfinite(preds[args.lifter[0]]).all(axis=(1, 2)))
    if args.times:
        picks = [int(lifted[np.argmin(np.abs(lifted - round(s * fps)))]) for s in args.times]
    else:
        picks = [int(k) for k in lifted[np.linspace(0, len(lifted) - 1, 6).astype(int)]]
    scores = ", ".join(f"{name} {r['mpjpe']:.1f} mm (wrong depth signs {r['wrong']:.1f} %)" for name, r in rows.items())
    title = (f"{args.mocap.name.split('.')[0]}, azimuth {args.azimuth:g} deg, elevation {args.elevation:g}, "
             f"{args.noise:g} px: {scores}")
    plot(gt, preds, picks, fps, title, args.out)
    print(f"{title}\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
