"""The reference pair (genome FASTA + annotation): demo fallback and a pre-flight report.

``reference`` answers what a user needs to know before a long run: how many genes of each type,
transcripts and splice sites there are, whether the contigs of both files match, and which genes
have no usable sequence.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import polars as pl

from ..errors import InputError
from .annotation import Annotation, load_annotation
from .genome import ContigMatch, Genome, match_contig_names, match_contigs
from .records import issue_counts
from .spliceai_table import resolve_annotation

log = logging.getLogger(__name__)

#: a gene whose body is more than this fraction N is reported as "mostly N"
MOSTLY_N = 0.5


def demo_reference() -> tuple[Path, Path]:
    """Paths of the built-in demo FASTA and GTF (GRCh37 chr22:20-21 Mb, see demo_data/PROVENANCE.md)."""
    root = Path(str(resources.files("meta_spliceai") / "demo_data"))
    return root / "genome.fa.gz", root / "annotation.gtf"


def resolve_reference(
    fasta: str | os.PathLike[str] | None, gtf: str | os.PathLike[str] | None
) -> tuple[Path, Path, bool]:
    """``(fasta, gtf, is_demo)``: the given pair, or the built-in demo reference when neither is given."""
    if fasta is None and gtf is None:
        f, g = demo_reference()
        log.warning("no --fasta/--gtf given: using the built-in demo reference (GRCh37 chr22:20-21 Mb)")
        return f, g, True
    if fasta is None or gtf is None:
        missing = "--fasta" if fasta is None else "--gtf"
        raise InputError(f"{missing} is missing: give both --fasta and --gtf, or neither to use the demo reference")
    return Path(fasta), resolve_annotation(gtf), False


@dataclass
class ReferenceReport:
    """What ``meta-spliceai reference`` prints."""

    fasta: str
    gtf: str
    is_demo: bool
    fasta_contigs: dict[str, int]
    contig_map: dict[str, str]
    unmatched_contigs: list[str]
    genes_by_type: dict[str, int]
    n_genes: int
    n_multi_exon_genes: int
    n_transcripts: int
    n_exons: int
    n_donors: int
    n_acceptors: int
    missing_sequence: list[str] = field(default_factory=list)  # gene_ids on absent contigs or past their end
    mostly_n: list[str] = field(default_factory=list)  # gene_ids whose body is > MOSTLY_N N
    #: IDs split (one gene/transcript per contig and strand) and records dropped on reading, per kind
    annotation_issues: dict[str, int] = field(default_factory=dict)
    #: every split and dropped record (kind, id, new_id, chrom, strand, reason)
    issue_records: list[dict[str, object]] = field(default_factory=list)
    #: annotation contigs the FASTA lacks (alt/fix/random of another FASTA...) -> genes there (skipped)
    skipped_contigs: dict[str, int] = field(default_factory=dict)
    #: mitochondria of different lengths: annotation contig -> {fasta, annotation_length, fasta_length, genes}
    contig_conflicts: dict[str, dict[str, object]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def gene_sequence_problems(genome: Genome, genes: pl.DataFrame, contig_map: dict[str, str]) -> tuple[list, list]:
    """Gene IDs without sequence (contig absent, or body past the contig end) and those mostly N."""
    missing: list[str] = []
    mostly_n: list[str] = []
    for gid, chrom, start, end in genes.select("gene_id", "chrom", "start", "end").iter_rows():
        fchrom = contig_map.get(chrom)
        if fchrom is None or end > genome.contigs[fchrom]:
            missing.append(gid)
            continue
        seq = genome.fetch(fchrom, start - 1, end)  # 1-based closed -> 0-based half-open
        if seq.count("N") > MOSTLY_N * len(seq):
            mostly_n.append(gid)
    return missing, mostly_n


def contig_summary(genes: pl.DataFrame, match: ContigMatch) -> tuple[dict[str, int], dict[str, dict[str, object]]]:
    """Genes per annotation contig the FASTA lacks, and the mitochondrial conflicts with their gene counts."""
    per = dict(genes.group_by("chrom").len().iter_rows())
    skipped = {c: int(per.get(c, 0)) for c in match.unmatched if c not in match.mito_conflicts}
    conflicts = {a: {"fasta": f, "annotation_length": exp, "fasta_length": got, "genes": int(per.get(a, 0))}
                 for a, (f, exp, got) in match.mito_conflicts.items()}
    return skipped, conflicts


def open_reference(
    fasta: str | os.PathLike[str] | None,
    gtf: str | os.PathLike[str] | None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    strict: bool | None = None,
) -> tuple[Genome, Annotation, dict[str, str], bool]:
    """Open the pair (demo fallback), parse the annotation, and match contigs leniently."""
    genome, ann, match, is_demo = open_reference_matched(fasta, gtf, cache_dir=cache_dir, strict=strict)
    return genome, ann, match.mapping, is_demo


def open_reference_matched(
    fasta: str | os.PathLike[str] | None,
    gtf: str | os.PathLike[str] | None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    strict: bool | None = None,
) -> tuple[Genome, Annotation, ContigMatch, bool]:
    """:func:`open_reference` with the whole contig match (unmatched contigs, mitochondrial conflicts)."""
    fasta_path, gtf_path, is_demo = resolve_reference(fasta, gtf)
    genome = Genome(fasta_path)
    ann = load_annotation(gtf_path, cache_dir=cache_dir, strict=strict)
    contigs = ann.genes["chrom"].unique().sort().to_list()
    match = match_contig_names(contigs, genome.contigs)
    if not match.mapping:
        # nothing matches at all: the strict matcher's message lists both sides
        match_contigs(contigs, genome.contigs, gtf=gtf_path, fasta=fasta_path)
    return genome, ann, match, is_demo


def reference(
    *, fasta: str | os.PathLike[str] | None = None, gtf: str | os.PathLike[str] | None = None,
    strict_annotation: bool | None = None,
) -> ReferenceReport:
    """Index and inspect a FASTA + annotation pair (see module docstring)."""
    genome, ann, match, is_demo = open_reference_matched(fasta, gtf, strict=strict_annotation)
    contig_map = match.mapping
    genes = ann.genes
    missing, mostly_n = gene_sequence_problems(genome, genes, contig_map)
    by_type = dict(genes.group_by("gene_type").len().sort(["len", "gene_type"], descending=[True, False]).iter_rows())
    sites = ann.splice_sites["site_type"].value_counts()
    counts = dict(sites.iter_rows())
    skipped, conflicts = contig_summary(genes, match)
    return ReferenceReport(
        fasta=str(genome.path),
        gtf=ann.source,
        is_demo=is_demo,
        fasta_contigs=genome.contigs,
        contig_map=contig_map,
        unmatched_contigs=sorted(set(genes["chrom"].to_list()) - set(contig_map)),
        genes_by_type=by_type,
        n_genes=genes.height,
        n_multi_exon_genes=ann.splice_sites["gene_id"].n_unique(),
        n_transcripts=ann.transcripts.height,
        n_exons=ann.exons.select("chrom", "start", "end", "strand").unique().height,
        n_donors=int(counts.get("donor", 0)),
        n_acceptors=int(counts.get("acceptor", 0)),
        missing_sequence=missing,
        mostly_n=mostly_n,
        annotation_issues=issue_counts(ann.issues),
        issue_records=ann.issues.to_dicts(),
        skipped_contigs=skipped,
        contig_conflicts=conflicts,
    )


def annotation_manifest(ann: Annotation, fasta_contigs: dict[str, int]) -> dict[str, object]:
    """What a build records of its annotation's odd records: counts per kind, every split and dropped
    record, the contigs skipped (not in the FASTA) and the mitochondria not trusted, with gene counts."""
    skipped, conflicts = contig_summary(ann.genes, match_contig_names(ann.genes["chrom"].unique().sort().to_list(),
                                                                      fasta_contigs))
    return {"counts": issue_counts(ann.issues), "records": ann.issues.to_dicts(), "skipped_contigs": skipped,
            "contig_conflicts": conflicts}


def genes_with_contig(genes: pl.DataFrame, contig_map: dict[str, str]) -> tuple[pl.DataFrame, int]:
    """``genes`` on contigs the FASTA has, and how many were left out (one warning names their contigs)."""
    kept = genes.filter(pl.col("chrom").is_in(list(contig_map)))
    n = genes.height - kept.height
    if n:
        contigs = sorted(set(genes["chrom"].to_list()) - set(contig_map))
        log.warning("%d gene(s) on %d contig(s) the FASTA lacks skipped (%s%s)", n, len(contigs), ", ".join(contigs[:5]),
                    ", …" if len(contigs) > 5 else "")
    return kept, n
