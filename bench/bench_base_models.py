"""Benchmark: nucleotides/s and peak memory of each base model (SpliceAI, OpenSpliceAI, CI-SpliceAI, Pangolin) on
the same genes, in the same run.

Inputs: the 5 genes of Pangolin's reference outputs in ../shared/data/grch37_chr22_20-21Mb (CCDC188, TMEM191B,
RANBP1, SCARF2, ZDHHC8: 44,141 body nt), each body +- 5,000 nt, reverse-complemented on '-'. Each model runs in a
fresh process (peak RSS = that process's VmHWM), the default runtime (CPU float32: ONNX Runtime, FFT stacks);
model loading is timed apart from the prediction (the ONNX graphs come from a cache made before round 1, the FFT
kernel spectra are made in every process, as in a real run). Rounds interleave the models; the fastest run of
each is compared. Also: max |dp| against the original's outputs (Keras SpliceAI; CI-SpliceAI's graph run by
TensorFlow; Pangolin's PyTorch code).

    nice -n 10 python bench/bench_base_models.py [--rounds 2] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CHR22 = SHARED / "data" / "grch37_chr22_20-21Mb"
WEIGHTS = {"spliceai": None, "openspliceai": SHARED / "models" / "openspliceai-mane-10000nt",
           "cispliceai": None, "pangolin": SHARED / "models" / "pangolin-v2"}
REFERENCE = {"spliceai": CHR22 / "reference" / "keras_spliceai_outputs.npz",
             "cispliceai": CHR22 / "reference" / "cispliceai_outputs.npz",
             "pangolin": SHARED / "models" / "pangolin-v2" / "reference_outputs.npz"}
GENES = ("CCDC188", "TMEM191B", "RANBP1", "SCARF2", "ZDHHC8")


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(name: str) -> None:
    """In a fresh process: load one model, score the genes, print one JSON line."""
    from meta_spliceai.basemodel.ensemble import load_base_model
    from meta_spliceai.reference.genome import Genome, oriented_sequence

    info = json.loads((CHR22 / "reference" / "keras_spliceai_genes.json").read_text())["genes"]
    genome = Genome(CHR22 / "genome.fa.gz")
    seqs = [oriented_sequence(genome, g["chrom"], g["start"], g["end"], g["strand"], 5000) for g in map(info.get, GENES)]
    t0 = time.perf_counter()
    model = load_base_model(name, weights=WEIGHTS[name], device="cpu")  # type: ignore[arg-type]
    load_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    outs = model.predict(seqs)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    nt = sum(len(o) for o in outs)
    rec: dict[str, object] = {"model": name, "members": model.n_members, "columns": len(model.columns),
                              "runtime": model.runtime, "load_s": round(load_s, 2), "seconds": round(sec, 2),
                              "cpu_seconds": round(cpu, 2), "nt": nt, "nt_per_s": round(nt / sec),
                              "nt_per_cpu_s": round(nt / cpu), "peak_rss_mib": round(_vm_hwm_mib())}
    if name in REFERENCE:
        ref = np.load(REFERENCE[name])
        rec["max_dp_per_gene"] = {g: float(np.abs(o - ref[g]).max()) for g, o in zip(GENES, outs)}
    print(json.dumps(rec))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=list(WEIGHTS), choices=list(WEIGHTS))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child)
        return
    env = {**os.environ, "META_SPLICEAI_CACHE": os.environ.get("META_SPLICEAI_CACHE", str(ROOT / "bench" / "_work" / "cache"))}
    for name in a.models:  # the ONNX graphs into the cache, outside the timed rounds
        subprocess.run([sys.executable, "-c", f"from meta_spliceai.basemodel.ensemble import load_base_model as f; "
                        f"f({name!r}, weights={str(WEIGHTS[name]) if WEIGHTS[name] else None!r}, device='cpu')"],
                       env=env, check=True)
    res: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "command": " ".join(["python"] + sys.argv), "genes": list(GENES),
                              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_avg_start": os.getloadavg(),
                              "runs": []}
    runs: list[dict[str, object]] = res["runs"]  # type: ignore[assignment]
    for rnd in range(a.rounds):
        for name in a.models:
            out = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True, env=env,
                                 check=True)
            rec = json.loads(out.stdout.strip().splitlines()[-1]) | {"round": rnd + 1}
            runs.append(rec)
            print(f"round {rnd + 1} {name}: {rec['nt_per_s']:,} nt/s ({rec['seconds']} s, {rec['cpu_seconds']} CPU s), "
                  f"peak {rec['peak_rss_mib']} MiB", file=sys.stderr, flush=True)
    best: dict[str, dict[str, object]] = {}
    for r in runs:
        if r["model"] not in best or r["seconds"] < best[r["model"]]["seconds"]:  # type: ignore[operator]
            best[str(r["model"])] = r
    res["best"] = best
    if "spliceai" in best:
        res["rate_vs_spliceai_best"] = {m: round(r["nt_per_s"] / best["spliceai"]["nt_per_s"], 3)  # type: ignore[operator]
                                        for m, r in best.items()}
    res["load_avg_end"] = os.getloadavg()
    text = json.dumps(res, indent=1)
    if a.json:
        a.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
