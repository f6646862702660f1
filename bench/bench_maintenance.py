"""Dataset-commands benchmark (issue 8): peak RSS and time of validate, summary and dedup on a synthetic build.

Input: a finished build of ``bench/bench_build.py --keep-output`` (default
``bench/_work/build_out/n<N>_k6``). Each command runs in a fresh subprocess (``python -m
meta_spliceai ...``), polled every 0.2 s for the summed VmRSS of its process tree; CPU seconds
and ``ru_maxrss`` come from ``os.wait4``. Runs, one after the other:

- baseline: read every row group of every master file with pyarrow and drop it (the decode floor
  any streaming pass pays), so the commands' times can be read as ratios under the same load;
- ``validate DATASET --json``;
- ``summary DATASET --report report.html``;
- ``dedup DATASET --dst ...`` (the synthetic genes never overlap: finds nothing, hard-links every file);
- ``dedup DOUBLED --dst ...`` where DOUBLED lists every master file twice (hard links): every row of
  the second copy is a cross-file duplicate (``repeated_gene``), half of the files are rewritten;
- ``validate`` and ``summary`` on a dataset listing every file ``--copies`` times: the rows grow, the
  peak memory must not (validate then reports the repeated genes, as it should).

Results are appended to ``bench/_work/maintenance_bench.jsonl`` and printed as a table.

Usage:
  python bench/bench_maintenance.py --n-genes 2000
  python bench/bench_maintenance.py --dataset DIR      # any finished (or partly finished) build
  python bench/bench_maintenance.py --dataset DIR --n-genes 20000 --steps floor validate summary dedup --floor-files 2
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
from bench_build import GiB, tree_rss  # noqa: E402

WORK = ROOT / "bench" / "_work"
RESULTS = WORK / "maintenance_bench.jsonl"
STEPS = ("floor", "validate", "summary", "dedup", "dedup2", "validate_many", "summary_many")

_FLOOR = """
import sys, pyarrow.parquet as pq, pathlib
n = 0
files = sorted(pathlib.Path(sys.argv[1], "master").glob("*.parquet"))
for f in files[:int(sys.argv[2])] if len(sys.argv) > 2 else files:
    pf = pq.ParquetFile(f)
    for g in range(pf.num_row_groups):
        n += pf.read_row_group(g).num_rows
print(n, "rows read")
"""


def run(name: str, cmd: list[str], log: Path) -> dict:
    """Run ``cmd``, polling the process tree's RSS; wall, CPU and peak figures."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    return {"step": name, "returncode": os.waitstatus_to_exitcode(status), "wall_s": round(wall, 2),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "peak_rss_gib": round(usage.ru_maxrss * 1024 / GiB, 3),
            "peak_tree_rss_gib": round(peak / GiB, 3), "load": round(os.getloadavg()[0], 2), "log": str(log)}


def multiplied(src: Path, dst: Path, copies: int) -> Path:
    """A dataset listing every master file of ``src`` ``copies`` times (hard links), with its context."""
    shutil.rmtree(dst, ignore_errors=True)
    (dst / "master").mkdir(parents=True)
    man = json.loads((src / "manifest.json").read_text())
    entries = sorted(man["batches"].items())
    out = dict(man, batches={})
    for _ in range(copies):
        for k, e in entries:
            n = len(out["batches"])
            name = f"batch_{n:05d}.parquet"
            os.link(src / "master" / e["file"], dst / "master" / name)
            out["batches"][f"{n:05d}"] = {**e, "file": name}
    (dst / "manifest.json").write_text(json.dumps(out))
    for f in ("build.json", "gene_performance.tsv"):
        if (src / f).is_file():
            shutil.copy(src / f, dst / f)
    shutil.copytree(src / "annotation", dst / "annotation")
    return dst


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-genes", type=int, default=2000)
    ap.add_argument("--dataset", type=Path, help="build folder (default bench/_work/build_out/n<N>_k6)")
    ap.add_argument("--copies", type=int, default=3,
                    help="validate and summary also run on a dataset listing every file this many times (flatness)")
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS),
                    help="which steps to run (a 20,000-gene build: floor validate summary dedup)")
    ap.add_argument("--floor-files", type=int, help="the read floor reads only the first K master files "
                    "(its per-file figures scale: every batch file holds 1,000 genes)")
    ap.add_argument("--work-dir", type=Path, default=WORK / "maintenance", help="scratch outputs (emptied first)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    ds = args.dataset or WORK / "build_out" / f"n{args.n_genes}_k6"
    if not (ds / "manifest.json").is_file() or not json.loads((ds / "manifest.json").read_text())["batches"]:
        sys.exit(f"{ds} is no finished build: run bench/bench_build.py --n-genes {args.n_genes} --keep-output")
    scratch = args.work_dir
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    man = json.loads((ds / "manifest.json").read_text())
    rows = sum(e["rows"] for e in man["batches"].values())
    cli = [sys.executable, "-m", "meta_spliceai"]
    dbl = multiplied(ds, scratch / "doubled", 2) if "dedup2" in args.steps else ds
    many = multiplied(ds, scratch / f"x{args.copies}", args.copies) if {"validate_many", "summary_many"} & set(args.steps) else ds
    floor_files = [str(args.floor_files)] if args.floor_files else []
    floor_what = f"first {args.floor_files} files" if args.floor_files else "every file"
    steps = {
        "floor": (f"read floor (pyarrow, every row group, {floor_what})", [sys.executable, "-c", _FLOOR, str(ds), *floor_files]),
        "validate": ("validate --json", [*cli, "validate", str(ds), "--json"]),
        "summary": ("summary --report", [*cli, "summary", str(ds), "--report", str(scratch / "report.html")]),
        "dedup": ("dedup (no duplicates)", [*cli, "dedup", str(ds), "--dst", str(scratch / "dedup")]),
        "dedup2": ("dedup (every file twice)", [*cli, "dedup", str(dbl), "--dst", str(scratch / "dedup_doubled")]),
        "validate_many": (f"validate --json, every file x{args.copies}", [*cli, "validate", str(many), "--json"]),
        "summary_many": (f"summary, every file x{args.copies}", [*cli, "summary", str(many)]),
    }
    results = []
    for name, cmd in (steps[k] for k in STEPS if k in args.steps):
        print(f"{name} (load {os.getloadavg()[0]:.2f}) ...", file=sys.stderr)
        r = run(name, cmd, scratch / f"{len(results)}.log")
        r.update(n_genes=args.n_genes, rows=rows, files=len(man["batches"]), date=time.strftime("%Y-%m-%d %H:%M:%S"),
                 cpus=os.cpu_count())
        results.append(r)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as fh:
            fh.write(json.dumps(r) + "\n")
    floor = results[0]["wall_s"] if "floor" in args.steps else float("nan")
    print(f"\nN = {args.n_genes:,} genes, {rows:,} rows, {len(man['batches'])} files")
    print(f"{'step':<40} {'rc':>3} {'wall s':>8} {'CPU s':>8} {'vs floor':>8} {'RSS GiB':>8} {'tree':>6} {'load':>5}")
    for r in results:
        print(f"{r['step']:<40} {r['returncode']:>3} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} {r['wall_s'] / floor:>7.2f}x "
              f"{r['peak_rss_gib']:>8.3f} {r['peak_tree_rss_gib']:>6.3f} {r['load']:>5.1f}")


if __name__ == "__main__":
    main()
