"""Acclaim ASF/AMC (CMU, HDM05): skeleton + motion -> joint positions and rotations, like ``Bvh.forward_kinematics``.

ASF bones are given in world coordinates at rest: a unit ``direction`` and a ``length``, a local frame ``axis``
(Euler angles, order after them, e.g. ``XYZ``) and the rotational ``dof`` the AMC file animates. A bone's world
rotation is ``R_parent @ C @ M @ C^-1`` (C: its axis frame; M: the AMC angles, applied in the order of ``dof``),
and its tip is its start plus ``R @ direction * length``. A joint here is named after the bone that starts at it
(``lfemur`` = the hip joint, ``ltibia`` = the knee), and a leaf bone's tip is ``<name>_end``, as in the BVH files
CMU's amc2bvh writes. Units stay the file's (CMU and HDM05: ``length 0.45``, i.e. x 0.0254 / 0.45 for metres).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from pose_server.bvh import read_text

__all__ = ["AsfBone", "Asf", "read_asf", "read_amc"]


@dataclass
class AsfBone:
    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray  # (3, 3) C: the bone's local frame in world coordinates
    dof: list[str] = field(default_factory=list)  # e.g. ["rx", "ry", "rz"]
    parent: str = ""


@dataclass
class Asf:
    """A parsed ASF skeleton; ``length_unit`` is the file's ``:units length`` (metres = units * 0.0254 / it)."""

    bones: dict[str, AsfBone]
    root_order: list[str]
    root_axis: np.ndarray
    length_unit: float = 1.0
    order: list[str] = field(default_factory=list)  # bones, parents first

    @property
    def metres_per_unit(self) -> float:
        return 0.0254 / self.length_unit

    def joint_names(self) -> list[str]:
        """Names of the joints ``forward_kinematics`` returns: root, every bone's start, leaf tips."""
        children = {b.parent for b in self.bones.values()}
        return ["root", *self.order, *[f"{n}_end" for n in self.order if n not in children]]

    def forward_kinematics(self, motion: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """World positions (F, J, 3) and rotations (F, J, 3, 3) in ``joint_names()`` order from AMC ``motion``
        (bone name -> (F, values) as ``read_amc`` returns)."""
        root = motion["root"]
        n = root.shape[0]
        pos: dict[str, np.ndarray] = {}
        rot: dict[str, np.ndarray] = {}
        tips: dict[str, np.ndarray] = {}
        trans = np.zeros((n, 3))
        angles, axes = [], ""
        for c, ch in enumerate(self.root_order):
            ch = ch.lower()
            if ch.startswith("t"):
                trans[:, "xyz".index(ch[1])] = root[:, c]
            else:
                axes += ch[1]
                angles.append(root[:, c])
        m = Rotation.from_euler(axes, np.stack(angles, 1), degrees=True).as_matrix() if axes else np.eye(3)
        c_root = self.root_axis
        rot["root"] = c_root @ m @ c_root.T
        pos["root"] = trans
        tips["root"] = trans
        for name in self.order:
            bone = self.bones[name]
            parent = bone.parent or "root"
            values = motion.get(name)
            if bone.dof and values is not None:
                m = Rotation.from_euler("".join(d[1] for d in bone.dof), values, degrees=True).as_matrix()
            else:
                m = np.broadcast_to(np.eye(3), (n, 3, 3))
            r = rot[parent] @ bone.axis @ m @ bone.axis.T
            rot[name] = r
            pos[name] = tips[parent]
            tips[name] = tips[parent] + bone.length * (r @ bone.direction)
        names = self.joint_names()
        out_p = np.stack([pos[k] if k in pos else tips[k.removesuffix("_end")] for k in names], axis=1)
        out_r = np.stack([np.broadcast_to(rot[k.removesuffix("_end")], (n, 3, 3)) for k in names], axis=1)
        return out_p, out_r


def _euler(values: list[float], order: str) -> np.ndarray:
    """ASF ``axis`` angles (degrees, given x y z) applied in ``order`` (e.g. XYZ: x first)."""
    by_axis = dict(zip("XYZ", values, strict=True))
    return Rotation.from_euler(order.lower(), [by_axis[a] for a in order.upper()], degrees=True).as_matrix()


def read_asf(path: str | Path) -> Asf:
    """Parse an ASF skeleton; raises ValueError naming the problem when a section is missing or malformed."""
    lines = [ln.split("#", 1)[0].strip() for ln in read_text(path).splitlines()]
    lines = [ln for ln in lines if ln]
    bones: dict[str, AsfBone] = {}
    root_order, root_axis, length_unit = ["TX", "TY", "TZ", "RX", "RY", "RZ"], np.eye(3), 1.0
    section, cur, in_hier = "", None, False
    hierarchy: list[list[str]] = []
    for ln in lines:
        tok = ln.split()
        if tok[0].startswith(":"):
            section = tok[0]
            continue
        if section == ":units" and tok[0] == "length":
            length_unit = float(tok[1])
        elif section == ":root":
            if tok[0] == "order":
                root_order = tok[1:]
            elif tok[0] == "orientation":
                root_axis = _euler([float(v) for v in tok[1:4]], "XYZ")
        elif section == ":bonedata":
            if tok[0] == "begin":
                cur = {"dof": []}
            elif tok[0] == "end" and cur is not None:
                try:
                    bones[cur["name"]] = AsfBone(cur["name"], cur["direction"], cur["length"], cur["axis"], cur["dof"])
                except KeyError as exc:
                    raise ValueError(f"{path}: bone {cur.get('name', '?')} has no {exc.args[0]}") from exc
                cur = None
            elif cur is not None:
                if tok[0] == "name":
                    cur["name"] = tok[1]
                elif tok[0] == "direction":
                    cur["direction"] = np.array([float(v) for v in tok[1:4]])
                elif tok[0] == "length":
                    cur["length"] = float(tok[1])
                elif tok[0] == "axis":
                    cur["axis"] = _euler([float(v) for v in tok[1:4]], tok[4] if len(tok) > 4 else "XYZ")
                elif tok[0] == "dof":
                    cur["dof"] = [d.lower() for d in tok[1:]]
        elif section == ":hierarchy":
            if tok[0] == "begin":
                in_hier = True
            elif tok[0] == "end":
                in_hier = False
            elif in_hier:
                hierarchy.append(tok)
    if not bones or not hierarchy:
        raise ValueError(f"{path}: not an ASF skeleton (no :bonedata or :hierarchy section)")
    order: list[str] = []
    for parent, *children in hierarchy:
        for child in children:
            if child not in bones:
                raise ValueError(f"{path}: hierarchy names bone {child!r} that :bonedata does not define")
            bones[child].parent = "" if parent == "root" else parent
            order.append(child)
    return Asf(bones, root_order, root_axis, length_unit, order)


def read_amc(path: str | Path, asf: Asf) -> dict[str, np.ndarray]:
    """AMC motion (plain or .xz) -> bone name -> (F, values) in the order of the bone's dof (root: its order)."""
    frames: list[dict[str, list[float]]] = []
    for ln in read_text(path).splitlines():
        ln = ln.strip()
        if not ln or ln[0] in "#:":
            continue
        tok = ln.split()
        if len(tok) == 1 and tok[0].isdigit():
            frames.append({})
        elif frames:
            frames[-1][tok[0]] = [float(v) for v in tok[1:]]
    if not frames:
        raise ValueError(f"{path}: no frames in the AMC file")
    out = {}
    for name in ["root", *asf.order]:
        width = len(asf.root_order) if name == "root" else len(asf.bones[name].dof)
        if width == 0:
            continue
        try:
            out[name] = np.array([f[name] for f in frames], dtype=float).reshape(len(frames), width)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path}: bone {name!r} is missing or has the wrong number of values in some frame; "
                             f"is {name!r} the right ASF for it?") from exc
    return out
