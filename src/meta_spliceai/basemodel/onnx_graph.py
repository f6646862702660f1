"""SpliceAI-10k / OpenSpliceAI members as ONNX graphs built straight from their weights (no PyTorch):
the CPU runtime needs only ``onnx`` and ``onnxruntime``.

``build_onnx(w)`` computes what the PyTorch member of :mod:`.ensemble` computes, in the same order
(measured: outputs identical to ``torch.onnx.export`` of that member, max |diff| 0.0):

- input ``x``: ``(batch, 4, length)`` float32, one-hot, ``length = L + 10000``;
  output ``p``: ``(batch, 3, outputs)`` float32, ``outputs = L``; batch and length dynamic; opset 17;
- stem 1x1 conv; skip 1x1 conv on the stem's output cropped by 5,000 nt each side;
- 16 residual units (4 stacks of 4, kernel/dilation 11/1, 11/4, 21/10, 41/25), each
  ``x[trim:-trim] + conv2(act(conv1'(act(x * s1 + b1))))`` with unpadded ("valid") convs,
  BN1 as a per-channel affine (``s1``, ``b1``: a depthwise 1x1 conv), BN2 folded into conv1 (``conv1'``),
  trim = d(k-1);
- after each stack a skip 1x1 conv on the residual stream cropped to the outputs, summed into the
  skip accumulator in order; output 1x1 conv 32 -> 3; softmax over channels (Pangolin's head,
  ``w.head == "pangolin"``: 32 -> 12, per tissue a softmax over channels 3t, 3t + 1 and a sigmoid of 3t + 2).

The folding arithmetic is the PyTorch builder's: float64, then cast to float32.
Crops are depthwise 3-tap convs ``(0, 1, 0)`` dilated by the crop (exact), so no Shape arithmetic is needed.

Inside, every tensor is 2-D with a height of 1, ``(batch, channels, 1, length)``, and every conv a
``(1, k)`` Conv: ONNX Runtime's CPU provider then runs the convs in its blocked (NCHWc) layout with
direct kernels, where a 1-D Conv goes through im2col + GEMM (measured 1.5x faster per member on AVX-512,
same numbers up to float rounding); with the BN1 affines and the crops as depthwise convs, the whole member
stays in that layout (one reorder at the end instead of two per unit: another 1.3x). Inputs and outputs stay ``(batch, channels, length)``: an
``Unsqueeze`` after each input, a ``Squeeze`` before each output.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..config import FLANK
from .weights import (
    HEAD_CHANNELS,
    STACKS,
    UNITS_PER_STACK,
    WIDTH,
    Weights,
    bn_affine,
    folded_conv1,
    unit_shapes,
    unit_trim,
)

OPSET = 17
#: IR version 8 is what opset 17 came with (and what torch.onnx writes): any onnxruntime >= 1.12 loads it
IR_VERSION = 8


class _Graph:
    """Initializers and nodes of one graph under construction, with the ops the members use."""

    def __init__(self, w: Weights) -> None:
        self.w = w
        self.inits: list[TensorProto] = []
        self.nodes: list[onnx.NodeProto] = []
        self.height = self.const("axis2", np.array([2], dtype=np.int64))  # the height-1 axis
        self.width = int(np.asarray(w.stem[0]).shape[0])  # channels of the residual stream
        self.slope = float(w.leaky)

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def conv(self, x: str, name: str, weight: np.ndarray, bias: np.ndarray, dilation: int = 1) -> str:
        wname = self.const(f"{name}.weight", _f32(weight)[:, :, None, :])  # (out, in, 1, k)
        bname = self.const(f"{name}.bias", _f32(bias))
        k = int(weight.shape[2])
        return self.node("Conv", [x, wname, bname], name, dilations=[1, dilation], group=1, kernel_shape=[1, k],
                         pads=[0, 0, 0, 0], strides=[1, 1])

    def crop(self, x: str, name: str, a: int) -> str:
        """``x[..., a : len - a]`` as a depthwise conv of 3 taps ``(0, 1, 0)`` dilated by ``a``: exact
        (``0 * x + 1 * x + 0 * x == x``), and unlike a ``Slice`` it keeps ONNX Runtime in its NCHWc layout
        (no reorder back and forth around each residual unit)."""
        if a == 0:
            return x
        taps = f"crop.taps{self.width}"
        if taps not in {t.name for t in self.inits}:
            k = np.zeros((self.width, 1, 1, 3), dtype=np.float32)
            k[:, 0, 0, 1] = 1.0
            self.const(taps, k)
        return self.node("Conv", [x, taps], name, dilations=[1, a], group=self.width, kernel_shape=[1, 3],
                         pads=[0, 0, 0, 0], strides=[1, 1])

    def act(self, x: str, name: str) -> str:
        return self.node("Relu", [x], name) if self.slope == 0.0 else self.node("LeakyRelu", [x], name, alpha=self.slope)

    def unit(self, h: str, i: int) -> str:
        """Residual unit ``i`` (0-15) on ``h``: ``h[trim:-trim] + conv2(act(conv1'(act(h * s1 + b1))))``."""
        k, d = unit_shapes()[i]
        unit = self.w.units[i]
        p = f"unit{i}"
        s1, b1 = bn_affine(unit["bn1"], self.w.eps)
        w1f, c1f = folded_conv1(unit, self.w.eps)  # BN2 directly follows conv1: folded in
        # BN1 = x * s1 + b1 per channel: a depthwise 1x1 conv (NCHWc; same numbers as Mul + Add)
        s1n = self.const(f"{p}.s1", _f32(s1).reshape(-1, 1, 1, 1))
        b1n = self.const(f"{p}.b1", _f32(b1))
        y = self.node("Conv", [h, s1n, b1n], f"{p}.bn1", group=self.width, kernel_shape=[1, 1], pads=[0, 0, 0, 0],
                      strides=[1, 1], dilations=[1, 1])
        y = self.act(y, f"{p}.act1")
        y = self.conv(y, f"{p}.conv1", w1f, c1f, d)
        y = self.act(y, f"{p}.act2")
        y = self.conv(y, f"{p}.conv2", *unit["conv2"], d)
        return self.node("Add", [self.crop(h, f"{p}.crop", unit_trim(i)), y], f"{p}.out")

    def model(self, name: str, inputs: list[tuple[str, int]], outputs: list[tuple[str, int]]) -> onnx.ModelProto:
        """The graph as a model: ``(name, channels)`` inputs and outputs, shapes (batch, channels, length).

        The nodes were built on 4-D names: input ``n`` is read as ``n`` unsqueezed, output ``n`` is the
        squeeze of the node that wrote ``n``."""
        def info(n: str, c: int, dim: str) -> onnx.ValueInfoProto:
            return helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", c, dim])

        rename = {n: f"{n}.4d" for n, _ in inputs} | {n: f"{n}.4d" for n, _ in outputs}
        for node in self.nodes:
            node.input[:] = [rename.get(i, i) for i in node.input]
            node.output[:] = [rename.get(o, o) for o in node.output]
        head = [helper.make_node("Unsqueeze", [n, self.height], [f"{n}.4d"], name=f"{n}.unsqueeze") for n, _ in inputs]
        tail = [helper.make_node("Squeeze", [f"{n}.4d", self.height], [n], name=f"{n}.squeeze") for n, _ in outputs]
        self.nodes = head + self.nodes + tail
        graph = helper.make_graph(self.nodes, name, [info(n, c, "length") for n, c in inputs],
                                  [info(n, c, "outputs") for n, c in outputs], initializer=self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="meta-spliceai",
                                 ir_version=IR_VERSION)


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


#: units after which a skip conv reads the residual stream (the ends of the stacks), 1-based unit counts
SKIP_AFTER: tuple[int, ...] = tuple(UNITS_PER_STACK * (s + 1) for s in range(len(STACKS)))


def _front(g: _Graph, w: Weights, units: int) -> tuple[str, str, int]:
    """Stem and residual units ``0 … units - 1`` on ``x``: the stream, the skip sum of the stem and of every
    stack ending by then (in order, each cropped to the outputs), and the nt lost per side so far."""
    h = g.conv("x", "stem", *w.stem)
    skip = g.conv(g.crop(h, "skip0.in", FLANK), "skip0", *w.skips[0])
    lost = 0
    for i in range(units):
        h = g.unit(h, i)
        lost += unit_trim(i)
        if i + 1 in SKIP_AFTER:
            s = SKIP_AFTER.index(i + 1)
            t = g.conv(g.crop(h, f"skip{s + 1}.in", FLANK - lost), f"skip{s + 1}", *w.skips[s + 1])
            skip = g.node("Add", [skip, t], f"skip.sum{s + 1}")
    return h, skip, lost


def _head(g: _Graph, w: Weights, skip: str, ends: list[int]) -> None:
    """Add the skip convs of the stack ends ``ends`` (inputs ``h{u}``, already cropped) to ``skip``, in order,
    then the output conv and its activation (:func:`_activation`), as ``p``."""
    for u in ends:
        s = SKIP_AFTER.index(u)
        skip = g.node("Add", [skip, g.conv(f"h{u}", f"skip{s + 1}", *w.skips[s + 1])], f"skip.sum{s + 1}")
    _activation(g, w, g.conv(skip, "out", *w.out))


def _activation(g: _Graph, w: Weights, z: str) -> None:
    """``p`` from the output conv's ``z`` (B, C, 1, L): a softmax over the channels, or Pangolin's per-tissue
    triples (z viewed as (B, tissues, 3, L)): a softmax over the first two, a sigmoid of the third."""
    if w.head == "softmax":
        g.node("Softmax", [z], "p", axis=1)
        return
    n = HEAD_CHANNELS[w.head]
    t = g.node("Reshape", [z, g.const("head.triples", np.array([0, n // 3, 3, -1], dtype=np.int64))], "head.t")
    ax = g.const("head.axis", np.array([2], dtype=np.int64))
    cut = [g.const(f"head.at{i}", np.array([i], dtype=np.int64)) for i in (0, 2, 3)]
    pair = g.node("Softmax", [g.node("Slice", [t, cut[0], cut[1], ax], "head.pair")], "head.softmax", axis=2)
    usage = g.node("Sigmoid", [g.node("Slice", [t, cut[1], cut[2], ax], "head.usage")], "head.sigmoid")
    both = g.node("Concat", [pair, usage], "head.both", axis=2)
    g.node("Reshape", [both, g.const("head.flat", np.array([0, n, 1, -1], dtype=np.int64))], "p")


def build_onnx(w: Weights) -> onnx.ModelProto:
    """One member's ONNX model: ``x`` (B, 4, L + 10000) float32 -> ``p`` (B, C, L) float32 (C: 3, Pangolin 12)."""
    g = _Graph(w)
    _, skip, lost = _front(g, w, len(w.units))
    if lost != FLANK:  # the receptive field must be exactly the flank: kept outputs never see padding
        raise ValueError(f"the units crop {lost} nt per side, expected {FLANK}")
    _head(g, w, skip, [])
    return g.model("spliceai10k_member", [("x", 4)], [("p", HEAD_CHANNELS[w.head])])


def build_pieces(w: Weights) -> dict[str, onnx.ModelProto]:
    """One member cut at its residual-unit boundaries (what :mod:`.cone` runs piece by piece):

    - ``stem``: ``x`` (B, 4, L) -> ``h`` (B, 32, L);
    - ``unit0`` … ``unit15``: ``h`` (B, 32, L) -> ``y`` (B, 32, L - 2 trim);
    - ``head``: ``h0, h4, h8, h12, h16`` (B, 32, L), the stem's and each stack's output at the same L
      positions -> ``p`` (B, 3, L): the skip convs summed in the full graph's order, output conv, softmax.

    Chained, the pieces compute what :func:`build_onnx` computes, op for op.
    """
    out: dict[str, onnx.ModelProto] = {}
    g = _Graph(w)
    g.node("Identity", [g.conv("x", "stem", *w.stem)], "h")
    out["stem"] = g.model("stem", [("x", 4)], [("h", WIDTH)])
    for i in range(len(w.units)):
        g = _Graph(w)
        g.node("Identity", [g.unit("h", i)], "y")
        out[f"unit{i}"] = g.model(f"unit{i}", [("h", WIDTH)], [("y", WIDTH)])
    g = _Graph(w)
    _head(g, w, g.conv("h0", "skip0", *w.skips[0]), list(SKIP_AFTER))
    out["head"] = g.model("head", [("h0", WIDTH)] + [(f"h{u}", WIDTH) for u in SKIP_AFTER], [("p", HEAD_CHANNELS[w.head])])
    return out


def build_split(w: Weights, first: int) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """One member cut before residual unit ``first`` (what :mod:`.fftconv` runs in between):

    - ``front``: ``x`` (B, 4, L + 10000) -> ``h`` (B, 32, ...), the stream after unit ``first - 1``, and ``s``
      (B, 32, L), the skip sum of the stem and of every stack ending by then, in the full graph's order;
    - ``head``: ``s`` and ``h{u}`` (B, 32, L) for each later stack end ``u`` -> ``p`` (B, 3, L).
    """
    g = _Graph(w)
    h, skip, _ = _front(g, w, first)
    g.node("Identity", [h], "h")
    g.node("Identity", [skip], "s")
    front = g.model("front", [("x", 4)], [("h", WIDTH), ("s", WIDTH)])
    g = _Graph(w)
    later = [u for u in SKIP_AFTER if u > first]
    _head(g, w, "s", later)
    head = g.model("head", [("s", WIDTH)] + [(f"h{u}", WIDTH) for u in later], [("p", HEAD_CHANNELS[w.head])])
    return front, head


def save_model(model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    """Write a graph to ``path`` atomically (temp name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(model.SerializeToString())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_onnx(w: Weights, path: str | os.PathLike[str]) -> Path:
    """Build one member's graph and write it to ``path`` atomically (temp name, then rename)."""
    return save_model(build_onnx(w), path)
