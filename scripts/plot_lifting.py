"""Picture of the 3D lifting on real mocap: the mocap's skeleton against what the server lifts.

    .venv/bin/python scripts/plot_lifting.py --bvh ../shared/mocap/cmu_131_02_walk_scaled.bvh \
        --noise 3 --out docs/images/lifting_cmu131.png

The clip goes through the same virtual camera, noise and KeypointFilter -> Lifter chain as
scripts/bench_lifting.py (causal, frame by frame). For evenly spaced frames it draws the front view
(x right, z up) and the side view (depth, z up) in the camera's level frame, both root-aligned:
mocap in white, lifted joints in orange, with each frame's MPJPE.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lifting import IMAGE, VIEWS, detector_noise  # noqa: E402

from pose_server.filters import KeypointFilter  # noqa: E402
from pose_server.lift import Lifter  # noqa: E402
from pose_server.lift.camera import PinholeCamera  # noqa: E402
from pose_server.lift.skeleton3d import LIMB_SEGMENTS, REST_HEIGHT, REST_JOINTS, J, segment_lengths  # noqa: E402
from pose_server.mocap import load_clip  # noqa: E402

BONES = LIMB_SEGMENTS + ((J["l_hip"], J["r_hip"]), (J["l_shoulder"], J["r_shoulder"]),
                         (J["l_hip"], J["l_shoulder"]), (J["r_hip"], J["r_shoulder"]), (J["nose"], J["l_ear"]),
                         (J["nose"], J["r_ear"]))
CELL = 220  # pixels per panel
SCALE = 100.0  # pixels per metre


def lift_clip(path: Path, view: str, sigma: float, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """(mocap, lifted) joints, both (T,17,3) in the camera's level frame; lifted is NaN where not lifted."""
    clip = load_clip(path)
    step = max(1, round(clip.fps / fps))
    world = clip.joints[::step]
    height = REST_HEIGHT * np.mean(segment_lengths(world[0], LIMB_SEGMENTS) / segment_lengths(REST_JOINTS,
                                                                                             LIMB_SEGMENTS))
    target = np.array([*world[:, :, :2].mean((0, 1)), 1.0])
    cam = PinholeCamera.orbit(IMAGE, target, VIEWS[view], distance=5.0, height=1.0)
    px = cam.project(world)
    noisy, scores = detector_noise(px, sigma, np.random.default_rng(0))
    filt, lifter = KeypointFilter(17, 2), Lifter(IMAGE, height_m=height, camera_pitch_deg=0.0)
    out = []
    for i in range(len(px)):
        k2, s2, _ = filt(noisy[i], scores[i], i / fps)
        j3 = lifter(k2, s2, i / fps)
        out.append(np.full((17, 3), np.nan) if j3 is None else j3)
    return cam.level_world(world), np.array(out)


def draw_panel(img: np.ndarray, x0: int, joints: list[tuple[np.ndarray, tuple]], axis: int) -> None:
    """Root-aligned skeletons in one panel: horizontal = coordinate `axis` (0 = x, 1 = depth), vertical = z."""
    for pts, color in joints:
        root = 0.5 * (pts[J["l_hip"]] + pts[J["r_hip"]])
        uv = np.stack([x0 + CELL / 2 + (pts[:, axis] - root[axis]) * SCALE,
                       CELL * 0.5 - (pts[:, 2] - root[2]) * SCALE], axis=1).astype(int)
        for a, b in BONES:
            cv2.line(img, tuple(uv[a]), tuple(uv[b]), color, 2, cv2.LINE_AA)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bvh", required=True, type=Path, help="a mocap file of any format pose_server.mocap reads")
    ap.add_argument("--view", default="three-quarter", choices=list(VIEWS))
    ap.add_argument("--noise", type=float, default=3.0, help="pixel noise sigma")
    ap.add_argument("--frames", type=int, default=6, help="frames to show")
    ap.add_argument("--out", type=Path, default=Path("docs/images/lifting_cmu131.png"))
    args = ap.parse_args()
    if not args.bvh.is_file():
        raise SystemExit(f"{args.bvh}: no such mocap file; pass e.g. --bvh ../shared/mocap/cmu_131_02_walk_scaled.bvh")
    gt, pred = lift_clip(args.bvh, args.view, args.noise)
    valid = np.flatnonzero(np.isfinite(pred).all(axis=(1, 2)))
    picks = valid[np.linspace(len(valid) * 0.15, len(valid) - 1, args.frames).astype(int)]
    img = np.full((2 * CELL + 70, args.frames * CELL, 3), 32, np.uint8)
    title = (f"{args.bvh.stem}, {args.view} view, {args.noise:g} px noise: mocap (white) vs the geometric lifter "
             "(orange); top: camera view, bottom: side view (depth)")
    cv2.putText(img, title, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
    for c, f in enumerate(picks):
        g, p = gt[f], pred[f]
        root = lambda a: a - 0.5 * (a[J["l_hip"]] + a[J["r_hip"]])  # noqa: E731
        err = np.linalg.norm(root(p) - root(g), axis=-1).mean() * 1000
        for row, axis in ((0, 0), (1, 1)):
            panel = img[40 + row * CELL: 40 + (row + 1) * CELL]
            draw_panel(panel, c * CELL, [(g, (235, 235, 235)), (p, (40, 150, 255))], axis)
        cv2.putText(img, f"frame {f}: {err:.0f} mm", (c * CELL + 8, 2 * CELL + 60), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (200, 200, 200), 1, cv2.LINE_AA)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), img)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
