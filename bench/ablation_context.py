"""Context-feature ablation (issue 12): does each family pay beyond the base model's own scores?

1. Build the chr20 bundle's protein-coding genes (GENCODE v19 all-transcript sites) from an existing
   prediction store, every feature family, no k-mers (``--feature-sets all --kmer-sizes 0``).
2. ``train --feature-ablation`` on it (gene-wise split, seed 42): the score-only meta-model, score
   features + each family, and the meta-model on every feature, each scored on every nucleotide of
   the same test genes, with gene-level paired bootstrap intervals against the score-only model.
3. The same trained models applied (apply's feature path) to every gene of the chr22 and chr2 bundles
   whose predictions exist, like for like, with the same table.

Tables go to ``OUT/ablation.md`` (and stdout). Usage (paths outside the repository)::

  python bench/ablation_context.py --store /work/cache/chr20_pc_store --genes /work/cache/chr20_pc_genes.txt \\
      --out /work/cache/wt12_ablation --chr2-store /work/cache/chr2_store

Only genes of ``--genes`` already in ``--store`` are built (the store may still be filling); the list
used is written to ``OUT/genes_used.txt``.
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def cross_bundle(train_dir: Path, name: str, gtf: Path, store_dir: Path, n_boot: int, seed: int) -> str:
    """The trained models (the card's ablations and the meta-model) on every gene of a bundle whose
    predictions exist, like for like (``apply --evaluate``'s code): the ablation table."""
    from meta_spliceai.basemodel.store import PredictionStore
    from meta_spliceai.metamodel.ablation import ablation_table, markdown
    from meta_spliceai.metamodel.card import Corrector, load_card
    from meta_spliceai.metamodel.scoring import evaluate_genes
    from meta_spliceai.reference.annotation import parse_annotation

    loaded = load_card(train_dir)
    card = loaded.card
    ann = parse_annotation(gtf)
    store = PredictionStore(store_dir)
    genes = ann.genes.filter(pl.col("gene_id").is_in(ann.splice_sites["gene_id"].unique().to_list()))
    have = genes.filter(pl.Series([store.has(g) for g in genes["gene_id"]], dtype=pl.Boolean))
    have = have.filter(pl.Series([store.read(g).shape[0] == n for g, n in have.select("gene_id", "length").iter_rows()],
                                 dtype=pl.Boolean)).sort("chrom", "start", "gene_id")
    corr = Corrector(loaded.cfg, float(card["floor"]))
    summ, c = evaluate_genes(loaded, store, ann, have, corr, n_boot=0, seed=seed)
    thr = {tuple(k.split("/")): float(v) for k, v in card["method_thresholds"].items()}
    n_feat = {k: len(v["features"]) for k, v in card["ablations"].items() if "features" in v}
    n_feat["meta"] = len(card["features"])
    table = ablation_table(c, thr, n_feat, n_boot=n_boot, seed=seed)
    sites = {t: summ["site_types"][t]["sites"] for t in ("donor", "acceptor")}
    head = (f"### {name}: {len(c.genes)} genes, {c.n_positions:,} nucleotides ({c.n_scored:,} scored), "
            f"{sites['donor']} donor / {sites['acceptor']} acceptor sites; {n_boot} gene resamples\n\n")
    return head + markdown(table)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, required=True, help="chr20 prediction store (read only)")
    ap.add_argument("--genes", type=Path, required=True, help="chr20 protein-coding gene list")
    ap.add_argument("--out", type=Path, required=True, help="work folder (outside the repository)")
    ap.add_argument("--chr2-store", type=Path, help="prediction store of the chr2 bundle's genes")
    ap.add_argument("--model", default=None, help="train --model (default xgboost)")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-genes", type=int, help="at most this many genes of the list (in list order)")
    args = ap.parse_args(argv)

    from meta_spliceai.basemodel.store import PredictionStore
    from meta_spliceai.config import FEATURE_SETS
    from meta_spliceai.dataset.builder import build
    from meta_spliceai.metamodel.training import train

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    store = PredictionStore(args.store)
    wanted = [g.strip() for g in args.genes.read_text().splitlines() if g.strip()]
    used = [g for g in wanted if store.has(g)][: args.max_genes]
    listing = out / "genes_used.txt"
    if not listing.is_file():  # a resume keeps the first list (the build refuses another)
        listing.write_text("\n".join(used) + "\n")
    used = listing.read_text().split()
    print(f"{len(used)} of {len(wanted)} genes have predictions", file=sys.stderr)
    chr20 = DATA / "grch37_chr20"
    summary = build(output_dir=out / "build", fasta=chr20 / "genome.fa.gz", gtf=chr20 / "annotation_gencode_v19.gtf",
                    gene_ids_file=listing, predictions=args.store, kmer_sizes=(), feature_sets=FEATURE_SETS,
                    batch_size=100, progress=False)
    t_build = time.perf_counter() - t0
    train(dataset=out / "build", out_dir=out / "train", model=args.model, bootstrap=args.bootstrap,
          seed=args.seed, feature_ablation=True, progress=False)
    t_train = time.perf_counter() - t0 - t_build
    m = json.loads((out / "train" / "metrics.json").read_text())
    parts = [f"## Context-feature ablation, {time.strftime('%Y-%m-%d %H:%M')}\n",
             f"Build: {summary.n_genes} chr20 protein-coding genes, {summary.rows_trim:,} rows, {t_build:.0f} s; "
             f"train --feature-ablation (seed {args.seed}, gene-wise split {m['split']['train']}/"
             f"{m['split']['valid']}/{m['split']['test']} genes): {t_train:.0f} s. Load average "
             f"{os.getloadavg()[0]:.1f}.\n",
             f"### chr20 test genes: {m['genes']} genes, {m['positions']:,} nucleotides ({m['scored_positions']:,} "
             f"scored); {args.bootstrap} gene resamples\n\n" + (out / "train" / "feature_ablation.md").read_text()]
    # the chr22 bundle: the original Keras SpliceAI's outputs as the store
    chr22 = DATA / "grch37_chr22_20-21Mb"
    k_store = out / "chr22_keras_store"
    if not k_store.is_dir():
        z = np.load(chr22 / "reference" / "keras_spliceai_outputs.npz")
        ks = PredictionStore(k_store, {"base_model": "spliceai", "version": "keras-1.3.1-reference",
                                       "digest": "keras-npz", "precision": "float32"})
        for g in z.files:
            ks.write(g, z[g])
    parts.append(cross_bundle(out / "train", "chr22 bundle (Keras SpliceAI scores)", chr22 / "annotation.gtf",
                              k_store, args.bootstrap, args.seed))
    if args.chr2_store and args.chr2_store.is_dir():
        chr2 = DATA / "grch37_chr2_160-162Mb"
        parts.append(cross_bundle(out / "train", "chr2 bundle", chr2 / "annotation.gtf", args.chr2_store,
                                  args.bootstrap, args.seed))
    text = "\n".join(parts)
    (out / "ablation.md").write_text(text)
    (out / "ablation.json").write_text(json.dumps({"genes_used": len(used), "metrics": m}, default=str))
    print(text)


if __name__ == "__main__":
    main()
