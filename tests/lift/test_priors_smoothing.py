"""The lifter's parts on their own: anatomical priors (priors.py) and output smoothing (smoothing.py)."""

import numpy as np
import pytest

from pose_server.lift.priors import LimbPriors, torso_cost
from pose_server.lift.proportions import REST_LENGTHS
from pose_server.lift.skeleton3d import REST_JOINTS, J
from pose_server.lift.smoothing import OutputSmoother, rigid

# Body frame of a performer facing -Y: forward (0, -1, 0), left +X, up +Z.
BODY = (np.array([0.0, 0.0, 1.44]), np.array([0.0, -1.0, 0.0]), np.array([1.0, 0.0, 0.0]))
HIP = np.array([0.095, 0.0, 0.92])


def leg(knee_dir: np.ndarray, shin_dir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    knee = HIP + 0.43 * knee_dir / np.linalg.norm(knee_dir)
    return knee[None], (knee + 0.41 * shin_dir / np.linalg.norm(shin_dir))[None]


def test_a_knee_bent_forwards_costs_more_than_one_bent_backwards():
    priors = LimbPriors()
    down_fwd = np.array([0.0, -0.3, -1.0])
    back = priors("leg", 1.0, HIP, *leg(down_fwd, np.array([0.0, 0.4, -1.0])), BODY, 0.19)
    fwd = priors("leg", 1.0, HIP, *leg(down_fwd, np.array([0.0, -0.9, -1.0])), BODY, 0.19)
    assert back[0] < 0.1 < fwd[0]


def test_a_thigh_swung_sideways_costs_and_a_forward_swing_is_free():
    priors = LimbPriors()
    shin = np.array([0.0, 0.0, -1.0])
    forward = priors("leg", 1.0, HIP, *leg(np.array([0.0, -0.5, -1.0]), shin), BODY, 0.19)
    sideways = priors("leg", 1.0, HIP, *leg(np.array([0.5, 0.0, -1.0]), shin), BODY, 0.19)
    assert forward[0] < 0.05 < sideways[0]


def test_an_ankle_below_the_floor_costs():
    priors = LimbPriors()
    knee, ankle = leg(np.array([0.0, 0.0, -1.0]), np.array([0.0, 0.0, -1.0]))
    up, ankle_h = np.array([0.0, 0.0, 1.0]), 0.08
    on_floor = priors("leg", 1.0, HIP, knee, ankle, BODY, 0.19, (up, 0.0, ankle_h))
    below = priors("leg", 1.0, HIP, knee, ankle - [0.0, 0.0, 0.15], BODY, 0.19, (up, 0.0, ankle_h))
    assert below[0] > on_floor[0] + 5.0


def test_an_arm_raised_sideways_is_free_and_one_crossing_the_chest_costs():
    priors = LimbPriors()
    shoulder = np.array([0.19, 0.0, 1.44])
    raised = priors("arm", 1.0, shoulder, (shoulder + [0.28, 0.0, 0.0])[None], None, BODY, 0.19)
    crossing = priors("arm", 1.0, shoulder, (shoulder + [-0.25, -0.05, -0.1])[None], None, BODY, 0.19)
    assert raised[0] < 0.01 < 1.0 < crossing[0]


def test_the_torso_prefers_an_upright_spine_and_shoulders_parallel_to_the_hips():
    pelvis = np.zeros(3)
    up = np.array([0.0, 0.0, 1.0])
    upright = np.array([[0.19, 0, 0.5], [-0.19, 0, 0.5], [0.1, 0, 0], [-0.1, 0, 0], [0, 0, 0.5]])
    leaning = upright.copy()
    leaning[[0, 1, 4], 1:] = [-0.3, 0.4]  # the 0.5 m spine leaning 37 deg forwards
    twisted = upright.copy()
    twisted[0], twisted[1] = [0.0, -0.19, 0.5], [0.0, 0.19, 0.5]  # shoulder line turned 90 deg
    lengths = {"spine": 0.5, "shoulder_half": 0.19, "hip_half": 0.1}
    cost = torso_cost(np.stack([upright, leaning, twisted]), pelvis, lengths, up, None, 0.09)
    assert cost[0] < 0.01 and cost[1] > 0.5 and cost[2] > 0.5


def test_rigid_gives_every_bone_its_length_and_keeps_its_direction():
    rel = REST_JOINTS - 0.5 * (REST_JOINTS[J["l_hip"]] + REST_JOINTS[J["r_hip"]])
    stretched = rel * 1.1 + np.random.default_rng(0).normal(0, 0.002, rel.shape)
    out = rigid(stretched, dict(REST_LENGTHS))
    np.testing.assert_allclose(out, rel, atol=0.01)
    forearm = out[J["l_wrist"]] - out[J["l_elbow"]]
    assert np.linalg.norm(forearm) == pytest.approx(REST_LENGTHS[f"{J['l_elbow']}-{J['l_wrist']}"])


def jitter_after(smoother: OutputSmoother, noise: float, frames: int = 90, seed: int = 0) -> float:
    """Mean second difference of the smoothed pose for a still pose with Gaussian noise (m)."""
    rng = np.random.default_rng(seed)
    rel = REST_JOINTS - 0.5 * (REST_JOINTS[J["l_hip"]] + REST_JOINTS[J["r_hip"]])
    out = []
    for i in range(frames):
        _, smoothed = smoother(np.zeros(3), rel + rng.normal(0, noise, rel.shape), i / 30)
        out.append(smoothed.copy())
    return float(np.linalg.norm(np.diff(np.array(out)[30:], 2, axis=0), axis=-1).mean())


def test_noisy_input_is_smoothed_harder_than_the_fixed_cutoffs_would_for_clean_input():
    """Adaptive: with little noise the cutoffs rise (less lag), so the residual jitter relative to the input's
    noise is larger than with the fixed cutoffs; with much noise the configured cutoffs hold."""
    fixed = OutputSmoother(1.0, 1.0, 0.5, 0.2, adaptive=False)
    adaptive = OutputSmoother(1.0, 1.0, 0.5, 0.2, adaptive=True)
    assert jitter_after(adaptive, 0.001) > 1.5 * jitter_after(fixed, 0.001)
    assert jitter_after(OutputSmoother(1.0, 1.0, 0.5, 0.2), 0.03) == pytest.approx(
        jitter_after(OutputSmoother(1.0, 1.0, 0.5, 0.2, adaptive=False), 0.03), rel=0.1)


def test_lower_cutoffs_smooth_more():
    smooth = OutputSmoother(1.0, 1.0, 0.5, 0.2, adaptive=False)
    smoother = OutputSmoother(1.0, 1.0, 0.5, 0.2, adaptive=False)
    smoother.set_params(min_cutoff=0.2, depth_min_cutoff=0.1)
    assert jitter_after(smoother, 0.02) < 0.7 * jitter_after(smooth, 0.02)
