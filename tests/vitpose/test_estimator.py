"""VitPoseEstimator end to end on tiny random-weight checkpoints and frames drawn with OpenCV."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pose_server.skeleton import SKELETONS, get_skeleton
from pose_server.vitpose.backends import HeatmapNet
from pose_server.vitpose.decode import argmax_heatmaps, heatmap_to_image
from pose_server.vitpose.estimator import VitPoseEstimator
from pose_server.vitpose.loading import load_vitpose


def stick_figure(width: int = 640, height: int = 480, cx: int = 320) -> np.ndarray:
    """A BGR frame with a left/right-symmetric stick person centred on column ``cx``."""
    frame = np.full((height, width, 3), (40, 90, 30), np.uint8)
    cv2.circle(frame, (cx, 100), 30, (200, 180, 160), -1)
    for side in (-1, 1):
        cv2.line(frame, (cx, 130), (cx + side * 80, 220), (20, 20, 220), 12)  # arms
        cv2.line(frame, (cx, 300), (cx + side * 50, 440), (220, 30, 30), 14)  # legs
    cv2.line(frame, (cx, 130), (cx, 300), (0, 200, 255), 18)
    return frame


def test_shapes_for_zero_one_three_boxes(tiny_pth: Path) -> None:
    est = VitPoseEstimator(tiny_pth)
    assert est.num_keypoints == 17 and est.skeleton == "coco17" and est.spec.num_keypoints == 17
    frame = stick_figure()
    three = [[230, 50, 410, 460], [0, 0, 639, 479], [600, 400, 700, 520]]  # the last one is half outside
    for boxes in (np.zeros((0, 4)), three[:1], three):
        kp, scores = est(frame, boxes)
        n = len(boxes)
        assert kp.shape == (n, 17, 2) and scores.shape == (n, 17)
        assert kp.dtype == np.float32 and scores.dtype == np.float32
        assert np.isfinite(kp).all() and np.isfinite(scores).all()
    # Keypoints stay near the padded crop of their box (the heatmap covers exactly that region; on the noisy
    # maps of random weights the DARK Newton step may overshoot an edge peak by a heatmap pixel or two).
    kp, _ = est(frame, [[230, 50, 410, 460]])
    centers, scales = est.preprocess(frame, [[230, 50, 410, 460]])[1:]
    margin = 3 * scales / np.array([47, 63])
    lo, hi = centers - scales / 2 - margin, centers + scales / 2 + margin
    assert (kp[0] >= lo).all() and (kp[0] <= hi).all()


def test_pre_and_post_process_are_the_call(tiny_pth: Path) -> None:
    est = VitPoseEstimator(tiny_pth)
    frame = stick_figure()
    boxes = np.array([[230, 50, 410, 460], [100, 100, 300, 300]], np.float32)
    batch, centers, scales = est.preprocess(frame, boxes)
    assert batch.shape == (2, 3, 256, 192) and batch.dtype == np.float32
    heatmaps = est.backend(batch)
    assert heatmaps.shape == (2, 17, 64, 48)
    kp, scores = est.postprocess(heatmaps, centers, scales)
    kp2, scores2 = est(frame, boxes)
    np.testing.assert_allclose(kp, kp2, atol=1e-4)
    np.testing.assert_allclose(scores, np.clip(heatmaps.max(axis=(2, 3)), 0, 1), rtol=1e-6)
    assert (scores >= 0).all() and (scores <= 1).all() and (heatmaps.max(axis=(2, 3)) < 0).any()
    # Batching does not change a person's result (up to GEMM rounding, which DARK's float32 Newton step, as in
    # mmpose, can amplify to a fraction of a pixel on the flat, noisy maps of random weights).
    np.testing.assert_allclose(est.backend(batch[1:]), heatmaps[1:], atol=1e-4)
    kp_single, _ = est(frame, boxes[1:])
    np.testing.assert_allclose(kp_single[0], kp[1], atol=1.0)


def test_flip_test_is_mirror_equivariant(tiny_pth: Path) -> None:
    """With flip test, a mirrored frame and box give mirrored heatmaps with left/right swapped, hence mirrored
    peaks; the sub-pixel DARK step is mirror-exact for Gaussian peaks (test_decode), not for random maps."""
    est = VitPoseEstimator(tiny_pth, flip_test=True)
    frame = stick_figure(cx=300)
    frame[60:90, 250:280] = (255, 255, 255)  # break the symmetry
    width = frame.shape[1]
    # A tall box whose crop is 382 px wide (2 image px per input px) and starts on a whole pixel: the crop samples
    # whole columns, so the mirrored frame's crop is exactly the mirrored crop (no interpolation rounding).
    height = 382 / 0.75 / 1.25
    box = np.array([[260.0, 250 - height / 2, 340.0, 250 + height / 2]])
    mirrored_box = np.array([[width - 1 - 340.0, box[0, 1], width - 1 - 260.0, box[0, 3]]])
    batch, centers, scales = est.preprocess(frame, box)
    batch_m, centers_m, scales_m = est.preprocess(np.ascontiguousarray(frame[:, ::-1]), mirrored_box)
    np.testing.assert_array_equal(batch_m, batch[..., ::-1])
    perm = get_skeleton("coco17").flip_indices()
    maps, maps_m = est.backend(batch), est.backend(batch_m)
    np.testing.assert_allclose(maps_m, maps[:, perm, :, ::-1], atol=1e-6)
    assert not np.allclose(maps, maps[:, perm, :, ::-1], atol=1e-3)  # the input really is asymmetric
    # Integer peaks, back-projected, are mirrored pixel for pixel.
    coords, scores = argmax_heatmaps(maps)
    coords_m, scores_m = argmax_heatmaps(maps_m)
    found = (scores > 0)[:, perm] & ((maps == maps.max(axis=(2, 3), keepdims=True)).sum(axis=(2, 3)) == 1)[:, perm]
    assert found.sum() >= 8  # random weights: some maps have no positive value or a flat plateau (ties)
    kp = heatmap_to_image(coords, centers, scales, (48, 64))[:, perm]
    kp[..., 0] = width - 1 - kp[..., 0]
    kp_m = heatmap_to_image(coords_m, centers_m, scales_m, (48, 64))
    np.testing.assert_allclose(kp_m[found], kp[found], atol=1e-3)
    np.testing.assert_allclose(scores_m, scores[:, perm], atol=1e-6)


def test_flip_test_network_on_symmetric_input_gives_mirrored_maps(tiny_pth: Path) -> None:
    loaded = load_vitpose(tiny_pth)
    perm = get_skeleton("coco17").flip_indices()
    net = HeatmapNet(loaded.model, perm).eval()
    x = torch.randn(2, 3, 256, 192)
    symmetric = (x + x.flip(3)) / 2
    with torch.no_grad():
        maps = net(symmetric)
        assert not torch.allclose(loaded.model(symmetric), loaded.model(symmetric)[:, perm].flip(3), atol=1e-3)
        torch.testing.assert_close(maps, maps[:, perm].flip(3), atol=1e-5, rtol=1e-5)
        # Flip of flip: the mirrored input's maps, mirrored back, are the original maps.
        torch.testing.assert_close(net(x.flip(3))[:, perm].flip(3), net(x), atol=1e-5, rtol=1e-5)


def test_wholebody_133_end_to_end(tiny_wholebody_pth: Path) -> None:
    est = VitPoseEstimator(tiny_wholebody_pth, dataset="wholebody", flip_test=True)
    assert est.num_keypoints == 133 and est.skeleton == "wholebody133"
    kp, scores = est(stick_figure(), [[230, 50, 410, 460], [10, 10, 200, 300]])
    assert kp.shape == (2, 133, 2) and scores.shape == (2, 133)
    assert np.isfinite(kp).all()
    kp0, _ = est(stick_figure(), np.zeros((0, 4)))
    assert kp0.shape == (0, 133, 2)


def test_bad_arguments_say_what_to_do(tiny_pth: Path) -> None:
    with pytest.raises(ValueError, match="backend='onnx'"):
        VitPoseEstimator(tiny_pth, quantize=True)
    with pytest.raises(ValueError, match="backend must be"):
        VitPoseEstimator(tiny_pth, backend="tensorrt")
    est = VitPoseEstimator(tiny_pth)
    with pytest.raises(ValueError, match="x1, y1, x2, y2"):
        est(stick_figure(), [[100, 100, 50, 50]])
    with pytest.raises(ValueError, match="BGR"):
        est(np.zeros((480, 640), np.uint8), [[0, 0, 10, 10]])


def test_skeleton_layouts_are_consistent() -> None:
    for name, skeleton in SKELETONS.items():
        perm = skeleton.flip_indices()
        np.testing.assert_array_equal(perm[perm], np.arange(skeleton.num_keypoints))  # an involution
        for a, b in skeleton.flip_pairs:
            left, right = skeleton.keypoints[a], skeleton.keypoints[b]
            if "left" in left or "right" in left:  # named pairs really are left/right partners
                assert left.replace("left", "right") == right or left.replace("right", "left") == right, name
        assert all(0 <= i < skeleton.num_keypoints for bone in skeleton.bones for i in bone), name
    assert get_skeleton(133).keypoints[91] == "left_hand_root" and get_skeleton("coco").num_keypoints == 17
    assert get_skeleton("wholebody133").flip_indices()[23] == 23 + 16  # face contour mirrors
    with pytest.raises(ValueError, match="unknown skeleton"):
        get_skeleton("body25")


def test_the_precision_and_threads_asked_for_are_what_runs(tiny_checkpoint, tmp_path, monkeypatch):
    """--backend onnx --precision fp32 ran int8 (quantize is on by default); --threads did not reach PyTorch."""
    import torch

    from pose_server.config import PipelineConfig, load_estimator

    monkeypatch.chdir(tmp_path)  # the ONNX export's cache (checkpoints/onnx/) lands here
    ckpt = str(tiny_checkpoint())
    def label(**kw) -> str:
        return load_estimator(PipelineConfig(checkpoint=ckpt, **kw)).backend_label

    assert label(backend="onnx", precision="fp32") == "onnx fp32"
    assert label(backend="onnx") == "onnx int8"
    assert label(backend="onnx", precision="int8", quantize=False) == "onnx int8"
    with pytest.raises(ValueError, match="fp32 or int8"):
        load_estimator(PipelineConfig(checkpoint=ckpt, backend="onnx", precision="bf16"))
    before = torch.get_num_threads()
    try:
        load_estimator(PipelineConfig(checkpoint=ckpt, backend="torch", threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
