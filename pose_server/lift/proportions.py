"""The performer's bone lengths: adult proportions scaled to the height, refitted to the image."""

from __future__ import annotations

import numpy as np

from pose_server.lift.skeleton3d import REST_HEIGHT, REST_JOINTS, J

LS, RS, LH, RH = J["l_shoulder"], J["r_shoulder"], J["l_hip"], J["r_hip"]
LIMBS = (  # (root, middle, end, kind)
    (J["l_shoulder"], J["l_elbow"], J["l_wrist"], "arm"),
    (J["r_shoulder"], J["r_elbow"], J["r_wrist"], "arm"),
    (J["l_hip"], J["l_knee"], J["l_ankle"], "leg"),
    (J["r_hip"], J["r_knee"], J["r_ankle"], "leg"),
)
FACE = (J["nose"], J["l_eye"], J["r_eye"], J["l_ear"], J["r_ear"])
# Image ratios are lower bounds (foreshortening only shortens), so the fit may lengthen a bone a lot
# but shorten it only a little below the adult prior.
FIT_RANGE = (0.9, 1.25)
_VERTICAL = tuple(f"{a}-{b}" for a, b, c, k in LIMBS if k == "leg") + tuple(
    f"{b}-{c}" for a, b, c, k in LIMBS if k == "leg")  # fmt: skip


# The lengths as segments of the pose extended by three rows (17: the pelvis, 18: the shoulders' midpoint, 19: the
# ears' midpoint): the trunk lines (hips and shoulders at half their width), the limb bones, the face offsets.
# measure_lengths measures them, smoothing.rigid gives them back to a pose.
LIMB_BONES = tuple((p, c, f"{p}-{c}") for a, b, c, _ in LIMBS for p, c in ((a, b), (b, c)))
SEGMENT_FROM = np.array([RH, 17, RS, 18, *[p for p, _, _ in LIMB_BONES], *[19] * len(FACE)])
SEGMENT_TO = np.array([LH, 18, LS, 19, *[c for _, c, _ in LIMB_BONES], *FACE])
SEGMENT_NAMES = ["hip_half", "spine", "shoulder_half", "neck", *[n for _, _, n in LIMB_BONES],
                 *[f"face{k}" for k in FACE]]
_SEGMENT_SHARE = np.array([0.5 if n.endswith("_half") else 1.0 for n in SEGMENT_NAMES])
HALF_CENTRE = {"hip_half": 17, "shoulder_half": 18}  # the row a half-width line lies about (its midpoint)
_LEAR, _REAR = J["l_ear"], J["r_ear"]


def measure_lengths(pose: np.ndarray) -> dict[str, float]:
    """The trunk lines, limb bones and face offsets (m) of one (17, 3) pose, keyed as ``Proportions.lengths``.
    (One array call for all of them: np.linalg.norm per segment gave up the GIL 18 times, see ik/solve.py's
    ``_norm``.)"""
    ext = np.empty((20, 3))  # the joints, then the pelvis, the shoulders' and the ears' midpoints
    ext[:17] = pose
    ext[17], ext[18], ext[19] = (0.5 * (pose[a] + pose[b]) for a, b in ((LH, RH), (LS, RS), (_LEAR, _REAR)))
    vecs = ext[SEGMENT_TO] - ext[SEGMENT_FROM]
    lengths = np.sqrt(np.einsum("ij,ij->i", vecs, vecs)) * _SEGMENT_SHARE
    return dict(zip(SEGMENT_NAMES, lengths.tolist(), strict=True))


def vertical_chain(lengths: dict[str, float]) -> float:
    """Spine + neck + the mean of the two legs (thigh + shin): the lines of the 17 joints that stack up to a
    standing body's height. The lifters keep it at the performer's height's share; the benchmark reads the height
    it tells them off the mocap the same way."""
    return lengths["spine"] + lengths["neck"] + 0.5 * sum(lengths[k] for k in _VERTICAL)


REST_LENGTHS = measure_lengths(REST_JOINTS)


class Proportions:
    """Bone lengths (m): adult priors scaled to ``height_m``, refitted to the performer's image proportions.

    Each calibration frame adds every bone's image length over the spine's; the 90th percentile of those
    ratios (the moments the bone is most parallel to the image) refits the proportions, within ``FIT_RANGE``
    of the prior. The overall scale stays the performer's height: monocular video cannot observe it."""

    def __init__(self, height_m: float) -> None:
        scale = height_m / REST_HEIGHT
        self.lengths = {k: v * scale for k, v in REST_LENGTHS.items()}
        self.prior = dict(self.lengths)
        self._ratios: list[np.ndarray] = []  # calibration samples of image length / image spine length

    def add(self, px: np.ndarray, ok: np.ndarray) -> None:
        """Refit the lengths with one more frame of (17, 2) pixels whose keypoints ``ok`` are confident."""
        pelvis = 0.5 * (px[LH] + px[RH])
        mid_sh = 0.5 * (px[LS] + px[RS])
        spine = np.linalg.norm(mid_sh - pelvis)
        if spine < 5.0:
            return
        mid_ear = 0.5 * (px[J["l_ear"]] + px[J["r_ear"]])
        seg = {
            "hip_half": (px[LH], pelvis, ok[LH] and ok[RH]),
            "shoulder_half": (px[LS], mid_sh, ok[LS] and ok[RS]),
            "neck": (mid_ear, mid_sh, ok[J["l_ear"]] and ok[J["r_ear"]]),
        }
        for a, b, c, _ in LIMBS:
            seg[f"{a}-{b}"] = (px[a], px[b], ok[a] and ok[b])
            seg[f"{b}-{c}"] = (px[b], px[c], ok[b] and ok[c])
        row = np.array([np.linalg.norm(p - q) / spine if good else np.nan for p, q, good in seg.values()])
        self._ratios.append(row)
        samples = np.array(self._ratios)
        ratios = {}
        for i, name in enumerate(seg):
            col = samples[:, i]
            col = col[np.isfinite(col)]
            prior = REST_LENGTHS[name] / REST_LENGTHS["spine"]
            if col.size < 1:
                ratios[name] = prior
                continue
            ratios[name] = float(np.clip(np.percentile(col, 90), prior * FIT_RANGE[0], prior * FIT_RANGE[1]))
        # Proportions from the image, absolute scale from the height: keep the vertical chain's length.
        ratios["spine"] = 1.0
        scale = vertical_chain(self.prior) / vertical_chain(ratios)
        for name, r in ratios.items():
            self.lengths[name] = r * scale
