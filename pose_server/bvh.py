"""A small BVH reader with forward kinematics.

BVH rotation channels are intrinsic Euler angles in the order listed (``Zrotation Yrotation Xrotation``
means R = Rz Ry Rx). Positions are returned in the file's units and axes; ``to_z_up`` converts the usual
Y-up files (CMU: performer facing +Z) to this project's frame (Z up, performer facing -Y).

Files may be xz-compressed (``.xz``). Translation channels of a non-root joint (Bandai Namco's files give every
joint six channels) hold the joint's offset: they replace OFFSET rather than add to it. The readers of every
mocap flavour (CMU, DAZ, Bandai, ASF/AMC) to COCO-17 points, feet and contacts are in ``pose_server/mocap/`` (one
mapping for every benchmark and for training).
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["BvhJoint", "Bvh", "read_bvh", "read_text", "to_z_up"]


def read_text(path: str | Path) -> str:
    """The text of a plain or xz-compressed (``.xz``) file."""
    path = Path(path)
    if path.suffix == ".xz":
        with lzma.open(path, "rt", errors="replace") as f:
            return f.read()
    return path.read_text(errors="replace")


@dataclass
class BvhJoint:
    """One joint of the hierarchy: offset from its parent and its channels' column range in the motion."""

    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    column: int = 0


@dataclass
class Bvh:
    """Parsed BVH: joints (parents before children), motion (frames, channels), frame time in seconds."""

    joints: list[BvhJoint]
    motion: np.ndarray
    frame_time: float

    def index(self, name: str) -> int:
        for i, j in enumerate(self.joints):
            if j.name == name:
                return i
        raise KeyError(f"joint {name!r} not in BVH; joints are: {', '.join(j.name for j in self.joints)}")

    def forward_kinematics(self, frames: np.ndarray | slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """World positions (F, J, 3) and rotation matrices (F, J, 3, 3) of every joint."""
        motion = self.motion[frames]
        n = motion.shape[0]
        pos = np.zeros((n, len(self.joints), 3))
        rot = np.zeros((n, len(self.joints), 3, 3))
        for i, j in enumerate(self.joints):
            local_t = np.broadcast_to(j.offset, (n, 3)).copy()
            axes, angles = "", []
            for c, name in enumerate(j.channels):
                col = motion[:, j.column + c]
                if name.endswith("position"):
                    # a root moves from its offset; a child's translation channels are its offset
                    axis = "XYZ".index(name[0])
                    local_t[:, axis] = col + (j.offset[axis] if j.parent < 0 else 0.0)
                else:
                    axes += name[0].upper()
                    angles.append(col)
            local_r = (
                Rotation.from_euler(axes, np.stack(angles, axis=1), degrees=True).as_matrix()
                if axes
                else np.broadcast_to(np.eye(3), (n, 3, 3))
            )
            if j.parent < 0:
                pos[:, i] = local_t
                rot[:, i] = local_r
            else:
                pr = rot[:, j.parent]
                pos[:, i] = pos[:, j.parent] + np.einsum("fij,fj->fi", pr, local_t)
                rot[:, i] = pr @ local_r
        return pos, rot


def read_bvh(path: str | Path) -> Bvh:
    """Parse a BVH file; raises ValueError naming the line when the file is malformed."""
    tokens = read_text(path).split()
    joints: list[BvhJoint] = []
    stack: list[int] = []
    column = 0
    i = 0

    def expect(word: str) -> None:
        if tokens[i] != word:
            raise ValueError(f"{path}: expected {word!r} in the BVH hierarchy, found {tokens[i]!r}")

    try:
        expect("HIERARCHY")
        i += 1
        while tokens[i] != "MOTION":
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                joints.append(BvhJoint(tokens[i + 1], stack[-1] if stack else -1, np.zeros(3)))
                i += 2
            elif tok == "End":
                joints.append(BvhJoint(joints[stack[-1]].name + "_end", stack[-1], np.zeros(3)))
                i += 2
            elif tok == "{":
                stack.append(len(joints) - 1)
                i += 1
            elif tok == "}":
                stack.pop()
                i += 1
            elif tok == "OFFSET":
                joints[-1].offset = np.array([float(v) for v in tokens[i + 1 : i + 4]])
                i += 4
            elif tok == "CHANNELS":
                count = int(tokens[i + 1])
                joints[-1].channels = tokens[i + 2 : i + 2 + count]
                joints[-1].column = column
                column += count
                i += 2 + count
            else:
                raise ValueError(f"{path}: unexpected token {tok!r} in the BVH hierarchy")
        i += 1
        expect("Frames:")
        frames = int(tokens[i + 1])
        if tokens[i + 2] != "Frame" or tokens[i + 3] != "Time:":
            raise ValueError(f"{path}: expected 'Frame Time:' after the frame count")
        frame_time = float(tokens[i + 4])
        values = np.array(tokens[i + 5 :], dtype=float)
    except IndexError as exc:
        raise ValueError(f"{path}: BVH file ends early; is it truncated?") from exc
    if values.size != frames * column:
        raise ValueError(f"{path}: expected {frames} frames x {column} channels of motion, found {values.size} values")
    return Bvh(joints, values.reshape(frames, column), frame_time)


def to_z_up(points: np.ndarray) -> np.ndarray:
    """Y-up (performer facing +Z) -> Z-up (performer facing -Y): (x, y, z) -> (x, -z, y)."""
    p = np.asarray(points)
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)
