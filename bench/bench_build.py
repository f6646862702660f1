"""Dataset-builder benchmark (issue 4): peak RSS and throughput of ``meta-spliceai build`` at N genes.

For each N the synthetic input of ``bench/make_synthetic_build_input.py`` (made here when missing)
is built twice, one run after the other, each in a fresh subprocess and a fresh output folder:

- measured: ``--subset-policy all --batch-size 1000 --kmer-sizes 6 --predictions STORE``;
- baseline: the same with ``--kmer-sizes 0`` (no sequence features), so the 6-mer figures can be read
  as a ratio against a run made under the same machine load.

``--feature-sets`` / ``--baseline-feature-sets`` set the builder's feature families of each run (default:
the builder's default), e.g. ``--baseline-kmer-sizes 6 --baseline-feature-sets base --feature-sets all``
measures what the context families cost with 6-mers on.

Per run: wall seconds (whole subprocess: interpreter start, annotation parse, plan, all batches,
finalize), CPU seconds (user + system of the child, from ``os.wait4``), peak RSS (``ru_maxrss`` of
the child, and the peak of the process tree's summed VmRSS polled every 0.2 s from /proc), peak
RSS per batch (polled peak while batch k was in progress), batch completion times (steady-state
genes/s, which leaves out the start-up), rows (raw and trim, from the manifest), output size on
disk (hard links counted once) and the 1-min load average. The output folder is deleted after
each run (``--keep-output`` keeps it). ``--max-seconds`` and ``--max-rss-gib`` stop a run (SIGINT, then
SIGKILL a minute later) and report what it measured up to then. Results are appended to ``bench/_work/build_bench.jsonl``.

Usage:
  python bench/bench_build.py --n-genes 200 2000
  python bench/bench_build.py --n-genes 20000 --max-seconds 4500
  python bench/bench_build.py --n-genes 2000 --feature-sets all --baseline-kmer-sizes 6 --baseline-feature-sets base
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from make_synthetic_build_input import DEFAULT_OUT as DEFAULT_INPUT  # noqa: E402
from make_synthetic_build_input import generate  # noqa: E402

DEFAULT_WORK = ROOT / "bench" / "_work" / "build_out"
RESULTS = ROOT / "bench" / "_work" / "build_bench.jsonl"
GiB = 2**30


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    """Summed resident set (bytes) of ``pid`` and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += _rss_kib(p)
        todo += _children(p)
    return total * 1024


def disk_usage(path: Path) -> int:
    """Bytes allocated under ``path``, each inode once (master/ holds hard links to the trims)."""
    seen, total = set(), 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def run_build(inp: Path, out: Path, n: int, kmer: str, batch_size: int, max_seconds: float | None,
              max_rss: float | None, log: Path, feature_sets: str | None = None) -> dict:
    """One ``meta-spliceai build`` in a subprocess, polled every 0.2 s; returns its figures."""
    cmd = [sys.executable, "-m", "meta_spliceai", "build", "--fasta", str(inp / "genome.fa"),
           "--gtf", str(inp / "annotation.gtf"), "--predictions", str(inp / "predictions"),
           "--subset-policy", "all", "--batch-size", str(batch_size), "--kmer-sizes", kmer, "--output-dir", str(out)]
    if feature_sets:
        cmd += ["--feature-sets", feature_sets]
    n_batches = -(-n // batch_size)
    master = out / "master"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    peak_tree, done, batch_peaks, batch_times, loads = 0, 0, [0] * n_batches, [], []
    status, usage, stopped, last_load, why, timeline = None, None, False, 0.0, None, []
    while status is None:
        pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            status, usage = st, ru
            break
        now = time.perf_counter() - t0
        rss = tree_rss(proc.pid)
        peak_tree = max(peak_tree, rss)
        if master.is_dir():
            k = sum(1 for f in os.listdir(master) if f.startswith("batch_") and f.endswith(".parquet"))
            while done < k:  # batch `done` finished since the last poll
                batch_times.append(round(now, 2))
                done += 1
        if done < n_batches:
            batch_peaks[done] = max(batch_peaks[done], rss)
        if now - last_load >= 5:
            loads.append(os.getloadavg()[0])
            timeline.append((round(now, 1), done, round(rss / GiB, 3)))
            last_load = now
        if not stopped and max_seconds is not None and now > max_seconds:
            why = f"--max-seconds {max_seconds:g}"
        if not stopped and max_rss is not None and rss > max_rss:
            why = f"--max-rss-gib {max_rss / GiB:g} (tree RSS {rss / GiB:.2f} GiB)"
        if why and not stopped:
            print(f"  stopping after {now:.0f} s: {why}", file=sys.stderr)
            proc.send_signal(signal.SIGINT)
            stopped = True
            kill_at = now + 60
        if stopped and now > kill_at:
            proc.kill()
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    manifest_path = master.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"batches": {}}
    entries = manifest["batches"].values()
    genes_done = sum(len(e["genes"]) for e in entries)
    rows = sum(int(e["rows"]) for e in entries)
    raw_rows = sum(int(e["raw_rows"]) for e in entries)
    steady = None
    if len(batch_times) >= 2:  # genes/s between the first and the last finished batch (no start-up)
        steady = (batch_size * (len(batch_times) - 1)) / (batch_times[-1] - batch_times[0])
    elif batch_times:  # one batch: from the first batch's start (after plan) is unknown; report whole run
        steady = None
    return {
        "kmer_sizes": kmer,
        "feature_sets": feature_sets or "default",
        "returncode": proc.returncode,
        "complete": bool(manifest.get("complete")),
        "stopped": why,
        "genes": n,
        "genes_done": genes_done,
        "batches_done": len(entries),
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "genes_per_s": round(genes_done / wall, 3) if wall else None,
        "steady_genes_per_s": round(steady, 3) if steady else None,
        "peak_rss_gib": round(usage.ru_maxrss * 1024 / GiB, 3),
        "peak_tree_rss_gib": round(peak_tree / GiB, 3),
        "batch_peak_rss_gib": [round(b / GiB, 3) for b in batch_peaks[: len(entries) + (not manifest.get("complete"))]],
        "batch_done_s": batch_times,
        "rows_trim": rows,
        "rows_raw": raw_rows,
        "rows_per_gene": round(rows / genes_done, 1) if genes_done else None,
        "output_bytes": disk_usage(out) if out.exists() else 0,
        "load_mean": round(sum(loads) / len(loads), 2) if loads else round(os.getloadavg()[0], 2),
        "load_max": round(max(loads), 2) if loads else None,
        "log": str(log),
        "timeline": timeline,  # (seconds, batches done, tree RSS GiB) every 5 s
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-genes", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--input-dir", type=Path, default=DEFAULT_INPUT)
    ap.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--kmer-sizes", default="6")
    ap.add_argument("--baseline-kmer-sizes", default="0", help="'' for no baseline run")
    ap.add_argument("--feature-sets", help="--feature-sets of the measured build (default: the builder's)")
    ap.add_argument("--baseline-feature-sets", help="--feature-sets of the baseline build (default: the builder's)")
    ap.add_argument("--baseline-first", action="store_true", help="run the baseline before the measured build")
    ap.add_argument("--max-seconds", type=float, help="stop a run after this long and report what it measured")
    ap.add_argument("--max-rss-gib", type=float, help="stop a run whose process tree exceeds this resident size")
    ap.add_argument("--min-free-gib", type=float, default=10.0, help="refuse a run that would leave less disk free")
    ap.add_argument("--keep-output", action="store_true")
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    args.work_dir.mkdir(parents=True, exist_ok=True)
    measured = (args.kmer_sizes, args.feature_sets)
    baseline = (args.baseline_kmer_sizes, args.baseline_feature_sets)
    bytes_per_gene = {measured: 1.2e6 if args.kmer_sizes != "0" else 0.2e6,
                      baseline: 1.2e6 if args.baseline_kmer_sizes != "0" else 0.2e6}  # measured: 21 GiB at 20,000; refined
    for n in args.n_genes:
        inp = args.input_dir / f"n{n}"
        info = generate(n, inp, 200)
        kinds = [measured] + ([baseline] if args.baseline_kmer_sizes != "" else [])
        if args.baseline_first:
            kinds.reverse()
        for kind in kinds:
            kmer, fsets = kind
            tag = f"_f{fsets.replace(',', '-')}" if fsets else ""
            out = args.work_dir / f"n{n}_k{kmer.replace(',', '-')}{tag}"
            shutil.rmtree(out, ignore_errors=True)
            need = bytes_per_gene[kind] * n
            free = free_bytes(args.work_dir)
            if free - need < args.min_free_gib * GiB:
                print(f"N={n} k={kmer}: skipped, needs ~{need / GiB:.1f} GiB and {free / GiB:.1f} GiB are free "
                      f"(keeping {args.min_free_gib} GiB)", file=sys.stderr)
                continue
            print(f"N={n} k={kmer}: building into {out} (load {os.getloadavg()[0]:.2f})", file=sys.stderr)
            res = run_build(inp, out, n, kmer, args.batch_size, args.max_seconds,
                            args.max_rss_gib * GiB if args.max_rss_gib else None, args.work_dir / f"{out.name}.log",
                            feature_sets=fsets)
            res.update(n_genes=n, date=time.strftime("%Y-%m-%d %H:%M:%S"), body_nt=info["body_nt"],
                       cpus=os.cpu_count(), batch_size=args.batch_size)
            if res["genes_done"]:
                bytes_per_gene[kind] = 1.3 * res["output_bytes"] / res["genes_done"]
            print(json.dumps(res), file=sys.stderr)
            args.results.parent.mkdir(parents=True, exist_ok=True)
            with open(args.results, "a") as fh:
                fh.write(json.dumps(res) + "\n")
            if not args.keep_output:
                shutil.rmtree(out, ignore_errors=True)
        _report(args.results, n)


def _report(results: Path, n: int) -> None:
    """The latest measured and baseline runs of N, side by side."""
    runs = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    latest: dict[tuple[str, str], dict] = {}
    for r in runs:
        if r["n_genes"] == n:
            latest[(r["kmer_sizes"], r.get("feature_sets", "default"))] = r
    print(f"\nN = {n:,} genes")
    print(f"{'k-mers':>7} {'feature sets':>14} {'ok':>3} {'genes':>7} {'wall s':>8} {'CPU s':>8} {'genes/s':>8} {'steady':>7} "
          f"{'RSS GiB':>8} {'tree':>6} {'trim rows':>11} {'rows/gene':>9} {'out GiB':>8} {'load':>5}")
    for (k, fs), r in latest.items():
        print(f"{k:>7} {fs:>14} {'y' if r['complete'] else 'n':>3} {r['genes_done']:>7,} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} "
              f"{r['genes_per_s']:>8.2f} {r['steady_genes_per_s'] or float('nan'):>7.2f} {r['peak_rss_gib']:>8.2f} "
              f"{r['peak_tree_rss_gib']:>6.2f} {r['rows_trim']:>11,} {r['rows_per_gene']:>9} "
              f"{r['output_bytes'] / GiB:>8.2f} {r['load_mean']:>5.1f}")
    last = sorted(latest.values(), key=lambda r: r["date"])[-2:]
    if len(last) == 2:
        a, b = last
        print(f"ratio k{a['kmer_sizes']} {a.get('feature_sets', 'default')} / k{b['kmer_sizes']} "
              f"{b.get('feature_sets', 'default')}: wall {a['wall_s'] / b['wall_s']:.2f}x, "
              f"CPU {a['cpu_s'] / b['cpu_s']:.2f}x, peak RSS {a['peak_rss_gib'] / b['peak_rss_gib']:.2f}x")


if __name__ == "__main__":
    main()
