"""Heatmaps -> keypoints: DARK-UDP refinement and UDP back-projection, as mmpose ``keypoints_from_heatmaps``
with ``post_process='default'``, ``use_udp=True``, ``target_type='GaussianHeatmap'`` (the ViTPose test config).

Everything works on whole batches (N people x K keypoints) at once with numpy.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import correlate1d


def argmax_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer peak of each heatmap: coords (N, K, 2) float32 as x, y and maxima (N, K) float32.

    Like mmpose, a map whose maximum is not positive gets the coordinate (-1, -1).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0].astype(np.float32)
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    coords[maxvals <= 0] = -1
    return coords, maxvals


def blur_heatmaps(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """Separable Gaussian blur of every map, identical to ``cv2.GaussianBlur(map, (kernel, kernel), 0)``.

    Same 1D kernel (sigma derived from the size by OpenCV) and the same border (reflect-101, scipy's "mirror"),
    but over the whole (N, K, H, W) stack at once instead of a Python loop over maps.
    """
    taps = cv2.getGaussianKernel(kernel, 0).ravel()
    # float64: a mirrored map sums in the opposite order, and float32 rounding differences would be amplified
    # by the Newton step on flat peaks (breaking the flip test's exact mirror symmetry).
    out = correlate1d(heatmaps.astype(np.float64), taps, axis=3, mode="mirror")
    return correlate1d(out, taps, axis=2, mode="mirror")


def refine_dark_udp(coords: np.ndarray, heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK sub-pixel refinement (mmpose ``post_dark_udp``): blur, log, one Newton step on a 2nd-order Taylor fit.

    The log of a Gaussian blob is a quadratic, so ``x - H^-1 g`` (gradient g and Hessian H by central
    differences at the integer peak) lands on the blob's true centre.
    """
    n, k, h, w = heatmaps.shape
    # float64 for the finite differences: near-flat peaks make the 2x2 solve sensitive to rounding.
    logmaps = np.log(np.clip(blur_heatmaps(heatmaps, kernel), 0.001, 50.0))
    padded = np.pad(logmaps, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    # Peak position inside the padded maps; (-1, -1) of empty maps reads the padded corner, as in mmpose.
    px = coords[..., 0].astype(np.int64) + 1
    py = coords[..., 1].astype(np.int64) + 1
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def at(dy: int, dx: int) -> np.ndarray:
        return padded[ni, ki, py + dy, px + dx]

    c = at(0, 0)
    xp, xm, yp, ym = at(0, 1), at(0, -1), at(1, 0), at(-1, 0)
    dx = 0.5 * (xp - xm)
    dy = 0.5 * (yp - ym)
    dxx = xp - 2 * c + xm
    dyy = yp - 2 * c + ym
    dxy = 0.5 * (at(1, 1) - xp - yp + 2 * c - xm - ym + at(-1, -1))
    # Closed-form inverse of [[dxx, dxy], [dxy, dyy]] + eps * I (mmpose adds the same eps before np.linalg.inv).
    eps = np.finfo(np.float32).eps
    a, d = dxx + eps, dyy + eps
    det = a * d - dxy * dxy
    with np.errstate(divide="ignore", invalid="ignore"):
        off_x = (d * dx - dxy * dy) / det
        off_y = (a * dy - dxy * dx) / det
    offset = np.stack([off_x, off_y], axis=-1)
    offset[~np.isfinite(offset)] = 0.0  # a flat map has no curvature: keep the integer peak
    return (coords - offset).astype(np.float32)


def heatmap_to_image(
    coords: np.ndarray, centers: np.ndarray, scales: np.ndarray, heatmap_size: tuple[int, int]
) -> np.ndarray:
    """Heatmap pixels (N, K, 2) -> image pixels with the UDP rule: the map's ``W - 1`` spans the crop width.

    ``heatmap_size`` is (W, H); ``centers``/``scales`` are the crop centres and sizes in image pixels (N, 2).
    """
    size = np.asarray(heatmap_size, dtype=np.float32) - 1.0
    per_px = (scales / size)[:, None, :]
    return (coords * per_px + (centers - scales * 0.5)[:, None, :]).astype(np.float32)


def image_to_heatmap(
    points: np.ndarray, centers: np.ndarray, scales: np.ndarray, heatmap_size: tuple[int, int]
) -> np.ndarray:
    """Inverse of :func:`heatmap_to_image` (used to build targets and in tests)."""
    size = np.asarray(heatmap_size, dtype=np.float32) - 1.0
    return ((points - (centers - scales * 0.5)[:, None, :]) * (size / scales)[:, None, :]).astype(np.float32)


def flip_back(heatmaps_flipped: np.ndarray, flip_indices: np.ndarray) -> np.ndarray:
    """Heatmaps of horizontally flipped crops -> heatmaps of the originals: swap left/right channels, mirror x.

    With UDP the mirror of column ``u`` is exactly ``W - 1 - u``, so no one-pixel shift is needed.
    """
    return heatmaps_flipped[:, flip_indices, :, ::-1]


def decode_heatmaps(
    heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray, kernel: int = 11
) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, H, W) heatmaps -> keypoints (N, K, 2) in image pixels and scores (N, K) (the heatmap maxima)."""
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    n, k, h, w = heatmaps.shape
    if n == 0:
        return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
    coords, scores = argmax_heatmaps(heatmaps)
    coords = refine_dark_udp(coords, heatmaps, kernel)
    return heatmap_to_image(coords, centers, scales, (w, h)), scores
