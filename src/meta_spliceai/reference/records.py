"""Odd records of genome-wide annotations, made usable instead of refusing the file.

- **An ID at several places** (one ``gene_id`` or ``transcript_id`` on several contigs or strands: UCSC's
  pseudo-autosomal genes on chrX and chrY, alt/fix/random copies, ``TP73-AS1``-like IDs on both strands) is
  split into one gene (transcript) per (ID, contig, strand), never merged. The copies are ordered by
  (contig with an ``_`` last — alt, fix, random, Un —, then the file line of their first exon): the first
  keeps its ID, every other is renamed ``ID@CONTIG+`` / ``ID@CONTIG-`` (its contig and strand), e.g.
  ``SHOX@chrY+``. Transcript IDs are split the same way, after their genes.
- **A transcript with overlapping or duplicated exons** is dropped (its exon chain has no consistent
  introns); its gene stays while any transcript remains, else it is dropped too.

Each split and drop is one row of the ``issues`` table (see :data:`ISSUE_SCHEMA`), which ``reference --json``
and a build's manifest list. ``strict`` readers refuse such files instead (see :mod:`.annotation`).
"""

from __future__ import annotations

import logging

import polars as pl

from ..errors import InputError

log = logging.getLogger(__name__)

#: kind: split_gene | split_transcript | dropped_transcript | dropped_gene; id: the file's ID; new_id: the ID
#: used here (null when dropped); reason: why, in words
ISSUE_SCHEMA = {"kind": pl.Utf8, "id": pl.Utf8, "new_id": pl.Utf8, "chrom": pl.Utf8, "strand": pl.Utf8,
                "reason": pl.Utf8}
#: how many dropped transcripts a warning names
SHOWN = 5


def empty_issues() -> pl.DataFrame:
    return pl.DataFrame(schema=ISSUE_SCHEMA)


def _place_ids(exons: pl.DataFrame, key: str, kind: str) -> pl.DataFrame:
    """(key, chrom, strand, _new) for every place of an ID found at several places (the first keeps its ID)."""
    places = exons.group_by(key, "chrom", "strand").agg(pl.col("row").min().alias("_first"))
    multi = places.filter(pl.len().over(key) > 1)
    if multi.height == 0:
        return multi.select(key, "chrom", "strand", pl.lit(None, pl.Utf8).alias("_new"), pl.lit(kind).alias("kind"))
    multi = multi.sort(key, pl.col("chrom").str.contains("_"), "_first").with_columns(
        pl.int_range(pl.len()).over(key).alias("_rank"))
    return multi.select(
        key, "chrom", "strand",
        pl.when(pl.col("_rank") == 0).then(pl.col(key))
        .otherwise(pl.col(key) + "@" + pl.col("chrom") + pl.col("strand")).alias("_new"),
        pl.lit(kind).alias("kind"),
    )


def _rename(df: pl.DataFrame, places: pl.DataFrame, key: str) -> pl.DataFrame:
    """``df`` with ``key`` renamed where its (key, chrom, strand) is one of ``places``."""
    if places.height == 0 or df.height == 0:
        return df
    return (df.join(places.select(key, "chrom", "strand", "_new"), on=[key, "chrom", "strand"], how="left",
                    maintain_order="left")
            .with_columns(pl.coalesce("_new", key).alias(key)).drop("_new"))


def split_by_place(exons: pl.DataFrame, txs: pl.DataFrame, genes: pl.DataFrame, source: str
                   ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Exons, transcript and gene records with one gene/transcript ID per (ID, contig, strand), and the issues.

    ``exons`` carry ``row`` (file order); records of a place without exons keep their ID (and are then
    ignored for spans: their chrom/strand match no exon).
    """
    issues = []
    gplaces = _place_ids(exons, "gene_id", "split_gene")
    clash = gplaces.filter((pl.col("_new") != pl.col("gene_id"))
                           & pl.col("_new").is_in(exons["gene_id"].unique().implode()))
    if clash.height:
        raise InputError(f"{source}: gene_id {clash['gene_id'][0]} is on several contigs/strands, and the ID of its "
                         f"copy, {clash['_new'][0]}, is already in the file; rename one of them")
    exons, txs, genes = (_rename(exons, gplaces, "gene_id"), _rename(txs, gplaces, "gene_id"),
                         _rename(genes, gplaces, "gene_id"))
    tplaces = _place_ids(exons, "transcript_id", "split_transcript")
    exons, txs = _rename(exons, tplaces, "transcript_id"), _rename(txs, tplaces, "transcript_id")
    for places, key in ((gplaces, "gene_id"), (tplaces, "transcript_id")):
        if places.height:
            issues.append(places.select(
                "kind", pl.col(key).alias("id"), pl.col("_new").alias("new_id"), "chrom", "strand",
                pl.format("{} at {} places: one per contig and strand", pl.col(key), pl.len().over(key))
                .alias("reason")))
    if issues:
        found = pl.concat(issues)
        renamed = found.filter(pl.col("new_id") != pl.col("id"))
        log.info("annotation: %d gene ID(s) and %d transcript ID(s) at several contigs/strands split into one per "
                 "place (e.g. %s)", gplaces["gene_id"].n_unique(), tplaces["transcript_id"].n_unique(),
                 renamed["new_id"][0])
        return exons, txs, genes, found.select(list(ISSUE_SCHEMA))
    return exons, txs, genes, empty_issues()


def overlapping(exons: pl.DataFrame) -> pl.DataFrame:
    """Rows of ``exons`` (sorted by transcript number ``_t``, start, end) that overlap the previous exon of
    their transcript (a duplicated exon overlaps its copy), with the previous exon's start/end/row."""
    return exons.with_columns(
        pl.col("end").shift(1).alias("_prev_end"), pl.col("start").shift(1).alias("_prev_start"),
        pl.col("row").shift(1).alias("_prev_row"), (pl.col("_t").shift(1) == pl.col("_t")).alias("_same"),
    ).filter(pl.col("_same").fill_null(False) & (pl.col("start") <= pl.col("_prev_end")))


def drop_overlapping(exons: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``exons`` without the transcripts whose exons overlap or repeat, and the issues (transcripts and the
    genes left without any transcript). One warning gives the count and the first few names."""
    bad = overlapping(exons)
    if bad.height == 0:
        return exons, empty_issues()
    first = bad.sort("row").unique("_t", keep="first", maintain_order=True)
    dropped_tx = first.select(
        pl.lit("dropped_transcript").alias("kind"), pl.col("transcript_id").alias("id"),
        pl.lit(None, pl.Utf8).alias("new_id"), "chrom", "strand",
        pl.when((pl.col("start") == pl.col("_prev_start")) & (pl.col("end") == pl.col("_prev_end")))
        .then(pl.format("duplicated exon {}-{} (gene {})", "start", "end", "gene_id"))
        .otherwise(pl.format("exon {}-{} overlaps exon {}-{} (gene {})", "start", "end", "_prev_start",
                             "_prev_end", "gene_id")).alias("reason"))
    kept = exons.filter(~pl.col("_t").is_in(first["_t"].implode()))
    lost_genes = first.select("gene_id", "chrom", "strand").unique().join(
        kept.select("gene_id").unique(), on="gene_id", how="anti").sort("gene_id")
    dropped_genes = lost_genes.select(
        pl.lit("dropped_gene").alias("kind"), pl.col("gene_id").alias("id"), pl.lit(None, pl.Utf8).alias("new_id"),
        "chrom", "strand", pl.lit("every transcript has overlapping or duplicated exons").alias("reason"))
    names = ", ".join(dropped_tx["id"].head(SHOWN).to_list())
    log.warning("%s: %d transcript(s) with overlapping or duplicated exons dropped (%s%s)%s; "
                "reference --json lists them (--strict-annotation refuses the file instead)", source,
                dropped_tx.height, names, ", …" if dropped_tx.height > SHOWN else "",
                f", and {lost_genes.height} gene(s) left without transcripts" if lost_genes.height else "")
    return kept, pl.concat([dropped_tx, dropped_genes])


def issue_counts(issues: pl.DataFrame) -> dict[str, int]:
    """IDs per kind of issue (a split ID counted once, however many places)."""
    out = {k: 0 for k in ("split_gene", "split_transcript", "dropped_transcript", "dropped_gene")}
    for kind, n in issues.group_by("kind").agg(pl.col("id").n_unique()).iter_rows():
        out[kind] = int(n)
    return out
