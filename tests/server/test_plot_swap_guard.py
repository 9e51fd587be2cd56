"""scripts/plot_swap_guard.py: a track's labels and lifted facing from two sessions, without and with the guard."""

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose_server.lift.skeleton3d import REST_JOINTS
from tests.conftest import ROOT
from tests.server.conftest import write_clip

sys.path.insert(0, str(ROOT / "scripts"))
import plot_swap_guard  # noqa: E402

TURNED = (8, 9)  # frames whose lifted body faces away in the session without the guard


def session(path: Path, turned: tuple[int, ...]) -> Path:
    """Two tracks (0 and 4) standing still, 20 frames; track 0's body turned half round in the ``turned`` frames."""
    half_turn = np.diag([-1.0, -1.0, 1.0])
    lines = []
    for f in range(20):
        joints = REST_JOINTS @ half_turn.T if f in turned else REST_JOINTS
        person = {"id": 0, "bbox": [20, 40, 120, 210], "keypoints": (np.full((17, 2), 60.0) + f).tolist(),
                  "scores": [0.9] * 17, "joints_3d": joints.tolist()}
        lines.append(json.dumps({"v": 3, "frame": f, "timestamp": 1000.0 + f / 30,
                                 "people": [person, {**person, "id": 4}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_facing_is_read_per_frame_from_the_lifted_hips_and_shoulders(tmp_path):
    frames, yaw = plot_swap_guard.yaws(plot_swap_guard.read_track(session(tmp_path / "a.jsonl", TURNED), 0))
    assert list(frames) == list(range(20))
    turned = np.abs(yaw).max(axis=1) > 170.0
    assert list(frames[turned]) == list(TURNED)


def test_it_draws_the_picture(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=20, size=(320, 240))
    out = tmp_path / "guard.png"
    assert plot_swap_guard.main([str(session(tmp_path / "a.jsonl", TURNED)), str(session(tmp_path / "b.jsonl", ())),
                                 "--video", str(clip), "--frames", "7", "8", "--out", str(out)]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 400 and img.std() > 10


def test_a_track_no_packet_has_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="no packet has track 3"):
        plot_swap_guard.read_track(session(tmp_path / "a.jsonl", ()), 3)
