"""Anatomical priors on depth hypotheses: how implausible each choice of the trunk and the limbs is (0 = plausible)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def torso_cost(
    cand: np.ndarray, pelvis: np.ndarray, lengths: dict[str, float], up: np.ndarray, face_x: float | None,
    face_fwd: float,
) -> np.ndarray:
    """Cost of S trunk hypotheses ``cand`` (S, 5, 3: l/r shoulder, l/r hip, mid-shoulder): an upright spine,
    shoulders parallel to the hips, and the chest turned the way the face is (``face_x``: how far the nose and
    eyes sit beside the ears in the image, in metres at the pelvis's depth; None when not seen)."""
    spine_dir = (cand[:, 4] - pelvis) / lengths["spine"]
    sh_dir = (cand[:, 0] - cand[:, 1]) / (2 * lengths["shoulder_half"])
    hip_dir = (cand[:, 2] - cand[:, 3]) / (2 * lengths["hip_half"])
    cost = 8.0 * (1.0 - spine_dir @ up)  # upright
    cost += 1.0 * (1.0 - np.sum(sh_dir * hip_dir, axis=1))  # shoulders roughly parallel to the hips
    if face_x is not None:
        fwd = np.cross(sh_dir + hip_dir, spine_dir)
        fwd /= np.linalg.norm(fwd, axis=1, keepdims=True) + 1e-9
        cost += 2.0 * ((face_x - fwd[:, 0] * face_fwd) / 0.05) ** 2
    return cost


def _per_kind(leg: float, arm: float) -> dict[str, float]:
    return field(default_factory=lambda: {"leg": leg, "arm": arm})


@dataclass
class LimbPriors:
    """Anatomical implausibility of a two-bone limb's depth choices, with weights per squared direction component
    in the body frame.

    Legs swing in the sagittal plane: the depth mirror of a forward swing seen from an angle is a sideways one, so
    thighs and shins pay for their sideways component (``w_lat``, ``w_lat2``), not for the forward one. Arms are
    often raised sideways (free), but an upper arm crossing in front of or behind the chest is rare: it pays for
    its inward component (``w_in``). A knee bent forwards is anatomically impossible (strong ``w_bend``); an elbow
    bent backwards only unusual. Hips extend about 30 deg backwards and shoulders 50 deg (``w_ext`` beyond)."""

    w_fwd: dict[str, float] = _per_kind(0.0, 0.0)
    w_lat: dict[str, float] = _per_kind(5.0, 0.0)
    w_lat2: dict[str, float] = _per_kind(2.0, 0.0)
    w_in: dict[str, float] = _per_kind(0.0, 5.0)
    w_bend: dict[str, float] = _per_kind(30.0, 3.0)
    w_ext: float = 10.0

    def __call__(
        self,
        kind: str,
        side: float,
        root: np.ndarray,
        mid: np.ndarray,
        end: np.ndarray | None,
        body: tuple[np.ndarray, np.ndarray, np.ndarray],
        shoulder_half: float,
        floor: tuple[np.ndarray, float, float] | None = None,
    ) -> np.ndarray:
        """Costs (S,) of S choices of the middle and end joints ``mid``, ``end`` (S, 3; end None when not seen) of
        a limb of ``kind`` "arm" or "leg" on ``side`` (+1 left, -1 right). ``body``: mid-shoulder point, chest
        forward and left unit vectors; ``floor``: (world up, camera height above the floor, ankle height) once
        known, for "no ankle below the floor"."""
        mid_sh, forward, left_u = body
        relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
        u1 = mid - root
        u1 = u1 / (np.linalg.norm(u1, axis=1, keepdims=True) + 1e-9)
        lat1 = side * (u1 @ left_u)  # > 0: outwards
        fwd1 = u1 @ forward
        cost = self.w_fwd[kind] * fwd1**2 + self.w_lat[kind] * lat1**2 + self.w_in[kind] * relu(-lat1) ** 2
        cost += self.w_ext * relu(-fwd1 - (0.5 if kind == "leg" else 0.77)) ** 2
        if kind == "leg":
            cost += 3.0 * (relu(lat1 - 0.35) ** 2 + relu(-lat1 - 0.25) ** 2)
        else:
            off = mid - mid_sh
            inside = shoulder_half * 0.8 - side * (off @ left_u)
            in_chest = (inside > 0) & (np.abs(off @ forward) < 0.08)  # the elbow inside the chest
            cost += np.where(in_chest, 3.0 * (inside / 0.1) ** 2, 0.0)
        if end is None:
            return cost
        u2 = end - mid
        u2 = u2 / (np.linalg.norm(u2, axis=1, keepdims=True) + 1e-9)
        lat2 = side * (u2 @ left_u)
        bend = u2 - np.sum(u2 * u1, axis=1, keepdims=True) * u1  # where the lower bone bends towards
        fb = bend @ forward
        cost += self.w_lat2[kind] * lat2**2
        if kind == "leg":
            cost += self.w_bend[kind] * relu(fb) ** 2  # knees bend backwards
            cost += 3.0 * (relu(lat2 - 0.3) ** 2 + relu(-lat2 - 0.3) ** 2)
            if floor is not None:  # an ankle cannot be below the floor
                up, height, ankle_h = floor
                below = ankle_h - 0.02 - (end @ up + height)
                cost += 20.0 * relu(below / 0.05) ** 2
        else:
            cost += self.w_bend[kind] * relu(-fb) ** 2  # elbows bend forwards
            cost += 2.0 * relu(lat2 - 0.5) ** 2
        return cost
