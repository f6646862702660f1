"""Prediction stores in genome coordinates: the store's genes placed by their annotation.

A store (base model, ``predict``; or corrected, ``apply``'s ``DIR/scores``: the same format) keys
scores by gene and ``position``, the **0-based** index into the gene body in transcription
direction. The annotation gives each gene its contig, strand and span ``[start, end]``
(**1-based closed**), so the nucleotide of ``position`` p is, **1-based** on the contig:

- ``genomic_position = start + p`` on ``+`` (position 0 = gene start);
- ``genomic_position = end - p`` on ``-`` (position 0 = gene end).

The annotation must be the one the store was made with: a store gene it lacks, or whose span
length differs from the stored length, is an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError
from ..reference.annotation import Annotation, load_annotation
from .store import COLUMNS, META_KEY, PredictionStore

log = logging.getLogger(__name__)

#: the score columns placed in the genome, in output order
SCORES = ("acceptor", "donor")
_IDX = [COLUMNS.index(c) for c in SCORES]

GENOMIC_SCHEMA = {"chrom": pl.String, "genomic_position": pl.Int64, "strand": pl.String, "gene_id": pl.String,
                  "acceptor": pl.Float32, "donor": pl.Float32}


def open_store(path: str | os.PathLike[str] | PredictionStore, flag: str = "STORE") -> PredictionStore:
    """A store with genes in it: a ``predict`` store, a corrected store, or an ``apply`` folder (its ``scores/``)."""
    if isinstance(path, PredictionStore):
        store = path
    else:
        p = Path(path)
        if not p.exists():
            raise InputError(f"prediction store not found: {p} ({flag}: give the folder meta-spliceai predict "
                             "wrote, or apply's --out folder)")
        if p.is_dir() and (p / "scores").is_dir() and not _is_store_file(next(iter(sorted(p.glob("*.parquet"))), None)):
            p = p / "scores"  # apply's output folder (scores/ beside calls.parquet): its corrected store
        store = PredictionStore(p)
    if not store.files():
        raise InputError(f"prediction store {store.path} holds no predictions ({flag}: give a folder of per-gene "
                         "Parquet files written by meta-spliceai predict or apply)")
    store.require_sites(f"{flag}: tracks are of donor/acceptor scores, give a SpliceAI or OpenSpliceAI store")
    return store


def _is_store_file(file: Path | None) -> bool:
    """Whether ``file`` is a prediction store's gene file (its Parquet metadata carries the store's key)."""
    import pyarrow.parquet as pq

    if file is None:
        return False
    try:
        return META_KEY in (pq.read_schema(file).metadata or {})
    except Exception:  # pyarrow raises several types for a damaged file: the store's own check names it
        return True


def as_annotation(annotation: str | os.PathLike[str] | Annotation) -> Annotation:
    """The annotation tables of a GTF/GFF3 path (parsed here) or an already loaded :class:`Annotation`."""
    return annotation if isinstance(annotation, Annotation) else load_annotation(annotation)


def store_genes(store: PredictionStore, ann: Annotation, genes: Sequence[str] | None = None) -> pl.DataFrame:
    """Annotation rows (gene_id, chrom, strand, start, end; 1-based closed) of the store's genes.

    ``genes`` restricts to those IDs (each must be in the store). Every gene must be in the annotation
    with the span length the store holds. Sorted by chrom, start, gene_id.
    """
    have = store.finished_genes()
    if genes is not None:
        absent = [g for g in dict.fromkeys(genes) if g not in have]
        if absent:
            raise InputError(f"gene(s) not in prediction store {store.path}: {', '.join(absent[:5])}"
                             f"{' …' if len(absent) > 5 else ''} (predict them first, or drop them from the list)")
        have = set(genes)
    rows = ann.genes.filter(pl.col("gene_id").is_in(sorted(have))).select("gene_id", "chrom", "strand", "start", "end")
    missing = sorted(have - set(rows["gene_id"].to_list()))
    where = ann.source or "the annotation"
    if missing:
        raise InputError(f"{len(missing)} gene(s) of prediction store {store.path} are not in {where}: "
                         f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''} (give the GTF/GFF3 the store "
                         "was predicted with)")
    for gid, start, end in rows.select("gene_id", "start", "end").iter_rows():
        n = store.length_of(gid)
        if n != end - start + 1:
            raise InputError(f"gene {gid}: prediction store {store.path} holds {n:,} positions but its span in "
                             f"{where} is {end - start + 1:,} nt; the store was made with another annotation "
                             "(give that GTF/GFF3)")
    return rows.sort("chrom", "start", "gene_id")


def check_same_genes(store: PredictionStore, base: PredictionStore) -> None:
    """``store`` and ``base`` hold the same genes with the same lengths (for meta − base deltas)."""
    a, b = store.finished_genes(), base.finished_genes()
    if a != b:
        only_a, only_b = sorted(a - b), sorted(b - a)
        raise InputError(f"{store.path} and --delta-from {base.path} hold different genes ("
                         f"{len(only_a)} only in the first: {', '.join(only_a[:3]) or '-'}; {len(only_b)} only in "
                         f"the second: {', '.join(only_b[:3]) or '-'}); give two stores of the same genes")
    for gid in sorted(a):
        la, lb = store.length_of(gid), base.length_of(gid)
        if la != lb:
            raise InputError(f"gene {gid} has {la:,} positions in {store.path} but {lb:,} in --delta-from "
                             f"{base.path}; both stores must come from the same annotation")


def gene_scores(store: PredictionStore, gene_id: str, base: PredictionStore | None = None) -> np.ndarray:
    """``(L, 2)`` float32 ``[acceptor, donor]`` of a gene by store position (0-based, transcription
    direction); with ``base``, ``store − base`` at the same positions (float32 arithmetic)."""
    s = store.read(gene_id)[:, _IDX]
    if base is not None:
        b = base.read(gene_id)[:, _IDX]
        if b.shape != s.shape:
            raise InputError(f"gene {gene_id} has {s.shape[0]:,} positions in {store.path} but {b.shape[0]:,} in "
                             f"--delta-from {base.path}; both stores must come from the same annotation")
        s = s - b
    return s


def ascending(scores: np.ndarray, strand: str) -> np.ndarray:
    """Rows of a gene's store-ordered scores in ascending genomic order (reversed on ``-``)."""
    return scores if strand == "+" else scores[::-1]


def iter_genomic(store: PredictionStore, genes: pl.DataFrame,
                 base: PredictionStore | None = None) -> Iterator[tuple[dict, np.ndarray]]:
    """Each gene (annotation row) with its scores in ascending genomic order: row i = ``start + i`` (1-based)."""
    for g in genes.iter_rows(named=True):
        yield g, ascending(gene_scores(store, g["gene_id"], base), g["strand"])


def scores_in_genome(
    store: str | os.PathLike[str] | PredictionStore,
    annotation: str | os.PathLike[str] | Annotation,
    *,
    genes: Sequence[str] | None = None,
    delta_from: str | os.PathLike[str] | PredictionStore | None = None,
    contig_names: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Every stored nucleotide in genome coordinates, one row per (gene, position).

    Columns ``chrom, genomic_position, strand, gene_id, acceptor, donor``; ``genomic_position`` is
    **1-based** on the contig (``start + position`` on ``+``, ``end - position`` on ``-``, where
    ``position`` is the store's 0-based index in transcription direction and ``[start, end]`` the
    gene's 1-based closed span in ``annotation``, the GTF/GFF3 the store was made with). ``store`` is
    a ``predict`` store, a corrected store or an ``apply`` folder. Overlapping genes keep one row
    each (no combining). ``genes``: only these store genes; ``delta_from``: a second store, scores
    are ``store − delta_from``; ``contig_names``: annotation → output contig names (e.g. the
    FASTA's, from :func:`meta_spliceai.reference.genome.match_contigs`). Sorted by chrom,
    genomic_position, strand, gene_id. The whole result is in memory: pass ``genes`` for big stores.
    """
    st = open_store(store)
    base = open_store(delta_from, "--delta-from") if delta_from is not None else None
    if base is not None and genes is None:
        check_same_genes(st, base)
    rows = store_genes(st, as_annotation(annotation), genes)
    frames = []
    for g, s in iter_genomic(st, rows, base):
        chrom = (contig_names or {}).get(g["chrom"], g["chrom"])
        n = s.shape[0]
        frames.append(pl.DataFrame({
            "chrom": pl.Series([chrom], dtype=pl.String).extend_constant(chrom, n - 1),
            "genomic_position": np.arange(g["start"], g["start"] + n, dtype=np.int64),
            "strand": pl.Series([g["strand"]], dtype=pl.String).extend_constant(g["strand"], n - 1),
            "gene_id": pl.Series([g["gene_id"]], dtype=pl.String).extend_constant(g["gene_id"], n - 1),
            "acceptor": np.ascontiguousarray(s[:, 0]), "donor": np.ascontiguousarray(s[:, 1]),
        }, schema=GENOMIC_SCHEMA))
    if not frames:
        return pl.DataFrame(schema=GENOMIC_SCHEMA)
    return pl.concat(frames).sort("chrom", "genomic_position", "strand", "gene_id")
