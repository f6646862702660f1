"""What ``variants`` says about its inputs: errors in its own flags' names, htslib kept off the terminal,
and a malformed VCF record described by line and field (htslib itself only says "truncated file").

Line numbers are 1-based lines of the (decompressed) VCF file, header lines included.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError

log = logging.getLogger(__name__)

#: the other commands' flags in messages of shared code, and ``variants``' (SpliceAI's) names for them
FLAGS = {"--fasta": "-R", "--gtf": "-A"}
#: VCF's fixed columns
COLUMNS = ("CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")


@contextlib.contextmanager
def own_flags() -> Iterator[None]:
    """Re-raise an InputError of shared code (the genome, the annotation) with ``variants``' flag names."""
    try:
        yield
    except InputError as err:
        text = str(err)
        for theirs, ours in FLAGS.items():
            text = re.sub(rf"(?<![\w-]){re.escape(theirs)}(?![\w-])", ours, text)
        raise InputError(text) from None


@contextlib.contextmanager
def quiet_htslib() -> Iterator[None]:
    """htslib's own ``[E::…]``/``[W::…]`` lines off the terminal while a VCF is read (our messages say what
    is wrong instead); the previous verbosity is restored."""
    import pysam

    old = pysam.set_verbosity(0)
    try:
        yield
    finally:
        pysam.set_verbosity(old)


def _lines(path: Path) -> Iterator[str]:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:  # type: ignore[operator]
        yield from fh


def record_line(path: Path, k: int) -> tuple[int, str] | None:
    """(line number, text) of the ``k``-th record (1-based, header lines not counted) of a VCF file."""
    seen = 0
    for n, line in enumerate(_lines(path), start=1):
        if line.startswith("#"):
            continue
        seen += 1
        if seen == k:
            return n, line.rstrip("\r\n")
    return None


def _integers(header: str) -> dict[str, str]:
    """INFO keys of the header declared Integer or Float: their type."""
    return dict(re.findall(r"##INFO=<ID=([^,>]+),Number=[^,>]+,Type=(Integer|Float)", header))


def what_is_wrong(fields: list[str], header: str) -> str:
    """The first problem of a record's tab-separated fields that makes htslib refuse it."""
    if len(fields) < 8:
        return (f"it has {len(fields)} tab-separated field(s), a VCF record needs 8 ({' '.join(COLUMNS)}); "
                "are the columns separated by spaces instead of tabs?")
    chrom, pos, _, ref, alt, qual = fields[:6]
    if not chrom:
        return "CHROM is empty"
    if not re.fullmatch(r"[0-9]+", pos):
        return f"POS {pos!r} is not a positive integer"
    if not ref or ref == ".":
        return f"REF {ref!r} is empty"
    if not alt:
        return "ALT is empty (write . for none)"
    if qual != "." and not re.fullmatch(r"[-+0-9.eE]+|inf|nan", qual, flags=re.I):
        return f"QUAL {qual!r} is not a number or ."
    types = _integers(header)
    for entry in fields[7].split(";") if fields[7] != "." else []:
        key, _, value = entry.partition("=")
        kind = types.get(key)
        pattern = r"-?[0-9]+" if kind == "Integer" else r"[-+0-9.eE]+|inf|nan|NaN"
        for v in value.split(",") if kind and value else []:
            if v != "." and not re.fullmatch(pattern, v):
                return f"INFO {key}={value!r}: the header declares {key} {kind}, and {v!r} is not one"
    return "htslib cannot parse it"


def malformed(path: Path, shown: str, k: int, header: str, err: Exception) -> InputError:
    """The error for the ``k``-th record (1-based) of ``path`` that htslib could not parse: its line and field."""
    found = record_line(path, k)
    if found is None:
        return InputError(f"{shown}: cannot read past record {k - 1:,} ({err}); the file is truncated or corrupt "
                          "(bgzipped files: check it with bgzip -t)")
    n, text = found
    why = what_is_wrong(text.split("\t"), header)
    preview = text if len(text) <= 80 else text[:77] + "..."
    return InputError(f"{shown}, line {n:,} (record {k:,}): {why}: {preview!r}; fix or remove that record")
