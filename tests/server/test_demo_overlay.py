"""The demo draws a clip's overlay after the run, from the recorded session: the same video the live preview writes."""

from __future__ import annotations

import json

import cv2
import pytest

from pose_server.config import PipelineConfig
from pose_server.demo_media import write_overlay
from pose_server.pipeline import Pipeline

from .conftest import write_clip


def test_the_overlay_drawn_afterwards_is_the_live_preview(clip, tiny_checkpoint, receiver, tmp_path):
    take, live = tmp_path / "take.jsonl", tmp_path / "live.mp4"
    cfg = PipelineConfig(source=str(clip), checkpoint=str(tiny_checkpoint), backend="torch", quantize=False,
                         detector="full-frame", udp=[receiver.target], kpt_threshold=0.0, log_every=1e9,
                         record=str(take), preview=str(live))
    pipe = Pipeline(cfg)
    pipe.start()
    assert pipe.wait(timeout=120)
    pipe.stop()
    packets = [json.loads(line) for line in take.read_text().splitlines()]
    assert len(packets) == 24 and all(p["people"] for p in packets)

    after = tmp_path / "after.mp4"
    assert write_overlay(clip, take, after, min_score=0.0) == 24
    assert after.read_bytes() == live.read_bytes()  # the same frames into the same encoder

    # Another clip than the one streamed: said, not drawn wrong.
    short = write_clip(tmp_path / "short.mp4", frames=10)
    with pytest.raises(ValueError, match="ends before frame 10 .*is it the clip that was streamed"):
        write_overlay(short, take, tmp_path / "bad.mp4", min_score=0.0)
    assert int(cv2.VideoCapture(str(after)).get(cv2.CAP_PROP_FRAME_COUNT)) == 24
