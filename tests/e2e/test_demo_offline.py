"""The issue's promise: with no network and no ViTPose weights, `make demo` still turns the bundled clip into
real motion, with the embedded BlazePose model that `make` fetched (copied into an otherwise empty checkpoints/).

The first 45 frames are the man on the box doing jumping jacks: his wrists go above his head and back below
his shoulders, which random weights or a wrong model would not reproduce."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pose_server.blazepose import embedded_dir
from pose_server.blazepose.files import MODEL_FILES
from tests.conftest import ROOT

FRAMES = 45
NOSE, L_SHOULDER, R_SHOULDER, L_WRIST, R_WRIST = 0, 5, 6, 9, 10


@pytest.fixture(scope="module")
def offline_demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("offline")
    (tmp / "checkpoints" / "embedded").mkdir(parents=True)
    for key in ("detector", "full"):
        shutil.copy(embedded_dir() / MODEL_FILES[key].name, tmp / "checkpoints" / "embedded")
    out = tmp / "out"
    env = {**os.environ, "VITPOSE_CHECKPOINTS": str(tmp / "checkpoints"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pose_server.demo", "--max-frames", str(FRAMES), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "summary.json").read_text()), proc.stderr


def test_auto_falls_back_to_the_embedded_model_and_says_so(offline_demo):
    _, summary, log = offline_demo
    assert summary["model"] == "blazepose-full" and summary["backend"] == "litert"
    assert log.count("using the embedded BlazePose-full model") == 1


def test_every_output_is_written(offline_demo):
    out, summary, _ = offline_demo
    for name in ["demo.fbx", "demo_P0.bvh", "overlay.mp4", "compare.mp4", "demo_sheet.png", "summary.json"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert summary["packets_lost"] == 0 and summary["packets_applied"] >= FRAMES - 2


def test_the_jumping_jacks_arrive_in_3d(offline_demo):
    out, _, _ = offline_demo
    packets = [json.loads(line) for line in (out / "take.jsonl").read_text().splitlines() if line.strip()]
    man = [p["people"][0] for p in packets if p["people"] and p["people"][0].get("joints_3d")]
    assert len(man) >= FRAMES - 5, "the man on the box was not tracked and lifted through the clip's start"
    assert np.median([np.median(p["scores"]) for p in man]) > 0.7  # a real model's confidence, not noise
    joints = np.array([p["joints_3d"] for p in man])  # (T, 17, 3), Z up
    wrists_z = joints[:, [L_WRIST, R_WRIST], 2].min(1), joints[:, [L_WRIST, R_WRIST], 2].max(1)
    arms_up = wrists_z[0] > joints[:, NOSE, 2]
    arms_down = wrists_z[1] < joints[:, [L_SHOULDER, R_SHOULDER], 2].min(1)
    assert arms_up.sum() >= 3 and arms_down.sum() >= 3, (arms_up.sum(), arms_down.sum())
