"""Benchmark: nucleotides/s of the base-model ensemble vs the original Keras SpliceAI, same run.

Inputs: the 18 genes of ../shared/data/grch37_chr22_20-21Mb (383,854 body nt), each body +- 5,000 nt,
reverse-complemented on '-'. Modes timed (model loading excluded, first-call warm-up included for all):

- ours: exact float32 with the default runtime (ONNX Runtime when installed), PyTorch eager float32,
  bfloat16 (PyTorch), OpenSpliceAI (default runtime);
- Keras (bench/keras_baseline.py in a Python with tensorflow-cpu + spliceai, e.g. /tmp/kerasvenv):
  whole-sequence and the original 5,000-nt-block way.

Wall and CPU seconds are both recorded: the 2-core machine is shared, so CPU seconds are the steadier figure.
Also: max |dp| against the Keras reference outputs, bfloat16 site-call agreement at 0.5, top-k accuracy,
and peak memory (max RSS of a fresh process) for a synthetic 540 kb gene cut from the chr2 bundle.

    python -m venv /tmp/kerasvenv && /tmp/kerasvenv/bin/pip install tensorflow-cpu spliceai
    python bench/bench_predict.py --keras-python /tmp/kerasvenv/bin/python [--rounds 2] [--json OUT.json]

The machine is shared: each mode runs once per round, rounds interleave all modes, and the fastest
run of each mode is compared (ratios "best vs best"); every run is kept in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from meta_spliceai.basemodel.ensemble import cpu_bfloat16_native

BF16 = cpu_bfloat16_native() is not False

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CHR22 = SHARED / "data" / "grch37_chr22_20-21Mb"
CHR2 = SHARED / "data" / "grch37_chr2_160-162Mb"
OPENSPLICEAI = SHARED / "models" / "openspliceai-mane-10000nt"


def chr22_inputs() -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    from meta_spliceai.reference.genome import Genome, oriented_sequence

    info = json.loads((CHR22 / "reference" / "keras_spliceai_genes.json").read_text())["genes"]
    genome = Genome(CHR22 / "genome.fa.gz")
    names = sorted(info)
    seqs = [oriented_sequence(genome, g["chrom"], g["start"], g["end"], g["strand"], 5000) for g in map(info.get, names)]
    return names, seqs, dict(np.load(CHR22 / "reference" / "keras_spliceai_outputs.npz"))


def topk(names: list[str], outs: list[np.ndarray]) -> float:
    """Pooled top-k accuracy over genes and site types (k = annotated sites of that type in the gene)."""
    from meta_spliceai.reference.annotation import load_annotation

    sites = load_annotation(CHR22 / "annotation.gtf").splice_sites
    hits = total = 0
    for name, p in zip(names, outs):
        for col, st in ((1, "acceptor"), (2, "donor")):
            pos = set(sites.filter((sites["gene_id"] == name) & (sites["site_type"] == st))["position"].to_list())
            if pos:
                top = np.argpartition(-p[:, col], len(pos) - 1)[: len(pos)]
                hits += len(pos & set(top.tolist()))
                total += len(pos)
    return hits / total


def run_ours(label: str, seqs: list[str], **kw: object) -> tuple[dict[str, object], list[np.ndarray]]:
    from meta_spliceai.basemodel.ensemble import load_base_model

    model = load_base_model(device="cpu", **kw)  # type: ignore[arg-type]
    t0, c0 = time.perf_counter(), time.process_time()
    outs = model.predict(seqs)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    nt = sum(len(s) - 10_000 for s in seqs)
    print(f"{label}: {nt / sec:,.0f} nt/s ({sec:.1f} s, {cpu:.1f} CPU s, {model.runtime})", file=sys.stderr, flush=True)
    return {"mode": label, "runtime": model.runtime, "seconds": round(sec, 2), "cpu_seconds": round(cpu, 2),
            "nt_per_s": round(nt / sec), "nt_per_cpu_s": round(nt / cpu)}, outs


def _vm_hwm_mib() -> float:
    """Peak RSS of this process (VmHWM; unlike ru_maxrss it is not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(runtime: str, precision: str, length: int, chunk: int) -> None:
    """In a fresh process: score one synthetic gene of `length` body nt, print peak RSS (MiB)."""
    from meta_spliceai.basemodel.ensemble import load_base_model
    from meta_spliceai.reference.genome import Genome

    g = Genome(CHR2 / "genome.fa.gz")
    seq = g.fetch("chr2", 160_600_000 - 5000, 160_600_000 + length + 5000)
    import psutil

    model = load_base_model(device="cpu", runtime=runtime, precision=precision, chunk_size=chunk)  # type: ignore[arg-type]
    before = psutil.Process().memory_info().rss / 2**20
    t0 = time.perf_counter()
    out = model.predict([seq])[0]
    sec = time.perf_counter() - t0
    peak = _vm_hwm_mib()
    print(json.dumps({"runtime": model.runtime, "precision": precision, "chunk_size": chunk, "length": len(out), "peak_rss_mib": round(peak),
                      "rss_after_load_mib": round(before), "seconds": round(sec, 1)}))


def keras_round(python: str, seqs: list[str], names: list[str], ref: dict[str, np.ndarray]) -> list[dict[str, object]]:
    """One run of the original Keras ensemble (whole-sequence, then 5,000-nt blocks) in its own venv."""
    nt = sum(len(s) - 10_000 for s in seqs)
    out: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", seqs=np.array(seqs))
        proc = subprocess.run([python, str(ROOT / "bench" / "keras_baseline.py"), str(Path(tmp) / "in.npz"),
                               str(Path(tmp) / "out.npz")], capture_output=True, text=True, check=True)
        secs = json.loads(proc.stdout.strip().splitlines()[-1])
        kout = np.load(Path(tmp) / "out.npz")
        for mode in ("whole", "block"):
            dp = max(float(np.abs(kout[f"{mode}_{j}"] - ref[n]).max()) for j, n in enumerate(names))
            out.append({"mode": f"keras {mode}", "seconds": round(secs[mode], 2), "nt_per_s": round(nt / secs[mode]),
                        "cpu_seconds": round(secs[f"{mode}_cpu"], 2), "max_dp_vs_reference": dp})
            print(f"keras {mode}: {nt / secs[mode]:,.0f} nt/s", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keras-python", default="/tmp/kerasvenv/bin/python")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best (fastest) of each mode is reported")
    ap.add_argument("--skip-keras", action="store_true")
    ap.add_argument("--memory-child", nargs=4, metavar=("RUNTIME", "PRECISION", "LENGTH", "CHUNK"))
    a = ap.parse_args()
    if a.memory_child:
        memory_child(a.memory_child[0], a.memory_child[1], int(a.memory_child[2]), int(a.memory_child[3]))
        return
    import torch

    names, seqs, ref = chr22_inputs()
    nt = sum(len(s) - 10_000 for s in seqs)
    res: dict[str, object] = {
        "date": "2026-11-25", "command": " ".join(["python"] + sys.argv), "nt": nt, "genes": len(seqs),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "load_avg_start": os.getloadavg(), "runs": [],
    }
    runs: list[dict[str, object]] = res["runs"]  # type: ignore[assignment]
    exact: list[np.ndarray] = []
    for rnd in range(a.rounds):
        r, exact = run_ours("ours exact", seqs)
        r["max_dp_vs_keras"] = float(max(np.abs(o - ref[n]).max() for n, o in zip(names, exact)))
        r["topk"] = round(topk(names, exact), 4)
        runs.append(r)
        if not a.skip_keras:
            runs += keras_round(a.keras_python, seqs, names, ref)
        r, _ = run_ours("ours float32 torch eager", seqs, runtime="torch")
        runs.append(r)
        if BF16:  # refused on CPUs without bfloat16 instructions (emulated: ~70x slower)
            r, fast = run_ours("ours bfloat16", seqs, precision="bfloat16")
            both = either = 0
            for e, f in zip(exact, fast):
                ce, cf = e[:, 1:] >= 0.5, f[:, 1:] >= 0.5
                both += int((ce & cf).sum())
                either += int((ce | cf).sum())
            r["max_dp_vs_exact"] = float(max(np.abs(e - f).max() for e, f in zip(exact, fast)))
            r["site_call_agreement"] = f"{both}/{either}"
            runs.append(r)
        r, osai = run_ours("openspliceai exact", seqs, name="openspliceai", weights=OPENSPLICEAI)
        r["topk"] = round(topk(names, osai), 4)
        runs.append(r)
        for r in runs:
            r.setdefault("round", rnd + 1)
    best: dict[str, dict[str, object]] = {}
    for r in runs:
        if r["mode"] not in best or r["seconds"] < best[r["mode"]]["seconds"]:  # type: ignore[operator]
            best[r["mode"]] = r
    res["best"] = best
    if not a.skip_keras:
        kw, kb = best["keras whole"]["seconds"], best["keras block"]["seconds"]
        res["ratios_best"] = {m: {"vs_keras_whole": round(kw / r["seconds"], 2), "vs_keras_block": round(kb / r["seconds"], 2)}  # type: ignore[operator]
                              for m, r in best.items() if not m.startswith("keras")}
    res["load_avg_end"] = os.getloadavg()
    res["memory_540kb"] = []
    memory_runs = [("auto", "float32", 100_000), ("auto", "float32", 200_000), ("torch", "float32", 100_000)]
    if BF16:
        memory_runs.append(("torch", "bfloat16", 100_000))
    for runtime, precision, chunk in memory_runs:
        out = subprocess.run([sys.executable, __file__, "--memory-child", runtime, precision, "540000", str(chunk)],
                             capture_output=True, text=True, check=True)
        res["memory_540kb"].append(json.loads(out.stdout.strip().splitlines()[-1]))  # type: ignore[attr-defined]
        print(res["memory_540kb"][-1], file=sys.stderr, flush=True)  # type: ignore[index]
    text = json.dumps(res, indent=1)
    if a.json:
        a.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
