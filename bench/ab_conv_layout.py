"""A/B of the ONNX graph's conv layout (issue 21): the members as built now, 2-D ``(1, k)`` convs on height-1
tensors (ONNX Runtime's blocked NCHWc kernels), against the same graph with 1-D convs (the layout before,
im2col + GEMM), one process, interleaved rounds, the real SpliceAI weights of the installed ``spliceai`` package.

    python bench/ab_conv_layout.py [--length 100000] [--rounds 3]

Reports per-member nt/s (one session, one thread) and the 5-member ensemble the way the CPU runtime runs it
(one session per member, one thread each, members on a thread pool of the usable cores), with the max |diff|
between the layouts.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from meta_spliceai.basemodel import onnx_graph as og
from meta_spliceai.basemodel.ensemble import ort_options
from meta_spliceai.basemodel.weights import read_keras_h5
from meta_spliceai.parallel import usable_cores


def one_d(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph with 1-D convs: drop the Unsqueeze/Squeeze, 3-D weights and constants, crops on axis 2."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    keep = [n for n in g.node if n.op_type not in ("Unsqueeze", "Squeeze")]
    ren = {f"{i.name}.4d": i.name for i in g.input} | {f"{o.name}.4d": o.name for o in g.output}
    for n in keep:
        n.input[:] = [ren.get(x, x) for x in n.input]
        n.output[:] = [ren.get(x, x) for x in n.output]
        if n.op_type == "Conv":
            for a in n.attribute:
                if a.name in ("kernel_shape", "dilations", "strides"):
                    a.ints[:] = a.ints[1:]
                elif a.name == "pads":
                    a.ints[:] = [a.ints[1], a.ints[3]]
    del g.node[:]
    g.node.extend(keep)
    for t in g.initializer:
        arr = onnx.numpy_helper.to_array(t)
        if t.name == "axes3":
            arr = np.array([2], np.int64)
        elif arr.ndim == 4:  # conv weights (out, in, 1, k) and BN constants (1, C, 1, 1): drop the height
            arr = arr[:, :, 0, :]
        t.CopyFrom(onnx.numpy_helper.from_array(np.ascontiguousarray(arr), t.name))
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=100_000, help="output nt per pass (input: + 10,000)")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    folder = Path(importlib.util.find_spec("spliceai").origin).parent / "models"
    members = [read_keras_h5(folder / f"spliceai{i}.h5") for i in range(1, 6)]
    rng = np.random.default_rng(0)
    n = a.length + 10_000
    x = np.zeros((1, 4, n), np.float32)
    x[0, rng.integers(0, 4, n), np.arange(n)] = 1
    layouts = {}
    for name, build in (("2-D (now)", og.build_onnx), ("1-D (before)", lambda w: one_d(og.build_onnx(w)))):
        layouts[name] = [ort.InferenceSession(build(w).SerializeToString(), ort_options(1),
                                              providers=["CPUExecutionProvider"]) for w in members]
    outs: dict[str, np.ndarray] = {}
    best: dict[str, dict[str, float]] = {k: {"member": 1e9, "ensemble": 1e9} for k in layouts}
    pool = ThreadPoolExecutor(usable_cores())
    for r in range(a.rounds + 1):  # round 0 warms up
        for name, sess in layouts.items():
            t = time.perf_counter()
            outs[name] = sess[0].run(None, {"x": x})[0]
            member = time.perf_counter() - t
            t = time.perf_counter()
            list(pool.map(lambda s: s.run(None, {"x": x})[0], sess))
            ens = time.perf_counter() - t
            if r:
                best[name]["member"] = min(best[name]["member"], member)
                best[name]["ensemble"] = min(best[name]["ensemble"], ens)
    diff = float(np.abs(outs["2-D (now)"] - outs["1-D (before)"]).max())
    print(f"{a.length:,} output nt per pass, {usable_cores()} cores, best of {a.rounds} rounds; max |diff| {diff:.2e}")
    print("| layout | one member, 1 thread: nt/s | 5 members in parallel: ensemble nt/s |")
    print("|---|---:|---:|")
    for name, b in best.items():
        print(f"| {name} | {a.length / b['member']:,.0f} | {a.length / b['ensemble']:,.0f} |")
    base = best["1-D (before)"]
    now = best["2-D (now)"]
    print(f"ratio now/before: member {base['member'] / now['member']:.2f}x, ensemble {base['ensemble'] / now['ensemble']:.2f}x")


if __name__ == "__main__":
    main()
