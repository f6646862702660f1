"""Benchmark: CI-SpliceAI beside SpliceAI, same run, same genes, same runtime (ONNX Runtime, float32, CPU).

Each (round, model) runs in a fresh process, so peak RSS (VmHWM) is that model's alone; rounds interleave
the models (the machine is shared) and the fastest round of each is compared. Model loading (reading the
weights, building or loading the cached ONNX graphs) is timed apart from prediction. Also recorded: max |dp|
per gene against each model's original (Keras SpliceAI, the cispliceai package's TensorFlow graph), whose
outputs are in ../shared/data/grch37_chr22_20-21Mb/reference/.

    nice -n 10 python bench/bench_cispliceai.py [--genes G ...] [--rounds 2] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHR22 = ROOT.parent / "shared" / "data" / "grch37_chr22_20-21Mb"
#: ground truth of each model on the chr22 genes
REFERENCE = {"spliceai": "keras_spliceai_outputs.npz", "cispliceai": "cispliceai_outputs.npz"}
#: a modest default set (the CPU is shared): eight of the bundle's smaller genes, both strands, 47,098 body nt
GENES = ("GGTLC3", "CCDC188", "TMEM191B", "TRMT2A", "DGCR6L", "RIMBP3", "RANBP1", "SCARF2")


def _vm_hwm_mib() -> float:
    """Peak RSS of this process (VmHWM: not inherited from the parent across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(model_name: str, genes: list[str]) -> None:
    """One model on the genes, in this process: timings, rate, peak RSS and max |dp| per gene as JSON on stdout."""
    from meta_spliceai.basemodel.ensemble import load_base_model
    from meta_spliceai.reference.genome import Genome, oriented_sequence

    info = json.loads((CHR22 / "reference" / "keras_spliceai_genes.json").read_text())["genes"]
    genome = Genome(CHR22 / "genome.fa.gz")
    seqs = [oriented_sequence(genome, info[g]["chrom"], info[g]["start"], info[g]["end"], info[g]["strand"], 5000) for g in genes]
    ref = np.load(CHR22 / "reference" / REFERENCE[model_name])
    t0 = time.perf_counter()
    model = load_base_model(model_name, device="cpu")  # type: ignore[arg-type]
    load_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    outs = model.predict(seqs)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    nt = sum(len(o) for o in outs)
    print(json.dumps({
        "model": model_name, "version": model.version, "runtime": model.runtime, "members": model.n_members,
        "body_nt": nt, "load_s": round(load_s, 2), "wall_s": round(sec, 2), "cpu_s": round(cpu, 2),
        "nt_per_s": round(nt / sec), "peak_rss_mib": round(_vm_hwm_mib()),
        "max_dp": {g: float(np.abs(o - ref[g]).max()) for g, o in zip(genes, outs)},
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genes", nargs="+", default=list(GENES))
    ap.add_argument("--models", nargs="+", default=["spliceai", "cispliceai"], choices=sorted(REFERENCE))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.genes)
        return
    runs = []
    for r in range(args.rounds):
        for m in args.models:
            out = subprocess.run([sys.executable, __file__, "--child", m, "--genes", *args.genes],
                                 capture_output=True, text=True, check=True)
            runs.append({"round": r + 1, **json.loads(out.stdout.strip().splitlines()[-1])})
            print(json.dumps(runs[-1]), flush=True)
    best = {m: max((x for x in runs if x["model"] == m), key=lambda x: x["nt_per_s"]) for m in args.models}
    print(f"\n{platform.processor() or platform.machine()}, {len(args.genes)} genes, {best[args.models[0]]['body_nt']:,} body nt")
    print("| model | members | load s | wall s (best) | CPU s | nt/s | peak RSS MiB | max \\|dp\\| vs original | rate vs spliceai |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = best.get("spliceai", best[args.models[0]])["nt_per_s"]
    for m, x in best.items():
        print(f"| {m} {x['version']} | {x['members']} | {x['load_s']} | {x['wall_s']} | {x['cpu_s']} | {x['nt_per_s']:,} | "
              f"{x['peak_rss_mib']:,} | {max(x['max_dp'].values()):.2e} | {x['nt_per_s'] / base:.2f}× |")
    if args.json:
        args.json.write_text(json.dumps({"genes": args.genes, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
