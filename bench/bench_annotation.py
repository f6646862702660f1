"""Annotation-parsing benchmark (issue 2): ours vs pyranges 0.1.x and gtfparse 3.x on the same GTF.

Each parser runs in its own subprocess (fresh interpreter, so peak RSS is that parser's alone), one
after the other on the same file. Wall time is measured around the whole subprocess (interpreter
start + imports + parse) and, inside it, around the parse call alone; peak RSS is the child's
``ru_maxrss`` from ``os.wait4``, which also gives the child's CPU seconds (user + system) -- the
steadier figure on a shared machine, where wall time depends on what else runs (load is printed). The competitors need their own interpreter (``--competitor-python``,
e.g. a throw-away venv with ``pyranges==0.1.7 gtfparse>=3,<4``) so the project venv stays clean.

Usage:
  python bench/make_gencode_like_gtf.py                    # -> bench/_work/gencode_like.gtf
  python bench/bench_annotation.py --competitor-python /tmp/gtfvenv/bin/python
  # issue 31: the genome-wide GENCODE v19 GTF, today's strict parse and the whole `reference` command too
  python bench/bench_annotation.py ../shared/data/gencode_v19_hg19_all.gtf.gz --fasta ../shared/data/grch37_chr20/genome.fa.gz
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
DEFAULT_GTF = ROOT / "bench" / "_work" / "gencode_like.gtf"

# Child programs: parse argv[1], print one JSON line with the parse seconds and what came out.
_CHILD = {
    "meta_spliceai.parse_annotation": """
import json, sys, time
from meta_spliceai.reference.annotation import parse_annotation
t = time.perf_counter()
a = parse_annotation(sys.argv[1])
dt = time.perf_counter() - t
print(json.dumps({"parse_s": dt, "version": "", "out": {k: getattr(a, k).height for k in
      ("genes", "transcripts", "exons", "splice_sites")}}))
""",
    # today's refusal mode (issue 31 baseline): no splitting/dropping pass
    "meta_spliceai.parse_annotation(strict)": """
import json, sys, time
from meta_spliceai.reference.annotation import parse_annotation
t = time.perf_counter()
a = parse_annotation(sys.argv[1], strict=True)
dt = time.perf_counter() - t
print(json.dumps({"parse_s": dt, "version": "", "out": {k: getattr(a, k).height for k in
      ("genes", "transcripts", "exons", "splice_sites")}}))
""",
    # the whole `reference` command's work (parse, contig match, per-gene sequence checks), FASTA = argv[2]
    "meta_spliceai reference": """
import json, sys, time
from meta_spliceai.reference.report import reference
t = time.perf_counter()
r = reference(fasta=sys.argv[2], gtf=sys.argv[1])
dt = time.perf_counter() - t
print(json.dumps({"parse_s": dt, "version": "", "out": {"genes": r.n_genes, "transcripts": r.n_transcripts,
      **r.annotation_issues, "skipped_contigs": len(r.skipped_contigs)}}))
""",
    "pyranges.read_gtf": """
import json, sys, time
import pyranges
t = time.perf_counter()
gr = pyranges.read_gtf(sys.argv[1])
dt = time.perf_counter() - t
print(json.dumps({"parse_s": dt, "version": pyranges.__version__, "out": {"rows": len(gr), "cols": gr.df.shape[1]}}))
""",
    "gtfparse.read_gtf": """
import json, sys, time
from importlib.metadata import version
import gtfparse
t = time.perf_counter()
df = gtfparse.read_gtf(sys.argv[1])
dt = time.perf_counter() - t
print(json.dumps({"parse_s": dt, "version": version("gtfparse"), "out": {"rows": df.shape[0], "cols": df.shape[1]}}))
""",
}


def run_measured(python: str, name: str, gtf: Path, timeout: float, *extra: str) -> dict[str, object]:
    """Run one parser in a subprocess, reaped with ``os.wait4`` to get its own peak RSS and wall seconds."""
    env = dict(os.environ)
    if name.startswith("meta_spliceai"):
        env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    out_path = ROOT / "bench" / "_work" / f".{name.replace(' ', '_')}.out"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w") as out_fh, open(out_path.with_suffix(".err"), "w") as err_fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen([python, "-c", _CHILD[name], str(gtf), *extra], stdout=out_fh, stderr=err_fh,
                                env=env)
        deadline = t0 + timeout
        status = None
        while status is None:
            pid, st, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status = st
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, st, ru = os.wait4(proc.pid, 0)
                status = "timeout"
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    proc.returncode = 0  # reaped by wait4 already; keep Popen from waiting again
    res: dict[str, object] = {"name": name, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
                              "peak_rss_gib": ru.ru_maxrss / 2**20}  # ru_maxrss is in KiB on Linux
    if status == "timeout":
        res["status"] = f"timeout after {timeout:.0f} s"
        return res
    rc = os.waitstatus_to_exitcode(status)
    text = out_path.read_text().strip().splitlines()
    if rc != 0 or not text:
        err = out_path.with_suffix(".err").read_text().strip().splitlines()
        res["status"] = f"failed (exit {rc}): {err[-1] if err else ''}"
        return res
    res.update(json.loads(text[-1]))
    res["status"] = "ok"
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gtf", nargs="?", type=Path, default=DEFAULT_GTF)
    ap.add_argument("--python", default=sys.executable, help="interpreter with meta_spliceai's deps (ours)")
    ap.add_argument("--competitor-python", default=None,
                    help="interpreter with pyranges==0.1.7 and gtfparse 3.x (skip competitors if not given)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per parser before giving up")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--fasta", type=Path, default=None,
                    help="also time today's strict parse and the whole `reference` command against this FASTA")
    a = ap.parse_args()
    if not a.gtf.is_file():
        raise SystemExit(f"{a.gtf} not found: run bench/make_gencode_like_gtf.py first")
    import gzip

    n_lines = sum(1 for _ in (gzip.open if a.gtf.suffix == ".gz" else open)(a.gtf, "rb"))
    print(f"file: {a.gtf} ({a.gtf.stat().st_size / 2**20:,.0f} MiB, {n_lines:,} lines); "
          f"cpus={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    runs = [(a.python, "meta_spliceai.parse_annotation")]
    if a.fasta:
        runs += [(a.python, "meta_spliceai.parse_annotation(strict)"), (a.python, "meta_spliceai reference")]
    if a.competitor_python:
        runs += [(a.competitor_python, "pyranges.read_gtf"), (a.competitor_python, "gtfparse.read_gtf")]
    results = []
    for python, name in runs:
        r = run_measured(python, name, a.gtf, a.timeout, *([str(a.fasta)] if name.endswith("reference") else []))
        results.append(r)
        print(f"  {name}: {r['status']}, wall {r['wall_s']:.1f} s, cpu {r['cpu_s']:.1f} s, load "
              f"{os.getloadavg()[0]:.1f}, peak RSS {r['peak_rss_gib']:.2f} GiB, "
              f"{r.get('out', '')}", flush=True)
    ours = results[0]
    print("\n| parser | version | wall s (process) | parse s | CPU s | peak RSS GiB | wall vs ours | CPU vs ours "
          "| RSS vs ours | status |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        ratio_t = r["wall_s"] / ours["wall_s"]
        ratio_m = r["peak_rss_gib"] / ours["peak_rss_gib"]
        parse = f"{r['parse_s']:.1f}" if "parse_s" in r else "-"
        print(f"| `{r['name']}` | {r.get('version') or '-'} | {r['wall_s']:.1f} | {parse} | {r['cpu_s']:.1f} | "
              f"{r['peak_rss_gib']:.2f} | {ratio_t:.2f}x | {r['cpu_s'] / ours['cpu_s']:.2f}x | {ratio_m:.2f}x | "
              f"{r['status']} |")
    if a.json:
        a.json.write_text(json.dumps({"gtf": str(a.gtf), "lines": n_lines, "results": results}, indent=1))


if __name__ == "__main__":
    main()
