"""Top-down tracking: the detector seeds tracks, the keypoints carry them from frame to frame.

The box a track uses on the next frame is the box around its confident keypoints on this frame,
expanded 1.25x. The detector only runs every `det_interval` frames, when there is no track, and
right after a track is lost, so a single performer costs about one detector run per second at
30 fps. Detections are matched to tracks by IoU with the Hungarian algorithm so ids stay stable.
A track whose keypoints fade (a crouch in the dark, a flare) is kept aside for `lost_frames`: a detection
where it was lost takes its id back instead of starting a new one (ByteTrack's lost-track buffer), so the
server's filters and the add-on's binding follow the person through the gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N,4) with every box in b (M,4), xyxy."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box's area, of every box in a (N,4) with every box in b (M,4), xyxy: 1 when
    one box holds the other (a detector's wide box around a track's narrow keypoint box: IoU can be 0.3)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return w * h / np.maximum(np.minimum(area_a[:, None], area_b[None, :]), 1e-9)


def keypoint_box(kpts: np.ndarray, scores: np.ndarray, min_score: float, expand: float,
                 image_size: tuple[int, int] | None = None) -> np.ndarray | None:
    """Box around the keypoints scoring >= min_score, scaled by `expand` about its centre."""
    pts = kpts[scores >= min_score]
    if len(pts) < 2:
        return None
    (x1, y1), (x2, y2) = pts.min(0), pts.max(0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = max(x2 - x1, 1.0) * expand, max(y2 - y1, 1.0) * expand
    box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)
    if image_size is not None:
        box = np.clip(box, 0, [image_size[0] - 1, image_size[1] - 1] * 2).astype(np.float32)
    return box


@dataclass
class Track:
    """One person followed across frames."""

    id: int
    box: np.ndarray
    score: float = 1.0
    age: int = 0
    lost_at: int = 0  # the tracker's frame when its keypoints were lost (tracks kept aside only)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity


class Tracker:
    """Keeps up to `max_people` tracks with stable ids."""

    def __init__(self, max_people: int = 1, det_interval: int = 30, iou_threshold: float = 0.3,
                 expand: float = 1.25, min_keypoint_score: float = 0.3, min_keypoints: int = 4,
                 duplicate_iou: float = 0.9, overlap_iou: float = 0.3, lost_frames: int = 30) -> None:
        self.max_people = max_people
        self.det_interval = det_interval
        self.iou_threshold = iou_threshold
        self.expand = expand
        self.min_keypoint_score = min_keypoint_score
        self.min_keypoints = min_keypoints
        self.duplicate_iou = duplicate_iou
        self.overlap_iou = overlap_iou
        self.lost_frames = lost_frames
        self.tracks: list[Track] = []
        self.lost: list[Track] = []  # tracks whose keypoints were lost in the last lost_frames frames
        self.frame = 0
        self.next_id = 0
        self.frames_since_detection = 10**9
        self.lost_since_detection = False
        self.detections = 0  # detector runs, for the one-per-second budget

    def needs_detection(self) -> bool:
        return self.urgent() or self.frames_since_detection >= max(1, self.det_interval)

    def urgent(self) -> bool:
        """Nobody is tracked or a track was just lost: this frame's boxes must come from the detector.
        (The periodic re-detection is not urgent: the pipeline may run it in the background.)"""
        return not self.tracks or self.lost_since_detection

    def background_detection_useful(self) -> bool:
        """Whether a periodic (background, hence stale) detection could change anything: its result only starts
        new tracks (matched tracks keep their newer keypoint boxes), so with every slot of ``max_people`` taken
        it would cost the detector's CPU (HOG: 22-27 ms, beside ViTPose on the same cores) for nothing."""
        return len(self.tracks) < self.max_people

    def detection_scheduled(self) -> None:
        """A background detection started: do not ask for another one until det_interval frames pass."""
        self.frames_since_detection = 0

    def boxes(self) -> tuple[list[int], np.ndarray]:
        """Ids and boxes (N,4) to run the pose model on this frame."""
        if len(self.tracks) > self.max_people:  # max_people lowered (set_params) since the last frame
            self.tracks = self.tracks[: self.max_people]
        if not self.tracks:
            return [], np.zeros((0, 4), np.float32)
        return [t.id for t in self.tracks], np.stack([t.box for t in self.tracks]).astype(np.float32)

    def update_detections(self, boxes: np.ndarray, scores: np.ndarray | None = None, stale: bool = False) -> None:
        """Match detections to tracks (Hungarian on IoU), start tracks for the unmatched ones.

        `stale`: the detections come from a frame a few frames back (background detection): matched
        tracks keep their newer keypoint boxes, and a new track only starts clear of existing ones."""
        self.detections += 1
        if not stale:
            self.frames_since_detection = 0
            self.lost_since_detection = False
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
        order = np.argsort(-scores)
        boxes, scores = boxes[order], scores[order]
        matched_dets: set[int] = set()
        if self.tracks and len(boxes):
            iou = iou_matrix(np.stack([t.predicted() for t in self.tracks]), boxes)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= self.iou_threshold:
                    matched_dets.add(int(c))
                    if stale:
                        continue
                    t = self.tracks[r]
                    t.velocity = 0.5 * t.velocity + 0.5 * (boxes[c] - t.box)
                    t.box, t.score = boxes[c].copy(), float(scores[c])
            # A track the detector no longer sees is kept only while its keypoints hold it (next update).
        for c in range(len(boxes)):
            if c in matched_dets or len(self.tracks) >= self.max_people:
                continue
            clear = self.overlap_iou if stale else self.duplicate_iou
            if self.tracks:
                held = np.stack([t.box for t in self.tracks])
                # a tracked person's box inside the detection (or the other way round) is that person again
                if iou_matrix(boxes[c], held).max() > clear or overlap_of_smaller(boxes[c], held).max() > 0.8:
                    continue
            self.tracks.append(self._revive(boxes[c], float(scores[c])))

    def _revive(self, box: np.ndarray, score: float) -> Track:
        """The track for a new detection: the recently lost track it overlaps most (its id back), else a new
        one."""
        self.lost = [t for t in self.lost if self.frame - t.lost_at <= self.lost_frames]
        if self.lost:
            iou = iou_matrix(box, np.stack([t.box for t in self.lost]))[0]
            best = int(np.argmax(iou))
            if iou[best] >= self.iou_threshold:
                track = self.lost.pop(best)
                track.box, track.score, track.velocity = box.copy(), score, np.zeros(4, np.float32)
                return track
        self.next_id += 1
        return Track(self.next_id - 1, box.copy(), score)

    def update_keypoints(self, ids: list[int], kpts: np.ndarray, scores: np.ndarray,
                         image_size: tuple[int, int] | None = None) -> list[int]:
        """Move each track's box to its keypoints for the next frame; drop tracks whose keypoints
        are lost (too few confident ones). Returns the ids that were lost."""
        by_id = {t.id: t for t in self.tracks}
        lost = []
        for tid, k, s in zip(ids, kpts, scores, strict=True):
            t = by_id.get(tid)
            if t is None:
                continue
            box = None
            if int((s >= self.min_keypoint_score).sum()) >= self.min_keypoints:
                box = keypoint_box(k, s, self.min_keypoint_score, self.expand, image_size)
            if box is None or box[2] - box[0] < 2 or box[3] - box[1] < 2:
                lost.append(tid)
                continue
            t.velocity = 0.5 * t.velocity + 0.5 * (box - t.box)
            t.box = box
            t.age += 1
        if lost:
            for t in self.tracks:
                if t.id in lost:
                    t.lost_at = self.frame
                    self.lost.append(t)
            self.tracks = [t for t in self.tracks if t.id not in lost]
            self.lost_since_detection = True
        self._drop_duplicates()
        self.skip_frame()
        return lost

    def skip_frame(self) -> None:
        """A frame is done (update_keypoints calls it; the pipeline calls it on frames without a track)."""
        self.frames_since_detection += 1
        self.frame += 1

    def _drop_duplicates(self) -> None:
        """Two tracks that converged on one person: keep the older one. While people overlap (crossing),
        ask for the detector on every frame so the Hungarian matching keeps each id on its person."""
        if len(self.tracks) < 2:
            return
        iou = iou_matrix(np.stack([t.box for t in self.tracks]), np.stack([t.box for t in self.tracks]))
        np.fill_diagonal(iou, 0.0)
        keep: list[int] = []
        for i in range(len(self.tracks)):  # tracks are in creation order: older first
            if all(iou[i, j] <= self.duplicate_iou for j in keep):
                keep.append(i)
        if len(keep) < len(self.tracks) or iou.max() > self.overlap_iou:
            self.lost_since_detection = True
        self.tracks = [self.tracks[i] for i in keep]

    def set_params(self, max_people: int | None = None, det_interval: int | None = None) -> None:
        """Safe from another thread (the control API's) while the inference thread runs: fewer people take effect
        at the next boxes(), so a list the inference thread is walking is never cut short under it."""
        if max_people is not None:
            self.max_people = int(max_people)
        if det_interval is not None:
            self.det_interval = int(det_interval)

    def reset(self) -> None:
        self.tracks = []
        self.lost = []
        self.frames_since_detection = 10**9
        self.lost_since_detection = False
