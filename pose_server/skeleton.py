"""Keypoint layouts of the datasets ViTPose / ViTPose+ were trained on: names, flip pairs, drawing bones.

Orders and left/right pairs follow the mmpose dataset definitions the original checkpoints use, so index
``i`` of a model output is ``Skeleton.keypoints[i]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """Keypoint names, left/right flip pairs and 2D drawing bones of one dataset."""

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    bones: tuple[tuple[int, int], ...] = field(default=())
    animal: bool = False

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    @property
    def coco_body(self) -> bool:
        """A person whose first 17 keypoints are COCO-17's (COCO, whole-body): what the 3D lifters read."""
        return not self.animal and self.keypoints[:17] == COCO17_NAMES

    def flip_indices(self, pairs: Sequence[tuple[int, int]] | None = None) -> np.ndarray:
        """Permutation that swaps every left keypoint with its right partner (unpaired ones stay put); ``pairs``:
        only these of the flip pairs."""
        perm = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs if pairs is None else pairs:
            perm[a], perm[b] = b, a
        return perm

    def index(self, keypoint: str) -> int:
        return self.keypoints.index(keypoint)


def _pairs_by_name(names: tuple[str, ...], left: str, right: str) -> tuple[tuple[int, int], ...]:
    """Pair every name containing ``left`` with the same name using ``right`` instead."""
    lookup = {n: i for i, n in enumerate(names)}
    return tuple((i, lookup[n.replace(left, right, 1)]) for i, n in enumerate(names) if left in n)


# --- COCO-17 -------------------------------------------------------------------------------------------------
COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
COCO17_BONES = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

# --- COCO-WholeBody-133: body 17, feet 6, face 68, left hand 21, right hand 21 ---------------------------------
_FEET = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
_FACE = tuple(f"face-{i}" for i in range(68))
_FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")
_HAND = ("hand_root",) + tuple(f"{f}{j}" for f in _FINGERS for j in range(1, 5))
WHOLEBODY133_NAMES = (
    COCO17_NAMES + _FEET + _FACE + tuple(f"left_{n}" for n in _HAND) + tuple(f"right_{n}" for n in _HAND)
)
# Mirror pairs of the 68 iBUG face landmarks (jaw, brows, nose base, eyes, outer and inner lips).
_FACE_MIRROR = (
    [(i, 16 - i) for i in range(8)]
    + [(17 + i, 26 - i) for i in range(5)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
)
# Hand: root -> four joints of each finger (thumb, fore, middle, ring, pinky), chained.
_HAND_BONES = tuple((0 if j == 0 else 4 * f + j, 4 * f + j + 1) for f in range(5) for j in range(4))
WHOLEBODY133_BONES = (
    COCO17_BONES
    + ((15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22))
    + ((9, 91), (10, 112))
    + tuple((91 + a, 91 + b) for a, b in _HAND_BONES)
    + tuple((112 + a, 112 + b) for a, b in _HAND_BONES)
)

# --- AI Challenger-14 --------------------------------------------------------------------------------------------
AIC14_NAMES = (
    "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head_top", "neck",
)  # fmt: skip
AIC14_BONES = (
    (2, 1), (1, 0), (0, 13), (13, 3), (3, 4), (4, 5), (8, 7), (7, 6), (6, 9), (9, 10), (10, 11), (12, 13),
    (0, 6), (3, 9),
)  # fmt: skip

# --- MPII-16 -----------------------------------------------------------------------------------------------------
MPII16_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
    "left_wrist",
)  # fmt: skip
MPII16_BONES = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (8, 12), (12, 11), (11, 10),
    (8, 13), (13, 14), (14, 15),
)  # fmt: skip

# --- AP-10K (animals) -------------------------------------------------------------------------------------------
AP10K17_NAMES = (
    "left_eye", "right_eye", "nose", "neck", "root_of_tail", "left_shoulder", "left_elbow", "left_front_paw",
    "right_shoulder", "right_elbow", "right_front_paw", "left_hip", "left_knee", "left_back_paw",
    "right_hip", "right_knee", "right_back_paw",
)  # fmt: skip
AP10K17_BONES = (
    (0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (5, 6), (6, 7), (3, 8), (8, 9), (9, 10), (4, 11),
    (11, 12), (12, 13), (4, 14), (14, 15), (15, 16),
)  # fmt: skip

SKELETONS: dict[str, Skeleton] = {
    "coco17": Skeleton("coco17", COCO17_NAMES, _pairs_by_name(COCO17_NAMES, "left_", "right_"), COCO17_BONES),
    "wholebody133": Skeleton(
        "wholebody133",
        WHOLEBODY133_NAMES,
        _pairs_by_name(WHOLEBODY133_NAMES, "left_", "right_") + tuple((23 + a, 23 + b) for a, b in _FACE_MIRROR),
        WHOLEBODY133_BONES,
    ),
    "aic14": Skeleton("aic14", AIC14_NAMES, _pairs_by_name(AIC14_NAMES, "left_", "right_"), AIC14_BONES),
    "mpii16": Skeleton("mpii16", MPII16_NAMES, _pairs_by_name(MPII16_NAMES, "left_", "right_"), MPII16_BONES),
    "ap10k17": Skeleton("ap10k17", AP10K17_NAMES, _pairs_by_name(AP10K17_NAMES, "left_", "right_"), AP10K17_BONES,
                        animal=True),
}

# Dataset names as mmpose / ViTPose+ spell them, mapped to the layouts above.
ALIASES = {
    "coco": "coco17",
    "coco_wholebody": "wholebody133",
    "wholebody": "wholebody133",
    "aic": "aic14",
    "mpii": "mpii16",
    "ap10k": "ap10k17",
}


def get_skeleton(name: str | int) -> Skeleton:
    """Look a layout up by name ("coco17", "coco", "wholebody133", ...) or by keypoint count (17 means COCO)."""
    if isinstance(name, (int, np.integer)):
        by_count = {14: "aic14", 16: "mpii16", 17: "coco17", 133: "wholebody133"}
        if int(name) not in by_count:
            raise ValueError(f"no keypoint layout has {name} keypoints; known counts: {sorted(by_count)}")
        return SKELETONS[by_count[int(name)]]
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SKELETONS:
        raise ValueError(f"unknown skeleton {name!r}; use one of {sorted(SKELETONS) + sorted(ALIASES)}")
    return SKELETONS[key]
