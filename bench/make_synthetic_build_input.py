"""Synthetic input for the dataset-builder benchmark (issue 4): FASTA + GTF + prediction store of N genes.

Each synthetic gene replays one real multi-exon gene of the shared chr22 bundle
(``../shared/data/grch37_chr22_20-21Mb``): its body +- 5,000 nt of real flank is copied onto a
synthetic contig, its gene/transcript/exon lines are copied with shifted coordinates and unique
IDs, and its predictions are the original Keras SpliceAI outputs of the source gene
(``reference/keras_spliceai_outputs.npz``). SpliceAI reads exactly +-5,000 nt around each scored
base, so these scores are the ones the model would give on the synthetic contig.

Layout (deterministic: gene i replays source i mod 17, the sources in genomic order):

- contigs ``synth00001``, ``synth00002``, ... of ``--genes-per-contig`` genes each; on a contig the
  copied segments (body + 2 x 5,000 nt flank) lie back to back, so gene bodies never overlap;
- gene ``SYNG0000001`` (gene_name ``<source>_0000001``), transcript ``SYNT0000001``;
- ``OUT/n<N>/genome.fa`` (plain FASTA + ``.fai``), ``annotation.gtf``, ``predictions/`` (a
  :class:`meta_spliceai.predictions.PredictionStore`), ``info.json`` (written last: the folder is
  complete when it exists; a folder made with the same parameters is reused).

Usage:
  python bench/make_synthetic_build_input.py --n-genes 200 2000 20000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHR22 = ROOT.parent / "shared" / "data" / "grch37_chr22_20-21Mb"
DEFAULT_OUT = ROOT / "bench" / "_work" / "build_input"
FLANK = 5_000
LINE = 60
IDENTITY = {"base_model": "spliceai", "version": "keras-1.3.1-reference", "digest": "keras-npz", "precision": "float32"}
GENERATOR_VERSION = "1"

_ATTR = re.compile(r'(\w+) "([^"]*)"')


def _attrs(field: str) -> list[tuple[str, str]]:
    return _ATTR.findall(field)


def load_sources(bundle: Path) -> list[dict]:
    """The bundle's multi-exon genes in genomic order, with their GTF lines (1-based closed coordinates)."""
    genes: dict[str, dict] = {}
    for line in (bundle / "annotation.gtf").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        f = line.split("\t")
        gid = dict(_attrs(f[8]))["gene_id"]
        g = genes.setdefault(gid, {"gene_id": gid, "lines": [], "exons": 0})
        g["lines"].append(f)
        if f[2] == "gene":
            g.update(chrom=f[0], start=int(f[3]), end=int(f[4]), strand=f[6])
        g["exons"] += f[2] == "exon"
    out = [g for g in genes.values() if g["exons"] >= 2]
    return sorted(out, key=lambda g: (g["start"], g["gene_id"]))


def _rename(field: str, i: int, source: str) -> str:
    """Attributes with unique IDs for synthetic gene i (other attributes kept)."""
    new = {"gene_id": f"SYNG{i:07d}", "gene_name": f"{source}_{i:07d}", "transcript_id": f"SYNT{i:07d}"}
    return " ".join(f'{k} "{new.get(k, v)}";' for k, v in _attrs(field))


def generate(n: int, out: Path, genes_per_contig: int, bundle: Path = CHR22) -> dict:
    """Write the synthetic FASTA, GTF and prediction store of ``n`` genes into ``out``; returns the info."""
    import pysam

    from meta_spliceai.basemodel.store import PredictionStore

    params = {"generator": GENERATOR_VERSION, "n_genes": n, "genes_per_contig": genes_per_contig,
              "flank": FLANK, "bundle": bundle.name}
    info_path = out / "info.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("params") == params:
            print(f"{out}: up to date ({n} genes)", file=sys.stderr)
            return info
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    sources = load_sources(bundle)
    fa = pysam.FastaFile(str(bundle / "genome.fa.gz"))
    segs = {}
    for s in sources:  # body +- flank, in genome orientation; coordinates 1-based closed -> 0-based half-open
        seq = fa.fetch(s["chrom"], s["start"] - 1 - FLANK, s["end"] + FLANK).upper()
        assert len(seq) == s["end"] - s["start"] + 1 + 2 * FLANK, s["gene_id"]
        segs[s["gene_id"]] = seq
    z = np.load(bundle / "reference" / "keras_spliceai_outputs.npz")
    probs = {s["gene_id"]: z[s["gene_id"]] for s in sources}
    for s in sources:
        assert probs[s["gene_id"]].shape == (s["end"] - s["start"] + 1, 3), s["gene_id"]

    store = PredictionStore(out / "predictions", IDENTITY)
    n_contigs = -(-n // genes_per_contig)
    body_nt = 0
    with open(out / "genome.fa", "w") as fasta, open(out / "annotation.gtf", "w") as gtf:
        gtf.write(f"##description: {n} synthetic genes replaying {len(sources)} multi-exon genes of {bundle.name}\n")
        for c in range(n_contigs):
            contig = f"synth{c + 1:05d}"
            parts: list[str] = []
            offset = 0  # 0-based start of the next segment on the contig
            for i in range(c * genes_per_contig + 1, min(n, (c + 1) * genes_per_contig) + 1):
                s = sources[(i - 1) % len(sources)]
                shift = offset + FLANK + 1 - s["start"]  # source 1-based coordinate + shift = contig coordinate
                for f in s["lines"]:
                    row = [contig, "synthetic", f[2], str(int(f[3]) + shift), str(int(f[4]) + shift), *f[5:8],
                           _rename(f[8], i, s["gene_id"])]
                    gtf.write("\t".join(row) + "\n")
                store.write(f"SYNG{i:07d}", probs[s["gene_id"]], extra={"source_gene": s["gene_id"]})
                parts.append(segs[s["gene_id"]])
                offset += len(segs[s["gene_id"]])
                body_nt += s["end"] - s["start"] + 1
            seq = "".join(parts)
            fasta.write(f">{contig}\n")
            fasta.write("\n".join(seq[k:k + LINE] for k in range(0, len(seq), LINE)) + "\n")
    pysam.faidx(str(out / "genome.fa"))
    store_bytes = sum(f.stat().st_size for f in store.files())
    info = {
        "params": params,
        "sources": [s["gene_id"] for s in sources],
        "n_contigs": n_contigs,
        "body_nt": body_nt,
        "fasta_bytes": (out / "genome.fa").stat().st_size,
        "store_bytes": store_bytes,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    tmp = info_path.with_name(f".{info_path.name}.tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, info_path)
    print(f"{out}: {n} genes on {n_contigs} contigs, {body_nt:,} body nt, FASTA {info['fasta_bytes'] / 2**20:,.0f} MiB, "
          f"store {store_bytes / 2**20:,.0f} MiB, {info['seconds']} s", file=sys.stderr)
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-genes", type=int, nargs="+", default=[200, 2000, 20000])
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="writes OUT_DIR/n<N>/ per N")
    ap.add_argument("--genes-per-contig", type=int, default=200)
    args = ap.parse_args(argv)
    for n in args.n_genes:
        generate(n, args.out_dir / f"n{n}", args.genes_per_contig)


if __name__ == "__main__":
    main()
