"""Feature-family ablation: does each context family pay beyond the base model's own scores?

``train --feature-ablation`` fits, beside the score-only meta-model (``meta_scores_only``), one
meta-model per context family the dataset holds (``meta_scores+partner`` = score features plus the
``partner`` columns, …) and scores them all on every nucleotide of the same test genes. The table
here gives each one's metrics and its paired gene-level bootstrap difference to the score-only
model, so a gain can be told apart from recalibration (which the score-only model already has).

:func:`evaluate_models` scores trained models on genes of another annotated bundle (apply's
feature path: :class:`meta_spliceai.correction.Corrector`), like for like, for the same table.
Positions are 0-based gene-relative in transcription direction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl

from .comparison import SITE_TYPES, Collector
from .errors import InputError
from .schema import FEATURE_SET_COLUMNS

#: the reference every family is added to
REFERENCE = "meta_scores_only"
#: method name of the model on score features plus one family
PREFIX = "meta_scores+"
ABLATION_COLUMNS = ("site_type", "method", "features", "pr_auc", "d_pr_auc", "d_pr_auc_lo", "d_pr_auc_hi",
                    "topk_1x", "FP_0.5", "FN_0.5", "d_errors_0.5", "d_errors_lo", "d_errors_hi", "f1_valid",
                    "d_f1_valid", "d_f1_valid_lo", "d_f1_valid_hi")


def family_subsets(
    feature_sets: Sequence[str], features: Sequence[str], score_only: Sequence[str]
) -> dict[str, list[str]]:
    """``meta_scores+<family>`` -> score features plus that family's columns, for each context family present."""
    have = set(features)
    out = {}
    for fs in feature_sets:
        if fs == "base":
            continue
        cols = [c for c in FEATURE_SET_COLUMNS[fs] if c in have]
        if cols:
            out[PREFIX + fs] = list(score_only) + cols
    if not out:
        raise InputError("--feature-ablation needs context feature families in the dataset (it has "
                         f"{', '.join(feature_sets)}); build with --feature-sets all")
    return out


def ablation_table(summary: Mapping[str, object], n_features: Mapping[str, int]) -> pl.DataFrame:
    """One row per site type and method from ``Collector.summary(..., reference=REFERENCE)``."""
    rows = []
    for t in SITE_TYPES:
        for m, r in summary["site_types"][t]["methods"].items():  # type: ignore[index]
            vs = r.get(f"vs_{REFERENCE}", {})

            def diff(key: str) -> tuple[float | None, float | None, float | None]:
                if key not in vs:
                    return None, None, None
                lo, hi = vs[key]["ci95"]
                return vs[key]["difference"], lo, hi

            rows.append({
                "site_type": t, "method": m, "features": n_features.get(m),
                "pr_auc": r["pr_auc"], **dict(zip(("d_pr_auc", "d_pr_auc_lo", "d_pr_auc_hi"), diff("pr_auc"))),
                "topk_1x": r["topk_1x"], "FP_0.5": r["at_0.5"]["FP"], "FN_0.5": r["at_0.5"]["FN"],
                **dict(zip(("d_errors_0.5", "d_errors_lo", "d_errors_hi"), diff("errors_at_0.5"))),
                "f1_valid": r["at_valid"]["f1"],
                **dict(zip(("d_f1_valid", "d_f1_valid_lo", "d_f1_valid_hi"), diff("f1_at_valid"))),
            })
    return pl.DataFrame(rows, schema={c: (pl.String if c in ("site_type", "method") else pl.Float64)
                                      for c in ABLATION_COLUMNS}, strict=False)


def markdown(table: pl.DataFrame) -> str:
    """The table as Markdown: Δ vs the score-only meta-model with 95 % intervals."""
    def ci(v, lo, hi) -> str:  # noqa: ANN001
        if v is None:
            return "—"
        return f"{v:+.4f} [{lo:+.4f}, {hi:+.4f}]" if lo is not None else f"{v:+.4f}"

    lines = ["| type | method | features | PR-AUC | Δ PR-AUC [95% CI] | top-k | FP/FN @0.5 | Δ FP+FN @0.5 "
             "| F1 @valid thr | Δ F1 [95% CI] |", "|" + "---|" * 10]
    for r in table.iter_rows(named=True):
        err = "—" if r["d_errors_0.5"] is None else (
            f"{r['d_errors_0.5']:+.0f}" + (f" [{r['d_errors_lo']:+.0f}, {r['d_errors_hi']:+.0f}]"
                                           if r["d_errors_lo"] is not None else ""))
        feats = "" if r["features"] is None else f"{r['features']:.0f}"
        lines.append(f"| {r['site_type']} | {r['method']} | {feats} | {r['pr_auc']:.4f} | "
                     f"{ci(r['d_pr_auc'], r['d_pr_auc_lo'], r['d_pr_auc_hi'])} | {r['topk_1x']:.4f} | "
                     f"{r['FP_0.5']:.0f}/{r['FN_0.5']:.0f} | {err} | {r['f1_valid']:.4f} | "
                     f"{ci(r['d_f1_valid'], r['d_f1_valid_lo'], r['d_f1_valid_hi'])} |")
    return "\n".join(lines) + "\n"


def errors_interval(c: Collector, summary: dict, *, n_boot: int, seed: int) -> None:
    """Add the paired bootstrap interval of Δ(FP + FN) at 0.5 vs the reference to ``summary`` (in place)."""
    from .metrics import bootstrap_weights, count_matrix, interval

    G = len(c.genes)
    if not n_boot or not G or REFERENCE not in c.methods:
        return
    W = bootstrap_weights(G, n_boot, seed)  # the same resamples as Collector.summary (same seed)
    for t in SITE_TYPES:
        ref = W @ count_matrix(c.counts[(REFERENCE, t)], 0.5)
        for m in c.methods:
            if m == REFERENCE:
                continue
            cur = W @ count_matrix(c.counts[(m, t)], 0.5)
            d = (cur[:, 1] + cur[:, 2]) - (ref[:, 1] + ref[:, 2])
            r = summary["site_types"][t]["methods"][m]
            point = (r["at_0.5"]["FP"] + r["at_0.5"]["FN"]) - (
                summary["site_types"][t]["methods"][REFERENCE]["at_0.5"]["FP"]
                + summary["site_types"][t]["methods"][REFERENCE]["at_0.5"]["FN"])
            lo, hi = interval(d)
            r.setdefault(f"vs_{REFERENCE}", {})["errors_at_0.5"] = {"difference": float(point), "ci95": [lo, hi]}


def load_models(train_dir: str | Path) -> tuple[dict[str, object], dict[tuple[str, str], float], object, float]:
    """The meta-models of a ``train --feature-ablation`` folder: name -> MetaModel, validation thresholds,
    the feature settings (BuildConfig) and the floor."""
    from .correction import load_card
    from .metamodel import load_model

    d = Path(train_dir)
    loaded = load_card(d)
    models: dict[str, object] = {}
    subs = sorted((p for p in d.iterdir() if (p / "features.json").is_file()),
                  key=lambda p: (p.name != REFERENCE, p.name))
    for sub in subs:
        spec = json.loads((sub / "features.json").read_text())
        models[sub.name] = load_model(spec["kind"], sub / spec["file"], spec["features"], spec["categories"])
    models["meta"] = loaded.model  # the same order as train's methods: reference, families, meta
    metrics = json.loads((d / "metrics.json").read_text())
    thr = {tuple(k.split("/")): float(v) for k, v in metrics["thresholds_from_validation"].items()}
    return models, thr, loaded.cfg, float(loaded.card["floor"])  # type: ignore[return-value]


def evaluate_models(
    models: Mapping[str, object],
    genes: pl.DataFrame,
    store,  # noqa: ANN001 - predictions.PredictionStore
    sites: Mapping[str, Mapping[str, np.ndarray]],
    cfg,  # noqa: ANN001 - config.BuildConfig (the model card's feature settings)
    floor: float,
    *,
    genome=None,  # noqa: ANN001
    contig_map=None,  # noqa: ANN001
) -> Collector:
    """Every nucleotide of ``genes`` scored by the base model and each meta-model (apply's feature path)."""
    from .correction import Corrector, scored_positions
    from .evaluation import check_probs
    from .trainset import frame_matrix

    corr = Corrector(cfg, floor, genome, contig_map)
    c = Collector(["base", *models], floor=floor, window=cfg.consensus_window)
    for gene in genes.iter_rows(named=True):
        gid = gene["gene_id"]
        probs = check_probs(store.read(gid), f"gene {gid}")
        pos = scored_positions(probs, floor)
        feats = corr.features(gene, probs, pos)
        tracks = {"base": probs}
        for name, m in models.items():
            X = frame_matrix(feats, m.features, m.categories)  # type: ignore[attr-defined]
            tracks[name] = corr.correct(probs, pos, m.predict(X))  # type: ignore[attr-defined]
        c.add(gid, tracks, pos, sites[gid])
    return c


__all__ = ["family_subsets", "ablation_table", "markdown", "errors_interval", "load_models", "evaluate_models",
           "REFERENCE", "PREFIX"]
