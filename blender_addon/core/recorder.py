"""Recording takes: sample the evaluated pose per packet, resample to the scene frame rate, write an Action.

Samples are taken with "visual keying": the depsgraph is evaluated first, so IK and other
constraints are already applied, and the resulting pose-bone transforms are stored. Keys are placed
on the scene's frame grid from the packets' capture timestamps (not their arrival times), so network
jitter or a slow viewport does not warp the timing of the motion.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import math
import re

import bpy
from mathutils import Quaternion

from . import compat, performers

TAKE_PATTERN = re.compile(r"^Take_(\d{3,})_")
_STRIDE = 10  # per bone: location xyz, quaternion wxyz, scale xyz


def next_take_name(now: datetime.datetime | None = None) -> str:
    """`Take_NNN_YYYY-MM-DD_HHMM`, NNN one more than the highest take in this file."""
    numbers = [int(m.group(1)) for a in bpy.data.actions if (m := TAKE_PATTERN.match(a.name))]
    now = now or datetime.datetime.now()
    return f"Take_{max(numbers, default=0) + 1:03d}_{now:%Y-%m-%d_%H%M}"


def performer_takes(scene: bpy.types.Scene, bound: list[tuple[int, bpy.types.Object]],
                    take_name: str | None = None) -> list[TakeRecorder]:
    """One TakeRecorder per bound (track id, armature), starting at the current frame; Actions named
    `<take>_P<track id>` (e.g. `Take_003_2026-12-03_1432_P3`)."""
    take_name = take_name or next_take_name()
    takes = []
    for track_id, armature in bound:
        label = performers.performer_label(track_id)
        takes.append(TakeRecorder(armature, scene_fps(scene), scene.frame_current, f"{take_name}_{label}", label))
    return takes


def join_take(scene: bpy.types.Scene, takes: list[TakeRecorder],
              bound: list[tuple[int, bpy.types.Object]]) -> list[TakeRecorder]:
    """The performers' take in progress with a recorder added for each bound armature it lacks (a performer bound
    after Record, e.g. by Create Rigs for Everyone when someone walks in): they join on the take's clock and start
    later in it. A take of the single target armature (no performer) is left as it is."""
    if not takes or not all(t.performer for t in takes):
        return takes
    have = {t.armature_uid for t in takes}
    new = performer_takes(scene, [(i, a) for i, a in bound if a.session_uid not in have], takes[0].take_name)
    for take in new:
        detach_action(take.armature())
    return takes + new


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base


def evaluated_view_layer(scene: bpy.types.Scene) -> bpy.types.ViewLayer:
    """Evaluate the scene so pose bones carry their constrained (visual) transforms."""
    ctx_layer = getattr(bpy.context, "view_layer", None)
    layer = ctx_layer if ctx_layer is not None and bpy.context.scene == scene else scene.view_layers[0]
    layer.update()
    return layer


def detach_action(obj: bpy.types.Object) -> bpy.types.Action | None:
    """Unassign the armature's Action so its keys do not fight the live pose; returns it. One that nothing else uses
    gets a fake user first (takes have one already): a hand-keyed Action left with no user was deleted on save."""
    ad = obj.animation_data
    if ad is None or ad.action is None:
        return None
    action = ad.action
    if not action.use_fake_user and action.users <= 1:
        action.use_fake_user = True
    ad.action = None
    return action


@contextlib.contextmanager
def actions_set_aside(armatures: list[bpy.types.Object]):
    """detach_action on each armature for the block; if the block fails (an import), each gets its Action back (with
    the fake user it was given)."""
    previous = [detach_action(obj) for obj in armatures]
    try:
        yield
    except BaseException:
        for obj, action in zip(armatures, previous, strict=True):
            if action is not None and obj.animation_data is not None and obj.animation_data.action is None:
                obj.animation_data.action = action
        raise


class TakeRecorder:
    """Collects timestamped visual poses of one armature and turns them into one Action."""

    def __init__(self, armature_obj: bpy.types.Object, fps: float, start_frame: int, name: str,
                 performer: str = "") -> None:
        self.armature_name = armature_obj.name  # as it was at the start (messages)
        self.armature_uid = armature_obj.session_uid  # which armature, across renames (and undo) during the take
        self.performer = performer  # "P3" when one of several performers: the Action is "<take>_P3"
        self.bone_names = [pb.name for pb in armature_obj.pose.bones]
        self.fps = float(fps)
        self.start_frame = int(start_frame)
        self.name = name
        self.times: list[float] = []
        self.values: list[list[float]] = []
        # Capture time of `start_frame`; None: the first sample's. Several performers share one, so a performer
        # who enters the shot later starts later in the take.
        self.origin: float | None = None

    def __len__(self) -> int:
        return len(self.times)

    def armature(self) -> bpy.types.Object | None:
        """The take's armature, whatever it is called now; None once deleted."""
        return next((o for o in bpy.data.objects if o.session_uid == self.armature_uid), None)

    @property
    def take_name(self) -> str:
        """The take's name without the performer suffix."""
        return self.name[:-len(self.performer) - 1] if self.performer else self.name

    def sample(self, armature_obj: bpy.types.Object, timestamp: float) -> None:
        """Store the current evaluated pose at capture time `timestamp` (call after evaluating the scene)."""
        row: list[float] = []
        convert = armature_obj.convert_space
        bones = armature_obj.pose.bones
        for name in self.bone_names:
            pb = bones[name]
            local = convert(pose_bone=pb, matrix=pb.matrix, from_space="POSE", to_space="LOCAL")
            loc, rot, scale = local.decompose()
            row.extend((*loc, *rot, *scale))
        # Out-of-order or repeated timestamps (an imported file) still give a monotonic timeline.
        i = bisect.bisect_left(self.times, timestamp)
        if i < len(self.times) and self.times[i] == timestamp:
            self.values[i] = row
        else:
            self.times.insert(i, timestamp)
            self.values.insert(i, row)

    def resample(self) -> tuple[list[int], list[list[float]]]:
        """Frames on the scene grid covering the take and the pose interpolated at each of them."""
        if not self.times:
            return [], []
        origin = self.origin if self.origin is not None else self.times[0]
        # Tolerance of 1/1000 frame: epoch timestamps (~1.7e9 s) carry only ~0.2 us of precision.
        first = max(0, int(math.ceil((self.times[0] - origin) * self.fps - 1e-3)))
        last = int(math.floor((self.times[-1] - origin) * self.fps + 1e-3))
        frames, rows = [], []
        for k in range(first, last + 1):
            t = origin + k / self.fps
            i = max(0, min(bisect.bisect_right(self.times, t) - 1, len(self.times) - 1))
            if i + 1 < len(self.times):
                span = self.times[i + 1] - self.times[i]
                alpha = min(1.0, max(0.0, (t - self.times[i]) / span)) if span > 0 else 0.0
                row = _interpolate(self.values[i], self.values[i + 1], alpha)
            else:
                row = list(self.values[i])
            frames.append(self.start_frame + k)
            rows.append(row)
        return frames, rows

    def finish(self, armature_obj: bpy.types.Object, reduce: bool = False, tolerance: float = 1e-3):
        """Write the take into a new Action assigned to the armature; None if nothing was sampled."""
        frames, rows = self.resample()
        if not frames:
            return None
        action = compat.new_action(self.name)
        action.use_fake_user = True  # a take must survive being unassigned and the file being saved
        compat.assign_action(armature_obj, action)
        for b, name in enumerate(self.bone_names):
            pb = armature_obj.pose.bones.get(name)
            if pb is None:
                continue
            base = b * _STRIDE
            for path, channels in _bone_channels(pb, rows, base):
                for index, values in enumerate(channels):
                    _write_fcurve(action, armature_obj, pb.path_from_id(path), index, name, frames, values,
                                  tolerance if reduce else None)
        return action


def finish_takes(settings, takes: list[TakeRecorder]) -> list[bpy.types.Action]:
    """Write every take that has samples into its Action, all on one clock (the first sample of any of them is the
    first frame), and remember them as the scene's last take (`settings`: scene.vitpose_mocap). Several
    performers: `last_take` is the take's name and `take_parts` lists each performer's Action and armature; one
    armature: `last_take` is its Action."""
    written = []
    sampled = [t for t in takes if len(t)]
    origin = min((t.times[0] for t in sampled), default=None)
    for take in takes:
        take.origin = origin
        armature = take.armature()
        if armature is not None and len(take):
            action = take.finish(armature, reduce=settings.reduce_keys, tolerance=settings.reduce_tolerance)
            written.append((take, armature, action))
    if not written:
        return []
    settings.take_parts.clear()
    for take, armature, action in written:
        if take.performer:
            part = settings.take_parts.add()
            part.performer, part.action, part.armature = take.performer, action, armature
    settings.last_take = written[0][0].take_name if settings.take_parts else written[0][2].name
    return [action for _take, _armature, action in written]


def _interpolate(a: list[float], b: list[float], alpha: float) -> list[float]:
    out = [x + (y - x) * alpha for x, y in zip(a, b, strict=True)]
    for base in range(0, len(a), _STRIDE):
        qa = Quaternion(a[base + 3:base + 7])
        qb = Quaternion(b[base + 3:base + 7])
        out[base + 3:base + 7] = qa.slerp(qb, alpha)
    return out


def _bone_channels(pb: bpy.types.PoseBone, rows: list[list[float]], base: int):
    """(property, per-index value lists) for one bone, rotations in the bone's own rotation mode."""
    loc = [[r[base + i] for r in rows] for i in range(3)]
    scale = [[r[base + 7 + i] for r in rows] for i in range(3)]
    quats, prev = [], None
    for r in rows:
        q = Quaternion(r[base + 3:base + 7])
        if prev is not None and q.dot(prev) < 0:  # stay on one hemisphere so curves do not flip
            q.negate()
        quats.append(q)
        prev = q
    mode = pb.rotation_mode
    if mode == "QUATERNION":
        rot_path, rot = "rotation_quaternion", [[q[i] for q in quats] for i in range(4)]
    elif mode == "AXIS_ANGLE":
        pairs = [q.to_axis_angle() for q in quats]
        rot_path, rot = "rotation_axis_angle", [[p[1] for p in pairs]] + [[p[0][i] for p in pairs] for i in range(3)]
    else:
        eulers, prev_e = [], None
        for q in quats:
            e = q.to_euler(mode, prev_e) if prev_e is not None else q.to_euler(mode)
            eulers.append(e)
            prev_e = e
        rot_path, rot = "rotation_euler", [[e[i] for e in eulers] for i in range(3)]
    return (("location", loc), (rot_path, rot), ("scale", scale))


def reduce_keys(frames: list[int], values: list[float], tolerance: float) -> list[int]:
    """Indices of the keys to keep so that linear interpolation stays within `tolerance` of every dropped key."""
    n = len(frames)
    if n <= 2:
        return list(range(n))
    keep = [0]
    anchor = 0
    j = 2
    while j < n:
        fa, va = frames[anchor], values[anchor]
        slope = (values[j] - va) / (frames[j] - fa)
        if any(abs(va + slope * (frames[m] - fa) - values[m]) > tolerance for m in range(anchor + 1, j)):
            anchor = j - 1
            keep.append(anchor)
        j += 1
    keep.append(n - 1)
    return keep


def _write_fcurve(action, obj, data_path: str, index: int, group: str, frames: list[int], values: list[float],
                  tolerance: float | None) -> None:
    if tolerance is not None:
        kept = reduce_keys(frames, values, tolerance)
        frames = [frames[i] for i in kept]
        values = [values[i] for i in kept]
    fc = compat.new_fcurve(action, obj, data_path, index, group)
    points = fc.keyframe_points
    points.add(len(frames))
    points.foreach_set("co", [c for pair in zip(frames, values, strict=True) for c in pair])
    if tolerance is not None:
        # The reduction assumed straight lines between the kept keys.
        points.foreach_set("interpolation", [_LINEAR] * len(frames))
    fc.update()


_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
