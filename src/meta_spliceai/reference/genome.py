"""Indexed random access to a genome FASTA (plain or BGZF) and contig-name matching.

Coordinates: :meth:`Genome.fetch` takes **0-based half-open** ``[start, end)`` on the
contig; slices past either contig end come back padded with ``N``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

log = logging.getLogger(__name__)

_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def reverse_complement(seq: str) -> str:
    """Reverse complement of an ``ACGTN`` string (other letters are kept, reversed)."""
    return seq.translate(_COMPLEMENT)[::-1]


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _is_bgzf(path: Path) -> bool:
    """BGZF blocks carry the 'BC' extra subfield in their gzip header."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    return len(head) >= 16 and head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK)


class Genome:
    """A FASTA opened for random access; the ``.fai`` (and ``.gzi``) index is made when missing.

    Plain and BGZF-compressed FASTA are supported; plain gzip is refused with the
    command that converts it (``bgzip``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"FASTA not found: {self.path} (give an existing genome FASTA with --fasta)")
        if not os.access(self.path, os.R_OK):
            raise InputError(f"FASTA not readable: {self.path} (check its permissions)")
        compressed = _is_gzip(self.path)
        if compressed and not _is_bgzf(self.path):
            raise InputError(
                f"FASTA {self.path} is gzip- but not BGZF-compressed, so it cannot be indexed; "
                f"recompress it with: zcat {self.path} | bgzip > {self.path.with_suffix('')}.bgz"
            )
        needed = [Path(f"{self.path}.fai")] + ([Path(f"{self.path}.gzi")] if compressed else [])
        missing = [p for p in needed if not p.is_file()]
        no_index = (
            f"FASTA {self.path} has no index ({', '.join(p.name for p in missing)}) and its folder is read-only; "
            f"index it where it can be written (samtools faidx {self.path.name}) or copy it to a writable folder"
        )
        if missing and not _writable(self.path.parent):
            raise InputError(no_index)
        import pysam  # local: keeps `import meta_spliceai` light

        if missing:
            log.info("indexing %s", self.path)
            with _htslib_messages() as messages:
                try:
                    pysam.faidx(str(self.path))
                    failed = False
                except (OSError, pysam.utils.SamtoolsError):
                    failed = True
            if failed or any(not p.is_file() for p in missing):
                for p in missing:  # a failed run may leave a partial .gzi/.fai that would poison the next one
                    with contextlib.suppress(OSError):
                        p.unlink()
                raise _index_error(self.path, messages)
            for m in messages:  # e.g. duplicate sequence names
                log.warning("indexing %s: htslib: %s", self.path, m)
        try:
            with _htslib_messages() as messages:
                self._fa = pysam.FastaFile(str(self.path))
        except (OSError, ValueError) as err:
            detail = "; ".join(messages) or " ".join(str(err).split())
            raise InputError(f"cannot open FASTA {self.path}: {detail} (is it a valid FASTA? if it changed since it "
                             f"was indexed, delete {self.path.name}.fai and .gzi and re-run)") from None
        self.contigs: dict[str, int] = dict(zip(self._fa.references, self._fa.lengths))
        log.debug("FASTA %s: %d contig(s), %s nt%s", self.path, len(self.contigs), f"{sum(self.contigs.values()):,}",
                  " (BGZF)" if compressed else "")
        if not self.contigs:
            raise InputError(f"FASTA {self.path} holds no sequences")

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, {len(self.contigs)} contigs)"

    def __getstate__(self) -> dict[str, object]:  # reopen in worker processes
        return {"path": self.path}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Uppercase sequence of ``chrom[start:end]`` (0-based half-open), ``N`` past the contig ends."""
        if chrom not in self.contigs:
            raise InputError(f"contig {chrom!r} is not in FASTA {self.path}")
        if end <= start:
            return ""
        length = self.contigs[chrom]
        lo, hi = max(start, 0), min(end, length)
        try:
            core = self._fa.fetch(chrom, lo, hi).upper() if hi > lo else ""
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read {chrom}:{lo + 1}-{hi} from FASTA {self.path}: {' '.join(str(err).split())} "
                             "(the file is truncated or corrupt, or changed since it was indexed: copy it again "
                             f"and delete {self.path.name}.fai/.gzi)") from None
        left = "N" * (min(end, 0) - start if start < 0 else 0)
        right = "N" * (end - max(start, length) if end > length else 0)
        return left + core + right


@contextlib.contextmanager
def _htslib_messages() -> Iterator[list[str]]:
    """Collect what htslib (C code) writes to file descriptor 2, as one-line messages, instead of showing it."""
    messages: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield messages
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                line = line.strip()
                if line:
                    messages.append(re.sub(r"^\[[EW]::\w+\]\s*", "", line))


def _index_error(path: Path, messages: list[str]) -> InputError:
    """What is wrong with a FASTA htslib could not index, from its messages, with the fix."""
    said = "; ".join(m for m in messages if not m.startswith("Error on closing")) or "no message"
    text = " ".join(messages)
    if "truncated at line 1" in text or path.stat().st_size == 0:
        return InputError(f"FASTA {path} is empty (htslib: {said}); give a genome FASTA with --fasta")
    m = re.search(r"unexpected .* at line (\d+)", text)
    if m and m.group(1) == "1":
        return InputError(f"FASTA {path} does not start with a '>' header line (htslib: {said}); is it a FASTA file?")
    if m:
        return InputError(
            f"FASTA {path} has sequence lines of different lengths within a record (htslib: {said}), so it cannot "
            f"be indexed; rewrap it to one line length, e.g. seqkit seq -w 60 {path.name} > fixed.fa (or seqtk seq "
            "-l 60), and use the rewrapped file"
        )
    if any(w in text.lower() for w in ("bgzf", "truncated", "inflate", "checksum", "crc")):
        return InputError(
            f"FASTA {path} is truncated or corrupt{' gzip (BGZF)' if _is_gzip(path) else ''} (htslib: {said}); "
            "copy or download it again or re-compress it from the original (bgzip), check its size or checksum "
            "against the source, and re-run"
        )
    return InputError(f"cannot index FASTA {path} (htslib: {said}); check that it is a valid FASTA (plain or BGZF)")


def oriented_sequence(genome: Genome, chrom: str, start: int, end: int, strand: str, flank: int = 0) -> str:
    """``[start - flank, end + flank]`` of a **1-based closed** span in transcription orientation.

    N past the contig ends; reverse-complemented on ``-`` so index ``flank`` is the span's first
    transcribed base (gene position 0).
    """
    seq = genome.fetch(chrom, start - 1 - flank, end + flank)  # 1-based closed -> 0-based half-open
    return reverse_complement(seq) if strand == "-" else seq


def contig_aliases(name: str) -> list[str]:
    """Names under which ``name`` may appear in another file: ``chr1``↔``1``, ``chrM``↔``MT`` (by name alone;
    :func:`match_contig_names` asks the alias table first, see :mod:`.contigs`)."""
    out = [name]
    bare = name[3:] if name.lower().startswith("chr") else name
    if bare in ("M", "MT"):
        out += ["chrM", "MT", "M", "chrMT"]
    else:
        out += [bare, f"chr{bare}"]
    seen: dict[str, None] = {}
    for n in out:
        seen.setdefault(n, None)
    return list(seen)


@dataclass(frozen=True)
class ContigMatch:
    """Annotation contigs matched to the FASTA's (see :func:`match_contig_names`)."""

    mapping: dict[str, str]  # annotation contig -> FASTA contig
    unmatched: list[str]  # annotation contigs the FASTA lacks (e.g. alt/fix/random contigs of another FASTA)
    mito_conflicts: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # contig -> (FASTA's, nt, nt)

    def conflict_notes(self) -> list[str]:
        return [f"annotation contig {a} ({exp:,} nt) is not FASTA contig {f} ({got:,} nt): different mitochondrial "
                f"sequences, so its sites are not trusted and its genes are left out"
                for a, (f, exp, got) in self.mito_conflicts.items()]


def match_contig_names(annotation_contigs: Iterable[str], fasta_contigs: Iterable[str] | Mapping[str, int]
                       ) -> ContigMatch:
    """Map each annotation contig to its FASTA name: the same name, else the same sequence in bioframe's
    hg19/hg38 alias tables (RefSeq ``NC_…`` ↔ ``chr1`` ↔ ``1``, checked against the FASTA's lengths when it
    gives them), else by the ``chr`` prefix for contigs no table knows."""
    from .contigs import fasta_assembly, find_alias

    lengths = dict(fasta_contigs) if isinstance(fasta_contigs, Mapping) else dict.fromkeys(fasta_contigs, -1)
    assembly = fasta_assembly(lengths)
    mapping: dict[str, str] = {}
    unmatched: list[str] = []
    conflicts: dict[str, tuple[str, int, int]] = {}
    for contig in dict.fromkeys(annotation_contigs):
        if contig in lengths:
            mapping[contig] = contig
            continue
        hit = find_alias(contig, lengths, assembly)
        name = hit.fasta_name
        if hit.sequence is None:  # not in any table: chr prefix
            name = next((a for a in contig_aliases(contig) if a in lengths), None)
        if hit.mito_conflict:
            conflicts[contig] = hit.mito_conflict
            log.warning(ContigMatch({}, [], {contig: hit.mito_conflict}).conflict_notes()[0])
        if name is None:
            unmatched.append(contig)
        else:
            mapping[contig] = name
    return ContigMatch(mapping, unmatched, conflicts)


def match_contigs(
    annotation_contigs: Iterable[str],
    fasta_contigs: Iterable[str] | Mapping[str, int],
    *,
    gtf: str | os.PathLike[str] = "annotation",
    fasta: str | os.PathLike[str] = "FASTA",
    strict: bool = True,
) -> dict[str, str]:
    """Map each annotation contig to its FASTA name (:func:`match_contig_names`).

    With ``strict``, any annotation contig left unmatched is an error listing both name sets;
    otherwise unmatched contigs are simply absent from the result.
    """
    match = match_contig_names(annotation_contigs, fasta_contigs)
    if match.unmatched and strict:
        raise InputError(
            f"contigs of {gtf} not found in {fasta}: {_preview(match.unmatched)}; FASTA has: "
            f"{_preview(list(dict.fromkeys(fasta_contigs)))} (use a FASTA and annotation of the same assembly)"
        )
    return match.mapping


def _preview(names: list[str], n: int = 8) -> str:
    shown = ", ".join(names[:n])
    return shown + (f", … ({len(names)} in all)" if len(names) > n else "")
