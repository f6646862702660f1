"""One gene's raw dataset rows and performance rows: evaluate -> select candidates -> featurize.

The batch builder calls :func:`gene_rows` gene by gene; the result is already in the Arrow
schema of :func:`meta_spliceai.schema.arrow_schema` (same columns, order and dtypes), sorted by
``position`` then ``splice_type``.

Coordinates: gene records and splice sites use 1-based closed genomic coordinates
(``start``, ``end``, ``genomic_position``) and 0-based gene-relative ``position`` in
transcription direction (``+``: genomic_position - start, ``-``: end - genomic_position).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from ..config import BuildConfig
from ..errors import InputError
from ..reference.genome import Genome, oriented_sequence
from .evaluation import ACCEPTOR_CODE, DONOR_CODE, evaluate_gene, gene_performance
from .features import compute_features
from .sampling import select_candidates
from .stacking import check_tracks, stack_top
from .schema import (
    PERFORMANCE_COLUMNS,
    PRED_TYPES,
    SPLICE_TYPES,
    TN_KINDS,
    dataset_polars_schema,
)

_SPLICE = np.array(SPLICE_TYPES, dtype=object)
_PRED = np.array(PRED_TYPES, dtype=object)
_KIND = np.array((*TN_KINDS, None), dtype=object)  # code -1 -> None
_SITE_CODE = {"donor": DONOR_CODE, "acceptor": ACCEPTOR_CODE}
_HEAD_STRINGS = ("gene_id", "gene_name", "chrom", "strand", "splice_type", "pred_type", "transcript_ids", "tn_kind")


def _gene_sites(sites: pl.DataFrame, gene_id: str) -> pl.DataFrame:
    """This gene's sites sorted by (position, type code), checked for duplicates and bad types."""
    bad = sites.filter(~pl.col("site_type").is_in(list(_SITE_CODE)))
    if bad.height:
        raise InputError(f"splice sites of gene {gene_id} have site_type {bad['site_type'][0]!r}; expected donor/acceptor")
    out = sites.with_columns(pl.col("site_type").replace_strict(_SITE_CODE, return_dtype=pl.Int8).alias("_code")).sort(
        "position", "_code"
    )
    if out.select(pl.struct("position", "_code").is_duplicated().any()).item():
        raise InputError(f"splice sites of gene {gene_id} list the same (position, type) twice; deduplicate the sites table")
    return out


def gene_sequence(genome: Genome, fasta_chrom: str, gene: Mapping[str, object], cfg: BuildConfig) -> tuple[str | None, int]:
    """Transcription-oriented gene body with the flank the k-mer window needs, and the index of position 0.

    ``gene``: a genes-table row (start/end 1-based closed); ``fasta_chrom``: its contig's name in the
    FASTA. ``(None, 0)`` without k-mers (no sequence feature needs it).
    """
    if not cfg.kmer_sizes:
        return None, 0
    flank = cfg.kmer_window // 2 + max(cfg.kmer_sizes)
    start, end = int(gene["start"]), int(gene["end"])  # type: ignore[call-overload]
    return oriented_sequence(genome, fasta_chrom, start, end, str(gene["strand"]), flank), flank


def position_features(
    gene: Mapping[str, object],
    probs: np.ndarray,
    positions: np.ndarray,
    seq: str | None,
    seq_offset: int,
    cfg: BuildConfig,
    others: Sequence[np.ndarray] = (),
) -> pl.DataFrame:
    """Feature columns (schema order) of any ``positions`` (0-based gene-relative) of one gene.

    The one code path for features: the builder calls it for its candidate rows, ``train``'s
    evaluation and ``apply`` for every position they score, so a position's features never depend
    on who asks. ``probs``: the gene's whole (L, 3) score track; ``seq``/``seq_offset`` as from
    :func:`gene_sequence`; ``cfg``: the build's feature settings (k-mer sizes and window, feature sets,
    stacked models); ``others``: the tracks of ``cfg.stack_models``, in that order (stacked builds).
    """
    if len(others) != len(cfg.stack_models):
        raise InputError(f"gene {gene.get('gene_id')}: {len(others) + 1} score track(s) given, the build has "
                         f"{len(cfg.base_models)} base models ({', '.join(cfg.base_models)}); give one per model")
    return compute_features(
        probs,
        positions,
        seq=seq,
        seq_offset=seq_offset,
        kmer_sizes=cfg.kmer_sizes,
        kmer_window=cfg.kmer_window,
        gene=gene,
        feature_sets=cfg.feature_sets,
        others=others,
        base_models=cfg.base_models,
    )


def gene_rows(
    gene: Mapping[str, object],
    probs: np.ndarray,
    sites: pl.DataFrame,
    seq: str | None,
    seq_offset: int,
    cfg: BuildConfig,
    batch: int,
    others: Sequence[np.ndarray] = (),
) -> tuple[pl.DataFrame, list[dict[str, object]]]:
    """Raw rows (schema order, sorted by position then splice_type) and performance rows of one gene.

    ``gene``: a row of the genes table (gene_id, gene_name, chrom, strand, start, end [1-based closed],
    transcript_count, exon_count, gene_type); ``probs``: (L, 3) ``[neither, acceptor, donor]`` in
    transcription order; ``sites``: this gene's splice-sites rows; ``seq``: transcription-oriented
    sequence with ``seq[seq_offset]`` = gene position 0 (gene body ± flank; may be ``None`` without k-mers).
    ``others``: a stacked build's other tracks (``cfg.stack_models`` order): features, and hard TNs where any
    model's top score reaches ``hard_prob`` (:mod:`meta_spliceai.dataset.stacking`).
    """
    gene_id = str(gene["gene_id"])
    start, end, strand = int(gene["start"]), int(gene["end"]), str(gene["strand"])  # type: ignore[call-overload]
    length = end - start + 1
    if np.shape(probs)[0] != length:
        raise InputError(
            f"predictions of gene {gene_id} have {np.shape(probs)[0]} rows but the gene spans {length} nt; "
            "the prediction store was made with another annotation: re-run the predictions"
        )
    if strand not in ("+", "-"):
        raise InputError(f"gene {gene_id} has strand {strand!r}; expected + or -")
    site_df = _gene_sites(sites, gene_id)
    site_pos = site_df["position"].to_numpy().astype(np.int64)
    site_code = site_df["_code"].to_numpy()
    outcome = evaluate_gene(
        probs,
        site_pos[site_code == DONOR_CODE],
        site_pos[site_code == ACCEPTOR_CODE],
        threshold=cfg.threshold,
        window=cfg.consensus_window,
        where=f"gene {gene_id}",
    )
    if not np.array_equal(outcome.site_positions, site_pos):  # unique (position, type) -> same order
        raise InputError(f"splice sites of gene {gene_id} could not be aligned with its outcome")
    perf = [
        {"gene_id": gene_id, "gene_name": gene.get("gene_name"), **row} for row in gene_performance(outcome, probs)
    ]
    perf = [{c: row[c] for c in PERFORMANCE_COLUMNS} for row in perf]

    if others:
        check_tracks(gene_id, (probs, *others), cfg.base_models, cfg.base_models)
    cand = select_candidates(
        outcome,
        probs,
        top=stack_top((probs, *others), cfg.base_models) if others else None,
        hard_prob=cfg.hard_prob,
        window=cfg.window,
        easy_ratio=cfg.easy_ratio,
        seed=cfg.seed,
        gene_id=gene_id,
    )
    feats = position_features(gene, probs, cand.positions, seq, seq_offset, cfg, others)
    n = len(cand)
    genomic = start + cand.positions if strand == "+" else end - cand.positions
    is_site = cand.site_index >= 0
    if not np.array_equal(genomic[is_site], site_df["genomic_position"].to_numpy()[cand.site_index[is_site]]):
        raise InputError(
            f"splice sites of gene {gene_id}: genomic_position and position disagree with the gene span "
            f"{start}-{end} ({strand}); rebuild the annotation tables"
        )
    schema = dataset_polars_schema(cfg.kmer_sizes, cfg.kmer_window, cfg.feature_sets, cfg.stack_models)
    tx_ids = site_df["transcript_ids"].gather(np.where(is_site, cand.site_index, 0)) if site_df.height else None
    head = pl.DataFrame(
        {
            "gene_id": [gene_id] * n,
            "gene_name": [str(gene.get("gene_name") or gene_id)] * n,
            "chrom": [str(gene["chrom"])] * n,
            "strand": [strand] * n,
            "genomic_position": genomic.astype(np.int64),
            "position": cand.positions,
            "splice_type": _SPLICE[cand.splice_type].tolist(),
            "pred_type": _PRED[cand.pred_type].tolist(),
            "transcript_ids": tx_ids if tx_ids is not None else [[] for _ in range(n)],
            "is_site": is_site,
            "tn_kind": _KIND[cand.tn_kind].tolist(),
            "batch": np.full(n, batch, dtype=np.int32),
        },
        schema_overrides={c: schema[c] for c in _HEAD_STRINGS},
    ).with_columns(
        pl.when(pl.col("is_site")).then(pl.col("transcript_ids")).otherwise(pl.lit([], dtype=pl.List(pl.String)))
    )
    head = head.with_columns(pl.col("transcript_ids").list.len().cast(pl.Int32).alias("transcript_count"))
    names = schema.names()
    rows = pl.concat([head.select(names[: -feats.width]), feats], how="horizontal")
    if rows.columns != names:  # cheap; dtypes are checked by the tests
        raise AssertionError(f"rows of gene {gene_id} deviate from the schema's columns")
    return rows, perf
