"""Whole body end to end on the server: a 133-keypoint ViTPose (tiny, random weights) on a real clip
streams wholebody133 packets that validate, with the 17 body joints lifted to 3D and (protocol v4) a
`hands` entry for each person."""

from __future__ import annotations

import json

import jsonschema

from pose_server.config import PipelineConfig
from pose_server.pipeline import Pipeline
from pose_server.vitpose.tiny import make_tiny_checkpoint

from .conftest import SCHEMA


def test_wholebody_model_streams_133_keypoints_and_body_3d(clip, receiver, tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "tiny_wholebody.pth", num_keypoints=133)
    cfg = PipelineConfig(source=str(clip), checkpoint=str(ckpt), backend="torch", quantize=False,
                         detector="full-frame", kpt_threshold=0.0, udp=[receiver.target], log_every=1e9)
    pipe = Pipeline(cfg)
    pipe.start()
    assert pipe.wait(timeout=120)
    packets = [json.loads(d) for d in receiver.collect(idle=0.5)]
    assert packets and len(packets) == pipe.status()["frames"]
    for p in packets:
        jsonschema.validate(p, SCHEMA)
        assert p["skeleton"] == "wholebody133"
        person = p["people"][0]
        assert len(person["keypoints"]) == len(person["scores"]) == 133
        assert p["v"] == 4 and len(person["hands"]) == 2  # random weights: a hand may never fit (None)
    lifted = [p["people"][0].get("joints_3d") for p in packets]
    assert any(j is not None and len(j) == 17 for j in lifted)
