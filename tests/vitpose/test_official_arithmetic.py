"""Bit-exactness with the official ViTPose code (mmpose 0.x as vendored by ViTAE-Transformer/ViTPose).

The references below are written per box and per keypoint from mmpose's formulas (``_box2cs``,
``get_warp_matrix``, ``TopDownAffine(use_udp=True)``, ``post_dark_udp``, ``transform_preds(use_udp=True)``), with
the precision mmpose gets under NumPy 1.x made explicit: a float32 scalar mixed with a Python float is computed
in float64 (Python floats here), arrays stay float32 (np.float32 here). Our vectorised code must give the very same
bits; the float64-from-pixel-sizes variant it replaced must not (it moved crops by up to 2 grey levels).
"""

import math

import cv2
import numpy as np
import pytest

from pose_server.vitpose.decode import argmax_heatmaps, decode_heatmaps
from pose_server.vitpose.preprocess import boxes_to_center_scale, crop_boxes, warp_matrices

F32 = np.float32
INPUT = (192, 256)

# Boxes (x1, y1, x2, y2) on which a float64 matrix from pixel sizes moves crop pixels (found by a search).
FLOAT64_SENSITIVE = np.array(
    [
        [281.7309875488281, 230.98519897460938, 633.2635498046875, 386.04498291015625],
        [558.618408203125, 221.59048461914062, 621.2265014648438, 507.1939392089844],
        [129.25929260253906, 177.25238037109375, 432.3218078613281, 467.76776123046875],
        [27.49513816833496, 198.97335815429688, 350.94000244140625, 382.2510986328125],
    ],
    np.float32,
)


def mmpose_box2cs(box_xywh: np.ndarray, image_size: tuple[int, int] = INPUT) -> tuple[np.ndarray, np.ndarray]:
    """_box2cs: centre and scale (units of 200 px, padded 1.25x) of one float32 x, y, w, h box."""
    x, y, w, h = (float(v) for v in box_xywh)  # float32 values, float64 arithmetic
    aspect_ratio = image_size[0] / image_size[1]
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=F32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / 200.0, h / 200.0], dtype=F32)
    return center, scale * F32(1.25)


def mmpose_warp_matrix(theta: float, size_input: np.ndarray, size_dst: np.ndarray, size_target: np.ndarray):
    """get_warp_matrix: float64 scalar maths, stored into a float32 2x3 matrix."""
    theta = math.radians(theta)
    matrix = np.zeros((2, 3), dtype=F32)
    scale_x = float(size_dst[0]) / float(size_target[0])
    scale_y = float(size_dst[1]) / float(size_target[1])
    si0, si1, st0, st1 = (float(v) for v in (*size_input, *size_target))
    matrix[0, 0] = math.cos(theta) * scale_x
    matrix[0, 1] = -math.sin(theta) * scale_x
    matrix[0, 2] = scale_x * (-0.5 * si0 * math.cos(theta) + 0.5 * si1 * math.sin(theta) + 0.5 * st0)
    matrix[1, 0] = math.sin(theta) * scale_y
    matrix[1, 1] = math.cos(theta) * scale_y
    matrix[1, 2] = scale_y * (-0.5 * si0 * math.sin(theta) - 0.5 * si1 * math.cos(theta) + 0.5 * st1)
    return matrix


def mmpose_affine(box_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TopDownAffine(use_udp=True) on our x1, y1, x2, y2 box given to mmpose as x, y, x2 - x1, y2 - y1."""
    x1, y1, x2, y2 = box_xyxy.astype(F32)
    c, s = mmpose_box2cs(np.array([x1, y1, x2 - x1, y2 - y1], F32))
    image_size = np.array(INPUT)  # int array, as cfg.data_cfg gives it
    return c, s * F32(200.0), mmpose_warp_matrix(0, c * F32(2.0), image_size - 1.0, s * F32(200.0))


def float64_matrix(box_xyxy: np.ndarray) -> np.ndarray:
    """What we computed before: centre and pixel size in float32, the matrix from them in float64."""
    x1, y1, x2, y2 = box_xyxy.astype(F32)
    cx, cy, w, h = (x1 + x2) * F32(0.5), (y1 + y2) * F32(0.5), x2 - x1, y2 - y1
    w, h = (w, w / F32(0.75)) if w > F32(0.75) * h else (h * F32(0.75), h)
    sw, sh = float(w * F32(1.25)), float(h * F32(1.25))
    fx, fy = 191 / sw, 255 / sh
    return np.array([[fx, 0, fx * (sw / 2 - float(cx))], [0, fy, fy * (sh / 2 - float(cy))]])


def textured_frame(seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (5, 5), 0)


def random_boxes(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x1, y1 = rng.uniform(-50, 900, count), rng.uniform(-50, 400, count)
    w, h = rng.uniform(1, 400, count), rng.uniform(1, 400, count)
    return np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(F32)


def test_center_scale_and_matrix_are_bit_exact_on_random_boxes() -> None:
    boxes = np.concatenate([random_boxes(300, seed=0), FLOAT64_SENSITIVE, [[0, 0, 1279, 719], [10, 20, 40, 60]]])
    centers, sizes = boxes_to_center_scale(boxes, INPUT)
    mats = warp_matrices(centers, sizes, INPUT)
    assert centers.dtype == sizes.dtype == mats.dtype == np.float32
    for box, c, size, mat in zip(boxes, centers, sizes, mats, strict=True):
        ref_c, ref_size, ref_mat = mmpose_affine(box)
        np.testing.assert_array_equal(c, ref_c)
        np.testing.assert_array_equal(size, ref_size)
        np.testing.assert_array_equal(mat, ref_mat)


def test_crops_are_bit_exact_where_float64_is_not() -> None:
    frame = textured_frame()
    centers, sizes = boxes_to_center_scale(FLOAT64_SENSITIVE, INPUT)
    crops = crop_boxes(frame, centers, sizes, INPUT)
    for box, crop in zip(FLOAT64_SENSITIVE, crops, strict=True):
        official = cv2.warpAffine(frame, mmpose_affine(box)[2], INPUT, flags=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(crop, official)
        # The float64 matrix is within 3e-5 of the official one, yet OpenCV's fixed-point sampling moves pixels.
        old = cv2.warpAffine(frame, float64_matrix(box), INPUT, flags=cv2.INTER_LINEAR)
        assert np.abs(float64_matrix(box) - official_matrix(box)).max() < 3e-5
        assert (old != official).any()


def official_matrix(box: np.ndarray) -> np.ndarray:
    return mmpose_affine(box)[2].astype(np.float64)


def test_crops_are_bit_exact_on_many_boxes() -> None:
    frame = textured_frame(seed=6)
    boxes = random_boxes(60, seed=1)
    centers, sizes = boxes_to_center_scale(boxes, INPUT)
    crops = crop_boxes(frame, centers, sizes, INPUT)
    official = np.stack([cv2.warpAffine(frame, mmpose_affine(b)[2], INPUT, flags=cv2.INTER_LINEAR) for b in boxes])
    np.testing.assert_array_equal(crops, official)


# ---- decoding: keypoints_from_heatmaps(post_process='default', use_udp=True, target_type='GaussianHeatmap')


def mmpose_decode(heatmaps: np.ndarray, centers: np.ndarray, sizes: np.ndarray, kernel: int = 11):
    """Per-map reference of _get_max_preds + post_dark_udp + transform_preds(use_udp=True)."""
    maps = heatmaps.astype(F32).copy()
    n, k, h, w = maps.shape
    flat_in = maps.reshape(n, k, -1)
    idx, maxvals = flat_in.argmax(2), flat_in.max(2)
    preds = np.stack([idx % w, idx // w], axis=-1).astype(F32)
    preds[maxvals <= 0] = -1
    for person in maps:
        for m in person:
            cv2.GaussianBlur(m, (kernel, kernel), 0, m)
    np.clip(maps, 0.001, 50, maps)
    np.log(maps, maps)
    padded = np.pad(maps, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge").ravel()
    stride = (w + 2) * (h + 2)
    out = preds.copy()
    for i in range(n):
        for j in range(k):
            at = int(preds[i, j, 0]) + 1 + (int(preds[i, j, 1]) + 1) * (w + 2) + stride * (i * k + j)

            def v(offset: int, at: int = at) -> F32:
                return padded[at + offset]  # negative positions wrap around, as numpy indexing does in mmpose

            dx, dy = F32(0.5) * (v(1) - v(-1)), F32(0.5) * (v(w + 2) - v(-w - 2))
            dxx = v(1) - F32(2) * v(0) + v(-1)
            dyy = v(w + 2) - F32(2) * v(0) + v(-w - 2)
            dxy = F32(0.5) * (v(w + 3) - v(1) - v(w + 2) + v(0) + v(0) - v(-1) - v(-w - 2) + v(-w - 3))
            hess = np.array([[dxx, dxy], [dxy, dyy]], F32) + np.finfo(F32).eps * np.eye(2)
            offset = np.linalg.inv(hess) @ np.array([dx, dy], F32)
            out[i, j] = (preds[i, j].astype(np.float64) - offset).astype(F32)
    # transform_preds(use_udp=True), per person, in float32 with float32-rounded scalars
    for i in range(n):
        sx, sy = F32(float(sizes[i, 0]) / (w - 1.0)), F32(float(sizes[i, 1]) / (h - 1.0))
        out[i, :, 0] = out[i, :, 0] * sx + centers[i, 0] - F32(sizes[i, 0] * F32(0.5))
        out[i, :, 1] = out[i, :, 1] * sy + centers[i, 1] - F32(sizes[i, 1] * F32(0.5))
    return out, maxvals


def noisy_maps(n: int, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:48].astype(F32)
    cx, cy = rng.uniform(0, 47, (n, k, 1, 1)), rng.uniform(0, 63, (n, k, 1, 1))
    blobs = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 8.0)
    return (blobs * rng.uniform(0.1, 1.0, (n, k, 1, 1)) + rng.normal(0, 0.03, (n, k, 64, 48))).astype(F32)


def boxes_for(n: int) -> tuple[np.ndarray, np.ndarray]:
    return boxes_to_center_scale(random_boxes(n, seed=2), INPUT)


@pytest.mark.parametrize("case", ["noisy", "not_positive", "above_50"])
def test_decode_is_bit_exact(case: str) -> None:
    maps = noisy_maps(3, 17, seed=3)
    if case == "not_positive":
        maps[0, 0] = -np.abs(maps[0, 0]) - 0.01  # the very first map: its neighbours wrap to the batch's end
        maps[1, 5] = -np.abs(maps[1, 5])  # reads the previous map's last values
        maps[2, 16] = 0.0
    elif case == "above_50":
        maps[:, ::2] *= 120.0  # blurred peaks above the clip at 50: flat log tops
        maps[1, 3] = 80.0  # a constant map
    centers, sizes = boxes_for(3)
    kp, scores = decode_heatmaps(maps, centers, sizes)
    ref_kp, ref_scores = mmpose_decode(maps, centers, sizes)
    np.testing.assert_array_equal(scores, ref_scores)
    np.testing.assert_array_equal(kp, ref_kp)
    if case == "not_positive":
        coords, _ = argmax_heatmaps(maps)
        assert (coords[0, 0] == -1).all() and (coords[1, 5] == -1).all()
