"""One world frame for every performer of a session (one camera), so the rigs stand where the people are.

Each lifter works in the *level camera frame*: the camera at 0, X right, Y the camera's horizontal viewing
direction, Z up (the camera's pitch removed). It is the same frame for every track of one camera, so giving all
tracks one origin in it keeps their relative placement: left/right, nearer/farther and higher/lower.

The packet's world = level camera frame - ``SharedWorld.origin``. The first track that places a pose claims the
world: the origin goes under its first pelvis, and its height follows that track's floor estimate over its first
``settle_frames`` poses, then stays: Z = 0 is the floor the first performer stood on at the start. Every track
(the first one too) keeps its own floor, the surface its feet stand on, at that surface's height in the shared
frame: a person standing on a roof 2.5 m above the first performer's floor stands at Z = 2.5, and the first
performer, jumping off the roof, goes down instead of taking the world's floor along.

The level camera frame needs the camera's pitch (how far it looks down): told (level by default), or, asked to
(``--camera-pitch auto``), estimated by the learned lifter from the performers (``observe_pitch``): a body standing
or walking is upright on average, so the angle at which the network (which sees the camera's tilt in perspective,
having been trained from -10 to +35 deg) shows the line from the ankles to the shoulders, median over every track's
straight-bodied frames, is the pitch. The estimate follows that median for its first ``pitch_frames`` samples (3 s
of one performer), then stays: a world that kept turning would tilt a take's floor. Measured (docs/lifting.md,
"Camera pitch"): on CMU mocap within 1 mm of the told pitch's MPJPE where assuming a level camera that looks 15-30
deg down costs 80-180 mm; it fails where the network's lean fails, e.g. a performer seen from below (the demo's man
on the roof), so it is not the default.
"""

from __future__ import annotations

import bisect
import math
from itertools import count

import numpy as np

from pose_server.lift.skeleton3d import J
from pose_server.lift.smoothing import midpoint

__all__ = ["SharedWorld"]


class SharedWorld:
    """The session's world origin (level camera frame, metres), owned by the pipeline, shared by its lifters."""

    def __init__(self, settle_frames: int = 45, pitch_frames: int = 90) -> None:
        self.origin: np.ndarray | None = None
        self.owner: int | None = None  # the key of the track whose floor is Z = 0
        self.settle_frames = int(settle_frames)  # (1.5 s at 30 fps: a lifter's calibration time)
        self._settling = 0
        self._keys = count()
        self.pitch_frames = int(pitch_frames)  # samples the pitch estimate follows (3 s of one performer at 30 fps)
        self.pitch_deg: float | None = None  # the estimated camera pitch; None until a straight body was seen
        self._pitches: list[float] = []  # the samples, sorted

    def join(self) -> int:
        """A key for a new track's lifter (identifies the owner; a lifter object's id() could be reused)."""
        return next(self._keys)

    def place(self, key: int, pelvis_xy: np.ndarray, floor: float) -> np.ndarray:
        """The origin for a pose of track ``key`` whose pelvis is at ``pelvis_xy`` (level camera frame) and whose
        own floor is at height ``floor``: the first caller fixes X, Y and sets Z over its first poses."""
        if self.origin is None:
            self.origin = np.array([float(pelvis_xy[0]), float(pelvis_xy[1]), float(floor)])
            self.owner = key
        elif key == self.owner and self._settling < self.settle_frames:
            self.origin[2] = float(floor)
        if key == self.owner:
            self._settling += 1
        return self.origin.copy()

    def observe_pitch(self, body: np.ndarray) -> float | None:
        """The camera pitch estimate (deg, down positive) after seeing one pose: ``body`` (17, 3) pelvis-relative joints
        in camera axes (x right, y down, z forward). Only a straight body counts (trunk and legs within STRAIGHT_DEG
        of one line: not sitting, bending or lying); its ankles-to-shoulders line is taken as vertical."""
        if len(self._pitches) >= self.pitch_frames:
            return self.pitch_deg
        b = body.tolist()
        shoulders, hips, ankles = (midpoint(b[J[f"l_{n}"]], b[J[f"r_{n}"]]) for n in ("shoulder", "hip", "ankle"))
        trunk, legs = _sub(shoulders, hips), _sub(hips, ankles)
        if _angle(trunk, legs) > STRAIGHT_DEG:
            return self.pitch_deg
        chain = _sub(shoulders, ankles)
        bisect.insort(self._pitches, math.degrees(math.atan2(-chain[2], -chain[1])))  # kept sorted: the median at once
        n = len(self._pitches)
        self.pitch_deg = self._pitches[n // 2] if n % 2 else 0.5 * (self._pitches[n // 2 - 1] + self._pitches[n // 2])
        return self.pitch_deg

    @property
    def pitch_samples(self) -> int:
        """How many straight-bodied poses the pitch estimate has seen."""
        return len(self._pitches)


STRAIGHT_DEG = 30.0  # the most a body's trunk and legs may bend against each other to show where up is


def _sub(a: list[float], b: list[float]) -> list[float]:
    return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]


def _angle(a: list[float], b: list[float]) -> float:
    dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    norms = math.sqrt((a[0] ** 2 + a[1] ** 2 + a[2] ** 2) * (b[0] ** 2 + b[1] ** 2 + b[2] ** 2))
    return math.degrees(math.acos(max(-1.0, min(1.0, dot / max(norms, 1e-12)))))
