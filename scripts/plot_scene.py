"""Where the performers are: every performer's root path from a recorded session, seen from above, beside video frames.

    .venv/bin/python scripts/plot_scene.py out/take.jsonl --video resources/videos/default.mp4 \
        --frames 0 81 121 221 --out docs/images/scene_top_view.png

Reads the session's packets (``make demo`` records ``out/take.jsonl``; ``pose-server run --record``), takes each
performer's root (the mid-hip of ``joints_3d``, world metres, Z up, Y = the camera's horizontal viewing direction)
and draws: the chosen video frames with each performer's box in its colour; the top view (X right, Y away from the
camera) of every root path, with the chosen frames marked; and each root's height over time. Give a second session
with ``--before`` to draw its top view beside (e.g. one recorded before a change).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

LH, RH = 11, 12
COLORS = ("tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown")


def read_roots(path: Path, min_frames: int) -> tuple[dict[int, np.ndarray], dict[int, dict[int, list]]]:
    """Per performer id (lifted in at least ``min_frames`` frames): (n, 4) rows [frame, x, y, z] of its root; per
    id and frame its box."""
    roots: dict[int, list] = {}
    boxes: dict[int, dict[int, list]] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        packet = json.loads(line)
        frame = int(packet["frame"])
        for person in packet.get("people", []):
            pid = int(person["id"])
            boxes.setdefault(pid, {})[frame] = person["bbox"]
            if person.get("joints_3d"):
                joints = np.asarray(person["joints_3d"], dtype=float)
                roots.setdefault(pid, []).append([frame, *joints[[LH, RH]].mean(axis=0)])
    if not roots:
        raise SystemExit(f"{path}: no packet has joints_3d (record with 3D lifting on)")
    kept = {pid: np.array(r) for pid, r in roots.items() if len(r) >= min_frames}
    return kept, boxes


def save_png(fig: plt.Figure, out: Path, dpi: float | None = None) -> None:
    """A palette PNG (video frames survive 256 colours): a quarter of the size, for docs/."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    Image.open(out).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)


def video_frames(video: Path, frames: list[int]) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open the video {video}: give --video the session's source clip")
    out: dict[int, np.ndarray] = {}
    for f in frames:
        cap.set(cv2.CAP_PROP_POS_FRAMES, f)
        ok, img = cap.read()
        if ok:
            out[f] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    cap.release()
    return out


def color_of(pid: int, ids: list[int]) -> str:
    return COLORS[ids.index(pid) % len(COLORS)] if pid in ids else "0.6"


def top_view(ax: plt.Axes, roots: dict[int, np.ndarray], marks: list[int], title: str) -> None:
    """Root paths on the ground plane (X right, Y away from the camera), the marked frames as dots."""
    ids = sorted(roots)
    for pid in ids:
        r = roots[pid]
        c = color_of(pid, ids)
        ax.plot(r[:, 1], r[:, 2], "-", color=c, lw=1.5, label=f"id {pid}")
        ax.plot(r[0, 1], r[0, 2], "o", mfc="none", mec=c, ms=8)
        for f in marks:
            hit = r[r[:, 0] == f]
            if len(hit):
                ax.plot(hit[0, 1], hit[0, 2], "o", color=c, ms=6)
                ax.annotate(str(f), (hit[0, 1], hit[0, 2]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("X (m), right")
    ax.set_ylabel("Y (m), away from the camera")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.annotate("camera looks this way", xy=(0.5, 0.16), xytext=(0.5, 0.02), xycoords="axes fraction",
                ha="center", fontsize=8, arrowprops={"arrowstyle": "->"})
    ax.legend(fontsize=8, loc="upper right")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("session", type=Path, help="a recorded session (.jsonl of packets)")
    ap.add_argument("--video", type=Path, required=True, help="the session's source video")
    ap.add_argument("--frames", type=int, nargs="+", default=[0, 81, 121, 221], help="video frames to show")
    ap.add_argument("--before", type=Path, default=None, help="a second session to draw beside, for comparison")
    ap.add_argument("--label", default="top view of the roots", help="title of the session's top view")
    ap.add_argument("--before-label", default="before", help="title of the --before session's top view")
    ap.add_argument("--min-frames", type=int, default=10, help="draw performers lifted in at least this many frames")
    ap.add_argument("--out", type=Path, default=Path("scene_top_view.png"))
    args = ap.parse_args(argv)

    roots, boxes = read_roots(args.session, args.min_frames)
    images = video_frames(args.video, args.frames)
    ids = sorted(roots)
    fig = plt.figure(figsize=(13, 9), dpi=100, layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.7])
    for ax, f in zip(np.atleast_1d(top.subplots(1, len(args.frames))), args.frames, strict=True):
        if f in images:
            ax.imshow(images[f])
        for pid, per_frame in boxes.items():
            if f in per_frame and pid in ids:
                x1, y1, x2, y2 = per_frame[f]
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=color_of(pid, ids), lw=2))
                ax.text(x1, y1 - 12, f"id {pid}", color=color_of(pid, ids), fontsize=9, weight="bold")
        ax.set_title(f"frame {f}", fontsize=10)
        ax.axis("off")
    axes = bottom.subplots(1, 2 if args.before is None else 3)
    if args.before is not None:
        top_view(axes[0], read_roots(args.before, args.min_frames)[0], args.frames, args.before_label)
    top_view(axes[-2], roots, args.frames, args.label)
    height = axes[-1]
    for pid in ids:
        r = roots[pid]
        height.plot(r[:, 0], r[:, 3], "-", color=color_of(pid, ids), lw=1.5, label=f"id {pid}")
    for f in args.frames:
        height.axvline(f, color="0.7", lw=0.8, ls=":")
    height.set_xlabel("frame")
    height.set_ylabel("root height Z (m)")
    height.set_title("root height (Z = 0: first performer's floor)", fontsize=10)
    height.grid(alpha=0.3)
    height.legend(fontsize=8)
    save_png(fig, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
