"""Which genes a build takes: the candidate pool, subset policies, and gene-ID lists from a store.

Policies (``--subset-policy``):

- ``error_total`` / ``error_fp`` / ``error_fn``: the genes where the base model errs most (FP+FN, FP, FN
  summed over donor and acceptor), ranked descending;
- ``hard``: lowest F1 (over both site types) first;
- ``random``: a seeded uniform draw;
- ``custom``: the genes of ``--gene-ids-file``; ``all``: every gene of the pool.

Ties are broken by the canonical gene order (chrom, start, gene_id), so a selection is reproducible.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from ..config import SUBSET_POLICIES, BuildConfig, SubsetPolicy
from ..errors import InputError
from ..reference.annotation import Annotation
from ..reference.genelists import order_genes
from .evaluation import evaluate_gene, gene_performance
from .schema import PERFORMANCE_COLUMNS

log = logging.getLogger(__name__)

ERROR_POLICIES = ("error_total", "error_fp", "error_fn", "hard")


def check_policy(policy: str) -> SubsetPolicy:
    if policy not in SUBSET_POLICIES:
        raise InputError(f"unknown --subset-policy {policy!r}; choose one of: {', '.join(SUBSET_POLICIES)}")
    return policy  # type: ignore[return-value]


def candidate_pool(
    ann: Annotation, contig_map: dict[str, str], contig_lengths: dict[str, int], gene_types: Sequence[str] | None
) -> pl.DataFrame:
    """Genes a build may take, in canonical order: with annotated splice sites, sequence present, of the types.

    Single-exon genes have no sites to learn from and are left out; so are genes on contigs missing
    from the FASTA or running past a contig's end (``meta-spliceai reference`` lists them).
    """
    genes = ann.genes.filter(pl.col("gene_id").is_in(ann.splice_sites["gene_id"].unique().implode()))
    if gene_types:
        known = set(ann.genes["gene_type"].unique().to_list())
        unknown = sorted(set(gene_types) - known)
        if unknown:
            raise InputError(
                f"--gene-types {', '.join(unknown)} not in the annotation; its gene types are: {', '.join(sorted(known))}"
            )
        genes = genes.filter(pl.col("gene_type").is_in(list(gene_types)))
    lengths = {a: contig_lengths[f] for a, f in contig_map.items()}
    ok = [c in lengths and e <= lengths[c] for c, e in genes.select("chrom", "end").iter_rows()]
    dropped = genes.height - sum(ok)
    if dropped:
        log.warning("%d gene(s) without sequence in the FASTA are left out (see meta-spliceai reference)", dropped)
    return order_genes(genes.filter(pl.Series(ok, dtype=pl.Boolean)))


def evaluate_pool(
    pool: pl.DataFrame,
    ann: Annotation,
    read_probs: Callable[[str], np.ndarray],
    cfg: BuildConfig,
    progress: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """Per-gene, per-site-type performance of the base model over ``pool`` (the gene_performance table)."""
    sites = {gid: df for (gid,), df in ann.splice_sites.partition_by("gene_id", as_dict=True).items()}
    rows: list[dict[str, object]] = []
    for gid, name in pool.select("gene_id", "gene_name").iter_rows():
        s = sites.get(gid)
        donors = s.filter(pl.col("site_type") == "donor")["position"].to_numpy() if s is not None else []
        accs = s.filter(pl.col("site_type") == "acceptor")["position"].to_numpy() if s is not None else []
        probs = read_probs(gid)
        out = evaluate_gene(probs, donors, accs, threshold=cfg.threshold, window=cfg.consensus_window,
                            where=f"gene {gid}")
        for r in gene_performance(out, probs):
            rows.append({c: r.get(c) for c in PERFORMANCE_COLUMNS} | {"gene_id": gid, "gene_name": name})
        if progress:
            progress(1)
    return performance_frame(rows)


def performance_frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """gene_performance rows (``schema.PERFORMANCE_COLUMNS``) as a table; undefined ratios stay null."""
    df = pl.DataFrame(rows, schema_overrides={"precision": pl.Float64, "recall": pl.Float64,
                                              "f1_score": pl.Float64, "topk_acc": pl.Float64})
    return df.select(PERFORMANCE_COLUMNS) if df.height else df


def rank_by_errors(pool: pl.DataFrame, perf: pl.DataFrame, policy: SubsetPolicy) -> list[str]:
    """Pool gene IDs ordered worst first under an error policy (ties in canonical order)."""
    per_gene = perf.group_by("gene_id").agg(
        pl.col("FP").sum(), pl.col("FN").sum(), pl.col("TP").sum()
    ).with_columns(
        (pl.col("FP") + pl.col("FN")).alias("error_total"),
        pl.col("FP").alias("error_fp"),
        pl.col("FN").alias("error_fn"),
        # F1 over both site types; a gene with nothing predicted and nothing to find scores 1
        pl.when(2 * pl.col("TP") + pl.col("FP") + pl.col("FN") > 0)
        .then(2 * pl.col("TP") / (2 * pl.col("TP") + pl.col("FP") + pl.col("FN")))
        .otherwise(1.0).alias("hard"),
    )
    ranked = pool.select("gene_id").with_row_index("order").join(per_gene, on="gene_id", how="left")
    descending = policy != "hard"
    return ranked.sort([policy, "order"], descending=[descending, False], nulls_last=True)["gene_id"].to_list()


def select_genes(
    pool: pl.DataFrame,
    *,
    policy: SubsetPolicy,
    n_genes: int | None,
    seed: int,
    custom: Sequence[str] | None = None,
    perf: pl.DataFrame | None = None,
) -> list[str]:
    """Gene IDs of the build in canonical order (chrom, start, gene_id)."""
    ids = pool["gene_id"].to_list()
    if policy == "custom":
        chosen = list(custom or [])
    elif policy == "all":
        chosen = ids
    elif policy == "random":
        n = len(ids) if n_genes is None else min(n_genes, len(ids))
        pick = np.sort(np.random.default_rng(seed).choice(len(ids), size=n, replace=False))
        chosen = [ids[i] for i in pick]
    else:
        if perf is None:
            raise ValueError(f"policy {policy} needs the pool's performance table")
        chosen = rank_by_errors(pool, perf, policy)[: n_genes if n_genes is not None else None]
    if n_genes is not None and n_genes > len(ids) and policy not in ("custom", "all"):
        log.warning("--n-genes %d is more than the %d genes available: building all of them", n_genes, len(ids))
    keep = set(chosen)
    return [g for g in order_genes(pool.filter(pl.col("gene_id").is_in(list(keep))))["gene_id"].to_list()]


def plan_batches(gene_ids: Sequence[str], batch_size: int) -> list[list[str]]:
    """Consecutive batches of ``batch_size`` genes (the last may be shorter)."""
    return [list(gene_ids[i : i + batch_size]) for i in range(0, len(gene_ids), batch_size)]


def gene_ids(
    *,
    eval_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    gtf: str | os.PathLike[str] | None = None,
    n_genes: int | None = None,
    seed: int = 42,
) -> pl.DataFrame:
    """Genes (and their transcript IDs) present in a prediction store or a build's output folder.

    ``eval_dir`` is a build output (its ``predictions/`` and cached annotation are used) or a prediction
    store; transcript IDs come from the build's annotation or from ``gtf``. ``n_genes`` draws a seeded
    random sample. Writes a TSV (gene_id, gene_name, transcript_ids) to ``out`` and returns the table.
    """
    from ..basemodel.store import PredictionStore
    from ..reference.annotation import load_annotation
    from ..storage import check_output_file, write_text_atomic

    eval_dir, out = Path(eval_dir), Path(out)
    if not eval_dir.is_dir():
        raise InputError(f"--eval-dir {eval_dir} is not a folder (give a prediction store or a build output folder)")
    if seed < 0:
        raise InputError(f"--seed must be >= 0 (random generators take non-negative seeds), got {seed}")
    check_output_file(out, "--out")
    store_dir = eval_dir / "predictions" if (eval_dir / "build.json").is_file() else eval_dir
    store = PredictionStore(store_dir)
    files = store.files()
    if not files:
        raise InputError(f"no predictions in {store_dir} (run meta-spliceai predict or build --run-workflow first)")
    # gene IDs from each file's metadata: a footer read per file, and a damaged file is named
    present = sorted(store.finished_genes())
    ann = None
    if gtf is not None:
        ann = load_annotation(gtf)
    elif (eval_dir / "build.json").is_file():
        import json

        meta = json.loads((eval_dir / "build.json").read_text())
        ann = load_annotation(meta["inputs"]["gtf"], cache_dir=eval_dir / "annotation")
    if n_genes is not None:
        if n_genes <= 0:
            raise InputError(f"--n-genes must be a positive number, got {n_genes}")
        if n_genes < len(present):
            pick = np.sort(np.random.default_rng(seed).choice(len(present), size=n_genes, replace=False))
            present = [present[i] for i in pick]
    table = pl.DataFrame({"gene_id": present})
    if ann is not None:
        tx = ann.transcripts.group_by("gene_id").agg(pl.col("transcript_id").sort().str.join(",").alias("transcript_ids"))
        table = table.join(ann.genes.select("gene_id", "gene_name"), on="gene_id", how="left").join(
            tx, on="gene_id", how="left"
        ).select("gene_id", "gene_name", "transcript_ids")
    else:
        log.warning("no annotation given (--gtf): writing gene IDs only")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, table.write_csv(separator="\t"))
    return table
