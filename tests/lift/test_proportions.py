"""The performer's bone lengths fitted from image proportions (pose_server/lift/proportions.py)."""

import numpy as np
import pytest

from pose_server.lift.proportions import FIT_RANGE, Proportions
from pose_server.lift.skeleton3d import REST_HEIGHT, REST_JOINTS, J

HEIGHT = 1.7
FORE_L = f"{J['l_elbow']}-{J['l_wrist']}"
UPPER_L = f"{J['l_shoulder']}-{J['l_elbow']}"


def front_view(joints: np.ndarray) -> np.ndarray:
    """Orthographic front view in pixels (x right, y down): every bone of the rest pose is parallel to the image."""
    return 640 + 300 * np.stack([joints[:, 0], -joints[:, 2]], axis=1)


def performer(forearm_scale: float) -> np.ndarray:
    joints = REST_JOINTS * (HEIGHT / REST_HEIGHT)
    for elbow, wrist in ((J["l_elbow"], J["l_wrist"]), (J["r_elbow"], J["r_wrist"])):
        joints[wrist] = joints[elbow] + forearm_scale * (joints[wrist] - joints[elbow])
    return joints


def test_lengths_start_from_the_adult_prior_scaled_to_the_height():
    props = Proportions(HEIGHT)
    assert props.lengths == props.prior
    rest = np.linalg.norm(REST_JOINTS[J["l_wrist"]] - REST_JOINTS[J["l_elbow"]])
    assert props.lengths[FORE_L] == pytest.approx(rest * HEIGHT / REST_HEIGHT)


def test_a_bone_parallel_to_the_image_gets_its_true_length():
    props = Proportions(HEIGHT)
    props.add(front_view(performer(1.1)), np.ones(17, bool))
    assert props.lengths[FORE_L] == pytest.approx(1.1 * props.prior[FORE_L], rel=0.01)
    assert props.lengths[UPPER_L] == pytest.approx(props.prior[UPPER_L], rel=0.01)


def test_foreshortened_and_unseen_bones_stay_near_the_prior():
    joints = performer(1.0)
    joints[J["l_wrist"], 0] = joints[J["l_elbow"], 0] + 0.2 * (joints[J["l_wrist"], 0] - joints[J["l_elbow"], 0])
    ok = np.ones(17, bool)
    ok[J["r_wrist"]] = False
    props = Proportions(HEIGHT)
    props.add(front_view(joints), ok)
    # the left forearm looks 80 % shorter, but image lengths are lower bounds: at most FIT_RANGE[0] of the prior
    assert props.lengths[FORE_L] == pytest.approx(FIT_RANGE[0] * props.prior[FORE_L], rel=0.01)
    fore_r = f"{J['r_elbow']}-{J['r_wrist']}"
    assert props.lengths[fore_r] == pytest.approx(props.prior[fore_r], rel=0.01)


def test_a_tiny_figure_is_ignored():
    props = Proportions(HEIGHT)
    props.add(np.full((17, 2), 100.0) + np.random.default_rng(0).normal(0, 1, (17, 2)), np.ones(17, bool))
    assert props.lengths == props.prior
