"""A dataset summary: size, class balance, nulls, rows per gene and per file, base-model performance.

Streamed row group by row group (memory: one row group plus one counter per gene and per file).
``--report`` renders it as one self-contained HTML page (:mod:`meta_spliceai.maintenance.summary_report`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..dataset.folder import PERFORMANCE, open_dataset, parquet_file, row_groups
from ..dataset.schema import PRED_TYPES, SPLICE_TYPES, TN_KINDS, feature_columns

log = logging.getLogger(__name__)

#: score histogram bins over [0, 1]
SCORE_BINS = 50


@dataclass
class DatasetSummary:
    """What ``meta-spliceai summary`` reports; :mod:`meta_spliceai.maintenance.summary_report` draws it."""

    dataset: str
    files: int = 0
    rows: int = 0
    columns: int = 0
    features: int = 0
    genes: int = 0
    transcripts: int = 0
    #: rows per (splice_type, pred_type)
    class_balance: dict[tuple[str, str], int] = field(default_factory=dict)
    tn_kinds: dict[str, int] = field(default_factory=dict)
    #: columns with nulls -> count
    nulls: dict[str, int] = field(default_factory=dict)
    rows_per_file: dict[str, int] = field(default_factory=dict)
    rows_per_gene: dict[str, int] = field(default_factory=dict)
    #: (track, splice_type, pred_type) -> histogram counts of that track's score over SCORE_BINS bins of [0, 1]
    score_hist: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)
    #: per-gene base-model metrics from gene_performance.tsv (None when the file is absent)
    performance: pl.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    def gene_stats(self) -> dict[str, float]:
        v = np.array(list(self.rows_per_gene.values()) or [0])
        return {"min": int(v.min()), "median": float(np.median(v)), "mean": float(v.mean()), "max": int(v.max())}

    def pooled_performance(self) -> pl.DataFrame | None:
        """Per site type: genes, TP/FP/FN pooled, precision, recall, F1 and the mean per-gene F1."""
        if self.performance is None:
            return None
        p = self.performance
        return p.group_by("splice_type").agg(
            pl.col("gene_id").n_unique().alias("genes"), pl.col("TP").sum(), pl.col("FP").sum(), pl.col("FN").sum(),
            pl.col("f1_score").mean().alias("mean_gene_f1"),
        ).with_columns(
            (pl.col("TP") / (pl.col("TP") + pl.col("FP"))).alias("precision"),
            (pl.col("TP") / (pl.col("TP") + pl.col("FN"))).alias("recall"),
            (2 * pl.col("TP") / (2 * pl.col("TP") + pl.col("FP") + pl.col("FN"))).alias("f1"),
        ).sort("splice_type")


def summary(*, dataset: str | os.PathLike[str]) -> DatasetSummary:
    """Summarise a dataset folder (``summary_report.write_report`` draws it as an HTML page)."""
    ds = open_dataset(dataset)
    out = DatasetSummary(dataset=str(ds.root))
    transcripts: set[str] = set()
    balance = np.zeros((len(SPLICE_TYPES), len(PRED_TYPES)), dtype=np.int64)
    kinds = np.zeros(len(TN_KINDS), dtype=np.int64)
    hist = np.zeros((2, len(SPLICE_TYPES), len(PRED_TYPES), SCORE_BINS), dtype=np.int64)
    gene_rows: dict[str, int] = {}
    edges = np.linspace(0, 1, SCORE_BINS + 1)
    for _, entry in ds.entries():
        path = ds.master / entry["file"]
        pf = parquet_file(path)
        out.files += 1
        schema = pf.schema_arrow
        out.columns = len(schema.names)
        out.features = len(feature_columns(schema))
        out.rows_per_file[entry["file"]] = pf.metadata.num_rows
        for t in row_groups(pf):
            out.rows += t.num_rows
            for name, col in zip(t.column_names, t.columns):
                if col.null_count:
                    out.nulls[name] = out.nulls.get(name, 0) + col.null_count
            st = pc.index_in(t.column("splice_type"), value_set=pa.array(SPLICE_TYPES)).fill_null(-1).to_numpy(
                zero_copy_only=False)
            pt = pc.index_in(t.column("pred_type"), value_set=pa.array(PRED_TYPES)).fill_null(-1).to_numpy(
                zero_copy_only=False)
            ok = (st >= 0) & (pt >= 0)
            np.add.at(balance, (st[ok], pt[ok]), 1)
            tk = pc.index_in(t.column("tn_kind"), value_set=pa.array(TN_KINDS)).fill_null(-1).to_numpy(
                zero_copy_only=False)
            kinds += np.bincount(tk[tk >= 0], minlength=len(TN_KINDS))
            for ti, track in enumerate(("donor_score", "acceptor_score")):
                s = t.column(track).fill_null(np.nan).to_numpy(zero_copy_only=False)
                b = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, SCORE_BINS - 1)
                good = ok & np.isfinite(s)
                np.add.at(hist[ti], (st[good], pt[good], b[good]), 1)
            for gid, n in pl.from_arrow(t.select(["gene_id"])).group_by("gene_id").len().iter_rows():
                gene_rows[gid] = gene_rows.get(gid, 0) + int(n)
            tx = pc.unique(pc.list_flatten(t.column("transcript_ids"))).to_pylist()
            transcripts.update(x for x in tx if x is not None)
    out.genes = len(gene_rows)
    out.rows_per_gene = gene_rows
    out.transcripts = len(transcripts)
    out.class_balance = {(s, p): int(balance[i, j]) for i, s in enumerate(SPLICE_TYPES)
                         for j, p in enumerate(PRED_TYPES) if balance[i, j]}
    out.tn_kinds = {k: int(kinds[i]) for i, k in enumerate(TN_KINDS)}
    out.score_hist = {(track, s, p): hist[ti, i, j] for ti, track in enumerate(("donor", "acceptor"))
                      for i, s in enumerate(SPLICE_TYPES) for j, p in enumerate(PRED_TYPES) if hist[ti, i, j].any()}
    perf = ds.root / PERFORMANCE
    if perf.is_file():
        p = pl.read_csv(perf, separator="\t", infer_schema_length=None)
        out.performance = p.filter(pl.col("gene_id").is_in(list(gene_rows)))
    else:
        out.notes.append(f"no {PERFORMANCE} in {ds.root}: base-model performance not shown")
    return out


__all__ = ["summary", "DatasetSummary", "SCORE_BINS"]
