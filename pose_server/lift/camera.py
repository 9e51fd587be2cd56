"""Pinhole camera: OpenCV axes (x right, y down, z forward), world Z up."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PinholeCamera", "focal_from_fov", "lifter_camera", "DEFAULT_HFOV_DEG"]

DEFAULT_HFOV_DEG = 60.0  # a typical webcam / phone main camera in landscape


def focal_from_fov(width: float, hfov_deg: float = DEFAULT_HFOV_DEG) -> float:
    """Focal length in pixels for an image ``width`` pixels wide with horizontal field of view ``hfov_deg``."""
    return 0.5 * width / math.tan(math.radians(hfov_deg) / 2)


def lifter_camera(image_size: tuple[int, int], focal: float | None, hfov_deg: float, height_m: float
                  ) -> tuple[tuple[int, int], float, np.ndarray]:
    """A lifter's checked (width, height), focal length (given, or from the field of view) and principal point."""
    w, h = image_size
    if w <= 0 or h <= 0:
        raise ValueError(f"image_size must be positive (width, height) in pixels, got {image_size}")
    if not 0.5 < height_m < 2.5:
        raise ValueError(f"height_m is the performer's height in metres (0.5-2.5), got {height_m}")
    return (int(w), int(h)), float(focal) if focal else focal_from_fov(w, hfov_deg), np.array([w / 2.0, h / 2.0])


class PinholeCamera:
    """A camera at ``position`` looking at ``target`` (world metres, Z up), no roll, square pixels."""

    def __init__(
        self,
        image_size: tuple[int, int],
        position: np.ndarray,
        target: np.ndarray,
        hfov_deg: float = DEFAULT_HFOV_DEG,
    ) -> None:
        self.width, self.height = image_size
        self.focal = focal_from_fov(self.width, hfov_deg)
        self.center = np.array([self.width / 2, self.height / 2])
        self.position = np.asarray(position, dtype=float)
        fwd = np.asarray(target, dtype=float) - self.position
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        self.r_cw = np.stack([right, down, fwd])  # rows: camera axes in world -> world to camera

    @classmethod
    def orbit(
        cls,
        image_size: tuple[int, int],
        target: np.ndarray,
        azimuth_deg: float,
        distance: float,
        height: float,
        hfov_deg: float = DEFAULT_HFOV_DEG,
    ) -> PinholeCamera:
        """Camera ``distance`` m from ``target`` (horizontally) at ``height`` m; azimuth 0 = in front (at -Y),
        90 = at the performer's left (+X)."""
        a = math.radians(azimuth_deg)
        tgt = np.asarray(target, dtype=float)
        pos = np.array([tgt[0] + distance * math.sin(a), tgt[1] - distance * math.cos(a), height])
        return cls(image_size, pos, tgt, hfov_deg)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World (..., 3) -> camera coordinates (..., 3)."""
        return (np.asarray(points) - self.position) @ self.r_cw.T

    def project(self, points: np.ndarray) -> np.ndarray:
        """World (..., 3) -> pixels (..., 2)."""
        pc = self.to_camera(points)
        return self.focal * pc[..., :2] / pc[..., 2:3] + self.center

    def level_world(self, points: np.ndarray) -> np.ndarray:
        """World points re-expressed in the lifter's frame: Z up, Y = the camera's horizontal viewing direction."""
        fwd = self.r_cw[2].copy()
        fwd[2] = 0.0
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        rot = np.stack([right, fwd, [0.0, 0.0, 1.0]])
        return np.asarray(points) @ rot.T
