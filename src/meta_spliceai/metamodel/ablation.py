"""Feature-family ablation: does each context family pay beyond the base model's own scores?

``train --feature-ablation`` fits, beside the score-only meta-model (``meta_scores_only``), one
meta-model per context family the dataset holds (``meta_scores+partner`` = score features plus the
``partner`` columns, …) and scores them all on every nucleotide of the same test genes. The table
here gives each one's metrics and its paired gene-level bootstrap difference to the score-only
model, so a gain can be told apart from recalibration (which the score-only model already has).
The model card lists these models under ``ablations``, so ``apply --evaluate`` (and
:func:`meta_spliceai.training.evaluate_genes`) compare them on other genes too.

On a stacked build the ablation adds one base model at a time instead (:func:`model_subsets`): the
labelling model's features alone (``meta_models_spliceai``), then with the next model's column family
(``meta_models_spliceai+openspliceai``), …; the last step, every model with the ``stack_`` family, is the
meta-model itself. Each step is compared with the first (the one-model meta-model), paired by gene.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from ..dataset.schema import FEATURE_SET_COLUMNS
from ..errors import InputError
from .comparison import SITE_TYPES, Collector

#: the reference every family is added to
REFERENCE = "meta_scores_only"
#: method name of the model on score features plus one family
PREFIX = "meta_scores+"
#: method name of a stacked build's model on the first k base models' features (``meta_models_a+b``)
MODEL_PREFIX = "meta_models_"
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


def model_subsets(base_models: Sequence[str], features: Sequence[str]) -> dict[str, list[str]]:
    """``meta_models_<a>[+<b>...]`` -> the features of the first k base models (k = 1 .. n-1): every feature
    but the other models' families and the ``stack_`` family, then each next model's family."""
    from ..dataset.schema import model_fields

    fam = {m: {n for n, _ in model_fields(m)} for m in base_models[1:]}
    stacked = set().union(*fam.values()) if fam else set()
    own = [f for f in features if f not in stacked and not f.startswith("stack_")]
    out: dict[str, list[str]] = {}
    have: list[str] = list(own)
    for k in range(1, len(base_models)):
        out[MODEL_PREFIX + "+".join(base_models[:k])] = list(have)
        have += [f for f in features if f in fam[base_models[k]]]
    return out


def ablation_table(c: Collector, thresholds: Mapping[tuple[str, str], float], n_features: Mapping[str, int], *,
                   n_boot: int, seed: int, reference: str = REFERENCE) -> pl.DataFrame:
    """One row per site type and method of a comparison (``c``), differences to ``reference`` (default
    :data:`REFERENCE`) with gene-level paired bootstrap intervals (``n_boot`` resamples; none: no intervals)."""
    summary = c.summary(thresholds, n_boot=n_boot, seed=seed, reference=reference)
    _errors_interval(c, summary, n_boot=n_boot, seed=seed, reference=reference)
    rows = []
    for t in SITE_TYPES:
        for m, r in summary["site_types"][t]["methods"].items():  # type: ignore[index]
            vs = r.get(f"vs_{reference}", {})

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
    """The table as Markdown: Δ vs the reference (the score-only meta-model, or a stack's one-model
    meta-model) with 95 % intervals."""
    def ci(v, lo, hi) -> str:  # noqa: ANN001
        if v is None:
            return "—"
        return f"{v:+.4f} [{lo:+.4f}, {hi:+.4f}]" if lo is not None else f"{v:+.4f}"

    def num(v) -> str:  # noqa: ANN001
        return "—" if v is None else f"{v:.4f}"

    lines = ["| type | method | features | PR-AUC | Δ PR-AUC [95% CI] | top-k | FP/FN @0.5 | Δ FP+FN @0.5 "
             "| F1 @valid thr | Δ F1 [95% CI] |", "|" + "---|" * 10]
    for r in table.iter_rows(named=True):
        err = "—" if r["d_errors_0.5"] is None else (
            f"{r['d_errors_0.5']:+.0f}" + (f" [{r['d_errors_lo']:+.0f}, {r['d_errors_hi']:+.0f}]"
                                           if r["d_errors_lo"] is not None else ""))
        feats = "" if r["features"] is None else f"{r['features']:.0f}"
        lines.append(f"| {r['site_type']} | {r['method']} | {feats} | {num(r['pr_auc'])} | "
                     f"{ci(r['d_pr_auc'], r['d_pr_auc_lo'], r['d_pr_auc_hi'])} | {num(r['topk_1x'])} | "
                     f"{r['FP_0.5']:.0f}/{r['FN_0.5']:.0f} | {err} | {num(r['f1_valid'])} | "
                     f"{ci(r['d_f1_valid'], r['d_f1_valid_lo'], r['d_f1_valid_hi'])} |")
    return "\n".join(lines) + "\n"


def _errors_interval(c: Collector, summary: dict, *, n_boot: int, seed: int, reference: str = REFERENCE) -> None:
    """Add Δ(FP + FN) at 0.5 vs the reference, with its paired bootstrap interval, to ``summary`` (in place)."""
    from .metrics import bootstrap_weights, count_matrix, interval

    if reference not in c.methods:
        return
    G = len(c.genes)
    W = bootstrap_weights(G, n_boot, seed) if n_boot and G else np.zeros((0, G))  # Collector.summary's resamples
    for t in SITE_TYPES:
        methods = summary["site_types"][t]["methods"]
        ref = W @ count_matrix(c.counts[(reference, t)], 0.5)
        ref_point = methods[reference]["at_0.5"]["FP"] + methods[reference]["at_0.5"]["FN"]
        for m in c.methods:
            if m == reference:
                continue
            cur = W @ count_matrix(c.counts[(m, t)], 0.5)
            d = (cur[:, 1] + cur[:, 2]) - (ref[:, 1] + ref[:, 2])
            point = methods[m]["at_0.5"]["FP"] + methods[m]["at_0.5"]["FN"] - ref_point
            lo, hi = interval(d) if d.size else (None, None)
            methods[m].setdefault(f"vs_{reference}", {})["errors_at_0.5"] = {"difference": float(point),
                                                                              "ci95": [lo, hi]}


__all__ = ["family_subsets", "model_subsets", "ablation_table", "markdown", "REFERENCE", "PREFIX", "MODEL_PREFIX",
           "ABLATION_COLUMNS"]
