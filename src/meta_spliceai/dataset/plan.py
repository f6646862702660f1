"""``build --dry-run``: what a build would cost, before a long run, writing nothing in its folder.

For the genes the build would choose (the same selection as :func:`..builder.build`), it counts the
nucleotides the base model must score (gene bodies, and the model's input: body + 2 x 5,000 nt of flank,
minus the genes the prediction store already holds), then calibrates on this machine: the real base model
scores the shortest chosen genes (a few thousand nt, 3 genes at least; one warm-up pass first), and the real builder builds
them in a temporary folder (deleted). From those it estimates:

- predict time = input nt / (calibrated nt/s), divided by ``workers`` (each worker gets
  cores / workers threads: the calibration runs with that many threads, so the per-worker rate is measured);
- rows = annotated sites of the chosen genes x (rows per site of the calibration build);
- build time = the fixed cost (start-up, finalize) + rows x (seconds per row) / ``workers``, both from two
  calibration builds (of the shortest gene, and of the whole sample): the builder's work grows with rows;
- store size = body nt x (bytes per nt of the calibration's store files);
- dataset size = rows x (bytes per row of the calibration build);
- peak memory = this process's peak while calibrating (annotation, model, one batch) plus, with
  ``workers`` > 1, one model and one batch per further worker.

Estimates scale linearly from a small sample: they are a plan, not a promise (genes with many
transcripts, or a loaded machine, differ). Coordinates are not taken here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..config import DEFAULT_BUILD, DEFAULT_PARALLEL, DEFAULT_PREDICT, FLANK
from ..errors import InputError
from ..parallel import usable_cores
from .selection import ERROR_POLICIES, candidate_pool, select_genes

log = logging.getLogger(__name__)

#: nucleotides of gene body the calibration scores (the shortest chosen genes up to this many)
CALIBRATION_NT = 4_000
#: genes the calibration builds at least (the shortest), so that per-gene and fixed build costs separate
MIN_CALIBRATION_GENES = 3


@dataclass
class BuildPlan:
    """What ``build --dry-run`` prints (sizes in bytes, times in seconds)."""

    n_genes: int
    n_predict_genes: int  # genes whose predictions the build needs and the store lacks
    body_nt: int  # gene-body nucleotides to predict
    input_nt: int  # what the model reads for them (body + flanks)
    stored_genes: int  # genes the store already holds
    workers: int
    calibration: dict[str, float] = field(default_factory=dict)
    rows: float = 0.0  # dataset rows expected (annotated sites x the calibration's rows per site)
    predict_seconds: float = 0.0
    build_seconds: float = 0.0
    store_bytes: float = 0.0
    dataset_bytes: float = 0.0
    peak_memory_bytes: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def plan_build(
    *,
    output_dir: str | os.PathLike[str],
    fasta: str | os.PathLike[str] | None = None,
    gtf: str | os.PathLike[str] | None = None,
    subset_policy: str | None = None,
    n_genes: int | None = None,
    gene_ids_file: str | os.PathLike[str] | None = None,
    gene_col: str | None = None,
    gene_types: Sequence[str] | None = None,
    kmer_sizes: Sequence[int] = DEFAULT_BUILD.kmer_sizes,
    feature_sets: Sequence[str] = DEFAULT_BUILD.feature_sets,
    seed: int = DEFAULT_BUILD.seed,
    predictions: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    base_model: str = DEFAULT_BUILD.base_model,
    weights: str | os.PathLike[str] | Sequence[str] | None = None,
    device: str = DEFAULT_PREDICT.device,
    precision: str = DEFAULT_PREDICT.precision,
    runtime: str = DEFAULT_PREDICT.runtime,
    workers: int = DEFAULT_PARALLEL.workers,
    threads_per_worker: int | None = None,
    run_workflow: bool = False,
) -> BuildPlan:
    """The plan of ``build`` with these flags (see the module docstring); nothing is written in
    ``output_dir`` or the store (the calibration works in a temporary folder)."""
    from ..basemodel.store import PredictionStore
    from ..reference.genelists import read_gene_list, resolve_gene_ids
    from ..reference.report import open_reference

    from .builder import check_labelling

    if workers < 1:
        raise InputError(f"--workers {workers}: give a positive number of workers")
    check_labelling(base_model, predictions, output_dir)
    policy = subset_policy or ("custom" if gene_ids_file is not None else DEFAULT_BUILD.subset_policy)
    if n_genes is None and policy not in ("custom", "all"):
        n_genes = DEFAULT_BUILD.n_genes
    genome, ann, contig_map, _ = open_reference(fasta, gtf)
    pool = candidate_pool(ann, contig_map, genome.contigs, gene_types)
    if policy == "custom":
        if gene_ids_file is None:
            raise InputError("--subset-policy custom needs --gene-ids-file")
        ids = resolve_gene_ids(ann.genes, read_gene_list(Path(gene_ids_file), gene_col), source=str(gene_ids_file))
        pool = pool.filter(pl.col("gene_id").is_in(ids))
    if pool.height == 0:
        raise InputError("no genes to build: the annotation has no multi-exon genes with sequence "
                         "(of the requested --gene-types)")
    notes: list[str] = []
    if policy in ERROR_POLICIES:  # the ranking needs the whole pool's predictions: plan those, build n_genes
        chosen = pool["gene_id"].to_list()[: n_genes] if n_genes else pool["gene_id"].to_list()
        need = pool
        notes.append(f"--subset-policy {policy} ranks the whole pool by base-model errors: all {pool.height:,} "
                     "candidate genes are predicted")
    else:
        chosen = select_genes(pool, policy=policy, n_genes=n_genes, seed=seed,  # type: ignore[arg-type]
                              custom=pool["gene_id"].to_list() if policy == "custom" else None)
        need = pool.filter(pl.col("gene_id").is_in(chosen))
    from .stores import as_paths, weights_map

    stores = as_paths(predictions)  # type: ignore[arg-type]
    if len(stores) > 1:  # a stacked build: the plan is the labelling model's; each further model costs its own predict
        notes.append(f"{len(stores)} prediction stores given: this plan covers the first (labelling) model's; each "
                     "further base model adds its own predictions (Pangolin's 12 networks ~2.4x SpliceAI's time)")
    store_dir = stores[0] if stores else Path(output_dir) / "predictions"
    store = PredictionStore(store_dir) if store_dir.is_dir() else None
    stored = {g for g in need["gene_id"].to_list() if store is not None and store.has(g)}
    todo = need.filter(~pl.col("gene_id").is_in(list(stored)))
    body = int(todo["length"].sum() or 0)
    plan = BuildPlan(n_genes=len(chosen), n_predict_genes=todo.height, body_nt=body, input_nt=body + 2 * FLANK * todo.height,
                     stored_genes=len(stored), workers=workers, notes=notes)
    if todo.height and not run_workflow:
        plan.notes.append(f"{todo.height:,} of these genes lack predictions in {store_dir}: the build refuses to start "
                          "without --run-workflow (which computes them, as planned here)")
    sites = ann.splice_sites.filter(pl.col("gene_id").is_in(chosen)).height
    threads = threads_per_worker or max(1, usable_cores() // workers)
    by_length = need.sort("length", "gene_id")
    sample = by_length.filter(pl.col("length").cum_sum() <= CALIBRATION_NT)
    sample = sample if sample.height >= MIN_CALIBRATION_GENES else by_length.head(MIN_CALIBRATION_GENES)
    cal = _calibrate(genome, ann, contig_map, sample, fasta=genome.path, gtf=ann.source, kmer_sizes=kmer_sizes,
                     feature_sets=feature_sets, seed=seed, base_model=base_model, weights=weights, device=device,
                     precision=precision, runtime=runtime, threads=threads)
    plan.calibration = cal
    plan.predict_seconds = plan.input_nt / cal["predict_nt_per_s"] / workers
    plan.rows = sites * cal["rows_per_site"]
    plan.build_seconds = cal["build_fixed_s"] + plan.rows * cal["build_s_per_row"] / workers
    plan.store_bytes = body * cal["store_bytes_per_nt"]
    plan.dataset_bytes = plan.rows * cal["bytes_per_row"]
    plan.peak_memory_bytes = cal["peak_rss"] + (workers - 1) * cal["worker_rss"]
    return plan


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """The calibration's thread count (what each worker of ``--workers`` gets), the environment restored after."""
    from ..parallel import THREAD_ENV, set_threads

    saved = {v: os.environ.get(v) for v in THREAD_ENV}
    set_threads(n)
    try:
        yield
    finally:
        os.environ.update({v: val for v, val in saved.items() if val is not None})
        for v in (v for v, val in saved.items() if val is None):
            os.environ.pop(v, None)


def _calibrate(genome, ann, contig_map, sample: pl.DataFrame, *, fasta: Path, gtf: str, kmer_sizes, feature_sets,
               seed: int, base_model: str, weights, device: str, precision: str, runtime: str,
               threads: int) -> dict[str, float]:  # noqa: ANN001
    """Score and build ``sample`` for real in a temporary folder: rates per nt, per gene, per row."""
    from ..basemodel.ensemble import load_base_model
    from ..basemodel.predict import predict_genes
    from ..basemodel.store import PredictionStore
    from ..reference.annotation import cache_folder, save_cache, strict_default
    from .builder import build

    rss0 = _peak_rss()
    with tempfile.TemporaryDirectory(prefix="meta-spliceai-plan-") as tmp, _threads(threads):
        t = time.perf_counter()
        wdir = weights_map(weights, [base_model]).get(base_model) if weights else None  # type: ignore[arg-type]
        model = load_base_model(base_model, weights=wdir, device=device,  # type: ignore[arg-type]
                                precision=precision, runtime=runtime)  # type: ignore[arg-type]
        load_s = time.perf_counter() - t
        store_dir = Path(tmp) / "predictions"
        warm = PredictionStore(Path(tmp) / "warm", model)
        predict_genes(genome, sample.head(1), model, warm, contig_map=contig_map, progress=False)  # warm-up
        t = time.perf_counter()
        predict_genes(genome, sample, model, PredictionStore(store_dir, model), contig_map=contig_map, progress=False)
        predict_s = time.perf_counter() - t
        after_model = _peak_rss()
        body = int(sample["length"].sum())
        # two builds, of the first gene and of all: the second's extra time is per gene, the rest fixed cost
        runs = []
        for n in sorted({1, sample.height}):
            out = Path(tmp) / f"build{n}"
            save_cache(ann, cache_folder(Path(gtf), out / "annotation", strict_default()))  # parsed once, above
            ids = Path(tmp) / f"genes{n}.txt"
            ids.write_text("\n".join(sample["gene_id"].head(n).to_list()) + "\n")
            t = time.perf_counter()
            with _quiet():
                summary = build(output_dir=out, fasta=fasta, gtf=gtf, subset_policy="custom", gene_ids_file=ids,
                                kmer_sizes=kmer_sizes, feature_sets=feature_sets, seed=seed, predictions=store_dir,
                                base_model=base_model, progress=False)  # type: ignore[arg-type]
            runs.append((time.perf_counter() - t, max(summary.rows_trim, 1), _dir_bytes(out / "master")))
        # the builder's work grows with its rows (features per row), not with genes: cost per row + fixed cost
        (t1, r1, b1), (t2, r2, b2) = runs[0], runs[-1]
        per_row = (t2 - t1) / (r2 - r1) if r2 > r1 and t2 > t1 else t2 / r2
        fixed = max(t1 - r1 * per_row, 0.0)
        # bytes per row at the margin: a Parquet file's footer (thousands of k-mer columns) is paid per batch file
        bytes_per_row = (b2 - b1) / (r2 - r1) if r2 > r1 and b2 > b1 else b2 / r2
        sites = ann.splice_sites.filter(pl.col("gene_id").is_in(sample["gene_id"].implode())).height
        rows = r2
        store_b = _dir_bytes(store_dir)
    return {
        "genes": float(sample.height), "body_nt": float(body), "threads": float(threads), "model_load_s": load_s,
        "predict_s": predict_s, "predict_nt_per_s": (body + 2 * FLANK * sample.height) / max(predict_s, 1e-9),
        "build_s": t2, "build_fixed_s": fixed, "build_s_per_row": per_row, "rows": float(rows),
        "rows_per_site": rows / max(sites, 1), "bytes_per_row": bytes_per_row, "store_bytes_per_nt": store_b / body,
        "peak_rss": float(_peak_rss()), "worker_rss": float(max(after_model - rss0, 0)),
    }


@contextlib.contextmanager
def _quiet():
    """The calibration build's own info lines stay at debug level (its notes are not the plan's)."""
    logger = logging.getLogger("meta_spliceai.dataset.builder")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
