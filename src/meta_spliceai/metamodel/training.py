"""``meta-spliceai train``: fit a meta-model on a build and compare it with the base model, like for like.

Steps: open the build (rows, annotation, prediction store) -> split genes (gene-wise or by
chromosome; a gene, and same-strand overlapping genes, in one part) -> optional pruning ->
fit from streamed row groups with sampling weights -> thresholds and a calibrated base model on
validation genes -> every nucleotide of the test genes scored by each method -> outputs.

Floor and sampling: only rows the meta-model scores at prediction time enter training, those with
max(donor, acceptor) >= the floor (every other position keeps the base model's scores). The build
keeps every TP/FP/FN, every TN scoring >= its ``hard_prob`` and every TN near a TP/FP/FN, but only
a sample of the other ("easy") TNs. The default floor is the build's ``hard_prob``: above it the
rows of a gene are *all* its positions, so the model's probabilities hold over every position
with no weighting. Below it (``--floor`` lower), each kept easy row above the floor weighs (easy
positions of its gene above the floor) / (its easy rows kept above the floor), the population
recomputed exactly from the prediction store with the builder's own code
(:func:`sampling.tn_strata`); a gene with none kept takes the pooled ratio of the training genes.

Boosting (XGBoost, the default ``prior`` "linear"): every row starts from the margins of a multinomial
logistic regression on the base models' log scores at the position, fitted on the same training rows
(:func:`models.fit_prior`); the trees learn corrections to that start, early stopping on the validation
genes decides how many, and the card keeps the regression (``model.prior``) for ``apply`` and ``variants``.

A stacked build (several base models): "max(donor, acceptor)" above reads the max over every model of
its top score (the ``stack_top_score`` column, :mod:`meta_spliceai.dataset.stacking`), for the rows
trained on and for the positions scored; the comparison adds each other base model and their mean.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from .. import __version__
from ..basemodel.store import PredictionStore
from ..config import DEFAULT_TRAIN
from ..dataset.evaluation import check_probs
from ..dataset.folder import Dataset, open_dataset
from ..dataset.schema import GENE_FEATURES
from ..errors import InputError
from ..extras import require
from ..reference.annotation import load_annotation
from ..storage import (
    check_output_dir,
    checksum,
    commit,
    tmp_path_for,
    write_json_atomic,
    write_text_atomic,
)
from ..dataset.stores import StoreSet
from .card import CARD, Corrector
from .comparison import SITE_TYPES, Collector
from .metrics import best_threshold
from .models import (
    CLASSES,
    MetaModel,
    fit,
    memory_budget,
    parse_model_spec,
    training_modules,
)
from .scoring import base_methods, collect, log_scores, method_order, scorers, sites_by_gene, stack_summary
from .trainset import (
    build_config,
    categories_of,
    check_trainable,
    easy_weights,
    extract_scored_rows,
    floor_expr,
    make_split,
    prune_features,
    row_batches,
    select_features,
)

log = logging.getLogger(__name__)

THRESHOLD_GRID = np.round(np.arange(0.01, 0.991, 0.01), 2)


@dataclass
class TrainResult:
    out_dir: str
    metrics: dict
    files: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: what the user must know about the model (also logged, and in the card): e.g. a too small validation set
    warnings: list[str] = field(default_factory=list)


def train(
    *,
    dataset: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    baseline_tsv: str | os.PathLike[str] | None = None,
    model: str | None = None,
    prune: bool = False,
    corr_thr: float = DEFAULT_TRAIN.corr_thr,
    group_col: str = DEFAULT_TRAIN.group_col,
    split: str = DEFAULT_TRAIN.split,
    test_chroms: Sequence[str] | None = None,
    test_fraction: float = DEFAULT_TRAIN.test_fraction,
    valid_fraction: float = DEFAULT_TRAIN.valid_fraction,
    seed: int = DEFAULT_TRAIN.seed,
    floor: float | None = DEFAULT_TRAIN.floor,
    max_memory: float | None = None,
    bootstrap: int = DEFAULT_TRAIN.bootstrap,
    predictions: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    feature_subset: str | Sequence[str] | None = None,
    sampling_weights: bool = True,
    ablations: bool = True,
    feature_ablation: bool = False,
    progress: bool = True,
    _columns_override: dict[str, str] | None = None,
) -> TrainResult:
    """Train a meta-model on ``dataset`` and write it with its evaluation into ``out_dir``.

    ``feature_subset``: None/"all", a name of ``trainset.FEATURE_SUBSETS`` or a list of feature
    columns (ablation studies); ``ablations=False`` skips the calibrated-base and score-only models.
    ``feature_ablation``: also fit one model per context feature family (score features + that family)
    and write ``feature_ablation.tsv``/``.md``: each against the score-only model, paired by gene.
    """
    t0 = time.perf_counter()
    spec = parse_model_spec(model)
    require(training_modules(spec.kind), f"train --model {spec.kind}")  # before any work: a core-only install
    if bootstrap < 0:
        raise InputError(f"--bootstrap must be >= 0, got {bootstrap}")
    budget = memory_budget(max_memory)
    ds = check_trainable(open_dataset(dataset))
    cfg = build_config(ds.config)
    floor = float(cfg.hard_prob if floor is None else floor)
    if not 0 < floor < 0.5:
        raise InputError(f"--floor must be in (0, 0.5), got {floor}")
    out = Path(out_dir)
    check_output_dir(out, "--out-dir")
    timings: dict[str, float] = {}

    ann = load_annotation(ds.build["inputs"]["gtf"], cache_dir=ds.root / "annotation")
    ids = pl.scan_parquet(ds.files).select("gene_id").unique().collect()["gene_id"].to_list()
    genes = ann.genes.filter(pl.col("gene_id").is_in(ids))
    if genes.height != len(ids):
        raise InputError(f"{len(ids) - genes.height} gene(s) of the dataset are not in its annotation "
                         f"{ds.build['inputs']['gtf']}; was the GTF changed after the build?")
    # the dataset's own gene-level column wins over the annotation's (a patched dataset's gene_type is in its
    # rows, the build's GTF may say "unknown" for every gene)
    if group_col != "gene_id" and group_col in ds.roles and (ds.roles[group_col] in ("id", "metadata")
                                                             or group_col in GENE_FEATURES):
        vals = pl.scan_parquet(ds.files).group_by("gene_id").agg(pl.col(group_col).first()).collect()
        genes = genes.drop(group_col, strict=False).join(vals, on="gene_id", how="left")
    elif group_col not in genes.columns:
        raise InputError(f"--group-col {group_col!r} does not exist in the dataset or its gene table; "
                         f"use one of gene_id, gene_name, chrom, gene_type")
    parts = make_split(genes, kind=split, group_col=group_col, test_chroms=test_chroms,  # type: ignore[arg-type]
                       test_fraction=test_fraction, valid_fraction=valid_fraction, seed=seed)
    log.info("split (%s): %d train, %d valid, %d test genes", split, len(parts.train), len(parts.valid), len(parts.test))

    stores = _build_stores(ds, cfg, predictions)
    stores.stores[0].require_sites("--predictions: give first the build's store (the one that labelled its rows)")
    for st in stores.stores:
        lacking = [g for g in parts.valid + parts.test if not st.has(g)]
        if lacking:
            raise InputError(f"prediction store {st.path} lacks {len(lacking)} validation/test gene(s) "
                             f"({', '.join(lacking[:5])}); pass --predictions with the build's store(s)")
    baseline = _read_baseline(Path(baseline_tsv) if baseline_tsv else ds.root / "gene_performance.tsv",
                              parts.test)
    check_classes(ds, parts.train, floor)
    scratch = check_disk(ds, out, floor, len(select_features(ds, feature_subset)), budget)

    out.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):  # the card is written last: until then the folder is incomplete
        (out / CARD).unlink()
    try:  # the scratch (rows, XGBoost cache) goes with success or failure; a kill leaves it for the next run
        t = time.perf_counter()
        full = ds
        ds = extract_scored_rows(full, floor, out / ".rows", progress=progress)  # one pass; later passes read these rows
        timings["extract_rows_s"] = time.perf_counter() - t
        features = select_features(ds, feature_subset)
        pruned: list[dict[str, object]] = []
        if prune:
            t = time.perf_counter()
            features, pruned = prune_features(ds, features, corr_thr=corr_thr, sample_rows=DEFAULT_TRAIN.prune_sample_rows,
                                              seed=seed)
            timings["prune_s"] = time.perf_counter() - t
        categories = categories_of(ds, features)

        t = time.perf_counter()
        weights = easy_weights(ds, parts.train + parts.valid, ann, stores, floor) if sampling_weights else None
        timings["weights_s"] = time.perf_counter() - t

        fitted: dict[str, MetaModel] = {}
        n_rows: dict[str, int] = {}
        subsets = {"meta": features}
        if feature_ablation and not ablations:
            raise InputError("--feature-ablation compares against the score-only model: do not turn the ablations off")
        if ablations:
            score_only = [f for f in select_features(ds, "scores") if f in features]
            subsets["meta_scores_only"] = score_only
        if feature_ablation and cfg.stack_models:  # a stack: one base model added at a time
            from .ablation import model_subsets

            subsets.update(model_subsets(cfg.base_models, features))
        elif feature_ablation:
            from .ablation import family_subsets

            sets = full.schema_meta.get("feature_sets") or ["base"]  # the rows' own metadata
            subsets.update(family_subsets(sets, features, subsets["meta_scores_only"]))  # type: ignore[arg-type]
        for name, cols in subsets.items():
            t = time.perf_counter()
            fitted[name], n_rows[name] = _fit_one(ds, spec, cols, categories, parts.train, parts.valid, floor, weights,
                                                  budget, seed, out, _columns_override, progress)
            timings[f"fit_{name}_s"] = time.perf_counter() - t
            timings.update({f"fit_{name}_{k}": v for k, v in fitted[name].fit_stats.items()})
            log.info("fitted %s on %d rows x %d features in %.1f s", name, n_rows[name], len(cols), timings[f"fit_{name}_s"])

        corrector = Corrector(cfg, floor, *_genome_for(ds, cfg))
        sites = sites_by_gene(ann, parts.valid + parts.test)
        gene_rows = {g["gene_id"]: g for g in genes.iter_rows(named=True)}
        t = time.perf_counter()
        calib = _fit_calibration(stores, parts.valid, corrector, sites) if ablations else None
        calib_stack = (_fit_calibration(stores, parts.valid, corrector, sites, stacked=True)
                       if ablations and len(base_methods(cfg.base_models)) else None)
        score = scorers(fitted, calib, calib_stack)
        bases = list(base_methods(cfg.base_models))
        methods = method_order(score, bases)
        valid_c = collect(methods, parts.valid, stores, gene_rows, sites, corrector, score, progress, "valid")
        thresholds = {(m, s): best_threshold(valid_c.counts[(m, s)], THRESHOLD_GRID[THRESHOLD_GRID >= floor])[0]
                      for m in methods for s in SITE_TYPES}
        timings["validation_s"] = time.perf_counter() - t
        validation = validation_check(parts.valid, sites, {t: thresholds[("meta", t)] for t in SITE_TYPES})
        if validation["warning"]:
            log.warning("%s", validation["warning"])
        t = time.perf_counter()
        test_c = collect(methods, parts.test, stores, gene_rows, sites, corrector, score, progress, "test")
        metrics = stack_summary(test_c.summary(thresholds, n_boot=bootstrap, seed=seed, also_against=bases), bases)
        timings["test_eval_s"] = time.perf_counter() - t
        if feature_ablation:
            from .ablation import MODEL_PREFIX, REFERENCE, ablation_table, markdown

            ref = MODEL_PREFIX + cfg.base_model if cfg.stack_models else REFERENCE
            table = ablation_table(test_c, thresholds, {n: len(c) for n, c in subsets.items()}, n_boot=bootstrap,
                                   seed=seed, reference=ref)
            write_text_atomic(out / "feature_ablation.tsv", table.write_csv(separator="\t", float_precision=6))
            write_text_atomic(out / "feature_ablation.md", markdown(table))
            metrics["feature_ablation"] = {"reference": ref, "rows": table.to_dicts()}

        base_check = _check_baseline(baseline, test_c, cfg.threshold) if cfg.threshold == 0.5 else None
        delta = test_c.per_gene(("base", "meta"), thresholds)
        files, card = _write_outputs(out, ds, full, spec, fitted, (calib, calib_stack), pruned, parts, thresholds,
                                     metrics, delta, floor, stores, n_rows, sampling_weights, seed, validation)
        if feature_ablation:
            files["feature_ablation"] = str(out / "feature_ablation.md")
        timings["total_s"] = time.perf_counter() - t0
        metrics["timings"] = {k: _tidy(v) for k, v in timings.items()}
        metrics["scratch"] = {**scratch, "rows_bytes_written": int(sum(os.path.getsize(f) for f in ds.files))}
        write_json_atomic(out / "metrics.json", _metrics_doc(metrics, parts, thresholds, floor, base_check, pruned))
        from .report import write_training_report

        names = {g: gene_rows[g].get("gene_name") for g in parts.test}
        files.update(write_training_report(out, metrics, test_c, fitted["meta"], methods, thresholds, pruned, names))
        write_json_atomic(out / CARD, card)  # last: a folder with a card is a finished model (apply refuses one without)
        log.debug("model card written: %s", out / CARD)
        return TrainResult(str(out), metrics, files, time.perf_counter() - t0,
                           warnings=[validation["warning"]] if validation["warning"] else [])
    finally:
        shutil.rmtree(out / ".rows", ignore_errors=True)
        shutil.rmtree(out / ".xgb-cache", ignore_errors=True)


def _tidy(v: float) -> float:
    """Seconds to 2 decimals; sub-second figures (s/round on a small fit) to 3 significant digits, never to 0."""
    return round(v, 2) if abs(v) >= 1 else float(f"{v:.3g}")


def check_classes(ds: Dataset, train_genes: list[str], floor: float) -> None:
    """Refuse, before any fitting, training rows that lack a class (neither, donor, acceptor): e.g. a build
    over single-exon genes, whose rows are all ``neither``; a model fitted on them only ever says neither."""
    scan = pl.scan_parquet(ds.files).filter(floor_expr(ds.feature_columns) >= floor)
    have = set(scan.filter(pl.col("gene_id").is_in(train_genes)).select(pl.col("splice_type").unique())
               .collect()["splice_type"].to_list())
    lacking = [c for c in CLASSES if c not in have]
    if not lacking:
        return
    in_build = set(pl.scan_parquet(ds.files).select(pl.col("splice_type").unique()).collect()["splice_type"].to_list())
    above = set(scan.select(pl.col("splice_type").unique()).collect()["splice_type"].to_list())
    absent = [c for c in lacking if c not in in_build]
    if absent:
        where = (f"the build {ds.root} has no {'/'.join(absent)} rows at all (are its genes single-exon or without "
                 "annotated splice sites?); build over multi-exon genes")
    elif any(c not in above for c in lacking):
        where = f"every {'/'.join(c for c in lacking if c not in above)} row of the build scores below it; lower --floor"
    else:
        where = f"the {len(train_genes)} training gene(s) have none; train on a build with more genes (or another --seed)"
    raise InputError(f"cannot train a meta-model: the training rows (max(donor, acceptor) >= --floor {floor:g}) hold "
                     f"no {', '.join(lacking)} class, which the model must learn: {where}")


def check_disk(ds: Dataset, out: Path, floor: float, n_features: int, budget: int) -> dict[str, int]:
    """Refuse, before any work, a training whose scratch would not fit the free disk under ``out``.

    Scratch: the extracted rows above the floor (their share of the dataset's bytes, x 3: they may compress
    worse than the dataset's, measured up to 2.2x), XGBoost's external-memory cache when the quantised matrix
    exceeds ``budget`` (1 byte per cell of every row above the floor, x 1.25), and the row scores (~64 bytes a
    row). Returns the estimates.
    """
    above, rows = (pl.scan_parquet(ds.files)
                   .select((floor_expr(ds.feature_columns) >= floor).sum(), pl.len())
                   .collect().row(0))
    size = sum(os.path.getsize(f) for f in ds.files)
    rows_bytes = int(size * above / max(rows, 1) * 3) + 2**20
    cache = int(above * n_features * 1.25) if above * n_features > budget else 0
    need = rows_bytes + cache + int(above) * 64
    where = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(where).free
    est = {"rows_above_floor": int(above), "rows_bytes": rows_bytes, "cache_bytes": cache, "need_bytes": need,
           "free_bytes": int(free)}
    log.info("training scratch: %d rows above the floor, ~%.2f GiB of rows + %.2f GiB of XGBoost cache; %.1f GiB "
             "free in %s", above, rows_bytes / 2**30, cache / 2**30, free / 2**30, where)
    if need > free:
        cache_txt = f" + {cache / 2**30:.1f} GiB XGBoost external-memory cache" if cache else ""
        raise InputError(f"not enough free disk for training in {where}: it needs ~{need / 2**30:.1f} GiB "
                         f"({rows_bytes / 2**30:.1f} GiB of rows above --floor {floor:g}{cache_txt}) and "
                         f"{free / 2**30:.1f} GiB is free; free some space, give -o/--output-dir on a larger disk"
                         + (", or raise --max-memory (an in-memory matrix needs no cache)" if cache else ""))
    return est


# --------------------------------------------------------------------------- pieces


def validation_check(valid_genes: list[str], sites: dict, thresholds: dict[str, float],
                     min_sites: int = DEFAULT_TRAIN.min_valid_sites) -> dict[str, object]:
    """Is the validation set big enough to choose a threshold? ``min_sites`` annotated sites of each type
    in the validation genes (``config.TrainDefaults.min_valid_sites``); the card records the answer."""
    n = {t: int(sum(len(sites[g][t]) for g in valid_genes)) for t in SITE_TYPES}
    small = [t for t in SITE_TYPES if n[t] < min_sites]
    warning = None
    if small:
        counts = " and ".join(f"{n[t]} {t}" for t in SITE_TYPES)
        thr = ", ".join(f"{t} {thresholds[t]:.2f}" for t in SITE_TYPES)
        warning = (f"validation set too small to choose a threshold: {len(valid_genes)} validation gene(s) with "
                   f"{counts} sites (fewer than {min_sites} of a type); the meta-model's thresholds ({thr}) may be "
                   "far from the best and the model may be worse than the base model on other genes: train on more "
                   "genes or a larger validation fraction (train's valid-fraction option), and check the model on "
                   "held-out genes (apply's evaluate option)")
    return {"genes": len(valid_genes), "sites": n, "min_sites_per_type": min_sites, "too_small": bool(small),
            "warning": warning}


def _read_baseline(path: Path, test_genes: list[str]) -> pl.DataFrame:
    from ..storage import is_input_file, read_once

    if not is_input_file(path):
        raise InputError(f"baseline TSV not found: {path} (give BASELINE_TSV, or finish the build: it writes "
                         "gene_performance.tsv)")
    try:
        df = pl.read_csv(read_once(path), separator="\t", infer_schema_length=None)  # read once: a pipe will do
    except Exception as err:  # polars raises several types for malformed text
        raise InputError(f"baseline TSV {path} is unreadable ({err}); give a gene_performance.tsv") from None
    need = {"gene_id", "splice_type", "TP", "FP", "FN"}
    if not need <= set(df.columns):
        raise InputError(f"baseline TSV {path} lacks columns {', '.join(sorted(need - set(df.columns)))}; "
                         "give a gene_performance.tsv written by meta-spliceai build")
    missing = sorted(set(test_genes) - set(df["gene_id"].to_list()))
    if missing:
        raise InputError(f"baseline TSV {path} is for other genes: {len(missing)} test gene(s) are not in it "
                         f"({', '.join(missing[:5])}); give the gene_performance.tsv of this build")
    return df


def _check_baseline(baseline: pl.DataFrame, c: Collector, threshold: float) -> dict[str, object]:
    """Does our base-model recount at the build's threshold equal the build's gene_performance.tsv?"""
    out: dict[str, object] = {}
    sub = baseline.filter(pl.col("gene_id").is_in(c.genes))
    for t in SITE_TYPES:
        tsv = sub.filter(pl.col("splice_type") == t).select("TP", "FP", "FN").sum().row(0)
        ours = np.sum([cnt.counts(threshold) for cnt in c.counts[("base", t)]], axis=0).tolist()
        out[t] = {"tsv_TP_FP_FN": list(tsv), "recomputed_TP_FP_FN": ours, "agree": list(tsv) == ours}
    return out


def _genome_for(ds: Dataset, cfg) -> tuple[object, dict[str, str] | None]:  # noqa: ANN001
    if not cfg.kmer_sizes:
        return None, None
    from ..reference.report import open_reference

    genome, _, contig_map, _ = open_reference(ds.build["inputs"]["fasta"], ds.build["inputs"]["gtf"],
                                              cache_dir=ds.root / "annotation")
    return genome, contig_map


def _fit_one(ds, spec, cols, categories, train_genes, valid_genes, floor, weights, budget, seed, out, override,  # noqa: ANN001, ANN202
             progress=False):  # noqa: ANN001
    cats = {k: v for k, v in categories.items() if k in cols}
    tr, va = set(train_genes), set(valid_genes)
    n_rows = (pl.scan_parquet(ds.files).filter(pl.col("gene_id").is_in(train_genes)
              & (floor_expr(ds.feature_columns) >= floor)).select(pl.len()).collect().item())
    if n_rows == 0:
        raise InputError(f"no training rows with max(donor, acceptor) >= --floor {floor}; lower the floor")

    def batches():  # noqa: ANN202
        for b, _ in row_batches(ds, tr, cols, cats, floor=floor, easy_weight=weights, columns_override=override):
            yield b

    vparts = [b for b, _ in row_batches(ds, va, cols, cats, floor=floor, easy_weight=weights, columns_override=override)]
    valid = tuple(np.concatenate([p[i] for p in vparts]) for i in range(3)) if vparts else None
    m = fit(spec, cols, cats, batches, valid, n_train_rows=n_rows, max_memory=budget, seed=seed,  # type: ignore[arg-type]
            cache_dir=out / ".xgb-cache", progress=progress)
    return m, int(n_rows)


def _build_stores(ds: Dataset, cfg, predictions) -> StoreSet:  # noqa: ANN001
    """The build's stores in order (``predictions`` overrides them: one path per base model)."""
    from ..dataset.stores import as_paths

    paths = as_paths(predictions) or (ds.store_dir, *ds.stack_dirs)
    if len(paths) != len(cfg.base_models):
        raise InputError(f"the build has {len(cfg.base_models)} base model(s) ({', '.join(cfg.base_models)}) but "
                         f"{len(paths)} prediction store(s) are given; give --predictions one store per model, in order")
    return StoreSet(cfg.base_models, paths)


def _fit_calibration(stores: StoreSet, genes, corrector: Corrector, sites,  # noqa: ANN001
                     stacked: bool = False) -> dict[str, list] | None:
    """Calibrated base model: multinomial logistic regression on the labelling model's three log scores, fitted
    on every scored position of the validation genes (no sampling, so no weights). Returns its coefficients.

    ``stacked``: on the log scores of every site model of a stack instead (a linear stack, ``calibrated_stack``);
    ``columns`` names the feature columns holding those scores, which is where the scorer reads them."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from ..dataset.schema import is_site_model

    use = [i for i, n in enumerate(stores.names) if is_site_model(n)] if stacked else [0]
    Xs, ys = [], []
    for g in genes:
        tracks = stores.read(g)
        probs = check_probs(tracks[0], f"gene {g}")
        pos = corrector.scored(tracks)
        y = np.zeros(pos.size, dtype=np.int64)
        y[np.isin(pos, sites[g]["acceptor"])] = CLASSES.index("acceptor")
        y[np.isin(pos, sites[g]["donor"])] = CLASSES.index("donor")
        Xs.append(np.hstack([log_scores((probs if i == 0 else tracks[i])[pos]) for i in use]))
        ys.append(y)
    X, y = np.concatenate(Xs), np.concatenate(ys)
    if np.unique(y).size < 3:
        log.info("validation genes lack a class among scored positions: no calibrated base model")
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr = LogisticRegression(max_iter=2000).fit(X, y)
    out = {"coef": lr.coef_.tolist(), "intercept": lr.intercept_.tolist(), "classes": lr.classes_.tolist()}
    if stacked:  # store order [neither, acceptor, donor] of each model, as its feature columns
        out["columns"] = [f"{'' if i == 0 else stores.names[i] + '_'}{c}_score" for i in use
                          for c in ("neither", "acceptor", "donor")]
    return out


def _dataset_identity(ds: Dataset) -> dict[str, object]:
    return {"build_dir": str(ds.root.resolve()), "manifest_digest": ds.digest,
            "schema_version": ds.schema_meta.get("schema_version"), "files": len(ds.files)}


def feature_settings(ds: Dataset) -> dict[str, object]:
    """What recomputing the features needs: every feature setting of the build's config."""
    cfg = ds.build["config"]
    keys = [k for k in cfg if k in ("kmer_sizes", "kmer_window") or "feature" in k]
    if cfg.get("stack_models"):  # a stacked model: which models' tracks the features read, in order
        keys += ["base_model", "stack_models"]
    return {k: cfg[k] for k in keys}


def _write_outputs(out, ds, full, spec, fitted, calib, pruned, parts, thresholds, metrics, delta,
                   floor, stores, n_rows, sampling_weights, seed, validation) -> tuple[dict[str, str], dict]:  # noqa: ANN001
    files: dict[str, str] = {}
    meta = fitted["meta"]
    model_file = meta.save(out)
    files["model"] = str(out / model_file)
    ablation_card: dict[str, object] = {}
    for name, m in fitted.items():
        if name != "meta":
            sub = out / name
            sub.mkdir(exist_ok=True)
            file = f"{name}/{m.save(sub)}"
            ablation_card[name] = {"kind": m.kind, "file": file, "file_digest": checksum(out / file),
                                   "features": m.features, "categories": m.categories, "prior": m.prior}
    for name, c in zip(("calibrated_base", "calibrated_stack"), calib):
        if c is not None:
            ablation_card[name] = {"kind": "multinomial_logistic_on_log_scores", **c}
    imp = meta.importances()
    imp_df = pl.DataFrame({"feature": list(imp), "importance": list(imp.values())}).sort("importance", descending=True)
    write_text_atomic(out / "feature_importances.tsv", imp_df.write_csv(separator="\t"))
    files["importances"] = str(out / "feature_importances.tsv")
    write_text_atomic(out / "delta_vs_baseline.csv", delta.write_csv(float_precision=6))
    files["delta_vs_baseline"] = str(out / "delta_vs_baseline.csv")
    write_text_atomic(out / "split.tsv", pl.DataFrame(
        {"gene_id": list(parts.part_of()), "part": list(parts.part_of().values())}).sort("gene_id").write_csv(separator="\t"))
    headline = {t: {m: {"pr_auc": metrics["site_types"][t]["methods"][m]["pr_auc"],
                        "f1_at_valid": metrics["site_types"][t]["methods"][m]["at_valid"]["f1"]}
                    for m in metrics["site_types"][t]["methods"]} for t in SITE_TYPES}
    identities = stores.identities()
    card = {
        "tool": "meta-spliceai train", "meta_spliceai_version": __version__,
        "model": {"kind": meta.kind, "file": model_file, "params": spec.params, "best_iteration": meta.best_iteration,
                  "file_digest": checksum(out / model_file), "prior": meta.prior},
        "classes": list(CLASSES),
        "features": meta.features, "categories": meta.categories,
        "schema_version": ds.schema_meta.get("schema_version"),
        "feature_settings": feature_settings(ds),
        "floor": floor,
        "thresholds": {t: thresholds[("meta", t)] for t in SITE_TYPES},
        "method_thresholds": {f"{m}/{t}": v for (m, t), v in thresholds.items()},
        "ablations": ablation_card,
        "threshold_rule": "highest pooled F1 of the validation genes over floor..0.99 in steps of 0.01 (pred_type rule, build window)",
        "validation": validation,
        "base_model": identities[0],
        "base_models": identities,  # every base model in store order, the labelling model first
        "dataset": _dataset_identity(full),
        "training": {"split": parts.kind, **parts.detail, "seed": seed, "train_genes": len(parts.train),
                     "valid_genes": len(parts.valid), "test_genes": len(parts.test), "rows": n_rows["meta"],
                     "sampling_weights": sampling_weights, "pruned": len(pruned),
                     "build_config": ds.build["config"]},
        "headline_metrics": headline,
    }
    card["card_digest"] = hashlib.blake2b(json.dumps(card, sort_keys=True, default=str).encode(),
                                          digest_size=16).hexdigest()
    files["model_card"] = str(out / CARD)  # written by train() once everything else is
    # the model's scores of every dataset row it scores (train, valid and test genes): apply reproduces them
    frames = []
    part_of = parts.part_of()
    for (X, _, _), ids in row_batches(ds, set(part_of), meta.features, meta.categories, floor=floor, easy_weight=None):
        p = meta.predict(X)
        frames.append(pl.DataFrame({"gene_id": ids.column("gene_id").to_pylist(),
                                    "position": ids.column("position").to_numpy(),
                                    **{c: p[:, i] for i, c in enumerate(CLASSES)}}))
    rows = pl.concat(frames) if frames else pl.DataFrame()
    if rows.height:
        rows = rows.with_columns(pl.col("gene_id").replace_strict(part_of).alias("part"))
    tmp = tmp_path_for(out / "row_scores.parquet")
    rows.write_parquet(tmp)
    commit(tmp, out / "row_scores.parquet")
    files["row_scores"] = str(out / "row_scores.parquet")
    return files, card


def _metrics_doc(metrics, parts, thresholds, floor, base_check, pruned) -> dict:  # noqa: ANN001
    return {
        **metrics,
        "floor": floor,
        "floor_rule": "positions with max(donor, acceptor) base score below the floor keep the base scores; "
                      "default floor = the build's hard_prob, above which the build kept every position",
        "thresholds_from_validation": {f"{m}/{t}": v for (m, t), v in thresholds.items()},
        "split": {"kind": parts.kind, **parts.detail, "train": len(parts.train), "valid": len(parts.valid),
                  "test": len(parts.test)},
        "baseline_tsv_check": base_check,
        "pruned_features": pruned,
    }
