"""SpliceAI delta scores of variants: the rules of SpliceAI 1.3.1's ``spliceai`` command, computed with
this package's exact base model (valid convolutions, ONNX Runtime) and batched.

For a variant at 1-based ``pos`` and distance D (cov = 2D + 1 scored positions, wid = 10,000 + cov
input nt), per gene whose transcribed span holds ``pos``:

- input: the genome over ``[pos - wid//2, pos + wid//2]`` with every base outside the gene's span set
  to N; the alternate input has REF replaced by ALT at the centre; reverse-complemented on ``-``;
- outputs: the 5-model mean at the cov central positions (alternate: cov + len(ALT) - len(REF)),
  back in genome orientation; a deletion's alternate track gets zeros for the deleted bases after
  the first ``cov//2 + len(ALT)`` outputs, an insertion's inserted outputs are merged by their maximum
  (after the reversal on ``-``, as SpliceAI does);
- DS_AG/DS_DG = max(alt - ref) of the acceptor/donor track, DS_AL/DS_DL = max(ref - alt); DP_* = the
  argmax (first on ties) minus cov//2; ``-M 1`` zeroes a gain at an annotated exon boundary and a
  loss elsewhere (the boundary nearest ``pos``); values printed ``{:.2f}``.

Skipped (no SpliceAI entry, the record is written unchanged), in this order: no ALT; no gene holds
``pos``; the contig is not in the FASTA; REF differs from the FASTA (case-sensitive: the FASTA is
upper-cased, REF is not); the window runs off the contig; ``len(REF) > 2D``. Per allele:
``.``/``-``/``*`` or symbolic (``<…>``, breakends with ``[``/``]`` or ``<>``) alleles give nothing;
REF and ALT both longer than 1 give ``ALT|GENE|.|.|.|.|.|.|.|.``. Every record without an entry is
counted under one reason of :data:`SKIP_REASONS` (SpliceAI logs the five it warns about and skips
the others silently).

The reference track of every variant of one gene is the same masked sequence's, so it is computed
once per gene (one pass over the span) when that is cheaper than a window per variant: exact, since
an output depends only on the 10,001 nt around it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..basemodel.cone import ConeEngine, ConeVariant
from ..config import FLANK
from ..parallel import worker_cache
from ..reference.genome import Genome, reverse_complement
from .transcripts import TranscriptTable, match_prefix

log = logging.getLogger(__name__)

#: SpliceAI's track order inside the model: [neither, acceptor, donor]
ACCEPTOR, DONOR = 1, 2
#: every reason a record gets no entry, with what it means; the first five are SpliceAI's own warnings
SKIP_REASONS = {
    "bad input": "no ALT allele",
    "fasta issue": "a gene holds the position but its contig is not in the FASTA",
    "ref issue": "REF differs from the FASTA (case-sensitive)",
    "near chromosome end": "the window runs off the contig",
    "ref too long": "REF longer than 2 x -D",
    "contig not in FASTA": "no gene there and the contig is not in the FASTA",
    "past contig end": "no gene there and the position is past the contig's end",
    "not in any gene": "no gene of the annotation holds the position (SpliceAI skips these silently)",
    "no scorable allele": "every ALT is symbolic, a breakend, '*', '-' or '.'",
}


@dataclass(frozen=True)
class Record:
    """What scoring needs of a VCF record; ``pos`` 1-based, ``alts`` None when ALT is ``.``."""

    chrom: str
    pos: int
    ref: str
    alts: tuple[str, ...] | None


@dataclass
class Job:
    """One (record, allele, gene) to score; tracks filled in by :func:`score_records`."""

    record: int
    allele: int
    gene: int
    ref_track: np.ndarray | None = None  # (cov, 3) genome orientation
    alt_track: np.ndarray | None = None


@dataclass(frozen=True)
class RawTracks:
    """The tracks behind one (record, allele, gene)'s deltas: ``(cov, 3)`` ``[neither, acceptor, donor]`` in
    genome orientation over 1-based positions ``pos - D .. pos + D``; ``alt`` aligned to the reference's
    positions as the deltas take it (:func:`align_alt`); ``corrected``: the meta-model's (ref, alt), if any."""

    record: int
    allele: int
    gene: str
    ref: np.ndarray
    alt: np.ndarray
    corrected: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class Plan:
    """Per record: its output entries in order, each a finished string or the index of a job."""

    entries: list[list[str | int]] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def symbolic(alt: str) -> bool:
    """Alleles SpliceAI gives no entry: missing, deletion markers, symbolic and breakend alleles."""
    return any(c in alt for c in ".-*<>[]")


def plan_records(records: Sequence[Record], table: TranscriptTable, genome: Genome, distance: int) -> tuple[Plan, list[str]]:
    """Check every record as SpliceAI does and list the (record, allele, gene) jobs to score.

    Returns the plan and, per record, its window sequence (``""`` when skipped)."""
    cov = 2 * distance + 1
    wid = FLANK * 2 + cov
    first_contig = next(iter(genome.contigs))
    plan = Plan()
    windows: list[str] = []
    for r, rec in enumerate(records):
        plan.entries.append([])
        windows.append("")
        genes = table.genes_at(rec.chrom, rec.pos)
        chrom = match_prefix(rec.chrom, first_contig)
        if rec.alts is None:  # SpliceAI: "bad input" (no ALT to score)
            plan.skipped["bad input"] += 1
            continue
        if not len(genes):
            plan.skipped["contig not in FASTA" if chrom not in genome.contigs else
                         "past contig end" if rec.pos > genome.contigs[chrom] else "not in any gene"] += 1
            continue
        if chrom not in genome.contigs:
            plan.skipped["fasta issue"] += 1
            log.warning("Skipping record (fasta issue): %s:%d %s>%s", rec.chrom, rec.pos, rec.ref, ",".join(rec.alts))
            continue
        start = rec.pos - wid // 2 - 1  # 0-based start of the window
        length = genome.contigs[chrom]
        seq = genome.fetch(chrom, max(start, 0), min(rec.pos + wid // 2, length))
        centre = wid // 2 - (max(start, 0) - start)
        if seq[centre: centre + len(rec.ref)] != rec.ref:
            plan.skipped["ref issue"] += 1
            log.warning("Skipping record (ref issue): %s:%d %s", rec.chrom, rec.pos, rec.ref)
            continue
        if start < 0 or len(seq) != wid:
            plan.skipped["near chromosome end"] += 1
            log.warning("Skipping record (near chromosome end): %s:%d", rec.chrom, rec.pos)
            continue
        if len(rec.ref) > 2 * distance:
            plan.skipped["ref too long"] += 1
            log.warning("Skipping record (ref too long): %s:%d, %d nt > 2 x -D", rec.chrom, rec.pos, len(rec.ref))
            continue
        windows[r] = seq
        if all(symbolic(alt) for alt in rec.alts):
            plan.skipped["no scorable allele"] += 1
            continue
        for a, alt in enumerate(rec.alts):
            for g in genes:
                if symbolic(alt):
                    continue
                if len(rec.ref) > 1 and len(alt) > 1:
                    plan.entries[r].append(f"{alt}|{table.names[g]}|.|.|.|.|.|.|.|.")
                    continue
                plan.entries[r].append(len(plan.jobs))
                plan.jobs.append(Job(record=r, allele=a, gene=int(g)))
    return plan, windows


def masked_window(seq: str, pos: int, table: TranscriptTable, gene: int) -> str:
    """The window of a variant at 1-based ``pos`` with N outside the gene's span (SpliceAI's padding)."""
    wid = len(seq)
    left = max(wid // 2 + int(table.tx_starts[gene]) - pos, 0)
    right = max(wid // 2 - (int(table.tx_ends[gene]) - pos), 0)
    return "N" * left + seq[left: wid - right] + "N" * right


def align_alt(y_alt: np.ndarray, cov: int, ref_len: int, alt_len: int) -> np.ndarray:
    """The alternate track on the reference's cov positions (SpliceAI's alignment of indels)."""
    if ref_len > 1 and alt_len == 1:
        dl = ref_len - alt_len
        return np.concatenate([y_alt[: cov // 2 + alt_len], np.zeros((dl, y_alt.shape[1]), y_alt.dtype), y_alt[cov // 2 + alt_len:]], axis=0)
    if ref_len == 1 and alt_len > 1:
        merged = np.max(y_alt[cov // 2: cov // 2 + alt_len], axis=0)[None, :]
        return np.concatenate([y_alt[: cov // 2], merged, y_alt[cov // 2 + alt_len:]], axis=0)
    return y_alt


def delta_fields(y_ref: np.ndarray, y_alt: np.ndarray, cov: int, boundary: int, mask: bool) -> str:
    """``DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL`` of aligned tracks (genome orientation)."""
    gain_a, loss_a = y_alt[:, ACCEPTOR] - y_ref[:, ACCEPTOR], y_ref[:, ACCEPTOR] - y_alt[:, ACCEPTOR]
    gain_d, loss_d = y_alt[:, DONOR] - y_ref[:, DONOR], y_ref[:, DONOR] - y_alt[:, DONOR]
    idx = [int(np.argmax(t)) for t in (gain_a, loss_a, gain_d, loss_d)]
    half = cov // 2
    masked = [mask and idx[0] - half == boundary, mask and idx[1] - half != boundary,
              mask and idx[2] - half == boundary, mask and idx[3] - half != boundary]
    values = [t[i] * (1 - np.bool_(m)) for t, i, m in zip((gain_a, loss_a, gain_d, loss_d), idx, masked)]
    return "|".join(f"{v:.2f}" for v in values) + "|" + "|".join(str(i - half) for i in idx)


def score_records(records: Sequence[Record], table: TranscriptTable, genome: Genome, model, *,  # noqa: ANN001
                  distance: int, mask: int, share_reference: bool = True, cone: ConeEngine | None = None,
                  correct=None, progress: Callable[[float], None] | None = None,  # noqa: ANN001
                  raw: list[RawTracks] | None = None) -> tuple[list[list[str]], list[list[str]], Counter]:
    """SpliceAI entries (``ALLELE|SYMBOL|DS…|DP…``) of each record, the same from corrected tracks (empty
    without ``correct``), and the skipped records by reason.

    ``model``: a :class:`~meta_spliceai.basemodel.ensemble.BaseModel` (its ``predict`` takes
    ``flank + body + flank`` strings). ``share_reference``: compute each gene's reference track once
    when that is cheaper than one window per variant (same numbers). ``cone``: compute the tracks with
    this engine instead of ``model`` (one reference pass per cluster of nearby variants, each alternate
    only inside its cone of influence; same numbers, ``share_reference`` then does not apply). ``correct``: a
    :class:`~meta_spliceai.variants.corrected.MetaScorer`: every card model's tracks of the jobs
    (``model_tracks``), then the corrected windows of all of them in one call (``correct_jobs``).
    ``progress(fraction)``: called as the work goes (after each gene's tracks, the corrected jobs), with the
    fraction of it done. ``raw``: a list that gets each scored job's :class:`RawTracks` (the windows the deltas
    are taken from, as computed).
    """
    plan, windows = plan_records(records, table, genome, distance)
    total = max(1, len(plan.jobs) * (2 if correct is not None else 1))
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done / total, 1.0))

    if cone is not None:
        cone_tracks(plan, records, table, genome, cone, distance=distance, step=step)
    else:
        compute_tracks(plan, records, windows, table, genome, model, distance=distance, share_reference=share_reference)
        step(len(plan.jobs))
    cov = 2 * distance + 1
    fixed: list = []
    if correct is not None and plan.jobs:
        per_job = correct.model_tracks(plan, records, windows, table, genome, model.metadata(), distance=distance,
                                       cone=cone is not None, share_reference=share_reference)
        todo = []
        for job, tracks in zip(plan.jobs, per_job):
            rec = records[job.record]
            alt = rec.alts[job.allele]  # type: ignore[index]
            todo.append((job.gene, rec.pos, rec.ref, alt, [(y, align_alt(z, cov, len(rec.ref), len(alt))) for y, z in tracks]))
        fixed = correct.correct_jobs(table, todo, distance)
        step(len(plan.jobs))
    out: list[list[str]] = []
    meta: list[list[str]] = []
    for r, entries in enumerate(plan.entries):
        row, mrow = [], []
        for e in entries:
            if isinstance(e, str):
                row.append(e)
                mrow.append(e)
                continue
            job = plan.jobs[e]
            rec = records[r]
            alt = rec.alts[job.allele]  # type: ignore[index]
            y_alt = align_alt(job.alt_track, cov, len(rec.ref), len(alt))  # type: ignore[arg-type]
            boundary = table.nearest_boundary(job.gene, rec.pos)
            head = f"{alt}|{table.names[job.gene]}|"
            row.append(head + delta_fields(job.ref_track, y_alt, cov, boundary, bool(mask)))  # type: ignore[arg-type]
            got = fixed[e] if correct is not None else None
            if got is not None:
                mrow.append(head + delta_fields(got[0], got[1], cov, boundary, bool(mask)))
            if raw is not None:
                raw.append(RawTracks(record=r, allele=job.allele, gene=str(table.names[job.gene]),
                                     ref=job.ref_track, alt=y_alt, corrected=got))  # type: ignore[arg-type]
        out.append(row)
        meta.append(mrow if correct is not None else [])
    return out, meta, plan.skipped


def cone_engine(model, runtime: str) -> ConeEngine | None:  # noqa: ANN001
    """The cone engine of ``model``'s members, made once per process and model; None where the model does not
    run on ONNX Runtime (PyTorch, CUDA: its own windows are scored instead)."""
    if getattr(model, "runtime", None) != "onnx":
        return None
    return worker_cache(("variant-cone", runtime, model.name, model.digest), lambda: ConeEngine(model.members, groups=model.groups))


def compute_tracks(plan: Plan, records: Sequence[Record], windows: list[str], table: TranscriptTable, genome: Genome,
                   model, *, distance: int, share_reference: bool) -> None:  # noqa: ANN001
    """Fill every job's reference and alternate tracks, batching all model inputs of the plan."""
    cov = 2 * distance + 1
    inputs: list[str] = []
    targets: list[tuple[int, str, bool]] = []  # (job, "ref"/"alt"/gene key, reversed)
    by_gene: dict[int, list[int]] = {}
    for j, job in enumerate(plan.jobs):
        by_gene.setdefault(job.gene, []).append(j)
    gene_pass: dict[int, tuple[int, int]] = {}  # gene -> (first 1-based position of its track, input index)
    for g, js in by_gene.items():
        span = int(table.tx_ends[g] - table.tx_starts[g] + 1)
        if share_reference and span + 2 * distance + 2 * FLANK < len(js) * (2 * FLANK + cov) // 2:
            gene_pass[g] = (int(table.tx_starts[g]) - distance, len(inputs))
            inputs.append(_gene_input(genome, table, g, records[plan.jobs[js[0]].record].chrom, distance))
            targets.append((-1, "gene", table.strands[g] == "-"))
    for j, job in enumerate(plan.jobs):
        rec = records[job.record]
        x_ref = masked_window(windows[job.record], rec.pos, table, job.gene)
        wid = len(x_ref)
        alt = rec.alts[job.allele]  # type: ignore[index]
        x_alt = x_ref[: wid // 2] + alt + x_ref[wid // 2 + len(rec.ref):]
        minus = table.strands[job.gene] == "-"
        if job.gene not in gene_pass:
            inputs.append(reverse_complement(x_ref) if minus else x_ref)
            targets.append((j, "ref", minus))
        inputs.append(reverse_complement(x_alt) if minus else x_alt)
        targets.append((j, "alt", minus))
    if not inputs:
        return
    outputs = model.predict(inputs)
    gene_tracks: dict[int, np.ndarray] = {}
    for (j, kind, minus), y in zip(targets, outputs):
        y = y[::-1] if minus else y
        if kind == "gene":
            continue
        setattr(plan.jobs[j], f"{kind}_track", y)
    for g, (first, k) in gene_pass.items():
        y = outputs[k]
        gene_tracks[g] = y[::-1] if table.strands[g] == "-" else y
        for j in by_gene[g]:
            rec = records[plan.jobs[j].record]
            a = rec.pos - distance - first
            plan.jobs[j].ref_track = gene_tracks[g][a: a + cov]


def cone_tracks(plan: Plan, records: Sequence[Record], table: TranscriptTable, genome: Genome, cone: ConeEngine, *,
                distance: int, step: Callable[[int], None] | None = None) -> None:
    """Fill every job's reference and alternate tracks with the cone engine, gene by gene.

    Coordinates: a gene's input ``G`` is its masked span with FLANK + D of N on each side, in model
    orientation; genome position ``q`` (1-based) is genome-orientation index ``q - g0`` with
    ``g0 = tx_start - FLANK - D``, and model index ``n - 1 - (q - g0)`` on ``-``.
    """
    cov = 2 * distance + 1
    by_gene: dict[int, list[int]] = {}
    for j, job in enumerate(plan.jobs):
        by_gene.setdefault(job.gene, []).append(j)
    half = FLANK + distance  # wid // 2
    for g, js in by_gene.items():
        gene = _gene_input(genome, table, g, records[plan.jobs[js[0]].record].chrom, distance)
        n, g0, minus = len(gene), int(table.tx_starts[g]) - half, table.strands[g] == "-"
        todo = []
        for j in js:
            rec, job = records[plan.jobs[j].record], plan.jobs[j]
            alt, i = rec.alts[job.allele], rec.pos - g0  # type: ignore[index]
            if minus:
                todo.append(ConeVariant(start=n - 1 - (i + half), at=n - len(rec.ref) - i, ref_len=len(rec.ref),
                                        alt=reverse_complement(alt), cov=cov))
            else:
                todo.append(ConeVariant(start=i - half, at=i, ref_len=len(rec.ref), alt=alt, cov=cov))
        for j, (y_ref, y_alt) in zip(js, cone.score(gene, todo)):
            plan.jobs[j].ref_track = y_ref[::-1] if minus else y_ref
            plan.jobs[j].alt_track = y_alt[::-1] if minus else y_alt
        if step is not None:
            step(len(js))


def _gene_input(genome: Genome, table: TranscriptTable, g: int, chrom: str, distance: int) -> str:
    """Model input of a gene's whole masked span: N, the span's bases, N (FLANK + D on each side)."""
    c = match_prefix(chrom, next(iter(genome.contigs)))
    body = genome.fetch(c, int(table.tx_starts[g]) - 1, int(table.tx_ends[g]))
    pad = "N" * (FLANK + distance)
    seq = pad + body + pad
    return reverse_complement(seq) if table.strands[g] == "-" else seq
