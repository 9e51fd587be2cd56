"""Heatmaps -> keypoints: DARK-UDP refinement and UDP back-projection, as mmpose ``keypoints_from_heatmaps``
with ``post_process='default'``, ``use_udp=True``, ``target_type='GaussianHeatmap'`` (the ViTPose test config).

Everything works on whole batches (N people x K keypoints) at once with numpy.
"""

from __future__ import annotations

import cv2
import numpy as np


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
    """``cv2.GaussianBlur(map, (kernel, kernel), 0)`` of every map in float32, as mmpose's ``post_dark_udp`` does.

    OpenCV derives sigma from the size (2.0 for 11 taps); the border is reflect-101. One call per map: OpenCV
    blurs a 64x48 map in ~20 us, faster than one multi-channel call (same numbers) or a float64 scipy filter
    (which rounds differently and so moves the Newton step below on flat peaks).
    """
    n, k, h, w = heatmaps.shape
    src = np.ascontiguousarray(heatmaps, dtype=np.float32).reshape(n * k, h, w)
    out = np.empty_like(src)
    for i in range(n * k):
        cv2.GaussianBlur(src[i], (kernel, kernel), 0, dst=out[i])
    return out.reshape(n, k, h, w)


def refine_dark_udp(coords: np.ndarray, heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK sub-pixel refinement, bit for bit mmpose ``post_dark_udp``: blur, log, one Newton step.

    The log of a Gaussian blob is a quadratic, so ``x - H^-1 g`` (gradient g and Hessian H by central
    differences at the integer peak) lands on the blob's true centre. The arithmetic is mmpose's: float32 blur,
    clip to [0.001, 50] and log; float32 differences summed in mmpose's order; the Hessian plus float32-eps * I
    inverted in float64 by LAPACK; the offset subtracted in float64 and stored as float32.

    Like mmpose, the neighbours are read from the flattened, edge-padded stack of maps, so a map with no positive
    value (coordinate (-1, -1)) reads its padded corner and the end of the previous map (the last map of the
    batch, for the first one) and gets whatever offset those values give. One deliberate difference: a singular
    Hessian (possible only on pathological maps) keeps the integer peak, where ``np.linalg.inv`` in mmpose raises
    for the whole batch.
    """
    n, k, h, w = heatmaps.shape
    logmaps = np.log(np.clip(blur_heatmaps(heatmaps, kernel), np.float32(0.001), np.float32(50.0)))
    flat = np.pad(logmaps, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge").ravel()
    row = w + 2
    # Integer index arithmetic (mmpose adds in float32, exact below 2**24 elements, i.e. ~5000 maps).
    base = (coords[..., 0].astype(np.int64) + 1) + (coords[..., 1].astype(np.int64) + 1) * row
    index = base + (row * (h + 2)) * np.arange(n * k).reshape(n, k)
    c = flat[index]
    xp, xm, yp, ym = flat[index + 1], flat[index - 1], flat[index + row], flat[index - row]
    dx = 0.5 * (xp - xm)
    dy = 0.5 * (yp - ym)
    dxx = xp - 2 * c + xm
    dyy = yp - 2 * c + ym
    # mmpose's mixed derivative: the two diagonal neighbours only, summed in this order (float32 rounding).
    dxy = 0.5 * (flat[index + row + 1] - xp - yp + c + c - xm - ym + flat[index - row - 1])
    derivative = np.stack([dx, dy], axis=-1)[..., None]  # (N, K, 2, 1) float32
    hessian = np.stack([dxx, dxy, dxy, dyy], axis=-1).reshape(n, k, 2, 2) + np.finfo(np.float32).eps * np.eye(2)
    inverse = _inverse_2x2(hessian)
    offset = np.einsum("ijmn,ijnk->ijmk", inverse, derivative)[..., 0]
    return (coords.astype(np.float64) - offset).astype(np.float32)


def _inverse_2x2(hessian: np.ndarray) -> np.ndarray:
    """``np.linalg.inv`` of a stack of 2x2 float64 matrices; a singular one becomes zeros (no offset)."""
    try:
        return np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        out = np.zeros_like(hessian)
        for idx in np.ndindex(hessian.shape[:-2]):
            try:
                out[idx] = np.linalg.inv(hessian[idx])
            except np.linalg.LinAlgError:
                pass
        return out


def heatmap_to_image(
    coords: np.ndarray, centers: np.ndarray, scales: np.ndarray, heatmap_size: tuple[int, int]
) -> np.ndarray:
    """Heatmap pixels (N, K, 2) -> image pixels with the UDP rule: the map's ``W - 1`` spans the crop width.

    ``heatmap_size`` is (W, H); ``centers``/``scales`` are the crop centres and sizes in image pixels (N, 2).
    mmpose ``transform_preds(use_udp=True)`` in float32: ``u * f32(sw / (W - 1)) + cx - sw / 2``, in that order.
    """
    scales = np.asarray(scales, dtype=np.float32)
    size = np.asarray(heatmap_size, dtype=np.float64) - 1.0
    per_px = (scales.astype(np.float64) / size).astype(np.float32)[:, None, :]
    half = (scales * np.float32(0.5))[:, None, :]
    out = np.asarray(coords, dtype=np.float32) * per_px
    out += np.asarray(centers, dtype=np.float32)[:, None, :]
    out -= half
    return out


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
