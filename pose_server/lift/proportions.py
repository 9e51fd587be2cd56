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


def rest_lengths() -> dict[str, float]:
    """Lengths (m) of the rest pose's trunk lines, limb bones and face offsets, keyed as ``Proportions.lengths``."""
    r = REST_JOINTS
    pelvis = 0.5 * (r[LH] + r[RH])
    mid_sh = 0.5 * (r[LS] + r[RS])
    mid_ear = 0.5 * (r[J["l_ear"]] + r[J["r_ear"]])
    out = {
        "hip_half": float(np.linalg.norm(r[LH] - pelvis)),
        "shoulder_half": float(np.linalg.norm(r[LS] - mid_sh)),
        "spine": float(np.linalg.norm(mid_sh - pelvis)),
        "neck": float(np.linalg.norm(mid_ear - mid_sh)),
    }
    for a, b, c, _ in LIMBS:
        out[f"{a}-{b}"] = float(np.linalg.norm(r[b] - r[a]))
        out[f"{b}-{c}"] = float(np.linalg.norm(r[c] - r[b]))
    for k in FACE:
        out[f"face{k}"] = float(np.linalg.norm(r[k] - mid_ear))
    return out


REST_LENGTHS = rest_lengths()


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
        chain = lambda r: r["spine"] + r["neck"] + 0.5 * sum(r[k] for k in _VERTICAL)  # noqa: E731
        ratios["spine"] = 1.0
        scale = chain(self.prior) / chain(ratios)
        for name, r in ratios.items():
            self.lengths[name] = r * scale
