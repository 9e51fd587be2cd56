"""ONNX Runtime backend: export cache, fp32 parity with PyTorch, int8 closeness, flip test in the graph."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pose_server.vitpose.auto import map_correlations
from pose_server.vitpose.backends import HeatmapNet, MatMulClassicDecoder, for_export
from pose_server.vitpose.estimator import VitPoseEstimator
from pose_server.vitpose.loading import load_vitpose
from tests.vitpose.test_estimator import stick_figure

BOXES = np.array([[230, 50, 410, 460], [10, 10, 200, 300], [300, 200, 600, 470]], np.float32)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.mark.parametrize("flip_test", [False, True])
def test_onnx_fp32_matches_torch(tiny_pth: Path, cache_dir: Path, flip_test: bool) -> None:
    torch_est = VitPoseEstimator(tiny_pth, flip_test=flip_test)
    onnx_est = VitPoseEstimator(tiny_pth, backend="onnx", flip_test=flip_test, cache_dir=cache_dir)
    frame = stick_figure()
    for boxes in (BOXES[:1], BOXES):  # the batch axis is dynamic
        batch = torch_est.preprocess(frame, boxes)[0]
        expected = torch_est.backend(batch)
        got = onnx_est.backend(batch)
        assert got.shape == expected.shape == (len(boxes), 17, 64, 48)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    kp, scores = onnx_est(frame, BOXES)
    assert kp.shape == (3, 17, 2) and scores.shape == (3, 17)
    assert onnx_est(frame, np.zeros((0, 4)))[0].shape == (0, 17, 2)


def test_export_is_cached_by_weights_hash(tiny_pth: Path, tiny_checkpoint, tmp_path: Path) -> None:
    first = VitPoseEstimator(tiny_pth, backend="onnx", cache_dir=tmp_path)
    path = first.backend.path
    assert path.parent == tmp_path and first.spec.weights_hash[:16] in path.name and "192x256" in path.name
    stamp = path.stat().st_mtime_ns
    again = VitPoseEstimator(tiny_pth, backend="onnx", cache_dir=tmp_path)
    assert again.backend.path == path and path.stat().st_mtime_ns == stamp  # reused, not re-exported
    other = VitPoseEstimator(tiny_checkpoint(seed=1), backend="onnx", cache_dir=tmp_path)
    assert other.backend.path != path  # different weights, different file
    flipped = VitPoseEstimator(tiny_pth, backend="onnx", flip_test=True, cache_dir=tmp_path)
    assert flipped.backend.path != path and "flip" in flipped.backend.path.name
    assert not list(tmp_path.glob("*.tmp*"))  # no half-written files left behind


def test_int8_stays_close_to_fp32(tiny_pth: Path, cache_dir: Path) -> None:
    """Measured on the tiny model: per-map correlation >= 0.9991, max |diff| ~0.0055 of a +-0.45 range."""
    torch_est = VitPoseEstimator(tiny_pth)
    int8 = VitPoseEstimator(tiny_pth, backend="onnx", quantize=True, cache_dir=cache_dir)
    path = int8.backend.path
    assert path.name.endswith("-int8.onnx")
    assert path.stat().st_size < path.with_name(path.name.replace("-int8", "")).stat().st_size
    batch = torch_est.preprocess(stick_figure(), BOXES)[0]
    expected, got = torch_est.backend(batch), int8.backend(batch)
    assert map_correlations(got, expected).min() > 0.998
    assert np.abs(got - expected).max() < 0.02 * np.abs(expected).max()
    assert not np.allclose(got, expected, atol=1e-5)  # it really is the quantised graph


def test_wholebody_onnx_end_to_end(tiny_wholebody_pth: Path, cache_dir: Path) -> None:
    est = VitPoseEstimator(tiny_wholebody_pth, dataset="wholebody", backend="onnx", quantize=True, cache_dir=cache_dir)
    kp, scores = est(stick_figure(), BOXES[:2])
    assert kp.shape == (2, 133, 2) and scores.shape == (2, 133) and np.isfinite(kp).all()
    assert "-wholebody-" in est.backend.path.name  # ViTPose+ heads share experts: the dataset is in the key


def test_matmul_head_equals_the_deconv_head(tiny_pth: Path) -> None:
    """The export-time rewrite of the classic head (deconvs + BN as phase MatMuls) computes the same maps."""
    model = load_vitpose(tiny_pth).model.eval()
    gen = torch.Generator().manual_seed(0)
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):  # non-trivial statistics
        bn.running_mean.copy_(torch.rand(bn.num_features, generator=gen) - 0.5)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
        bn.weight.data.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
        bn.bias.data.copy_(torch.rand(bn.num_features, generator=gen) - 0.5)
    net = HeatmapNet(model)
    rewritten = for_export(net)
    assert isinstance(rewritten.model.keypoint_head, MatMulClassicDecoder)
    x = torch.randn(2, 3, 256, 192, generator=gen)
    with torch.no_grad():
        torch.testing.assert_close(rewritten(x), net(x), atol=1e-5, rtol=1e-4)


def test_simple_decoder_exports_unchanged(tiny_checkpoint, tmp_path: Path) -> None:
    path = tiny_checkpoint(decoder="simple")
    torch_est = VitPoseEstimator(path)
    onnx_est = VitPoseEstimator(path, backend="onnx", cache_dir=tmp_path)
    assert not isinstance(for_export(HeatmapNet(load_vitpose(path).model)).model.keypoint_head, MatMulClassicDecoder)
    batch = torch_est.preprocess(stick_figure(), BOXES)[0]
    np.testing.assert_allclose(onnx_est.backend(batch), torch_est.backend(batch), atol=1e-4, rtol=0)


def test_default_cache_follows_vitpose_checkpoints(tiny_pth: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VITPOSE_CHECKPOINTS", str(tmp_path))
    est = VitPoseEstimator(tiny_pth, backend="onnx")
    assert est.backend.path.parent == tmp_path / "onnx" and est.backend.path.is_file()
