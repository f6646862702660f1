"""``predict --sequences`` beside ``predict`` on genes: the same nucleotides, same machine, one run after the other.

    python bench/bench_sequences.py --work /tmp/bs [--genes 6]

The first ``--genes`` genes of the chr22 bundle (annotation order) are scored twice, each as one whole
``meta-spliceai`` process: ``predict --genes …`` (each body with 5,000 nt of real genome on each side) and
``predict --sequences`` on a FASTA of the same bodies (transcription orientation, each padded with 5,000 N).
The same nucleotides go through the model, so nt/s should match; the difference is the I/O and the model
load. Results: one JSON line in ``bench/results/sequences.jsonl`` and the figures on stdout.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_variants import record  # the bench folder is the script's own

ROOT = Path(__file__).resolve().parents[1]
CHR22 = ROOT.parent / "shared" / "data" / "grch37_chr22_20-21Mb"


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--genes", type=int, default=6)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    from meta_spliceai.reference.annotation import load_annotation
    from meta_spliceai.reference.genome import Genome, oriented_sequence

    genes = load_annotation(CHR22 / "annotation.gtf").genes.head(a.genes)
    genome = Genome(CHR22 / "genome.fa.gz")
    fa = a.work / "bodies.fa"
    with open(fa, "w") as fh:
        for g in genes.iter_rows(named=True):
            fh.write(f">{g['gene_id']}\n{oriented_sequence(genome, g['chrom'], g['start'], g['end'], g['strand'])}\n")
    nt = int((genes["end"] - genes["start"] + 1).sum())
    ms = [sys.executable, "-m", "meta_spliceai", "predict"]
    res: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M"), "genes": a.genes, "nt": nt, "load": os.getloadavg()}
    store = a.work / "store"
    if store.exists():
        subprocess.run(["rm", "-rf", str(store)], check=True)
    s = timed([*ms, "--fasta", str(CHR22 / "genome.fa.gz"), "--gtf", str(CHR22 / "annotation.gtf"),
               "--genes", *genes["gene_id"].to_list(), "--out", str(store), "--device", "cpu"])
    res["genes_run"] = {"s": round(s, 1), "nt_per_s": round(nt / s)}
    s2 = timed([*ms, "--sequences", str(fa), "-o", str(a.work / "seqs.parquet"), "--device", "cpu"])
    res["sequences_run"] = {"s": round(s2, 1), "nt_per_s": round(nt / s2)}
    res["ratio_sequences_vs_genes"] = round(s / s2, 3)
    record(res, "sequences.jsonl")


if __name__ == "__main__":
    main()
