"""Contig names across sources: RefSeq accessions (``NC_000001.11``) ↔ UCSC (``chr1``) ↔ Ensembl (``1``).

The alias table is bioframe's (UCSC-style ``seqinfo`` tables for hg19/GRCh37 and hg38/GRCh38, shipped as
package data of the ``bioframe`` distribution; read here from where it is installed, without importing
bioframe, and never downloaded). One row of a table is one sequence: its UCSC name, its length, and its
aliases (Ensembl/GRC name, GenBank and RefSeq accessions). hg19 keeps two mitochondria apart: ``chrM``
(NC_001807.4, 16,571 nt) and ``chrMT`` = ``MT`` (rCRS, NC_012920.1, 16,569 nt); in hg38 ``chrM`` is rCRS.
"""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

#: bioframe's tables read here, the assembly whose names a FASTA is checked against first listed first
ASSEMBLIES = ("hg38", "hg19")


@dataclass(frozen=True)
class Sequence:
    """One row of an assembly table: every name of one sequence and its length."""

    assembly: str
    names: tuple[str, ...]  # UCSC name first, then the aliases
    length: int
    non_nuclear: bool  # a mitochondrion


def _table_path(assembly: str) -> Path | None:
    try:
        dist = metadata.distribution("bioframe")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(f"bioframe/io/data/{assembly}.seqinfo.tsv")))
    return path if path.is_file() else None


@functools.cache
def assembly_table(assembly: str) -> tuple[Sequence, ...]:
    """The sequences of ``assembly`` (``hg19``/``hg38``) from bioframe's package data; empty without bioframe."""
    path = _table_path(assembly)
    if path is None:
        log.warning("bioframe's %s contig table is not installed: contig names are matched by their chr prefix only "
                    "(pip install bioframe)", assembly)
        return ()
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh, delimiter="\t"):
            aliases = tuple(a for a in (r.get("aliases") or "").split(",") if a)
            rows.append(Sequence(assembly, (r["name"], *aliases), int(r["length"]),
                                 (r.get("unit") or "").startswith("non-nuclear")))
    return tuple(rows)


@functools.cache
def _index(assembly: str) -> dict[str, Sequence]:
    return {n: s for s in assembly_table(assembly) for n in s.names}


def fasta_assembly(fasta_contigs: Mapping[str, int]) -> str | None:
    """The table whose (name, length) pairs the FASTA agrees with most (at least one), else ``None``.

    A FASTA of slices (test bundles) agrees with none: then every table is used, hg38's first.
    """
    best, hits = None, 0
    for asm in ASSEMBLIES:
        idx = _index(asm)
        n = sum(1 for c, length in fasta_contigs.items() if c in idx and idx[c].length == length)
        if n > hits:
            best, hits = asm, n
    return best


@dataclass(frozen=True)
class AliasHit:
    """How an annotation contig was found in the FASTA through the alias table."""

    fasta_name: str | None  # None: no FASTA contig is this sequence
    sequence: Sequence | None  # the annotation contig's row (None: not in any table)
    mito_conflict: tuple[str, int, int] | None = None  # (FASTA contig, expected length, FASTA length)


def find_alias(name: str, fasta_contigs: Mapping[str, int], assembly: str | None) -> AliasHit:
    """The FASTA contig that is the same sequence as annotation contig ``name`` (names differ).

    Looked up in the FASTA's assembly (``assembly``), else in every table. A mitochondrion named
    differently on both sides whose lengths differ (hg19 ``chrM`` 16,571 nt vs rCRS ``MT`` 16,569 nt)
    is a conflict, not a match: its sites would sit at wrong positions.
    """
    for asm in (assembly,) if assembly else ASSEMBLIES:
        seq = _index(asm).get(name)
        if seq is None:
            continue
        hit = next((n for n in seq.names if n in fasta_contigs and n != name), None)
        if hit is not None and (not seq.non_nuclear or fasta_contigs[hit] in (seq.length, -1)):  # -1: not known
            return AliasHit(hit, seq)
        if seq.non_nuclear:  # the FASTA's mitochondrion may be the other one
            for other in assembly_table(asm) + tuple(s for a in ASSEMBLIES if a != asm for s in assembly_table(a)):
                got = next((n for n in other.names if n in fasta_contigs), None) if other.non_nuclear else None
                if got is not None and fasta_contigs[got] not in (seq.length, -1):
                    return AliasHit(None, seq, (got, seq.length, fasta_contigs[got]))
        return AliasHit(None, seq)
    return AliasHit(None, None)
