"""Tracking on synthetic people: boxes moving across frames and crossing, keypoints from their crops."""

from __future__ import annotations

import numpy as np

from pose_server.track import Tracker, iou_matrix, keypoint_box

# A standing figure's 17 COCO keypoints in a unit box (x right, y down), roughly where a pose model puts them.
_UNIT = np.array([
    [.5, .08], [.55, .06], [.45, .06], [.6, .08], [.4, .08], [.7, .22], [.3, .22], [.78, .38], [.22, .38],
    [.8, .52], [.2, .52], [.62, .55], [.38, .55], [.62, .75], [.38, .75], [.62, .95], [.38, .95],
], np.float32)


def person_box(t: int, who: int) -> np.ndarray:
    """Person 0 walks right, person 1 walks left, a bit lower: they cross around frame 50."""
    if who == 0:
        x, y = 20 + 4 * t, 40
    else:
        x, y = 420 - 4 * t, 70
    return np.array([x, y, x + 80, y + 200], np.float32)


def keypoints_in(box: np.ndarray) -> np.ndarray:
    return box[:2] + _UNIT * (box[2:] - box[:2])


def pose_model(crop_box: np.ndarray, people: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """What a top-down model returns for a crop: the person covering most of it, or low scores if nobody."""
    overlap = iou_matrix(crop_box, np.stack(people))[0]
    best = int(np.argmax(overlap))
    if overlap[best] < 0.1:
        return keypoints_in(crop_box), np.full(17, 0.05, np.float32)
    return keypoints_in(people[best]), np.full(17, 0.9, np.float32)


def run(tracker: Tracker, frames: int, people_at) -> tuple[list[dict[int, int]], int]:
    """Drive the tracker as the pipeline does; returns per frame {track id: index of the person it follows}."""
    history = []
    for t in range(frames):
        people = people_at(t)
        if tracker.needs_detection():
            # The detector sees everybody, in a shuffled order, with some jitter.
            order = np.random.default_rng(t).permutation(len(people))
            jitter = np.random.default_rng(100 + t).normal(0, 2, (len(people), 4)).astype(np.float32)
            tracker.update_detections(np.stack([people[i] for i in order]) + jitter[: len(people)],
                                      np.full(len(people), 0.9, np.float32))
        ids, boxes = tracker.boxes()
        outs = [pose_model(b, people) for b in boxes]
        if ids:
            tracker.update_keypoints(ids, np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs]), (640, 480))
        follows = {}
        for tid, box in zip(tracker.boxes()[0], tracker.boxes()[1], strict=True):
            follows[tid] = int(np.argmax(iou_matrix(box, np.stack(people))[0]))
        history.append(follows)
    return history, tracker.detections


def test_ids_stay_with_their_person_through_a_crossing():
    tracker = Tracker(max_people=2, det_interval=10)
    history, _ = run(tracker, 100, lambda t: [person_box(t, 0), person_box(t, 1)])
    assert history[0] == {0: 0, 1: 1} or history[0] == {0: 1, 1: 0}
    first = history[0]
    for t, follows in enumerate(history):
        assert follows == first, f"frame {t}: ids {follows} != {first}"


def test_single_performer_costs_one_detection_per_second():
    tracker = Tracker(max_people=4, det_interval=30)
    def walking(t: int) -> list[np.ndarray]:  # back and forth across the frame for 10 s at 30 fps
        x = 20 + 200 * (1 - np.cos(2 * np.pi * t / 150)) / 2
        return [np.array([x, 40, x + 80, 240], np.float32)]

    _, detections = run(tracker, 300, walking)
    assert detections <= 10
    assert [t.id for t in tracker.tracks] == [0]


def test_lost_track_triggers_detection_and_new_id():
    tracker = Tracker(max_people=1, det_interval=1000)

    def people_at(t: int) -> list[np.ndarray]:
        # The performer jumps across the frame at t=20 (cut): the keypoint box no longer finds them.
        return [person_box(0, 0) if t < 20 else person_box(0, 1)]

    history, detections = run(tracker, 40, people_at)
    assert detections == 2  # once at the start, once right after the loss
    assert list(history[19]) == [0] and list(history[21]) == [1]


def test_max_people_and_duplicates():
    tracker = Tracker(max_people=1)
    tracker.update_detections(np.array([[0, 0, 10, 20], [50, 0, 60, 20]], np.float32), np.array([0.5, 0.9]))
    assert [t.id for t in tracker.tracks] == [0]
    assert np.allclose(tracker.tracks[0].box, [50, 0, 60, 20])  # the most confident person wins
    tracker.set_params(max_people=3)
    tracker.update_detections(np.array([[50, 0, 60, 20], [50.5, 0, 60.5, 20], [100, 0, 110, 20]], np.float32))
    assert len(tracker.tracks) == 2  # the near-duplicate box starts no track
    # the detector's wide box around a tracked person whose keypoint box is narrow (arms out, hands not found):
    # IoU 0.1, but the track's box lies inside it -- the same person, no second track
    tracker.update_detections(np.array([[30, -10, 80, 30]], np.float32))
    assert len(tracker.tracks) == 2


def test_keypoint_box_expands_and_clips():
    kpts = np.array([[10, 10], [30, 50], [500, 500]], np.float32)
    box = keypoint_box(kpts, np.array([0.9, 0.9, 0.1]), 0.3, 1.25)
    np.testing.assert_allclose(box, [7.5, 5, 32.5, 55])
    assert keypoint_box(kpts, np.array([0.9, 0.1, 0.1]), 0.3, 1.25) is None
    np.testing.assert_allclose(keypoint_box(kpts, np.ones(3), 0.3, 1.0, (100, 100)), [10, 10, 99, 99])


def test_background_detection_is_only_useful_while_a_slot_is_free():
    """A stale detection changes nothing once every slot is taken, so the pipeline skips it (saves HOG's CPU)."""
    full = Tracker(max_people=1)
    full.update_detections(np.array([[100, 50, 200, 300]], np.float32))
    before = [(t.id, t.box.copy()) for t in full.tracks]
    assert not full.background_detection_useful()
    full.update_detections(np.array([[102, 52, 204, 298], [400, 40, 500, 300]], np.float32), stale=True)
    assert [(t.id, t.box.tolist()) for t in full.tracks] == [(i, b.tolist()) for i, b in before]
    spare = Tracker(max_people=2)
    spare.update_detections(np.array([[100, 50, 200, 300]], np.float32))
    assert spare.background_detection_useful()
    spare.update_detections(np.array([[400, 40, 500, 300]], np.float32), stale=True)
    assert len(spare.tracks) == 2 and not spare.background_detection_useful()


def test_a_person_whose_keypoints_fade_for_a_moment_gets_their_id_back():
    """Keypoints lost for a few frames (a crouch in the dark): the detection that finds the person again where
    they were lost gives back their id; after ``lost_frames`` (or somewhere else) it is a new person."""
    box = person_box(10, 0)

    def frames(tracker: Tracker, n: int, scores: float, moved: float = 0.0, there: bool = True) -> list[list[int]]:
        out = []
        for _ in range(n):
            where = box + np.array([moved, 0, moved, 0], np.float32)
            if tracker.needs_detection():
                tracker.update_detections(where[None] if there else np.zeros((0, 4), np.float32),
                                          np.array([0.9] if there else [], np.float32))
            ids, _boxes = tracker.boxes()
            if ids:
                tracker.update_keypoints(ids, keypoints_in(where)[None], np.full((1, 17), scores, np.float32),
                                         (640, 480))
            else:
                tracker.skip_frame()
            out.append(tracker.boxes()[0])
        return out

    tracker = Tracker(max_people=2, det_interval=1000, lost_frames=30)
    assert frames(tracker, 5, 0.9) == [[0]] * 5
    assert frames(tracker, 6, 0.05) == [[]] * 6  # faded: lost, and each new detection loses it again
    assert frames(tracker, 5, 0.9, moved=8.0) == [[0]] * 5  # found again, a step further: the same id
    frames(tracker, 1, 0.05)
    frames(tracker, 31, 0.05, there=False)  # gone for longer than lost_frames
    assert frames(tracker, 3, 0.9) == [[1]] * 3
    frames(tracker, 1, 0.05)
    assert frames(tracker, 3, 0.9, moved=300.0) == [[2]] * 3  # found elsewhere: somebody else


def test_fewer_people_from_another_thread_take_effect_at_the_next_frame():
    """The control API lowers max_people from its own thread while the inference thread matches detections:
    cutting the track list under it raised IndexError and stopped the pipeline."""
    import sys
    import threading
    import time

    tracker = Tracker(max_people=8)
    boxes = np.array([[100 * i, 0, 100 * i + 80, 200] for i in range(8)], np.float32)
    rng = np.random.default_rng(0)
    stop, errors = threading.Event(), []

    def infer() -> None:
        try:
            while not stop.is_set():
                tracker.update_detections(boxes + rng.uniform(-2, 2, boxes.shape).astype(np.float32))
                tracker.boxes()
        except Exception as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can: the race shows within ms
    worker = threading.Thread(target=infer)
    worker.start()
    try:
        end = time.monotonic() + 2.0
        while time.monotonic() < end and not errors:
            tracker.set_params(max_people=1)
            tracker.set_params(max_people=8)
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(interval)
    assert not errors, errors
    tracker.set_params(max_people=2)
    tracker.update_detections(boxes)
    ids, got = tracker.boxes()
    assert len(ids) == len(got) == 2
