"""The incremental dataset builder: plan, per-batch raw/trim Parquet, ``master/`` links and manifest.

Layout of an output folder (see DESIGN.md)::

    OUT/build.json                 config, input checksums, tool versions, the plan (batches of gene IDs)
    OUT/annotation/                parsed annotation tables, cached by the GTF's checksum
    OUT/predictions/               prediction store (or --predictions DIR elsewhere)
    OUT/batches/batch_NNNNN_raw.parquet, batch_NNNNN_trim.parquet, batch_NNNNN_perf.parquet
    OUT/master/batch_NNNNN.parquet hard link to the trim (master/ holds Parquet files only)
    OUT/manifest.json              per batch: genes, rows, checksum; schema version
    OUT/gene_performance.tsv       base-model metrics per gene and site type

The plan is written before any work, so batch membership never changes on resume. A batch is done
when its trim, its master link and its manifest entry exist and agree (checksum). Every file is
written under a temporary name and renamed; the manifest is written last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from .. import __version__
from ..config import (
    DEFAULT_BUILD,
    DEFAULT_PARALLEL,
    DEFAULT_PREDICT,
    BaseModelName,
    BuildConfig,
    Device,
    Executor,
    Precision,
    Runtime,
)
from ..errors import ConfigMismatchError, InputError
from ..progress import count_progress
from ..reference.annotation import Annotation, load_annotation
from ..reference.genelists import read_gene_list, resolve_gene_ids
from ..reference.genome import Genome, match_contigs
from ..storage import (
    check_output_dir,
    checksum,
    commit,
    fault_point,
    folder_lock,
    link_or_copy,
    remove_stale_tmp,
    tmp_path_for,
    write_json_atomic,
    write_text_atomic,
)
from .folder import (
    BUILD_JSON,
    batch_paths,
    manifest_path,
    migrate_layout,
    read_manifest,
    write_manifest,
)
from .rows import gene_rows, gene_sequence
from .sampling import trim_mask
from .schema import SCHEMA_VERSION, arrow_schema, normalize_feature_sets
from .selection import (
    ERROR_POLICIES,
    candidate_pool,
    check_policy,
    evaluate_pool,
    performance_frame,
    plan_batches,
    select_genes,
)
from .writer import RowWriter, release_memory

log = logging.getLogger(__name__)

#: configuration fields that do not change any row (only how rows are grouped): free to change on resume
ROW_NEUTRAL = ("batch_rows",)
MAX_K = 8


@dataclass
class BuildSummary:
    """What a build did; the CLI prints it."""

    output_dir: str
    n_genes: int
    n_batches: int
    built: int = 0
    skipped: int = 0
    rows_raw: int = 0
    rows_trim: int = 0
    pred_types: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: gene -> why it has no row in the dataset (no sites and no confident scores, or only easy TNs not drawn)
    genes_without_rows: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- flags


def check_build_flags(
    *,
    subset_policy: str | None,
    n_genes: int | None,
    gene_ids_file: object,
    gene_col: str | None,
    batch_size: int,
    batch_rows: int,
    easy_ratio: float,
    hard_prob: float,
    window: int,
    threshold: float,
    consensus_window: int,
    kmer_sizes: Sequence[int],
    seed: int = DEFAULT_BUILD.seed,
) -> str:
    """Validate the flag combination; returns the effective subset policy."""
    policy = subset_policy or ("custom" if gene_ids_file is not None else DEFAULT_BUILD.subset_policy)
    check_policy(policy)
    if gene_ids_file is not None and policy != "custom":
        raise InputError(f"--gene-ids-file conflicts with --subset-policy {policy}: drop one (a gene list means custom)")
    if policy == "custom" and gene_ids_file is None:
        raise InputError("--subset-policy custom needs --gene-ids-file FILE")
    if gene_col is not None and gene_ids_file is None:
        raise InputError("--gene-col needs --gene-ids-file")
    if n_genes is not None and policy in ("custom", "all"):
        raise InputError(f"--n-genes conflicts with --subset-policy {policy}, which takes all of its genes")
    for name, value, ok, rule in (
        ("--n-genes", n_genes, n_genes is None or n_genes > 0, "a positive number"),
        ("--batch-size", batch_size, batch_size > 0, "a positive number of genes"),
        ("--batch-rows", batch_rows, batch_rows > 0, "a positive number of rows"),
        ("--easy-ratio", easy_ratio, easy_ratio >= 0, ">= 0"),
        ("--hard-prob", hard_prob, 0 <= hard_prob <= 1, "between 0 and 1"),
        ("--window", window, window >= 0, ">= 0"),
        ("--threshold", threshold, 0 < threshold <= 1, "in (0, 1]"),
        ("--consensus-window", consensus_window, consensus_window >= 0, ">= 0"),
        ("--seed", seed, seed >= 0, ">= 0 (random generators take non-negative seeds)"),
    ):
        if not ok:
            raise InputError(f"{name} must be {rule}, got {value}")
    bad = [k for k in kmer_sizes if not 1 <= k <= MAX_K]
    if bad:
        raise InputError(f"--kmer-sizes must be between 1 and {MAX_K} (0 for none), got {bad[0]}")
    return policy


# --------------------------------------------------------------------------- build


#: what to do with a base model whose scores do not tell donor from acceptor (Pangolin) in a build
_LABELLING_HINT = ("give it after a store that does (the first --predictions store labels the rows: SpliceAI, "
                   "OpenSpliceAI)")


def check_labelling(base_model: str, predictions: object, output_dir: str | os.PathLike[str],
                    base_models: Sequence[str] | None = None) -> None:
    """InputError when the build's labelling model (the first of ``base_models``, else ``base_model``), or the first
    store of ``predictions`` (one path or a list; default ``output_dir/predictions``), does not tell donor from
    acceptor (Pangolin): its scores cannot label rows (before anything is made; ``build --dry-run`` says so too)."""
    from ..basemodel.store import COLUMNS, PredictionStore, columns_of
    from .stores import as_paths

    first = base_models[0] if base_models else base_model
    if columns_of(first) != COLUMNS:
        raise InputError(f"--base-model {first}: {first.capitalize()} does not tell donor from acceptor, so "
                         f"it cannot label a build's rows; {_LABELLING_HINT}")
    paths = as_paths(predictions)  # type: ignore[arg-type]
    store_dir = paths[0] if paths else Path(output_dir) / "predictions"
    if store_dir.is_dir():
        PredictionStore(store_dir).require_sites(_LABELLING_HINT)


def build(
    *,
    output_dir: str | os.PathLike[str],
    fasta: str | os.PathLike[str] | None = None,
    gtf: str | os.PathLike[str] | None = None,
    subset_policy: str | None = None,
    n_genes: int | None = None,
    gene_ids_file: str | os.PathLike[str] | None = None,
    gene_col: str | None = None,
    gene_types: Sequence[str] | None = None,
    batch_size: int = DEFAULT_BUILD.batch_size,
    batch_rows: int = DEFAULT_BUILD.batch_rows,
    threshold: float = DEFAULT_BUILD.threshold,
    consensus_window: int = DEFAULT_BUILD.consensus_window,
    hard_prob: float = DEFAULT_BUILD.hard_prob,
    window: int = DEFAULT_BUILD.window,
    easy_ratio: float = DEFAULT_BUILD.easy_ratio,
    kmer_sizes: Sequence[int] = DEFAULT_BUILD.kmer_sizes,
    feature_sets: Sequence[str] = DEFAULT_BUILD.feature_sets,
    seed: int = DEFAULT_BUILD.seed,
    run_workflow: bool = False,
    overwrite: bool = False,
    predictions: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    device: Device = DEFAULT_PREDICT.device,
    base_model: BaseModelName = DEFAULT_BUILD.base_model,
    base_models: Sequence[str] | None = None,
    weights: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | Sequence[str] | None = None,
    precision: Precision = DEFAULT_PREDICT.precision,
    runtime: Runtime = DEFAULT_PREDICT.runtime,
    progress: bool = True,
    workers: int = DEFAULT_PARALLEL.workers,
    executor: Executor = DEFAULT_PARALLEL.executor,
    ray_address: str | None = None,
    threads_per_worker: int | None = None,
) -> BuildSummary:
    """Build (or resume) a meta-model training dataset in ``output_dir``. See the module docstring.

    ``feature_sets``: feature families of the rows (``base`` required; see :mod:`meta_spliceai.schema`),
    stored in ``build.json``: a resume with another selection is refused.

    ``workers`` > 1 builds batches in that many local processes; ``executor="ray"`` runs them as Ray
    tasks (on ``ray_address``, else a local cluster). The plan and the manifest stay in this process;
    the files are the same bytes as a serial build's.

    Several base models (a stacked build, :mod:`meta_spliceai.dataset.stacking`): ``predictions`` lists one
    store per model, the first the labelling model's; ``base_models`` names them (default: each store's
    own identity), and without ``predictions`` their stores are ``output_dir/predictions/<model>``
    (``run_workflow`` computes what is missing, ``weights`` maps each model to its weights folder).
    """
    from ..basemodel.ensemble import resolve_device
    from ..parallel import parallel_options

    check_labelling(base_model, predictions, output_dir, base_models)
    par, par_notes = parallel_options(workers=workers, executor=executor, ray_address=ray_address,
                                      threads_per_worker=threads_per_worker,
                                      device=resolve_device(device) if run_workflow else "cpu")
    if 0 in {int(k) for k in kmer_sizes} and any(int(k) != 0 for k in kmer_sizes):
        raise InputError(f"--kmer-sizes {' '.join(str(k) for k in kmer_sizes)}: 0 means no k-mers and cannot be "
                         "combined with sizes; give --kmer-sizes 0 alone, or the sizes without 0")
    kmer_sizes = tuple(sorted({int(k) for k in kmer_sizes if int(k) != 0}))
    feature_sets = normalize_feature_sets(feature_sets)
    policy = check_build_flags(
        subset_policy=subset_policy, n_genes=n_genes, gene_ids_file=gene_ids_file, gene_col=gene_col,
        batch_size=batch_size, batch_rows=batch_rows, easy_ratio=easy_ratio, hard_prob=hard_prob, window=window,
        threshold=threshold, consensus_window=consensus_window, kmer_sizes=kmer_sizes, seed=seed,
    )
    if n_genes is None and policy not in ("custom", "all"):
        n_genes = DEFAULT_BUILD.n_genes
    out = Path(output_dir)
    check_output_dir(out, "--output-dir")
    created = not out.exists()
    t0 = time.perf_counter()
    with _cleanup_failed_start(out, created), folder_lock(out):
        _refuse_foreign_files(out)  # before anything is read, made or (--overwrite) removed
        if overwrite:
            _clear_build(out)
        from ..reference.report import annotation_manifest, resolve_reference

        fasta_path, gtf_path, _ = resolve_reference(fasta, gtf)
        genome = Genome(fasta_path)
        ann = load_annotation(gtf_path, cache_dir=out / "annotation")
        contig_map = match_contigs(ann.genes["chrom"].unique().sort().to_list(), genome.contigs,
                                   gtf=gtf_path, fasta=fasta_path, strict=False)
        if not contig_map:
            match_contigs(ann.genes["chrom"].unique().to_list(), genome.contigs, gtf=gtf_path, fasta=fasta_path)
        from .stores import resolve, weights_map

        stores = resolve(predictions, base_models, default_root=out / "predictions", base_model=base_model)
        base_model = stores.names[0]  # type: ignore[assignment]
        wmap = weights_map(weights, stores.names)
        ctx = _Context(out=out, genome=genome, ann=ann, contig_map=contig_map, store_dir=stores.paths[0],
                       run_workflow=run_workflow, device=device, weights=wmap.get(base_model), precision=precision,
                       runtime=runtime, progress=progress, gtf=gtf_path, parallel=par,
                       stack=tuple(zip(stores.names[1:], stores.paths[1:],
                                       (str(wmap[m]) if m in wmap else None for m in stores.names[1:]))))
        custom = None
        if policy == "custom":
            custom = tuple(resolve_gene_ids(ann.genes, read_gene_list(gene_ids_file, gene_col),
                                            source=str(gene_ids_file)))
        cfg = BuildConfig(
            subset_policy=policy, n_genes=n_genes, gene_ids=custom,  # type: ignore[arg-type]
            gene_types=tuple(gene_types) if gene_types else None, batch_size=batch_size, batch_rows=batch_rows,
            threshold=threshold, consensus_window=consensus_window, hard_prob=hard_prob, window=window,
            easy_ratio=easy_ratio, kmer_sizes=kmer_sizes, feature_sets=feature_sets,  # type: ignore[arg-type]
            seed=seed, base_model=base_model, stack_models=stores.names[1:],  # type: ignore[arg-type]
        )
        ctx.cfg = cfg
        inputs = {"fasta": str(fasta_path.resolve()), "gtf": str(gtf_path.resolve()),
                  "fasta_checksum": checksum(fasta_path), "gtf_checksum": checksum(gtf_path),
                  "annotation": annotation_manifest(ann, genome.contigs)}  # split/dropped records, skipped contigs
        plan, notes = _load_or_make_plan(ctx, cfg, inputs)
        summary = BuildSummary(output_dir=str(out), n_genes=sum(map(len, plan)), n_batches=len(plan),
                               notes=notes + par_notes)
        for d in ("batches", "master"):
            (out / d).mkdir(parents=True, exist_ok=True)
            remove_stale_tmp(out / d)
        if migrate_layout(out):
            summary.notes.append(f"moved master/manifest.json to {manifest_path(out)} (new layout)")
        manifest = read_manifest(out)
        todo = [b for b in range(len(plan)) if not _batch_done(out, b, manifest)]
        for b in sorted(set(range(len(plan))) - set(todo)):
            log.info("batch %d (%d of %d): already done", b, b + 1, len(plan))
        if par.serial or not todo:
            _build_serial(ctx, plan, todo, manifest)
        else:
            _build_parallel(ctx, plan, todo, manifest, par, summary.notes)
        for b in range(len(plan)):
            entry = manifest["batches"][f"{b:05d}"]  # type: ignore[index]
            summary.built += b in todo
            summary.skipped += b not in todo
            summary.rows_raw += int(entry["raw_rows"])
            summary.rows_trim += int(entry["rows"])
            for k, v in entry["pred_types"].items():
                summary.pred_types[k] = summary.pred_types.get(k, 0) + int(v)
            summary.genes_without_rows.update(entry.get("genes_without_rows") or {})
        if summary.genes_without_rows:
            summary.notes.append(_no_rows_note(summary.genes_without_rows, summary.n_genes))
        manifest["annotation"] = inputs["annotation"]
        _finalize(out, len(plan), manifest)
    summary.seconds = time.perf_counter() - t0
    return summary


def _no_rows_note(empty: dict[str, str], n_genes: int) -> str:
    """One line naming the genes without rows and why (the same reasons grouped)."""
    by_reason: dict[str, list[str]] = {}
    for g, why in empty.items():
        by_reason.setdefault(why, []).append(g)
    parts = [f"{', '.join(gs[:5])}{f', … ({len(gs)})' if len(gs) > 5 else ''}: {why}" for why, gs in by_reason.items()]
    return (f"{len(empty)} of {n_genes} genes have no rows ({'; '.join(parts)}); they are listed in the manifest "
            "and absent from master/")


def _build_serial(ctx: _Context, plan: list[list[str]], todo: list[int], manifest: dict) -> None:
    """Batches one by one in this process (progress: batches, and the genes of the current batch)."""
    with count_progress(ctx.progress) as bar:
        ctx.bar = bar
        task = bar.add_task("batches", total=len(plan), rate="") if bar else None
        if bar:
            bar.update(task, completed=len(plan) - len(todo))
        for b in todo:
            ids = plan[b]
            t_batch = time.perf_counter()
            log.info("batch %d (%d of %d): %d genes: started", b, b + 1, len(plan), len(ids))
            _build_batch(ctx, b, ids, manifest)
            log.info("batch %d (%d of %d): done in %.1f s, %d rows", b, b + 1, len(plan),
                     time.perf_counter() - t_batch, manifest["batches"][f"{b:05d}"]["rows"])
            if bar:
                bar.update(task, advance=1)
        ctx.bar = None


@contextlib.contextmanager
def _cleanup_failed_start(out: Path, created: bool) -> Iterator[None]:
    """A build that fails before its plan is written leaves nothing behind in a folder it created
    (predictions it computed are kept)."""
    try:
        yield
    except BaseException:
        if created and not (out / BUILD_JSON).exists():
            shutil.rmtree(out / "annotation", ignore_errors=True)
            for d in (out / "batches", out / "master", out):
                remove_stale_tmp(d)
                with contextlib.suppress(OSError):
                    d.rmdir()
        raise


@dataclass
class _Context:
    out: Path
    genome: Genome
    ann: Annotation
    contig_map: dict[str, str]
    store_dir: Path
    run_workflow: bool
    device: Device
    weights: str | os.PathLike[str] | None
    precision: Precision
    runtime: Runtime
    progress: bool
    cfg: BuildConfig = DEFAULT_BUILD
    #: a stacked build's other models: (name, store folder, weights or None), in store order
    stack: tuple[tuple[str, Path, str | None], ...] = ()
    gtf: Path | None = None  # the annotation file (worker processes re-read it from the cache)
    parallel: object = None  # ParallelOptions of predictions made here (the error policies' pool); None: serial
    bar: object = None  # the build's progress display (batches, and genes of the current batch)
    _model: object = None
    _store: object = None
    _stack_stores: tuple = ()

    @property
    def store(self):
        if self._store is None:
            from ..basemodel.store import PredictionStore

            store = PredictionStore(self.store_dir)
            store.require_sites(_LABELLING_HINT)
            have = store.stored_identity()
            if have is not None and have.get("base_model") != self.cfg.base_model:
                raise ConfigMismatchError(
                    f"prediction store {self.store_dir} holds {have.get('base_model')} predictions but the build "
                    f"asks for --base-model {self.cfg.base_model}; use another --predictions folder"
                )
            self._store = store
        return self._store

    @property
    def stack_stores(self) -> tuple:
        """The other models' stores (stacked build), in order."""
        if len(self._stack_stores) != len(self.stack):
            from ..basemodel.store import PredictionStore

            self._stack_stores = tuple(PredictionStore(p) for _, p, _ in self.stack)
        return self._stack_stores

    def tracks(self, gene: Mapping[str, object]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The labelling model's track of a gene and the other models' (checked against each other)."""
        from .stacking import check_tracks

        probs = self.store.read(str(gene["gene_id"]))
        others = tuple(s.read(str(gene["gene_id"])) for s in self.stack_stores)
        if others:
            check_tracks(str(gene["gene_id"]), (probs, *others), self.cfg.base_models,
                         (self.store_dir, *(p for _, p, _ in self.stack)))
        return probs, others

    def ensure_predictions(self, genes: pl.DataFrame, what: str) -> None:
        """Predict the genes missing from every store (with --run-workflow), else fail naming them."""
        self._ensure_store(self.store, self.cfg.base_model, self.weights, genes, what)
        for (name, _, weights), store in zip(self.stack, self.stack_stores):
            self._ensure_store(store, name, weights, genes, what)

    def _ensure_store(self, store, name: str, weights, genes: pl.DataFrame, what: str) -> None:  # noqa: ANN001
        """One model's store: stale lengths and missing genes recomputed (--run-workflow) or refused."""
        store_dir = store.path
        stale = [(g, n, have) for g, n in genes.select("gene_id", pl.col("end") - pl.col("start") + 1).iter_rows()
                 if (have := store.length_of(g)) is not None and have != n]
        if stale:
            shown = ", ".join(f"{g} ({have:,} scores, {n:,} nt)" for g, n, have in stale[:5])
            more = f", … ({len(stale)} in all)" if len(stale) > 5 else ""
            if not self.run_workflow:
                raise InputError(
                    f"predictions in {store_dir} no longer match the annotation's gene lengths for {what}: "
                    f"{shown}{more} (the annotation changed?); add --run-workflow to recompute them, or run "
                    "meta-spliceai predict --overwrite for these genes"
                )
            log.warning("recomputing predictions whose length no longer matches the annotation: %s%s", shown, more)
            for g, _, _ in stale:
                store.remove(g)
        missing = genes.filter(pl.Series([not store.has(g) for g in genes["gene_id"]], dtype=pl.Boolean))
        if missing.height == 0:
            return
        if not self.run_workflow:
            names = ", ".join(missing["gene_id"].head(5).to_list())
            more = f", … ({missing.height} in all)" if missing.height > 5 else ""
            raise InputError(
                f"no predictions in {store_dir} for {what}: {names}{more}; add --run-workflow to compute "
                "them, or point --predictions at a store that has them"
            )
        from ..basemodel.ensemble import load_base_model
        from ..basemodel.predict import predict_genes

        model_args = {"name": name, "weights": Path(weights).resolve() if weights else None,
                      "device": self.device, "precision": self.precision, "runtime": self.runtime}
        models = self._model if isinstance(self._model, dict) else {}
        if name not in models:
            models[name] = load_base_model(**model_args)  # type: ignore[arg-type]
        self._model = models
        log.info("predicting %d gene(s) with %s for %s", missing.height, name, what)
        predict_genes(self.genome, missing, models[name], store, contig_map=self.contig_map,
                      batch_size=DEFAULT_PREDICT.batch_size, progress=self.progress,
                      parallel=self.parallel, model_args=model_args)  # type: ignore[arg-type]


def _clear_build(out: Path) -> None:
    """--overwrite: drop everything but the prediction store and the annotation cache."""
    for name in ("batches", "master"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (BUILD_JSON, "gene_performance.tsv"):
        (out / name).unlink(missing_ok=True)


def _versions() -> dict[str, str]:
    import pyarrow

    return {"meta_spliceai": __version__, "polars": pl.__version__, "pyarrow": pyarrow.__version__,
            "numpy": np.__version__}


def _load_or_make_plan(ctx: _Context, cfg: BuildConfig, inputs: dict[str, str]) -> tuple[list[list[str]], list[str]]:
    path = ctx.out / BUILD_JSON
    notes: list[str] = []
    if path.is_file():
        meta = json.loads(path.read_text())
        diffs = _differences(meta, cfg.to_dict(), inputs)
        old_rows = meta["config"].get("batch_rows")
        if old_rows != cfg.batch_rows:
            notes.append(f"--batch-rows {cfg.batch_rows} (was {old_rows}): only row-group sizes of batches built "
                         "now differ; rows are the same")
        if diffs:
            raise ConfigMismatchError(
                f"{ctx.out} holds a build made with another configuration ({'; '.join(diffs)}); "
                "re-run with the same flags to resume, add --overwrite to rebuild, or use another --output-dir"
            )
        log.info("resuming the build in %s", ctx.out)
        return meta["plan"]["batches"], ["resumed an existing build", *notes]
    genome, ann = ctx.genome, ctx.ann
    if cfg.subset_policy == "custom":
        pool = ann.genes.filter(pl.col("gene_id").is_in(list(cfg.gene_ids or ())))
        lengths = {a: genome.contigs[f] for a, f in ctx.contig_map.items()}
        bad = [g for g, c, e in pool.select("gene_id", "chrom", "end").iter_rows() if c not in lengths or e > lengths[c]]
        if bad:
            raise InputError(f"genes of the gene list without sequence in the FASTA: {', '.join(bad[:5])} "
                             "(drop them from the list; meta-spliceai reference lists such genes)")
    else:
        pool = candidate_pool(ann, ctx.contig_map, genome.contigs, cfg.gene_types)
    if pool.height == 0:
        raise InputError("no genes to build: the annotation has no multi-exon genes with sequence "
                         "(of the requested --gene-types)")
    perf = None
    if cfg.subset_policy in ERROR_POLICIES:
        log.info("policy %s ranks genes by base-model errors: evaluating %d candidate genes",
                 cfg.subset_policy, pool.height)
        ctx.ensure_predictions(pool, f"the candidate pool of --subset-policy {cfg.subset_policy}")
        perf = evaluate_pool(pool, ann, ctx.store.read, cfg)
    genes = select_genes(pool, policy=cfg.subset_policy, n_genes=cfg.n_genes, seed=cfg.seed,
                         custom=cfg.gene_ids, perf=perf)
    if cfg.n_genes is not None and cfg.n_genes > pool.height:
        notes.append(f"--n-genes {cfg.n_genes} > {pool.height} genes available: built all of them")
    plan = plan_batches(genes, cfg.batch_size)
    if not ctx.run_workflow:  # missing, stale or damaged predictions fail now, not hours into the build
        ctx.ensure_predictions(pool.filter(pl.col("gene_id").is_in(genes)), "the genes of the build")
    doc: dict[str, object] = {
        "tool": "meta-spliceai build", "config": cfg.to_dict(), "inputs": inputs, "versions": _versions(),
        "schema_version": SCHEMA_VERSION, "predictions": str(ctx.store_dir.resolve()),
        "plan": {"n_genes": len(genes), "batches": plan},
    }
    if ctx.stack:  # a stacked build: the other models' stores, in order (identities: see _finalize)
        doc["stack_predictions"] = [str(Path(p).resolve()) for _, p, _ in ctx.stack]
    write_json_atomic(path, doc)
    return plan, notes


def _differences(meta: dict, config: dict, inputs: dict) -> list[str]:
    diffs = [f"{k}: {meta['config'].get(k)!r} there, {v!r} now" for k, v in config.items()
             if meta["config"].get(k) != v and k not in ROW_NEUTRAL]
    if meta["config"].get("stack_models") and "stack_models" not in config:  # a one-model config omits the key
        diffs.append(f"stack_models: {meta['config']['stack_models']!r} there, none now")
    for k in ("fasta_checksum", "gtf_checksum"):
        if meta["inputs"].get(k) != inputs[k]:
            diffs.append(f"{k.split('_')[0]} file content differs ({meta['inputs'].get(k.split('_')[0])})")
    return diffs


def _batch_done(out: Path, b: int, manifest: dict) -> bool:
    entry = manifest["batches"].get(f"{b:05d}")
    p = batch_paths(out, b)
    if entry is None or not p["trim"].is_file() or not p["master"].is_file():
        return False
    if os.path.samefile(p["trim"], p["master"]):
        return entry["checksum"] == checksum(p["trim"])
    return entry["checksum"] == checksum(p["trim"]) == checksum(p["master"])


def _gene_sequence(ctx: _Context, gene: dict) -> tuple[str | None, int]:
    """Transcription-oriented gene body with enough real flank for the k-mer window; offset of position 0."""
    return gene_sequence(ctx.genome, ctx.contig_map[gene["chrom"]] if ctx.cfg.kmer_sizes else "", gene, ctx.cfg)


def _write_raw(ctx: _Context, b: int, genes: pl.DataFrame, ids: list[str], p: dict[str, Path]) -> None:
    """Raw rows of every gene of the batch (streamed), its performance table and its trim.

    The trim rows of a gene are drawn as its raw rows are made (``trim_mask`` works gene by gene), so
    the trim costs no second decode and encode of the batch; each writer encodes on its own thread.
    Files land perf, raw, then trim: a crash between raw and trim makes the trim from the raw file
    (:func:`_write_trim`), which gives the same bytes.
    """
    cfg = ctx.cfg
    ctx.ensure_predictions(genes, f"batch {b}")
    sites = ctx.ann.splice_sites.filter(pl.col("gene_id").is_in(ids))
    by_gene = {k[0]: v for k, v in sites.partition_by("gene_id", as_dict=True).items()}
    empty = sites.clear()
    schema = arrow_schema(cfg.kmer_sizes, cfg.kmer_window, cfg.feature_sets, cfg.stack_models)
    # one set of tables for both files: the trim's rows are picked from the raw's when written
    raw_w = RowWriter(p["raw"], schema, cfg.batch_rows, copy_rest=False)
    trim_w = RowWriter(p["trim"], schema, cfg.batch_rows, copy_rest=False)
    perf_rows: list[dict[str, object]] = []
    bar = ctx.bar
    task = bar.add_task(f"batch {b}: genes", total=genes.height, rate="") if bar else None
    t_start, n_rows = time.perf_counter(), 0
    frames: list[pl.DataFrame] = []
    masks: list[np.ndarray] = []

    def hand_over() -> None:
        """Genes gathered so far to both writers: one contiguous Arrow table per quarter row group, not
        one per gene (conversion, cast and the trim's filter cost per column and chunk: 4,000+ columns
        with 6-mers; measured 3x faster); the trim takes the raw's table with its keep mask, no copy."""
        if frames:
            rows, keep = pl.concat(frames, how="vertical_relaxed", rechunk=True), np.concatenate(masks)
            frames.clear()  # the per-gene frames go before the Arrow table is made
            masks.clear()
            table = raw_w.add(rows)
            del rows
            trim_w.add(table, keep=keep)

    # one gene at a time: memory depends on the row group, not the batch
    for i, gene in enumerate(genes.iter_rows(named=True)):
        probs, others = ctx.tracks(gene)
        seq, offset = _gene_sequence(ctx, gene)
        rows, perf = gene_rows(gene, probs, by_gene.get(gene["gene_id"], empty), seq, offset, cfg, b, others)
        if rows.height:
            frames.append(rows)
            masks.append(trim_mask(rows, easy_ratio=cfg.easy_ratio, seed=cfg.seed))
        perf_rows.extend(perf)
        n_rows += rows.height
        if i == 0:
            hand_over()
            raw_w.flush()  # a real row group is on disk before the first crash point
            fault_point("raw_write")
        elif sum(f.height for f in frames) >= max(cfg.batch_rows // 4, 1):  # a quarter row group: less memory
            hand_over()
        if bar:
            rate = n_rows / max(time.perf_counter() - t_start, 1e-9)
            bar.update(task, advance=1, rate=f"{rate:,.0f} rows/s")
    hand_over()
    if bar:
        bar.remove_task(task)
    perf_df = performance_frame(perf_rows)
    tmp = tmp_path_for(p["perf"])
    perf_df.write_parquet(tmp)
    commit(tmp, p["perf"])
    trim_w.flush()  # both files encoded before either footer is serialised
    raw_w.flush()
    release_memory()  # the row buffers' pages go back before the footers are serialised
    raw_w.close()
    release_memory()
    fault_point("after_raw")
    trim_w.close()
    release_memory()


def _write_trim(cfg: BuildConfig, p: dict[str, Path]) -> None:
    """The trim from the raw file alone (sample stage): its row groups through the keep mask, which the
    writer applies as in the one-pass build (:func:`_write_raw`), so both give the same bytes."""
    import pyarrow.parquet as pq

    small = pl.read_parquet(p["raw"], columns=["gene_id", "pred_type", "tn_kind"])
    keep = trim_mask(small, easy_ratio=cfg.easy_ratio, seed=cfg.seed)
    raw = pq.ParquetFile(p["raw"])
    # nothing to overlap with here, so no background writes: one row group in memory at a time
    schema = arrow_schema(cfg.kmer_sizes, cfg.kmer_window, cfg.feature_sets, cfg.stack_models)
    trim_w = RowWriter(p["trim"], schema, cfg.batch_rows, background=False)
    offset = 0
    for g in range(raw.num_row_groups):
        group = raw.read_row_group(g)
        n = group.num_rows
        trim_w.add(group, keep=keep[offset : offset + n])
        del group
        offset += n
    del raw  # the raw footer (row groups x 4,000+ columns) goes before the trim's own is serialised
    release_memory()
    trim_w.close()
    del trim_w
    release_memory()


def _build_batch(ctx: _Context, b: int, ids: list[str], manifest: dict) -> None:
    """Build batch ``b``'s files and record it in the manifest."""
    manifest["batches"][f"{b:05d}"] = _batch_files(ctx, b, ids)
    write_manifest(manifest_path(ctx.out), manifest)


def _batch_files(ctx: _Context, b: int, ids: list[str]) -> dict[str, object]:
    """raw (with perf) -> trim -> master link; each step resumes from the last file on disk.

    Returns the batch's manifest entry (the caller, the only writer of the manifest, records it)."""
    import pyarrow.parquet as pq

    out, cfg = ctx.out, ctx.cfg
    p = batch_paths(out, b)
    genes = ctx.ann.genes.filter(pl.col("gene_id").is_in(ids)).sort("chrom", "start", "gene_id")
    if not p["trim"].is_file():
        if p["raw"].is_file() and p["perf"].is_file():
            with _batch_file_read(p["raw"], b, out):
                _write_trim(cfg, p)  # resumed after a crash between raw and trim
        else:
            _write_raw(ctx, b, genes, ids, p)
    with _batch_file_read(p["trim"], b, out):
        trim = pl.read_parquet(p["trim"], columns=["pred_type", "gene_id"])
    with _batch_file_read(p["raw"], b, out):
        raw_rows = pq.ParquetFile(p["raw"]).metadata.num_rows
    pred = trim["pred_type"]
    counts = dict(pred.value_counts().iter_rows())
    fault_point("before_link")
    link_or_copy(p["trim"], p["master"], tmp_dir=out / "batches")
    entry = {
        "file": p["master"].name, "genes": ids, "rows": pred.len(), "raw_rows": raw_rows,
        "pred_types": dict(sorted(counts.items())), "checksum": checksum(p["trim"]),
    }
    empty = _genes_without_rows(ctx, ids, set(trim["gene_id"].unique().to_list()), p["raw"])
    if empty:  # recorded (validate expects them absent from the file) and reported by the build's summary
        entry["genes_without_rows"] = empty
        for g, why in empty.items():
            log.warning("batch %d: gene %s has no rows: %s", b, g, why)
    del pred, trim
    # the footers parsed here (row groups x 4,000+ columns, ~0.4 GB with 6-mers) leave that much freed heap,
    # which stays resident into the next batch unless handed back
    release_memory()
    return entry


@contextlib.contextmanager
def _batch_file_read(path: Path, b: int, out: Path) -> Iterator[None]:
    """A batch file that cannot be read (truncated, damaged) is an error naming it and the recovery."""
    import pyarrow as pa

    try:
        yield
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as err:
        if isinstance(err, OSError) and not isinstance(err, pa.ArrowException) and err.filename not in (None, str(path)):
            raise
        stem = f"batch_{b:05d}"
        raise InputError(
            f"cannot read {path} ({' '.join(str(err).split())[:160]}): batch {b}'s file is truncated or damaged; "
            f"delete {out / 'batches' / stem}_*.parquet and {out / 'master' / stem}.parquet, then re-run the same "
            "command: the build remakes that batch"
        ) from None


def _refuse_foreign_files(out: Path) -> None:
    """``master/`` holds only this build's batch files (or files its manifest lists): readers take every
    Parquet file there, so a foreign one would be read as rows of the dataset."""
    master = out / "master"
    if not master.is_dir():
        return
    listed = {str(e.get("file")) for e in (read_manifest(out).get("batches") or {}).values()}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # no (readable) plan: no batch file is ours
        plan = json.loads((out / BUILD_JSON).read_text())["plan"]["batches"]
        listed |= {batch_paths(out, b)["master"].name for b in range(len(plan))}
    foreign = sorted(f.name for f in master.iterdir() if f.name.endswith(".parquet") and f.name not in listed)
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise InputError(
            f"{master / foreign[0]}{more} was not written by this build (it is not a batch file of {out}): readers "
            f"take every Parquet file in master/ as rows of the dataset; move it out of {master} (or build into "
            "another --output-dir), then re-run"
        )


def _genes_without_rows(ctx: _Context, ids: list[str], present: set[str], raw: Path) -> dict[str, str]:
    """Genes of the batch without a row in its trim file, each with the reason."""
    missing = [g for g in ids if g not in present]
    if not missing:
        return {}
    cfg = ctx.cfg
    in_raw = set(pl.read_parquet(raw, columns=["gene_id"])["gene_id"].unique().to_list())
    n_sites = dict(ctx.ann.splice_sites.filter(pl.col("gene_id").is_in(missing)).group_by("gene_id").len().iter_rows())
    out = {}
    for g in missing:
        if g in in_raw:
            out[g] = (f"its rows were all easy true negatives and --easy-ratio {cfg.easy_ratio:g} drew none of them "
                      "into the trim")
        elif not n_sites.get(g):
            out[g] = ("no annotated splice site (no transcript with 2+ exons) and no base-model score >= --hard-prob "
                      f"{cfg.hard_prob:g}: nothing to learn from it")
        else:
            out[g] = f"{n_sites[g]} annotated site(s) but no row made (report this)"
    return out


# --------------------------------------------------------------------------- parallel batches


@dataclass(frozen=True)
class _WorkerSpec:
    """What a worker process needs to rebuild the build's context (all picklable, no open files)."""

    out: Path
    fasta: Path
    gtf: Path
    contig_map: tuple[tuple[str, str], ...]
    store_dir: Path
    run_workflow: bool
    device: str
    weights: str | None
    precision: str
    runtime: str
    cfg: BuildConfig
    stack: tuple[tuple[str, Path, str | None], ...] = ()

    def context(self) -> _Context:
        ann = load_annotation(self.gtf, cache_dir=self.out / "annotation")
        return _Context(out=self.out, genome=Genome(self.fasta), ann=ann, contig_map=dict(self.contig_map),
                        store_dir=self.store_dir, run_workflow=self.run_workflow, device=self.device,  # type: ignore[arg-type]
                        weights=self.weights, precision=self.precision, runtime=self.runtime,  # type: ignore[arg-type]
                        progress=False, cfg=self.cfg, stack=self.stack)


def _batch_unit(unit: tuple[_WorkerSpec, int, list[str]]) -> dict[str, object]:
    """One batch in a worker process (the context, and any model, loaded once per process)."""
    from ..parallel import worker_cache

    spec, b, ids = unit
    ctx = worker_cache(("build", spec), spec.context)
    t0 = time.perf_counter()
    entry = _batch_files(ctx, b, ids)
    log.info("batch %d: done in %.1f s by process %d", b, time.perf_counter() - t0, os.getpid())
    return entry


def _build_parallel(ctx: _Context, plan: list[list[str]], todo: list[int], manifest: dict, par, notes: list[str]) -> None:  # noqa: ANN001
    """The unfinished batches in worker processes or Ray tasks; this process writes the manifest."""
    from ..parallel import run_progress, run_units

    if par.executor == "local" and par.workers > len(todo):
        notes.append(f"--workers {par.workers} > {len(todo)} batches to build: using {len(todo)} worker(s)")
        par = dataclasses.replace(par, workers=len(todo))
    spec = _WorkerSpec(out=ctx.out.resolve(), fasta=ctx.genome.path.resolve(), gtf=Path(ctx.gtf).resolve(),
                       contig_map=tuple(sorted(ctx.contig_map.items())), store_dir=ctx.store_dir.resolve(),
                       run_workflow=ctx.run_workflow, device=ctx.device,
                       weights=str(Path(ctx.weights).resolve()) if ctx.weights else None, precision=ctx.precision,
                       runtime=ctx.runtime, cfg=ctx.cfg,
                       stack=tuple((m, Path(p).resolve(), str(Path(w).resolve()) if w else None) for m, p, w in ctx.stack))
    display, start = run_progress(ctx.progress, f"batches ({par.workers if par.executor == 'local' else 'ray'} "
                                  "workers)", total=len(plan))
    with display as bar:
        tracker = start(bar)
        bar.update(tracker.task, completed=len(plan) - len(todo))

        def record(i: int, entry: dict, worker: str) -> None:
            b = todo[i]
            manifest["batches"][f"{b:05d}"] = entry
            manifest["batches"] = dict(sorted(manifest["batches"].items()))  # the serial build's order
            write_manifest(manifest_path(ctx.out), manifest)
            log.info("batch %d (%d of %d): recorded, %d rows (%s)", b, b + 1, len(plan), entry["rows"], worker)
            tracker.done(worker, int(entry["raw_rows"]))

        run_units(_batch_unit, [(spec, b, plan[b]) for b in todo], par, on_result=record, what="batch")
    remove_stale_tmp(ctx.out / "batches")  # left by killed workers; every worker has stopped
    from ..basemodel.store import PredictionStore

    PredictionStore(ctx.store_dir).remove_stale_tmp()
    for _, p, _ in ctx.stack:
        PredictionStore(p).remove_stale_tmp()


def _finalize(out: Path, n_batches: int, manifest: dict) -> None:
    """All batches done: relink anything missing, write gene_performance.tsv, mark the manifest complete."""
    for b in range(n_batches):
        p = batch_paths(out, b)
        if not p["master"].is_file():
            link_or_copy(p["trim"], p["master"], tmp_dir=out / "batches")
    tables = []
    for b in range(n_batches):
        with _batch_file_read(batch_paths(out, b)["perf"], b, out):
            tables.append(pl.read_parquet(batch_paths(out, b)["perf"]))
    perf = pl.concat(tables, how="diagonal_relaxed")
    write_text_atomic(out / "gene_performance.tsv", perf.write_csv(separator="\t", float_precision=6))
    manifest["complete"] = True
    manifest["schema_version"] = SCHEMA_VERSION
    write_manifest(manifest_path(out), manifest)
