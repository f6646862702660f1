"""``variants --precomputed FILE.vcf.gz ...``: SpliceAI entries taken from precomputed VCFs for the records they
hold, the others computed.

A precomputed file is a bgzipped, tabix-indexed VCF whose records carry SpliceAI's INFO key: Illumina's
``spliceai_scores.{raw,masked}.{snv,indel}.hg{19,38}.vcf.gz`` (one ALT per line) or any ``spliceai`` /
``meta-spliceai variants`` output. A record of the input is *held* by a file when, for each of its ALT
alleles that SpliceAI scores (not symbolic, ``*``, ``.``), the file has a line at the same contig (``chr``
prefix matched as SpliceAI does), 1-based POS and REF with that ALT and a SpliceAI entry for it; its entries
are then those lines' entries in ALT order (each allele's genes in the file's order, as SpliceAI writes them).
The first file that holds a record supplies it.

**Trust rule**: a random sample of the records each file would supply, ``min(all, max(30, 1 %))`` of them
(``random.Random(0)``: the same sample on every run), is recomputed along with the records no file holds (in
the same passes of the model: a gene's reference is computed once for both); every sampled record must come
out identical, string for string, else the run stops, before any output is written, with an error naming the
likely cause (the file made with another annotation, another ``-D`` or the other ``-M``). The output is then
the same bytes as a run without ``--precomputed``.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..config import DEFAULT_VARIANTS
from ..errors import InputError
from .deltas import Record, symbolic
from .transcripts import match_prefix

log = logging.getLogger(__name__)

INFO_KEY = "SpliceAI"


def _info_entries(info: str) -> list[str]:
    """The SpliceAI entries of a VCF INFO column (``[]`` without the key)."""
    for item in info.split(";"):
        if item.startswith(INFO_KEY + "="):
            return item[len(INFO_KEY) + 1:].split(",")
    return []


@dataclass
class Precomputed:
    """The open precomputed files, in the order given (the first that holds a record supplies it)."""

    paths: list[Path]
    files: list = field(default_factory=list)  # pysam.TabixFile per path
    contigs: list[set[str]] = field(default_factory=list)

    @classmethod
    def open(cls, paths: Sequence[str | os.PathLike[str]]) -> Precomputed:
        import pysam

        out = cls([Path(p) for p in paths])
        for p in out.paths:
            if not p.is_file():
                raise InputError(f"--precomputed {p}: not found (give a bgzipped, tabix-indexed VCF with SpliceAI entries)")
            if not (Path(f"{p}.tbi").is_file() or Path(f"{p}.csi").is_file()):
                raise InputError(f"--precomputed {p} has no tabix index ({p.name}.tbi); make it with: tabix -p vcf {p} "
                                 "(the file must be bgzipped: bgzip FILE.vcf)")
            try:
                f = pysam.TabixFile(str(p))
            except (OSError, ValueError) as err:
                raise InputError(f"--precomputed {p}: not a bgzipped, tabix-indexed VCF ({err}); recompress it with "
                                 "bgzip and index it with tabix -p vcf") from None
            out.files.append(f)
            out.contigs.append(set(f.contigs))
        return out

    def fingerprint(self) -> list[list]:
        """What identifies the files for resuming a run (path, size, modification time: no hashing of GBs)."""
        return [[str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime)] for p in self.paths]

    def close(self) -> None:
        for f in self.files:
            f.close()

    def lookup(self, rec: Record) -> tuple[int, tuple[str, ...]] | None:
        """(index of the file, entries) for a record a file holds (see the module docstring), else None."""
        if not rec.alts:
            return None
        alts = [a for a in rec.alts if not symbolic(a)]
        if not alts:
            return None
        for k, f in enumerate(self.files):
            chrom = self._contig(k, rec.chrom)
            if chrom is None:
                continue
            by_alt: dict[str, list[str]] = {}
            try:
                lines = f.fetch(chrom, rec.pos - 1, rec.pos)
                for line in lines:
                    fields = line.split("\t", 8)
                    if len(fields) < 8 or fields[1] != str(rec.pos) or fields[3] != rec.ref:
                        continue
                    for e in _info_entries(fields[7]):
                        by_alt.setdefault(e.split("|", 1)[0], []).append(e)
            except (OSError, ValueError) as err:
                raise InputError(f"--precomputed {self.paths[k]}: cannot read {chrom}:{rec.pos} ({err}); the file or "
                                 "its index is damaged: re-download it or re-index it with tabix -p vcf") from None
            if all(a in by_alt for a in alts):
                return k, tuple(e for a in alts for e in by_alt[a])
        return None

    def _contig(self, k: int, chrom: str) -> str | None:
        have = self.contigs[k]
        if chrom in have:
            return chrom
        for like in ("chr1", "1"):
            other = match_prefix(chrom, like)
            if other in have:
                return other
        return None


def sample_size(n: int) -> int:
    """Records of a file recomputed before it is trusted: ``min(n, max(check_records, ceil(check_fraction * n)))``."""
    d = DEFAULT_VARIANTS
    return min(n, max(d.check_records, math.ceil(d.check_fraction * n)))


def pick_sample(pre: Precomputed, supplied: dict[int, tuple[int, tuple[str, ...]]]) -> set[int]:
    """The records (indices into the input) of each file's sample: ``sample_size`` of the records it would
    supply (``supplied``: record index -> (file, entries)), drawn with ``random.Random(check_seed)``."""
    rng = random.Random(DEFAULT_VARIANTS.check_seed)
    picked: set[int] = set()
    for k, path in enumerate(pre.paths):
        mine = sorted(i for i, (f, _) in supplied.items() if f == k)
        chosen = rng.sample(mine, sample_size(len(mine))) if mine else []
        picked.update(chosen)
        log.info("--precomputed %s: holds %d record(s) of the input; %d of them are recomputed to check it",
                 path, len(mine), len(chosen))
    return picked


def check_record(path: Path, rec: Record, theirs: Sequence[str], ours: Sequence[str], distance: int) -> None:
    """A sampled record's entries as the file gives them and as computed: an InputError naming the likely cause
    where they differ."""
    if tuple(theirs) == tuple(ours):
        return
    raise InputError(
        f"--precomputed {path}: a sampled record differs from a fresh computation ({rec.chrom}:{rec.pos} "
        f"{rec.ref}>{','.join(rec.alts or ())}: the file says {','.join(theirs)!r}, this run computes "
        f"{','.join(ours) or '(no entry)'!r}); likely cause: {likely_cause(theirs, ours, distance)}. Use a file made "
        "with the same -A, -D and -M as this run (Illumina's files: -A grch37/grch38 -D 50, raw = -M 0, masked = "
        "-M 1), or drop it; nothing was written"
    )


def likely_cause(theirs: Sequence[str], ours: Sequence[str], distance: int) -> str:
    """Why a file's entries differ from ours, from how they differ."""
    a, b = [e.split("|") for e in theirs], [e.split("|") for e in ours]
    if [x[:2] for x in a] != [x[:2] for x in b]:
        return "the file was made with another annotation (other genes at this position than -A gives)"
    for x, y in zip(a, b):
        dps = [int(v) for v in x[6:10] if v.lstrip("-").isdigit()]
        if any(abs(v) > distance for v in dps):
            return f"the file was made with a larger -D (its positions reach past ±{distance})"
        if x[6:10] == y[6:10] and any((u == "0.00") != (v == "0.00") for u, v in zip(x[2:6], y[2:6])):
            return "the file was made with the other masking (-M 0 raw vs -M 1 masked)"
    return "the file was made with another -D, -M or annotation (or another genome build)"
