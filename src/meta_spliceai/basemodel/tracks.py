"""``meta-spliceai tracks``: per-nucleotide genome-browser tracks (bigWig, optionally bedGraph) of a store.

Four stranded tracks in ``OUT``: ``donor.plus.bw``, ``donor.minus.bw``, ``acceptor.plus.bw``,
``acceptor.minus.bw`` (and the same four as ``.bedGraph`` text with ``bedgraph``). Each gene of the
store is placed by the annotation (see :mod:`meta_spliceai.basemodel.genomic`: the value at
1-based ``genomic_position`` p is the interval ``[p - 1, p)``, 0-based half-open, in both formats).

- **Contigs**: with a FASTA, its contig names and sizes (annotation names are matched to the FASTA's
  as everywhere else: ``chr22`` ↔ ``22``, ``chrM`` ↔ ``MT``); without one, the annotation's names, each
  sized by the largest gene end on it. Header and records are in name order (C collation), so the
  bedGraph files are sorted as ``bedGraphToBigWig`` wants (``sort -k1,1 -k2,2n``).
- **Overlapping genes** on the same strand give one value per nucleotide: the **maximum** over the
  genes covering it (for ``delta_from``: of the per-gene differences).
- **Off the contig end**: nucleotides of a gene past its contig's size are dropped, with one warning
  counting them.
- ``delta_from``: ``store − delta_from`` per gene and position (meta − base); the two stores must
  hold the same genes with the same lengths.
- Nucleotides no gene covers have no value. Values are float32, as in the store; the bedGraph
  writes each in its shortest form that reads back to the same float32, with runs of equal
  adjacent values in one interval (exact).

Genes are read one at a time (memory: the largest group of overlapping genes); every file is
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import polars as pl

from ..errors import InputError
from ..storage import (
    check_output_dir,
    commit,
    folder_lock,
    remove_stale_tmp,
    tmp_path_for,
)
from .genomic import (
    SCORES,
    as_annotation,
    check_same_genes,
    iter_genomic,
    open_store,
    store_genes,
)

log = logging.getLogger(__name__)

#: (score, strand) of each track, and its file stem
TRACKS = {(score, strand): f"{score}.{'plus' if strand == '+' else 'minus'}"
          for score in ("donor", "acceptor") for strand in ("+", "-")}


def contig_sizes(ann_genes: pl.DataFrame, fasta: str | os.PathLike[str] | None,
                 gtf: str) -> tuple[dict[str, int], dict[str, str]]:
    """``(sizes, names)``: output contig sizes by name, and annotation → output contig name for the store's genes."""
    contigs = sorted(ann_genes["chrom"].unique().to_list())
    if fasta is None:
        ends = dict(ann_genes.group_by("chrom").agg(pl.col("end").max()).iter_rows())
        return {c: int(ends[c]) for c in contigs}, {c: c for c in contigs}
    from ..reference.genome import Genome, match_contigs

    genome = Genome(fasta)
    return dict(genome.contigs), match_contigs(contigs, genome.contigs, gtf=gtf, fasta=genome.path)


@dataclass
class _Writers:
    """The open output files: one bigWig (and bedGraph) per track, each at a temporary name."""

    out: Path
    sizes: list[tuple[str, int]]
    bedgraph: bool
    bw: dict[tuple[str, str], object] = field(default_factory=dict)
    bg: dict[tuple[str, str], IO[bytes]] = field(default_factory=dict)
    tmp: dict[Path, Path] = field(default_factory=dict)  # final -> temporary

    def open(self) -> None:
        import pyBigWig

        for key, stem in TRACKS.items():
            final = self.out / f"{stem}.bw"
            self.tmp[final] = tmp_path_for(final)
            bw = pyBigWig.open(str(self.tmp[final]), "w")
            if bw is None:
                raise InputError(f"cannot create {self.tmp[final]}; check that {self.out} is writable")
            bw.addHeader(self.sizes)
            self.bw[key] = bw
            if self.bedgraph:
                final = self.out / f"{stem}.bedGraph"
                self.tmp[final] = tmp_path_for(final)
                self.bg[key] = open(self.tmp[final], "wb")  # noqa: SIM115 - closed in close()

    def write(self, chrom: str, strand: str, first: int, values: np.ndarray) -> None:
        """``values`` ``(n, 2)`` [acceptor, donor] of the 1-based positions ``first .. first + n - 1``."""
        for j, score in enumerate(SCORES):
            v = np.ascontiguousarray(values[:, j], dtype=np.float32)
            key = (score, strand)
            self.bw[key].addEntries(chrom, first - 1, values=v, span=1, step=1)  # type: ignore[attr-defined]
            if self.bedgraph:
                cut = np.flatnonzero(v[1:] != v[:-1]) + 1
                starts = np.concatenate(([0], cut))
                ends = np.concatenate((cut, [v.size]))
                pl.DataFrame({
                    "chrom": pl.Series([chrom], dtype=pl.String).extend_constant(chrom, starts.size - 1),
                    "start": starts.astype(np.int64) + (first - 1), "end": ends.astype(np.int64) + (first - 1),
                    "value": v[starts],
                }).write_csv(self.bg[key], include_header=False, separator="\t")

    def close(self, ok: bool) -> list[Path]:
        for bw in self.bw.values():
            bw.close()  # type: ignore[attr-defined]
        for fh in self.bg.values():
            fh.close()
        if not ok:
            for tmp in self.tmp.values():
                with contextlib.suppress(OSError):
                    tmp.unlink()
            return []
        for final, tmp in self.tmp.items():
            commit(tmp, final)
        return list(self.tmp)


def _clusters(genes: pl.DataFrame) -> list[list[dict]]:
    """Genes of one contig and strand (sorted by start) grouped into runs that overlap."""
    groups: list[list[dict]] = []
    hi = -1
    for g in genes.sort("start", "gene_id").iter_rows(named=True):
        if groups and g["start"] <= hi:
            groups[-1].append(g)
            hi = max(hi, g["end"])
        else:
            groups.append([g])
            hi = g["end"]
    return groups


def tracks(
    *,
    store: str | os.PathLike[str],
    gtf: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fasta: str | os.PathLike[str] | None = None,
    delta_from: str | os.PathLike[str] | None = None,
    bedgraph: bool = False,
    progress: bool = True,
) -> dict[str, object]:
    """``meta-spliceai tracks``: bigWig (and with ``bedgraph`` bedGraph) tracks of a store (module docstring).

    ``store``: a ``predict`` store, a corrected store or an ``apply`` folder; ``gtf``: the annotation
    it was made with; ``fasta``: contig names and sizes of the output (else the annotation's, sized
    by the largest gene end). Overlapping genes on a strand: the maximum. Returns the files written,
    genes, nucleotides written per strand and nucleotides dropped past contig ends.
    """
    from ..progress import count_progress

    st = open_store(store)
    base = open_store(delta_from, "--delta-from") if delta_from is not None else None
    if base is not None:
        check_same_genes(st, base)
    ann = as_annotation(gtf)
    genes = store_genes(st, ann)
    sizes, names = contig_sizes(ann.genes if fasta is None else genes, fasta, str(gtf))
    out_dir = Path(out)
    check_output_dir(out_dir, "--out")
    out_dir.mkdir(parents=True, exist_ok=True)
    header = sorted(sizes.items())
    genes = genes.with_columns(pl.col("chrom").replace_strict(names).alias("out_chrom"))
    dropped: dict[str, int] = {}
    written = {"+": 0, "-": 0}
    with folder_lock(out_dir, "tracks"):
        remove_stale_tmp(out_dir)
        w = _Writers(out_dir, header, bedgraph)
        ok = False
        try:
            w.open()
            with count_progress(progress) as bar:
                task = bar.add_task("tracks: genes", total=genes.height, rate="") if bar else None
                for chrom, size in header:
                    for strand in ("+", "-"):
                        part = genes.filter((pl.col("out_chrom") == chrom) & (pl.col("strand") == strand))
                        for group in _clusters(part):
                            written[strand] += _write_group(w, st, base, group, chrom, size, strand, dropped)
                            if bar:
                                bar.update(task, advance=len(group))
            ok = True
        finally:
            files = w.close(ok)
    if dropped:
        first = next(iter(dropped))
        log.warning("%s nucleotide(s) of %d gene(s) lie past their contig's end and were dropped (e.g. %s: %s nt; "
                    "contig sizes from %s)", f"{sum(dropped.values()):,}", len(dropped), first,
                    f"{dropped[first]:,}", fasta or "the annotation")
    return {"files": [str(f) for f in files], "genes": genes.height, "nucleotides": written,
            "dropped_nt": sum(dropped.values()), "contigs": len(header), "delta": base is not None}


def _write_group(w: _Writers, st, base, group: list[dict], chrom: str, size: int, strand: str,
                 dropped: dict[str, int]) -> int:
    """Maximum over one run of overlapping genes, clipped to the contig, into the tracks; returns nt written."""
    lo = group[0]["start"]
    hi = max(g["end"] for g in group)
    buf = np.full((hi - lo + 1, len(SCORES)), -np.inf, dtype=np.float32)
    for g, s in iter_genomic(st, pl.DataFrame(group), base):
        part = buf[g["start"] - lo:g["end"] - lo + 1]
        np.maximum(part, s, out=part)
        if g["end"] > size:
            dropped[g["gene_id"]] = g["end"] - max(size, g["start"] - 1)
    last = min(hi, size)
    if last < lo:
        return 0
    w.write(chrom, strand, lo, buf[:last - lo + 1])
    return last - lo + 1
