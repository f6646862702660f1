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

import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from . import __version__
from .annotation import Annotation, load_annotation, read_gene_list, resolve_gene_ids
from .config import DEFAULT_BUILD, DEFAULT_PREDICT, BaseModelName, BuildConfig, Device, Precision, Runtime
from .errors import ConfigMismatchError, InputError
from .genome import Genome, match_contigs, oriented_sequence
from .rows import gene_rows
from .sampling import trim_mask
from .schema import ID_COLUMNS, SCHEMA_VERSION, arrow_schema
from .selection import (
    ERROR_POLICIES,
    candidate_pool,
    check_policy,
    evaluate_pool,
    performance_frame,
    plan_batches,
    select_genes,
)
from .storage import (
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

log = logging.getLogger(__name__)

BUILD_JSON = "build.json"
MANIFEST = "manifest.json"
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
    patch: object = None  # PatchSummary of --patch-dataset


# --------------------------------------------------------------------------- paths


def batch_paths(out: Path, b: int) -> dict[str, Path]:
    stem = f"batch_{b:05d}"
    return {
        "raw": out / "batches" / f"{stem}_raw.parquet",
        "trim": out / "batches" / f"{stem}_trim.parquet",
        "perf": out / "batches" / f"{stem}_perf.parquet",
        "master": out / "master" / f"{stem}.parquet",
    }


def manifest_path(out: Path) -> Path:
    """``OUT/manifest.json``: beside ``master/``, never inside it (readers take every file in ``master/``)."""
    return out / MANIFEST


def migrate_layout(out: Path) -> bool:
    """Move a manifest of the old layout (``OUT/master/manifest.json``) to ``OUT/manifest.json``.

    Crash-safe: the old file is copied to the new place atomically first, then removed. Returns True
    when something was moved.
    """
    old = out / "master" / MANIFEST
    if not old.is_file():
        return False
    new = manifest_path(out)
    if not new.is_file():
        write_text_atomic(new, old.read_text())
    old.unlink()
    log.info("moved %s to %s (new layout: master/ holds Parquet files only)", old, new)
    return True


def read_manifest(out: Path) -> dict[str, object]:
    path = manifest_path(out)
    if not path.is_file() and (out / "master" / MANIFEST).is_file():
        path = out / "master" / MANIFEST  # old layout, not yet migrated (read-only readers)
    if path.is_file():
        return json.loads(path.read_text())
    return {"schema_version": SCHEMA_VERSION, "complete": False, "batches": {}}


def _write_manifest(out: Path, manifest: dict[str, object]) -> None:
    path = manifest_path(out)
    tmp = tmp_path_for(path)
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    fault_point("manifest_write")
    commit(tmp, path)


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
    ):
        if not ok:
            raise InputError(f"{name} must be {rule}, got {value}")
    bad = [k for k in kmer_sizes if not 1 <= k <= MAX_K]
    if bad:
        raise InputError(f"--kmer-sizes must be between 1 and {MAX_K} (0 for none), got {bad[0]}")
    return policy


# --------------------------------------------------------------------------- build


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
    seed: int = DEFAULT_BUILD.seed,
    run_workflow: bool = False,
    overwrite: bool = False,
    predictions: str | os.PathLike[str] | None = None,
    device: Device = DEFAULT_PREDICT.device,
    base_model: BaseModelName = DEFAULT_BUILD.base_model,
    weights: str | os.PathLike[str] | None = None,
    precision: Precision = DEFAULT_PREDICT.precision,
    runtime: Runtime = DEFAULT_PREDICT.runtime,
    progress: bool = True,
    patch_dataset: bool = False,
) -> BuildSummary:
    """Build (or resume) a meta-model training dataset in ``output_dir``. See the module docstring."""
    kmer_sizes = tuple(sorted({int(k) for k in kmer_sizes if int(k) != 0}))
    policy = check_build_flags(
        subset_policy=subset_policy, n_genes=n_genes, gene_ids_file=gene_ids_file, gene_col=gene_col,
        batch_size=batch_size, batch_rows=batch_rows, easy_ratio=easy_ratio, hard_prob=hard_prob, window=window,
        threshold=threshold, consensus_window=consensus_window, kmer_sizes=kmer_sizes,
    )
    if n_genes is None and policy not in ("custom", "all"):
        n_genes = DEFAULT_BUILD.n_genes
    out = Path(output_dir)
    t0 = time.perf_counter()
    with folder_lock(out):
        if overwrite:
            _clear_build(out)
        from .reference import resolve_reference

        fasta_path, gtf_path, _ = resolve_reference(fasta, gtf)
        genome = Genome(fasta_path)
        ann = load_annotation(gtf_path, cache_dir=out / "annotation")
        contig_map = match_contigs(ann.genes["chrom"].unique().sort().to_list(), genome.contigs,
                                   gtf=gtf_path, fasta=fasta_path, strict=False)
        if not contig_map:
            match_contigs(ann.genes["chrom"].unique().to_list(), genome.contigs, gtf=gtf_path, fasta=fasta_path)
        ctx = _Context(out=out, genome=genome, ann=ann, contig_map=contig_map,
                       store_dir=Path(predictions) if predictions else out / "predictions",
                       run_workflow=run_workflow, device=device, weights=weights, precision=precision,
                       runtime=runtime, progress=progress)
        custom = None
        if policy == "custom":
            custom = tuple(resolve_gene_ids(ann.genes, read_gene_list(gene_ids_file, gene_col),
                                            source=str(gene_ids_file)))
        cfg = BuildConfig(
            subset_policy=policy, n_genes=n_genes, gene_ids=custom,  # type: ignore[arg-type]
            gene_types=tuple(gene_types) if gene_types else None, batch_size=batch_size, batch_rows=batch_rows,
            threshold=threshold, consensus_window=consensus_window, hard_prob=hard_prob, window=window,
            easy_ratio=easy_ratio, kmer_sizes=kmer_sizes, seed=seed, base_model=base_model,
        )
        ctx.cfg = cfg
        inputs = {"fasta": str(fasta_path.resolve()), "gtf": str(gtf_path.resolve()),
                  "fasta_checksum": checksum(fasta_path), "gtf_checksum": checksum(gtf_path)}
        plan, notes = _load_or_make_plan(ctx, cfg, inputs)
        summary = BuildSummary(output_dir=str(out), n_genes=sum(map(len, plan)), n_batches=len(plan), notes=notes)
        for d in ("batches", "master"):
            (out / d).mkdir(parents=True, exist_ok=True)
            remove_stale_tmp(out / d)
        if migrate_layout(out):
            summary.notes.append(f"moved master/manifest.json to {manifest_path(out)} (new layout)")
        manifest = read_manifest(out)
        with _progress(progress) as bar:
            ctx.bar = bar
            task = bar.add_task("batches", total=len(plan), rate="") if bar else None
            for b, ids in enumerate(plan):
                done = _batch_done(out, b, manifest)
                if not done:
                    _build_batch(ctx, b, ids, manifest)
                entry = manifest["batches"][f"{b:05d}"]  # type: ignore[index]
                summary.built += not done
                summary.skipped += done
                summary.rows_raw += int(entry["raw_rows"])
                summary.rows_trim += int(entry["rows"])
                for k, v in entry["pred_types"].items():
                    summary.pred_types[k] = summary.pred_types.get(k, 0) + int(v)
                if bar:
                    bar.update(task, advance=1)
        _finalize(out, len(plan), manifest)
    if patch_dataset:  # after the lock is released: patch takes it itself
        from .patching import patch

        summary.patch = patch(dataset=out, inplace=True)
    summary.seconds = time.perf_counter() - t0
    return summary


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
    bar: object = None  # the build's progress display (batches, and genes of the current batch)
    _model: object = None
    _store: object = None

    @property
    def store(self):
        if self._store is None:
            from .predictions import PredictionStore

            store = PredictionStore(self.store_dir)
            have = store.stored_identity()
            if have is not None and have.get("base_model") != self.cfg.base_model:
                raise ConfigMismatchError(
                    f"prediction store {self.store_dir} holds {have.get('base_model')} predictions but the build "
                    f"asks for --base-model {self.cfg.base_model}; use another --predictions folder"
                )
            self._store = store
        return self._store

    def ensure_predictions(self, genes: pl.DataFrame, what: str) -> None:
        """Predict the genes missing from the store (with --run-workflow), else fail naming them."""
        store = self.store
        missing = genes.filter(pl.Series([not store.has(g) for g in genes["gene_id"]], dtype=pl.Boolean))
        if missing.height == 0:
            return
        if not self.run_workflow:
            names = ", ".join(missing["gene_id"].head(5).to_list())
            more = f", … ({missing.height} in all)" if missing.height > 5 else ""
            raise InputError(
                f"no predictions in {self.store_dir} for {what}: {names}{more}; add --run-workflow to compute "
                "them, or point --predictions at a store that has them"
            )
        from .basemodel import load_base_model
        from .predictions import predict_genes

        if self._model is None:
            self._model = load_base_model(self.cfg.base_model, weights=Path(self.weights) if self.weights else None,
                                          device=self.device, precision=self.precision, runtime=self.runtime)
        log.info("predicting %d gene(s) for %s", missing.height, what)
        predict_genes(self.genome, missing, self._model, self.store, contig_map=self.contig_map,
                      batch_size=DEFAULT_PREDICT.batch_size, progress=self.progress)


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
        if diffs:
            raise ConfigMismatchError(
                f"{ctx.out} holds a build made with another configuration ({'; '.join(diffs)}); "
                "re-run with the same flags to resume, add --overwrite to rebuild, or use another --output-dir"
            )
        log.info("resuming the build in %s", ctx.out)
        return meta["plan"]["batches"], ["resumed an existing build"]
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
    write_json_atomic(path, {
        "tool": "meta-spliceai build", "config": cfg.to_dict(), "inputs": inputs, "versions": _versions(),
        "schema_version": SCHEMA_VERSION, "plan": {"n_genes": len(genes), "batches": plan},
    })
    return plan, notes


def _differences(meta: dict, config: dict, inputs: dict) -> list[str]:
    diffs = [f"{k}: {meta['config'].get(k)!r} there, {v!r} now" for k, v in config.items()
             if meta["config"].get(k) != v]
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
    if not ctx.cfg.kmer_sizes:
        return None, 0
    flank = ctx.cfg.kmer_window // 2 + max(ctx.cfg.kmer_sizes)
    chrom = ctx.contig_map[gene["chrom"]]
    return oriented_sequence(ctx.genome, chrom, gene["start"], gene["end"], gene["strand"], flank), flank


class _RowWriter:
    """Streams row groups of exactly ``batch_rows`` rows (the last may be shorter) into a Parquet file.

    The file is written under a temporary name and renamed on :meth:`close`. Encoding runs on a
    background thread (pyarrow releases the GIL) so it overlaps with computing the next genes' rows;
    at most one row group waits in memory besides the buffer.
    """

    def __init__(self, path: Path, schema, batch_rows: int, background: bool = True) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path, self.tmp, self.schema, self.batch_rows = path, tmp_path_for(path), schema, batch_rows
        # dictionary encoding only pays for the repetitive string columns; k-mer counts are cheaper plain
        dict_cols = [f.name for f in schema if pa.types.is_large_string(f.type) or pa.types.is_string(f.type)]
        # statistics only where readers filter (ids); zstd level 1: measured ~2.5x faster than the defaults
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd", compression_level=1,
                                       use_dictionary=dict_cols, write_statistics=[name for name, _ in ID_COLUMNS])
        self.pool = ThreadPoolExecutor(max_workers=1) if background else None
        self.pending = None
        self.buffer: list = []  # pyarrow tables
        self.buffered = 0
        self.rows = 0

    def add(self, rows) -> None:  # noqa: ANN001 - polars DataFrame or pyarrow Table
        table = rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows
        if table.num_rows:
            self.buffer.append(table.cast(self.schema))
            self.buffered += table.num_rows
        while self.buffered >= self.batch_rows:
            self._write(self.batch_rows)

    def _wait(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None

    def _write(self, n: int) -> None:
        import pyarrow as pa

        table = pa.concat_tables(self.buffer)  # no copy: the writer takes chunked columns
        group, rest = table.slice(0, n), table.slice(n)
        self.buffer, self.buffered = ([rest] if rest.num_rows else []), rest.num_rows
        del table
        self._wait()
        self.rows += group.num_rows
        if self.pool is None:
            self.writer.write_table(group, row_group_size=group.num_rows)
        else:
            self.pending = self.pool.submit(self.writer.write_table, group, row_group_size=group.num_rows)

    def flush(self) -> None:
        """Write what is buffered as a (short) row group and wait until it is on disk."""
        if self.buffered:
            self._write(self.buffered)
        self._wait()

    def close(self) -> None:
        self.flush()
        if self.pool is not None:
            self.pool.shutdown()
        self.writer.close()
        commit(self.tmp, self.path)


def _release_memory() -> None:
    """Hand freed heap back to the OS: a closed writer's Parquet footer (4,000+ columns x row groups) is large."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _write_raw(ctx: _Context, b: int, genes: pl.DataFrame, ids: list[str], p: dict[str, Path]) -> None:
    """Raw rows of every gene of the batch (streamed) and its performance table; perf lands before raw."""
    cfg = ctx.cfg
    ctx.ensure_predictions(genes, f"batch {b}")
    sites = ctx.ann.splice_sites.filter(pl.col("gene_id").is_in(ids))
    by_gene = {k[0]: v for k, v in sites.partition_by("gene_id", as_dict=True).items()}
    empty = sites.clear()
    raw_w = _RowWriter(p["raw"], arrow_schema(cfg.kmer_sizes, cfg.kmer_window), cfg.batch_rows)
    perf_rows: list[dict[str, object]] = []
    bar = ctx.bar
    task = bar.add_task(f"batch {b}: genes", total=genes.height, rate="") if bar else None
    t_start, n_rows = time.perf_counter(), 0
    # one gene at a time: memory depends on the row group, not the batch
    for i, gene in enumerate(genes.iter_rows(named=True)):
        probs = ctx.store.read(gene["gene_id"])
        seq, offset = _gene_sequence(ctx, gene)
        rows, perf = gene_rows(gene, probs, by_gene.get(gene["gene_id"], empty), seq, offset, cfg, b)
        raw_w.add(rows)
        perf_rows.extend(perf)
        if i == 0:
            raw_w.flush()  # a real row group is on disk before the first crash point
            fault_point("raw_write")
        n_rows += rows.height
        if bar:
            rate = n_rows / max(time.perf_counter() - t_start, 1e-9)
            bar.update(task, advance=1, rate=f"{rate:,.0f} rows/s")
    if bar:
        bar.remove_task(task)
    perf_df = performance_frame(perf_rows)
    tmp = tmp_path_for(p["perf"])
    perf_df.write_parquet(tmp)
    commit(tmp, p["perf"])
    raw_w.close()
    del raw_w
    _release_memory()


def _write_trim(cfg: BuildConfig, p: dict[str, Path]) -> None:
    """The trim from the raw file alone (sample stage): stream its row groups through the keep mask."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    small = pl.read_parquet(p["raw"], columns=["gene_id", "pred_type", "tn_kind"])
    keep = trim_mask(small, easy_ratio=cfg.easy_ratio, seed=cfg.seed)
    raw = pq.ParquetFile(p["raw"])
    # nothing to overlap with here, so no background writes: one row group in memory at a time
    trim_w = _RowWriter(p["trim"], arrow_schema(cfg.kmer_sizes, cfg.kmer_window), cfg.batch_rows, background=False)
    offset = 0
    for g in range(raw.num_row_groups):
        group = raw.read_row_group(g)
        n = group.num_rows
        kept = group.filter(pa.array(keep[offset : offset + n]))
        del group
        trim_w.add(kept)
        del kept
        offset += n
    del raw  # the raw footer (row groups x 4,000+ columns) goes before the trim's own is serialised
    _release_memory()
    trim_w.close()
    del trim_w
    _release_memory()


def _build_batch(ctx: _Context, b: int, ids: list[str], manifest: dict) -> None:
    """raw (with perf) -> trim -> master link -> manifest entry; each step resumes from the last file on disk."""
    import pyarrow.parquet as pq

    out, cfg = ctx.out, ctx.cfg
    p = batch_paths(out, b)
    genes = ctx.ann.genes.filter(pl.col("gene_id").is_in(ids)).sort("chrom", "start", "gene_id")
    if not p["trim"].is_file():
        if not (p["raw"].is_file() and p["perf"].is_file()):
            _write_raw(ctx, b, genes, ids, p)
        fault_point("after_raw")
        _write_trim(cfg, p)
    counts = dict(pl.read_parquet(p["trim"], columns=["pred_type"])["pred_type"].value_counts().iter_rows())
    fault_point("before_link")
    link_or_copy(p["trim"], p["master"], tmp_dir=out / "batches")
    manifest["batches"][f"{b:05d}"] = {
        "file": p["master"].name, "genes": ids, "rows": pq.ParquetFile(p["trim"]).metadata.num_rows,
        "raw_rows": pq.ParquetFile(p["raw"]).metadata.num_rows,
        "pred_types": dict(sorted(counts.items())), "checksum": checksum(p["trim"]),
    }
    _write_manifest(out, manifest)


def _finalize(out: Path, n_batches: int, manifest: dict) -> None:
    """All batches done: relink anything missing, write gene_performance.tsv, mark the manifest complete."""
    for b in range(n_batches):
        p = batch_paths(out, b)
        if not p["master"].is_file():
            link_or_copy(p["trim"], p["master"], tmp_dir=out / "batches")
    perf = pl.concat([pl.read_parquet(batch_paths(out, b)["perf"]) for b in range(n_batches)], how="diagonal_relaxed")
    write_text_atomic(out / "gene_performance.tsv", perf.write_csv(separator="\t", float_precision=6))
    manifest["complete"] = True
    manifest["schema_version"] = SCHEMA_VERSION
    _write_manifest(out, manifest)


class _NullProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(enabled: bool):
    """A rich progress bar (genes or batches, rate, ETA), or nothing."""
    if not enabled:
        return _NullProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())


__all__ = ["build", "BuildSummary", "batch_paths", "read_manifest", "manifest_path", "migrate_layout", "check_build_flags"]

#: the streaming Parquet writer of the builder (row groups of exactly ``batch_rows``), for the dataset commands
RowWriter = _RowWriter
