"""Gene annotation (GTF 2.2 / GFF3, plain or gzip; SpliceAI's tables, :mod:`.spliceai_table`) to the tables
every later stage reads.

Tables (polars), coordinates **1-based closed** on the chromosome unless said otherwise:

- ``genes``: gene_id, gene_name, gene_type, chrom, strand, start, end, length, transcript_count, exon_count
- ``transcripts``: transcript_id, gene_id, transcript_type, chrom, strand, start, end, exon_count
- ``exons``: gene_id, transcript_id, chrom, strand, start, end, exon_number (1 = first in transcription order)
- ``splice_sites``: gene_id, chrom, strand, site_type, genomic_position (1-based), position (0-based index
  into the gene body in transcription direction), transcript_ids, transcript_count

A splice site is an exon-boundary base in transcription orientation: donor = last base of the upstream
exon, acceptor = first base of the downstream exon; sites come from transcripts with >= 2 exons.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..config import MIN_EXONS_FOR_SITES
from ..errors import InputError
from ..storage import checksum as file_checksum
from ..storage import guarded_write, is_stdio, read_once
from .records import drop_overlapping, empty_issues, overlapping, split_by_place
from .spliceai_table import is_spliceai_table, resolve_annotation, table_records

log = logging.getLogger(__name__)

TABLES = ("genes", "transcripts", "exons", "splice_sites")
_CACHE_VERSION = "2"  # 2: IDs at several places split, overlapping transcripts dropped
_HEAD_BYTES = 1 << 20  # bytes read up front to recognise GFF3 and empty files
_GTF_COLS = ["chrom", "source", "feature", "start", "end", "score", "strand", "frame", "attributes"]
_GENE_LEVEL = ("gene",)
#: GFF3 features below the exon level: never a gene, transcript or exon (all others may be, by the ID/Parent tree)
_GFF3_SUB_EXON = ("CDS", "five_prime_UTR", "three_prime_UTR", "UTR", "start_codon", "stop_codon", "Selenocysteine",
                  "stop_codon_redefined_as_selenocysteine", "intron")
#: GFF3 ID/Parent prefixes of Ensembl (gene:, transcript:) and RefSeq (gene-, rna-): the IDs of their GTFs lack them
_GFF3_PREFIX = r"(?:gene:|transcript:|gene-|rna-)"
_TX_LEVEL = ("transcript", "mRNA", "lnc_RNA", "ncRNA", "miRNA", "snRNA", "snoRNA", "rRNA", "tRNA",
             "pseudogenic_transcript", "primary_transcript", "unconfirmed_transcript", "V_gene_segment",
             "C_gene_segment", "D_gene_segment", "J_gene_segment", "scRNA", "scaRNA", "vault_RNA", "Y_RNA")
#: a whole GTF attribute column: ``key value;`` pairs, the value quoted (``"..."``) or one bare word, the last
#: ``;`` optional, empty ``;;`` tolerated; anything else (cut mid-value, unbalanced quotes, a key without value)
#: does not match
_GTF_ATTRS_RE = r'^\s*(?:[^\s";]+\s+(?:"[^"]*"|[^\s";]+)\s*(?:;[\s;]*|$))*$'
#: a whole GFF3 attribute column: ``.`` or ``key=value`` pairs separated by ``;``
_GFF3_ATTRS_RE = r"^\s*(?:\.|(?:[^;=\s][^;=]*=[^;]*(?:;[\s;]*|$))*)\s*$"


@dataclass(frozen=True)
class Annotation:
    """The four annotation tables of one GTF/GFF file."""

    genes: pl.DataFrame
    transcripts: pl.DataFrame
    exons: pl.DataFrame
    splice_sites: pl.DataFrame
    source: str = ""
    #: the records split or dropped on reading (:mod:`.records`); empty for a clean file or a strict read
    issues: pl.DataFrame = field(default_factory=empty_issues)

    def gene_sites(self, gene_id: str) -> pl.DataFrame:
        return self.splice_sites.filter(pl.col("gene_id") == gene_id)


# --------------------------------------------------------------------------- reading


def check_readable(path: Path, what: str, flag: str, *, read_once: bool = False) -> None:
    """A one-line error when an input file is missing or unreadable (``flag`` names the option that gives it).

    ``read_once`` inputs may also be ``-`` (stdin) or a pipe (``<(…)``, ``/dev/fd/N``); other inputs are
    read more than once, so they must be regular files (a pipe is refused, saying so).
    """
    if read_once and is_stdio(path):
        return
    if not path.exists():
        raise InputError(f"{what} not found: {path} (give an existing file with {flag})")
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder, not a file (give a file with {flag})")
    if not path.is_file() and not read_once:
        raise InputError(f"{what} {path} is a pipe or a device, not a file: it is read more than once, so give it "
                         f"as a file with {flag} (save the command's output to a file first)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} not readable: {path} (check its permissions)")


def _is_gff3(path: Path, raw: bytes) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".gff3", ".gff")):
        return True
    if name.endswith(".gtf"):
        return False
    for line in raw.split(b"\n", 200)[:200]:
        if line.startswith(b"##gff-version 3"):
            return True
        if line and not line.startswith(b"#"):
            fields = line.split(b"\t")
            return len(fields) == 9 and b"=" in fields[8] and b'"' not in fields[8]
    return False


def read_maybe_gzip(path: Path, what: str) -> bytes:
    """The bytes of a plain or gzip file, read once (``-``, a pipe or a FIFO will do: :func:`read_once`);
    a damaged gzip stream (``zlib.error``, ``EOFError``, ``BadGzipFile``) is one :class:`InputError`
    naming the file and the fix."""
    try:
        raw = read_once(path)
    except OSError as err:
        raise InputError(f"cannot read {what} {path}: {err.strerror or err}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise InputError(f"{what} {path} is a corrupt or truncated gzip file ({' '.join(str(err).split())}); "
                         "download it again or re-compress it from the original (gzip -t checks a file)") from None


def _read_raw(path: Path) -> bytes:
    return read_maybe_gzip(path, "annotation")


def _locate_bad_line(raw: bytes, path: Path) -> InputError:
    """Scan line by line (slow path, only after the fast parser failed) for the first malformed line."""
    for lineno, line in enumerate(io.BytesIO(raw), start=1):
        text = line.rstrip(b"\r\n")
        if not text or text.startswith(b"#"):
            continue
        fields = text.split(b"\t")
        if len(fields) != 9:
            return InputError(
                f"{path}, line {lineno}: {len(fields)} tab-separated fields, a GTF/GFF line needs 9 "
                "(check for spaces instead of tabs or a truncated file)"
            )
        for name, value in (("start", fields[3]), ("end", fields[4])):
            if not value.strip().isdigit():
                return InputError(
                    f"{path}, line {lineno}: {name} coordinate {value.decode(errors='replace')!r} is not a "
                    "positive integer"
                )
    return InputError(f"{path}: not a readable GTF/GFF file (no tab-separated 9-field lines)")


def _attribute_problem(text: str, gff: bool) -> str:
    """What is wrong with one attribute column that did not match the grammar (slow path, one line)."""
    if not gff and text.count('"') % 2:
        return "unbalanced quotes in the attributes (a value cut short or a stray '\"')"
    for part in (p.strip() for p in (text.split(";") if gff else re.findall(r'(?:[^;"]|"[^"]*")+', text))):
        if not part:
            continue
        ok = (re.fullmatch(r"[^=\s][^=]*=.*", part) or part == ".") if gff else \
            re.fullmatch(r'[^\s";]+\s+(?:"[^"]*"|[^\s";]+)', part)
        if not ok:
            form = "key=value" if gff else 'key "value"'
            return f"attribute {part[:60]!r} is not a {form} pair"
    return "attributes do not parse"


def _bad_attributes(raw: bytes, path: Path, data_row: int, gff: bool) -> InputError:
    """The one-line error for the malformed attribute column of data row ``data_row`` (0-based)."""
    lineno = _line_of(raw, data_row)
    line = raw.split(b"\n")[lineno - 1].rstrip(b"\r").decode(errors="replace")
    problem = _attribute_problem(line.split("\t", 8)[-1], gff)
    return InputError(
        f"{path}, line {lineno}: {problem}; a {'GFF3' if gff else 'GTF'} attribute column is "
        + ("'key=value' pairs separated by ';'" if gff else "'key \"value\";' pairs")
        + " (is the file truncated? re-download or fix that line)"
    )


def _line_of(raw: bytes, data_row: int) -> int:
    """1-based line number of the ``data_row``-th (0-based) non-comment, non-empty line."""
    seen = -1
    for lineno, line in enumerate(io.BytesIO(raw), start=1):
        if line.strip() and not line.startswith(b"#"):
            seen += 1
            if seen == data_row:
                return lineno
    return -1


def _attr(key: str, gff: bool) -> pl.Expr:
    if gff:
        pattern = rf"(?:^|;)\s*{key}=([^;]*)"
    else:
        pattern = rf'(?:^|;)\s*{key}\s+"?([^";]*)"?'
    return pl.col("attributes").str.extract(pattern, 1)


def _first(*exprs: pl.Expr) -> pl.Expr:
    return pl.coalesce(list(exprs))


def _gtf_attrs() -> list[pl.Expr]:
    """The GTF attribute columns every table needs (extracted once, from gene/transcript/exon lines only)."""
    return [
        _attr("gene_id", False).alias("gene_id"),
        _attr("transcript_id", False).alias("transcript_id"),
        _attr("gene_name", False).alias("gene_name"),
        # GENCODE's gene_type or Ensembl's gene_biotype in one pattern (one regex pass instead of two)
        _attr("gene_(?:bio)?type", False).alias("gene_type"),
        _attr("transcript_(?:bio)?type", False).alias("transcript_type"),
    ]


def _parse_lines(path: Path, source: Path | io.BytesIO, gff: bool) -> pl.DataFrame:
    """Vectorised (streaming) read of gene/transcript/exon-level lines with their data-row index.

    A plain file is scanned from disk, so neither its bytes nor its CDS/UTR/codon lines are ever held
    in memory; GTF attributes are extracted inside the same scan and the attribute text dropped.
    """
    lf = (
        pl.scan_csv(
            source,
            separator="\t",
            has_header=False,
            comment_prefix="#",
            quote_char=None,
            schema={c: pl.Utf8 for c in _GTF_COLS},
        )
        .with_row_index("row")
        # short lines (null attributes) are kept so that they can be reported below; GFF3 keeps every
        # feature type above the exon level (ncRNA_gene, pseudogene, ...): its ID/Parent tree says what is what
        .filter((~pl.col("feature").is_in(_GFF3_SUB_EXON) if gff
                 else pl.col("feature").is_in(("exon",) + _GENE_LEVEL + _TX_LEVEL)) | pl.col("attributes").is_null())
        .with_columns(
            pl.col("start").str.strip_chars().cast(pl.Int64, strict=False),
            pl.col("end").str.strip_chars().cast(pl.Int64, strict=False),
            pl.col("attributes").is_null().alias("_short"),
            # a line that does not parse completely (e.g. the last line cut mid-value) is an error below
            ~pl.col("attributes").str.contains(_GFF3_ATTRS_RE if gff else _GTF_ATTRS_RE).fill_null(True)
            .alias("_badattr"),
        )
        .drop("source", "score", "frame")
    )
    if not gff:
        lf = lf.with_columns(_gtf_attrs()).drop("attributes")
    try:
        df = lf.collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError):
        raise _locate_bad_line(_read_raw(path), path) from None
    if df["_short"].any() or (df["start"].is_null() | df["end"].is_null()).any():
        raise _locate_bad_line(_read_raw(path), path)
    if df["_badattr"].any():
        raise _bad_attributes(_read_raw(path), path, int(df.filter("_badattr")["row"][0]), gff)
    df = df.drop("_short", "_badattr")
    if df.height == 0 or not (df["feature"] == "exon").any():
        raise InputError(f"{path}: no exon lines found (the annotation must list exons)")
    return df


def _validate_rows(df: pl.DataFrame, path: Path) -> None:
    for cond, msg in (
        (pl.col("start") > pl.col("end"), "start {start} > end {end}"),
        (~pl.col("strand").is_in(["+", "-"]), "unknown strand {strand!r} (use '+' or '-')"),
        (pl.col("start") < 1, "start {start} < 1 (GTF/GFF coordinates are 1-based)"),
    ):
        hit = df.filter(cond)
        if hit.height:
            row = hit.row(0, named=True)
            line = _line_of(_read_raw(path), int(row["row"]))
            raise InputError(f"{path}, line {line}: {row['feature']} line has " + msg.format(**row))


def _gtf_tables(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Exons, transcript-level and gene-level records of a GTF (attribute columns already extracted)."""
    exons = df.filter(pl.col("feature") == "exon")
    txs = df.filter(pl.col("feature") == "transcript")
    genes = df.filter(pl.col("feature") == "gene")
    return exons, txs, genes


def _gff3_tables(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Exons, transcripts and genes of a GFF3 through the ID/Parent tree (Ensembl, GENCODE, RefSeq).

    A transcript is whatever an exon names as Parent, a gene whatever a transcript names as Parent,
    whatever their feature type (``gene``, ``ncRNA_gene``, ``pseudogene``, ``mRNA``, ``lnc_RNA``, ...).
    Gene-level attributes (name, type) come from the gene record only: an exon's ``Name`` (Ensembl
    puts exon IDs there) or a transcript's ``biotype`` never renames or retypes its gene.
    """
    df = df.with_columns(
        _attr("ID", True).str.replace(rf"^{_GFF3_PREFIX}", "").alias("id"),
        _attr("Parent", True).str.replace_all(rf"(^|,){_GFF3_PREFIX}", "$1").alias("parent"),
        _first(_attr("gene_name", True), _attr("Name", True), _attr("gene", True)).alias("name"),
        _first(_attr("gene_type", True), _attr("gene_biotype", True), _attr("biotype", True)).alias("gtype"),
        _first(_attr("transcript_type", True), _attr("transcript_biotype", True), _attr("biotype", True)).alias(
            "ttype"
        ),
    )
    exons = (
        df.filter(pl.col("feature") == "exon")
        .with_columns(pl.col("parent").str.split(","))
        .explode("parent")
        .rename({"parent": "transcript_id"})
    )
    tx_ids = exons["transcript_id"].unique()
    # an exon whose parent is a gene record (no transcript line) stands for a one-transcript gene;
    # exons without transcript records fall back on their gene_id key (GENCODE), else their parent
    txs = df.filter(pl.col("id").is_in(tx_ids.implode()) & (pl.col("feature") != "exon")).select(
        "row", "chrom", "feature", "start", "end", "strand",
        pl.col("id").alias("transcript_id"),
        pl.coalesce(pl.col("parent").str.split(",").list.first(), "id").alias("gene_id"),
        pl.col("ttype").alias("transcript_type"),
    )
    genes = df.filter(pl.col("id").is_in(txs["gene_id"].unique().implode()) & (pl.col("feature") != "exon")).select(
        "row", "chrom", "feature", "start", "end", "strand",
        pl.col("id").alias("gene_id"),
        pl.col("name").alias("gene_name"),
        pl.col("gtype").alias("gene_type"),
    )
    tx_gene = txs.select("transcript_id", "gene_id", "transcript_type")
    exons = exons.drop("id").join(tx_gene, on="transcript_id", how="left").with_columns(
        pl.coalesce("gene_id", _attr("gene_id", True), "transcript_id").alias("gene_id"),
        # only explicit gene keys of an exon (GENCODE repeats them), never its Name or biotype; the gene
        # record wins where there is one (see _build_tables)
        _attr("gene_name", True).alias("gene_name"),
        _first(_attr("gene_type", True), _attr("gene_biotype", True)).alias("gene_type"),
    )
    return exons, txs, genes


def _check_exon_overlaps(exons: pl.DataFrame, path: Path) -> None:
    """Exons of one transcript must not overlap (they would make inverted donor/acceptor pairs).

    ``exons`` is sorted by (transcript_id, start, end) with running transcript numbers ``_t``.
    """
    bad = overlapping(exons)
    if bad.height == 0:
        return
    r = bad.sort("row").row(0, named=True)
    raw = _read_raw(path)
    line, prev_line = _line_of(raw, int(r["row"])), _line_of(raw, int(r["_prev_row"]))
    raise InputError(
        f"{path}, line {line}: exon {r['start']}-{r['end']} of transcript {r['transcript_id']} overlaps its exon "
        f"{r['_prev_start']}-{r['_prev_end']} (line {prev_line}); exons of one transcript must not overlap: merge "
        f"or drop one ({bad['transcript_id'].n_unique()} transcript(s) affected)"
    )


def _check_one_place(exons: pl.DataFrame, path: Path) -> None:
    """Strict reading: one gene, one contig and one strand (else the file is refused)."""
    spread = (
        exons.group_by("gene_id")
        .agg(pl.col("chrom").n_unique().alias("nc"), pl.col("strand").n_unique().alias("ns"))
        .filter((pl.col("nc") > 1) | (pl.col("ns") > 1))
        .sort("gene_id")
    )
    if spread.height:
        r = spread.row(0, named=True)
        bad = exons.filter(pl.col("gene_id") == r["gene_id"])
        cs, ss = sorted(bad["chrom"].unique()), sorted(bad["strand"].unique())
        raise InputError(
            f"{path}: gene {r['gene_id']} has exons on several contigs/strands "
            f"({', '.join(cs)} / {', '.join(ss)}); fix or drop that gene "
            f"({spread.height} such gene(s))"
        )


def _build_tables(exons: pl.DataFrame, txs: pl.DataFrame, genes: pl.DataFrame, path: Path,
                  strict: bool = False) -> Annotation:
    """The four tables from exon, transcript and gene records. ``strict``: refuse a gene on several
    contigs/strands and a transcript with overlapping exons (duplicated exons merged, as before); else
    split the first and drop the second (:mod:`.records`)."""
    missing = exons.filter(pl.col("gene_id").is_null() | pl.col("transcript_id").is_null())
    if missing.height:
        raise InputError(
            f"{path}: exon line without gene_id/transcript_id (data line {int(missing['row'][0]) + 1}); "
            "every exon needs both attributes (GTF) or a Parent (GFF3)"
        )
    issues = [empty_issues()]
    if strict:
        _check_one_place(exons, path)
    else:
        exons, txs, genes, split = split_by_place(exons, txs, genes, str(path))
        issues.append(split)
    exons = exons.select("gene_id", "transcript_id", "chrom", "strand", "start", "end", "gene_name", "gene_type",
                         "transcript_type", "row")
    if strict:
        exons = exons.unique(subset=["transcript_id", "start", "end"], keep="first", maintain_order=True)
    exons = (
        exons.sort("transcript_id", "start", "end")
        # running transcript number (in transcript_id order): an integer key for the windows below
        .with_columns((pl.col("transcript_id") != pl.col("transcript_id").shift(1)).fill_null(True).cum_sum()
                      .alias("_t"))
    )
    if strict:
        _check_exon_overlaps(exons, path)
    else:
        exons, dropped = drop_overlapping(exons, str(path))
        issues.append(dropped)
    exons = exons.drop("row")
    tx = exons.group_by("transcript_id", maintain_order=True).agg(
        pl.col("gene_id").first(), pl.col("transcript_type").first(), pl.col("chrom").first(),
        pl.col("strand").first(), pl.col("start").min(), pl.col("end").max(), pl.len().alias("exon_count"),
    )
    if txs.height:  # prefer explicit transcript lines for types and spans
        tx_lines = txs.unique(["transcript_id", "chrom", "strand"], keep="first").select(
            "transcript_id", "chrom", "strand", pl.col("start").alias("t_start"), pl.col("end").alias("t_end"),
            pl.col("transcript_type").alias("t_type"),
        )
        tx = tx.join(tx_lines, on=["transcript_id", "chrom", "strand"], how="left").with_columns(
            pl.min_horizontal("start", "t_start").alias("start"),
            pl.max_horizontal("end", "t_end").alias("end"),
            pl.coalesce("t_type", "transcript_type").alias("transcript_type"),
        ).drop("t_start", "t_end", "t_type")
    tx = tx.with_columns(pl.col("transcript_type").fill_null("unknown")).select(
        "transcript_id", "gene_id", "transcript_type", "chrom", "strand", "start", "end", "exon_count"
    ).sort("chrom", "start", "transcript_id")

    g = exons.group_by("gene_id").agg(
        pl.col("gene_name").drop_nulls().first(), pl.col("gene_type").drop_nulls().first(),
        pl.col("chrom").first(), pl.col("strand").first(), pl.col("start").min(), pl.col("end").max(),
        pl.col("transcript_id").n_unique().alias("transcript_count"),
        pl.struct("start", "end").n_unique().alias("exon_count"),
    )
    if genes.height:
        g_lines = genes.unique(["gene_id", "chrom", "strand"], keep="first").select(
            "gene_id", "chrom", "strand", pl.col("start").alias("g_start"), pl.col("end").alias("g_end"),
            pl.col("gene_name").alias("g_name"), pl.col("gene_type").alias("g_type"),
        )
        g = g.join(g_lines, on=["gene_id", "chrom", "strand"], how="left").with_columns(
            pl.min_horizontal("start", "g_start").alias("start"),
            pl.max_horizontal("end", "g_end").alias("end"),
            pl.coalesce("g_name", "gene_name").alias("gene_name"),  # the gene record first
            pl.coalesce("g_type", "gene_type").alias("gene_type"),
        ).drop("g_start", "g_end", "g_name", "g_type")
    g = g.with_columns(
        pl.coalesce("gene_name", "gene_id").alias("gene_name"),
        pl.col("gene_type").fill_null("unknown"),
        (pl.col("end") - pl.col("start") + 1).alias("length"),
    ).select("gene_id", "gene_name", "gene_type", "chrom", "strand", "start", "end", "length",
             "transcript_count", "exon_count").sort("chrom", "start", "gene_id")

    ex = exons.select("gene_id", "transcript_id", "chrom", "strand", "start", "end", "_t").with_columns(
        pl.when(pl.col("strand") == "+")
        .then(pl.int_range(1, pl.len() + 1).over("_t"))
        .otherwise(pl.int_range(pl.len(), 0, -1).over("_t"))
        .cast(pl.Int32)
        .alias("exon_number")
    )
    sites = _splice_sites(ex, g)
    return Annotation(genes=g, transcripts=tx, exons=ex.drop("_t"), splice_sites=sites, source=str(path),
                      issues=pl.concat(issues))


def _splice_sites(exons: pl.DataFrame, genes: pl.DataFrame) -> pl.DataFrame:
    """Union over multi-exon transcripts of exon-boundary sites (1-based genomic positions).

    ``exons`` is sorted by (transcript_id, start) and numbers its transcripts in that order (``_t``), so
    the next exon is the next row and grouping/sorting can run on integers instead of strings.
    """
    t = pl.col("_t")
    nxt = exons.with_columns(
        pl.col("start").shift(-1).alias("next_start"),
        (t.shift(-1) == t).fill_null(False).alias("_more"),
        pl.len().over("_t").alias("n"),
    ).filter(pl.col("_more") & (pl.col("n") >= MIN_EXONS_FOR_SITES))
    # genes numbered in output order (chrom, gene_id)
    spans = genes.select("gene_id", "chrom", "strand", pl.col("start").alias("g_start"),
                         pl.col("end").alias("g_end")).sort("chrom", "gene_id").with_row_index("_g")
    nxt = nxt.select("gene_id", "_t", "transcript_id", "strand", "end", "next_start").join(
        spans.select("gene_id", "_g"), on="gene_id")
    plus = pl.col("strand") == "+"
    # + strand: donor = end of the lower exon, acceptor = start of the next; - strand: the reverse
    keys = ["_g", "genomic_position", "_donor"]
    sites = pl.concat([
        nxt.select("_g", "_t", "transcript_id", pl.lit(True).alias("_donor"),
                   pl.when(plus).then(pl.col("end")).otherwise(pl.col("next_start")).alias("genomic_position")),
        nxt.select("_g", "_t", "transcript_id", pl.lit(False).alias("_donor"),
                   pl.when(plus).then(pl.col("next_start")).otherwise(pl.col("end")).alias("genomic_position")),
    ]).sort(*keys, "_t")
    # a transcript listed once per site, in transcript_id order
    repeat = pl.all_horizontal([pl.col(k) == pl.col(k).shift(1) for k in (*keys, "_t")]).fill_null(False)
    return (
        sites.filter(~repeat)
        .group_by(keys, maintain_order=True)
        .agg(pl.col("transcript_id").alias("transcript_ids"))
        .join(spans, on="_g", maintain_order="left")
        .with_columns(
            pl.when(pl.col("_donor")).then(pl.lit("donor")).otherwise(pl.lit("acceptor")).alias("site_type"),
            pl.when(plus).then(pl.col("genomic_position") - pl.col("g_start"))
            .otherwise(pl.col("g_end") - pl.col("genomic_position")).alias("position"),
            pl.col("transcript_ids").list.len().cast(pl.Int32).alias("transcript_count"),
        )
        .select("gene_id", "chrom", "strand", "site_type", "genomic_position", "position", "transcript_ids",
                "transcript_count")
    )


#: set (to anything but empty or 0) by ``--strict-annotation``: every reader in this process and its workers
#: refuses odd records instead of splitting or dropping them (:mod:`.records`)
STRICT_ENV = "META_SPLICEAI_STRICT_ANNOTATION"


def strict_default() -> bool:
    """Whether annotations are read strictly when a caller does not say (``--strict-annotation``)."""
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def parse_annotation(path: str | os.PathLike[str], *, strict: bool | None = None) -> Annotation:
    """Parse a GTF, GFF3 (plain or gzip) or SpliceAI table (``grch37``, ``grch38`` or a file of that format)
    into the four tables, without caching. ``strict`` (default :func:`strict_default`): refuse a gene on
    several contigs/strands or a transcript with overlapping exons instead of splitting/dropping it."""
    path = resolve_annotation(path)
    strict = strict_default() if strict is None else strict
    check_readable(path, "annotation", "--gtf")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as err:
        raise InputError(f"cannot read annotation {path}: {err}") from None
    # gzip is inflated in memory (polars scans plain files only); plain files are scanned from disk
    source: Path | io.BytesIO = path
    if head[:2] == b"\x1f\x8b":
        raw = _read_raw(path)
        source, head = io.BytesIO(raw), raw[:_HEAD_BYTES]
        empty = not raw.strip()
        del raw
    else:
        empty = len(head) < _HEAD_BYTES and not head.strip()
    if empty:
        raise InputError(f"annotation {path} is empty (give a GTF/GFF3 with exon lines)")
    if is_spliceai_table(head):
        kind = "SpliceAI table"
        exons, txs, genes = table_records(path, source.getvalue() if isinstance(source, io.BytesIO) else _read_raw(path))
    else:
        gff = _is_gff3(path, head)
        kind = "GFF3" if gff else "GTF"
        df = _parse_lines(path, source, gff)
        del source
        _validate_rows(df, path)
        exons, txs, genes = (_gff3_tables if gff else _gtf_tables)(df)
        del df
    ann = _build_tables(exons, txs, genes, path, strict=strict)
    log.debug("annotation %s (%s): %d genes, %d transcripts, %d exons, %d splice sites", path, kind,
              ann.genes.height, ann.transcripts.height, ann.exons.height, ann.splice_sites.height)
    return ann


def load_annotation(path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None, *,
                    strict: bool | None = None) -> Annotation:
    """Parsed tables of ``path`` (see :func:`parse_annotation`), read from ``cache_dir`` when a cache for
    the same file checksum and reading mode exists."""
    path = resolve_annotation(path)
    strict = strict_default() if strict is None else strict
    check_readable(path, "annotation", "--gtf")
    if cache_dir is None:
        return parse_annotation(path, strict=strict)
    cache = cache_folder(path, cache_dir, strict)
    files = {t: cache / f"{t}.parquet" for t in (*TABLES, "issues")}
    if all(f.is_file() for f in files.values()):
        log.info("annotation tables from cache %s", cache)
        return Annotation(**{t: pl.read_parquet(f) for t, f in files.items()}, source=str(path))
    ann = parse_annotation(path, strict=strict)
    save_cache(ann, cache)
    return ann


def cache_folder(path: Path, cache_dir: str | os.PathLike[str], strict: bool) -> Path:
    """Where :func:`load_annotation` keeps the tables of ``path`` (its checksum and the reading mode)."""
    return Path(cache_dir) / f"{file_checksum(path)}-v{_CACHE_VERSION}{'-strict' if strict else ''}"


def save_cache(ann: Annotation, cache: Path) -> None:
    """Write the tables (and the issues) of ``ann`` into ``cache`` (each file to a temporary name, then renamed)."""
    cache.mkdir(parents=True, exist_ok=True)
    for t in (*TABLES, "issues"):
        f = cache / f"{t}.parquet"
        tmp = f.with_name(f".{f.name}.tmp")
        guarded_write(tmp, f, lambda: getattr(ann, t).write_parquet(tmp))  # noqa: B023 - called at once
        os.replace(tmp, f)


# --------------------------------------------------------------------------- gene lists


