"""SpliceAI's annotation tables as an annotation: ``--gtf grch37`` / ``--gtf grch38`` (the tables shipped in
the installed ``spliceai`` package, read from where it is installed) or a file in that format.

Format (tab-separated, header ``#NAME CHROM STRAND TX_START TX_END EXON_START EXON_END``): one canonical
transcript per gene; TX_START and each EXON_START are **0-based**, TX_END and each EXON_END 1-based (UCSC
genePred convention), exon lists comma-terminated. Read here as exon records in **1-based closed**
coordinates (start + 1), one gene ``NAME`` with one transcript ``NAME-canonical`` (the shared bundles'
canonical GTFs use the same IDs), so they go through the same tables as a GTF.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import polars as pl

from ..errors import InputError

BUILT_IN = ("grch37", "grch38")
COLUMNS = ("#NAME", "CHROM", "STRAND", "TX_START", "TX_END", "EXON_START", "EXON_END")
HEADER = b"#NAME\t"


def resolve_annotation(spec: str | os.PathLike[str]) -> Path:
    """The file behind ``--gtf``: ``grch37``/``grch38`` (unless a file of that name exists) name the installed
    ``spliceai`` package's ``annotations/{spec}.txt``; anything else is a path."""
    text = str(spec)
    if text not in BUILT_IN or Path(text).exists():
        return Path(spec)
    return spliceai_table_path(text)


def spliceai_table_path(name: str, flag: str = "--gtf") -> Path:
    """The ``annotations/{name}.txt`` table of the installed ``spliceai`` package (never copied here); ``flag``
    names the option in the error (``--gtf``, ``variants -A``)."""
    found = importlib.util.find_spec("spliceai")
    if found is None or not found.submodule_search_locations:
        raise InputError(f"{flag} {name} reads the table shipped with the 'spliceai' package, which is not installed: "
                         "pip install spliceai (or give a GTF/GFF3 or a SpliceAI-format table)")
    path = Path(next(iter(found.submodule_search_locations))) / "annotations" / f"{name}.txt"
    if not path.is_file():
        raise InputError(f"the 'spliceai' package lacks {path}; reinstall it: pip install --force-reinstall spliceai")
    return path


def is_spliceai_table(head: bytes) -> bool:
    return head.startswith(HEADER)


def table_records(path: Path, raw: bytes) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Exon, transcript and gene records (the columns :func:`..annotation._build_tables` takes; ``row`` = the
    table's data row) of a SpliceAI-format table."""
    try:
        df = pl.read_csv(raw, separator="\t", quote_char=None, comment_prefix=None,
                         schema_overrides={c: pl.Utf8 for c in COLUMNS})
    except pl.exceptions.PolarsError as err:
        raise InputError(f"{path}: not a SpliceAI annotation table ({' '.join(str(err).split())[:200]}); expected "
                         f"tab-separated columns {' '.join(COLUMNS)}") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: lacks column(s) {', '.join(missing)}; expected {' '.join(COLUMNS)}")
    df = df.with_row_index("row").with_columns(
        pl.col("EXON_START").str.strip_chars_end(",").str.split(","),
        pl.col("EXON_END").str.strip_chars_end(",").str.split(","),
    )
    uneven = df.filter(pl.col("EXON_START").list.len() != pl.col("EXON_END").list.len())
    if uneven.height:
        raise InputError(f"{path}, line {int(uneven['row'][0]) + 2}: EXON_START and EXON_END list different numbers "
                         "of exons")
    ex = df.explode("EXON_START", "EXON_END").with_columns(
        (pl.col("EXON_START").cast(pl.Int64, strict=False) + 1).alias("start"),  # 0-based -> 1-based
        pl.col("EXON_END").cast(pl.Int64, strict=False).alias("end"),
    )
    bad = ex.filter(pl.col("start").is_null() | pl.col("end").is_null() | pl.col("#NAME").is_null()
                    | ~pl.col("STRAND").is_in(["+", "-"]))
    if bad.height:
        raise InputError(f"{path}, line {int(bad['row'][0]) + 2}: NAME, STRAND (+/-) and EXON_START/EXON_END "
                         "(comma-separated integers) are required")
    ids = [pl.col("#NAME").alias("gene_id"), (pl.col("#NAME") + "-canonical").alias("transcript_id"),
           pl.col("CHROM").alias("chrom"), pl.col("STRAND").alias("strand")]
    exons = ex.select("row", *ids, "start", "end", pl.col("#NAME").alias("gene_name"),
                      pl.lit(None, pl.Utf8).alias("gene_type"), pl.lit(None, pl.Utf8).alias("transcript_type"),
                      pl.lit("exon").alias("feature"))
    txs = df.select("row", *ids, (pl.col("TX_START").cast(pl.Int64) + 1).alias("start"),
                    pl.col("TX_END").cast(pl.Int64).alias("end"), pl.lit(None, pl.Utf8).alias("transcript_type"))
    return exons, txs, txs.head(0).select("row", "gene_id", "chrom", "strand", "start", "end",
                                          pl.lit(None, pl.Utf8).alias("gene_name"),
                                          pl.lit(None, pl.Utf8).alias("gene_type"))
