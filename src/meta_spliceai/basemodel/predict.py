"""The predict stage: base-model scores of every gene-body nucleotide into a prediction store
(:mod:`meta_spliceai.basemodel.store`), gene by gene and resumable, serially or on workers.

Gene spans are 1-based closed (GTF); the model input is the body +- 5,000 nt of real flank (N past
the contig ends), reverse-complemented on ``-``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..config import (
    DEFAULT_PARALLEL,
    DEFAULT_PREDICT,
    FLANK,
    BaseModelName,
    Device,
    Executor,
    Precision,
    Runtime,
)
from ..errors import InputError
from ..parallel import ParallelOptions
from ..progress import nucleotide_progress
from ..reference.genelists import requested_genes
from ..reference.genome import Genome, oriented_sequence
from .ensemble import BaseModel, load_base_model
from .store import PredictionStore

log = logging.getLogger(__name__)

#: body nucleotides gathered before one call of the model (bounds memory, sets progress granularity)
_GROUP_NT = 1_000_000


# ----------------------------------------------------------------------------------------------
# The predict stage
# ----------------------------------------------------------------------------------------------


@dataclass
class _Cluster:
    """Genes of one strand whose bodies overlap (or lie closer than the model's context): one input."""

    chrom: str  # FASTA contig name
    strand: str
    start: int  # 1-based closed span of the merged bodies
    end: int
    genes: list[tuple[str, int, int]]  # (gene_id, start, end), 1-based closed

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _clusters(genes: pl.DataFrame, contig_map: dict[str, str]) -> list[_Cluster]:
    """Merge same-strand genes whose bodies overlap or are < 10,000 nt apart (exact: each output
    reads only +-5,000 nt of genome), so no nucleotide is scored twice. Coordinates 1-based closed."""
    out: list[_Cluster] = []
    rows = genes.select("gene_id", "chrom", "strand", "start", "end").sort("chrom", "strand", "start", "gene_id")
    cur: _Cluster | None = None
    for gid, chrom, strand, start, end in rows.iter_rows():
        fchrom = contig_map[chrom]
        if cur is not None and cur.chrom == fchrom and cur.strand == strand and start <= cur.end + 2 * FLANK:
            cur.end = max(cur.end, end)
            cur.genes.append((gid, start, end))
        else:
            cur = _Cluster(fchrom, strand, start, end, [(gid, start, end)])
            out.append(cur)
    return out


def _cluster_input(genome: Genome, c: _Cluster) -> str:
    """Body +- 5,000 nt (N past contig ends), reverse-complemented on '-'."""
    return oriented_sequence(genome, c.chrom, c.start, c.end, c.strand, FLANK)


def _gene_slice(c: _Cluster, start: int, end: int) -> slice:
    """Rows of a gene inside its cluster's output (both in transcription order)."""
    off = start - c.start if c.strand == "+" else c.end - end
    return slice(off, off + end - start + 1)


def _groups(clusters: list[_Cluster], max_nt: int = _GROUP_NT) -> Iterator[list[_Cluster]]:
    """Consecutive clusters of about ``max_nt`` body nucleotides: one model call (one unit of a parallel run)."""
    group: list[_Cluster] = []
    nt = 0
    for c in clusters:
        group.append(c)
        nt += c.length
        if nt >= max_nt:
            yield group
            group, nt = [], 0
    if group:
        yield group


def _score_clusters(genome: Genome, clusters: list[_Cluster], model: BaseModel, store: PredictionStore,
                    batch_size: int, n_genes: int, progress: bool) -> int:
    """Run the model over the clusters group by group, writing each gene as soon as it is scored."""
    written = 0
    total_nt = sum(c.length for c in clusters)
    with nucleotide_progress(progress) as bar:
        task = bar.add_task(f"predict {model.name} {model.device}", total=max(total_nt, 1), unit="nt",
                            genes=f"0/{n_genes} genes")
        for group in _groups(clusters):
            seqs = [_cluster_input(genome, c) for c in group]
            t = time.perf_counter()
            # the bar moves with each chunk of the model's input, within a gene, not only once per group of genes
            probs = model.predict(seqs, batch_size=batch_size, on_progress=lambda nt: bar.update(task, advance=nt))
            log.debug("predict: %d input(s), %d nt scored in %.1f s", len(group), sum(c.length for c in group),
                      time.perf_counter() - t)
            for c, p in zip(group, probs):
                for gid, start, end in c.genes:
                    store.write(gid, p[_gene_slice(c, start, end)])
                    written += 1
                    log.debug("predict: gene %s (%s:%d-%d %s, %d nt) written (%d/%d)", gid, c.chrom, start, end,
                              c.strand, end - start + 1, written, n_genes)
            bar.update(task, genes=f"{written}/{n_genes} genes")
    return written


@dataclass(frozen=True)
class _PredictSpec:
    """What a worker needs to score clusters (picklable; the model is loaded once per process)."""

    fasta: Path
    store: Path
    model_args: tuple[tuple[str, object], ...]
    batch_size: int


def _predict_unit(unit: tuple[_PredictSpec, list[_Cluster]]) -> tuple[int, int]:
    """Score one group of clusters in a worker; returns (genes written, nucleotides scored)."""
    from ..parallel import worker_cache

    spec, group = unit
    model = worker_cache(("model", spec.model_args), lambda: load_base_model(**dict(spec.model_args)))
    genome = worker_cache(("genome", spec.fasta), lambda: Genome(spec.fasta))
    store = PredictionStore(spec.store, model)
    probs = model.predict([_cluster_input(genome, c) for c in group], batch_size=spec.batch_size)
    written = 0
    for c, p in zip(group, probs):
        for gid, start, end in c.genes:
            store.write(gid, p[_gene_slice(c, start, end)])
            written += 1
    return written, sum(c.length for c in group)


def _score_parallel(genome: Genome, clusters: list[_Cluster], store: PredictionStore, batch_size: int, n_genes: int,
                    progress: bool, par: ParallelOptions, model_args: dict[str, object]) -> int:
    """Groups of clusters as units of :func:`parallel.run_units` (a few per worker, for balance)."""
    from ..parallel import run_progress, run_units

    total_nt = sum(c.length for c in clusters)
    per_unit = max(1, min(_GROUP_NT, -(-total_nt // (4 * max(par.workers, 1)))))
    groups = list(_groups(clusters, per_unit))
    spec = _PredictSpec(Path(genome.path).resolve(), store.path.resolve(), tuple(sorted(model_args.items())), batch_size)
    written = 0
    display, start = run_progress(progress, f"predict ({par.workers if par.executor == 'local' else 'ray'} workers, "
                                  f"{n_genes} genes)", total=len(groups), unit="nt")
    with display as bar:
        tracker = start(bar)

        def record(i: int, res: tuple[int, int], worker: str) -> None:
            nonlocal written
            written += res[0]
            tracker.done(worker, res[1])
            log.debug("predict: group %d done by %s (%d genes)", i, worker, res[0])

        run_units(_predict_unit, [(spec, g) for g in groups], par, on_result=record, what="gene group")
    store.remove_stale_tmp()
    return written


def predict_genes(
    genome: Genome,
    genes: pl.DataFrame,
    model: BaseModel,
    store: PredictionStore,
    *,
    contig_map: dict[str, str] | None = None,
    batch_size: int = DEFAULT_PREDICT.batch_size,
    progress: bool = False,
    overwrite: bool = False,
    parallel: ParallelOptions | None = None,
    model_args: dict[str, object] | None = None,
) -> dict[str, object]:
    """Score the bodies of ``genes`` (annotation ``genes`` columns; start/end 1-based closed) into ``store``.

    Genes already in the store are skipped (resume) unless ``overwrite``; stored genes whose length no
    longer matches their span (the annotation changed) are an error naming ``--overwrite``. Each gene's
    input is its body +- 5,000 nt of genome, reverse-complemented on '-'; overlapping same-strand genes
    are scored once. ``parallel`` (not serial) scores groups of genes in worker processes or Ray tasks,
    each loading the model once from ``model_args`` (keyword arguments of ``load_base_model``).
    """
    from ..reference.genome import match_contigs

    if store.identity is None:
        store = PredictionStore(store.path, model)
    if contig_map is None:
        contig_map = match_contigs(genes["chrom"].unique().to_list(), genome.contigs, fasta=genome.path)
    missing = genes.filter(~pl.col("chrom").is_in(list(contig_map)))
    if missing.height:
        shown = ", ".join(f"{g} ({c})" for g, c in missing.select("gene_id", "chrom").head(5).iter_rows())
        raise InputError(f"{missing.height} genes lie on contigs absent from FASTA {genome.path}: {shown} (use a matching FASTA)")
    done = set() if overwrite else {g for g in genes["gene_id"].to_list() if store.has(g)}
    stale = [(g, n, store.length_of(g)) for g, n in
             genes.filter(pl.col("gene_id").is_in(list(done)))
             .select("gene_id", pl.col("end") - pl.col("start") + 1).iter_rows()]
    stale = [(g, n, have) for g, n, have in stale if have != n]
    if stale:
        shown = ", ".join(f"{g} ({have:,} scores, {n:,} nt)" for g, n, have in stale[:5])
        raise InputError(f"predictions in {store.path} no longer match the annotation's gene lengths: {shown}"
                         f"{f', … ({len(stale)} in all)' if len(stale) > 5 else ''} (the annotation changed?); "
                         "add --overwrite to recompute the chosen genes")
    todo = genes.filter(~pl.col("gene_id").is_in(list(done)))
    clusters = _clusters(todo, contig_map)
    total_nt = sum(c.length for c in clusters)
    n_genes = todo.height
    log.info("predict: %d genes to score (%d nt in %d inputs), %d already in %s", n_genes, total_nt, len(clusters), len(done), store.path)
    t0 = time.perf_counter()
    try:
        if parallel is None or parallel.serial or not clusters:
            written = _score_clusters(genome, clusters, model, store, batch_size, n_genes, progress)
        else:
            if model_args is None:
                raise InputError("predict_genes with parallel workers needs model_args (how workers load the model)")
            written = _score_parallel(genome, clusters, store, batch_size, n_genes, progress, parallel, model_args)
    finally:  # the sibling temp folder is only needed while writing
        with contextlib.suppress(OSError):
            store.tmp.rmdir()
    seconds = time.perf_counter() - t0
    body_nt = int(todo.select((pl.col("end") - pl.col("start") + 1).sum()).item() or 0)
    summary = {
        "store": str(store.path),
        "base_model": model.name,
        "version": model.version,
        "device": model.device,
        "precision": model.precision,
        "genes_predicted": written,
        "genes_skipped": len(done),
        "nt": body_nt,
        "nt_scored": total_nt,
        "seconds": round(seconds, 3),
        "nt_per_s": round(total_nt / seconds, 1) if seconds > 0 else None,
    }
    log.info("predict: %s", summary)
    return summary


def predict(
    *,
    fasta: Path | None,
    gtf: Path | None,
    out: Path,
    genes: Sequence[str] | None = None,
    gene_ids_file: Path | None = None,
    gene_col: str | None = None,
    n_genes: int | None = None,
    batch_size: int = DEFAULT_PREDICT.batch_size,
    device: Device = DEFAULT_PREDICT.device,
    base_model: BaseModelName = DEFAULT_PREDICT.base_model,
    weights: Path | None = None,
    precision: Precision = DEFAULT_PREDICT.precision,
    chunk_size: int = DEFAULT_PREDICT.chunk_size,
    runtime: Runtime = DEFAULT_PREDICT.runtime,
    progress: bool = True,
    overwrite: bool = False,
    workers: int = DEFAULT_PARALLEL.workers,
    executor: Executor = DEFAULT_PARALLEL.executor,
    ray_address: str | None = None,
    threads_per_worker: int | None = None,
) -> dict[str, object]:
    """``meta-spliceai predict``: score the selected genes of a FASTA + GTF pair into the store ``out``.

    ``overwrite`` recomputes the selected genes even when the store has them (others are untouched).
    ``workers`` > 1 scores genes in that many local processes, ``executor="ray"`` as Ray tasks (on
    ``ray_address``, else a local cluster); the store is the same either way.
    """
    from ..parallel import parallel_options
    from ..reference.report import genes_with_contig, open_reference
    from ..storage import check_output_dir
    from .ensemble import resolve_device

    for flag, value in (("--batch-size", batch_size), ("--chunk-size", chunk_size)):
        if value < 1:
            raise InputError(f"{flag} must be a positive number, got {value}")
    check_output_dir(Path(out), "--out")

    genome, ann, contig_map, _ = open_reference(fasta, gtf)
    selected = requested_genes(ann.genes, gene_list=genes, gene_ids_file=gene_ids_file, gene_col=gene_col, n_genes=n_genes)
    skipped = 0
    if not genes and gene_ids_file is None:  # all genes: those on contigs the FASTA lacks (alt, fix...) are skipped
        selected, skipped = genes_with_contig(selected, contig_map)
    model_args: dict[str, object] = {
        "name": base_model, "weights": Path(weights).resolve() if weights else None, "device": device,
        "precision": precision, "chunk_size": chunk_size, "batch_size": batch_size, "runtime": runtime}
    par, notes = parallel_options(workers=workers, executor=executor, ray_address=ray_address,
                                  threads_per_worker=threads_per_worker, device=resolve_device(device),
                                  n_units=selected.height, what="genes")
    model = load_base_model(**model_args)  # type: ignore[arg-type]
    for note in notes:
        log.warning("%s", note)
    store = PredictionStore(out, model)
    summary = predict_genes(genome, selected, model, store, contig_map=contig_map, batch_size=batch_size,
                            progress=progress, overwrite=overwrite, parallel=par, model_args=model_args)
    if skipped:
        summary["skipped (contig not in FASTA)"] = skipped
    if notes:
        summary["notes"] = "; ".join(notes)
    return summary
