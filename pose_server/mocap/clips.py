"""Mocap clips of any flavour -> COCO-17 world joints (metres, Z up), whole-body foot points and foot contacts.

Flavours (told apart by joint names): CMU's MotionBuilder BVH (``LeftUpLeg``), the CMU walks of subject 131
(``LeftHip``), raw CMU ASF names in BVH (``lfemur``), the DAZ/Poser BVH (``lThigh``), Bandai Namco's 6-channel BVH
(``UpperLeg_L``), and ASF/AMC (CMU, HDM05). Files may be ``.xz``.

- Units: the file's unit is the one of metres, centimetres, CMU units (0.056444 m) or inches that gives a leg
  (thigh + shin) nearest 0.84 m; a skeleton still outside 0.65-1.05 m (a rescaled file) is normalised to 0.84 m.
- Frame rate: ``fps`` if given, else the ``true_fps`` of the clip's row in a MANIFEST.csv next to it or above
  it, else the header. A first frame that is a T-pose the converter added (root rotation exactly zero, then
  not) is dropped.
- COCO hips are the thigh joints (femur heads), shoulders the upper arms' heads. Face points are synthesised
  from the head joint: its rotation carries a face frame whose mean orientation is the torso's (so every
  flavour's head axes work), at fixed offsets scaled by body size.
- Feet (COCO-WholeBody order: big toe, small toe, heel; left then right) where the skeleton has a foot bone
  with a toe joint or toe end; contacts: the foot's lowest point within 5 cm of the floor (the clip's low
  percentile within +-1 s) and moving < 0.4 m/s horizontally.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.ndimage import minimum_filter1d

from pose_server.bvh import read_bvh, to_z_up
from pose_server.lift.skeleton3d import COCO17, REST_JOINTS, J
from pose_server.mocap.asf import read_amc, read_asf

__all__ = ["MocapClip", "load_clip", "find_clips", "category_of", "FEET", "LEG_M"]

FEET = ("l_big_toe", "l_small_toe", "l_heel", "r_big_toe", "r_small_toe", "r_heel")  # COCO-WholeBody 17-22
LEG_M = 0.84  # thigh + shin of the rest skeleton (m)
_UNITS = (1.0, 0.01, 0.0254 / 0.45, 0.0254)
_REST_LEG = float(np.linalg.norm(REST_JOINTS[J["l_knee"]] - REST_JOINTS[J["l_hip"]])
                  + np.linalg.norm(REST_JOINTS[J["l_ankle"]] - REST_JOINTS[J["l_knee"]]))

# name of each landmark per flavour: hip, knee, ankle, toe (ball; "" = none), toe end, shoulder, elbow, wrist;
# "{s}" is the side as the flavour writes it. Then head and neck.
_FLAVOURS = {
    "cmu": ({"L": "Left", "R": "Right"}, "{s}UpLeg {s}Leg {s}Foot {s}ToeBase {s}ToeBase_end {s}Arm {s}ForeArm {s}Hand",
            "Head Neck1"),
    "cmu131": ({"L": "Left", "R": "Right"}, "{s}Hip {s}Knee {s}Ankle {s}Toe {s}Toe_end {s}Shoulder {s}Elbow {s}Wrist",
               "Head Neck"),
    "asf": ({"L": "l", "R": "r"}, "{s}femur {s}tibia {s}foot {s}toes {s}toes_end {s}humerus {s}radius {s}wrist",
            "head upperneck"),
    "daz": ({"L": "l", "R": "r"}, "{s}Thigh {s}Shin {s}Foot - {s}Foot_end {s}Shldr {s}ForeArm {s}Hand", "head neck"),
    "bandai": ({"L": "L", "R": "R"}, "UpperLeg_{s} LowerLeg_{s} Foot_{s} Toes_{s} Toes_{s}_end UpperArm_{s} "
               "LowerArm_{s} Hand_{s}", "Head Neck"),
}  # fmt: skip
_LANDMARKS = ("hip", "knee", "ankle", "toe", "toe_end", "shoulder", "elbow", "wrist")
# Face points relative to the head joint in a head frame (x = the performer's left, y = up, z = forward), metres
# for a 1.75 m adult.
_FACE = {
    "nose": (0.0, 0.03, 0.105), "l_eye": (0.032, 0.07, 0.085), "r_eye": (-0.032, 0.07, 0.085),
    "l_ear": (0.075, 0.05, -0.005), "r_ear": (-0.075, 0.05, -0.005),
}  # fmt: skip
_CATEGORIES = (  # (category, words in the description or file name), first match wins
    ("jump", ("jump", "hop", "jete", "leap")), ("run", ("run", "jog", "dash")),
    ("dance", ("dance", "salsa", "ballet", "arabesque", "pirouette", "glissade", "rond de", "retire", "coupe",
               "attitude", "cou-de-pied", "expressive", "cartwheel")),
    ("fight", ("punch", "kick", "slash", "sword", "strike", "box")), ("climb", ("climb", "playground", "hang")),
    ("basketball", ("basketball", "dribble")), ("floor", ("squat", "deposit", "lie", "bend", "scoop", "floor")),
    ("exercise", ("elbowtoknee", "rotatearms", "grab", "reach", "wash", "throw")),
    ("gesture", ("bow", "bye", "call", "guide", "respond")), ("walk", ("walk", "sneak", "stride", "step")),
)  # fmt: skip


@dataclass
class MocapClip:
    """One clip: joints (F, 17, 3) COCO-17, metres, Z up, floor at Z = 0; feet (F, 6, 3) or None (``FEET``
    order); contacts (F, 2) bool (left, right) or None; fps; where it came from."""

    name: str
    fps: float
    joints: np.ndarray
    feet: np.ndarray | None
    contacts: np.ndarray | None
    category: str = ""
    subject: str = ""
    source: str = ""


def category_of(text: str) -> str:
    """A coarse motion category (walk, run, jump, dance, ...) from a description or file name."""
    low = text.lower()
    for cat, words in _CATEGORIES:
        if any(w in low for w in words):
            return cat
    return "other"


def clip_subject(path: Path) -> str:
    """Who performs ``path`` (``cmu07``, ``hdm_bd``, a source or folder name), from its name or MANIFEST.csv row."""
    return _subject(path, manifest_row(path))


def _subject(path: Path, row: dict | None) -> str:
    clip_id = (row or {}).get("clip_id", "")
    if m := re.match(r"(\d+)_\d+", clip_id):
        return f"cmu{int(m.group(1)):02d}"
    if m := re.match(r"HDM_([a-z]+)_", path.name):
        return f"hdm_{m.group(1)}"
    if m := re.match(r"(\d+)_\d+", path.name):
        return f"cmu{int(m.group(1)):02d}"
    return (row or {}).get("source", "") or path.parent.name


@lru_cache(maxsize=16)
def _manifest(path: Path) -> dict[Path, dict]:
    with open(path, newline="") as f:
        return {(path.parent / r["path"]).resolve(): r for r in csv.DictReader(f)}


def manifest_row(path: Path) -> dict | None:
    """The MANIFEST.csv row of ``path`` from the nearest MANIFEST.csv in its folder or up to 4 folders above."""
    path = path.resolve()
    for folder in list(path.parents)[:5]:
        m = folder / "MANIFEST.csv"
        if m.is_file():
            row = _manifest(m).get(path)
            if row is not None:
                return row
    return None


def find_clips(inputs: list[str | Path]) -> list[Path]:
    """Mocap files from files, folders (recursively) and MANIFEST.csv files (their ``path`` column)."""
    out: list[Path] = []
    for item in map(Path, inputs):
        if item.suffix == ".csv":
            if not item.is_file():
                raise FileNotFoundError(f"{item}: no such manifest")
            out += sorted(_manifest(item.resolve()))
        elif item.is_dir():
            out += sorted(p for p in item.rglob("*") if re.search(r"\.(bvh|amc)(\.xz)?$", p.name))
        elif item.is_file():
            out.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder (give .bvh, .amc (.xz), folders or MANIFEST.csv)")
    return out


def _find_asf(amc: Path) -> Path:
    asfs = sorted(amc.parent.glob("*.asf"))
    stem = amc.name.split(".")[0]
    matches = [a for a in asfs if stem.startswith(a.stem + "_") or stem == a.stem]
    if matches:
        return max(matches, key=lambda a: len(a.stem))
    if len(asfs) == 1:
        return asfs[0]
    raise FileNotFoundError(f"{amc}: cannot tell which ASF skeleton goes with it ({len(asfs)} .asf files beside it); "
                            "name it like the AMC's prefix or pass asf=")


def _read_positions(path: Path, asf: Path | None) -> tuple[list[str], np.ndarray, np.ndarray, float | None, float]:
    """names, positions (F, J, 3), rotations (F, J, 3, 3) in file units (Y up), header fps, metres per unit (0 =
    unknown)."""
    if re.search(r"\.amc(\.xz)?$", path.name):
        skel = read_asf(asf or _find_asf(path))
        pos, rot = skel.forward_kinematics(read_amc(path, skel))
        return skel.joint_names(), pos, rot, None, skel.metres_per_unit
    bvh = read_bvh(path)
    motion = bvh.motion
    root = bvh.joints[0]
    rot_cols = [root.column + c for c, ch in enumerate(root.channels) if ch.endswith("rotation")]
    if len(motion) > 2 and rot_cols and not motion[0, rot_cols].any() and motion[1, rot_cols].any():
        bvh.motion = motion[1:]  # a T-pose the converter put first, not captured
    pos, rot = bvh.forward_kinematics()
    return [j.name for j in bvh.joints], pos, rot, 1.0 / bvh.frame_time, 0.0


def _flavour(names: list[str]) -> str:
    have = set(names)
    for flavour, (sides, limbs, _) in _FLAVOURS.items():
        if limbs.split()[0].format(s=sides["L"]) in have:
            return flavour
    raise ValueError(f"unknown skeleton: none of LeftUpLeg, LeftHip, lfemur, lThigh, UpperLeg_L among its joints "
                     f"({', '.join(names[:12])}, ...)")


def _unit(legs: float, known: float) -> tuple[float, bool]:
    """Metres per file unit and whether the skeleton had to be normalised."""
    unit = known or min(_UNITS, key=lambda u: abs(np.log(legs * u / LEG_M)))
    if 0.65 <= legs * unit <= 1.05:
        return unit, False
    return LEG_M / legs, True


def _unit_vec(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _torso_frame(hip_l, hip_r, neck) -> np.ndarray:
    """(F, 3, 3) columns: the performer's left, up, forward (Y-up file coordinates)."""
    pelvis = 0.5 * (hip_l + hip_r)
    up = _unit_vec(neck - pelvis)
    left = hip_l - hip_r
    left = _unit_vec(left - (left * up).sum(-1, keepdims=True) * up)
    return np.stack([left, up, np.cross(left, up)], axis=-1)


def _mean_rotation(r: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(r.mean(axis=0))
    d = np.sign(np.linalg.det(u @ vt))
    return u @ np.diag([1.0, 1.0, d]) @ vt


def _feet(ankle: np.ndarray, toe: np.ndarray | None, toe_end: np.ndarray, knee: np.ndarray, left: np.ndarray,
          scale: float, side: float) -> np.ndarray:
    """(F, 3, 3) big toe, small toe, heel of one foot. ``left``: the performer's left (F, 3); side +1 left foot."""
    down = _unit_vec(ankle - knee)
    flat = toe_end - ankle
    flat = _unit_vec(flat - (flat * down).sum(-1, keepdims=True) * down)  # along the sole, across the shin
    if toe is not None and np.linalg.norm(toe_end - toe, axis=-1).mean() < 0.01:  # no toe end: the toes' length
        toe_end = toe + 0.05 * scale * flat
    out_dir = _unit_vec(side * left - (side * left * flat).sum(-1, keepdims=True) * flat)
    big = toe_end - 0.02 * scale * out_dir
    small = ankle + 0.75 * (toe_end - ankle) + 0.04 * scale * out_dir
    heel = ankle + 0.07 * scale * down - 0.04 * scale * flat
    return np.stack([big, small, heel], axis=1)


def load_clip(path: str | Path, fps: float | None = None, asf: str | Path | None = None,
              units: float | None = None) -> MocapClip:
    """Read one mocap file (see the module docstring); ``units``: metres per file unit, overriding the guess."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such mocap file")
    row = manifest_row(path)
    names, pos, rot, header_fps, known_unit = _read_positions(path, Path(asf) if asf else None)
    flavour = _flavour(names)
    sides, limbs, head_neck = _FLAVOURS[flavour]
    idx = {n: i for i, n in enumerate(names)}

    def joint(template: str, side: str = "L") -> np.ndarray | None:
        name = template.format(s=sides[side])
        return pos[:, idx[name]] if name in idx else None

    lm = {s: dict(zip(_LANDMARKS, (joint(t, s) if t != "-" else None for t in limbs.split()), strict=True))
          for s in "LR"}
    head_name, neck_name = head_neck.split()
    head, neck = pos[:, idx[head_name]], pos[:, idx[neck_name]]
    legs = float(np.median(np.linalg.norm(lm["L"]["knee"] - lm["L"]["hip"], axis=-1)
                           + np.linalg.norm(lm["L"]["ankle"] - lm["L"]["knee"], axis=-1)))
    unit, _ = _unit(legs, units or known_unit)
    scale = legs * unit / _REST_LEG  # body size against the rest skeleton
    torso = _torso_frame(lm["L"]["hip"], lm["R"]["hip"], neck)
    head_rot = rot[:, idx[head_name]]
    face_in_head = _mean_rotation(np.swapaxes(head_rot, 1, 2) @ torso)  # face frame in the head's axes
    face_frame = head_rot @ face_in_head
    coco = np.zeros((pos.shape[0], 17, 3))
    for k, name in enumerate(COCO17):
        if name in _FACE:
            coco[:, k] = head + face_frame @ (np.array(_FACE[name]) * scale / unit)
        else:
            side = "L" if name.startswith("l_") else "R"
            coco[:, k] = lm[side][name[2:]]
    feet = None
    if lm["L"]["toe_end"] is not None:
        feet = np.concatenate([
            _feet(lm[s]["ankle"], lm[s]["toe"], lm[s]["toe_end"], lm[s]["knee"], torso[..., 0], scale / unit, sign)
            for s, sign in (("L", 1.0), ("R", -1.0))], axis=1)
    coco, feet = to_z_up(coco * unit), (to_z_up(feet * unit) if feet is not None else None)
    rate = float(fps or float((row or {}).get("true_fps") or 0) or header_fps or 0)
    if rate <= 0:
        raise ValueError(f"{path}: the frame rate is not in the file (AMC): pass fps= (--fps), e.g. 120 for HDM05")
    floor, contacts = _floor_and_contacts(coco, feet, rate, scale)
    coco[..., 2] -= floor
    if feet is not None:
        feet[..., 2] -= floor
    name = path.name.split(".")[0]
    desc = (row or {}).get("description", "") or name
    return MocapClip(name, rate, coco, feet, contacts, category_of(desc if row else path.name), _subject(path, row),
                     (row or {}).get("source", flavour))


def _floor_and_contacts(coco: np.ndarray, feet: np.ndarray | None, fps: float, scale: float
                        ) -> tuple[float, np.ndarray]:
    """The floor height (the 2nd percentile of the lowest foot point) and per-foot contact flags (F, 2): the foot's
    lowest point within 5 cm of the local floor (the lowest foot point within +-1 s: some mocap floors are not
    level) while its centre moves slower than 0.4 m/s horizontally."""
    if feet is not None:
        per_foot = [np.concatenate([feet[:, 3 * i:3 * i + 3], coco[:, [J["l_ankle"] + i]]], axis=1) for i in (0, 1)]
        clearance = 0.05 * scale
    else:
        per_foot = [coco[:, [J["l_ankle"] + i]] for i in (0, 1)]
        clearance = (0.05 + REST_JOINTS[J["l_ankle"], 2]) * scale
    lowest = np.stack([p[..., 2].min(axis=1) for p in per_foot], axis=1)  # (F, 2)
    floor = float(np.percentile(lowest.min(axis=1), 2))
    local_floor = minimum_filter1d(lowest.min(axis=1), size=int(2 * fps) + 1, mode="nearest")
    contacts = np.zeros(lowest.shape, dtype=bool)
    for i, p in enumerate(per_foot):
        centre = p.mean(axis=1)[:, :2]
        speed = np.linalg.norm(np.gradient(centre, axis=0), axis=-1) * fps
        contacts[:, i] = (lowest[:, i] - local_floor < clearance) & (speed < 0.4)
    return floor, contacts
