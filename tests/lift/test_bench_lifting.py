"""The lifting benchmark's own arithmetic (scripts/bench_lifting.py): metrics, depth-sign runs, hip shift, noise."""

import sys

import numpy as np
import pytest

from pose_server.lift.skeleton3d import J
from pose_server.lift.synthetic import walk
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import bench_lifting as bench  # noqa: E402

ELBOW, WRIST = J["l_elbow"], J["l_wrist"]


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    joints, _ = walk(seconds=2.0, height=1.7, speed=1.0)
    return joints.astype(np.float64)


def test_the_truth_scores_perfectly(truth):
    r = bench.metrics(truth.copy(), truth, [None] * len(truth), 30.0)
    assert r["mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert r["pa"] == pytest.approx(0.0, abs=1e-6)
    assert (r["flips"], r["run"], r["wrong"]) == (0, 0, 0.0)
    assert r["jitter"] == pytest.approx(1.0)
    assert np.isnan(r["rot"])


def test_a_forearm_mirrored_in_depth_for_five_frames_is_one_flip_of_five(truth):
    gt = truth.copy()
    length = np.linalg.norm(gt[:, WRIST] - gt[:, ELBOW], axis=-1, keepdims=True)
    gt[:, WRIST] = gt[:, ELBOW] + length * np.array([0.0, -0.6, -0.8])  # clearly towards the camera (-Y)
    pred = gt.copy()
    pred[10:15, WRIST] = pred[10:15, ELBOW] + length[10:15] * np.array([0.0, 0.6, -0.8])
    r = bench.metrics(pred, gt, [None] * len(gt), 30.0)
    assert (r["flips"], r["run"]) == (1, 5)
    assert 0 < r["wrong"] < 100
    assert r["mpjpe"] > 0


def test_frames_without_output_are_left_out(truth):
    pred = truth.copy()
    pred[:7] = np.nan
    r = bench.metrics(pred, truth, [None] * len(truth), 30.0)
    assert r["mpjpe"] == pytest.approx(0.0, abs=1e-9)


def test_shift_hips_moves_only_the_hips_out_and_down(truth):
    out, down = 0.03, 0.02
    shifted = bench.shift_hips(truth, out, down)
    lh, rh = J["l_hip"], J["r_hip"]
    width = np.linalg.norm(truth[:, lh] - truth[:, rh], axis=-1)
    new_width = np.linalg.norm(shifted[:, lh] - shifted[:, rh], axis=-1)
    np.testing.assert_allclose(new_width, width + 2 * out, atol=0.002)  # the hip line is nearly level
    trunk = 0.5 * (truth[:, J["l_shoulder"]] + truth[:, J["r_shoulder"]]) - 0.5 * (truth[:, lh] + truth[:, rh])
    trunk /= np.linalg.norm(trunk, axis=-1, keepdims=True)
    drop = np.sum((0.5 * (truth[:, lh] + truth[:, rh]) - 0.5 * (shifted[:, lh] + shifted[:, rh])) * trunk, axis=-1)
    np.testing.assert_allclose(drop, down, atol=1e-9)
    others = [k for k in range(17) if k not in (lh, rh)]
    np.testing.assert_array_equal(shifted[:, others], truth[:, others])


def test_detector_noise_is_off_at_zero_and_has_its_sigma_otherwise():
    px = np.random.default_rng(1).uniform(0, 1000, (400, 17, 2))
    clean, scores = bench.detector_noise(px, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(clean, px)
    assert scores.min() >= 0.75
    noisy, scores = bench.detector_noise(px, 3.0, np.random.default_rng(0))
    good = (scores > 0.7)[..., None].repeat(2, -1)  # not dropped or swapped
    assert np.std((noisy - px)[good]) == pytest.approx(3.0, rel=0.05)
    assert (scores == 0.1).any() and (scores == 0.5).any()  # dropped keypoints and left/right swaps happen


def test_foot_skating_is_ankle_speed_while_planted_and_contacts_are_the_frames_the_addon_pins(truth):
    n = len(truth)
    pred = np.tile(truth[10], (n, 1, 1))  # standing still
    pred[:, J["l_ankle"], 0] += 0.01 * (np.arange(n) % 2)  # but the left ankle shakes 1 cm per frame
    planted = np.zeros((n, 2), bool)
    planted[:, 0] = True  # the mocap's left foot is planted the whole time, the right never
    said = np.full((n, 2), 0.1)
    said[: n // 2, 0] = 0.9  # half the true contacts found
    said[: n // 4, 1] = 0.9  # and some false ones
    r = bench.foot_metrics(pred, truth, planted, said, 30.0)
    assert r["skate"] == pytest.approx(10.0, rel=1e-6)
    assert r["take_skate"] < 0.6 * r["skate"]  # pinned still for the first half
    own = np.linalg.norm(np.diff(truth[:, J["l_ankle"], :2], axis=0), axis=-1).mean() * 1000
    assert r["pin_cost"] == pytest.approx(0.0, abs=6.0)  # the pin holds the shaking ankle within 1 cm of its pose
    assert r["gt_skate"] == pytest.approx(own, rel=1e-6)
    assert r["c_rec"] == pytest.approx(100 * (n // 2) / n, abs=0.1)
    assert r["c_prec"] == pytest.approx(100 * (n // 2) / (n // 2 + n // 4), abs=0.1)
    assert np.isnan(bench.foot_metrics(pred, truth, None, None, 30.0)["skate"])


def test_a_take_keeps_a_pinned_ankle_where_the_leg_reaches_it_and_drags_it_beyond(truth):
    n = 60
    pose = truth[10]
    pred = pose[None] + np.arange(n)[:, None, None] * np.array([0.004, 0.0, 0.0])  # the body slides 4 mm per frame
    contacts = np.tile([0.9, 0.1], (n, 1))  # the left foot called planted, the right not
    ankles, pinned = bench.take_ankles(pred, contacts, 30.0)
    assert pinned[:, 0].all() and not pinned[:, 1].any()
    np.testing.assert_allclose(ankles[:, 1], pred[:, J["r_ankle"]])  # an unpinned ankle is the packet's
    hip, knee, ankle = bench.LEGS[0]
    reach = np.linalg.norm(pose[knee] - pose[hip]) + np.linalg.norm(pose[ankle] - pose[knee])
    to_pin = np.linalg.norm(pose[ankle] - pred[:, hip], axis=-1)
    dist = np.linalg.norm(ankles[:, 0] - pred[:, hip], axis=-1)
    assert (to_pin <= reach).any() and (to_pin > reach).any()  # the body moves away from the pin
    np.testing.assert_allclose(ankles[to_pin <= reach, 0], np.tile(pose[ankle], ((to_pin <= reach).sum(), 1)))
    np.testing.assert_allclose(dist[to_pin > reach], reach)  # out of reach: at the leg's length, towards the pin
    # against a truth that slides as the packet does, pinning only costs: the pinned ankle's distance from the packet's
    planted = np.tile([True, False], (n, 1))
    cost = bench.foot_metrics(pred, pred, planted, contacts, 30.0)["pin_cost"]
    assert cost == pytest.approx(np.linalg.norm(ankles - pred[:, bench.ANKLES], axis=-1).mean() * 1000, rel=1e-6)
    assert cost > 10.0
    # other pin thresholds (--pin): 0.9 is not above 0.95, so nothing is pinned
    assert not bench.take_ankles(pred, contacts, 30.0, pin=(0.95, 0.9))[1].any()


def test_the_root_path_error_sees_a_frozen_path_that_mpjpe_does_not(truth):
    assert bench.path_error(truth, truth, 30.0) == pytest.approx(0.0, abs=1e-9)
    shifted = truth + np.array([5.0, -3.0, 0.2])  # another origin: the paths are compared from their starts
    assert bench.path_error(shifted, truth, 30.0) == pytest.approx(0.0, abs=1e-6)
    pelvis = 0.5 * (truth[:, J["l_hip"]] + truth[:, J["r_hip"]])
    frozen = truth - ((pelvis - pelvis[0]) * np.array([1.0, 1.0, 0.0]))[:, None]  # the same poses, the root held
    travel = np.linalg.norm(pelvis[:, :2] - pelvis[0, :2], axis=-1)
    seconds = len(truth) / 30.0
    assert bench.path_error(frozen, truth, 30.0) == pytest.approx(travel.mean() * 1000 / seconds, rel=1e-6)
    assert bench.metrics(frozen, truth, [None] * len(truth), 30.0)["mpjpe"] == pytest.approx(0.0, abs=1e-6)


def test_azimuths_are_measured_from_where_the_performer_faces(truth):
    assert bench.facing_azimuth(truth) == pytest.approx(0.0, abs=5.0)  # the walker faces -Y
    turned = truth @ np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T  # 90 deg about Z
    assert abs(bench.facing_azimuth(turned)) == pytest.approx(90.0, abs=5.0)


def test_decompose_tells_a_small_body_from_a_leaning_one(truth):
    root = 0.5 * (truth[:, [J["l_hip"]]] + truth[:, [J["r_hip"]]])
    small = root + 0.9 * (truth - root)
    r = bench.decompose(small, truth)
    assert r["scale"] == pytest.approx(1 / 0.9, rel=1e-6) and r["scaled"] == pytest.approx(0.0, abs=1e-6)
    assert r["mpjpe"] > 20 and r["rotated"] > 5 and r["pa"] == pytest.approx(0.0, abs=1e-6)
    r = bench.decompose(truth + np.array([0.0, 0.0, 0.05]) * (np.arange(17) != J["l_hip"])[None, :, None], truth)
    assert r["shifted"] < 0.25 * r["mpjpe"]  # everything but one hip 5 cm up: mostly a pelvis placed elsewhere
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    lean = root + (truth - root) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]]).T  # 10 deg about the X axis
    r = bench.decompose(lean, truth)
    assert r["spine_deg"] == pytest.approx(10.0, abs=0.5) and r["rotated"] == pytest.approx(0.0, abs=1e-6)
    assert r["scale"] < 1.0 and r["mpjpe"] > r["scaled"] > 10


def test_the_told_height_counts_trunk_and_legs_not_arms():
    from pose_server.lift.skeleton3d import REST_HEIGHT, REST_JOINTS

    rest = np.repeat(REST_JOINTS[None] * 1.1, 5, axis=0)
    assert bench.told_height(rest) == pytest.approx(1.1 * REST_HEIGHT)
    assert bench.told_height(rest, "limbs") == pytest.approx(1.1 * REST_HEIGHT)
    short_arms = rest.copy()  # arms 20 % short: the limb median shrinks, the standing height does not
    for side in "lr":
        shoulder, elbow, wrist = J[f"{side}_shoulder"], J[f"{side}_elbow"], J[f"{side}_wrist"]
        forearm = short_arms[:, wrist] - short_arms[:, elbow]
        short_arms[:, elbow] = short_arms[:, shoulder] + 0.8 * (short_arms[:, elbow] - short_arms[:, shoulder])
        short_arms[:, wrist] = short_arms[:, elbow] + 0.8 * forearm
    assert bench.told_height(short_arms) == pytest.approx(1.1 * REST_HEIGHT)
    assert bench.told_height(short_arms, "limbs") < 1.05 * REST_HEIGHT


def test_pooled_jitter_is_not_ruled_by_a_clip_whose_mocap_hardly_moves(truth):
    # a walk lifted with 2 mm of noise, and a performer standing still (the mocap's own 0.02 mm of tremor) lifted
    # with the same noise: the still clip's ratio is huge; pooled over their frames it is the walk's scale of things
    rng = np.random.default_rng(0)
    still = np.repeat(truth[:1], len(truth), axis=0) + rng.normal(0.0, 2e-5, truth.shape)
    rows = []
    for gt in (truth, still):
        r = bench.metrics(gt + rng.normal(0.0, 0.002, gt.shape), gt, [None] * len(gt), 30.0)
        rows.append(r | {"frames": len(gt), "lifter": "x", "ms": 0.0, "skate": np.nan, "take_skate": np.nan,
                         "pin_cost": np.nan, "path": np.nan, "c_prec": np.nan, "c_rec": np.nan})
    walk_ratio, still_ratio = rows[0]["jitter"], rows[1]["jitter"]
    assert still_ratio > 10 * walk_ratio
    (_, agg, n), = bench.summarise(rows, "lifter")
    assert n == 2
    assert agg["jitter"] == pytest.approx((walk_ratio + still_ratio) / 2)  # the mean of the ratios
    pooled = (rows[0]["acc_pred"] + rows[1]["acc_pred"]) / (rows[0]["acc_gt"] + rows[1]["acc_gt"])
    assert agg["jitter_pooled"] == pytest.approx(pooled)
    assert walk_ratio < agg["jitter_pooled"] < agg["jitter"] / 4


def test_resample_takes_the_nearest_later_frame_at_the_rate_and_the_first_seconds(truth):
    from pose_server.mocap import MocapClip

    contacts = np.zeros((len(truth), 2), bool)
    contacts[::3, 0] = True
    clip = MocapClip("walk", 60.0, truth, None, contacts)  # the 30 fps walk told 60 fps: 1 s long
    joints, c = bench.resample(clip, 30.0)
    np.testing.assert_array_equal(joints, truth[0:60:2])  # every second frame
    np.testing.assert_array_equal(c, contacts[0:60:2])
    joints, _ = bench.resample(clip, 30.0, seconds=0.5)
    assert len(joints) == 15
    assert bench.resample(MocapClip("walk", 60.0, truth, None, None), 30.0)[1] is None


def test_the_pictures_frame_errors_average_to_the_benchmarks_mpjpe(truth, tmp_path):
    import plot_lifting

    rng = np.random.default_rng(3)
    pred = truth + rng.normal(0, 0.02, truth.shape)
    pred[5:8] = np.nan  # frames without output: left out of both
    errors = plot_lifting.frame_errors(pred, truth)
    assert np.isnan(errors[5:8]).all() and np.isfinite(np.delete(errors, [5, 6, 7])).all()
    assert np.nanmean(errors) == pytest.approx(bench.metrics(pred, truth, [None] * len(truth), 30.0)["mpjpe"])
    out = tmp_path / "picture.png"
    plot_lifting.plot(truth, {"learned": pred}, [0, 10, 20], 30.0, "a walk", out)
    import cv2

    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] == 720
    orange = (np.abs(image.astype(int) - [14, 127, 255]).sum(-1) < 60).sum()  # tab:orange, BGR: the lifted joints
    assert orange > 500
