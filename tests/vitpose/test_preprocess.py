"""UDP top-down crop: box -> centre/size, the affine warp, colour order and normalisation."""

import cv2
import numpy as np
import pytest

from pose_server.vitpose.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    as_boxes,
    boxes_to_center_scale,
    check_frame,
    crop_boxes,
    normalize_crops,
    warp_matrices,
)


def test_center_scale_keeps_aspect_and_pads() -> None:
    tall = [10, 20, 110, 220]  # 100 x 200: too narrow for 3:4, width grows to 150
    wide = [0, 0, 300, 100]  # 300 x 100: too flat, height grows to 400
    centers, scales = boxes_to_center_scale(np.array([tall, wide], np.float32))
    np.testing.assert_allclose(centers, [[60, 120], [150, 50]])
    np.testing.assert_allclose(scales, [[150 * 1.25, 200 * 1.25], [300 * 1.25, 400 * 1.25]])


def test_warp_matrix_is_the_udp_formula() -> None:
    centers = np.array([[320.0, 240.0]])
    scales = np.array([[300.0, 400.0]])
    (mat,) = warp_matrices(centers, scales)
    sx, sy = 191 / 300, 255 / 400
    expected = np.array([[sx, 0, sx * (150 - 320)], [0, sy, sy * (200 - 240)]])
    assert mat.dtype == np.float32  # as mmpose's get_warp_matrix (test_official_arithmetic pins the bits)
    np.testing.assert_allclose(mat, expected, rtol=1e-7)
    # The crop's corner pixels are the box's corners: UDP maps the full width onto W - 1.
    corners = np.array([[170.0, 40.0, 1.0], [470.0, 440.0, 1.0]])
    np.testing.assert_allclose(corners @ mat.T, [[0, 0], [191, 255]], atol=1e-4)


def test_crop_matches_hand_computed_affine_on_a_synthetic_image() -> None:
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # A linear ramp per channel (bilinear sampling of a linear image is exact) with different slopes.
    planes = [0.3 * xx + 0.1 * yy, 0.05 * xx + 0.4 * yy + 20, 200 - 0.2 * xx - 0.1 * yy]
    image = np.clip(np.round(np.stack(planes, axis=-1)), 0, 255).astype(np.uint8)
    box = np.array([[200.0, 100.0, 380.0, 400.0]])
    centers, scales = boxes_to_center_scale(box)
    crop = crop_boxes(image, centers, scales)[0]
    assert crop.shape == (256, 192, 3) and crop.dtype == np.uint8
    # Hand-computed inverse: crop pixel (u, v) samples the image at x = u * sw / 191 + cx - sw / 2 (same for y).
    v, u = np.mgrid[0:256, 0:192].astype(np.float64)
    x = u * scales[0, 0] / 191 + centers[0, 0] - scales[0, 0] / 2
    y = v * scales[0, 1] / 255 + centers[0, 1] - scales[0, 1] / 2
    inside = (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    expected = np.stack([0.3 * x + 0.1 * y, 0.05 * x + 0.4 * y + 20, 200 - 0.2 * x - 0.1 * y], axis=-1)
    err = np.abs(crop.astype(np.float64) - expected)[inside]
    assert err.max() <= 1.5  # uint8 rounding of the source and of the result
    assert (crop[~inside] == 0).all()  # outside the frame is black, as mmpose


def test_crop_puts_a_marked_pixel_where_the_matrix_says() -> None:
    image = np.zeros((600, 900, 3), np.uint8)
    cv2.circle(image, (517, 233), 3, (255, 255, 255), -1)
    centers, scales = boxes_to_center_scale(np.array([[400.0, 100.0, 640.0, 500.0]]))
    crop = crop_boxes(image, centers, scales)[0, ..., 0].astype(np.float64)
    ys, xs = np.nonzero(crop > 0)
    weights = crop[ys, xs]
    found = np.array([np.average(xs, weights=weights), np.average(ys, weights=weights)])
    mat = warp_matrices(centers, scales)[0]
    np.testing.assert_allclose(found, mat @ [517, 233, 1], atol=0.3)


def test_normalize_is_rgb_imagenet_nchw() -> None:
    crops = np.zeros((2, 256, 192, 3), np.uint8)
    crops[..., 0] = 10  # blue
    crops[..., 2] = 250  # red
    batch = normalize_crops(crops)
    assert batch.shape == (2, 3, 256, 192) and batch.dtype == np.float32 and batch.flags.c_contiguous
    expected_rgb = (np.array([250, 0, 10]) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(batch[1, :, 100, 50], expected_rgb, rtol=1e-5)


def test_bad_boxes_and_frames_are_rejected_clearly() -> None:
    assert as_boxes([]).shape == (0, 4)
    assert as_boxes([1, 2, 3, 4, 0.9]).shape == (1, 4)  # a score column is dropped
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        as_boxes([[10, 10, 5, 50]])
    with pytest.raises(ValueError, match="NaN"):
        as_boxes([[0, 0, np.nan, 5]])
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        as_boxes([[1, 2, 3]])
    with pytest.raises(ValueError, match="BGR"):
        check_frame(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        check_frame(np.zeros((10, 10, 3), np.float32))
