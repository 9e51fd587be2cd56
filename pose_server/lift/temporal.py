"""The learned temporal lifter: a causal dilated TCN (as VideoPose3D's TemporalModel) from the last frames of
COCO-17 keypoints and scores to the current frame's root-relative 3D joints and each foot's contact probability.

Per frame the input is ``frame_features``: the 17 keypoints centred on the frame's pelvis (mid-hips) and divided by
the frame's scale (RMS distance of the keypoints from it), their 17 scores, the pelvis's image motion since the last
frame and the change of log scale (both in units of the scale), where the pelvis is in the image (over the focal
length) and the scale over the focal length. Every channel is local to a frame or a pair of frames, so the network
can run densely over a sequence (training) or one frame at a time (the server).

Layers: a causal convolution (kernel 3) to ``channels``, then blocks of a causal dilated convolution (kernel 3,
dilation 3, 9, ...) + ReLU + a 1x1 convolution + ReLU with a residual; batch norm folded into the weights on export.
The receptive field is 3^(blocks+1) frames. Heads (1x1): 17 x 3 joints in camera axes (x right, y down, z forward),
pelvis-relative, for a 1.75 m body; 2 contact logits (left, right foot).

``TemporalLifterModel`` is the numpy inference: it keeps each layer's recent inputs, so a new frame costs one column
per layer; the first frame fills the history as if it had always been there (what training does at a clip's start).
With ``mirror=True`` it also runs the mirror image of the frames (left and right swapped, x negated: training mirrors
half its sequences) as a second row of every product and averages the two answers, mirrored back (VideoPose3D's
test-time flip, made streaming; two rows read each layer's weights once for both: 0.14 ms a frame against 0.23 as two
one-row streams on an AMD EPYC, see docs/lifting.md).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from pose_server.lift.blas import blas_threads
from pose_server.lift.skeleton3d import J
from pose_server.lift.temporal_onnx import OnnxStep
from pose_server.skeleton import SKELETONS

__all__ = ["frame_features", "TemporalLifterModel", "DEFAULT_TEMPORAL_LIFTER", "FEATURES", "ENGINES", "load_model"]

DEFAULT_TEMPORAL_LIFTER = Path(__file__).resolve().parents[2] / "resources" / "models" / "temporal_lifter.npz"
FEATURES = 17 * 2 + 17 + 2 + 1 + 3
ENGINES = ("onnxruntime", "numpy")
_HIPS = np.array([J["l_hip"], J["r_hip"]])
_FLIP = SKELETONS["coco17"].flip_indices()


def _mirror_map() -> tuple[np.ndarray, np.ndarray]:
    """The permutation and signs that turn a frame's features into its mirror image's (x -> -x, left <-> right)."""
    perm = np.concatenate([np.stack([2 * _FLIP, 2 * _FLIP + 1], 1).ravel(), 34 + _FLIP, 51 + np.arange(6)])
    sign = np.ones(FEATURES, np.float32)
    sign[0:34:2] = -1.0  # keypoint x
    sign[[51, 54]] = -1.0  # pelvis image motion x, pelvis image position x
    return perm, sign


_MIRROR = _mirror_map()
_MIRROR_X = np.array([-1.0, 1.0, 1.0], np.float32)  # camera x negated: a mirrored answer back in the frame's axes


def frame_features(px: np.ndarray, scores: np.ndarray, prev_px: np.ndarray | None, centre: np.ndarray,
                   focal: float | np.ndarray) -> np.ndarray:
    """(..., 17, 2) pixels, (..., 17) scores, the previous frame's pixels (or None) -> (..., FEATURES) features.

    ``centre``: the principal point (2,) in pixels; ``focal`` in pixels (scalar or (...,))."""
    px = np.asarray(px, np.float64)
    pelvis = px[..., _HIPS, :].mean(axis=-2)
    rel = px - pelvis[..., None, :]
    scale = np.maximum(np.sqrt((rel**2).sum(-1).mean(-1)), 1e-3)
    if prev_px is None:
        motion = np.zeros(pelvis.shape[:-1] + (3,))
    else:
        prev = np.asarray(prev_px, np.float64)
        p_pelvis = prev[..., _HIPS, :].mean(axis=-2)
        p_scale = np.maximum(np.sqrt(((prev - p_pelvis[..., None, :]) ** 2).sum(-1).mean(-1)), 1e-3)
        motion = np.concatenate([(pelvis - p_pelvis) / scale[..., None], np.log(scale / p_scale)[..., None]], -1)
    focal = np.asarray(focal, np.float64)
    where = np.concatenate([(pelvis - centre) / focal[..., None], (scale / focal)[..., None]], -1)
    feats = [(rel / scale[..., None, None]).reshape(*rel.shape[:-2], 34), np.asarray(scores, np.float64), motion,
             where]
    return np.concatenate(feats, axis=-1).astype(np.float32)


class TemporalLifterModel:
    """Streaming inference of an exported TCN: ``step(features)`` -> (17, 3) joints and (2,) contact probabilities
    for the newest frame; ``reset()`` forgets the history (a new performer or a gap). numpy, or with ``onnx_step``
    every frame after a history's first as one ONNX Runtime call (``load_model``'s default)."""

    def __init__(self, arrays: dict[str, np.ndarray], info: str = "", mirror: bool = False,
                 onnx_step: OnnxStep | None = None) -> None:
        # Weights column-major: inside the server the inference threads evict them from the caches between frames,
        # and OpenBLAS reads a column-major right-hand side from memory faster (the step 0.45 against 0.53 ms with
        # cold caches on an AMD EPYC; warm 0.13 against 0.14); the answers agree to 1e-6.
        weight = lambda k: np.asfortranarray(arrays[k], dtype=np.float32)  # noqa: E731
        bias = lambda k: np.asarray(arrays[k], dtype=np.float32)  # noqa: E731
        self.layers: list[tuple[np.ndarray, np.ndarray, int]] = []  # (3*Cin, Cout) weights, bias, dilation
        i = 0
        while f"conv{i}.w" in arrays:
            self.layers.append((weight(f"conv{i}.w"), bias(f"conv{i}.b"), int(arrays[f"conv{i}.dilation"])))
            i += 1
        self.pointwise = [(weight(f"point{k}.w"), bias(f"point{k}.b")) for k in range(1, len(self.layers))]
        self.w_joints, self.b_joints = weight("joints.w"), bias("joints.b")
        self.w_contact, self.b_contact = weight("contact.w"), bias("contact.b")
        if not self.layers or self.layers[0][0].shape[0] != 3 * FEATURES:
            raise ValueError("temporal lifter: the weights do not take this version's frame features "
                             f"({FEATURES} per frame); re-create them with scripts/train_temporal_lifter.py")
        self.receptive_field = 1 + sum(2 * d for _, _, d in self.layers)
        self.info = info
        self.mirror = mirror
        self.onnx_step = onnx_step  # the step as one ONNX Runtime call (temporal_onnx.py); None: numpy
        self.reset()

    @classmethod
    def load(cls, path: str | Path = DEFAULT_TEMPORAL_LIFTER, mirror: bool = False) -> TemporalLifterModel:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"temporal lifter weights {path} not found: they ship in resources/models/; "
                                    "re-create them with `.venv/bin/python scripts/train_temporal_lifter.py DATA`, "
                                    "or run the server with --lifter geometric")
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return cls(arrays, str(arrays.get("info", "")), mirror=mirror)

    def reset(self) -> None:
        # each layer's last inputs, newest last: (1, C) rows, or (2, C) with the mirror image's stream below
        self._hist: list[list[np.ndarray]] = [[] for _ in self.layers]

    def step(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame's (FEATURES,) features -> (17, 3) joints (m, 1.75 m body, camera axes) and (2,) contacts.
        Beside other computing threads, call it inside ``blas_threads(1)`` (its products are small)."""
        x = np.asarray(features, np.float32)[None]
        if self.onnx_step is not None and self._hist[0]:  # (a first frame fills each layer's history with its input)
            taps = [(hist[-2 * d], hist[-d]) for hist, (_, _, d) in zip(self._hist, self.layers, strict=True)]
            joints, contact, inputs = self.onnx_step(x, taps)
            for hist, new, (_, _, d) in zip(self._hist, inputs, self.layers, strict=True):
                hist.append(new)
                del hist[:-(2 * d + 1)]
            return joints, contact
        if self.mirror:  # the mirror image as a second row: each layer's weights are read once for both streams
            perm, sign = _MIRROR
            x = np.concatenate([x, x[:, perm] * sign])
        joints, contact = self._forward(x)
        if not self.mirror:
            return joints[0], contact[0]
        back = joints[1, _FLIP] * _MIRROR_X
        return 0.5 * (joints[0] + back), 0.5 * (contact[0] + contact[1, ::-1])

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(S, FEATURES) newest frame of each stream -> (S, 17, 3) joints and (S, 2) contact probabilities, in
        numpy (every frame with engine "numpy", a history's first frame with ONNX Runtime)."""
        for i, (w, b, d) in enumerate(self.layers):
            hist = self._hist[i]
            span = 2 * d + 1
            if not hist:
                hist.extend([x] * span)
            else:
                hist.append(x)
                del hist[:-span]
            y = np.maximum(np.concatenate([hist[0], hist[d], hist[2 * d]], axis=1) @ w + b, 0.0)
            if i > 0:
                pw, pb = self.pointwise[i - 1]
                y = x + np.maximum(y @ pw + pb, 0.0)
            x = y
        joints = (x @ self.w_joints + self.b_joints).reshape(-1, 17, 3)
        contact = 0.5 + 0.5 * np.tanh(0.5 * (x @ self.w_contact + self.b_contact))  # the sigmoid, without overflow
        return joints, contact

    def run(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A whole sequence (F, FEATURES) -> (F, 17, 3), (F, 2), frame by frame from a fresh history."""
        self.reset()
        with blas_threads(1):
            out = [self.step(f) for f in features]
        self.reset()
        return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def load_model(path: str | Path = DEFAULT_TEMPORAL_LIFTER, mirror: bool = False, engine: str = "onnxruntime"
               ) -> TemporalLifterModel:
    """A fresh model (its own history) from ``path``; the file's arrays (and its ONNX Runtime session) are made
    once per process. ``engine``: "onnxruntime" (the step as one call, ``temporal_onnx.py`` says why) or "numpy"."""
    if engine not in ENGINES:
        raise ValueError(f"temporal lifter engine {engine!r}: expected one of {', '.join(ENGINES)}")
    arrays, info = _read(str(path))
    return TemporalLifterModel(arrays, info, mirror=mirror,
                               onnx_step=_onnx_step(str(path), mirror) if engine == "onnxruntime" else None)


@lru_cache(maxsize=8)
def _onnx_step(path: str, mirror: bool) -> OnnxStep:
    arrays, info = _read(path)
    return OnnxStep(TemporalLifterModel(arrays, info), (*_MIRROR, _FLIP, _MIRROR_X) if mirror else None)


@lru_cache(maxsize=4)
def _read(path: str) -> tuple[dict[str, np.ndarray], str]:
    m = TemporalLifterModel.load(path)
    arrays = {}
    for i, (w, b, d) in enumerate(m.layers):
        arrays |= {f"conv{i}.w": w, f"conv{i}.b": b, f"conv{i}.dilation": np.array(d)}
    for k, (w, b) in enumerate(m.pointwise, start=1):
        arrays |= {f"point{k}.w": w, f"point{k}.b": b}
    arrays |= {"joints.w": m.w_joints, "joints.b": m.b_joints, "contact.w": m.w_contact, "contact.b": m.b_contact}
    return arrays, m.info
