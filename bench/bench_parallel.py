"""Scale-out benchmark (issue 10): serial vs ``--workers N`` vs Ray, for ``build`` and ``predict``.

Each run is one CLI subprocess, polled every 0.2 s: wall seconds, CPU seconds of the process tree
(``os.wait4`` of the child, which includes its reaped workers), the peak RSS of every process of the
tree (the parent, and the largest worker), and the 1-min load average. The outputs of every run are
compared to the serial run's (build: manifest checksums; predict: file bytes) and must be equal.

- build: the synthetic input of ``bench/make_synthetic_build_input.py`` (N genes, made when missing),
  ``--predictions STORE --subset-policy all --batch-size B --kmer-sizes K`` (default 6);
- predict: the first ``--predict-genes`` genes of a bundle (or those of ``--gene-ids-file``) with the
  real 5-model SpliceAI on the CPU.

Results are appended to ``bench/_work/parallel_bench.jsonl``.

Usage:
  python bench/bench_parallel.py build --n-genes 200 --batch-size 50 --runs serial workers2 ray2
  python bench/bench_parallel.py build --n-genes 20000 --batch-size 1000 --kmer-sizes 0
  python bench/bench_parallel.py predict --bundle ../shared/data/grch37_chr22_20-21Mb --predict-genes 6
  python bench/bench_parallel.py predict --bundle ../shared/data/grch37_chr20 --gtf ../shared/data/grch37_chr20/annotation_gencode_v19.gtf \\
      --gene-ids-file GENES --runs serial workers2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_build import _children, _rss_kib  # noqa: E402
from make_synthetic_build_input import DEFAULT_OUT as DEFAULT_INPUT  # noqa: E402
from make_synthetic_build_input import generate  # noqa: E402

WORK = ROOT / "bench" / "_work" / "parallel"
RESULTS = ROOT / "bench" / "_work" / "parallel_bench.jsonl"
RUNS = {"serial": [], "workers2": ["--workers", "2"], "ray2": ["--executor", "ray", "--workers", "2"]}


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            parts = fh.read().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(p.decode(errors="replace") for p in parts if p)
    for key in ("multiprocessing.spawn", "default_worker.py", "raylet", "gcs_server", "meta_spliceai"):
        if key in text:
            return key
    return text[:40]


def run(cmd: list[str], log: Path) -> dict:
    """One command in a subprocess, polled every 0.2 s; wall, CPU and peak RSS per process."""
    peaks: dict[int, tuple[str, int]] = {}
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        while True:
            for p in _tree(proc.pid):
                kib = _rss_kib(p)
                if kib and kib > peaks.get(p, ("", 0))[1]:
                    peaks[p] = (peaks.get(p, (_name(p), 0))[0], kib)
            done, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.2)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed; see {log}")
    gib = 1024**2
    main = peaks.get(proc.pid, ("", 0))[1] / gib
    workers = sorted(((n, k / gib) for p, (n, k) in peaks.items() if p != proc.pid
                      and n in ("multiprocessing.spawn", "default_worker.py")), key=lambda x: -x[1])
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_main_gib": round(main, 2), "n_worker_processes": len(workers),
            "peak_rss_worker_gib": round(workers[0][1], 2) if workers else None,
            "peak_rss_tree_sum_gib": round(sum(k for _, k in peaks.values()) / gib, 2),
            "load1": os.getloadavg()[0]}


def bench_build(args: argparse.Namespace) -> list[dict]:
    inp = args.input_dir / f"n{args.n_genes}"
    if not (inp / "info.json").is_file():
        generate(args.n_genes, inp, 200)
    rows, ref = [], None
    for name in args.runs:
        out = args.work_dir / f"build_{name}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "meta_spliceai", "build", "--fasta", str(inp / "genome.fa"), "--gtf",
               str(inp / "annotation.gtf"), "--predictions", str(inp / "predictions"), "--subset-policy", "all",
               "--batch-size", str(args.batch_size), "--kmer-sizes", args.kmer_sizes, "--output-dir", str(out), *RUNS[name]]
        r = run(cmd, args.work_dir / f"build_{name}.log")
        manifest = json.loads((out / "manifest.json").read_text())
        sums = {b: e["checksum"] for b, e in manifest["batches"].items()}
        ref = ref or sums
        r.update(stage="build", run=name, n_genes=args.n_genes, batch_size=args.batch_size, kmer_sizes=args.kmer_sizes,
                 rows=sum(int(e.get("rows", 0)) for e in manifest["batches"].values()),
                 genes_per_s=round(args.n_genes / r["wall_s"], 2), equal_to_first=sums == ref, cmd=" ".join(cmd[1:]))
        rows.append(r)
        print(json.dumps(r), flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def bench_predict(args: argparse.Namespace) -> list[dict]:
    rows, ref = [], None
    for name in args.runs:
        out = args.work_dir / f"predict_{name}"
        shutil.rmtree(out, ignore_errors=True)
        genes = ["--gene-ids-file", str(args.gene_ids_file)] if args.gene_ids_file else ["--n-genes", str(args.predict_genes)]
        cmd = [sys.executable, "-m", "meta_spliceai", "predict", "--fasta", str(args.bundle / "genome.fa.gz"),
               "--gtf", str(args.gtf or args.bundle / "annotation.gtf"), *genes, "--device", "cpu", "--out", str(out), *RUNS[name]]
        r = run(cmd, args.work_dir / f"predict_{name}.log")
        files = {f.name: f.read_bytes() for f in sorted(out.glob("*.parquet"))}
        ref = ref or files
        nt = sum(int(json.loads(_meta(f))["length"]) for f in out.glob("*.parquet"))
        r.update(stage="predict", run=name, n_genes=len(files), body_nt=nt, genes_per_s=round(len(files) / r["wall_s"], 3),
                 nt_per_s=round(nt / r["wall_s"], 1), equal_to_first=files == ref, cmd=" ".join(cmd[1:]))
        rows.append(r)
        print(json.dumps(r), flush=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


def _meta(f: Path) -> bytes:
    import pyarrow.parquet as pq

    return pq.read_schema(f).metadata[b"meta_spliceai.prediction_store"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", choices=("build", "predict"))
    ap.add_argument("--runs", nargs="+", choices=tuple(RUNS), default=["serial", "workers2", "ray2"])
    ap.add_argument("--n-genes", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--kmer-sizes", default="6", help="--kmer-sizes of the builds (0: none)")
    ap.add_argument("--input-dir", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--work-dir", type=Path, default=WORK, help="outputs and logs of the runs (deleted after each)")
    ap.add_argument("--bundle", type=Path, default=ROOT.parent / "shared" / "data" / "grch37_chr22_20-21Mb")
    ap.add_argument("--predict-genes", type=int, default=6, help="the first N genes of the bundle")
    ap.add_argument("--gtf", type=Path, help="annotation of the predict runs (default: the bundle's annotation.gtf)")
    ap.add_argument("--gene-ids-file", type=Path, help="predict these genes instead of --predict-genes")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    rows = bench_build(args) if args.stage == "build" else bench_predict(args)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as fh:
        for r in rows:
            fh.write(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), **r}) + "\n")


if __name__ == "__main__":
    main()
