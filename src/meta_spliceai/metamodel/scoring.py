"""Scoring every nucleotide of genes by several methods side by side (base model, calibrated base,
ablation models, the meta-model) into one :class:`~meta_spliceai.metamodel.comparison.Collector`:
what ``train`` reports on its test genes and ``apply --evaluate`` on any other genes.

A stacked model's comparison also scores each other base model that gives donor/acceptor scores on
its own tracks (``base_<model>``, e.g. ``base_openspliceai``) and their plain mean (``base_mean``), so the
meta-model is measured against every base model, not only the labelling one (``base``).

Positions are 0-based gene-body indices in transcription direction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from ..basemodel.store import PredictionStore
from ..dataset.evaluation import check_probs
from ..dataset.schema import is_site_model
from ..dataset.stacking import mean_track
from ..dataset.stores import StoreSet
from .card import Corrector, LoadedModel
from .comparison import SITE_TYPES, Collector
from .models import MetaModel
from .trainset import frame_matrix

#: the methods of a comparison, in report order (feature-ablation models go before ``meta``)
METHODS = ("base", "calibrated_base", "calibrated_stack", "meta_scores_only", "meta")
#: the plain mean of a stack's site models' tracks (untrained)
MEAN = "base_mean"


def base_methods(names: tuple[str, ...]) -> dict[str, Callable[[tuple[np.ndarray, ...]], np.ndarray]]:
    """The other base models of a stack as methods (``base_<model>``: its own track; site models only) and
    their mean (``base_mean``, with two or more site models); empty for one base model."""
    out: dict[str, Callable[[tuple[np.ndarray, ...]], np.ndarray]] = {}
    for i, n in enumerate(names[1:], 1):
        if is_site_model(n):
            out[f"base_{n}"] = lambda t, i=i: t[i]
    if out:
        out[MEAN] = lambda t: mean_track(t, names)
    return out


def track_reader(stores: StoreSet | PredictionStore) -> Callable[[str], tuple[np.ndarray, ...]]:
    """gene -> every model's track (checked), from a StoreSet or one store."""
    if isinstance(stores, StoreSet):
        return stores.read
    return lambda g: (stores.read(g),)


def sites_by_gene(ann, genes: list[str]) -> dict[str, dict[str, np.ndarray]]:  # noqa: ANN001
    sub = ann.splice_sites.filter(pl.col("gene_id").is_in(genes))
    out = {g: {t: np.zeros(0, np.int64) for t in SITE_TYPES} for g in genes}
    for (gid, t), part in sub.partition_by("gene_id", "site_type", as_dict=True).items():
        out[gid][t] = np.unique(part["position"].to_numpy().astype(np.int64))
    return out


def log_scores(p: np.ndarray) -> np.ndarray:
    return np.log(np.asarray(p, dtype=np.float64) + 1e-10)


def calibrate(calib: dict[str, list], probs: np.ndarray) -> np.ndarray:
    """Class probabilities [neither, donor, acceptor] of the calibrated base model at these score rows."""
    z = log_scores(probs) @ np.asarray(calib["coef"]).T + np.asarray(calib["intercept"])
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


Scorer = Callable[[np.ndarray, np.ndarray, pl.DataFrame], np.ndarray]


def scorers(models: dict[str, MetaModel], calib: dict[str, list] | None,
            calib_stack: dict[str, list] | None = None) -> dict[str, Scorer]:
    """Method name -> f(gene probs, scored positions, their features) -> class probabilities at them.

    ``calib_stack``: a stack's linear model on every site model's log scores (``calibrated_stack``), read
    from the feature columns its ``columns`` name."""
    out: dict[str, Scorer] = {}
    if calib is not None:
        out["calibrated_base"] = lambda probs, pos, feats: calibrate(calib, probs[pos])
    if calib_stack is not None:
        cols = list(calib_stack["columns"])
        out["calibrated_stack"] = lambda probs, pos, feats: calibrate(calib_stack, feats.select(cols).to_numpy())
    for name, m in models.items():
        out[name] = lambda probs, pos, feats, m=m: m.predict(frame_matrix(feats, m.features, m.categories))
    return out


def method_order(score: Mapping[str, object], bases: Sequence[str] = ()) -> list[str]:
    """``base`` and the methods of ``score`` in report order: base, the stack's other base models and their
    mean (``bases``), calibrated base, score-only model, score features + each context family and the base
    models added one at a time (``train --feature-ablation``), the meta-model."""
    from .ablation import MODEL_PREFIX, PREFIX

    families = [m for m in score if m.startswith((PREFIX, MODEL_PREFIX))]
    return ["base", *bases, *(m for m in (*METHODS[1:-1], *families, METHODS[-1]) if m in score)]


def collect(methods: list[str], genes: list[str], stores: StoreSet | PredictionStore, gene_rows: dict[str, dict],
            sites: dict[str, dict[str, np.ndarray]], corrector: Corrector, score: dict[str, Scorer],
            progress: bool = False, what: str = "") -> Collector:
    """Every nucleotide of ``genes`` scored by each method (``base``, the stack's ``base_*`` methods, and
    those of ``score``); the meta-models score the positions of the floor rule (:meth:`Corrector.scored`)."""
    from ..progress import count_progress

    bases = base_methods(corrector.cfg.base_models)
    read = track_reader(stores)
    c = Collector(list(methods), floor=corrector.floor, window=corrector.cfg.consensus_window,
                  own_tail=set(bases) & set(methods))
    with count_progress(progress) as bar:
        task = bar.add_task(f"{what} genes: every nucleotide", total=len(genes), rate="") if bar else None
        for g in genes:
            got = read(g)
            probs = check_probs(got[0], f"gene {g}")
            got = (probs, *got[1:])
            pos = corrector.scored(got)
            feats = corrector.features(gene_rows[g], got, pos)
            tracks = {"base": probs}
            for name in methods[1:]:
                if name in bases:
                    tracks[name] = bases[name](got)
                else:
                    tracks[name] = corrector.correct(probs, pos, score[name](probs, pos, feats)) if pos.size else probs
            c.add(g, tracks, pos, sites[g])
            if bar:
                bar.update(task, advance=1)
    return c


def evaluate_genes(loaded: LoadedModel, store: StoreSet | PredictionStore, ann, genes: pl.DataFrame,  # noqa: ANN001
                   corrector: Corrector, *, n_boot: int, seed: int, progress: bool = False) -> tuple[dict, Collector]:
    """The train-time comparison (base, the card's ablations, meta) on other genes, e.g. another chromosome."""
    from .models import load_model

    card = loaded.card
    models = {"meta": loaded.model}
    ab = card.get("ablations", {})
    for name, a in ab.items():  # the score-only model and, after --feature-ablation, one per context family
        if name not in ("calibrated_base", "calibrated_stack"):
            models[name] = load_model(a["kind"], loaded.folder / a["file"], list(a["features"]),
                                      {k: list(v) for k, v in a["categories"].items()}, a.get("prior"),
                                      a.get("file_digest"))
    score = scorers(models, ab.get("calibrated_base"), ab.get("calibrated_stack"))
    bases = list(base_methods(corrector.cfg.base_models))
    methods = method_order(score, bases)
    ids = genes["gene_id"].to_list()
    sites = sites_by_gene(ann, ids)
    rows = {g["gene_id"]: g for g in genes.iter_rows(named=True)}
    c = collect(methods, ids, store, rows, sites, corrector, score, progress, "evaluated")
    thr = {tuple(k.split("/")): float(v) for k, v in card.get("method_thresholds", {}).items()}
    return stack_summary(c.summary(thr, n_boot=n_boot, seed=seed, also_against=bases), bases), c


def stack_summary(metrics: dict, bases: Sequence[str]) -> dict:
    """``metrics`` with, for a stack, ``stack``: per site type the best single base model by PR-AUC and the
    meta-model's PR-AUC difference to it and to the models' mean, with their bootstrap intervals."""
    if not bases:
        return metrics
    out: dict[str, object] = {}
    for t, st in metrics["site_types"].items():
        ms = st["methods"]
        singles = ["base", *(b for b in bases if b != MEAN)]
        best = max(singles, key=lambda m: ms[m]["pr_auc"] or 0.0)
        meta = ms.get("meta", {})
        out[t] = {"pr_auc": {m: ms[m]["pr_auc"] for m in (*singles, MEAN, "meta") if m in ms},
                  "best_single": best,
                  "meta_vs_best_single": meta.get(f"vs_{best}", {}).get("pr_auc"),
                  "meta_vs_mean": meta.get(f"vs_{MEAN}", {}).get("pr_auc")}
    return {**metrics, "stack": out}
