"""``backend="auto"``: the accuracy guard, the choice among measured backends, and remembering it per machine."""

import json
from pathlib import Path

import numpy as np
import pytest

from pose_server.vitpose import auto
from pose_server.vitpose.decode import argmax_heatmaps
from pose_server.vitpose.estimator import VitPoseEstimator
from tests.vitpose.test_decode import gaussian_maps
from tests.vitpose.test_estimator import stick_figure


def test_guard_rejects_moved_or_noisy_heatmaps() -> None:
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(8, 40, (2, 17)), rng.uniform(8, 56, (2, 17))], axis=-1).astype(np.float32)
    maps = gaussian_maps(pts)
    centers, scales = np.array([[300, 200], [500, 260]], np.float32), np.array([[150, 200], [300, 400]], np.float32)
    same = auto.accuracy(maps, maps, centers, scales)
    assert same == {"correlation": 1.0, "max_px": 0.0} and auto.passes(same)
    moved = pts.copy()
    moved[1, 4, 0] += 0.12  # 0.12 heatmap px = 0.77 image px for the second crop (300 px over 47 heatmap px)
    shifted = auto.accuracy(gaussian_maps(moved), maps, centers, scales)
    # heatmaps still correlate (>= 0.999), but the keypoint moved more than 0.5 px: rejected
    assert shifted["correlation"] >= 0.999 and 0.6 < shifted["max_px"] < 1.0 and not auto.passes(shifted)
    noisy = maps + rng.normal(0, 0.02, maps.shape).astype(np.float32)
    assert auto.accuracy(noisy, maps, centers, scales)["correlation"] < 0.999
    assert not auto.passes(auto.accuracy(noisy, maps, centers, scales))
    # keypoints the server would not use (score < 0.3: flat maps whose argmax jumps) do not count
    weak = maps.copy()
    weak[0, 3] *= 0.2
    moved_weak = weak.copy()
    moved_weak[0, 3] += np.linspace(0, 0.01, 64 * 48, dtype=np.float32).reshape(64, 48)  # peak moves far
    assert auto.accuracy(moved_weak, weak, centers, scales)["max_px"] == 0.0
    # two equal peaks: a backend that picks the other one is not wrong, a backend that picks a lower place is
    twin = gaussian_maps(pts[1:2, 6:7] - np.float32([18, 36]))[0, 0]  # same sub-pixel phase: an exact tie
    double = maps.copy()
    double[1, 6] = np.maximum(maps[1, 6], twin)
    other = double.copy()
    other[1, 6] += maps[1, 6] * 1e-3  # the candidate prefers the first peak, the reference the other
    assert (argmax_heatmaps(other)[0][1, 6] != argmax_heatmaps(double)[0][1, 6]).any()
    assert auto.accuracy(other, double, centers, scales)["max_px"] == 0.0
    lower = maps.copy()
    lower[1, 6] = maps[1, 6] * 0.5 + twin
    assert auto.accuracy(lower, maps, centers, scales)["max_px"] > 100


def test_auto_picks_the_fastest_guarded_backend_and_remembers_it(tiny_pth: Path, tmp_path: Path,
                                                                 monkeypatch) -> None:
    monkeypatch.setattr(auto, "SECONDS_PER_CANDIDATE", 0.3)
    est = VitPoseEstimator(tiny_pth, backend="auto", cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.json")
    choice = json.loads(path.read_text())
    assert choice == est.auto_choice and est.spec.weights_hash[:16] in path.name
    assert choice["machine"]["cpu"] == auto.cpu_model() and choice["machine"]["threads"] >= 1
    tried = {(c["backend"], c["precision"]) for c in choice["candidates"]}
    assert {("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32")} <= tried
    passed = [c for c in choice["candidates"] if c["passed"]]
    assert all(c["correlation"] >= 0.999 and c["max_px"] <= 0.5 and c["ms"] > 0 and c["calls"] >= 5 for c in passed)
    best = min(passed, key=lambda c: c["ms"])
    assert (est.backend_name, est.precision) == (best["backend"], best["precision"]) == \
        (choice["backend"], choice["precision"])
    assert est.backend_label == f"{best['backend']} {best['precision']} (auto)"
    torch_est = VitPoseEstimator(tiny_pth)
    batch = torch_est.preprocess(stick_figure(), [[230, 50, 410, 460], [10, 10, 200, 300]])[0]
    assert auto.map_correlations(est.backend(batch), torch_est.backend(batch)).min() >= 0.999

    # Next start: read, not measured again.
    monkeypatch.setattr(auto, "measure", lambda *a, **k: pytest.fail("the remembered choice was measured again"))
    again = VitPoseEstimator(tiny_pth, backend="auto", cache_dir=tmp_path)
    assert again.backend_label == est.backend_label and again.auto_choice == choice
    # Another machine (here: the same CPU limited to another instruction set) gets its own choice.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert auto.choice_path(est, auto.machine_info()) != path
