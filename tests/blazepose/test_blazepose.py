"""The embedded BlazePose model on real frames of the bundled clip, and its set-up errors.

The reference positions below were read by eye off zoomed crops of the frames with a 20-pixel grid (frame 60:
the man on the box with both arms raised; frame 120: the woman walking left). The people are 350-450 px tall;
the tolerance of 20 px is about one hand's width, which random weights could not meet on all points at once.
Needs the model files that `make` fetches (scripts/fetch_embedded_model.py); without them every test here fails
with the command that fetches them.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pose_server.blazepose import BlazePoseDetector, BlazePoseEstimator, EmbeddedModelError, embedded_dir
from pose_server.blazepose.files import MODEL_FILES
from pose_server.blazepose.landmarks import BLAZEPOSE33_NAMES, COCO17_FROM_BLAZEPOSE
from pose_server.config import PipelineConfig, load_estimator
from pose_server.skeleton import COCO17_NAMES
from pose_server.track import keypoint_box

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "resources/videos/default.mp4"
TOLERANCE_PX = 20.0
COCO = {name: i for i, name in enumerate(COCO17_NAMES)}
FETCHED = embedded_dir()  # where `make` put the files (read before any test points VITPOSE_CHECKPOINTS elsewhere)

# frame -> keypoint name (or a left/right pair, in either order) -> image pixels, checked by eye
REFERENCE = {
    60: {"nose": (626, 140), ("left_wrist", "right_wrist"): [(604, 76), (656, 72)],
         ("left_elbow", "right_elbow"): [(558, 116), (696, 112)]},
    120: {"nose": (801, 550), ("left_wrist", "right_wrist"): [(732, 700), (918, 724)],
          ("left_ankle", "right_ankle"): [(772, 898), (922, 892)]},
}


@pytest.fixture(scope="module")
def frames() -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    out, index = {}, 0
    while len(out) < len(REFERENCE):
        ok, img = cap.read()
        assert ok, f"could not read frame {index} of {CLIP}"
        if index in REFERENCE:
            out[index] = img
        index += 1
    return out


@pytest.fixture(scope="module")
def detector() -> BlazePoseDetector:
    return BlazePoseDetector()


@pytest.fixture(scope="module")
def estimator() -> BlazePoseEstimator:
    return BlazePoseEstimator("full", threads=1)


def _person(detector, frame: np.ndarray, near: tuple[int, int]) -> np.ndarray:
    boxes, scores = detector(frame)
    assert len(boxes), "BlazePose's detector found nobody"
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return boxes[[np.argmin(np.linalg.norm(centres - near, axis=1))]]


@pytest.mark.parametrize("frame_index", sorted(REFERENCE))
def test_keypoints_match_positions_checked_by_eye(frames, detector, estimator, frame_index):
    frame, ref = frames[frame_index], REFERENCE[frame_index]
    box = _person(detector, frame, ref["nose"])
    # The detector's box, then one tracking step (the box around this frame's keypoints, as the tracker does).
    for step in ("detector box", "keypoint box"):
        kpts, scores = estimator(frame, box)
        assert kpts.shape == (1, 17, 2) and scores.shape == (1, 17)
        k = kpts[0]
        for name, want in ref.items():
            if isinstance(name, str):
                err = np.linalg.norm(k[COCO[name]] - want)
            else:  # a pair: the better of the two assignments (which side is which is checked below)
                a, b = k[COCO[name[0]]], k[COCO[name[1]]]
                err = min(max(np.linalg.norm(a - want[0]), np.linalg.norm(b - want[1])),
                          max(np.linalg.norm(a - want[1]), np.linalg.norm(b - want[0])))
            assert err < TOLERANCE_PX, f"frame {frame_index}, {step}: {name} off by {err:.0f} px ({k.round()})"
        assert scores[0, [COCO["nose"], COCO["left_shoulder"], COCO["right_hip"]]].min() > 0.5
        box = keypoint_box(k, scores[0], 0.3, 1.25)[None]


def test_left_and_right_follow_the_person_not_the_image(frames, detector, estimator):
    """The man faces the camera on frame 60: his left wrist and elbow are on the image's right."""
    frame = frames[60]
    k, _ = estimator(frame, _person(detector, frame, REFERENCE[60]["nose"]))
    assert k[0, COCO["left_wrist"], 0] > k[0, COCO["right_wrist"], 0] + 30
    assert k[0, COCO["left_elbow"], 0] > k[0, COCO["right_elbow"], 0] + 60


def test_detector_finds_both_people(frames, detector):
    boxes, scores = detector(frames[60])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    for near in ((630, 280), (1410, 740)):  # the man on the box, the woman coming in on the right
        d = np.linalg.norm(centres - near, axis=1)
        assert d.min() < 80, (near, centres.round())
    assert ((scores >= 0.5) & (scores <= 1)).all()


def test_debug_fields_hold_feet_and_world_landmarks(frames, detector, estimator):
    frame = frames[120]
    kpts, _ = estimator(frame, _person(detector, frame, REFERENCE[120]["nose"]))
    dbg = estimator.debug
    assert dbg["landmarks"].shape == (1, 33, 2) and dbg["world_landmarks"].shape == (1, 33, 3)
    # whole-body feet order: left big toe, small toe, heel, right big toe, small toe, heel; no small toes here
    assert dbg["feet"].shape == (1, 6, 2) and (dbg["feet_scores"][0, [1, 4]] == 0).all()
    for side, (toe, heel) in (("left", (0, 2)), ("right", (3, 5))):
        ankle = kpts[0, COCO[f"{side}_ankle"]]
        assert np.linalg.norm(dbg["feet"][0, heel] - ankle) < 40
        assert np.linalg.norm(dbg["feet"][0, toe] - ankle) < 70
    # world landmarks: metres about the hips, a person-sized spread
    world = dbg["world_landmarks"][0]
    height = world[:, 1].max() - world[:, 1].min()
    assert 1.0 < height < 2.2 and np.abs(world).max() < 1.5


def test_several_people_run_at_once_and_give_what_one_at_a_time_gives(frames, detector, estimator):
    """Without a thread count the crops of a frame run at once, one interpreter per core: the same numbers as
    one crop after the other (``threads=1``), in the boxes' order."""
    frame = frames[60]
    boxes, _ = detector(frame)
    boxes = np.concatenate([boxes, boxes[::-1] + 7.0])  # four crops: more than the two lanes of this machine
    together = BlazePoseEstimator("full")
    got, want = together(frame, boxes), estimator(frame, boxes)
    assert len(boxes) >= 4 and got[0].shape == (len(boxes), 17, 2)
    assert together._lanes or (os.cpu_count() or 1) < 2
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    assert together.debug.keys() == estimator.debug.keys()
    assert all(np.array_equal(together.debug[k], estimator.debug[k]) for k in estimator.debug)
    assert not np.array_equal(got[0][0], got[0][1])  # different people, not one crop repeated


def test_coco17_mapping_keeps_names():
    assert [BLAZEPOSE33_NAMES[i] for i in COCO17_FROM_BLAZEPOSE] == list(COCO17_NAMES)


def _copy_models(folder: Path) -> Path:
    target = folder / "embedded"
    target.mkdir(parents=True)
    for key in ("detector", "full"):
        shutil.copy(FETCHED / MODEL_FILES[key].name, target / MODEL_FILES[key].name)
    return target


def test_missing_file_names_it_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VITPOSE_CHECKPOINTS", str(tmp_path))
    with pytest.raises(EmbeddedModelError, match=r"missing: .*pose_landmark_full\.tflite.*make embedded"):
        load_estimator(PipelineConfig(checkpoint="blazepose"))


def test_corrupt_file_names_it_and_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VITPOSE_CHECKPOINTS", str(tmp_path))
    target = _copy_models(tmp_path) / "pose_landmark_full.tflite"
    target.write_bytes(target.read_bytes()[:100_000])
    with pytest.raises(EmbeddedModelError, match=r"corrupt.*pose_landmark_full\.tflite.*make embedded"):
        BlazePoseEstimator("full")


def test_wholebody_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="no whole-body face and hand points"):
        load_estimator(PipelineConfig(checkpoint="blazepose", dataset="wholebody"))


def test_auto_takes_the_embedded_model_offline_and_says_so_once(tmp_path, monkeypatch, caplog):
    import huggingface_hub.constants

    monkeypatch.setenv("VITPOSE_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no ViTPose here and no network
    _copy_models(tmp_path)
    caplog.set_level(logging.INFO, logger="pose_server")
    cfg = PipelineConfig(checkpoint="auto")
    est = load_estimator(cfg)
    assert isinstance(est, BlazePoseEstimator) and cfg.model == "blazepose-full"
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(notes) == 1 and "embedded BlazePose" in notes[0] and "docs/models.md" in notes[0], notes


def test_auto_detector_is_blazepose_when_embedded_and_no_yolox(tmp_path, monkeypatch):
    from pose_server import detect

    monkeypatch.setenv("VITPOSE_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr(detect, "_warned", True)
    _copy_models(tmp_path)
    assert detect.make_detector("auto").name == "blazepose"
    assert detect.make_detector("blazepose").name == "blazepose"


def test_the_control_api_offers_the_embedded_model_when_it_is_there(tmp_path):
    from pose_server.control.server import list_checkpoints

    assert "blazepose" not in list_checkpoints(tmp_path)
    _copy_models(tmp_path)
    assert list_checkpoints(tmp_path) == ["blazepose"]


def test_heatmap_refinement_moves_each_landmark_as_its_own_window_says():
    """MediaPipe's refinement, all landmarks at once: every landmark lands where its window alone puts it (the
    confidence-weighted mean cell, when the window is confident), also at the heatmap's edges and outside it."""
    from pose_server.blazepose.estimator import INPUT, _refine_clipped, refine_from_heatmap

    rng = np.random.default_rng(7)
    heatmap = rng.normal(-4.0, 3.0, (64, 64, 33)).astype(np.float32)
    xy = rng.uniform(20.0, 236.0, (33, 2)).astype(np.float32)
    xy[:4] = [[1.0, 128.0], [255.0, 3.0], [130.0, 254.0], [-9.0, 40.0]]  # windows the edges clip; one outside
    for k, (x, y) in enumerate(xy[:3].tolist() + xy[4:].tolist()):
        heatmap[int(y / INPUT * 64), int(x / INPUT * 64), k if k < 3 else k + 1] += 9.0  # a confident peak
    refined = refine_from_heatmap(xy, heatmap, kernel=7, min_confidence=0.5)
    alone = np.array([_refine_clipped(heatmap, int(x / INPUT * 64), int(y / INPUT * 64), k, 3, 0.5, xy[k])
                      if 0 <= x < INPUT and 0 <= y < INPUT else xy[k] for k, (x, y) in enumerate(xy.tolist())],
                     dtype=np.float32)
    np.testing.assert_array_equal(refined, alone)
    assert (refined != xy).any(axis=1).sum() >= 30  # the confident windows moved their landmarks
    np.testing.assert_array_equal(refined[3], xy[3])  # outside the heatmap: as the model said
