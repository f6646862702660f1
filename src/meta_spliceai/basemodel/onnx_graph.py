"""SpliceAI-10k / OpenSpliceAI members as ONNX graphs built straight from their weights (no PyTorch):
the CPU runtime needs only ``onnx`` and ``onnxruntime``.

``build_onnx(w)`` computes what the PyTorch member of :mod:`.ensemble` computes, in the same order
(measured: outputs identical to ``torch.onnx.export`` of that member, max |diff| 0.0):

- input ``x``: ``(batch, 4, length)`` float32, one-hot, ``length = L + 10000``;
  output ``p``: ``(batch, 3, outputs)`` float32, ``outputs = L``; batch and length dynamic; opset 17;
- stem 1x1 conv; skip 1x1 conv on the stem's output cropped by 5,000 nt each side;
- 16 residual units (4 stacks of 4, kernel/dilation 11/1, 11/4, 21/10, 41/25), each
  ``x[trim:-trim] + conv2(act(conv1'(act(x * s1 + b1))))`` with unpadded ("valid") convs,
  BN1 as a per-channel affine (``s1``, ``b1``), BN2 folded into conv1 (``conv1'``), trim = d(k-1);
- after each stack a skip 1x1 conv on the residual stream cropped to the outputs, summed into the
  skip accumulator in order; output 1x1 conv 32 -> 3; softmax over channels.

The folding arithmetic is the PyTorch builder's: float64, then cast to float32.
Crops are ``Slice`` with constant starts and negative ends, so no Shape arithmetic is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..config import FLANK
from .weights import STACKS, UNITS_PER_STACK, Weights, bn_affine

OPSET = 17
#: IR version 8 is what opset 17 came with (and what torch.onnx writes): any onnxruntime >= 1.12 loads it
IR_VERSION = 8


def build_onnx(w: Weights) -> onnx.ModelProto:
    """One member's ONNX model: ``x`` (B, 4, L + 10000) float32 -> ``p`` (B, 3, L) float32."""
    inits: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def f32(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float32)

    def node(op: str, inputs: list[str], output: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv(x: str, name: str, weight: np.ndarray, bias: np.ndarray, dilation: int = 1) -> str:
        wname = const(f"{name}.weight", f32(weight))
        bname = const(f"{name}.bias", f32(bias))
        k = int(weight.shape[2])
        return node("Conv", [x, wname, bname], name, dilations=[dilation], group=1, kernel_shape=[k], pads=[0, 0], strides=[1])

    # crop bounds along axis 2, shared by every Slice: starts = a, ends = -a (a > 0)
    axes = const("axes2", np.array([2], dtype=np.int64))

    def crop(x: str, name: str, a: int) -> str:
        """``x[:, :, a : len - a]``."""
        if a == 0:
            return x
        starts = f"crop{a}.start"
        if starts not in {t.name for t in inits}:
            const(starts, np.array([a], dtype=np.int64))
            const(f"crop{a}.end", np.array([-a], dtype=np.int64))
        return node("Slice", [x, starts, f"crop{a}.end", axes], name)

    slope = float(w.leaky)

    def act(x: str, name: str) -> str:
        return node("Relu", [x], name) if slope == 0.0 else node("LeakyRelu", [x], name, alpha=slope)

    h = conv("x", "stem", *w.stem)
    skip = conv(crop(h, "skip0.in", FLANK), "skip0", *w.skips[0])
    lost = 0
    for s in range(len(STACKS)):
        for u in range(UNITS_PER_STACK):
            i = s * UNITS_PER_STACK + u
            k, d = STACKS[s]
            unit = w.units[i]
            p = f"unit{i}"
            s1, b1 = bn_affine(unit["bn1"], w.eps)
            s1n = const(f"{p}.s1", f32(s1).reshape(1, -1, 1))
            b1n = const(f"{p}.b1", f32(b1).reshape(1, -1, 1))
            s2, b2 = bn_affine(unit["bn2"], w.eps)
            w1, c1 = unit["conv1"]
            # BN2 directly follows conv1: fold it in (weight * scale, bias * scale + shift)
            w1f = np.asarray(w1).astype(np.float64) * s2[:, None, None]
            c1f = np.asarray(c1).astype(np.float64) * s2 + b2
            y = node("Mul", [h, s1n], f"{p}.bn1.mul")  # torch.addcmul(b1, x, s1) = b1 + x * s1
            y = node("Add", [b1n, y], f"{p}.bn1")
            y = act(y, f"{p}.act1")
            y = conv(y, f"{p}.conv1", w1f, c1f, d)
            y = act(y, f"{p}.act2")
            y = conv(y, f"{p}.conv2", *unit["conv2"], d)
            trim = d * (k - 1)  # nt lost on each side by the two unpadded convs
            h = node("Add", [crop(h, f"{p}.crop", trim), y], f"{p}.out")
            lost += trim
        off = FLANK - lost
        t = conv(crop(h, f"skip{s + 1}.in", off), f"skip{s + 1}", *w.skips[s + 1])
        skip = node("Add", [skip, t], f"skip.sum{s + 1}")
    if lost != FLANK:  # the receptive field must be exactly the flank: kept outputs never see padding
        raise ValueError(f"the units crop {lost} nt per side, expected {FLANK}")
    logits = conv(skip, "out", *w.out)
    node("Softmax", [logits], "p", axis=1)

    graph = helper.make_graph(
        nodes,
        "spliceai10k_member",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, "length"])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch", 3, "outputs"])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="meta-spliceai",
        ir_version=IR_VERSION,
    )
    return model


def save_onnx(w: Weights, path: str | os.PathLike[str]) -> Path:
    """Build one member's graph and write it to ``path`` atomically (temp name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(build_onnx(w).SerializeToString())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
