"""A/B of the ONNX graph's layout (issue 21): the members as built now (2-D ``(1, k)`` convs on height-1 tensors,
BN1 and crops as depthwise convs: ONNX Runtime's blocked NCHWc kernels end to end) against the graph builder of
earlier revisions (``git show REV:src/meta_spliceai/basemodel/onnx_graph.py``; default a536800: 2-D convs with
Slice crops and Mul/Add BN1, and 00b94bc: 1-D convs, im2col + GEMM), one process, interleaved rounds, the real
SpliceAI weights of the installed ``spliceai`` package.

    python bench/ab_conv_layout.py [--length 100000] [--rounds 3]

Reports per-member nt/s (one session, one thread) and the 5-member ensemble the way the CPU runtime runs it
(one session per member, one thread each, members on a thread pool of the usable cores), with the max |diff|
between the layouts.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort

from meta_spliceai.basemodel import onnx_graph as og
from meta_spliceai.basemodel.ensemble import ort_options
from meta_spliceai.basemodel.weights import read_keras_h5
from meta_spliceai.parallel import usable_cores

ROOT = Path(__file__).resolve().parents[1]


def graph_module(rev: str) -> ModuleType:
    """``basemodel/onnx_graph.py`` as it was at git revision ``rev``, imported inside the package (its relative
    imports resolve against today's weights reader, which has not changed)."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:src/meta_spliceai/basemodel/onnx_graph.py"],
                         check=True, capture_output=True, text=True).stdout
    name = f"meta_spliceai.basemodel._onnx_graph_{rev}"
    mod = ModuleType(name)
    mod.__package__ = "meta_spliceai.basemodel"
    sys.modules[name] = mod
    exec(compile(src, f"{rev}:onnx_graph.py", "exec"), mod.__dict__)  # noqa: S102 - our own file at another commit
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=100_000, help="output nt per pass (input: + 10,000)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--revs", nargs="+", default=["a536800", "00b94bc"],
                    help="earlier revisions of the graph builder to compare (default: 2-D convs with Slice crops and "
                         "Mul/Add BN1; the 1-D graph before)")
    a = ap.parse_args()
    folder = Path(importlib.util.find_spec("spliceai").origin).parent / "models"
    members = [read_keras_h5(folder / f"spliceai{i}.h5") for i in range(1, 6)]
    rng = np.random.default_rng(0)
    n = a.length + 10_000
    x = np.zeros((1, 4, n), np.float32)
    x[0, rng.integers(0, 4, n), np.arange(n)] = 1
    builders = {"now": og.build_onnx} | {rev: graph_module(rev).build_onnx for rev in a.revs}
    layouts = {name: [ort.InferenceSession(build(w).SerializeToString(), ort_options(1),
                                           providers=["CPUExecutionProvider"]) for w in members]
               for name, build in builders.items()}
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
    print(f"{a.length:,} output nt per pass, {usable_cores()} cores, best of {a.rounds} rounds")
    print("| graph builder | one member, 1 thread: nt/s | 5 members in parallel: ensemble nt/s | now vs it | max abs diff vs now |")
    print("|---|---:|---:|---:|---:|")
    now = best["now"]
    for name, b in best.items():
        diff = float(np.abs(outs[name] - outs["now"]).max())
        print(f"| {name} | {a.length / b['member']:,.0f} | {a.length / b['ensemble']:,.0f} | "
              f"{b['ensemble'] / now['ensemble']:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
