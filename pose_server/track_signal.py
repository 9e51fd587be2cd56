"""The signal stage for one tracked person: 2D One Euro filter -> 3D lifter -> IK rotations."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .config import PipelineConfig
from .filters import KeypointFilter
from .hands import HandTracker, forearm_deltas, world_from_camera
from .left_right import guard_for
from .lift.camera import lifter_camera
from .lift.world import SharedWorld
from .skeleton import get_skeleton


class TrackSignal:
    """Per-track state: the 2D One Euro filter and the lifter, whose own 3D One Euro filter (tuned for
    metres by its owner) is the 3D filter; a second one on top would only add lag. ``world``: the session's
    shared world frame (one per pipeline, so every performer lands where the camera sees them); None = its own."""

    def __init__(self, cfg: PipelineConfig, skeleton: str | int, image_size: tuple[int, int], lift: Any,
                 world: SharedWorld | None = None) -> None:
        layout = get_skeleton(skeleton)  # by name ("coco17", "ap10k17", ...) or keypoint count (17 means COCO)
        self.f2d = KeypointFilter(num_keypoints=layout.num_keypoints, dims=2, **_filter_params(cfg))
        self.guard = guard_for(layout.name, cfg.kpt_threshold) if cfg.swap_guard else None
        prior = "default" if cfg.depth_prior else None  # (the geometric lifter's; the learned one ignores it)
        self.lifter = (  # the lifters read a person's COCO-17 body: an animal's or another layout's stays 2D
            lift(image_size=image_size, min_score=cfg.kpt_threshold, depth_prior=prior, height_m=cfg.performer_height,
                 hfov_deg=cfg.camera_hfov, camera_pitch_deg=cfg.camera_pitch, world=world)
            if lift is not None and layout.coco_body else None
        )
        self.last_seen = 0.0
        # The lifter's time on the last frame, wall and this thread's CPU (pose-server bench reports both: the wall
        # time grows when inference threads share the cores, the CPU time is what lifting itself costs).
        self.lift_ms: float | None = None
        self.lift_cpu_ms: float | None = None
        self.cfg, self.image_size = cfg, image_size
        self.hands: HandTracker | None = None  # made on the first whole-body frame sent as protocol v4
        self._hands_pitch = 0.0  # the camera pitch the hands' camera-to-world turn was built with

    def set_params(self, cfg: PipelineConfig) -> None:
        self.f2d.set_params(**_filter_params(cfg))
        if self.lifter is not None and hasattr(self.lifter, "set_params"):
            self.lifter.set_params(min_score=cfg.kpt_threshold)

    def person(self, tid: int, box: np.ndarray, kpts: np.ndarray, scores: np.ndarray, t: float,
               solve: Callable | None, failed: Callable[[ValueError], None], hands: bool = False) -> dict:
        """The packet entry of this track at time t. solve: the IK (None = no rotations); failed: told
        of each pose the lifter/IK refused; hands: solve the hands too (133 whole-body keypoints)."""
        self.last_seen = t
        kpts, scores = np.asarray(kpts), np.asarray(scores)
        unseen = ~(np.isfinite(kpts).all(axis=1) & np.isfinite(scores))
        if unseen.any():  # a NaN heatmap (a model's overflow) decodes to NaN: not seen, and never a NaN sent
            kpts, scores = np.where(unseen[:, None], 0.0, kpts), np.where(unseen, 0.0, scores)
        if self.guard is not None:  # a detector's left/right exchange undone before anything remembers it
            kpts, scores = self.guard(kpts, scores, t)
        pts, sc, held = self.f2d(kpts, scores, t)
        person = {"id": int(tid), "bbox": box, "keypoints": pts, "scores": np.clip(sc, 0.0, 1.0),
                  "held": np.flatnonzero(held).tolist(), "joints_3d": None}
        if self.lifter is not None:
            if getattr(self.lifter, "wants_raw", False):
                # The temporal lifter smooths over time itself and was trained on raw detections, with missing
                # points held as this filter holds them: raw keypoints and scores, the filter's held points.
                raw = np.where(held[:, None], pts, np.asarray(kpts, dtype=np.float64))
                person.update(self._lift(raw, np.asarray(scores, dtype=np.float64), t, solve, failed))
            else:
                person.update(self._lift(pts, sc, t, solve, failed))
        if hands:
            try:
                person["hands"] = self._hands(pts, sc, t, person.get("rotations"))
            except (ValueError, np.linalg.LinAlgError) as exc:  # a degenerate hand costs its hands, not the stream
                failed(ValueError(f"hands: {exc}"))
        return person

    def _hands(self, pts: np.ndarray, scores: np.ndarray, t: float, rotations: np.ndarray | None) -> list:
        """Both hands from the filtered 2D keypoints, seen by the lifter's camera (pose_server/hands)."""
        pitch = self._pitch()
        if self.hands is None:
            cfg = self.cfg
            _size, focal, center = lifter_camera(self.image_size, None, cfg.camera_hfov, cfg.performer_height)
            self.hands = HandTracker(focal, center, cfg.performer_height, pitch)
        elif pitch != self._hands_pitch:  # the lifter's estimate settles over the first seconds: the hands follow it
            self.hands.cam_to_world = world_from_camera(pitch)
        self._hands_pitch = pitch
        forearms = forearm_deltas(rotations) if rotations is not None else None
        return self.hands(pts, scores, t, self.cfg.kpt_threshold, forearms)

    def _pitch(self) -> float:
        """The camera pitch the body's world frame is built with: told, or the lifter's estimate (level if none)."""
        told = self.cfg.camera_pitch
        return float(told) if told is not None else float(getattr(self.lifter, "pitch_deg", 0.0) or 0.0)

    def _lift(self, pts: np.ndarray, scores: np.ndarray, t: float, solve: Callable | None,
              failed: Callable[[ValueError], None]) -> dict:
        """joints_3d (and v2 rotations) of one person; a pose the lifter/IK cannot handle (e.g. two joints on
        one pixel) sends the 2D keypoints alone rather than stopping the stream."""
        try:
            t0, c0 = time.perf_counter(), time.thread_time()  # the CPU span inside the wall span
            joints = self.lifter(pts[:17], scores[:17], t)
            c1, t1 = time.thread_time(), time.perf_counter()
            self.lift_ms, self.lift_cpu_ms = (t1 - t0) * 1000, (c1 - c0) * 1000
            if joints is None or not np.isfinite(joints).all():
                return {}
            out = {"joints_3d": joints}
            contacts = getattr(self.lifter, "contacts", None)
            if contacts is not None:
                out["contacts"] = np.clip(contacts, 0.0, 1.0)
            if solve is not None:
                out["rotations"] = solve(joints)
            return out
        except ValueError as exc:
            failed(exc)
            return {}


def _filter_params(cfg: PipelineConfig) -> dict:
    return {"min_cutoff": cfg.min_cutoff, "beta": cfg.beta, "d_cutoff": cfg.d_cutoff, "min_score": cfg.kpt_threshold,
            "hold_s": cfg.hold_s}
