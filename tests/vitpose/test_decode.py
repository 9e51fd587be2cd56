"""DARK-UDP decoding, flip-back and UDP back-projection on synthetic heatmaps with known answers."""

import cv2
import numpy as np
import pytest

from pose_server.vitpose.decode import (
    argmax_heatmaps,
    blur_heatmaps,
    decode_heatmaps,
    flip_back,
    heatmap_to_image,
    image_to_heatmap,
    refine_dark_udp,
)
from pose_server.vitpose.preprocess import boxes_to_center_scale, warp_matrices

H, W = 64, 48  # heatmap size of a 256x192 input


def gaussian_maps(points: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """(N, K, 2) sub-pixel centres -> (N, K, H, W) unit-peak Gaussian blobs, as mmpose's UDP training targets."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    dx = xx - points[..., 0, None, None]
    dy = yy - points[..., 1, None, None]
    return np.exp(-(dx**2 + dy**2) / (2 * sigma**2)).astype(np.float32)


def loop_dark_udp(coords: np.ndarray, heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """Per-keypoint reference of mmpose's DARK-UDP step (loops, OpenCV blur, np.linalg.solve)."""
    out = coords.copy()
    for n in range(heatmaps.shape[0]):
        for k in range(heatmaps.shape[1]):
            m = np.log(np.clip(cv2.GaussianBlur(heatmaps[n, k], (kernel, kernel), 0), 0.001, 50))
            m = np.pad(m, 1, mode="edge")
            x, y = int(coords[n, k, 0]) + 1, int(coords[n, k, 1]) + 1
            g = np.array([m[y, x + 1] - m[y, x - 1], m[y + 1, x] - m[y - 1, x]]) * 0.5
            dxx = m[y, x + 1] - 2 * m[y, x] + m[y, x - 1]
            dyy = m[y + 1, x] - 2 * m[y, x] + m[y - 1, x]
            # mmpose's mixed derivative uses the two diagonal neighbours only (not the 4-corner stencil).
            dxy = 0.5 * (m[y + 1, x + 1] - m[y, x + 1] - m[y + 1, x] + 2 * m[y, x] - m[y, x - 1] - m[y - 1, x])
            dxy += 0.5 * m[y - 1, x - 1]
            hess = np.array([[dxx, dxy], [dxy, dyy]]) + np.finfo(np.float32).eps * np.eye(2)
            out[n, k] -= np.linalg.solve(hess, g)
    return out


def test_recovers_subpixel_gaussian_centres() -> None:
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(6, W - 7, (4, 17)), rng.uniform(6, H - 7, (4, 17))], axis=-1).astype(np.float32)
    coords, scores = argmax_heatmaps(gaussian_maps(pts))
    assert np.abs(coords - pts).max() > 0.2  # the integer peak alone is not enough
    refined = refine_dark_udp(coords, gaussian_maps(pts))
    assert np.abs(refined - pts).max() < 0.05
    assert np.all(scores > 0.5) and np.all(scores <= 1.0)


def test_scores_are_heatmap_maxima_and_batch_matches_per_map_reference() -> None:
    rng = np.random.default_rng(1)
    pts = np.stack([rng.uniform(3, W - 4, (3, 5)), rng.uniform(3, H - 4, (3, 5))], axis=-1)
    maps = gaussian_maps(pts) * rng.uniform(0.2, 0.9, (3, 5, 1, 1)).astype(np.float32)
    maps += rng.uniform(0, 0.05, maps.shape).astype(np.float32)  # noise: the Taylor step is no longer exact
    coords, scores = argmax_heatmaps(maps)
    np.testing.assert_allclose(scores, maps.max(axis=(2, 3)))
    np.testing.assert_allclose(refine_dark_udp(coords, maps), loop_dark_udp(coords, maps), atol=1e-4)


def test_blur_is_opencv_gaussian_blur() -> None:
    maps = np.random.default_rng(2).random((2, 3, H, W), dtype=np.float32)
    expected = np.stack([[cv2.GaussianBlur(m, (11, 11), 0) for m in person] for person in maps])
    np.testing.assert_allclose(blur_heatmaps(maps, 11), expected, atol=1e-6)


def test_empty_maps_do_not_produce_nan() -> None:
    maps = np.zeros((1, 2, H, W), np.float32)
    maps[0, 1] = gaussian_maps(np.array([[[20.3, 30.7]]], np.float32))[0, 0]
    kp, scores = decode_heatmaps(maps, np.array([[100.0, 100.0]]), np.array([[150.0, 200.0]]))
    assert np.isfinite(kp).all()
    assert scores[0, 0] == 0 and scores[0, 1] == pytest.approx(1.0, abs=0.05)


def test_flip_back_of_flip_back_is_identity_and_swaps_pairs() -> None:
    maps = np.random.default_rng(3).random((2, 4, H, W), dtype=np.float32)
    perm = np.array([0, 2, 1, 3])
    once = flip_back(maps, perm)
    np.testing.assert_array_equal(flip_back(once, perm), maps)
    np.testing.assert_array_equal(once[:, 1], maps[:, 2, :, ::-1])
    np.testing.assert_array_equal(once[:, 0], maps[:, 0, :, ::-1])


def test_flipped_blob_decodes_to_mirrored_point_without_shift() -> None:
    """UDP: a blob at x in the mirrored crop decodes to W-1-x after flip-back, with no one-pixel correction."""
    pt = np.array([[[13.37, 22.5], [30.2, 40.8]]], np.float32)
    flipped_maps = gaussian_maps(pt)
    maps = flip_back(flipped_maps, np.array([1, 0]))
    coords, _ = argmax_heatmaps(maps)
    refined = refine_dark_udp(coords, maps)
    expected = np.stack([W - 1 - pt[0, ::-1, 0], pt[0, ::-1, 1]], axis=-1)[None]
    assert np.abs(refined - expected).max() < 0.05


def test_back_projection_round_trips_through_the_crop() -> None:
    """Image point -> UDP crop warp -> heatmap blob -> decode -> the same image point."""
    boxes = np.array([[400.0, 120.0, 620.0, 700.0], [50.5, 60.25, 300.0, 200.0]], np.float32)
    centers, scales = boxes_to_center_scale(boxes)
    rng = np.random.default_rng(4)
    lo, hi = centers - scales * 0.4, centers + scales * 0.4
    pts = (lo[:, None] + rng.random((2, 17, 2)) * (hi - lo)[:, None]).astype(np.float32)
    # Through the actual warp matrix: input pixel u, then heatmap pixel u * (W-1) / (192-1).
    mats = warp_matrices(centers, scales)
    crop_px = np.einsum("nij,nkj->nki", mats[:, :, :2], pts) + mats[:, None, :, 2]
    hm_px = crop_px * np.array([(W - 1) / 191, (H - 1) / 255])
    np.testing.assert_allclose(hm_px, image_to_heatmap(pts, centers, scales, (W, H)), atol=1e-3)
    kp, _ = decode_heatmaps(gaussian_maps(hm_px.astype(np.float32)), centers, scales)
    image_px_per_hm_px = (scales / np.array([W - 1, H - 1])).max()
    assert np.abs(kp - pts).max() < 0.05 * image_px_per_hm_px
    np.testing.assert_allclose(heatmap_to_image(hm_px, centers, scales, (W, H)), pts, atol=1e-3)


def test_decode_handles_zero_people() -> None:
    kp, scores = decode_heatmaps(np.zeros((0, 133, H, W), np.float32), np.zeros((0, 2)), np.zeros((0, 2)))
    assert kp.shape == (0, 133, 2) and scores.shape == (0, 133)
    assert kp.dtype == np.float32 and scores.dtype == np.float32
