"""The per-track signal step: what one camera cannot measure reaches the lifter and shapes its skeleton."""

import numpy as np
import pytest

from pose_server.config import PipelineConfig
from pose_server.lift import LearnedLifter, Lifter
from pose_server.lift.camera import PinholeCamera, focal_from_fov
from pose_server.lift.skeleton3d import J
from pose_server.lift.synthetic import walk
from pose_server.track_signal import TrackSignal

IMAGE = (1280, 720)


def lifted_height(performer_height: float, hfov: float = 60.0, lifter: type = Lifter) -> float:
    """Median height of the lifted nose above the lower ankle, for a 1.75 m walker filmed with a 60 deg camera."""
    joints, _ = walk(seconds=3.0, height=1.75, speed=1.0)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), 30.0, distance=6.0, height=1.0)
    px = cam.project(joints)
    cfg = PipelineConfig(performer_height=performer_height, camera_hfov=hfov, depth_prior=False)
    sig = TrackSignal(cfg, 17, IMAGE, lifter)
    tall = []
    for i, p in enumerate(px):
        person = sig.person(1, np.array([0, 0, *IMAGE], float), p, np.full(17, 0.9), i / 30, None, lambda e: None)
        j = person["joints_3d"]
        if j is not None:
            tall.append(j[J["nose"], 2] - min(j[J["l_ankle"], 2], j[J["r_ankle"], 2]))
    return float(np.median(tall))


@pytest.mark.parametrize("lift", [Lifter, LearnedLifter])
def test_the_lifter_gets_the_height_field_of_view_and_pitch(lift):
    cfg = PipelineConfig(performer_height=1.6, camera_hfov=80.0, camera_pitch=10.0, depth_prior=False)
    lifter = TrackSignal(cfg, 17, IMAGE, lift).lifter
    assert lifter.height_m == 1.6
    assert lifter.focal == pytest.approx(focal_from_fov(IMAGE[0], 80.0))
    assert lifter.camera_pitch_deg == 10.0


# The nose's height over the ankles as a share of the performer's height: ~90 % on the rest skeleton (geometric
# lifter); the learned lifter has CMU's proportions at the same leg length, with the face points placed from CMU's
# head joint (pose_server/mocap), which put the nose lower: ~78 %.
@pytest.mark.parametrize(("lift", "nose_share"), [(Lifter, 0.9), (LearnedLifter, 0.78)])
def test_the_performer_height_scales_the_skeleton(lift, nose_share):
    short, tall = lifted_height(1.5, lifter=lift), lifted_height(1.9, lifter=lift)
    assert tall / short == pytest.approx(1.9 / 1.5, rel=0.03)
    assert lifted_height(1.75, lifter=lift) == pytest.approx(1.75 * nose_share, rel=0.08)


def test_the_lifters_wall_and_cpu_time_are_measured_per_frame():
    """pose-server bench reports both: the CPU time of the lifting thread cannot exceed its wall time (nothing else
    runs on that thread), and a frame that is not lifted leaves neither set."""
    sig = TrackSignal(PipelineConfig(depth_prior=False), 17, IMAGE, LearnedLifter)
    assert sig.lift_ms is None and sig.lift_cpu_ms is None
    joints, _ = walk(seconds=0.5, height=1.75, speed=1.0)
    cam = PinholeCamera.orbit(IMAGE, np.array([0.0, 0.0, 1.0]), 30.0, distance=6.0, height=1.0)
    for i, p in enumerate(cam.project(joints)):
        sig.person(1, np.array([0, 0, *IMAGE], float), p, np.full(17, 0.9), i / 30, None, lambda e: None)
        # (the two are different clocks: the thread's CPU clock ran up to 7 % ahead of the monotonic one in a CI
        # run, with the CPU span inside the wall span)
        assert 0.0 < sig.lift_cpu_ms <= sig.lift_ms * 1.15 + 0.05


def test_the_hands_turn_into_the_world_with_the_estimated_pitch():
    """The pitch not told: the hands' camera-to-world turn follows the lifter's estimate as it settles (a hand
    turned by a level camera's world would lean by the camera's real pitch)."""
    from pose_server.hands import world_from_camera

    joints, _ = walk(seconds=4.0, heading_deg=90.0)
    target = np.array([*joints[:, :, :2].mean((0, 1)), 0.95])
    cam = PinholeCamera(IMAGE, target + [0.0, -5.0, 5.0 * np.tan(np.radians(20.0))], target)
    body = cam.project(joints)
    sig = TrackSignal(PipelineConfig(camera_pitch=None), 133, IMAGE, LearnedLifter)
    pitches, turns = [], []
    for i, p in enumerate(body):
        kpts = np.concatenate([p, np.repeat(p[[J["l_wrist"]]], 116, axis=0)])  # hands unseen: score 0
        scores = np.concatenate([np.full(17, 0.9), np.zeros(116)])
        sig.person(1, np.array([0, 0, *IMAGE], float), kpts, scores, i / 30, None, lambda e: None, hands=True)
        pitches.append(sig.lifter.pitch_deg)
        np.testing.assert_allclose(sig.hands.cam_to_world, world_from_camera(sig.lifter.pitch_deg))
        turns.append(sig.hands.cam_to_world)
    # the turn made again only when the estimate moved (it settles after 90 samples), not every frame
    rebuilt = sum(a is not b for a, b in zip(turns[:-1], turns[1:], strict=True))
    assert rebuilt == sum(a != b for a, b in zip(pitches[:-1], pitches[1:], strict=True)) < len(pitches) - 10
    assert len(set(pitches)) > 2 and abs(pitches[-1] - 20.0) < 4.0  # it settled, from level, towards the camera's


@pytest.mark.parametrize(("layout", "lifts"), [("coco17", True), (17, True), ("wholebody133", True),
                                               ("ap10k17", False), ("aic14", False)])
def test_only_a_persons_coco_body_is_lifted_and_guarded(layout, lifts):
    """AP-10K's animals have 17 keypoints too, in another order: known by the layout's name, not its count, they get
    the 2D filter only (no lifter reading them as a person, no left/right guard), and no failure per frame."""
    sig = TrackSignal(PipelineConfig(), layout, IMAGE, LearnedLifter)
    assert (sig.lifter is not None) == lifts and (sig.guard is not None) == (layout != "ap10k17")
    joints, _ = walk(seconds=0.5)
    px = PinholeCamera.orbit(IMAGE, np.array([0.0, 0.0, 1.0]), 30.0, distance=6.0, height=1.0).project(joints)
    n = sig.f2d.num_keypoints
    failures = []
    for i, p in enumerate(px):
        k = np.resize(p, (n, 2))  # the walker's points standing in for any layout's
        person = sig.person(1, np.array([0, 0, *IMAGE], float), k, np.full(n, 0.9), i / 30, None, failures.append)
        assert person["keypoints"].shape == (n, 2)
    assert failures == [] and (person["joints_3d"] is not None) == lifts


@pytest.mark.parametrize("lift", [Lifter, LearnedLifter])
def test_a_nan_keypoint_is_not_seen_and_costs_nothing_after_it(lift):
    """A NaN heatmap decodes to a NaN point and score. It poisoned the learned lifter's history (no 3D for the rest
    of the track) and, held then passed through, made the encoder refuse whole frames for every person in them."""
    from pose_server.protocol import PacketEncoder

    joints, _ = walk(seconds=3.0, height=1.75, speed=1.0)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), 30.0, distance=6.0, height=1.0)
    sig = TrackSignal(PipelineConfig(depth_prior=False), 17, IMAGE, lift)
    enc = PacketEncoder("cam", "coco17", IMAGE)
    failures, lifted = [], 0
    for i, p in enumerate(cam.project(joints)):
        scores = np.full(17, 0.9)
        if i == 30:
            p, scores = p.copy(), scores.copy()
            p[J["l_wrist"]] = np.nan
            scores[J["l_wrist"]] = np.nan
        if 40 <= i < 55:  # a point not seen for longer than the filter holds it (0.25 s)
            p = p.copy()
            p[J["r_ear"]] = np.nan
        person = sig.person(1, np.array([0, 0, *IMAGE], float), p, scores, i / 30, None, failures.append)
        enc.encode(i, 1000.0 + i / 30, [person])  # raises on any NaN
        lifted += i > 30 and person["joints_3d"] is not None
    assert not failures and lifted == len(joints) - 31


def test_a_capture_without_a_frame_rate_reads_at_30():
    """OpenCV's FFmpeg backend answers NaN for some files without a frame rate: every media time became NaN."""
    import cv2

    from pose_server.sources import _frame_rate

    class Capture:
        def __init__(self, fps: float) -> None:
            self.fps = fps

        def get(self, prop: int) -> float:
            assert prop == cv2.CAP_PROP_FPS
            return self.fps

    assert [_frame_rate(Capture(f)) for f in (float("nan"), 0.0, -1.0, float("inf"), 25.0)] == [30.0] * 4 + [25.0]
