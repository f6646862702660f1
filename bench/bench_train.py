"""Meta-model benchmark (issue 9): build -> train -> apply on real bundles, with wall time and peak RSS.

Each step runs as its own ``meta-spliceai`` subprocess; per step: wall seconds, CPU seconds
(user + system, ``os.wait4``) and peak RSS (``ru_maxrss`` of the child). Steps whose output already
exists are skipped unless ``--redo``. Results are appended to ``bench/_work/train_bench.jsonl`` and
the metrics tables of every train/apply output are printed as Markdown (for bench/RESULTS.md).

Default plan (chr20 GENCODE protein-coding genes, the store computed beforehand with ``predict``):

  build  --kmer-sizes 0 and 6        -> WORK/chr20_build_k0, WORK/chr20_build_k6
  train  each build, gene split, seed 42
  apply  --evaluate the k0 and k6 models to the chr22 and chr2 bundles' genes (stores made with predict)

Usage:
  python bench/bench_train.py --work /work/cache --store /work/cache/chr20_pc_store \\
      --genes /work/cache/chr20_pc_genes.txt [--steps build_k0 train_k0 ...] [--table-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "bench" / "_work" / "train_bench.jsonl"
GiB = 2**30


def run_step(name: str, argv: list[str], log: Path) -> dict[str, object]:
    """Run one CLI step in a subprocess; wall, CPU and peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "meta_spliceai", *argv]
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    rec = {"step": name, "cmd": "meta-spliceai " + " ".join(argv), "rc": os.waitstatus_to_exitcode(status),
           "wall_s": round(wall, 1), "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
           "peak_rss_gib": round(ru.ru_maxrss * 1024 / GiB, 2), "load1": round(os.getloadavg()[0], 2),
           "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(json.dumps(rec), flush=True)
    if rec["rc"] != 0:
        print(log.read_text()[-3000:], file=sys.stderr)
    return rec


def table(metrics_path: Path) -> str:
    sys.path.insert(0, str(ROOT / "src"))
    from meta_spliceai.metamodel.report import metrics_table

    m = json.loads(metrics_path.read_text())
    rows = metrics_table(m)
    head = f"{metrics_path.parent.name}: {m['genes']} genes, {m['positions']:,} nt ({m['scored_positions']:,} scored)"
    out = [head, "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="folder for builds, models and apply outputs")
    ap.add_argument("--store", type=Path, required=True, help="chr20 prediction store (made with predict)")
    ap.add_argument("--genes", type=Path, required=True, help="gene list of the chr20 build")
    ap.add_argument("--chr22-store", type=Path, help="default WORK/chr22_store")
    ap.add_argument("--chr2-store", type=Path, help="default WORK/chr2_store")
    ap.add_argument("--steps", nargs="+", help="subset of steps (default all)")
    ap.add_argument("--model", default="xgboost")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--redo", action="store_true")
    ap.add_argument("--table-only", action="store_true")
    a = ap.parse_args()
    w = a.work
    c20 = DATA / "grch37_chr20"
    ref20 = ["--fasta", str(c20 / "genome.fa.gz"), "--gtf", str(c20 / "annotation_gencode_v19.gtf")]
    steps: dict[str, tuple[list[str], Path]] = {}
    for k in ("0", "6"):
        b = w / f"chr20_build_k{k}"
        steps[f"build_k{k}"] = (["build", *ref20, "--gene-ids-file", str(a.genes), "--predictions", str(a.store),
                                 "--kmer-sizes", k, "--batch-size", "200", "--seed", str(a.seed), "-o", str(b)],
                                b / "manifest.json")
        m = w / f"chr20_train_k{k}"
        steps[f"train_k{k}"] = (["train", str(b), "--out-dir", str(m), "--model", a.model, "--split", "gene",
                                 "--seed", str(a.seed)], m / "metrics.json")
        for bundle, name in (("grch37_chr22_20-21Mb", "chr22"), ("grch37_chr2_160-162Mb", "chr2")):
            store = getattr(a, f"{name}_store") or w / f"{name}_store"
            steps[f"apply_k{k}_{name}"] = (["apply", str(m), "--predictions", str(store), "--fasta",
                                            str(DATA / bundle / "genome.fa.gz"), "--gtf", str(DATA / bundle / "annotation.gtf"),
                                            "--out", str(w / f"apply_k{k}_{name}"), "--evaluate"],
                                           w / f"apply_k{k}_{name}" / "metrics.json")
    chosen = a.steps or list(steps)
    if not a.table_only:
        (w / "logs").mkdir(parents=True, exist_ok=True)
        for name in chosen:
            argv, done = steps[name]
            if done.exists() and not a.redo:
                print(f"{name}: done already ({done})")
                continue
            rec = run_step(name, argv, w / "logs" / f"{name}.log")
            if rec["rc"] != 0:
                sys.exit(f"{name} failed (rc {rec['rc']}), see {w / 'logs' / (name + '.log')}")
    for name in chosen:
        _, done = steps[name]
        if done.name == "metrics.json" and done.exists():
            print("\n" + table(done))


if __name__ == "__main__":
    main()
