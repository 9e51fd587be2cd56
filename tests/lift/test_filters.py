"""One Euro filter: the paper's formulas, step response, hold/predict of low-confidence keypoints."""

import math

import numpy as np
import pytest

from pose_server.filters import KeypointFilter, smoothing_factor


def reference_one_euro(xs, ts, min_cutoff, beta, d_cutoff):
    """Scalar One Euro filter written straight from Casiez et al. 2012."""

    def alpha(dt, fc):
        tau = 1.0 / (2 * math.pi * fc)
        return 1.0 / (1.0 + tau / dt)

    out = [xs[0]]
    x_hat, dx_hat = xs[0], 0.0
    for i in range(1, len(xs)):
        dt = ts[i] - ts[i - 1]
        dx = (xs[i] - x_hat) / dt
        dx_hat = dx_hat + alpha(dt, d_cutoff) * (dx - dx_hat)
        fc = min_cutoff + beta * abs(dx_hat)
        x_hat = x_hat + alpha(dt, fc) * (xs[i] - x_hat)
        out.append(x_hat)
    return np.array(out)


def test_smoothing_factor_formula():
    assert smoothing_factor(1 / 30, 1.0) == pytest.approx(1 / (1 + (1 / (2 * math.pi)) * 30))
    assert smoothing_factor(0.01, 1e9) == pytest.approx(1.0)


def test_matches_reference_with_variable_dt():
    rng = np.random.default_rng(0)
    n = 200
    ts = np.cumsum(rng.uniform(0.01, 0.06, n))
    xs = np.sin(ts * 3) * 100 + rng.normal(0, 3, n)
    f = KeypointFilter(num_keypoints=3, dims=1, min_cutoff=0.7, beta=0.05, d_cutoff=1.3)
    got = []
    for x, t in zip(xs, ts, strict=True):
        p, _, held = f(np.full((3, 1), x), np.ones(3), t)
        assert not held.any()
        got.append(p[1, 0])
    np.testing.assert_allclose(got, reference_one_euro(xs, ts, 0.7, 0.05, 1.3), rtol=1e-5, atol=1e-3)



def test_smooth_is_the_filter_with_every_point_confident():
    """``smooth`` (the lifters' per-frame path) follows the reference, and gives what the full call gives with all
    scores 1 -- also through a repeated timestamp and a non-finite point, which it hands to the full call."""
    rng = np.random.default_rng(1)
    ts = np.cumsum(rng.uniform(0.01, 0.06, 120))
    ts[50] = ts[49]  # a repeated timestamp
    xs = np.sin(ts * 3)[:, None, None] * 100 + rng.normal(0, 3, (120, 2, 3))
    xs[80, 1, 2] = np.nan
    fast = KeypointFilter(num_keypoints=2, dims=3, min_cutoff=0.7, beta=0.05, min_score=0.0, hold_s=0.0)
    full = KeypointFilter(num_keypoints=2, dims=3, min_cutoff=0.7, beta=0.05, min_score=0.0, hold_s=0.0)
    got, want = [], []
    for x, t in zip(xs, ts, strict=True):
        got.append(fast.smooth(x, t))
        want.append(full(x, np.ones(2), t)[0])
    got, want = np.array(got), np.array(want)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4, equal_nan=True)
    one = KeypointFilter(num_keypoints=1, dims=1, min_cutoff=0.7, beta=0.05, d_cutoff=1.3)
    ys, ts1 = xs[:50, 0, 0], np.cumsum(np.full(50, 0.03))
    np.testing.assert_allclose([one.smooth(np.array([[y]]), t)[0, 0] for y, t in zip(ys, ts1, strict=True)],
                               reference_one_euro(ys, ts1, 0.7, 0.05, 1.3), rtol=1e-6)


def test_smooth_after_a_held_point_steps_it_over_its_own_time():
    """A point held for a few frames (full calls) was last updated before the others: ``smooth`` must step it over
    its own interval, as the full call does, not the frame's."""
    rng = np.random.default_rng(2)
    ts = np.arange(60) / 30
    xs = np.cumsum(rng.normal(0, 5, (60, 3, 2)), axis=0)
    low = np.ones(3)
    low[0] = 0.1
    mixed = KeypointFilter(num_keypoints=3, dims=2, min_cutoff=1.0, beta=0.1, min_score=0.3, hold_s=0.5)
    full = KeypointFilter(num_keypoints=3, dims=2, min_cutoff=1.0, beta=0.1, min_score=0.3, hold_s=0.5)
    for i, (x, t) in enumerate(zip(xs, ts, strict=True)):
        scores = low if 20 <= i < 24 else np.ones(3)
        want = full(x, scores, t)[0]
        got = mixed(x, scores, t)[0] if 20 <= i < 24 else mixed.smooth(x, t)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4, err_msg=f"frame {i}")


def test_step_response_smooth_and_converges():
    f = KeypointFilter(num_keypoints=1, dims=2, min_cutoff=1.0, beta=0.0)
    ys = []
    for i in range(120):
        x = 0.0 if i < 10 else 100.0
        ys.append(f(np.array([[x, 0.0]]), np.ones(1), i / 30)[0][0, 0])
    ys = np.array(ys)
    assert np.all(np.diff(ys) >= -1e-6)  # monotone, no overshoot
    assert ys[10] == pytest.approx(100 * smoothing_factor(1 / 30, 1.0), rel=1e-4)
    assert 0 < ys[11] < 100 and ys[-1] > 99.0


def test_beta_speeds_up_fast_motion():
    slow = KeypointFilter(num_keypoints=1, dims=2, beta=0.0)
    fast = KeypointFilter(num_keypoints=1, dims=2, beta=0.1)
    for i in range(30):
        x = np.array([[i * 20.0, 0.0]])
        a = slow(x, np.ones(1), i / 30)[0]
        b = fast(x, np.ones(1), i / 30)[0]
    assert abs(b[0, 0] - 29 * 20) < abs(a[0, 0] - 29 * 20) / 3


def test_low_score_is_held_then_passes_through():
    f = KeypointFilter(num_keypoints=2, dims=2, min_cutoff=50.0, beta=0.0, min_score=0.3, hold_s=0.2)
    for i in range(10):
        f(np.array([[10.0 * i, 0.0], [5.0, 5.0]]), np.array([0.9, 0.9]), i / 30)
    last, _, _ = f(np.array([[100.0, 0.0], [5.0, 5.0]]), np.array([0.9, 0.9]), 10 / 30)
    outs = []
    for i in range(11, 20):
        p, s, held = f(np.array([[999.0, -999.0], [5.0, 5.0]]), np.array([0.05, 0.9]), i / 30)
        outs.append((p.copy(), s.copy(), held.copy(), i / 30 - 10 / 30))
    for p, s, held, elapsed in outs:
        if elapsed <= 0.2 + 1e-9:
            assert held[0] and not held[1]
            assert s[0] == pytest.approx(0.9)
            # predicted forward with damped velocity (~300 px/s), never jumps to the detector's guess
            assert last[0, 0] <= p[0, 0] < last[0, 0] + 300 * elapsed + 1
            assert abs(p[0, 1]) < 1.0
        else:
            assert not held[0]
            assert s[0] == pytest.approx(0.05)
            np.testing.assert_allclose(p[0], [999.0, -999.0])
    # velocity decays: later steps move less than earlier ones
    xs = [o[0][0, 0] for o in outs if o[2][0]]
    steps = np.diff(xs)
    assert np.all(steps > 0) and steps[-1] < steps[0]
    # after the hold expired, the filter restarts at the next confident sample (no smoothing from stale state)
    p, _, held = f(np.array([[500.0, 0.0], [5.0, 5.0]]), np.array([0.9, 0.9]), 1.0)
    assert not held[0] and p[0, 0] == pytest.approx(500.0)


def test_nan_points_are_treated_as_missing():
    f = KeypointFilter(num_keypoints=1, dims=3)
    f(np.array([[1.0, 2.0, 3.0]]), np.ones(1), 0.0)
    p, _, held = f(np.array([[np.nan, 0.0, 0.0]]), np.ones(1), 0.03)
    assert held[0] and np.isfinite(p).all()


def test_set_params_live_and_validation():
    f = KeypointFilter()
    f(np.zeros((17, 2)), np.ones(17), 0.0)
    f.set_params(min_cutoff=3.0, beta=0.5)
    assert f.min_cutoff == 3.0 and f.beta == 0.5
    with pytest.raises(ValueError, match="unknown filter parameter"):
        f.set_params(cutoff=1.0)
    with pytest.raises(ValueError, match="> 0"):
        f.set_params(min_cutoff=0.0)
    with pytest.raises(ValueError, match="shape"):
        f(np.zeros((16, 2)), np.ones(16), 1.0)
