"""scripts/reproduce_temporal_lifter.py: the four training runs chained as temporal_lifter.md gives them, and the
comparison with the shipped weights (no training here: it takes hours)."""

import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import reproduce_temporal_lifter as repro  # noqa: E402


def test_each_stage_continues_from_the_one_before(tmp_path):
    cmds = repro.stage_commands(["train/MANIFEST.csv"], tmp_path)
    assert len(cmds) == 4 and "--init" not in cmds[0]
    for k, cmd in enumerate(cmds, start=1):
        assert cmd[cmd.index("--out") + 1] == str(tmp_path / f"stage{k}.npz")
        if k > 1:
            assert cmd[cmd.index("--init") + 1] == str(tmp_path / f"stage{k - 1}.npz")
    assert cmds[0][cmds[0].index("--proportions") + 1] == "0"
    last = cmds[3]
    assert last[last.index("--dilations") + 1:last.index("--dilations") + 5] == ["3", "9", "27", "81"]
    assert last[last.index("--seed") + 1] == "8" and "--no-framing" not in last


def test_a_later_first_stage_needs_its_start(tmp_path):
    with pytest.raises(ValueError, match="--start"):
        repro.stage_commands(["x"], tmp_path, first=4)
    with pytest.raises(ValueError, match="from scratch"):
        repro.stage_commands(["x"], tmp_path, first=1, start=tmp_path / "three.npz")
    cmds = repro.stage_commands(["x"], tmp_path, first=4, start=tmp_path / "three.npz")
    assert len(cmds) == 1 and cmds[0][cmds[0].index("--init") + 1] == str(tmp_path / "three.npz")


def test_weights_compare_array_by_array_without_the_note(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"conv0.w": rng.normal(size=(6, 4)).astype(np.float32), "conv0.dilation": np.array(3)}
    np.savez(tmp_path / "a.npz", info="trained today", **arrays)
    np.savez(tmp_path / "b.npz", info="trained another day", **arrays)
    assert repro.compare_weights(tmp_path / "a.npz", tmp_path / "b.npz") == {"conv0.dilation": 0.0, "conv0.w": 0.0}
    moved = dict(arrays, **{"conv0.w": arrays["conv0.w"] + np.float32(1e-3)})
    np.savez(tmp_path / "c.npz", **moved)
    diffs = repro.compare_weights(tmp_path / "a.npz", tmp_path / "c.npz")
    assert diffs["conv0.w"] == pytest.approx(1e-3, rel=1e-3) and diffs["conv0.dilation"] == 0.0
    np.savez(tmp_path / "d.npz", **{"conv0.w": arrays["conv0.w"]})
    assert repro.compare_weights(tmp_path / "a.npz", tmp_path / "d.npz")["conv0.dilation"] == float("inf")


def test_start_weights_from_a_file_or_a_revision(tmp_path):
    """--start git:REV reads the weights as committed at REV (the third run's are at git b1248b4)."""
    assert repro.start_weights(str(tmp_path / "w.npz"), tmp_path) == tmp_path / "w.npz"
    head = repro.start_weights("git:HEAD", tmp_path)
    assert head.read_bytes() == repro.SHIPPED.read_bytes()
    with pytest.raises(SystemExit, match="cannot read the weights at git no-such-rev"):
        repro.start_weights("git:no-such-rev", tmp_path)


def test_dry_run_prints_the_four_commands_and_writes_nothing(tmp_path):
    work = tmp_path / "work"
    script = str(ROOT / "scripts" / "reproduce_temporal_lifter.py")
    out = subprocess.run([sys.executable, script, "train", "--work", str(work), "--dry-run"], capture_output=True,
                         text=True, check=True).stdout
    assert out.count("stage ") == 4 and "--seed 8" in out
    out = subprocess.run([sys.executable, script, "train", "--work", str(work), "--dry-run", "--from-stage", "4",
                          "--start", "git:HEAD"], capture_output=True, text=True, check=True).stdout
    assert out.count("stage ") == 1 and str(work / "start_HEAD.npz") in out and not work.exists()
