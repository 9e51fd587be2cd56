"""DeepMimic ``humanoid3d`` motion clips (JSON, as shipped in pybullet_data) -> COCO-17 world joints.

Training data for the learned depth prior. A clip is ``{"Loop": ..., "Frames": [[dt, root xyz, root quat,
chest quat, neck quat, right hip quat, right knee angle, right ankle quat, right shoulder quat, right elbow
angle, left hip ..., left elbow], ...]}``, quaternions w x y z, local to the parent joint, knees and elbows
hinges about their local z; Y up, the character faces +x. Joint offsets are those of pybullet_data's
``humanoid/humanoid.urdf`` at DeepMimic's 0.25 scale (metres).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from pose_server.lift.skeleton3d import REST_JOINTS, J
from pose_server.skeleton import SKELETONS

__all__ = ["load_motion", "mirror", "find_motions", "OFFSETS"]

# DeepMimic axes (x forward, y up, z right) -> the project's (X left, Y backwards, Z up).
_TO_WORLD = np.array([[0.0, 0.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
OFFSETS = {  # right side; the left side mirrors z
    "chest": (0.0, 0.236151, 0.0),
    "neck": (0.0, 0.223894, 0.0),
    "hip": (0.0, 0.0, 0.084887),
    "knee": (0.0, -0.421546, 0.0),
    "ankle": (0.0, -0.40987, 0.0),
    "shoulder": (-0.02405, 0.2435, 0.18311),
    "elbow": (0.0, -0.274788, 0.0),
    "wrist": (0.0, -0.258947, 0.0),
    "head": (0.0, 0.13, 0.0),  # neck joint -> mid-ear (the URDF's head sphere is centred 0.175 m up)
}
_FRAME_LEN = 44
_SIDES = (("r", 1.0, 16), ("l", -1.0, 30))  # name, z sign, first column of the side's hip quaternion
_MID_EAR = 0.5 * (REST_JOINTS[J["l_ear"]] + REST_JOINTS[J["r_ear"]])
_FACE = ("nose", "l_eye", "r_eye", "l_ear", "r_ear")
_FLIP = SKELETONS["coco17"].flip_indices()


def find_motions() -> list[Path]:
    """The humanoid3d clips of an installed pybullet (``pip install pybullet``), or [] without it."""
    try:
        import pybullet_data
    except ImportError:
        return []
    return sorted(Path(pybullet_data.getDataPath(), "data", "motions").glob("humanoid3d_*.txt"))


def load_motion(
    path: str | Path,
    fps: float = 30.0,
    time_scale: float = 1.0,
    bone_scale: dict[str, float] | None = None,
    perturb_deg: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """(F, 17, 3) COCO-17 joints in metres (Z up, facing -Y), resampled to ``fps`` (``time_scale`` > 1 plays
    faster); ``bone_scale`` lengthens named offsets (see ``OFFSETS``). ``perturb_deg`` turns every ball joint
    (chest, neck, hips, shoulders) by a fixed random rotation of about that many degrees and scales the knee
    and elbow angles by 0.8-1.2: new poses near the recorded ones (augmentation)."""
    frames = np.asarray(json.loads(Path(path).read_text())["Frames"], dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != _FRAME_LEN or len(frames) < 2:
        raise ValueError(f"{path}: not a DeepMimic humanoid3d clip ({_FRAME_LEN} values per frame, >= 2 frames)")
    t = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    tq = np.arange(0.0, t[-1], time_scale / fps)
    lin = lambda c: np.interp(tq, t, frames[:, c])  # noqa: E731
    rng = rng or np.random.default_rng(0)

    def slerp(c: int) -> Rotation:
        r = Slerp(t, Rotation.from_quat(frames[:, [c + 1, c + 2, c + 3, c]]))(tq)
        if perturb_deg > 0 and c != 4:  # not the root: it only places and turns the whole body
            return r * Rotation.from_rotvec(rng.normal(0.0, np.radians(perturb_deg) / np.sqrt(3), 3))
        return r

    def hinge(c: int) -> np.ndarray:
        angle = lin(c) * (rng.uniform(0.8, 1.2) if perturb_deg > 0 else 1.0)
        return Rotation.from_rotvec(np.outer(angle, [0.0, 0.0, 1.0]))

    off = {k: np.array(v) * (bone_scale or {}).get(k, 1.0) for k, v in OFFSETS.items()}
    root = np.stack([lin(1), lin(2), lin(3)], axis=1)
    r_root = slerp(4)
    r_chest = r_root * slerp(8)
    r_neck = r_chest * slerp(12)
    chest = root + r_root.apply(off["chest"])
    neck = chest + r_chest.apply(off["neck"])
    pts: dict[str, np.ndarray] = {}
    for side, z, c in _SIDES:
        mirror_z = np.array([1.0, 1.0, z])
        r_hip = r_root * slerp(c)
        r_knee = r_hip * hinge(c + 4)
        r_shoulder = r_chest * slerp(c + 9)
        r_elbow = r_shoulder * hinge(c + 13)
        pts[f"{side}_hip"] = root + r_root.apply(off["hip"] * mirror_z)
        pts[f"{side}_knee"] = pts[f"{side}_hip"] + r_hip.apply(off["knee"])
        pts[f"{side}_ankle"] = pts[f"{side}_knee"] + r_knee.apply(off["ankle"])
        pts[f"{side}_shoulder"] = chest + r_chest.apply(off["shoulder"] * mirror_z)
        pts[f"{side}_elbow"] = pts[f"{side}_shoulder"] + r_shoulder.apply(off["elbow"])
        pts[f"{side}_wrist"] = pts[f"{side}_elbow"] + r_elbow.apply(off["wrist"])
    out = np.zeros((len(tq), 17, 3))
    for name, p in pts.items():
        out[:, J[name]] = p @ _TO_WORLD.T
    # Face points: the rest pose's offsets from the mid-ear point, turned with the neck.
    mid_ear = (neck + r_neck.apply(off["head"])) @ _TO_WORLD.T
    head_rot = _TO_WORLD @ r_neck.as_matrix() @ _TO_WORLD.T
    for name in _FACE:
        out[:, J[name]] = mid_ear + head_rot @ (REST_JOINTS[J[name]] - _MID_EAR)
    return out


def mirror(joints: np.ndarray) -> np.ndarray:
    """The same motion mirrored left-right: (F, 17, 3) -> (F, 17, 3)."""
    out = joints[:, _FLIP].copy()
    out[..., 0] *= -1.0
    return out
