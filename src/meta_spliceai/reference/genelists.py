"""Gene lists: the genes a user names (one ID or name per line, a TSV/CSV column, spreadsheet and R
encodings, gzip), resolved against an annotation's genes (with or without ID versions).

Gene spans in the tables are 1-based closed (GTF).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from ..errors import InputError
from .annotation import check_readable, read_maybe_gzip

log = logging.getLogger(__name__)


def strip_version(gene_id: str) -> str:
    """``ENSG00000123.4`` -> ``ENSG00000123`` (IDs without a numeric suffix are kept)."""
    head, dot, tail = gene_id.rpartition(".")
    return head if dot and tail.isdigit() and head else gene_id


#: a single-column gene list whose first line is one of these has a header
_LIST_HEADERS = ("gene", "genes", "gene_id", "gene_ids", "gene_name", "gene_names", "geneid", "symbol", "id",
                 "ensembl_gene_id", "ensembl")


def _gene_list_text(path: Path) -> str:
    """The text of a gene list: gzip or plain; UTF-8 (with or without BOM), UTF-16 with BOM, else Latin-1."""
    raw = read_maybe_gzip(path, "gene list")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        log.info("gene list %s is not UTF-8: read as Latin-1", path)
    if "\x00" in text:
        raise InputError(f"gene list {path} is not a text file (give gene IDs or names, one per line, or a TSV/CSV)")
    return text


def read_gene_list(path: str | os.PathLike[str], gene_col: str | None = None) -> list[str]:
    """Gene IDs or names from a text/TSV/CSV file: a column ``gene_col`` (or ``gene_id``), else one per line.

    Reads what spreadsheets and R write: a UTF-8 byte-order mark, Latin-1 or UTF-16 text, quoted
    CSV (``"gene_id","gene_name"``), ``;``-separated CSV, gzip, one column with or without a header.
    ``-`` reads standard input; a pipe (``<(…)``, ``/dev/fd/N``) works too: the list is read once.
    """
    import csv

    path = Path(path)
    check_readable(path, "gene list", "--gene-ids-file", read_once=True)
    lines = [ln for ln in _gene_list_text(path).splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise InputError(f"gene list {path} is empty (put one gene ID or name per line)")
    first = lines[0]
    sep = next((c for c in ("\t", ",", ";") if c in first), None)
    rows = [[f.strip() for f in r] for r in csv.reader(lines, delimiter=sep or "\t")] if sep else \
        [[next(csv.reader([ln]), [""])[0].strip()] if ln.strip() else [""] for ln in lines]
    header = rows[0]
    col = gene_col or ("gene_id" if "gene_id" in header else None)
    if col is None and len(header) == 1:
        ids = [r[0] for r in rows]
        if ids[0].lower() in _LIST_HEADERS or ids[0] == "x":  # "x": R's write.csv of a vector
            ids = ids[1:]
    else:
        if col is None or col not in header:
            raise InputError(
                f"gene list {path} has no column {col or 'gene_id'!r}; its columns are: {', '.join(header)} "
                "(choose one with --gene-col)"
            )
        i = header.index(col)
        short = next((n for n, r in enumerate(rows[1:], start=2) if len(r) <= i), None)
        if short is not None:
            raise InputError(f"gene list {path}, line {short}: no {col!r} field (column {i + 1}); fix that line")
        ids = [r[i] for r in rows[1:]]
    ids = [x for x in ids if x]
    _note_duplicates(ids, f"gene list {path}")
    ids = list(dict.fromkeys(ids))
    if not ids:
        raise InputError(f"gene list {path} is empty (put one gene ID or name per line)")
    return ids


def resolve_gene_ids(genes: pl.DataFrame, requested: Iterable[str], *, source: str = "the gene list") -> list[str]:
    """Annotation gene_ids for IDs (with or without version suffix) or gene names, in request order.

    A versioned ID matching another version of an annotation gene is used, with a warning saying so;
    a name shared by several genes is an error naming their IDs (list the ID meant instead).
    """
    requested = list(requested)
    _note_duplicates(requested, source)
    requested = list(dict.fromkeys(requested))
    if not requested:
        raise InputError(f"{source} is empty: name at least one gene")
    exact = set(genes["gene_id"].to_list())
    by_base: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for gid, name in genes.select("gene_id", "gene_name").iter_rows():
        by_base.setdefault(strip_version(gid), gid)
        by_name.setdefault(name, []).append(gid)
    out: list[str] = []
    unknown: list[str] = []
    other_version: list[str] = []
    for r in requested:
        if r in exact:
            out.append(r)
            continue
        hit = by_base.get(strip_version(r))
        if hit is not None:
            if strip_version(r) != r and hit != strip_version(r):
                other_version.append(f"{r} -> {hit}")
            out.append(hit)
            continue
        named = by_name.get(r, [])
        if len(named) > 1:
            raise InputError(
                f"gene name {r} in {source} is shared by {len(named)} genes of the annotation: {', '.join(named)}; "
                "list the gene ID you mean instead of the name"
            )
        (out if named else unknown).append(named[0] if named else r)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f", … ({len(unknown)} in all)" if len(unknown) > 5 else "")
        raise InputError(f"genes in {source} not found in the annotation: {shown} (use gene IDs or names of the GTF)")
    if other_version:
        shown = ", ".join(other_version[:5]) + (f", … ({len(other_version)} in all)" if len(other_version) > 5 else "")
        log.warning("%s names other versions of annotation genes; using the annotation's: %s", source, shown)
    same: dict[str, list[str]] = {}
    for r, gid in zip(requested, out):
        same.setdefault(gid, []).append(r)
    alias = {gid: rs for gid, rs in same.items() if len(rs) > 1}
    if alias:  # e.g. an ID and the gene's name, or two versions of one ID
        shown = "; ".join(f"{' and '.join(rs)} -> {gid}" for gid, rs in list(alias.items())[:5])
        log.warning("%s names %d gene(s) twice under different names (%s%s); each gene is used once", source,
                    len(alias), shown, ", …" if len(alias) > 5 else "")
    return list(dict.fromkeys(out))


def _note_duplicates(ids: Sequence[str], source: str) -> None:
    """One warning naming the IDs listed more than once (the caller uses each once)."""
    counts: dict[str, int] = {}
    for x in ids:
        counts[x] = counts.get(x, 0) + 1
    dup = [(x, n) for x, n in counts.items() if n > 1]
    if dup:
        shown = ", ".join(f"{x} ({n}x)" for x, n in dup[:10]) + (f", … ({len(dup)} in all)" if len(dup) > 10 else "")
        log.warning("%s lists %d gene(s) more than once: %s; each is used once", source, len(dup), shown)


def order_genes(genes: pl.DataFrame) -> pl.DataFrame:
    """Canonical gene order of the design: (chrom, start, gene_id)."""
    return genes.sort("chrom", "start", "gene_id")


def genes_subset(genes: pl.DataFrame, gene_ids: Sequence[str]) -> pl.DataFrame:
    return order_genes(genes.filter(pl.col("gene_id").is_in(list(gene_ids))))


def requested_genes(
    genes: pl.DataFrame,
    *,
    gene_list: Sequence[str] | None = None,
    gene_ids_file: Path | None = None,
    gene_col: str | None = None,
    n_genes: int | None = None,
) -> pl.DataFrame:
    """Genes named by ``gene_list`` and/or ``gene_ids_file`` (IDs or names), or all; first ``n_genes``
    of them in the canonical (chrom, start, gene_id) order."""
    from .genelists import order_genes, read_gene_list, resolve_gene_ids

    requested: list[str] = list(gene_list or [])
    if gene_ids_file is not None:
        requested += read_gene_list(gene_ids_file, gene_col)
    if requested:
        ids = resolve_gene_ids(genes, requested, source="--genes/--gene-ids-file")
        genes = genes.filter(pl.col("gene_id").is_in(ids))
    genes = order_genes(genes)
    if n_genes is not None:
        if n_genes < 1:
            raise InputError(f"--n-genes {n_genes}: give a positive number of genes")
        genes = genes.head(n_genes)
    return genes
