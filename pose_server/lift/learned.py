"""Learned depth prior: a small MLP from a causal window of 2D keypoints to each joint's relative depth.

The geometric lifter (``lifter.py``) knows every bone's length, so each bone has two depth solutions; what it
cannot know from one frame is which. This network, trained on motion capture seen through random virtual
cameras (``pose_server/lift/training.py``), looks at the last ``window`` frames of COCO-17 keypoints and
predicts every joint's depth relative to the pelvis. The lifter uses it as one more prior cost on its depth
hypotheses, so the output keeps the geometry's exact bone lengths and 2D fit; the network only votes. Several
networks (trained with other seeds or windows) form an ensemble: their mean is the vote, their disagreement
widens its tolerance.

Units: keypoints are centred on the current frame's pelvis and divided by ``scale`` (their RMS distance from
it), so the input does not depend on image size, distance or position; the output is depth in the same units.
Multiply by ``pelvis_depth * scale / focal`` for metres. Inference is plain numpy (~0.16 ms for two networks).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from pose_server.lift.blas import blas_threads
from pose_server.lift.skeleton3d import J

__all__ = ["DepthPrior", "window_features", "DEFAULT_DEPTH_PRIOR"]

DEFAULT_DEPTH_PRIOR = Path(__file__).resolve().parents[2] / "resources" / "models" / "depth_prior.npz"
_LH, _RH = J["l_hip"], J["r_hip"]


def window_features(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., W, 17, 2) pixels (oldest first) -> (..., W*34) normalised features and (...,) scale in pixels."""
    pelvis = window[..., -1, [_LH, _RH], :].mean(axis=-2)
    rel = window - pelvis[..., None, None, :]
    scale = np.sqrt((rel[..., -1, :, :] ** 2).sum(-1).mean(-1))
    scale = np.maximum(scale, 1e-6)
    return (rel / scale[..., None, None, None]).reshape(*window.shape[:-3], -1), scale


class _Mlp:
    """Input layer, residual ReLU blocks, linear output: features (..., window*34) -> depths (..., 17)."""

    def __init__(self, weights: dict[str, np.ndarray], window: int) -> None:
        self.window = int(window)
        self.w_in, self.b_in = weights["inp.weight"].T.astype(np.float32), weights["inp.bias"].astype(np.float32)
        self.blocks = []
        while f"blocks.{len(self.blocks)}.0.weight" in weights:
            i = len(self.blocks)
            self.blocks.append((weights[f"blocks.{i}.0.weight"].T.astype(np.float32),
                                weights[f"blocks.{i}.0.bias"].astype(np.float32)))
        self.w_out, self.b_out = weights["out.weight"].T.astype(np.float32), weights["out.bias"].astype(np.float32)
        if self.w_in.shape[0] != self.window * 34 or self.w_out.shape[1] != 17:
            raise ValueError(f"depth prior: layers of {self.w_in.shape[0]} -> {self.w_out.shape[1]} values do not "
                             f"fit a window of {self.window} frames; the file is damaged or from another version")

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = np.maximum(features[..., -self.window * 34:] @ self.w_in + self.b_in, 0.0)
        for w, b in self.blocks:
            x = x + np.maximum(x @ w + b, 0.0)
        return x @ self.w_out + self.b_out


class DepthPrior:
    """An ensemble of MLPs (each may see a different number of frames): features -> mean depths and spread."""

    def __init__(self, members: list[tuple[dict[str, np.ndarray], int]], info: str = "") -> None:
        if not members:
            raise ValueError("depth prior: no networks")
        self.members = [_Mlp(w, window) for w, window in members]
        self.window = max(m.window for m in self.members)  # frames of keypoints the caller must provide
        self.info = info

    @classmethod
    def load(cls, path: str | Path = DEFAULT_DEPTH_PRIOR) -> DepthPrior:
        """Load weights written by ``training.export`` (.npz: ``m<i>/<layer>`` arrays, ``m<i>/window``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"depth prior {path} not found: it ships in resources/models/; re-create it with "
                "`.venv/bin/python scripts/train_lifter.py` or pass depth_prior=None to lift without it"
            )
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        members = []
        while f"m{len(members)}/window" in arrays:
            prefix = f"m{len(members)}/"
            weights = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
            members.append((weights, int(weights.pop("window"))))
        if not members:
            raise ValueError(f"depth prior {path}: no networks in the file (expected m0/window, m0/inp.weight, ...)")
        return cls(members, str(arrays.get("info", "")))

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(..., window*34) -> mean depths (..., 17) and the members' spread (standard deviation), or None
        for a single network. Where the networks disagree the pose is unlike their training data."""
        x = np.asarray(features, np.float32)
        # One BLAS thread: these matmuls are small, and OpenBLAS threads competing with the inference threads for
        # the cores took 5-35 ms instead of 0.25 ms per call in the server.
        with blas_threads(1):
            outs = np.stack([m(x) for m in self.members])
        return outs.mean(axis=0), (outs.std(axis=0) if len(outs) > 1 else None)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(..., window*34) -> depths (..., 17)."""
        return self.predict(features)[0]


@lru_cache(maxsize=4)
def load_cached(path: str) -> DepthPrior:
    """One copy per process: every tracked person's lifter shares it (it is read-only)."""
    return DepthPrior.load(path)
