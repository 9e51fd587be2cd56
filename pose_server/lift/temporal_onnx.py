"""The temporal lifter's per-frame step as one ONNX Runtime call, built in memory from the exported weights.

Why: numpy releases the GIL around every product and every large copy -- 16 times in a frame of the step -- and in
the server each release is a chance for another Python thread to take the interpreter for up to its switch interval
(5 ms): beside a thread that only runs Python, a frame of the learned lifter took 66 ms with the numpy step and 18
with this one (``scripts/bench_lifter_threads.py``). One ``run`` releases it once. The arithmetic is the numpy
step's (``TemporalLifterModel._forward``), fp32, one thread (the caller's); answers agree to 1e-6.

The graph: inputs ``x`` (1, FEATURES), this frame's features, and for every layer ``i`` its inputs of ``2 d_i`` and
``d_i`` frames ago, ``t{i}a`` and ``t{i}b`` (S rows: 1, or 2 with the mirror image below); outputs the joints (17, 3),
the contact probabilities (2,) -- with the mirror image, both averaged with its answer mirrored back -- and the
inputs this frame gave every layer (S rows; the caller keeps them as their history). The mirror's gathers and the
average are in the graph too: as numpy they were 6 more small copies a frame, each of which gives up the GIL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pose_server.lift.temporal import TemporalLifterModel

# The features' mirror image (permutation, signs) and the answer's (joint permutation, axis signs): temporal.py's.
MirrorMaps = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

__all__ = ["OnnxStep"]


def step_graph(model: TemporalLifterModel, mirror: MirrorMaps | None = None) -> bytes:
    """The serialized ONNX model of one streaming step of ``model``'s layers; with ``mirror`` the mirror image runs
    as a second row and the two answers are averaged in the graph (the numpy step's arithmetic, ``temporal.py``)."""
    from onnx import TensorProto, helper, numpy_helper

    features = model.layers[0][0].shape[0] // 3
    inits, nodes = [], []
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, features])]
    inner = []

    def node(op: str, args: list[str], out: str, **attrs: int) -> str:
        nodes.append(helper.make_node(op, args, [out], **attrs))
        return out

    def const(name: str, value: np.ndarray, dtype: type = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.array(value, dtype, order="C"), name))  # (0-d stays 0-d)
        return name

    def row(x: str, k: int, out: str) -> str:
        return node("Gather", [x, const(f"{out}_i", np.array(k), np.int64)], out, axis=0)

    if mirror is None:
        x = node("Identity", ["x"], "x0")
    else:  # the mirror image's features below this frame's: (2, FEATURES)
        perm, sign, _, _ = mirror
        flipped = node("Mul", [node("Gather", ["x", const("perm", perm, np.int64)], "xg", axis=1),
                               const("sign", sign)], "xm")
        x = node("Concat", ["x", flipped], "x0", axis=0)
    streams = 1 if mirror is None else 2
    for i, (w, b, _) in enumerate(model.layers):
        taps = [f"t{i}a", f"t{i}b"]  # the layer's inputs 2d and d frames ago
        inputs += [helper.make_tensor_value_info(t, TensorProto.FLOAT, [streams, w.shape[0] // 3]) for t in taps]
        inner.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, [streams, w.shape[0] // 3]))
        y = node("Relu", [node("Add", [node("MatMul", [node("Concat", [*taps, x], f"c{i}", axis=1),
                                                      const(f"w{i}", w)], f"m{i}"), const(f"b{i}", b)], f"a{i}")],
                 f"y{i}")
        if i > 0:  # the residual block's 1x1 convolution
            pw, pb = model.pointwise[i - 1]
            z = node("Relu", [node("Add", [node("MatMul", [y, const(f"pw{i}", pw)], f"pm{i}"),
                                           const(f"pb{i}", pb)], f"pa{i}")], f"pr{i}")
            y = node("Add", [x, z], f"r{i}")
        x = y
    joints = node("Add", [node("MatMul", [x, const("wj", model.w_joints)], "jm"), const("bj", model.b_joints)], "j")
    joints = node("Reshape", [joints, const("jshape", np.array([streams, 17, 3]), np.int64)], "js")
    probs = node("Sigmoid", [node("Add", [node("MatMul", [x, const("wc", model.w_contact)], "cm"),
                                          const("bc", model.b_contact)], "k")], "p")
    if mirror is None:
        joints, probs = row(joints, 0, "joints"), row(probs, 0, "contacts")
    else:  # the mirrored answer mirrored back (left and right swapped, x negated), averaged with the frame's
        _, _, flip, mirror_x = mirror
        back = node("Mul", [node("Gather", [row(joints, 1, "j1"), const("flip", flip, np.int64)], "j1f", axis=0),
                            const("mirror_x", mirror_x)], "j1m")
        joints = node("Mul", [node("Add", [row(joints, 0, "j0"), back], "jsum"), const("half", np.array(0.5))],
                      "joints")
        swapped = node("Gather", [row(probs, 1, "p1"), const("lr", np.array([1, 0]), np.int64)], "p1s", axis=0)
        probs = node("Mul", [node("Add", [row(probs, 0, "p0"), swapped], "psum"), "half"], "contacts")
    outputs = [helper.make_tensor_value_info(joints, TensorProto.FLOAT, [17, 3]),
               helper.make_tensor_value_info(probs, TensorProto.FLOAT, [2]), *inner]
    graph = helper.make_graph(nodes, "temporal_lifter_step", inputs, outputs, inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 9  # what every onnxruntime of the last years reads
    return onnx_model.SerializeToString()


class OnnxStep:
    """One ONNX Runtime session for a model's step, run in the calling thread (thread-safe: tracks share it)."""

    def __init__(self, model: TemporalLifterModel, mirror: MirrorMaps | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # small products: the caller's thread only
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(step_graph(model, mirror), opts, providers=["CPUExecutionProvider"])
        self.taps = [(f"t{i}a", f"t{i}b") for i in range(len(model.layers))]

    def __call__(self, x: np.ndarray, taps: list[tuple[np.ndarray, np.ndarray]]
                 ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """This frame's (1, FEATURES) features and each layer's two old inputs -> joints (17, 3), contact
        probabilities (2,) and this frame's input of every layer (the caller keeps them as their history)."""
        feeds = {"x": x}
        for (a, b), (old, mid) in zip(self.taps, taps, strict=True):
            feeds[a], feeds[b] = old, mid
        joints, contacts, *inner = self.session.run(None, feeds)
        return joints, contacts, inner
