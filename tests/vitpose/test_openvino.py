"""OpenVINO backend: IR cache, fp32 parity with PyTorch for any batch size, bf16 where the CPU has it, NNCF int8."""

from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from pose_server.vitpose import estimator as estimator_module
from pose_server.vitpose.auto import map_correlations
from pose_server.vitpose.estimator import VitPoseEstimator
from pose_server.vitpose.openvino_backend import cpu_capabilities, cpu_precisions
from tests.vitpose.test_estimator import stick_figure

BOXES = np.array([[230, 50, 410, 460], [10, 10, 200, 300], [300, 200, 600, 470]], np.float32)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openvino_cache")


@pytest.mark.parametrize("flip_test", [False, True])
def test_openvino_fp32_matches_torch_for_any_batch(tiny_pth: Path, cache_dir: Path, flip_test: bool) -> None:
    torch_est = VitPoseEstimator(tiny_pth, flip_test=flip_test)
    ov_est = VitPoseEstimator(tiny_pth, backend="openvino", flip_test=flip_test, cache_dir=cache_dir)
    assert ov_est.backend_label == "openvino fp32"
    frame = stick_figure()
    for boxes in (BOXES[:1], BOXES, BOXES[:2]):  # one compiled model, dynamic batch: all people in one call
        batch = torch_est.preprocess(frame, boxes)[0]
        expected, got = torch_est.backend(batch), ov_est.backend(batch)
        assert got.shape == expected.shape == (len(boxes), 17, 64, 48) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    first = ov_est.backend(batch)
    ov_est.backend(batch[:1])
    np.testing.assert_array_equal(ov_est.backend(batch), first)  # results are copies, not the request's buffer
    kp, scores = ov_est(frame, BOXES)
    assert kp.shape == (3, 17, 2) and np.isfinite(kp).all()
    assert ov_est(frame, np.zeros((0, 4)))[0].shape == (0, 17, 2)


def test_ir_and_compiled_model_are_cached_by_weights(tiny_pth: Path, tiny_checkpoint, tmp_path: Path) -> None:
    first = VitPoseEstimator(tiny_pth, backend="openvino", cache_dir=tmp_path)
    xml = first.backend.path
    assert xml.suffix == ".xml" and xml.with_suffix(".bin").is_file()
    assert first.spec.weights_hash[:16] in xml.name and "192x256" in xml.name
    # fp32 weights in the IR (OpenVINO's save_model would compress them to fp16 by default)
    consts = [op for op in ov.Core().read_model(str(xml)).get_ops() if op.get_type_name() == "Constant"]
    assert any(op.get_element_type() == ov.Type.f32 for op in consts)
    assert not any(op.get_element_type() == ov.Type.f16 for op in consts)
    assert any((tmp_path / "compiled").iterdir())  # OpenVINO's compiled-model cache
    stamp = xml.stat().st_mtime_ns
    again = VitPoseEstimator(tiny_pth, backend="openvino", cache_dir=tmp_path)
    assert again.backend.path == xml and xml.stat().st_mtime_ns == stamp  # reused, not converted again
    other = VitPoseEstimator(tiny_checkpoint(seed=1), backend="openvino", cache_dir=tmp_path)
    assert other.backend.path != xml
    assert not list(tmp_path.glob("*.tmp*"))


def test_bf16_runs_only_where_the_cpu_has_it(tiny_pth: Path, cache_dir: Path) -> None:
    if "BF16" in cpu_capabilities():
        torch_est = VitPoseEstimator(tiny_pth)
        est = VitPoseEstimator(tiny_pth, backend="openvino", precision="bf16", cache_dir=cache_dir)
        batch = torch_est.preprocess(stick_figure(), BOXES)[0]
        assert map_correlations(est.backend(batch), torch_est.backend(batch)).min() > 0.99
        assert "bf16" in cpu_precisions()
    else:
        assert "bf16" not in cpu_precisions()
        with pytest.raises(RuntimeError, match="no native bf16"):
            VitPoseEstimator(tiny_pth, backend="openvino", precision="bf16", cache_dir=cache_dir)


def test_nncf_int8_is_calibrated_on_real_crops(tiny_pth: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(estimator_module, "INT8_CALIBRATION_CROPS", 12)  # the default 300 take a minute
    torch_est = VitPoseEstimator(tiny_pth)
    est = VitPoseEstimator(tiny_pth, backend="openvino", precision="int8", cache_dir=tmp_path)
    assert est.backend.path.name.endswith("-int8.xml") and est.backend_label == "openvino int8"
    ops = {op.get_type_name() for op in ov.Core().read_model(str(est.backend.path)).get_ops()}
    assert "FakeQuantize" in ops  # really quantised (activations and weights)
    batch = torch_est.preprocess(stick_figure(), BOXES)[0]
    got, expected = est.backend(batch), torch_est.backend(batch)
    assert not np.allclose(got, expected, atol=1e-4)
    assert map_correlations(got, expected).mean() > 0.9


def test_bad_precision_is_refused_clearly(tiny_pth: Path, cache_dir: Path) -> None:
    with pytest.raises(ValueError, match="fp32 or int8"):
        VitPoseEstimator(tiny_pth, backend="onnx", precision="bf16", cache_dir=cache_dir)
    with pytest.raises(ValueError, match="precision must be one of"):
        VitPoseEstimator(tiny_pth, backend="openvino", precision="fp16", cache_dir=cache_dir)
