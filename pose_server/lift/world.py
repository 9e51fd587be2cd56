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
"""

from __future__ import annotations

from itertools import count

import numpy as np

__all__ = ["SharedWorld"]


class SharedWorld:
    """The session's world origin (level camera frame, metres), owned by the pipeline, shared by its lifters."""

    def __init__(self, settle_frames: int = 45) -> None:
        self.origin: np.ndarray | None = None
        self.owner: int | None = None  # the key of the track whose floor is Z = 0
        self.settle_frames = int(settle_frames)  # (1.5 s at 30 fps: a lifter's calibration time)
        self._settling = 0
        self._keys = count()

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
