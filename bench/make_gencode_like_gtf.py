"""Write a GENCODE-sized GTF (~3.4 M lines) for the annotation-parsing benchmark (issue 2).

The two shared GTFs (``../shared/data/*/annotation.gtf``) are replicated onto synthetic contigs
``synth1``, ``synth2``, ...: each copy gets its own 2-Mb slot on a contig (coordinates shifted so the
copy's region starts at the slot's start, 1-based closed like the input) and every gene_id /
transcript_id gets a per-copy tag before its version suffix (``ENSG00000226266.2`` ->
``ENSG00000226266_c17.2``), so genes and transcripts stay unique. The chr2 bundle brings the
GENCODE feature mix (gene/transcript/exon/CDS/UTR/start_codon/stop_codon). The output is
deterministic (same bytes on every run) and written atomically.

Usage: python bench/make_gencode_like_gtf.py [OUT.gtf] [--lines 3400000] [--copies-per-contig 40]
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "bench" / "_work" / "gencode_like.gtf"
SLOT = 2_000_000  # bases per copy on a synthetic contig (both shared regions are < 1.6 Mb)
_ID = re.compile(r'((?:gene_id|transcript_id) "[^"]*?)((?:\.\d+)?")')


def _templates() -> list[tuple[list[str], list[int], list[int], list[str]]]:
    """Per shared GTF: the data lines split into (prefix, start, end, rest-with-{tag}-slots)."""
    out = []
    for gtf in sorted(SHARED.glob("*/annotation.gtf")):
        lines = [ln for ln in gtf.read_text().splitlines() if ln and not ln.startswith("#")]
        fields = [ln.split("\t") for ln in lines]
        lo = min(int(f[3]) for f in fields)
        mids, starts, ends, attrs = [], [], [], []
        for f in fields:
            mids.append("\t".join(f[1:3]))
            starts.append(int(f[3]) - lo)
            ends.append(int(f[4]) - lo)
            # "{tag}" slot before the version suffix of every gene_id / transcript_id value
            attrs.append("\t".join(f[5:8]) + "\t" + _ID.sub(lambda m: m.group(1).replace("{", "{{").replace(
                "}", "}}") + "{tag}" + m.group(2), f[8].replace("{", "{{").replace("}", "}}")))
        out.append((mids, starts, ends, attrs))
    if not out:
        raise SystemExit(f"no shared GTFs under {SHARED}")
    return out


def write(out: Path, n_lines: int, copies_per_contig: int) -> int:
    """Write ~n_lines data lines to ``out``; returns the number written."""
    tpl = _templates()
    unit = sum(len(t[0]) for t in tpl)
    n_units = max(1, round(n_lines / unit))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    written = 0
    with open(tmp, "w", buffering=1 << 22) as fh:
        fh.write("##description: synthetic GENCODE-sized GTF from the shared bundles (meta-spliceai bench)\n"
                 "##format: gtf\n")
        copy = 0
        for u in range(n_units):
            contig = f"synth{u // copies_per_contig + 1}"
            for k, (mids, starts, ends, attrs) in enumerate(tpl):
                base = ((u % copies_per_contig) * len(tpl) + k) * SLOT + 1  # slot start, 1-based
                tag = f"_c{copy}"
                fh.write("".join(
                    f"{contig}\t{m}\t{s + base}\t{e + base}\t{a.format(tag=tag)}\n"
                    for m, s, e, a in zip(mids, starts, ends, attrs)
                ))
                written += len(mids)
                copy += 1
    os.replace(tmp, out)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--lines", type=int, default=3_400_000, help="approximate number of data lines")
    ap.add_argument("--copies-per-contig", type=int, default=40, help="replicas of the shared pair per contig")
    a = ap.parse_args()
    n = write(a.out, a.lines, a.copies_per_contig)
    print(f"{a.out}: {n:,} data lines, {a.out.stat().st_size / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
