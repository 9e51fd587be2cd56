"""`pose-server convert` end to end: a second of the real demo clip -> a tiny random-weight ViTPose -> the offline
signal path -> headless Blender running the add-on's session import and exporters -> every output format, each
read back (FBX and GLB imported in a fresh real Blender, the .blend opened, the session validated). Two performers
(the clip beside its mirror image, the embedded BlazePose: real weights that track both) give one FBX holding an
armature each and a BVH each."""

import json
import subprocess
import sys

import cv2
import pytest

from tests.conftest import ROOT
from tests.e2e.clips import demo_clip
from tests.e2e.fbx_import import imported_keys

FRAMES = 30
CHECK_GLB_AND_BLEND = """
import json, sys, bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=sys.argv[1])
glb = [o.name for o in bpy.data.objects if o.type == "ARMATURE"]
glb_actions = [a.name for a in bpy.data.actions]
bpy.ops.wm.open_mainfile(filepath=sys.argv[2])
scene = bpy.context.scene
arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
poses = []
for f in (scene.frame_start, scene.frame_end):
    scene.frame_set(f)
    poses.append([list(pb.matrix.to_quaternion()) for pb in arm.pose.bones])
print("CHECK " + json.dumps({"glb_armatures": glb, "glb_actions": glb_actions,
                             "blend_action": arm.animation_data.action.name, "range": [scene.frame_start,
                             scene.frame_end], "poses": poses}))
"""

CHECK_GLB_PERFORMERS = """
import json, sys, bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=sys.argv[1])
scene, out = bpy.context.scene, {}
for arm in (o for o in bpy.data.objects if o.type == "ARMATURE"):
    action = arm.animation_data.action if arm.animation_data else None
    poses = []
    for f in (scene.frame_start, scene.frame_end):
        scene.frame_set(f)
        poses.append([list(pb.matrix.to_quaternion()) for pb in arm.pose.bones])
    out[arm.name] = [action.name if action else None, poses[0] != poses[1]]
print("CHECK " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from pose_server.vitpose.tiny import make_tiny_checkpoint

    tmp = tmp_path_factory.mktemp("convert")
    ckpt = make_tiny_checkpoint(tmp / "tiny.pth", fmt="mmpose")
    clip = demo_clip(tmp / "clip.mp4", FRAMES)
    out = tmp / "out"
    outputs = ["take.fbx", "take.bvh", "take.glb", "take.blend", "take.jsonl", "overlay.mp4"]
    # Random weights give low keypoint scores: threshold 0 keeps the person tracked and lifted; full-frame
    # detection keeps the test independent of the detector download.
    cmd = [sys.executable, "-m", "pose_server.cli", "convert", str(clip), "--checkpoint", str(ckpt), "--backend",
           "torch", "--detector", "full-frame", "--kpt-threshold", "0", "--threads", "1", "--no-progress"]
    for name in outputs:
        cmd += ["-o", str(out / name)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


@pytest.fixture(scope="module")
def duo(tmp_path_factory):
    """(out folder, stdout) of two performers converted to .fbx and .bvh with the embedded BlazePose."""
    tmp = tmp_path_factory.mktemp("duo")
    clip = demo_clip(tmp / "duo.mp4", FRAMES, mirrored=True)
    out = tmp / "out"
    cmd = [sys.executable, "-m", "pose_server.cli", "convert", str(clip), "--checkpoint", "blazepose", "--detector",
           "blazepose", "--threads", "1", "--no-progress", "-o", str(out / "take.fbx"), "-o", str(out / "take.bvh"),
           "-o", str(out / "take.glb")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def lifted_ids(stdout: str) -> list[int]:
    """The track ids convert printed as lifted (`... lifted [0, 1]`)."""
    return json.loads(stdout.split("lifted ", 1)[1].splitlines()[0])


def test_every_output_is_written(converted):
    out, stdout = converted
    assert "converted 30 frames" in stdout
    for name in ["take.fbx", "take.bvh", "take.glb", "take.blend", "take.jsonl", "overlay.mp4"]:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
        assert str(out / name) in stdout


def test_fbx_imports_in_blender_with_keys_on_every_bone_and_frame(converted):
    out, stdout = converted
    keys = imported_keys(out / "take.fbx")
    for bone in ["hips", "spine", "neck", "head", "upper_arm.L", "forearm.L", "upper_arm.R", "forearm.R",
                 "thigh.L", "shin.L", "thigh.R", "shin.R"]:
        frames = set(keys["frames"].get(bone, []))
        assert len(frames) >= FRAMES - 2, f"{bone}: keys at {sorted(frames)}"
    assert sorted(keys["armatures"]) == sorted(f"Performer_{pid}" for pid in lifted_ids(stdout))


def test_two_performers_give_one_fbx_with_an_armature_each_and_a_bvh_each(duo):
    out, stdout = duo
    lifted = lifted_ids(stdout)
    assert len(lifted) == 2, stdout
    assert sorted(p.name for p in out.glob("*.fbx")) == ["take.fbx"]  # not one file per performer
    keys = imported_keys(out / "take.fbx")
    assert sorted(keys["armatures"]) == sorted(f"Performer_{pid}" for pid in lifted)
    for pid in lifted:
        found = keys["armatures"][f"Performer_{pid}"]
        assert found["action"] == f"Performer_{pid}|take"  # its own animation, in the stack named after the file
        assert len(found["frames"]) >= FRAMES - 2, (pid, found["frames"])
    # the .glb: one animation, named after the file, moving every performer (with an animation per action,
    # Blender's importer gave only the first performer its take)
    proc = subprocess.run([sys.executable, "-c", CHECK_GLB_PERFORMERS, str(out / "take.glb")], capture_output=True,
                          text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("CHECK ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    moving = json.loads(line[6:])
    assert sorted(moving) == sorted(f"Performer_{pid}" for pid in lifted)
    assert all(action == "take" and moved for action, moved in moving.values()), moving
    # BVH holds one skeleton: a file per performer, each with a frame per key.
    bvhs = sorted(p.name for p in out.glob("*.bvh"))
    assert bvhs == [f"take_person{pid}.bvh" for pid in sorted(lifted)]
    for name in bvhs:
        text = (out / name).read_text()
        assert text.count("JOINT") >= 12 and int(text.split("Frames:", 1)[1].split()[0]) >= FRAMES - 2


def test_glb_and_blend_carry_the_take(converted, tmp_path):
    out, _ = converted
    script = tmp_path / "check.py"
    script.write_text(CHECK_GLB_AND_BLEND)
    proc = subprocess.run([sys.executable, str(script), str(out / "take.glb"), str(out / "take.blend")],
                          capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("CHECK ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    check = json.loads(line[6:])
    assert check["glb_armatures"] and check["glb_actions"], check
    assert check["blend_action"].startswith("Take_person")
    start, end = check["range"]
    assert end - start >= FRAMES - 3
    first, last = check["poses"]
    assert first != last, "the .blend's armature must play its take (its pose changes over the range)"


def test_session_packets_are_valid_and_overlay_has_every_frame(converted):
    from blender_addon.core.packet import validate_packet

    out, _ = converted
    lines = (out / "take.jsonl").read_bytes().splitlines()
    assert len(lines) == FRAMES
    for line in lines:
        ok, packet = validate_packet(line)
        assert ok, packet
    assert any(p.get("rotations") for ln in lines for p in json.loads(ln)["people"])
    cap = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES


def test_a_wrong_output_extension_fails_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pose_server.cli", "convert",
                           str(ROOT / "resources/videos/default.mp4"), "-o", str(tmp_path / "x.obj")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "extension must be one of" in proc.stderr


def test_stride_runs_the_model_on_every_other_frame_and_fills_the_rest(tmp_path):
    """--stride 2: ViTPose sees frames 0, 2, 4, ... and the last; the odd frames still carry the person, marked
    held."""
    from pose_server.config import PipelineConfig
    from pose_server.convert import ConvertOptions, convert
    from pose_server.vitpose.tiny import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "tiny.pth", fmt="mmpose")
    clip = demo_clip(tmp_path / "clip.mp4", 12)
    calls = []

    class Counting:
        def __init__(self, est):
            self.est, self.skeleton, self.num_keypoints = est, est.skeleton, est.num_keypoints

        def __call__(self, img, boxes):
            calls.append(1)
            return self.est(img, boxes)

    from pose_server.config import load_estimator

    cfg = PipelineConfig(source=str(clip), checkpoint=str(ckpt), backend="torch", detector="full-frame",
                         kpt_threshold=0.0, threads=1, udp=[])
    out = tmp_path / "take.jsonl"
    summary = convert(cfg, ConvertOptions(outputs=[str(out)], stride=2, min_track=0.1),
                      estimator=Counting(load_estimator(cfg)), progress=False)
    assert summary["frames"] == 12 and len(calls) == 7  # 0, 2, ..., 10, and the last frame
    packets = [json.loads(line) for line in out.read_text().splitlines()]
    # every frame has the person: the last one is posed too (with nothing after it to fill from, the last 1 to
    # stride-1 frames were empty: a take 1-3 frames short)
    assert all(len(p["people"]) == 1 for p in packets)
    assert len(packets[1]["people"][0].get("held", [])) == 17 and not packets[2]["people"][0].get("held")
