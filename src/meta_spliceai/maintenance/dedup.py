"""A dataset without duplicate rows: one row per key (default: chrom, strand, genomic_position, splice_type).

The same genomic position can appear twice: where genes overlap on a strand (one row per gene, same
scores) and where a gene is present twice (a repeated batch, merged builds that overlap). For
training such rows count twice and can put one position on both sides of a gene-wise split.

**Survivor** (deterministic): of the rows sharing a key, the one whose ``gene_id`` sorts first
(byte order); among rows of that gene, the one in the first file (manifest order), then the first
row of that file. **Cause** of each removed row: ``repeated_gene`` when it belongs to the survivor's
gene (the gene is present twice), else ``overlapping_genes``.

Streaming: a first pass reads four id columns per row group and keeps one span per (file, gene);
genes that can share a key (same chromosome and strand with overlapping spans, or the same gene in
two files) form clusters. Duplicates within a file are found from that file's key columns; clusters
that span files (rare) are resolved together in chunks of whole clusters of about
:data:`CROSS_CHUNK_ROWS` rows. Memory: one file's key columns plus one chunk (or one cluster,
when a cluster is larger), never the whole dataset. A second run
finds nothing and changes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from ..dataset.folder import (
    Dataset,
    dataset_root,
    open_dataset,
    parquet_file,
    row_groups,
)
from ..dataset.writer import RowWriter
from ..errors import InputError
from ..storage import fault_point, folder_lock, link_or_copy
from .publish import (
    default_destination,
    history_entry,
    manifest_entry,
    publish,
    rows_per_group,
)

log = logging.getLogger(__name__)

DEFAULT_KEY: tuple[str, ...] = ("chrom", "strand", "genomic_position", "splice_type")
CAUSES: tuple[str, ...] = ("overlapping_genes", "repeated_gene")


@dataclass
class DedupSummary:
    """What dedup found and wrote; the CLI prints it."""

    dataset: str
    output: str
    key: list[str]
    rows_in: int = 0
    rows_out: int = 0
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0))
    files_rewritten: list[str] = field(default_factory=list)
    changed: bool = False

    @property
    def removed_total(self) -> int:
        return sum(self.removed.values())

    def share(self, cause: str) -> float:
        """Removed rows of this cause as a share of the input rows."""
        return self.removed[cause] / self.rows_in if self.rows_in else 0.0


def _check_key(key: Sequence[str], schema: pa.Schema) -> list[str]:
    key = list(dict.fromkeys(key))
    missing = [k for k in key if k not in schema.names]
    if missing:
        raise InputError(f"--key column(s) {', '.join(missing)} not in the dataset; use columns such as "
                         f"{', '.join(DEFAULT_KEY)}")
    if not ({"chrom", "genomic_position"} <= set(key) or "gene_id" in key):
        raise InputError("--key must include chrom and genomic_position, or gene_id (so rows can be grouped by gene "
                         f"and deduplicated file by file); got {', '.join(key)}")
    return key


#: per-row-group span tables kept before they are merged into one (bounds pass 1's memory)
SPAN_PARTS = 64


def _gene_spans(files: list[Path]) -> pl.DataFrame:
    """One row per (file, gene): chrom, strand, min/max genomic_position (streamed by row group)."""
    parts = []
    for i, path in enumerate(files):
        pf = parquet_file(path)
        for t in row_groups(pf, ["gene_id", "chrom", "strand", "genomic_position"]):
            parts.append(pl.from_arrow(t).group_by("gene_id", "chrom", "strand").agg(
                pl.col("genomic_position").min().alias("lo"), pl.col("genomic_position").max().alias("hi"),
                pl.len().alias("n"),
            ).with_columns(pl.lit(i, pl.Int32).alias("_file")))
        if len(parts) > SPAN_PARTS:
            parts = [_merge_spans(pl.concat(parts))]
    return _merge_spans(pl.concat(parts)) if parts else pl.DataFrame()


def _merge_spans(df: pl.DataFrame) -> pl.DataFrame:
    return df.group_by("_file", "gene_id", "chrom", "strand").agg(pl.col("lo").min(), pl.col("hi").max(),
                                                                   pl.col("n").sum()).select(
        "gene_id", "chrom", "strand", "lo", "hi", "n", "_file")  # the column order of one row group's table


def _clusters(spans: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """(file, gene) -> cluster id; ``cross``: the cluster has genes of more than one file."""
    if {"chrom", "genomic_position"} <= set(key):
        by = ["chrom", "strand"] if "strand" in key else ["chrom"]
        s = spans.sort([*by, "lo", "hi"])
        # a new cluster starts where a span begins after every earlier span (of its chrom/strand) ended
        prev_hi = pl.col("hi").cum_max().shift(1).over(by)
        s = s.with_columns(((prev_hi.is_null()) | (pl.col("lo") > prev_hi)).alias("_new"))
        s = s.with_columns(pl.col("_new").cum_sum().alias("_cluster"))  # sorted by chrom/strand: ids are global
    else:
        s = spans.with_columns(pl.col("gene_id").rank("dense").alias("_cluster"))
    return s.with_columns((pl.col("_file").n_unique().over("_cluster") > 1).alias("_cross")).select(
        "_file", "gene_id", "_cluster", "_cross", "n")


def _duplicates(rows: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Rows to remove (``_file``, ``_row``, ``cause``): all but the survivor of each key (see module doc)."""
    dup = rows.filter(pl.len().over(key) > 1)
    if dup.height == 0:
        return pl.DataFrame(schema={"_file": pl.Int32, "_row": pl.UInt32, "cause": pl.String})
    dup = dup.sort("gene_id", "_file", "_row").with_columns(
        pl.col("gene_id").first().over(key).alias("_keep_gene"),
        (pl.int_range(pl.len()).over(key) > 0).alias("_drop"),
    )
    return dup.filter("_drop").select(
        "_file", "_row",
        pl.when(pl.col("gene_id") == pl.col("_keep_gene")).then(pl.lit("repeated_gene"))
        .otherwise(pl.lit("overlapping_genes")).alias("cause"),
    )


#: rows of clusters spanning files resolved together (bounds dedup's memory besides one file's key columns)
CROSS_CHUNK_ROWS = 2_000_000


def _cross_chunks(clusters: pl.DataFrame) -> list[pl.DataFrame]:
    """The (file, gene) entries of clusters spanning files, in groups of whole clusters of ~CROSS_CHUNK_ROWS rows."""
    cross = clusters.filter("_cross").sort("_cluster", "_file")
    if cross.height == 0:
        return []
    sizes = cross.group_by("_cluster").agg(pl.col("n").sum()).sort("_cluster")
    chunk_of = (sizes["n"].cum_sum() - 1) // CROSS_CHUNK_ROWS
    cross = cross.join(sizes.select("_cluster", chunk_of.alias("_chunk")), on="_cluster")
    return [g for _, g in sorted(cross.partition_by("_chunk", as_dict=True).items())]


def find_duplicates(ds: Dataset, key: Sequence[str] = DEFAULT_KEY) -> tuple[dict[int, np.ndarray], dict[str, int], int]:
    """Rows to drop per file index (sorted row numbers), removed rows per cause, and the input rows."""
    files = ds.files
    if not files:
        return {}, dict.fromkeys(CAUSES, 0), 0
    key = _check_key(key, parquet_file(files[0]).schema_arrow)
    clusters = _clusters(_gene_spans(files), key)
    cols = list(dict.fromkeys(["gene_id", *key]))
    drops: list[pl.DataFrame] = []
    total = 0
    for i, path in enumerate(files):  # clusters within one file: that file's key columns
        rows = pl.read_parquet(path, columns=cols).with_row_index("_row").with_columns(pl.lit(i, pl.Int32).alias("_file"))
        total += rows.height
        cross_genes = clusters.filter((pl.col("_file") == i) & pl.col("_cross"))["gene_id"]
        drops.append(_duplicates(rows.filter(~pl.col("gene_id").is_in(cross_genes.implode())), key))
        del rows
    for chunk in _cross_chunks(clusters):  # clusters across files: a bounded number of rows at a time
        parts = []
        for (i,), genes in chunk.partition_by("_file", as_dict=True).items():
            parts.append(pl.scan_parquet(files[i]).select(cols).with_row_index("_row")
                         .filter(pl.col("gene_id").is_in(genes["gene_id"].implode()))
                         .with_columns(pl.lit(i, pl.Int32).alias("_file")).collect())
        drops.append(_duplicates(pl.concat(parts), key))
    removed = pl.concat(drops)
    by_cause = dict.fromkeys(CAUSES, 0)
    by_cause.update({c: int(n) for c, n in removed.group_by("cause").len().iter_rows()})
    per_file = {int(f): np.sort(g["_row"].to_numpy()) for (f,), g in removed.partition_by("_file", as_dict=True).items()}
    return per_file, by_cause, total


def write_without(src: Path, dst: Path, drop: np.ndarray, batch_rows: int) -> None:
    """Copy ``src`` to ``dst`` without the rows numbered ``drop`` (0-based, sorted), row group by row group."""
    pf = parquet_file(src)
    writer = RowWriter(dst, pf.schema_arrow, batch_rows, background=False)
    offset = 0
    for t in row_groups(pf):
        n = t.num_rows
        lo, hi = np.searchsorted(drop, [offset, offset + n])
        keep = np.ones(n, dtype=bool)
        keep[drop[lo:hi] - offset] = False
        writer.add(t.filter(pa.array(keep)) if hi > lo else t)
        offset += n
        fault_point("dedup_write")
    writer.close()


def dedup(
    *,
    dataset: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    inplace: bool = False,
    key: Sequence[str] = DEFAULT_KEY,
) -> DedupSummary:
    """Remove duplicate rows (see the module doc) into ``dst`` (default ``<dataset>_dedup``) or in place."""
    if inplace and dst is not None:
        raise InputError("--inplace and --dst exclude each other: choose one")
    root = dataset_root(dataset)
    if inplace:
        with folder_lock(root, "meta-spliceai command"):
            return _dedup(open_dataset(root, locked=True), None, key)
    return _dedup(open_dataset(root), Path(dst) if dst else default_destination(root, "dedup"), key)


def _dedup(ds: Dataset, dst: Path | None, key: Sequence[str]) -> DedupSummary:
    drops, by_cause, total = find_duplicates(ds, key)
    summary = DedupSummary(dataset=str(ds.root), output=str(dst or ds.root), key=list(dict.fromkeys(key)),
                           rows_in=total, removed=by_cause)
    summary.rows_out = total - summary.removed_total
    summary.changed = bool(drops)
    history = history_entry("dedup", key=summary.key, removed=by_cause)
    if dst is None and not drops:
        log.info("%s: no duplicate rows; nothing changed", ds.root)
        return summary

    def write(master: Path, tmp_dir: Path) -> dict:
        manifest = {k: v for k, v in ds.manifest.items() if k != "batches"}
        manifest["batches"] = {}
        manifest["history"] = [*ds.manifest.get("history", []), history]
        for i, (k, entry) in enumerate(ds.entries()):
            src, out = ds.master / entry["file"], master / entry["file"]
            if i in drops:
                write_without(src, out, drops[i], rows_per_group(parquet_file(src), ds.config))
                manifest["batches"][k] = manifest_entry(out, entry)
                summary.files_rewritten.append(entry["file"])
            else:
                link_or_copy(src, out, tmp_dir=tmp_dir)
                manifest["batches"][k] = dict(entry)
        return manifest

    publish(ds, dst, write, "dedup", history)
    return summary


__all__ = ["dedup", "find_duplicates", "DedupSummary", "DEFAULT_KEY", "CAUSES"]
