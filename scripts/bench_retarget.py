"""Retargeting fidelity on real mocap (issue 20): only the Blender side, measured on true joints.

The COCO-17 joints of a mocap clip (`pose_server.mocap`, metres, no lifting, no noise) are encoded by
the server's real encoder (with the server's protocol v2 rotations from `pose_server.ik`), sent over a
real UDP socket to the add-on's receiver and applied by the real tick (`core.tick.apply_tick`), as in
Blender. Set-ups, each in a fresh scene, calibrated the way a user does it (Detect / Create Capture Rig
while the first packet waits in the receiver):

* the capture rig sized from the first frame, IK and Direct;
* Mixamo-, Rigify- and metarig-style armatures built to the performer's proportions (Direct);
* the same styles at the canonical 1.75 m proportions, and Blender's own Rigify human metarig (Direct).

Per set-up: mean/max position error per joint group (performer-sized rigs only: a rig of other
proportions cannot put its joints on the performer's), root travel against the expected one (the
performer's, scaled by target legs / performer legs), foot-slide excess (how much further the rig's
ankle slides than the performer's, per frame, while that foot is planted and the body moves), and
limb direction error. Then the capture rig (IK) and the performer-sized Mixamo rig record a take
through the tick, export it with the add-on's FBX and BVH exporters, re-import it and compare every
bone's head and end, frame by frame, and the take's name.

    .venv/bin/python scripts/bench_retarget.py --bvh ../shared/mocap/cmu_131_01_walk_scaled.bvh \
        [--fps 30] [--frames 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bpy  # noqa: E402, I001  (bpy first: it puts addon_utils on the path)
import addon_utils  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Matrix, Vector  # noqa: E402

import blender_addon  # noqa: E402
from blender_addon.core import compat, drive, export, rig, state, tick  # noqa: E402
from blender_addon.core import retarget as rt  # noqa: E402
from pose_server.ik import solve_rotations  # noqa: E402
from pose_server.mocap import load_clip  # noqa: E402
from pose_server.protocol import PacketEncoder, Person  # noqa: E402
from tests.addon.helpers import build_armature  # noqa: E402

GROUPS = {"hips": ("hip.L", "hip.R"), "knees": ("knee.L", "knee.R"), "ankles": ("ankle.L", "ankle.R"),
          "shoulders": ("shoulder.L", "shoulder.R"), "elbows": ("elbow.L", "elbow.R"),
          "wrists": ("wrist.L", "wrist.R"), "head": ("head",)}
# rig point -> (slot, "head"|"tail") and the COCO joint(s) it should sit on
POINTS = {"hip.L": ("thigh.L", "head", (rt.HIP_L,)), "hip.R": ("thigh.R", "head", (rt.HIP_R,)),
          "knee.L": ("shin.L", "head", (rt.KNEE_L,)), "knee.R": ("shin.R", "head", (rt.KNEE_R,)),
          "ankle.L": ("shin.L", "tail", (rt.ANKLE_L,)), "ankle.R": ("shin.R", "tail", (rt.ANKLE_R,)),
          "shoulder.L": ("upper_arm.L", "head", (rt.SHOULDER_L,)),
          "shoulder.R": ("upper_arm.R", "head", (rt.SHOULDER_R,)),
          "elbow.L": ("forearm.L", "head", (rt.ELBOW_L,)), "elbow.R": ("forearm.R", "head", (rt.ELBOW_R,)),
          "wrist.L": ("forearm.L", "tail", (rt.WRIST_L,)), "wrist.R": ("forearm.R", "tail", (rt.WRIST_R,)),
          "head": ("head", "head", (rt.EAR_L, rt.EAR_R))}
LIMBS = (("upper_arm.L", rt.SHOULDER_L, rt.ELBOW_L), ("forearm.L", rt.ELBOW_L, rt.WRIST_L),
         ("upper_arm.R", rt.SHOULDER_R, rt.ELBOW_R), ("forearm.R", rt.ELBOW_R, rt.WRIST_R),
         ("thigh.L", rt.HIP_L, rt.KNEE_L), ("shin.L", rt.KNEE_L, rt.ANKLE_L),
         ("thigh.R", rt.HIP_R, rt.KNEE_R), ("shin.R", rt.KNEE_R, rt.ANKLE_R))
TARGETS = {"position_low_cm": 1.0, "position_high_cm": 2.0, "travel_pct": 1.0, "slide_mm": 0.5, "limb_deg": 1.0,
           "round_trip_cm": 0.5}
# A planted foot: ankle within 3 cm of its lowest height in the clip and slower than 1 cm/frame at 30 fps;
# the body moves: pelvis faster than 0.5 cm/frame at 30 fps.
CONTACT_HEIGHT, CONTACT_SPEED, BODY_SPEED = 0.03, 0.30, 0.15  # m, m/s, m/s
Y_UP_CM = Matrix.LocRotScale(Vector(), Matrix.Rotation(math.pi / 2, 3, "X"), (0.01,) * 3)  # a Mixamo FBX import


# --- armatures ---------------------------------------------------------------------------------------------------

def _skeleton(props: rig.Proportions, arm_drop_deg: float) -> dict:
    """Rest points of a performer: the T-pose of `props` with the arms lowered by `arm_drop_deg`."""
    j = props.rest_joints()
    for sh, el, wr, sign in ((rt.SHOULDER_L, rt.ELBOW_L, rt.WRIST_L, 1), (rt.SHOULDER_R, rt.ELBOW_R, rt.WRIST_R, -1)):
        d = Vector((sign * math.cos(math.radians(arm_drop_deg)), 0, -math.sin(math.radians(arm_drop_deg))))
        upper, fore = (j[el] - j[sh]).length, (j[wr] - j[el]).length
        j[el] = j[sh] + d * upper
        j[wr] = j[el] + d * fore
    return {"j": j, "P": rt.mid(j, (rt.HIP_L, rt.HIP_R)), "M": rt.mid(j, (rt.SHOULDER_L, rt.SHOULDER_R)),
            "E": rt.mid(j, (rt.EAR_L, rt.EAR_R)), "up": Vector((0, 0, 1))}


def mixamo_style(props: rig.Proportions, name: str) -> bpy.types.Object:
    """Mixamo names and layout (Hips, Spine/Spine1/Spine2, *Shoulder), A-pose, Y-up centimetres like an FBX import."""
    s = _skeleton(props, 45.0)
    j, p, m, e, up = s["j"], s["P"], s["M"], s["E"], s["up"]
    n = "mixamorig:"
    spine = [p.lerp(m, f) for f in (0.2, 0.45, 0.7)]
    bones = {f"{n}Hips": (p, spine[0], None, 0.0), f"{n}Spine": (spine[0], spine[1], f"{n}Hips", 0.0),
             f"{n}Spine1": (spine[1], spine[2], f"{n}Spine", 0.0), f"{n}Spine2": (spine[2], m, f"{n}Spine1", 0.0),
             f"{n}Neck": (m, e, f"{n}Spine2", 0.0), f"{n}Head": (e, e + up * 0.18, f"{n}Neck", 0.0)}
    for side, i in (("Left", 0), ("Right", 1)):
        sh, el, wr = j[rt.SHOULDER_L + i], j[rt.ELBOW_L + i], j[rt.WRIST_L + i]
        hip, knee, ankle = j[rt.HIP_L + i], j[rt.KNEE_L + i], j[rt.ANKLE_L + i]
        bones[f"{n}{side}Shoulder"] = (m + Vector((0, -0.02, 0)), sh, f"{n}Spine2", 0.3)
        bones[f"{n}{side}Arm"] = (sh, el, f"{n}{side}Shoulder", 0.4)
        bones[f"{n}{side}ForeArm"] = (el, wr, f"{n}{side}Arm", -0.3)
        bones[f"{n}{side}Hand"] = (wr, wr + (wr - el).normalized() * 0.08, f"{n}{side}ForeArm", 0.0)
        bones[f"{n}{side}UpLeg"] = (hip, knee, f"{n}Hips", 0.1)
        bones[f"{n}{side}Leg"] = (knee, ankle, f"{n}{side}UpLeg", 0.0)
        bones[f"{n}{side}Foot"] = (ankle, ankle + Vector((0, -0.12, -0.06)), f"{n}{side}Leg", 0.0)
    return build_armature(name, bones, Y_UP_CM)


def rigify_style(props: rig.Proportions, name: str) -> bpy.types.Object:
    """A generated Rigify rig's control names (torso, spine_fk.002/.003, shoulder, *_fk, *_ik), T-pose."""
    s = _skeleton(props, 0.0)
    j, p, m, e, up = s["j"], s["P"], s["M"], s["E"], s["up"]
    pivot, upper = p.lerp(m, 0.45), p.lerp(m, 0.7)
    bones = {"root": ((0, 0, 0), (0, 0.5, 0), None, 0.0), "torso": (p, p + Vector((0, 0.3, 0)), "root", 0.0),
             "hips": (pivot, p, "torso", 0.0), "chest": (pivot, m, "torso", 0.0),
             "spine_fk.002": (pivot, upper, "torso", 0.0), "spine_fk.003": (upper, m, "spine_fk.002", 0.0),
             "neck": (m, e, "spine_fk.003", 0.0), "head": (e, e + up * 0.2, "neck", 0.0)}
    for s_, i in (("L", 0), ("R", 1)):
        sh, el, wr = j[rt.SHOULDER_L + i], j[rt.ELBOW_L + i], j[rt.WRIST_L + i]
        hip, knee, ankle = j[rt.HIP_L + i], j[rt.KNEE_L + i], j[rt.ANKLE_L + i]
        bones[f"shoulder.{s_}"] = (m + Vector((0, -0.03, 0)), sh, "spine_fk.003", 0.0)
        bones[f"upper_arm_fk.{s_}"] = (sh, el, f"shoulder.{s_}", 0.0)
        bones[f"forearm_fk.{s_}"] = (el, wr, f"upper_arm_fk.{s_}", 0.0)
        bones[f"hand_ik.{s_}"] = (wr, wr + Vector((0, 0, -0.1)), "root", 0.0)
        bones[f"thigh_fk.{s_}"] = (hip, knee, "hips", 0.0)
        bones[f"shin_fk.{s_}"] = (knee, ankle, f"thigh_fk.{s_}", 0.0)
        bones[f"foot_ik.{s_}"] = (ankle, ankle + Vector((0, -0.15, 0)), "root", 0.0)
    return build_armature(name, bones)


def metarig_style(props: rig.Proportions, name: str) -> bpy.types.Object:
    """The Rigify human metarig's names and spine split (spine .. spine.006, shoulder.L), arms 30 degrees down."""
    s = _skeleton(props, 30.0)
    j, p, m, e, up = s["j"], s["P"], s["M"], s["E"], s["up"]
    cuts = [p.lerp(m, f) for f in (0.0, 0.227, 0.437, 0.704, 1.0)]  # the metarig's spine proportions
    bones = {}
    parent = None
    for k in range(4):
        bone = "spine" if k == 0 else f"spine.{k:03d}"
        bones[bone] = (cuts[k], cuts[k + 1], parent, 0.0)
        parent = bone
    bones["spine.004"] = (m, m.lerp(e, 0.5), "spine.003", 0.0)
    bones["spine.005"] = (m.lerp(e, 0.5), e, "spine.004", 0.0)
    bones["spine.006"] = (e, e + up * 0.2, "spine.005", 0.0)
    for s_, i in (("L", 0), ("R", 1)):
        sh, el, wr = j[rt.SHOULDER_L + i], j[rt.ELBOW_L + i], j[rt.WRIST_L + i]
        hip, knee, ankle = j[rt.HIP_L + i], j[rt.KNEE_L + i], j[rt.ANKLE_L + i]
        bones[f"shoulder.{s_}"] = (m + Vector((0.02 * (1 - 2 * i), -0.07, -0.03)), sh, "spine.003", 0.0)
        bones[f"upper_arm.{s_}"] = (sh, el, f"shoulder.{s_}", 0.0)
        bones[f"forearm.{s_}"] = (el, wr, f"upper_arm.{s_}", 0.0)
        bones[f"thigh.{s_}"] = (hip, knee, "spine", 0.0)
        bones[f"shin.{s_}"] = (knee, ankle, f"thigh.{s_}", 0.0)
    return build_armature(name, bones)


def real_metarig(_props, name: str) -> bpy.types.Object:
    """Blender's own Rigify human metarig (its own proportions, arms hanging)."""
    if "rigify" not in bpy.context.preferences.addons:
        addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    obj = bpy.context.object
    obj.name = name
    return obj


# --- driving ----------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stream:
    """The server side: the real encoder and a UDP socket; `send(k)` waits until the receiver has the packet.
    With `rotations`, packets carry the server's protocol v2 rotations (pose_server.ik) beside the joints."""

    def __init__(self, joints: np.ndarray, fps: float, port: int, rotations: bool = True) -> None:
        self.joints, self.fps, self.port, self.rotations = joints, fps, port, rotations
        self.encoder = PacketEncoder("bench_retarget", image_size=(1920, 1080))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.t0 = time.time()

    def send(self, rx, k: int) -> None:
        j = self.joints[k]
        keypoints = np.stack([960 + j[:, 0] * 400, 1000 - j[:, 2] * 400], axis=1)
        person = Person(id=0, bbox=[*keypoints.min(0) - 10, *keypoints.max(0) + 10], keypoints=keypoints,
                        scores=np.full(17, 0.95), joints_3d=j, rotations=solve_rotations(j) if self.rotations else None)
        data = self.encoder.encode(k, self.t0 + k / self.fps, [person], meta={"fps": self.fps})
        before = rx.received
        self.sock.sendto(data, ("127.0.0.1", self.port))
        deadline = time.monotonic() + 5.0
        while rx.received == before:
            if time.monotonic() > deadline:
                raise SystemExit(f"the receiver got no packet {k} within 5 s")
            time.sleep(0.0002)


def _bone_point(obj, names: dict, slot: str, end: str) -> Vector:
    pb = obj.pose.bones[names[slot]]
    return obj.matrix_world @ (pb.head if end == "head" else pb.tail)


def _all_bone_ends(obj, space: str = "WORLD") -> dict[str, tuple[Vector, Vector]]:
    """Head and end of every pose bone, in world or armature space."""
    m = obj.matrix_world if space == "WORLD" else Matrix.Identity(4)
    return {pb.name: (m @ pb.head, m @ pb.tail) for pb in obj.pose.bones}


def run_setup(name: str, joints: np.ndarray, fps: float, builder, props, mode: str, record: bool,
              out_dir: Path, rotations: bool = True) -> dict:
    """Drive one armature with the whole clip through the receiver and tick; returns what was measured."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    drive.clear_cache()
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = int(round(fps)), 1.0
    settings = scene.vitpose_mocap
    settings.port = _free_port()
    assert bpy.ops.vitpose_mocap.start() == {"FINISHED"}
    rx = state.receiver(scene)
    stream = Stream(joints, fps, settings.port, rotations)
    stream.send(rx, 0)  # the first packet waits in the receiver while the rig is set up from it
    if builder is None:
        assert bpy.ops.vitpose_mocap.create_capture_rig(from_stream=True) == {"FINISHED"}
        obj = settings.target
    else:
        obj = builder(props, name)
        settings.target = obj
        bpy.context.view_layer.objects.active = obj
        assert bpy.ops.vitpose_mocap.detect_bone_map() == {"FINISHED"}
    settings.rig.drive_mode = mode
    names = {e.canonical: e.target for e in settings.rig.bone_map}
    if record:
        assert bpy.ops.vitpose_mocap.record_start() == {"FINISHED"}
    frames = []
    for k in range(len(joints)):
        if k:
            stream.send(rx, k)
        tick.apply_tick(scene)
        if settings.last_error:
            raise SystemExit(f"{name}: {settings.last_error}")
        bpy.context.view_layer.update()
        frames.append({"points": {p: _bone_point(obj, names, slot, end) for p, (slot, end, _j) in POINTS.items()},
                       "dirs": {b: (_bone_point(obj, names, b, "tail") - _bone_point(obj, names, b, "head"))
                                for b, _a, _b in LIMBS},
                       "root": _bone_point(obj, names, "hips", "head"),
                       "bones": _all_bone_ends(obj) if record else None,
                       "bones_local": _all_bone_ends(obj, "ARMATURE") if record else None})
    result = {"name": name, "frames": frames, "scale": settings.rig.location_scale,
              "origin": obj.matrix_world.translation.copy(), "unit": obj.matrix_world.to_scale().x}
    if record:
        assert bpy.ops.vitpose_mocap.record_stop() == {"FINISHED"}
        result["round_trip"] = round_trip(scene, obj, out_dir)
    state.stop_all()
    return result


def round_trip(scene, obj, out_dir: Path) -> list[dict]:
    """Export the take to FBX and BVH with the add-on's exporters, re-import each in a fresh scene and compare
    every bone's head and end with the live pose of the same frame."""
    settings = scene.vitpose_mocap
    take = settings.last_take
    action = bpy.data.actions[take]
    start, _end = export.take_frame_range(action)
    paths = {"FBX": export.export_fbx(scene, obj, action, str(out_dir / f"{take}.fbx")),
             "BVH": export.export_bvh(scene, obj, action, str(out_dir / f"{take}.bvh"))}
    return [{"format": fmt, "path": path, "take": take, "start": start} for fmt, path in paths.items()]


def compare_round_trip(live: list[dict], unit: float, entry: dict) -> dict:
    """Import one exported take in a fresh scene; errors in metres. FBX keeps the object's transform (compared in
    world space); BVH has none and is written in armature space, Z up (compared there, times the object's scale)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if entry["format"] == "FBX":
        bpy.ops.import_scene.fbx(filepath=entry["path"], anim_offset=0.0, ignore_leaf_bones=True)
        key, factor, space = "bones", 1.0, "WORLD"
    else:
        bpy.ops.import_anim.bvh(filepath=entry["path"], axis_forward="Y", axis_up="Z", update_scene_fps=False,
                                update_scene_duration=True)
        key, factor, space = "bones_local", unit, "ARMATURE"
    scene = bpy.context.scene
    obj = next(o for o in scene.objects if o.type == "ARMATURE")
    action = obj.animation_data.action
    heads, ends, forked, worst = [], [], [], ("", 0.0)
    for k, frame in enumerate(live):
        scene.frame_set(entry["start"] + k)
        got = _all_bone_ends(obj, space)
        for bone, (head, tail) in frame[key].items():
            if bone not in got:
                continue
            dh, dt = (got[bone][0] - head).length * factor, (got[bone][1] - tail).length * factor
            heads.append(dh)
            # A bone with several children has no end in either format: the importer makes one up (FBX: the
            # mean distance to the children, BVH: the mean of their heads). Reported apart.
            if len(obj.data.bones[bone].children) > 1:
                forked.append(dt)
                continue
            ends.append(dt)
            if dt > worst[1]:
                worst = (bone, dt)
    return {"format": entry["format"], "head_mean": np.mean(heads) * 100, "head_max": np.max(heads) * 100,
            "end_mean": np.mean(ends) * 100, "end_max": np.max(ends) * 100, "worst_end": worst[0],
            "forked_max": np.max(forked) * 100 if forked else 0.0,
            "action": action.name, "take_kept": action.name.split("|")[-1] == entry["take"],
            "bones": len(obj.data.bones), "keys": len(compat.action_fcurves(action))}


# --- metrics ----------------------------------------------------------------------------------------------------

def leg_length(j: np.ndarray) -> float:
    return float(np.mean([np.linalg.norm(j[h] - j[k]) + np.linalg.norm(j[k] - j[a])
                          for h, k, a in ((rt.HIP_L, rt.KNEE_L, rt.ANKLE_L), (rt.HIP_R, rt.KNEE_R, rt.ANKLE_R))]))


def metrics(result: dict, joints: np.ndarray, fps: float, expected_scale: float, positions: bool) -> dict:
    frames, origin = result["frames"], np.array(result["origin"])
    out = {"name": result["name"], "scale": result["scale"], "expected_scale": expected_scale}
    if positions:
        for group, points in GROUPS.items():
            errs = [np.linalg.norm(np.array(f["points"][p]) - origin - joints[k][list(POINTS[p][2])].mean(0))
                    for k, f in enumerate(frames) for p in points]
            out[group] = (np.mean(errs) * 100, np.max(errs) * 100)
    pelvis = 0.5 * (joints[:, rt.HIP_L] + joints[:, rt.HIP_R])
    root = np.array([list(f["root"]) for f in frames])
    want = np.linalg.norm(pelvis[-1, :2] - pelvis[0, :2]) * expected_scale
    got = np.linalg.norm(root[-1, :2] - root[0, :2])
    out["travel"] = (got / want - 1.0) * 100
    body_speed = np.linalg.norm(np.diff(pelvis[:, :2], axis=0), axis=1) * fps
    excess, true_slide = [], []
    for side, joint in (("ankle.L", rt.ANKLE_L), ("ankle.R", rt.ANKLE_R)):
        truth = joints[:, joint]
        rig_pts = np.array([list(f["points"][side]) for f in frames])
        step_true = np.linalg.norm(np.diff(truth[:, :2], axis=0), axis=1)
        step_rig = np.linalg.norm(np.diff(rig_pts[:, :2], axis=0), axis=1)
        planted = ((truth[1:, 2] < truth[:, 2].min() + CONTACT_HEIGHT) & (step_true * fps < CONTACT_SPEED)
                   & (body_speed > BODY_SPEED))
        excess += list(np.maximum(step_rig[planted] - step_true[planted] * expected_scale, 0.0))
        true_slide += list(step_true[planted])
    out["slide"] = np.mean(excess) * 1000 if excess else float("nan")
    out["slide_true"] = np.mean(true_slide) * 1000 if true_slide else float("nan")
    out["contact_frames"] = len(excess)
    angles = [math.degrees(Vector(f["dirs"][b]).angle(Vector(joints[k][c] - joints[k][a]), 0.0))
              for k, f in enumerate(frames) for b, a, c in LIMBS]
    out["limb"] = (float(np.mean(angles)), float(np.max(angles)))
    return out


def _fmt(pair, target: float | None = None) -> str:
    if pair is None:
        return "-"
    mean, worst = pair
    mark = "" if target is None or mean <= target else "!"
    return f"{mean:.2f}/{worst:.1f}{mark}"


def print_table(rows: list[dict]) -> None:
    head = ["set-up", *GROUPS, "travel %", "slide mm/f", "limb deg"]
    print("\nmean/max per frame; cm for positions ('!' = misses the issue's target), root travel against the "
          "expected (performer x target legs / performer legs), foot-slide excess while planted and moving")
    print(" | ".join(f"{h:>11}" for h in head))
    low = {"hips", "knees", "ankles"}
    for r in rows:
        cells = [r["name"]]
        for g in GROUPS:
            target = TARGETS["position_low_cm"] if g in low else TARGETS["position_high_cm"]
            cells.append(_fmt(r.get(g), target))
        cells.append(f"{r['travel']:+.2f}{'' if abs(r['travel']) <= TARGETS['travel_pct'] else '!'}")
        cells.append(f"{r['slide']:.2f}{'' if r['slide'] <= TARGETS['slide_mm'] else '!'}")
        cells.append(_fmt(r["limb"], TARGETS["limb_deg"]))
        print(" | ".join(f"{c:>11}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bvh", type=Path, required=True,
                        help="a mocap file (pose_server.mocap reads BVH of every CMU flavour, Bandai, ASF/AMC)")
    parser.add_argument("--fps", type=float, default=30.0, help="stream rate: the clip is subsampled to it")
    parser.add_argument("--frames", type=int, default=0, help="use only the first N streamed frames (0: all)")
    parser.add_argument("--out", type=Path, help="where the FBX/BVH takes go (default: a temporary folder)")
    parser.add_argument("--only", nargs="+", metavar="SETUP", help="run only these set-ups (names as in the table)")
    args = parser.parse_args(argv)
    if not args.bvh.is_file():
        raise SystemExit(f"{args.bvh}: no such mocap file; pass e.g. --bvh ../shared/mocap/cmu_131_01_walk_scaled.bvh")
    try:
        clip = load_clip(args.bvh)
    except ValueError as exc:
        raise SystemExit(f"{args.bvh}: cannot read it as mocap ({exc}); docs/lifting.md lists the formats") from None
    step = max(1, round(clip.fps / args.fps))
    fps = float(round(clip.fps / step))  # the scene's frame rate: one key per streamed frame
    joints = clip.joints[::step]
    if args.frames:
        joints = joints[:args.frames]
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="bench_retarget_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"{args.bvh.name}: {len(joints)} frames at {fps:.1f} fps (every {step} of {clip.fps:.0f} fps); "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")

    first = [list(map(float, p)) for p in joints[0]]
    performer = rig.Proportions.from_joints(first)
    standard = rig.Proportions()
    perf_leg = leg_length(joints[0])
    setups = [  # name, builder, proportions, mode, record, positions compared, v2 rotations in the packets
        ("capture IK", None, performer, "IK", True, True, True),
        ("capture direct", None, performer, "DIRECT", False, True, True),
        ("capture dir v1", None, performer, "DIRECT", False, True, False),
        ("mixamo perf", mixamo_style, performer, "DIRECT", True, True, True),
        ("mixamo perf IK", mixamo_style, performer, "IK", False, True, True),
        ("rigify perf", rigify_style, performer, "DIRECT", False, True, True),
        ("metarig perf", metarig_style, performer, "DIRECT", False, True, True),
        ("mixamo std", mixamo_style, standard, "DIRECT", False, False, True),
        ("mixamo std IK", mixamo_style, standard, "IK", False, False, True),
        ("rigify std", rigify_style, standard, "DIRECT", False, False, True),
        ("metarig std", metarig_style, standard, "DIRECT", False, False, True),
        ("real metarig", real_metarig, None, "DIRECT", False, False, True),
        ("real meta IK", real_metarig, None, "IK", False, False, True),
    ]
    if args.only:
        unknown = set(args.only) - {s[0] for s in setups}
        if unknown:
            raise SystemExit(f"unknown set-up(s) {sorted(unknown)}; choose from {[s[0] for s in setups]}")
        setups = [s for s in setups if s[0] in args.only]
    blender_addon.register()
    rows, trips = [], []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for name, builder, props, mode, record, positions, rotations in setups:
        t = time.perf_counter()
        result = run_setup(name, joints, fps, builder, props, mode, record, out_dir, rotations)
        if props is None:  # the real metarig: its own legs (over the location scale Detect measured)
            expected = result["scale"]
        else:
            expected = (props.thigh + props.shin) / perf_leg if builder is not None else 1.0
        rows.append(metrics(result, joints, fps, expected, positions))
        for entry in result.get("round_trip", []):
            trips.append({"setup": name, **compare_round_trip(result["frames"], result["unit"], entry)})
        print(f"  {name}: {len(joints)} ticks in {time.perf_counter() - t:.1f} s", flush=True)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print_table(rows)
    print("\nlocation scale found vs expected (target legs / performer legs); planted-foot frames; the performer's "
          "own slide there")
    for r in rows:
        print(f"  {r['name']:>15}: {r['scale']:.4f} vs {r['expected_scale']:.4f}; {r['contact_frames']} frames; "
              f"{r['slide_true']:.2f} mm/frame")
    print("\nround trip (cm, mean/max, every bone's head and end against the live pose of the same frame):")
    for t in trips:
        ok = "" if t["end_max"] <= TARGETS["round_trip_cm"] and t["head_max"] <= TARGETS["round_trip_cm"] else "!"
        print(f"  {t['setup']:>12} {t['format']}: heads {t['head_mean']:.3f}/{t['head_max']:.3f}, ends "
              f"{t['end_mean']:.3f}/{t['end_max']:.3f}{ok} (worst: {t['worst_end']}), ends of bones with several "
              f"children max {t['forked_max']:.2f}; action {t['action']!r}, take name kept: {t['take_kept']}; "
              f"{t['bones']} bones")
    print(f"\nwall {wall:.1f} s, CPU {cpu:.1f} s; load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"files in {out_dir}")
    blender_addon.unregister()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
