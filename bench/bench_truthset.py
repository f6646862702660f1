"""Variant deltas on experimentally labelled variants: AUROC and average precision of the maximum delta
over the four types (and the genes), per method, with paired bootstrap intervals.

    python bench/bench_truthset.py --work /tmp/truth [--openspliceai DIR] [--cispliceai] [--model MODEL_DIR \
        --predictions STORE [STORE ...]] [--boot 2000] [--seed 0] [-D 50]

Variants: ``../shared/data/truthsets/chr20_splice_variants.tsv`` (853 chr20 SNVs of the GRCh37 bundle,
labels and sources in its README). Methods, each scored on the same variants:

- ``SpliceAI= (grch37)``: the ``SpliceAI`` INFO key of ``meta-spliceai variants -A grch37 -D 50`` as
  written (two decimals); the README's check (AUROC 0.87, AP 0.34);
- per base model (``spliceai``, ``openspliceai`` with ``--openspliceai DIR``, ``pangolin`` with ``--pangolin DIR``
  (its delta: the largest |change| of a tissue's P(splice site)), ...): its own delta, ``-A``
  the bundle's GENCODE GTF (the genes the prediction stores hold), not rounded;
- ``mean``: the delta of the site models' mean tracks (Pangolin not in it) (reference and alternate averaged, then the delta);
- ``MetaSpliceAI``: the deltas of the meta-model's corrected tracks (``--model`` with its prediction
  store(s), :class:`meta_spliceai.variants.corrected.MetaScorer`), only where the store holds the gene.

A variant no gene holds scores 0 (SpliceAI writes no entry). Intervals: ``--boot`` resamples of the
variants (seeded), the *same* resample for every method, so the differences are paired; a resample
without a positive is drawn again. The meta-model's training genes (``split.tsv`` of the model folder:
train and valid) are not held out: the table is given for every variant and for the held-out ones.
Results: one JSON line in ``bench/results/truthset.jsonl`` and Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from meta_spliceai.basemodel.cone import ConeEngine  # noqa: E402
from meta_spliceai.basemodel.ensemble import load_base_model  # noqa: E402
from meta_spliceai.config import BASE_MODEL_OUTPUTS  # noqa: E402
from meta_spliceai.dataset.schema import is_site_model  # noqa: E402
from meta_spliceai.reference.genome import Genome  # noqa: E402
from meta_spliceai.variants.deltas import ACCEPTOR, DONOR, Record, align_alt, cone_tracks, plan_records  # noqa: E402
from meta_spliceai.variants.transcripts import load_transcripts  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
CHR20 = SHARED / "grch37_chr20"
TRUTH = SHARED / "truthsets" / "chr20_splice_variants.tsv"
PANGOLIN_COLUMNS = BASE_MODEL_OUTPUTS["pangolin"]
PANGOLIN_P = [i for i, c in enumerate(PANGOLIN_COLUMNS) if c.endswith("_p")]  # each tissue's P(splice site)


def max_delta(ref: np.ndarray, alt: np.ndarray) -> float:
    """The largest of DS_AG, DS_AL, DS_DG, DS_DL of aligned (cov, 3) tracks (``-M 0``); Pangolin's (cov, 8):
    the largest |change| of any tissue's P(splice site) (its columns ``{tissue}_p``)."""
    if ref.shape[1] == len(PANGOLIN_COLUMNS):
        return float(np.abs(alt[:, PANGOLIN_P] - ref[:, PANGOLIN_P]).max())
    d = alt[:, [ACCEPTOR, DONOR]] - ref[:, [ACCEPTOR, DONOR]]
    return float(np.abs(d).max())


def model_tracks(records: list[Record], table, genome: Genome, name: str, weights: Path | None,  # noqa: ANN001
                 distance: int, cache: Path) -> list[tuple]:
    """Per job of the plan: (record index, gene index, reference track, aligned alternate track); kept in
    ``cache`` (an .npz) and read from it when it is there for the same records."""
    plan, _ = plan_records(records, table, genome, distance)
    key = np.array([[j.record, j.gene] for j in plan.jobs], dtype=np.int64).reshape(-1, 2)
    if cache.is_file():
        z = np.load(cache)
        if np.array_equal(z["key"], key):
            return [(int(r), int(g), x, y) for (r, g), x, y in zip(key, z["ref"], z["alt"])]
    model = load_base_model(name, weights=weights, device="cpu")  # type: ignore[arg-type]
    cone_tracks(plan, records, table, genome, ConeEngine(model.members, groups=model.groups), distance=distance)
    cov = 2 * distance + 1
    out = []
    for job in plan.jobs:
        rec = records[job.record]
        alt = rec.alts[job.allele]  # type: ignore[index]
        out.append((job.record, job.gene, job.ref_track, align_alt(job.alt_track, cov, len(rec.ref), len(alt))))
    np.savez(cache, key=key, ref=np.stack([o[2] for o in out]), alt=np.stack([o[3] for o in out]))
    return out


def per_record(n: int, jobs: list[tuple[int, float]], missing: float = 0.0) -> np.ndarray:
    """Maximum over each record's jobs (``missing`` where a record has none)."""
    out = np.full(n, -np.inf)
    for r, v in jobs:
        out[r] = max(out[r], v)
    out[np.isneginf(out)] = missing
    return out


def spliceai_key(records_tsv: pl.DataFrame, work: Path, distance: int) -> np.ndarray:
    """The maximum DS of the ``SpliceAI`` INFO key of ``variants -A grch37`` (0 where no entry)."""
    import pysam

    from meta_spliceai.variants.vcf import variants

    vcf = work / "truth.vcf"
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=20,length=63025520>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    lines += [f"{r['chrom']}\t{r['pos']}\t{r['id']}\t{r['ref']}\t{r['alt']}\t.\t.\t." for r in records_tsv.iter_rows(named=True)]
    text = "\n".join(lines) + "\n"
    if not vcf.is_file() or vcf.read_text() != text:
        vcf.write_text(text)
    out = work / "truth.spliceai.vcf"
    if not out.is_file() or out.stat().st_mtime < vcf.stat().st_mtime:  # else an earlier run's, of the same records
        variants(input=vcf, output=out, reference=CHR20 / "genome.fa.gz", annotation="grch37", distance=distance,
                 mask=0, progress=False)
    best = {}
    for rec in pysam.VariantFile(str(out)):
        v = 0.0
        for e in rec.info.get("SpliceAI", ()):
            v = max(v, *(float(x) for x in e.split("|")[2:6]))
        best[rec.id] = v
    return np.array([best.get(i, 0.0) for i in records_tsv["id"]])


def bootstrap(y: np.ndarray, scores: dict[str, np.ndarray], boot: int, seed: int) -> dict[str, dict]:
    """AUROC/AP per method with 95 % percentile intervals, and every method's paired difference to each other."""
    rng = np.random.default_rng(seed)
    names = list(scores)
    stats = {m: {"auroc": [], "ap": []} for m in names}
    n = len(y)
    k = 0
    while k < boot:
        i = rng.integers(0, n, n)
        if y[i].sum() == 0 or y[i].sum() == n:
            continue
        k += 1
        for m in names:
            stats[m]["auroc"].append(roc_auc_score(y[i], scores[m][i]))
            stats[m]["ap"].append(average_precision_score(y[i], scores[m][i]))
    res: dict[str, dict] = {}
    for m in names:
        res[m] = {"auroc": float(roc_auc_score(y, scores[m])), "ap": float(average_precision_score(y, scores[m]))}
        for met in ("auroc", "ap"):
            res[m][f"{met}_ci"] = [float(x) for x in np.percentile(stats[m][met], [2.5, 97.5])]
            for o in names:
                if o != m:
                    d = np.array(stats[m][met]) - np.array(stats[o][met])
                    res[m][f"{met}_minus_{o}"] = [res[m][met] - float(
                        roc_auc_score(y, scores[o]) if met == "auroc" else average_precision_score(y, scores[o])),
                        *[float(x) for x in np.percentile(d, [2.5, 97.5])]]
    return res


def table(title: str, y: np.ndarray, res: dict[str, dict], ref: str) -> str:
    rows = [f"**{title}**: {len(y)} variants, {int(y.sum())} positive", "",
            f"| method | AUROC [95% CI] | AP [95% CI] | Δ AUROC vs {ref} [95% CI] | Δ AP vs {ref} [95% CI] |",
            "|---|---|---|---|---|"]
    for m, r in res.items():
        def d(met: str) -> str:
            if m == ref:
                return ""
            v, lo, hi = r[f"{met}_minus_{ref}"]
            return f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        rows.append(f"| {m} | {r['auroc']:.3f} [{r['auroc_ci'][0]:.3f}, {r['auroc_ci'][1]:.3f}] | {r['ap']:.3f} "
                    f"[{r['ap_ci'][0]:.3f}, {r['ap_ci'][1]:.3f}] | {d('auroc')} | {d('ap')} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--openspliceai", type=Path, help="OpenSpliceAI 10,000-nt checkpoints folder")
    ap.add_argument("--cispliceai", action="store_true", help="also CI-SpliceAI (the installed cispliceai package)")
    ap.add_argument("--pangolin", type=Path, help="also Pangolin: the folder of its 12 networks")
    ap.add_argument("--model", type=Path, help="a train output folder: also the MetaSpliceAI deltas")
    ap.add_argument("--predictions", type=Path, nargs="+", help="its prediction store(s), in card order")
    ap.add_argument("--gtf", type=Path, default=CHR20 / "annotation_gencode_v19.gtf")
    ap.add_argument("-D", dest="distance", type=int, default=50)
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only-store-genes", action="store_true",
                    help="only the variants of genes every --predictions store holds (those MetaSpliceAI scores)")
    a = ap.parse_args()
    t0 = time.perf_counter()
    tsv = pl.read_csv(TRUTH, separator="\t", schema_overrides={"chrom": pl.Utf8})
    records = [Record(chrom=r["chrom"], pos=r["pos"], ref=r["ref"], alts=(r["alt"],)) for r in tsv.iter_rows(named=True)]
    genome = Genome(CHR20 / "genome.fa.gz")
    table_ = load_transcripts(str(a.gtf))
    tag, full, keep = "all", tsv, None
    (a.work / "all").mkdir(parents=True, exist_ok=True)
    if a.only_store_genes:
        held_genes = set.intersection(*({p.stem for p in s.glob("*.parquet")} for s in a.predictions))
        keep = [i for i, r in enumerate(records) if any(str(table_.gene_ids[g]) in held_genes
                                                         for g in table_.genes_at(r.chrom, r.pos))]
        tsv, records, tag = tsv[keep], [records[i] for i in keep], "store"
    y = tsv["label"].to_numpy().astype(int)
    n = len(records)
    scores: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    t = time.perf_counter()
    key = spliceai_key(full, a.work / "all", a.distance)  # every record once (cached), then the subset
    scores["SpliceAI= (grch37)"] = key[keep] if keep is not None else key
    timings["SpliceAI= (grch37)"] = time.perf_counter() - t
    bases = ([("spliceai", None)] + ([("openspliceai", a.openspliceai)] if a.openspliceai else [])
             + ([("cispliceai", None)] if a.cispliceai else []) + ([("pangolin", a.pangolin)] if a.pangolin else []))
    tracks = {}
    for name, w in bases:
        t = time.perf_counter()
        tracks[name] = model_tracks(records, table_, genome, name, w, a.distance,
                                    a.work / f"tracks_{name}_D{a.distance}_{tag}.npz")
        timings[name] = time.perf_counter() - t
        scores[name] = per_record(n, [(r, max_delta(x, z)) for r, _, x, z in tracks[name]])
    sites = [(m, w) for m, w in bases if is_site_model(m)]  # the mean of the site models (Pangolin: no donor/acceptor)
    if len(sites) > 1:
        first = tracks[sites[0][0]]
        mean = []
        for k, (r, g, _, _) in enumerate(first):
            x = np.mean([tracks[m][k][2] for m, _ in sites], axis=0)
            z = np.mean([tracks[m][k][3] for m, _ in sites], axis=0)
            mean.append((r, max_delta(x, z)))
        scores["mean of " + "+".join(m for m, _ in sites)] = per_record(n, mean)
    held = np.ones(n, dtype=bool)
    have_meta = np.ones(n, dtype=bool)
    if a.model:
        from meta_spliceai.variants.corrected import MetaScorer

        t = time.perf_counter()
        from meta_spliceai.metamodel.card import card_base_models, load_card

        card_models = [m["base_model"] for m in card_base_models(load_card(a.model).card)]
        given = {"openspliceai": a.openspliceai, "pangolin": a.pangolin}
        meta = MetaScorer.open(a.model, a.predictions, genome, table_, str(a.gtf),
                               {m: w for m, w in given.items() if w and m in card_models} or None)
        order = [m["base_model"] for m in meta.identities]
        missing = sorted(set(order) - set(tracks))
        if missing:
            raise SystemExit(f"the card's base models {missing} are not scored here (give their weights)")
        todo = [(g, records[r].pos, records[r].ref, records[r].alts[0], [tracks[m][k][2:] for m in order])
                for k, (r, g, _, _) in enumerate(tracks[order[0]])]
        fixed = meta.correct_jobs(table_, todo, a.distance)
        got = [(tracks[order[0]][k][0], max_delta(*c)) for k, c in enumerate(fixed) if c is not None]
        timings["MetaSpliceAI"] = time.perf_counter() - t
        scores["MetaSpliceAI"] = per_record(n, got, missing=np.nan)
        have_meta = ~np.isnan(scores["MetaSpliceAI"])
        split = pl.read_csv(a.model / "split.tsv", separator="\t")
        seen = set(split.filter(pl.col("part").is_in(["train", "valid"]))["gene_id"].to_list())
        seen_rec = {r for r, g, _, _ in tracks["spliceai"] if str(table_.gene_ids[g]) in seen}
        held = np.array([i not in seen_rec for i in range(n)])
    res: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M"), "records": n, "positives": int(y.sum()),
                              "distance": a.distance, "boot": a.boot, "seed": a.seed, "load": os.getloadavg(),
                              "model": str(a.model), "seconds": {k: round(v, 1) for k, v in timings.items()}}
    out = []
    no_meta = {k: v for k, v in scores.items() if k != "MetaSpliceAI"}
    res["all"] = bootstrap(y, no_meta, a.boot, a.seed)
    out.append(table("All variants (base models)", y, res["all"], "spliceai"))  # type: ignore[arg-type]
    if a.model:
        for label, sel in (("Variants with a MetaSpliceAI score (store genes)", have_meta),
                           ("Held out: store genes outside the meta-model's train/valid genes", have_meta & held)):
            if y[sel].sum() == 0:
                out.append(f"**{label}**: {int(sel.sum())} variants, no positive: no figure\n")
                continue
            key = "meta_" + ("held" if sel is not have_meta else "all")
            res[key] = bootstrap(y[sel], {k: v[sel] for k, v in scores.items()}, a.boot, a.seed)
            out.append(table(label, y[sel], res[key], "spliceai"))  # type: ignore[arg-type]
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    print("\n".join(out))
    print(json.dumps(res["seconds"]))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    with open(ROOT / "bench" / "results" / "truthset.jsonl", "a") as fh:
        fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
