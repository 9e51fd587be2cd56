"""scripts/plot_scene.py: a recorded session's root paths, read per performer, drawn beside the video's frames."""

import json
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.server.conftest import write_clip

sys.path.insert(0, str(ROOT / "scripts"))
import plot_scene  # noqa: E402


def person(pid: int, root: list[float] | None) -> dict:
    joints = None if root is None else (np.zeros((17, 3)) + root).tolist()
    return {"id": pid, "bbox": [10, 10, 60, 120], "keypoints": [[0, 0]] * 17, "scores": [1.0] * 17,
            "joints_3d": joints}


@pytest.fixture()
def session(tmp_path):
    """Two performers: id 0 from frame 0 at the origin walking +X, id 1 from frame 5, 3 m back and 2 m up, and a
    flicker (id 7, 2 frames); id 0 not lifted in frame 3."""
    lines = []
    for f in range(20):
        people = [person(0, None if f == 3 else [0.1 * f, 0.0, 0.9])]
        if f >= 5:
            people.append(person(1, [1.0, 3.0, 2.9]))
        if f in (8, 9):
            people.append(person(7, [5.0, 5.0, 0.9]))
        lines.append(json.dumps({"v": 3, "frame": f, "people": people}))
    path = tmp_path / "take.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_roots_are_read_per_performer_and_flickers_left_out(session):
    roots, boxes = plot_scene.read_roots(session, min_frames=10)
    assert sorted(roots) == [0, 1] and sorted(boxes) == [0, 1, 7]
    assert len(roots[0]) == 19 and roots[0][0, 0] == 0 and 3 not in roots[0][:, 0]
    np.testing.assert_allclose(roots[0][-1], [19, 1.9, 0.0, 0.9])
    np.testing.assert_allclose(roots[1][0], [5, 1.0, 3.0, 2.9])


def test_it_draws_the_picture(session, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=20, size=(320, 240))
    out = tmp_path / "scene.png"
    assert plot_scene.main([str(session), "--video", str(clip), "--frames", "0", "10", "--before", str(session),
                            "--out", str(out)]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 400 and img.std() > 10


def test_a_session_without_3d_says_what_to_do(tmp_path):
    path = tmp_path / "flat.jsonl"
    path.write_text(json.dumps({"v": 3, "frame": 0, "people": [person(0, None)]}) + "\n")
    with pytest.raises(SystemExit, match="3D lifting"):
        plot_scene.read_roots(path, 1)
