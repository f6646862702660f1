"""Variant scoring: the original SpliceAI CLI (Keras) vs ``meta-spliceai variants``, same VCF, same machine,
one run after the other; exactness of every INFO value and variants/s with each lever on and off.

    python bench/bench_variants.py --spliceai /path/to/throwaway-venv/bin/spliceai --work /tmp/bv \
        [--n 600] [--skip-spliceai EXPECTED.vcf] [--model MODEL_DIR] [--modes cone,no_cone,...]
    python bench/bench_variants.py --precomputed --work /tmp/bv [--n 300] [--genes 12]

``--precomputed``: the cost of ``variants --precomputed`` at 0 %, 50 % and 100 % coverage: the default run's
own output, bgzipped and tabix-indexed, cut to none (a file of other positions' records), every other and
every record of the VCF, supplies them; each run's output must be byte-identical to the run without it
(timed in the same process tree, one after the other); the ratio is against that run.

    python bench/bench_variants.py --work /tmp/bv --n 200 --modes gtf,gtf_model --model MODEL_DIR \
        --stores S_SPLICEAI [S_OPENSPLICEAI ...] --gtf GTF [--weights openspliceai=DIR] [--profile]

Our modes: ``cone`` (the default engine), ``no_cone`` (every alternate window a full pass, the reference
shared per gene), ``no_cone_no_shared`` (a reference and an alternate window per variant: SpliceAI's
arithmetic, batched); with ``--model`` also ``gtf`` and ``gtf_model``: ``-A`` the bundle's GTF without and
with ``--model MODEL_DIR --predictions STORE`` (the store of the VCF's genes is predicted first, not timed
in the mode), the cost of the corrected deltas.

The VCF (made here, seeded): ``--n`` records over protein-coding genes of the chr20 bundle's canonical
annotation (SpliceAI's own grch37 table covers them): SNVs (85 %) and small indels (15 %) drawn within
genes, near and far from exon boundaries. Peak RSS: the child's ``ru_maxrss``. Results: one JSON line
in ``bench/results/variants.jsonl`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pysam

ROOT = Path(__file__).resolve().parents[1]
CHR20 = ROOT.parent / "shared" / "data" / "grch37_chr20"


def make_vcf(path: Path, n: int, seed: int = 7, gtf: Path = CHR20 / "annotation.gtf",
             pool: set[str] | None = None, n_genes: int = 12) -> list[str]:
    """Write the VCF; returns the genes drawn (``n_genes`` multi-exon genes of ``gtf``, among ``pool`` when
    given: 12 makes a dense VCF, a cluster of records per exon; a few hundred a sparse one, as a genome's)."""
    rng = random.Random(seed)
    fa = pysam.FastaFile(str(CHR20 / "genome.fa.gz"))
    genes: dict[str, list[tuple[int, int]]] = {}
    for line in open(gtf):
        f = line.split("\t")
        if len(f) > 8 and f[2] == "exon":
            genes.setdefault(f[8].split('gene_id "')[1].split('"')[0], []).append((int(f[3]), int(f[4])))
    multi = sorted(g for g, ex in genes.items() if len(ex) >= 8 and (pool is None or g in pool))
    chosen = rng.sample(multi, min(n_genes, len(multi)))
    recs = set()
    while len(recs) < n:
        ex = genes[rng.choice(chosen)]
        s, e = rng.choice(ex)
        p = rng.choice([s, e]) + int(rng.triangular(-400, 400, 0))
        r = fa.fetch("20", p - 1, p).upper()
        if r not in "ACGT":
            continue
        u = rng.random()
        if u < 0.85:
            recs.add((p, r, rng.choice([x for x in "ACGT" if x != r])))
        elif u < 0.925:
            recs.add((p, r, r + "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 10)))))
        else:
            ref = fa.fetch("20", p - 1, p - 1 + rng.randint(2, 12)).upper()
            if "N" not in ref:
                recs.add((p, ref, ref[0]))
    lines = ["##fileformat=VCFv4.2", f"##contig=<ID=20,length={fa.get_reference_length('20')}>",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"20\t{p}\t.\t{r}\t{a}\t.\t.\t." for p, r, a in sorted(recs)]
    path.write_text("\n".join(lines) + "\n")
    return chosen


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(wall s, peak RSS GiB) of one child process (its own ``ru_maxrss``, from ``os.wait4``)."""
    t0 = time.perf_counter()
    if env is None and cmd[1:3] == ["-m", "meta_spliceai"]:  # this checkout's code, whatever is installed
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            last = [ln for ln in err.read().decode(errors="replace").splitlines() if ln.strip()][-1:]
            raise SystemExit(f"{' '.join(cmd[:4])} failed (rc {proc.returncode}): {last[0] if last else ''}")
    return wall, usage.ru_maxrss / 2**20


def info(path: Path) -> dict[tuple, str]:
    out = {}
    for rec in pysam.VariantFile(str(path)):
        out[(rec.pos, rec.ref, rec.alts)] = ",".join(rec.info["SpliceAI"]) if "SpliceAI" in rec.info else ""
    return out


def compare(a: Path, b: Path) -> dict[str, object]:
    """Field-by-field agreement of two annotated VCFs."""
    x, y = info(a), info(b)
    fields = same = off01 = 0
    worst = []
    for k in x:
        for ea, eb in zip(x[k].split(","), y.get(k, "").split(",")):
            for fa, fb in zip(ea.split("|")[2:], eb.split("|")[2:]):
                fields += 1
                if fa == fb:
                    same += 1
                elif fa not in "." and fb not in "." and "." in fa and abs(float(fa) - float(fb)) <= 0.0100001:
                    off01 += 1
                    worst.append((k[0], fa, fb))
    return {"records": len(x), "fields": fields, "identical": same, "off_by_0.01": off01, "differ": fields - same - off01,
            "examples": worst[:10], "records_equal": x == y}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spliceai", help="spliceai command of a throw-away venv (tensorflow-cpu spliceai setuptools)")
    ap.add_argument("--skip-spliceai", type=Path, help="its output from an earlier run (then its time is not measured)")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--model", type=Path, help="a train output folder: also time the corrected-delta mode")
    ap.add_argument("--modes", help="comma-separated subset of our modes (default: all)")
    ap.add_argument("--precomputed", action="store_true", help="time --precomputed at 0/50/100 %% coverage instead")
    ap.add_argument("--stores", type=Path, nargs="+", help="with --model: its prediction stores (card order) instead "
                    "of predicting one; the VCF's genes are drawn from the first store's, -A is --gtf")
    ap.add_argument("--gtf", type=Path, help="the annotation the --stores were made with")
    ap.add_argument("--weights", nargs="+", help="with --stores: --weights of variants (openspliceai=DIR)")
    ap.add_argument("--profile", action="store_true", help="gtf_model under cProfile (its .prof beside the VCFs)")
    ap.add_argument("--genes", type=int, default=12, help="genes the VCF's records are drawn over (12: dense, "
                    "several records per exon; 200: sparse, as a genome-wide VCF)")
    a = ap.parse_args()
    if a.precomputed:
        precomputed(a.work, a.n, a.genes)
        return
    a.work.mkdir(parents=True, exist_ok=True)
    vcf = a.work / "chr20_bench.vcf"
    # genes every store holds (a store may hold more genes than the others)
    pool = set.intersection(*({p.stem for p in s.glob("*.parquet")} for s in a.stores)) if a.stores else None
    genes = make_vcf(vcf, a.n, gtf=a.gtf or CHR20 / "annotation.gtf", pool=pool, n_genes=a.genes)
    fa = a.work / "chr20.fa"
    if not fa.is_file():
        with gzip.open(CHR20 / "genome.fa.gz", "rb") as src, open(fa, "wb") as dst:
            shutil.copyfileobj(src, dst)
    res: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M"), "records": a.n, "load": os.getloadavg()}
    ref_out = a.work / "spliceai.vcf"
    if a.skip_spliceai:
        ref_out = a.skip_spliceai
    elif a.spliceai:
        wall, rss = timed([a.spliceai, "-I", str(vcf), "-O", str(ref_out), "-R", str(fa), "-A", "grch37"])
        res["spliceai"] = {"s": round(wall, 1), "variants_per_s": round(a.n / wall, 3), "peak_rss_gib": round(rss, 2)}
    ours = [sys.executable, "-m", "meta_spliceai", "variants", "-I", str(vcf), "-R", str(CHR20 / "genome.fa.gz")]
    modes = {"cone": ["-A", "grch37"], "no_cone": ["-A", "grch37", "--no-cone"],
             "no_cone_no_shared": ["-A", "grch37", "--no-cone", "--no-shared-reference"]}
    gtf = str(a.gtf or CHR20 / "annotation.gtf")
    if a.model and a.stores:
        modes["gtf"] = ["-A", gtf]
        modes["gtf_model"] = ["-A", gtf, "--model", str(a.model), "--predictions", *map(str, a.stores),
                              *(["--weights", *a.weights] if a.weights else [])]
    elif a.model:
        store = a.work / "store"
        (a.work / "genes.txt").write_text("\n".join(genes) + "\n")
        wall, _ = timed([sys.executable, "-m", "meta_spliceai", "predict", "--fasta", str(CHR20 / "genome.fa.gz"),
                         "--gtf", gtf, "--gene-ids-file", str(a.work / "genes.txt"), "--out", str(store)])
        res["predict_store_s"] = round(wall, 1)
        modes["gtf"] = ["-A", gtf]
        modes["gtf_model"] = ["-A", gtf, "--model", str(a.model), "--predictions", str(store)]
    chosen = a.modes.split(",") if a.modes else list(modes)
    for name in chosen:
        out = a.work / f"ours_{name}.vcf"
        prof = ["-m", "cProfile", "-o", str(a.work / f"{name}.prof")] if a.profile and name == "gtf_model" else []
        wall, rss = timed([ours[0], *prof, *ours[1:], "-O", str(out), *modes[name]])
        row = {"s": round(wall, 1), "variants_per_s": round(a.n / wall, 3), "peak_rss_gib": round(rss, 2)}
        if not name.startswith("gtf") and ref_out.is_file():
            row["vs_spliceai"] = compare(ref_out, out)
            if "spliceai" in res:
                row["speedup"] = round(res["spliceai"]["s"] / wall, 2)  # type: ignore[index]
        res[name] = row
        print(name, json.dumps(row), flush=True)
    if "gtf" in res and "gtf_model" in res:
        res["model_cost"] = round(res["gtf_model"]["s"] / res["gtf"]["s"], 2)  # type: ignore[index]
    record(res, "variants.jsonl")


def record(res: dict, name: str) -> None:
    """Print a run's figures and append them as one JSON line to ``bench/results/NAME``."""
    print(json.dumps(res, indent=1))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    with open(ROOT / "bench" / "results" / name, "a") as fh:
        fh.write(json.dumps(res) + "\n")


def _bgzip(header: list[str], records: list[str], path: Path) -> Path:
    path.write_text("".join(header + records))
    return Path(pysam.tabix_index(str(path), preset="vcf", force=True))


def precomputed(work: Path, n: int, n_genes: int = 12) -> None:
    """``variants --precomputed`` at 0, 50 and 100 % coverage beside the run without it; outputs byte-compared."""
    work.mkdir(parents=True, exist_ok=True)
    vcf = work / "chr20_bench.vcf"
    make_vcf(vcf, n, n_genes=n_genes)
    ours = [sys.executable, "-m", "meta_spliceai", "variants", "-I", str(vcf), "-R", str(CHR20 / "genome.fa.gz"),
            "-A", "grch37"]
    res: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M"), "records": n, "load": os.getloadavg(),
                              "bench": "precomputed", "genes": n_genes}
    full = work / "full.vcf"
    wall, rss = timed([*ours, "-O", str(full)])
    res["without"] = {"s": round(wall, 1), "variants_per_s": round(n / wall, 3), "peak_rss_gib": round(rss, 2)}
    print("without", json.dumps(res["without"]), flush=True)
    lines = full.read_text().splitlines(keepends=True)
    header, records = [x for x in lines if x.startswith("#")], [x for x in lines if not x.startswith("#")]
    # 0 %: records of the same file shifted to positions the VCF does not hold (the lookups all miss)
    shifted = [x.split("\t", 2)[0] + "\t" + str(int(x.split("\t", 2)[1]) + 1) + "\t"
               + x.split("\t", 2)[2] for x in records]
    held = {x.split("\t", 2)[1] for x in records}
    files = {0: [x for x in shifted if x.split("\t", 2)[1] not in held], 50: records[::2], 100: records}
    for pct, recs in files.items():
        pre = _bgzip(header, recs, work / f"pre{pct}.vcf")
        out = work / f"pre{pct}_out.vcf"
        wall, rss = timed([*ours, "-O", str(out), "--precomputed", str(pre)])
        row = {"s": round(wall, 1), "variants_per_s": round(n / wall, 3), "peak_rss_gib": round(rss, 2),
               "speedup": round(res["without"]["s"] / wall, 2),  # type: ignore[index]
               "byte_identical": out.read_bytes() == full.read_bytes()}
        res[f"coverage_{pct}"] = row
        print(f"coverage {pct} %", json.dumps(row), flush=True)
    record(res, "variants.jsonl")


if __name__ == "__main__":
    main()
