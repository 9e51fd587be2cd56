"""Picture of the left/right guard on a recorded session: the track's labels and its lifted body's facing, without
and with the guard (two sessions of the same video, e.g. `make demo` and `make demo DEMO_ARGS=--no-swap-guard`).

    .venv/bin/python scripts/plot_swap_guard.py out_noguard/take.jsonl out/take.jsonl \
        --video resources/videos/default.mp4 --track 0 --frames 15 17 19 20 21 68 70 72 --out docs/images/swap_guard.png

(docs/images/swap_guard.png: exactly this, the first session from `make demo DEMO_ARGS="--no-swap-guard --out
out_noguard"`, the second from `make demo`.)

Top rows: the video at each frame, cropped to the track's box, with the packet's 2D keypoints (left side orange, right
side blue; the packets carry the filtered points). Bottom: the yaw of the lifted hip and shoulder lines over the
track, from above (0: facing the camera as at the start).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plot_scene import plt, save_png, video_frames  # noqa: E402

from pose_server.lift.skeleton3d import J  # noqa: E402
from pose_server.record import read_recording  # noqa: E402

LEFT = [J[n] for n in ("l_shoulder", "l_elbow", "l_wrist", "l_hip", "l_knee", "l_ankle")]
RIGHT = [J[n] for n in ("r_shoulder", "r_elbow", "r_wrist", "r_hip", "r_knee", "r_ankle")]
CHAINS = [(0, 1), (1, 2), (0, 3), (3, 4), (4, 5)]  # within LEFT / RIGHT


def read_track(path: Path, track: int) -> dict[int, dict]:
    """frame -> the track's packet entry."""
    out = {}
    for packet in read_recording(path):
        for person in packet.get("people", []):
            if person["id"] == track:
                out[packet["frame"]] = person
    if not out:
        raise SystemExit(f"{path}: no packet has track {track}; pick an id the overlay video shows")
    return out


def yaws(entries: dict[int, dict]) -> tuple[np.ndarray, np.ndarray]:
    """Frames and the lifted (hip, shoulder) lines' yaw in degrees, unwrapped from the first frame's."""
    frames = sorted(f for f, e in entries.items() if e.get("joints_3d"))
    j = np.array([entries[f]["joints_3d"] for f in frames])
    lines = np.stack([j[:, J["l_hip"]] - j[:, J["r_hip"]], j[:, J["l_shoulder"]] - j[:, J["r_shoulder"]]], axis=1)
    angle = np.degrees(np.arctan2(lines[..., 1], lines[..., 0]))
    return np.array(frames), (angle - angle[0] + 180.0) % 360.0 - 180.0


def crop(frame: np.ndarray, entry: dict, size: int = 220) -> np.ndarray:
    """The (RGB) frame around the track's box with its keypoints drawn, left orange and right blue."""
    k = np.array(entry["keypoints"])
    img = frame.copy()
    for side, colour in ((LEFT, (255, 140, 0)), (RIGHT, (0, 120, 255))):
        for a, b in CHAINS:
            cv2.line(img, tuple(int(v) for v in k[side[a]]), tuple(int(v) for v in k[side[b]]), colour, 3, cv2.LINE_AA)
    x0, y0, x1, y1 = entry["bbox"]
    half = 0.6 * max(x1 - x0, y1 - y0)
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    h, w = img.shape[:2]
    box = [int(max(cx - half, 0)), int(max(cy - half, 0)), int(min(cx + half, w)), int(min(cy + half, h))]
    return cv2.resize(img[box[1]:box[3], box[0]:box[2]], (size, size))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("without", type=Path, help="session recorded with --no-swap-guard")
    ap.add_argument("with_guard", type=Path, help="session recorded with the guard (the default)")
    ap.add_argument("--video", type=Path, required=True, help="the sessions' source video")
    ap.add_argument("--track", type=int, default=0)
    ap.add_argument("--frames", type=int, nargs="+", required=True, help="video frames to show")
    ap.add_argument("--out", type=Path, default=Path("docs/images/swap_guard.png"))
    args = ap.parse_args(argv)
    sessions = {"without the guard": read_track(args.without, args.track),
                "with the guard": read_track(args.with_guard, args.track)}
    frames = video_frames(args.video, sorted(args.frames))
    missing = sorted(set(args.frames) - set(frames))
    if missing:
        raise SystemExit(f"{args.video}: no frame {missing[0]}")
    n = len(frames)
    fig = plt.figure(figsize=(1.9 * n, 7.2))
    grid = fig.add_gridspec(3, n, height_ratios=[1.0, 1.0, 1.1])
    for row, (name, entries) in enumerate(sessions.items()):
        for col, (f, img) in enumerate(frames.items()):
            ax = fig.add_subplot(grid[row, col])
            if f in entries:
                ax.imshow(crop(img, entries[f]))
            ax.set_title(f"frame {f}" + (f"\n{name}" if col == 0 else ""), fontsize=8)
            ax.axis("off")
    ax = fig.add_subplot(grid[2, :])
    for (name, entries), colour in zip(sessions.items(), ("tab:red", "tab:green"), strict=True):
        fr, y = yaws(entries)
        ax.plot(fr, y[:, 0], color=colour, lw=1.5, label=f"{name}: hips")
        ax.plot(fr, y[:, 1], color=colour, lw=1.0, ls="--", label=f"{name}: shoulders")
    for f in frames:
        ax.axvline(f, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("frame")
    ax.set_ylabel("lifted body's yaw (deg)")
    ax.set_ylim(-190, 190)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.suptitle("The detector's left (orange) and right (blue) labels, and the lifted body's facing", fontsize=10)
    fig.tight_layout()
    save_png(fig, args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
