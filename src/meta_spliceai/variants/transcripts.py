"""The transcript table variant scoring reads: per gene its name, contig, strand, transcribed span and
annotated exon boundaries — SpliceAI's annotation model.

Sources: ``grch37``/``grch38`` (the tables shipped in the installed ``spliceai`` package, read from
where it is installed), a SpliceAI-format table (``#NAME CHROM STRAND TX_START TX_END EXON_START
EXON_END``, TX_START and EXON_START 0-based, ends 1-based, lists comma-terminated), or any GTF/GFF3
:func:`~meta_spliceai.reference.annotation.load_annotation` reads. For a GTF/GFF3 a gene is one row:
its span is the gene's span and its exon boundaries are the union of every exon start and end of all
its transcripts (SpliceAI's own tables hold one canonical transcript per gene).

Coordinates here are **1-based closed** (converted from the table's 0-based starts on reading).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import InputError
from ..reference.spliceai_table import spliceai_table_path

log = logging.getLogger(__name__)

BUILT_IN = ("grch37", "grch38")
TABLE_COLUMNS = ("#NAME", "CHROM", "STRAND", "TX_START", "TX_END", "EXON_START", "EXON_END")


@dataclass
class TranscriptTable:
    """Genes in table order (a variant's genes are reported in this order); 1-based closed spans."""

    names: np.ndarray
    chroms: np.ndarray
    strands: np.ndarray
    tx_starts: np.ndarray
    tx_ends: np.ndarray
    boundaries: list[np.ndarray]  # sorted distinct exon starts and ends
    source: str = ""
    gene_ids: np.ndarray | None = None  # the annotation's gene IDs (GTF/GFF3 only; SpliceAI tables have names)

    def __len__(self) -> int:
        return len(self.names)

    def contig_name(self, chrom: str) -> str:
        """``chrom`` in this table's naming: a ``chr`` prefix added or dropped to match its first contig."""
        return match_prefix(chrom, str(self.chroms[0]) if len(self.chroms) else chrom)

    def genes_at(self, chrom: str, pos: int) -> np.ndarray:
        """Row indices of the genes whose span holds 1-based ``pos`` on ``chrom`` (ascending)."""
        c = self.contig_name(chrom)
        return np.flatnonzero((self.chroms == c) & (self.tx_starts <= pos) & (pos <= self.tx_ends))

    def nearest_boundary(self, i: int, pos: int) -> int:
        """Signed distance from 1-based ``pos`` to the nearest exon boundary of gene ``i`` (ties: the upstream one)."""
        d = self.boundaries[i] - pos
        return int(d[np.argmin(np.abs(d))])  # argmin takes the first of equal |d|: the smaller (negative) one


def match_prefix(name: str, like: str) -> str:
    """``name`` with a ``chr`` prefix added or removed so that it is named like ``like`` (SpliceAI's rule)."""
    if name.startswith("chr") and not like.startswith("chr"):
        return name.strip("chr")  # strips c/h/r characters from both ends, as SpliceAI does
    if not name.startswith("chr") and like.startswith("chr"):
        return "chr" + name
    return name


def load_transcripts(annotation: str | os.PathLike[str]) -> TranscriptTable:
    """The transcript table of ``annotation``: ``grch37``, ``grch38``, a SpliceAI-format table or a GTF/GFF3."""
    spec = str(annotation)
    if spec in BUILT_IN:
        return read_spliceai_table(spliceai_table_path(spec, "-A"))
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"annotation not found: {path} (give grch37, grch38, a SpliceAI-format table or a GTF/GFF3 with -A)")
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head != b"\x1f\x8b":
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        if first.startswith("#NAME"):
            return read_spliceai_table(path)
    return from_annotation(path)


def read_spliceai_table(path: Path) -> TranscriptTable:
    """A SpliceAI-format table (tab-separated, the header line ``#NAME CHROM STRAND TX_START ...``)."""
    try:
        df = pl.read_csv(path, separator="\t", schema_overrides={"CHROM": pl.Utf8, "#NAME": pl.Utf8}, quote_char=None)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise InputError(f"{path}: not a SpliceAI annotation table ({err}); expected columns {' '.join(TABLE_COLUMNS)}") from None
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: lacks column(s) {', '.join(missing)}; expected {' '.join(TABLE_COLUMNS)}")
    bounds = []
    for line, (s, e) in enumerate(zip(df["EXON_START"].to_list(), df["EXON_END"].to_list()), start=2):
        try:
            starts = [int(x) + 1 for x in str(s).split(",") if x != ""]
            ends = [int(x) for x in str(e).split(",") if x != ""]
        except ValueError:
            raise InputError(f"{path}, line {line}: EXON_START/EXON_END must be comma-separated integers") from None
        bounds.append(np.unique(np.asarray(starts + ends, dtype=np.int64)))
    return TranscriptTable(
        names=df["#NAME"].to_numpy().astype(object), chroms=df["CHROM"].to_numpy().astype(object),
        strands=df["STRAND"].to_numpy().astype(object), tx_starts=df["TX_START"].to_numpy().astype(np.int64) + 1,
        tx_ends=df["TX_END"].to_numpy().astype(np.int64), boundaries=bounds, source=str(path),
    )


def from_annotation(path: Path) -> TranscriptTable:
    """One row per gene of a GTF/GFF3 (canonical gene order): gene span, union of all transcripts' exon ends."""
    from ..reference.annotation import load_annotation
    from ..reference.genelists import order_genes

    ann = load_annotation(path)
    genes = order_genes(ann.genes)
    ex = (pl.concat([ann.exons.select("gene_id", b=pl.col("start")), ann.exons.select("gene_id", b=pl.col("end"))])
          .unique().sort("gene_id", "b").group_by("gene_id", maintain_order=True).agg("b"))
    by_gene = dict(zip(ex["gene_id"].to_list(), ex["b"].to_list()))
    names = [n if n else g for g, n in zip(genes["gene_id"].to_list(), genes["gene_name"].fill_null("").to_list())]
    return TranscriptTable(
        names=np.asarray(names, dtype=object), chroms=genes["chrom"].to_numpy().astype(object),
        strands=genes["strand"].to_numpy().astype(object), tx_starts=genes["start"].to_numpy().astype(np.int64),
        tx_ends=genes["end"].to_numpy().astype(np.int64),
        boundaries=[np.asarray(by_gene.get(g, []), dtype=np.int64) for g in genes["gene_id"].to_list()],
        source=str(path), gene_ids=genes["gene_id"].to_numpy().astype(object),
    )
