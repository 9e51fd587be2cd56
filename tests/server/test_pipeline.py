"""A real video through the whole pipeline (tiny random-weight ViTPose) to real UDP sockets on loopback."""

from __future__ import annotations

import json
import time

import cv2
import jsonschema
import numpy as np
import pytest

from pose_server.config import PipelineConfig
from pose_server.pipeline import Pipeline

from .conftest import SCHEMA, Receiver, streamed_packets, write_clip


def _config(clip, checkpoint, targets, **kw) -> PipelineConfig:
    # kpt_threshold 0: random weights give low scores, and the test wants the track (and people) to persist.
    base = dict(source=str(clip), checkpoint=str(checkpoint), backend="torch", quantize=False, detector="full-frame",
                udp=targets, kpt_threshold=0.0, log_every=1e9)
    base.update(kw)
    return PipelineConfig(**base)


def test_video_to_udp_every_packet_arrives_and_validates(clip, tiny_checkpoint, receiver, tmp_path):
    record, preview = tmp_path / "take.jsonl", tmp_path / "overlay.mp4"
    pipe = Pipeline(_config(clip, tiny_checkpoint, [receiver.target], record=str(record), preview=str(preview)))
    pipe.start()
    assert pipe.wait(timeout=120)
    status = pipe.status()
    packets = [json.loads(d) for d in receiver.collect(idle=0.5)]

    frames = int(cv2.VideoCapture(str(clip)).get(cv2.CAP_PROP_FRAME_COUNT))
    assert len(packets) == frames == status["frames"]
    for p in packets:
        jsonschema.validate(p, SCHEMA)
    assert [p["seq"] for p in packets] == list(range(frames))
    assert [p["frame"] for p in packets] == list(range(frames))  # files: every frame, in order
    assert all(p["image_size"] == [320, 240] and p["skeleton"] == "coco17" for p in packets)
    assert all(len(p["people"]) == 1 for p in packets)
    assert len({p["people"][0]["id"] for p in packets}) == 1  # one performer keeps one id
    assert all(p["sent"] >= p["timestamp"] for p in packets)

    assert status["state"] == "finished" and status["error"] is None
    assert status["backend"] == "torch" and status["inference"] == "torch fp32"  # what runs, for the panel
    assert status["latency_ms"]["p50"] is not None and status["latency_ms"]["p95"] >= status["latency_ms"]["p50"]
    assert status["detector_runs"] <= 2  # full-frame seeds the track once; keypoints carry it afterwards
    assert status["dropped_frames"] == 0 and status["corrupt_frames"] == 0

    # The recording holds exactly the datagrams that were sent, and the overlay video every frame.
    lines = record.read_text().splitlines()
    assert [json.loads(line) for line in lines] == packets
    cap = cv2.VideoCapture(str(preview))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (320, 240)
    assert pipe.latest_packet() == packets[-1]
    jpeg = pipe.latest_preview_jpeg(max_width=160)
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[1] == 160


def _wait_for(cond, timeout: float = 20.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached in time"
        time.sleep(0.05)


def test_live_updates_and_restart(clip, tiny_checkpoint, tmp_path):
    first, second = Receiver(), Receiver()
    other_clip = write_clip(tmp_path / "other.mp4", frames=12, size=(256, 192))
    pipe = Pipeline(_config(clip, tiny_checkpoint, [first.target], realtime=True, loop=True))
    try:
        pipe.start()
        _wait_for(lambda: pipe.status()["frames"] >= 5)
        model = pipe._estimator

        # Live: smoothing parameters reach the per-track filters, the targets change, no restart.
        out = pipe.update(min_cutoff=0.25, beta=0.5, udp=[second.target], det_interval=5)
        assert out["restarted"] is False and set(out["applied"]) == {"min_cutoff", "beta", "udp", "det_interval"}
        filters = [s.f2d for s in pipe._signals.values()]
        assert filters and all(f.min_cutoff == 0.25 and f.beta == 0.5 for f in filters)
        assert pipe.tracker.det_interval == 5
        time.sleep(0.3)
        first.drain()  # what was sent before the switch
        got = second.collect(idle=0.5, limit=5)
        assert len(got) == 5
        assert first.collect(idle=0.3) == []  # the old target gets nothing any more
        assert pipe.status()["udp_targets"] == [second.target]

        with pytest.raises(ValueError, match="unknown setting"):
            pipe.update(smoothness=3)
        with pytest.raises(ValueError, match="bad UDP target"):
            pipe.update(udp=["no-port"])
        assert pipe.status()["udp_targets"] == [second.target]  # a refused change leaves things as they were

        # Restart: a new source reopens cleanly, keeps the loaded model and says it restarted.
        out = pipe.update(source=str(other_clip))
        second.drain()  # packets of the old source sent before the restart
        assert out["restarted"] is True and "source" in out["restart_reason"]
        assert pipe._estimator is model
        _wait_for(lambda: pipe.status()["frames"] >= 3)
        packets = [json.loads(d) for d in second.collect(idle=1.0, limit=3)]
        assert all(p["image_size"] == [256, 192] and p["source"] == "other.mp4" for p in packets)

        # A restart that fails keeps the previous set-up running and says why.
        with pytest.raises(ValueError, match="not found"):
            pipe.update(source=str(tmp_path / "missing.mp4"))
        assert pipe.running and pipe.status()["source"] == str(other_clip)
    finally:
        pipe.stop()
        first.close()
        second.close()
    assert pipe.status()["running"] is False


def test_recording_started_and_stopped_while_running(clip, tiny_checkpoint, receiver, tmp_path):
    pipe = Pipeline(_config(clip, tiny_checkpoint, [receiver.target], realtime=True, loop=True))
    path = tmp_path / "live.jsonl"
    try:
        pipe.start()
        pipe.start()  # idempotent
        pipe.start_recording(str(path))
        _wait_for(lambda: pipe.status()["recording"]["packets"] >= 4)
        with pytest.raises(FileExistsError):
            pipe.start_recording(str(path))  # never overwrites a take
        # A restart (new source) keeps recording into the same file, and seq goes on.
        other = write_clip(tmp_path / "other.mp4", frames=6, size=(160, 120))
        assert pipe.update(source=str(other))["restarted"] is True
        _wait_for(lambda: pipe.status()["frames"] >= 4)
        result = pipe.stop_recording()
        assert result["path"] == str(path) and result["packets"] >= 8
        assert pipe.status()["recording"]["active"] is False
    finally:
        pipe.stop()
    packets = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(packets) == result["packets"]
    seqs = [p["seq"] for p in packets]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert {p["source"] for p in packets} == {clip.name, "other.mp4"}


class BrightFigurePose:
    """A hand-made 'pose model' for the clip: finds the bright stick figure inside each box and lays a standing
    COCO-17 skeleton over it. It lets the test check 3D lifting, IK rotations (protocol v2) and the keypoint-
    driven tracking on real decoded frames, which random ViTPose weights cannot."""

    skeleton = "coco17"
    num_keypoints = 17
    UNIT = np.array([
        [.5, .08], [.55, .06], [.45, .06], [.6, .08], [.4, .08], [.7, .22], [.3, .22], [.78, .38], [.22, .38],
        [.8, .52], [.2, .52], [.62, .55], [.38, .55], [.62, .75], [.38, .75], [.62, .95], [.38, .95],
    ], np.float32)
    UNIT = (UNIT - UNIT.min(0)) / (UNIT.max(0) - UNIT.min(0))  # wrists, eyes and ankles at the figure's extent

    def __call__(self, frame, boxes):
        kpts, scores = [], []
        for x1, y1, x2, y2 in boxes.astype(int):
            crop = frame[max(y1, 0):y2, max(x1, 0):x2]
            ys, xs = np.nonzero(crop.min(axis=2) > 150)  # the figure is drawn in light grey
            if len(xs) < 20:
                kpts.append(np.zeros((17, 2), np.float32))
                scores.append(np.zeros(17, np.float32))
                continue
            lo = np.array([xs.min() + max(x1, 0), ys.min() + max(y1, 0)], np.float32)
            hi = np.array([xs.max() + max(x1, 0), ys.max() + max(y1, 0)], np.float32)
            kpts.append(lo + self.UNIT * (hi - lo))
            scores.append(np.full(17, 0.9, np.float32))
        return np.stack(kpts), np.stack(scores)


@pytest.mark.parametrize("version", [2, 3, 4])
def test_lifted_packets_follow_the_figure(clip, receiver, version):
    """The default learned lifter; version 3 adds the feet's contact probabilities; version 4 (the default)
    sends COCO-17 packets as version 3 (it adds only hands, which need a whole-body model)."""
    cfg = PipelineConfig(source=str(clip), detector="full-frame", udp=[receiver.target], protocol_version=version,
                         log_every=1e9)
    assert cfg.lifter == "learned" and PipelineConfig().protocol_version == 4
    pipe = Pipeline(cfg, estimator=BrightFigurePose())
    packets = streamed_packets(pipe, receiver)
    assert len(packets) == 24
    assert all(p["v"] == min(version, 3) and len(p["people"]) == 1 for p in packets)
    person = packets[-1]["people"][0]
    assert len(person["joints_3d"]) == 17 and len(person["rotations"]) == 12
    if version >= 3:
        assert len(person["contacts"]) == 2 and all(0.0 <= c <= 1.0 for c in person["contacts"])
    else:
        assert "contacts" not in person
    assert np.allclose(np.linalg.norm(person["rotations"], axis=1), 1.0, atol=1e-3)
    # The figure walks right 6 px per frame: so do its (smoothed) keypoints, under one id.
    hips_x = [np.mean([p["people"][0]["keypoints"][i][0] for i in (11, 12)]) for p in packets]
    assert hips_x[-1] - hips_x[0] > 80
    assert {p["people"][0]["id"] for p in packets} == {0}
    assert pipe.status()["detector_runs"] <= 2
    # Every track's lifter places its poses in the run's one world frame (lift/world.py), owned by the first.
    assert pipe._signals and all(sig.lifter.world is pipe._world for sig in pipe._signals.values())
    assert pipe._world.owner is not None


def test_an_animal_model_is_refused_at_the_start_with_what_to_do(clip, receiver):
    """An AP-10K model (`--dataset ap10k`) outputs 17 keypoints in another order than COCO's, which no packet can
    carry: the run stops before its first frame and says which datasets stream."""
    class AnimalPose(BrightFigurePose):
        skeleton = "ap10k17"

    cfg = PipelineConfig(source=str(clip), detector="full-frame", udp=[receiver.target], log_every=1e9)
    with pytest.raises(ValueError, match=r"ap10k17 keypoints cannot be streamed.*--dataset coco or wholebody"):
        Pipeline(cfg, estimator=AnimalPose()).start()


def test_camera_like_source_drops_stale_frames_instead_of_queueing(tmp_path, receiver):
    """A source paced like a camera and a model three times too slow: frames are dropped and counted,
    the newest one is processed, and latency stays near one inference instead of growing."""
    class SlowPose(BrightFigurePose):
        def __call__(self, frame, boxes):
            time.sleep(0.1)  # 10 fps against a 30 fps source
            return super().__call__(frame, boxes)

    clip = write_clip(tmp_path / "long.mp4", frames=45)
    cfg = PipelineConfig(source=str(clip), detector="full-frame", udp=[receiver.target], realtime=True,
                         drop_stale=True, log_every=1e9)
    pipe = Pipeline(cfg, estimator=SlowPose())
    pipe.start()
    assert pipe.wait(timeout=60)
    status = pipe.status()
    frames = [json.loads(d)["frame"] for d in receiver.collect(idle=0.5)]
    assert 8 <= len(frames) < 30 and frames == sorted(set(frames))
    assert status["dropped_frames"] == 45 - len(frames)
    lat = [status["latency_ms"]["p50"], status["latency_ms"]["p95"]]
    assert lat[1] < 400, lat  # queueing every frame would reach ~1 s by the end of this clip
    assert np.diff(frames).max() > 1


def test_first_calls_are_made_before_the_first_frame_and_change_nothing(clip, receiver):
    """start() runs the detector, the estimator and the lifter's loading once on a blank frame before the stage
    threads start (a camera-like source would otherwise drop the frames those first calls take); the packets are
    those of a cold start."""
    class Recording(BrightFigurePose):
        def __init__(self) -> None:
            self.frames: list[np.ndarray] = []

        def __call__(self, frame, boxes):
            self.frames.append(frame.copy())
            return super().__call__(frame, boxes)

    def run(warm: bool) -> tuple[Recording, list[dict]]:
        est = Recording()
        pipe = Pipeline(PipelineConfig(source=str(clip), detector="full-frame", udp=[receiver.target], log_every=1e9),
                        estimator=est)
        if not warm:
            pipe._warm_up = lambda: None
        return est, streamed_packets(pipe, receiver)

    warm_est, warm = run(True)
    cold_est, cold = run(False)
    assert len(warm) == len(cold) == 24 and len(warm_est.frames) == 25 and len(cold_est.frames) == 24
    blank = warm_est.frames[0]
    assert blank.shape == cold_est.frames[0].shape and (blank == blank.flat[0]).all()  # before any video frame
    assert all(np.array_equal(a, b) for a, b in zip(warm_est.frames[1:], cold_est.frames, strict=True))
    timing = ("sent", "timestamp", "meta")
    assert [{k: v for k, v in p.items() if k not in timing} for p in warm] == \
           [{k: v for k, v in p.items() if k not in timing} for p in cold]


def test_a_frame_the_encoder_refuses_costs_that_frame_only(clip, receiver, monkeypatch, caplog):
    """A packet too large for a datagram (16 whole-body people with held points far off the frame can be): the
    frame is not sent, counted and logged, and streaming goes on (it used to stop the pipeline)."""
    from pose_server import protocol

    encode = protocol.PacketEncoder.encode

    def refuse_frame_5(self, frame_index, *args, **kwargs):
        if frame_index == 5:
            raise protocol.PacketTooLarge("packet of 65569 bytes exceeds the 65507-byte datagram limit")
        return encode(self, frame_index, *args, **kwargs)

    monkeypatch.setattr(protocol.PacketEncoder, "encode", refuse_frame_5)
    pipe = Pipeline(PipelineConfig(source=str(clip), detector="full-frame", udp=[receiver.target], log_every=1e9),
                    estimator=BrightFigurePose())
    packets = streamed_packets(pipe, receiver)
    status = pipe.status()
    assert status["state"] == "finished" and status["error"] is None
    assert [p["frame"] for p in packets] == [i for i in range(24) if i != 5]
    assert [p["seq"] for p in packets] == list(range(23))  # no gap in seq: receivers see nothing missing
    assert status["refused_packets"] == 1
    assert "frame not sent (1 so far): packet of 65569 bytes" in caplog.text


def test_outputs_and_token_are_checked_before_anything_is_read_or_written(clip, receiver, tmp_path):
    """`--preview` naming the source video overwrote the video it was reading; an existing take or a preview under
    a file failed only at the first frame (after the model loaded, a line of the take written); a token the packets
    cannot carry sent nothing at all."""
    before = clip.read_bytes()
    take = tmp_path / "take.jsonl"
    take.write_text('{"v": 3}\n')
    (tmp_path / "a_file").write_text("x")
    cases = [(dict(preview=str(clip)), ValueError, "destroy the input"),
             (dict(record=str(take)), FileExistsError, "already holds a recording"),
             (dict(preview=str(tmp_path / "a_file" / "overlay.mp4")), ValueError, "is a file, not a folder"),
             (dict(udp_token="x" * 300), ValueError, "at most 256")]
    for changes, error, message in cases:
        pipe = Pipeline(PipelineConfig(source=str(clip), detector="full-frame", udp=[receiver.target], log_every=1e9,
                                       **changes), estimator=BrightFigurePose())
        with pytest.raises(error, match=message):
            pipe.start()
        assert not pipe.running and pipe.source is None, changes  # refused before the source was opened
    assert clip.read_bytes() == before and take.read_text() == '{"v": 3}\n'
    # a file read as fast as the server goes, told to keep only the newest frame: most frames would be dropped
    pipe = Pipeline(PipelineConfig(source=str(clip), detector="full-frame", udp=[receiver.target], drop_stale=True,
                                   log_every=1e9), estimator=BrightFigurePose())
    with pytest.raises(ValueError, match="add --realtime"):
        pipe.start()
    assert not pipe.running
    assert not receiver.collect(idle=0.2)


def test_a_refused_change_changes_nothing_and_record_off_stops_across_a_restart(clip, receiver, tmp_path):
    """set_config used to apply the UDP and VMC targets, then fail on the recording's path, leaving the server
    sending to targets its config did not show; and "record": null beside a restart field said applied while the
    recording went on."""
    pipe = Pipeline(PipelineConfig(source=str(clip), detector="full-frame", udp=[receiver.target], realtime=True,
                                   loop=True, log_every=1e9), estimator=BrightFigurePose())
    try:
        pipe.start()
        _wait_for(lambda: pipe.status()["frames"] >= 3)
        with pytest.raises(ValueError, match="is a folder"):
            pipe.update(udp=["127.0.0.1:9100"], vmc=["127.0.0.1:39539"], record=str(tmp_path))
        status = pipe.status()
        assert status["udp_targets"] == [receiver.target] and pipe.vmc is None
        assert status["config"]["udp"] == [receiver.target] and status["config"]["vmc"] == []
        assert not status["recording"]["active"]

        take = tmp_path / "take.jsonl"
        pipe.update(record=str(take))
        _wait_for(lambda: pipe.status()["recording"]["packets"] >= 2)
        out = pipe.update(record=None, camera_hfov=70.0)
        assert out["restarted"] is True
        assert not pipe.status()["recording"]["active"] and pipe.config.record is None
        lines = len(take.read_text().splitlines())
        time.sleep(0.3)
        assert len(take.read_text().splitlines()) == lines  # it stopped
    finally:
        pipe.stop()


def test_a_looped_file_keeps_moving_after_its_first_pass(receiver, tmp_path):
    """The clip's time went back to 0 at each loop: every filter of a track that carried on across the loop took
    the new frames for a step back in time, and the skeleton froze from the second pass on (keypoints 2.8 px a
    frame in the first pass, 0.03 after)."""
    import cv2

    from .conftest import streamed_packets

    path, n = tmp_path / "sway.mp4", 24
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (320, 240))
    for i in range(n):  # a figure swaying left and right, back where it started at the loop: one track throughout
        img = np.full((240, 320, 3), 60, np.uint8)
        x = int(160 + 30 * np.sin(2 * np.pi * i / n))
        cv2.circle(img, (x, 60), 12, (220, 200, 180), -1)
        cv2.line(img, (x, 72), (x, 140), (200, 200, 200), 6)
        cv2.line(img, (x, 140), (x - 20, 200), (200, 200, 200), 6)
        cv2.line(img, (x, 140), (x + 20, 200), (200, 200, 200), 6)
        cv2.line(img, (x - 30, 95), (x + 30, 95), (200, 200, 200), 6)
        writer.write(img)
    writer.release()
    pipe = Pipeline(PipelineConfig(source=str(path), detector="full-frame", udp=[receiver.target], loop=True,
                                   max_frames=3 * n, log_every=1e9), estimator=BrightFigurePose())
    packets = streamed_packets(pipe, receiver, timeout=120)
    assert len(packets) == 3 * n and len({p["people"][0]["id"] for p in packets if p["people"]}) == 1
    nose_x = np.array([p["people"][0]["keypoints"][0][0] for p in packets])
    sway = [np.ptp(nose_x[k * n:(k + 1) * n]) for k in range(3)]
    assert sway[0] > 40 and sway[1] > 0.8 * sway[0] and sway[2] > 0.8 * sway[0], np.round(sway, 1)
    stamps = [p["timestamp"] for p in packets]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))


def test_an_unpaced_file_warns_that_a_take_from_it_plays_at_the_processing_speed(clip, receiver, caplog):
    """`run --source clip.mp4` reads the file as fast as it can and stamps each packet with the time its frame was
    read: a take recorded in Blender from it played at the processing speed (2.5 times slower at 12 fps), silently."""
    from .conftest import streamed_packets

    for realtime in (False, True):
        caplog.clear()
        with caplog.at_level("WARNING"):
            streamed_packets(Pipeline(PipelineConfig(source=str(clip), detector="full-frame", udp=[receiver.target],
                                                     realtime=realtime, max_frames=3, log_every=1e9),
                                      estimator=BrightFigurePose()), receiver)
        assert ("plays at the processing speed" in caplog.text) is not realtime, caplog.text


def test_a_live_sources_preview_keeps_the_capture_clock(tmp_path):
    """The preview of a live source was written one frame per processed frame at the rate the source reports: a
    stream delivering 10 fps while reporting 25 gave a video 2.5 times too fast (dropped frames shortened it too)."""
    import cv2

    from pose_server.preview import PreviewWriter

    def frames_in(path) -> int:
        cap = cv2.VideoCapture(str(path))
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        return n

    for name, step in (("slow", 0.2), ("fast", 0.05)):  # 5 and 20 frames a second into a 10 fps video, for 2 s
        writer = PreviewWriter(tmp_path / f"{name}.mp4", fps=10.0)
        for k in range(int(round(2.0 / step)) + 1):
            writer.write(np.full((48, 64, 3), 5 * k % 250, np.uint8), 1000.0 + k * step)
        writer.close()
        assert frames_in(tmp_path / f"{name}.mp4") == 21, name  # 2 s at 10 fps, whatever the source delivered
    writer = PreviewWriter(tmp_path / "file.mp4", fps=10.0)  # a file: every frame once
    for _ in range(7):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.close()
    assert frames_in(tmp_path / "file.mp4") == 7
