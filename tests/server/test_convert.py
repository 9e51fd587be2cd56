"""`pose-server convert`'s offline signal path on its own: gap filling, two-sided smoothing, lifting of a
synthetic walk seen by a virtual camera, the session it writes, and its errors. (The whole command with a
real model, video and Blender is tests/e2e/test_convert.py.)"""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from pose_server import convert
from pose_server.config import PipelineConfig
from pose_server.convert import (
    ConvertError,
    ConvertOptions,
    Tracks,
    build_motions,
    check_outputs,
    fill_gaps,
    smooth_two_sided,
    write_session,
)
from pose_server.filters import KeypointFilter
from pose_server.lift.camera import PinholeCamera
from pose_server.lift.synthetic import walk
from tests.server.conftest import SCHEMA

FPS = 30.0
IMAGE = (1280, 720)


def test_fill_gaps_fills_short_interior_gaps_only():
    t = np.arange(20, dtype=float)
    values = np.stack([t, -t], axis=1)[:, None, :]  # (T, 1, 2) a straight line
    valid = np.ones((20, 1), bool)
    valid[[0, 1]] = False  # before the first sample: never filled
    valid[5:8] = False  # 3 frames: filled
    valid[10:16] = False  # 6 frames: too long for max_gap 4
    out, filled = fill_gaps(np.where(valid[..., None], values, np.nan), valid, max_gap=4)
    assert filled[5:8, 0].all() and not filled[10:16, 0].any() and not filled[:2, 0].any()
    assert np.allclose(out[5:8, 0], values[5:8, 0])  # linear between the neighbours
    assert np.isnan(out[10:16]).all()


def test_two_sided_smoothing_has_no_lag_where_one_euro_has():
    t = np.arange(90) / FPS
    clean = 100 * np.sin(2 * np.pi * 1.0 * t)  # a 1 Hz swing, in pixels
    noisy = clean + np.random.default_rng(0).normal(0, 2.0, t.shape)
    smooth = smooth_two_sided(noisy[:, None, None], np.ones((90, 1)), 0.03 * FPS)[:, 0, 0]
    f = KeypointFilter(1, 1, min_cutoff=1.0, beta=0.05)
    causal = np.array([f(np.array([[v]]), np.ones(1), ti)[0][0, 0] for v, ti in zip(noisy, t, strict=True)])

    def lag_ms(x: np.ndarray) -> float:
        """Delay of x behind the 1 Hz swing, from its phase (least squares on sin and cos, ends left out)."""
        core = slice(15, 75)
        basis = np.stack([np.sin(2 * np.pi * t), np.cos(2 * np.pi * t)], axis=1)[core]
        a, b = np.linalg.lstsq(basis, x[core], rcond=None)[0]
        return float(-np.arctan2(b, a) / (2 * np.pi) * 1000)

    assert abs(lag_ms(smooth)) < 2.0
    assert lag_ms(causal) > 5.0, lag_ms(causal)  # the live filter trails the motion
    core = slice(10, 80)
    # jitter: the frame-to-frame acceleration of the error
    assert np.diff(smooth - clean, 2)[core].std() < 0.35 * np.diff(noisy - clean, 2)[core].std()
    assert np.abs(smooth - clean)[core].max() < 5.0


def test_zero_weight_samples_neither_pull_nor_get_a_value():
    x = np.array([1.0, 1.0, 1000.0, 1.0, 1.0])[:, None, None]
    w = np.array([1.0, 1.0, 0.0, 1.0, 1.0])[:, None]
    out = smooth_two_sided(x, w, 1.0)[:, 0, 0]
    assert np.isnan(out[2]) and np.allclose(out[[0, 1, 3, 4]], 1.0)


def synthetic_tracks(seconds: float = 3.0, noise: float = 2.0,
                     occlude: slice | None = None) -> tuple[Tracks, np.ndarray]:
    """A walk seen by a three-quarter camera, with pixel noise; (tracks of one performer, ground-truth joints)."""
    joints, _ = walk(seconds=seconds, fps=FPS)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), 45.0, distance=5.0, height=1.0)
    px = cam.project(joints) + np.random.default_rng(1).normal(0, noise, (len(joints), 17, 2))
    scores = np.full((len(joints), 17), 0.9)
    boxes = np.concatenate([px.min(1) - 20, px.max(1) + 20], axis=1)
    if occlude is not None:
        px[occlude], scores[occlude], boxes[occlude] = np.nan, 0.0, np.nan
    tracks = Tracks(fps=FPS, size=IMAGE, frames=len(joints), skeleton="coco17", source_name="walk")
    tracks.boxes[5], tracks.keypoints[5], tracks.scores[5] = boxes, px, scores
    return tracks, cam.level_world(joints)


def cfg() -> PipelineConfig:
    return PipelineConfig(source="walk", udp=[], camera_pitch=0.0)


def jitter(j: np.ndarray) -> float:
    return float(np.nanmean(np.linalg.norm(np.diff(j, 2, axis=0), axis=-1)))


def test_smoothing_lowers_the_jitter_of_the_lifted_walk():
    tracks, _ = synthetic_tracks()
    rough = build_motions(tracks, cfg(), ConvertOptions(outputs=[], smooth_2d=0.0, smooth_3d=0.0, smooth_root=0.0))[0]
    smooth = build_motions(tracks, cfg(), ConvertOptions(outputs=[]))[0]
    assert np.isfinite(smooth.rotations[45:]).all(), "every frame after calibration is lifted and solved"
    assert jitter(smooth.joints) < 0.6 * jitter(rough.joints)


def test_a_short_occlusion_of_the_whole_person_is_filled():
    seen = build_motions(synthetic_tracks()[0], cfg(), ConvertOptions(outputs=[]))[0]
    tracks, _ = synthetic_tracks(occlude=slice(60, 70))  # a third of a second
    m = build_motions(tracks, cfg(), ConvertOptions(outputs=[], max_gap=0.5))[0]
    assert m.present[60:70].all() and m.filled[60:70].all()
    assert np.isfinite(m.joints[60:70]).all()
    step = np.linalg.norm(np.diff(m.joints[55:75], axis=0), axis=-1).max()
    usual = np.linalg.norm(np.diff(seen.joints[45:], axis=0), axis=-1).max()
    assert step < 1.2 * usual, f"the filled gap jumps by {step:.3f} m in a frame (elsewhere at most {usual:.3f})"
    def body(j: np.ndarray) -> np.ndarray:  # root-relative pose
        return j - 0.5 * (j[:, [11]] + j[:, [12]])

    gap_error = np.linalg.norm(body(m.joints[60:70]) - body(seen.joints[60:70]), axis=-1).mean()
    assert gap_error < 0.06, f"the filled body poses are {gap_error:.3f} m from those of the fully seen walk"
    tracks, _ = synthetic_tracks(occlude=slice(60, 90))  # a second: longer than max_gap, left empty
    m = build_motions(tracks, cfg(), ConvertOptions(outputs=[], max_gap=0.5))[0]
    assert not m.present[60:90].any()


def test_session_validates_against_the_schema_and_marks_filled_keypoints(tmp_path):
    tracks, _ = synthetic_tracks(seconds=2.0, occlude=slice(50, 53))
    motions = build_motions(tracks, cfg(), ConvertOptions(outputs=[]))
    path = tmp_path / "take.jsonl"
    assert write_session(path, tracks, motions, "model.pth", t0=1_700_000_000.0) == tracks.frames
    packets = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(packets) == tracks.frames
    for p in packets:
        jsonschema.validate(p, SCHEMA)
    assert packets[51]["people"][0]["held"] == list(range(17))
    assert packets[-1]["v"] == 3 and len(packets[-1]["people"][0]["rotations"]) == 12
    assert packets[1]["timestamp"] - packets[0]["timestamp"] == pytest.approx(1 / FPS, abs=1e-6)


def test_session_carries_the_learned_lifters_foot_contacts_and_the_geometric_lifter_none(tmp_path):
    """The add-on pins planted feet from the packets' contacts (protocol v3): a converted take must carry them, one
    probability per foot, the feet taking turns in a walk."""
    tracks, _ = synthetic_tracks(seconds=4.0)
    path = tmp_path / "take.jsonl"
    write_session(path, tracks, build_motions(tracks, cfg(), ConvertOptions(outputs=[])), "m.pth", t0=0.0)
    people = [json.loads(line)["people"][0] for line in path.read_text().splitlines()]
    contacts = np.array([p["contacts"] for p in people if p.get("rotations")])
    assert len(contacts) == sum(bool(p.get("rotations")) for p in people) > 90
    assert ((contacts >= 0) & (contacts <= 1)).all()
    assert np.corrcoef(contacts[:, 0], contacts[:, 1])[0, 1] < -0.3, "in a walk one foot is down while the other swings"
    geometric = PipelineConfig(source="walk", udp=[], camera_pitch=0.0, lifter="geometric")
    path = tmp_path / "take_geometric.jsonl"
    write_session(path, tracks, build_motions(tracks, geometric, ConvertOptions(outputs=[])), "m.pth", t0=0.0)
    packets = [json.loads(line) for line in path.read_text().splitlines()]
    assert all("contacts" not in p for pk in packets for p in pk["people"]) and packets[-1]["v"] == 2


def test_an_animals_track_is_not_lifted_as_a_person():
    """AP-10K (`--dataset ap10k`) has 17 keypoints in another order than COCO's: its tracks stay 2D."""
    tracks, _ = synthetic_tracks(seconds=1.0)
    tracks.skeleton = "ap10k17"
    motion = build_motions(tracks, cfg(), ConvertOptions(outputs=[]))[0]
    assert np.isnan(motion.joints).all() and motion.contacts is None
    assert motion.keypoints.shape[1:] == (17, 2) and motion.present.all()


def test_an_animal_model_is_refused_before_the_video_is_read_unless_only_the_overlay_is_asked(tmp_path):
    class AnimalPose:
        skeleton, num_keypoints = "ap10k17", 17

        def __call__(self, frame, boxes):
            raise AssertionError("the video was read")

    video = tmp_path / "missing.mp4"
    for out in ("take.fbx", "take.jsonl"):
        with pytest.raises(ConvertError, match=r"ap10k17 keypoints cannot be written.*-o overlay.mp4"):
            convert.convert(cfg(), ConvertOptions(outputs=[str(tmp_path / out)]), estimator=AnimalPose())
    with pytest.raises(Exception) as err:  # the overlay alone goes on to read the video (here: there is none)
        convert.convert(PipelineConfig(source=str(video), udp=[]), ConvertOptions(outputs=[str(tmp_path / "o.mp4")]),
                        estimator=AnimalPose())
    assert "ap10k17" not in str(err.value)


def test_person_selection_errors_say_what_exists():
    tracks, _ = synthetic_tracks(seconds=1.0)
    with pytest.raises(ConvertError, match=r"found \[5\]"):
        build_motions(tracks, cfg(), ConvertOptions(outputs=[], person="2"))
    with pytest.raises(ConvertError, match="track id or 'all'"):
        build_motions(tracks, cfg(), ConvertOptions(outputs=[], person="bob"))
    assert [m.id for m in build_motions(tracks, cfg(), ConvertOptions(outputs=[], person="5"))] == [5]


def test_outputs_are_checked_before_any_work(tmp_path, monkeypatch):
    with pytest.raises(ConvertError, match="at least one output"):
        check_outputs([])
    with pytest.raises(ConvertError, match=r"\.fbx"):
        check_outputs(["take.obj"])
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"a video")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConvertError, match="destroy the input"):  # it used to overwrite the video it read
        check_outputs(["clip.mp4"], str(video))
    take = tmp_path / "take.jsonl"
    take.write_text('{"v": 3}\n')
    with pytest.raises(ConvertError, match="already holds a recording"):  # it used to delete it first
        check_outputs([str(take)], str(video))
    with pytest.raises(ConvertError, match="is a file, not a folder"):
        check_outputs(["clip.mp4/take.fbx"], str(video))
    # relative outputs are the caller's, not the repository's (Blender exports from another directory)
    assert check_outputs(["out/anim.fbx"], str(video)) == [tmp_path / "out" / "anim.fbx"]
    assert take.read_text() == '{"v": 3}\n' and video.read_bytes() == b"a video"


def test_foot_locking_takes_the_slide_off_planted_feet():
    from pose_server.convert import foot_contacts, lock_feet
    from pose_server.lift.skeleton3d import REST_JOINTS, J

    n = 120
    joints = np.repeat(REST_JOINTS[None], n, axis=0)  # standing on both feet ...
    joints[60:, [J["l_knee"], J["l_ankle"]], 2] += 0.25  # ... then on the right one, the left foot raised
    rng = np.random.default_rng(0)
    wobble = np.cumsum(rng.normal(0, 0.004, (n, 2)), axis=0)  # a drifting, shaky root, as a lifter's can be
    noisy = joints.copy()
    noisy[:, :, :2] += wobble[:, None, :]
    contact = foot_contacts(noisy, FPS, 1.75)
    assert contact[:60].all() and not contact[60:, 0].any() and contact[60:, 1].all()
    locked = lock_feet(noisy, FPS, 1.75)
    right = J["r_ankle"]
    slide = lambda j: np.linalg.norm(np.diff(j[:, right, :2], axis=0), axis=-1).mean()  # noqa: E731
    assert slide(locked) < 0.2 * slide(noisy), (slide(locked), slide(noisy))
    assert np.allclose(locked[:, :, 2], noisy[:, :, 2])  # heights and the pose itself are untouched
    assert np.allclose(np.diff(locked, axis=1), np.diff(noisy, axis=1))
    moving = noisy.copy()  # a foot that slides faster than 0.5 m/s is walking, not planted: left alone
    moving[:, :, 0] += np.arange(n)[:, None] * (1.0 / FPS)
    assert not foot_contacts(moving, FPS, 1.75).any()
    assert np.allclose(lock_feet(moving, FPS, 1.75), moving)


def test_convert_lifts_with_the_servers_learned_lifter_smoother_than_live_and_as_accurate():
    from pose_server.convert import offline_lifter
    from pose_server.lift import LearnedLifter
    from pose_server.track_signal import TrackSignal

    assert isinstance(offline_lifter(cfg(), IMAGE), LearnedLifter), "the server's default lifter"
    tracks, gt = synthetic_tracks(seconds=6.0)
    offline = build_motions(tracks, cfg(), ConvertOptions(outputs=[]))[0].joints
    live_signal = TrackSignal(cfg(), 17, IMAGE, LearnedLifter)  # the live path: frame by frame, causal filters
    live = []
    for i in range(tracks.frames):
        person = live_signal.person(5, tracks.boxes[5][i], tracks.keypoints[5][i], tracks.scores[5][i], i / FPS,
                                    None, lambda e: None)
        live.append(np.full((17, 3), np.nan) if person["joints_3d"] is None else person["joints_3d"])
    live = np.array(live, float)

    def body(j: np.ndarray) -> np.ndarray:  # root-relative, after the lifter's calibration frames
        return (j - 0.5 * (j[:, [11]] + j[:, [12]]))[45:]

    def mpjpe(j: np.ndarray) -> float:
        return float(np.nanmean(np.linalg.norm(body(j) - body(gt), axis=-1)))

    assert jitter(offline[45:]) < 0.6 * jitter(live[45:])
    assert mpjpe(offline) <= mpjpe(live) + 0.002


def test_an_unknown_camera_pitch_is_estimated_over_the_whole_video_before_lifting(monkeypatch):
    # a walker crossing the view of a camera looking 20 deg down; the pitch not given (--camera-pitch auto)
    joints, _ = walk(seconds=4.0, fps=FPS, heading_deg=90.0)
    target = np.array([*joints[:, :, :2].mean((0, 1)), 0.95])
    cam = PinholeCamera(IMAGE, target + [0.0, -5.0, 5.0 * np.tan(np.radians(20.0))], target)
    px = cam.project(joints)
    tracks = Tracks(fps=FPS, size=IMAGE, frames=len(joints), skeleton="coco17", source_name="walk")
    tracks.boxes[1] = np.concatenate([px.min(1) - 20, px.max(1) + 20], axis=1)
    tracks.keypoints[1], tracks.scores[1] = px, np.full((len(joints), 17), 0.9)
    told = []
    real = convert.offline_lifter
    monkeypatch.setattr(convert, "offline_lifter", lambda c, *a: told.append(c.camera_pitch) or real(c, *a))
    (motion,) = build_motions(tracks, PipelineConfig(source="walk", udp=[], camera_pitch=None), ConvertOptions([]))
    assert told[0] is None  # the estimating pass
    assert told[-1] == pytest.approx(20.0, abs=4.0)  # the lifting pass: one pitch from the first frame on
    chain = motion.joints[:, [5, 6]].mean(1) - motion.joints[:, [15, 16]].mean(1)
    lean = np.degrees(np.arctan2(chain[:, 1], chain[:, 2]))
    assert abs(np.nanmedian(lean[:30])) < 4.0 and abs(np.nanmedian(lean[-30:])) < 4.0  # upright, first second too


def test_a_clip_shorter_than_the_shortest_track_kept_is_converted():
    """A 5-frame clip with a clearly seen person said "nobody was found long enough ... try another --detector"."""
    tracks, _ = synthetic_tracks(seconds=5 / FPS)
    assert tracks.frames == 5
    assert [m.id for m in build_motions(tracks, cfg(), ConvertOptions(outputs=[]))] == [5]
    brief, _ = synthetic_tracks(seconds=2.0, occlude=slice(5, None))  # seen for 5 frames of 60
    with pytest.raises(ConvertError, match=r"track 5: 5 frames\); convert one of them with --person ID"):
        build_motions(brief, cfg(), ConvertOptions(outputs=[]))
    assert [m.id for m in build_motions(brief, cfg(), ConvertOptions(outputs=[], person="5"))] == [5]


def test_a_whole_body_track_is_converted_with_its_hands(tmp_path):
    """convert dropped the hands: a whole-body model's take had every finger at rest (packets v3, no `hands`),
    where `run` sends them (v4)."""
    from scipy.spatial.transform import Rotation

    from pose_server.hands import hand_quaternions
    from pose_server.hands.synthetic import random_hand

    tracks, _ = synthetic_tracks(seconds=2.0, noise=0.0)
    joints, _ = walk(seconds=2.0, fps=FPS)
    cam = PinholeCamera.orbit(IMAGE, np.array([*joints[:, :, :2].mean((0, 1)), 1.0]), 45.0, distance=5.0, height=1.0)
    angles = random_hand(np.random.default_rng(3), "L", cam, joints[0, 9]).angles  # one hand pose, held
    kpts = np.zeros((tracks.frames, 133, 2))
    scores = np.zeros((tracks.frames, 133))
    kpts[:, :17], scores[:, :17] = tracks.keypoints[5], tracks.scores[5]
    for i in range(tracks.frames):  # the left hand at the walk's left wrist, turning with nothing, seen at 0.9
        kpts[i, 91:112] = random_hand(np.random.default_rng(3), "L", cam, joints[i, 9], angles=angles).pixels
    scores[:, 91:112] = 0.9
    tracks.skeleton, tracks.keypoints[5], tracks.scores[5] = "wholebody133", kpts, scores
    m = build_motions(tracks, cfg(), ConvertOptions(outputs=[]))[0]
    lifted = np.isfinite(m.rotations).all(axis=(1, 2))
    assert lifted.sum() > 30 and all(m.hands[i] is not None for i in np.flatnonzero(lifted))
    assert all(h[1] is None for h in m.hands if h is not None)  # the right hand was never seen
    people = convert.frame_people([m], int(np.flatnonzero(lifted)[-1]))
    left = np.asarray(people[0]["hands"][0])
    want = hand_quaternions("L", np.eye(3), angles)  # the fingers' turns in their palm: the palm's own is moot
    got = Rotation.from_quat(left[1:, [1, 2, 3, 0]])
    err = np.degrees((got.inv() * Rotation.from_quat(want[1:, [1, 2, 3, 0]])).magnitude())
    assert np.median(err) < 5.0, np.round(err, 1)
    write_session(tmp_path / "take.jsonl", tracks, [m], "wholebody.pth", 1_700_000_000.0)
    packets = [json.loads(line) for line in (tmp_path / "take.jsonl").read_text().splitlines()]
    for packet in packets:
        jsonschema.validate(packet, SCHEMA)
    assert {p["v"] for p in packets if p["people"] and p["people"][0].get("joints_3d")} == {4}


def test_blenders_own_error_reaches_the_user_when_its_output_ran_into_the_result_line(tmp_path, monkeypatch):
    """Blender printed without a final newline, the worker's RESULT line came after it on the same line, and the
    user read "is the bpy module installed?" instead of Blender's own reason."""
    worker = tmp_path / "worker.py"
    worker.write_text('import json, sys\nsys.stdout.write("Error: Cannot open file for writing")\n'
                      'print("RESULT " + json.dumps({"error": "FileNotFoundError: /proc/x.fbx"}))\n')
    monkeypatch.setattr(convert, "BLENDER_WORKER", worker)
    with pytest.raises(ConvertError, match=r"Blender could not export: FileNotFoundError: /proc/x.fbx"):
        convert.run_blender(tmp_path / "take.jsonl", [tmp_path / "x.fbx"], [0], 30.0)


def test_a_variable_frame_rate_video_is_converted_on_its_own_frame_times(tmp_path):
    """convert timed frame i at i / the average rate: a phone's variable frame rate came out evenly spaced, the
    motion sped up and slowed down. tests/data/vfr.mp4: 10 frames 40 ms apart, then 5 frames 80-120 ms apart."""
    from pathlib import Path

    from tests.server.test_sources import _NoPose

    video = Path(__file__).resolve().parents[1] / "data" / "vfr.mp4"
    tracks = convert.estimate_2d(PipelineConfig(source=str(video), detector="full-frame", udp=[]), _NoPose(),
                                 progress=False)
    want = [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.28, 0.32, 0.36, 0.44, 0.52, 0.64, 0.72, 0.84]
    assert tracks.frame_times == pytest.approx(want, abs=1e-3)
    write_session(tmp_path / "take.jsonl", tracks, [], "m", 1000.0)
    stamps = [json.loads(line)["timestamp"] for line in (tmp_path / "take.jsonl").read_text().splitlines()]
    assert np.array(stamps) - 1000.0 == pytest.approx(want, abs=1e-3)
