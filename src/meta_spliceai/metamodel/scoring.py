"""Scoring every nucleotide of genes by several methods side by side (base model, calibrated base,
ablation models, the meta-model) into one :class:`~meta_spliceai.metamodel.comparison.Collector`:
what ``train`` reports on its test genes and ``apply --evaluate`` on any other genes.

Positions are 0-based gene-body indices in transcription direction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import polars as pl

from ..basemodel.store import PredictionStore
from ..dataset.evaluation import check_probs
from .card import Corrector, LoadedModel, scored_positions
from .comparison import SITE_TYPES, Collector
from .models import MetaModel
from .trainset import frame_matrix

#: the methods of a comparison, in report order (feature-ablation models go before ``meta``)
METHODS = ("base", "calibrated_base", "meta_scores_only", "meta")


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


def scorers(models: dict[str, MetaModel], calib: dict[str, list] | None) -> dict[str, Scorer]:
    """Method name -> f(gene probs, scored positions, their features) -> class probabilities at them."""
    out: dict[str, Scorer] = {}
    if calib is not None:
        out["calibrated_base"] = lambda probs, pos, feats: calibrate(calib, probs[pos])
    for name, m in models.items():
        out[name] = lambda probs, pos, feats, m=m: m.predict(frame_matrix(feats, m.features, m.categories))
    return out


def method_order(score: Mapping[str, object]) -> list[str]:
    """``base`` and the methods of ``score`` in report order: base, calibrated base, score-only model, score
    features + each context family (``train --feature-ablation``), the meta-model."""
    from .ablation import PREFIX

    families = [m for m in score if m.startswith(PREFIX)]
    return [m for m in (*METHODS[:-1], *families, METHODS[-1]) if m == "base" or m in score]


def collect(methods: list[str], genes: list[str], store: PredictionStore, gene_rows: dict[str, dict],
            sites: dict[str, dict[str, np.ndarray]], corrector: Corrector, score: dict[str, Scorer],
            progress: bool = False, what: str = "") -> Collector:
    """Every nucleotide of ``genes`` scored by each method (``base`` plus those of ``score``)."""
    from ..progress import count_progress

    c = Collector(list(methods), floor=corrector.floor, window=corrector.cfg.consensus_window)
    with count_progress(progress) as bar:
        task = bar.add_task(f"{what} genes: every nucleotide", total=len(genes), rate="") if bar else None
        for g in genes:
            probs = check_probs(store.read(g), f"gene {g}")
            pos = scored_positions(probs, corrector.floor)
            feats = corrector.features(gene_rows[g], probs, pos)
            tracks = {"base": probs}
            for name in methods[1:]:
                tracks[name] = corrector.correct(probs, pos, score[name](probs, pos, feats)) if pos.size else probs
            c.add(g, tracks, pos, sites[g])
            if bar:
                bar.update(task, advance=1)
    return c


def evaluate_genes(loaded: LoadedModel, store: PredictionStore, ann, genes: pl.DataFrame, corrector: Corrector,  # noqa: ANN001
                   *, n_boot: int, seed: int, progress: bool = False) -> tuple[dict, Collector]:
    """The train-time comparison (base, the card's ablations, meta) on other genes, e.g. another chromosome."""
    from .models import load_model

    card = loaded.card
    models = {"meta": loaded.model}
    ab = card.get("ablations", {})
    for name, a in ab.items():  # the score-only model and, after --feature-ablation, one per context family
        if name != "calibrated_base":
            models[name] = load_model(a["kind"], loaded.folder / a["file"], list(a["features"]),
                                      {k: list(v) for k, v in a["categories"].items()})
    score = scorers(models, ab.get("calibrated_base"))
    methods = method_order(score)
    ids = genes["gene_id"].to_list()
    sites = sites_by_gene(ann, ids)
    rows = {g["gene_id"]: g for g in genes.iter_rows(named=True)}
    c = collect(methods, ids, store, rows, sites, corrector, score, progress, "evaluated")
    thr = {tuple(k.split("/")): float(v) for k, v in card.get("method_thresholds", {}).items()}
    return c.summary(thr, n_boot=n_boot, seed=seed), c
