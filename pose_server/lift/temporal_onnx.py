"""The temporal lifter's per-frame step as one ONNX Runtime call, built in memory from the exported weights.

Why: numpy releases the GIL around every product and every large copy -- 16 times in a frame of the step -- and in
the server each release is a chance for another Python thread to take the interpreter for up to its switch interval
(5 ms): beside a thread that only runs Python, a frame of the learned lifter took 66 ms with the numpy step and 18
with this one (``scripts/bench_lifter_threads.py``). One ``run`` releases it once. The arithmetic is the numpy
step's (``TemporalLifterModel._forward``), fp32, one thread (the caller's); answers agree to 1e-6.

The graph: inputs ``x0`` (S, FEATURES), this frame's features (S = 1, or 2 with the mirror image), and for every
layer ``i`` its inputs of ``2 d_i`` and ``d_i`` frames ago, ``t{i}a`` and ``t{i}b``; outputs the joints (S, 51), the
contact logits (S, 2), and the inputs this frame gave layers 1.. (the caller keeps them as their history).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pose_server.lift.temporal import TemporalLifterModel

__all__ = ["OnnxStep"]


def step_graph(model: TemporalLifterModel) -> bytes:
    """The serialized ONNX model of one streaming step of ``model``'s layers."""
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []
    inputs = [helper.make_tensor_value_info("x0", TensorProto.FLOAT, ["S", model.layers[0][0].shape[0] // 3])]
    outputs = []

    def node(op: str, args: list[str], out: str, **attrs: int) -> str:
        nodes.append(helper.make_node(op, args, [out], **attrs))
        return out

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    x = "x0"
    for i, (w, b, _) in enumerate(model.layers):
        taps = [f"t{i}a", f"t{i}b"]  # the layer's inputs 2d and d frames ago
        inputs += [helper.make_tensor_value_info(t, TensorProto.FLOAT, ["S", w.shape[0] // 3]) for t in taps]
        y = node("Relu", [node("Add", [node("MatMul", [node("Concat", [*taps, x], f"c{i}", axis=1),
                                                      const(f"w{i}", w)], f"m{i}"), const(f"b{i}", b)], f"a{i}")],
                 f"y{i}")
        if i > 0:  # the residual block's 1x1 convolution
            pw, pb = model.pointwise[i - 1]
            z = node("Relu", [node("Add", [node("MatMul", [y, const(f"pw{i}", pw)], f"pm{i}"),
                                           const(f"pb{i}", pb)], f"pa{i}")], f"pr{i}")
            y = node("Add", [x, z], f"r{i}")
        if i + 1 < len(model.layers):
            outputs.append(helper.make_tensor_value_info(y, TensorProto.FLOAT, ["S", w.shape[1]]))
        x = y
    joints = node("Add", [node("MatMul", [x, const("wj", model.w_joints)], "jm"), const("bj", model.b_joints)], "j")
    logits = node("Add", [node("MatMul", [x, const("wc", model.w_contact)], "cm"), const("bc", model.b_contact)], "k")
    outputs = [helper.make_tensor_value_info(joints, TensorProto.FLOAT, ["S", model.w_joints.shape[1]]),
               helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["S", 2]), *outputs]
    graph = helper.make_graph(nodes, "temporal_lifter_step", inputs, outputs, inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx_model.ir_version = 9  # what every onnxruntime of the last years reads
    return onnx_model.SerializeToString()


class OnnxStep:
    """One ONNX Runtime session for a model's step, run in the calling thread (thread-safe: tracks share it)."""

    def __init__(self, model: TemporalLifterModel) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # small products: the caller's thread only
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(step_graph(model), opts, providers=["CPUExecutionProvider"])
        self.taps = [(f"t{i}a", f"t{i}b") for i in range(len(model.layers))]

    def __call__(self, x: np.ndarray, taps: list[tuple[np.ndarray, np.ndarray]]
                 ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """This frame's (S, FEATURES) features and each layer's two old inputs -> joints (S, 51), contact logits
        (S, 2) and this frame's inputs of layers 1.."""
        feeds = {"x0": x}
        for (a, b), (old, mid) in zip(self.taps, taps, strict=True):
            feeds[a], feeds[b] = old, mid
        joints, logits, *inner = self.session.run(None, feeds)
        return joints, logits, inner
