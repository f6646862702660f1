"""Make the variant-scoring fixtures: VCFs drawn from the shared bundles, scored by the REAL SpliceAI CLI.

Run by hand (never in CI), with a throw-away venv holding ``tensorflow-cpu spliceai setuptools`` and
the numpy-2 shim of ../shared/tools as its ``sitecustomize.py``:

    python tests/data/vcf/make_fixtures.py --spliceai /path/to/venv/bin/spliceai --work /tmp/fx

Writes ``chr22.vcf`` (SNVs at, near and far from annotated exon boundaries on both strands, insertions,
deletions, multi-allelic records and every skip case), ``chr2.vcf`` + ``chr2_table.txt`` (a SpliceAI-format
table made from the chr2 bundle's multi-transcript GENCODE GTF by the rule of
``meta_spliceai.variants.transcripts.from_annotation``), and SpliceAI's outputs ``*.D{d}.M{m}.expected.vcf``.
Every random choice is seeded.
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
import subprocess
from pathlib import Path

import pysam

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[3] / "shared" / "data"
RUNS = {"chr22": [(50, 0), (50, 1), (500, 1)], "chr2": [(50, 0)]}


def exons(gtf: Path) -> list[tuple[str, int, int, str, str]]:
    out = []
    for line in open(gtf):
        f = line.rstrip("\n").split("\t")
        if len(f) > 8 and f[2] == "exon":
            gid = f[8].split('gene_id "')[1].split('"')[0]
            out.append((f[0], int(f[3]), int(f[4]), f[6], gid))
    return out


def records(fa: pysam.FastaFile, chrom: str, ex: list, rng: random.Random, n_sites: int) -> list[tuple[int, str, str]]:
    """(pos, ref, alt) near annotated exon boundaries: SNVs at offsets 0..50, insertions, deletions."""
    def base(p: int) -> str:
        return fa.fetch(chrom, p - 1, p).upper()

    bounds = sorted({b for _, s, e, _, _ in ex for b in (s, e)})
    recs = []
    for b in rng.sample(bounds, min(n_sites, len(bounds))):
        for off in rng.sample([0, 1, -1, 2, -2, 5, -8, 20, -35, 50, 300, -1200], 3):
            p = b + off
            r = base(p)
            if r not in "ACGT":
                continue
            recs.append((p, r, rng.choice([x for x in "ACGT" if x != r])))
        p = b + rng.randint(-10, 10)
        r = base(p)
        if r in "ACGT":
            recs.append((p, r, r + "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 12)))))  # insertion
        p = b + rng.randint(-15, 5)
        n = rng.choice([2, 3, 5, 12, 40])
        ref = fa.fetch(chrom, p - 1, p - 1 + n).upper()
        if "N" not in ref:
            recs.append((p, ref, ref[0]))  # deletion of n - 1 nt
    return recs


def write_vcf(path: Path, chrom: str, length: int, recs: list[tuple[int, str, str, str]]) -> None:
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID={chrom},length={length}>",
             '##INFO=<ID=NOTE,Number=1,Type=String,Description="what the record tests">',
             '##INFO=<ID=END,Number=1,Type=Integer,Description="end of a symbolic allele">',
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for p, r, a, note in sorted(recs, key=lambda x: x[0]):
        lines.append(f"{chrom}\t{p}\t.\t{r}\t{a}\t.\t.\tNOTE={note}")
    path.write_text("\n".join(lines) + "\n")


def chr22(rng: random.Random) -> None:
    bundle = SHARED / "grch37_chr22_20-21Mb"
    fa = pysam.FastaFile(str(bundle / "genome.fa.gz"))
    ex = exons(bundle / "annotation.gtf")
    recs = [(p, r, a, "site") for p, r, a in records(fa, "22", ex, rng, 28)]
    s = ex[0][1]
    b = fa.fetch("22", s + 99, s + 100).upper()
    other = [x for x in "ACGT" if x != b]
    recs += [
        (s + 100, b, f"{other[0]},{other[1]}", "multi_allelic"),
        (s + 100, b, f"{other[0]},*", "star_allele"),
        (s + 100, b, "<DEL>", "symbolic"),
        (s + 100, b, ".", "no_alt"),
        (s + 101, "ACGTAC", "A", "ref_mismatch"),
        (s + 102, b.lower(), other[0], "lowercase_ref"),
        (s + 103, fa.fetch("22", s + 102, s + 105).upper(), "GT", "complex"),
        (s + 110, fa.fetch("22", s + 109, s + 220).upper(), fa.fetch("22", s + 109, s + 110).upper(), "ref_too_long"),
        (19_000_000, fa.fetch("22", 18_999_999, 19_000_000).upper() or "N", "A", "no_gene"),
    ]
    # the two ends of transcripts (N padding of the window) and a variant in the last 5 kb of the contig
    for _, s2, e2, strand, _ in ex[:: max(1, len(ex) // 6)][:6]:
        for p in (s2 + 3, e2 - 3):
            r = fa.fetch("22", p - 1, p).upper()
            if r in "ACGT":
                recs.append((p, r, "A" if r != "A" else "C", "tx_edge"))
    write_vcf(HERE / "chr22.vcf", "22", fa.get_reference_length("22"), recs)


def chr2(rng: random.Random) -> None:
    bundle = SHARED / "grch37_chr2_160-162Mb"
    gtf = bundle / "annotation.gtf"
    from meta_spliceai.variants.transcripts import from_annotation

    t = from_annotation(gtf)
    rows = ["#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END"]
    for i in range(len(t)):
        b = ",".join(str(int(x) - 1) for x in t.boundaries[i]) + ","  # as starts (0-based) ...
        e = ",".join(str(int(x)) for x in t.boundaries[i]) + ","  # ... and as ends: the union either way
        rows.append(f"{t.names[i]}\t{t.chroms[i]}\t{t.strands[i]}\t{t.tx_starts[i] - 1}\t{t.tx_ends[i]}\t{b}\t{e}")
    (HERE / "chr2_table.txt").write_text("\n".join(rows) + "\n")
    fa = pysam.FastaFile(str(bundle / "genome.fa.gz"))
    recs = [(p, r, a, "site") for p, r, a in records(fa, "chr2", exons(gtf), rng, 10)]
    write_vcf(HERE / "chr2.vcf", "chr2", fa.get_reference_length("chr2"), recs)


def run(spliceai: str, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    for name, bundle, ann in (("chr22", "grch37_chr22_20-21Mb", "grch37"), ("chr2", "grch37_chr2_160-162Mb", str(HERE / "chr2_table.txt"))):
        fa = work / f"{name}.fa"
        if not fa.is_file():
            with gzip.open(SHARED / bundle / "genome.fa.gz", "rb") as src, open(fa, "wb") as dst:
                shutil.copyfileobj(src, dst)
        for d, m in RUNS[name]:
            out = HERE / f"{name}.D{d}.M{m}.expected.vcf"
            subprocess.run([spliceai, "-I", str(HERE / f"{name}.vcf"), "-O", str(out), "-R", str(fa), "-A", ann,
                            "-D", str(d), "-M", str(m)], check=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spliceai", required=True, help="the spliceai command of the throw-away venv")
    ap.add_argument("--work", type=Path, required=True, help="folder for the uncompressed FASTAs")
    a = ap.parse_args()
    chr22(random.Random(20))
    chr2(random.Random(2))
    run(a.spliceai, a.work)
