"""Plots and the one-page report of a ``train`` run (PNG files and report.html / report.md).

``report.html`` is self-contained: its plots are embedded as base64 PNG, so the page survives being
copied alone; the PNG files are written beside it too (``report.md`` shows those). The page says in
one sentence whether the meta-model beats the base model on the test genes (:func:`verdict`),
warns when the test set is too small to measure anything (:func:`small_test_warning`) and explains
every abbreviation of its table (:data:`ABBREVIATIONS`). Plots are drawn with matplotlib's object
API (no pyplot state, no display).
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from .comparison import SITE_TYPES, Collector
from .models import MetaModel

log = logging.getLogger(__name__)

_LABEL = {"base": "base model", "calibrated_base": "calibrated base", "meta_scores_only": "meta (scores only)",
          "meta": "meta-model"}
#: one colour per method in every plot (others, e.g. feature-ablation models, take the next free ones)
_COLOR = {"base": "#1f77b4", "calibrated_base": "#ff7f0e", "meta_scores_only": "#2ca02c", "meta": "#d62728"}
_MORE = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_DPI = 110
#: a test set with fewer genes, or fewer annotated sites of a type, gets the small-test-set banner
MIN_TEST_GENES = 10
MIN_TEST_SITES = 50
#: the recall range of the zoomed PR panel
ZOOM_RECALL = (0.8, 1.0)
#: the per-gene FP/FN plot shows at most this many genes (those whose counts changed most)
MAX_GENES_SHOWN = 50
#: what the verdict compares (higher is better for each): key in ``vs_base``, label
VERDICT_METRICS = (("pr_auc", "PR-AUC"), ("topk_1x", "top-k 1x"), ("f1_at_valid", "F1 @thr"))

#: the table's abbreviations, explained under it (term, meaning)
ABBREVIATIONS: tuple[tuple[str, str], ...] = (
    ("type", "the site type scored: donor or acceptor; each is measured on its own score track."),
    ("method", ("base = the base model's scores; calibrated_base = the base scores recalibrated by a logistic "
               "regression on their logs (fitted on the validation genes); meta_scores_only = a meta-model on the "
               "score features only; meta = the meta-model on every feature.")),
    ("PR-AUC", ("area under the precision–recall curve (average precision) over every nucleotide of the test genes; "
               "1 is perfect, and a site-poor random scorer is near 0.")),
    ("top-k 0.5x/1x/2x/4x", ("top-k accuracy (SpliceAI paper): take the k highest-scoring nucleotides, k = 0.5, 1, 2 "
                            "or 4 × the number of annotated sites; the share of them that are annotated sites "
                            "(of min(k, sites)). 1 is perfect.")),
    ("TP / FP / FN", ("true positives (annotated sites whose score reaches the threshold within the consensus "
                     "window), false positives (nucleotides reaching the threshold with no annotated site of the "
                     "type within the window), false negatives (annotated sites missed); the build's pred_type rule.")),
    ("F1", "2·TP / (2·TP + FP + FN): the harmonic mean of precision TP/(TP+FP) and recall TP/(TP+FN); 1 is perfect."),
    ("@0.5", "counts at the score threshold 0.5."),
    ("thr, @thr", ("the threshold with the highest pooled F1 on the validation genes (per method and site type, "
                  "grid of 0.01 from the floor), and the counts on the test genes at it.")),
    ("Δ … vs base [95% CI]", ("the method's value minus the base model's, with the 95 % interval of a gene-level "
                             "paired bootstrap (test genes resampled with replacement); an interval that excludes 0 "
                             "is a clear difference.")),
)


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw: object):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, **kw))
    return fig, axes


def _save(fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=_DPI)
    return name


def _colors(methods: list[str]) -> dict[str, str]:
    more = iter(_MORE * (len(methods) // len(_MORE) + 1))
    return {m: _COLOR.get(m) or next(more) for m in methods}


def _zoom_ylim(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Precision range of the zoomed PR panel: from the lowest precision where a curve reaches recall 0.8."""
    lows = []
    for r, p in curves:
        at = np.flatnonzero(r >= ZOOM_RECALL[0])
        if at.size:
            lows.append(float(p[at[0]]))
    low = min(lows, default=0.0) - 0.05
    return max(0.0, min(0.9, np.floor(low * 20) / 20)), 1.005


def plot_pr(out: Path, c: Collector, methods: list[str], metrics: dict) -> str:
    """Top row: full PR curves per site type; bottom row: the same zoomed on recall 0.8–1."""
    fig, axes = _figure(11, 8.4, 2, 2)
    col = _colors(methods)
    for k, t in enumerate(SITE_TYPES):
        full, zoom = axes[0, k], axes[1, k]
        curves = []
        for i, m in enumerate(methods):
            lw = 1.2 + 1.2 * (len(methods) - 1 - i) / max(len(methods) - 1, 1)  # identical curves stay visible
            r, p = c.curve(m, t)
            curves.append((r, p))
            ap = metrics["site_types"][t]["methods"][m]["pr_auc"]
            label = f"{_LABEL.get(m, m)} (PR-AUC {ap:.4f})" if ap is not None else _LABEL.get(m, m)
            full.plot(r, p, label=label, lw=lw, color=col[m])
            zoom.plot(r, p, lw=lw, color=col[m])
        full.set_title(f"{t}: every nucleotide of {len(c.genes)} test genes")
        full.set_xlim(0, 1)
        full.set_ylim(0, 1.01)
        full.legend(loc="lower left", fontsize=8)
        full.axvspan(*ZOOM_RECALL, color="grey", alpha=0.08, lw=0)
        zoom.set_title(f"{t}: zoom on recall {ZOOM_RECALL[0]:g}–{ZOOM_RECALL[1]:g}")
        zoom.set_xlim(ZOOM_RECALL[0], ZOOM_RECALL[1] + 0.002)
        zoom.set_ylim(*_zoom_ylim(curves))
        for ax in (full, zoom):
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
            ax.grid(alpha=0.25)
    return _save(fig, out, "pr_curves.png")


def _count(v: float, _pos: object = None) -> str:
    return f"{v:,.0f}" if v >= 1 or v == 0 else f"{v:g}"


def plot_calibration(out: Path, c: Collector, methods: list[str], bins: int = 10) -> str:
    """Top row: reliability (site fraction vs mean score per score bin); bottom row: positions per bin."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    fig, axes = _figure(11, 8.0, 2, 2)
    width = 0.8 / max(len(methods), 1)
    col = _colors(methods)
    for k, t in enumerate(SITE_TYPES):
        rel, cnt = axes[0, k], axes[1, k]
        top = 1.0
        rel.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfectly calibrated")
        for j, m in enumerate(methods):
            cal = c.calibration(m, t, bins)
            mean = np.asarray(cal["mean_score"])
            rel.plot(mean, cal["site_fraction"], marker="o", ms=3, color=col[m], label=_LABEL.get(m, m))
            # the bin of each point (its mean score lies in it)
            b = np.clip(np.floor(mean * bins).astype(int), 0, bins - 1)
            cnt.bar((b + 0.5 + (j - (len(methods) - 1) / 2) * width) / bins, cal["positions"], width / bins,
                    color=col[m], label=_LABEL.get(m, m))
            top = max(top, max(cal["positions"], default=1))
        rel.set_title(f"{t}: reliability over every nucleotide")
        rel.set_xlabel("mean score in bin")
        rel.set_ylabel("fraction of annotated sites")
        rel.set_xlim(-0.02, 1.02)
        rel.set_ylim(-0.02, 1.05)
        rel.legend(fontsize=8, loc="best")
        cnt.set_yscale("log")
        cnt.yaxis.set_major_locator(LogLocator(base=10))
        cnt.yaxis.set_major_formatter(FuncFormatter(_count))
        cnt.set_ylim(0.5, top * 40)  # room for the legend above the bars
        cnt.set_xlim(-0.02, 1.02)
        cnt.set_xticks(np.linspace(0, 1, bins + 1))
        cnt.set_title(f"{t}: positions per score bin")
        cnt.set_xlabel("score")
        cnt.set_ylabel("positions (log scale)")
        cnt.legend(fontsize=8, ncols=2, loc="upper right")
    return _save(fig, out, "calibration.png")


def _name(gene_id: str, names: Mapping[str, str | None]) -> str:
    return names.get(gene_id) or gene_id


def gene_changes(delta: pl.DataFrame, site_type: str, gene_names: Mapping[str, str | None] | None = None,
                 max_genes: int = MAX_GENES_SHOWN) -> pl.DataFrame:
    """The bars of one panel of the per-gene plot: ``label`` (gene name, else ID), ``delta_FP``,
    ``delta_FN``; the ``max_genes`` genes whose FP + FN changed most, largest change first."""
    names = gene_names or {}
    return (delta.filter(pl.col("splice_type") == site_type)
            .with_columns(pl.col("gene_id").map_elements(lambda g: _name(g, names), return_dtype=pl.String)
                          .alias("label"),
                          (pl.col("delta_FP").abs() + pl.col("delta_FN").abs()).alias("change"))
            .sort(["change", "label"], descending=[True, False]).head(max_genes)
            .select("gene_id", "label", "delta_FP", "delta_FN"))


def plot_gene_changes(out: Path, delta: pl.DataFrame, gene_names: Mapping[str, str | None] | None = None,
                      max_genes: int = MAX_GENES_SHOWN) -> str:
    """Per site type, each test gene's change in FP and FN at 0.5 (meta − base), labelled by gene name."""
    from matplotlib.ticker import MaxNLocator

    panels = {t: gene_changes(delta, t, gene_names, max_genes) for t in SITE_TYPES}
    n_genes = delta["gene_id"].n_unique()
    longest = max((len(x) for d in panels.values() for x in d["label"].to_list()), default=4)
    shown = max(d.height for d in panels.values())
    rotate = shown > 8 or longest > 12
    label_in = (0.075 * min(longest, 24) + 0.2) if rotate else 0.3  # room for the names under each panel
    fig, axes = _figure(11, 2 * (2.6 + label_in), 2, 1)
    for ax, (t, d) in zip(axes[:, 0], panels.items()):
        x = np.arange(d.height)
        ax.bar(x - 0.2, d["delta_FP"].to_numpy(), width=0.4, color="#ff7f0e", label="Δ FP (meta − base)")
        ax.bar(x + 0.2, d["delta_FN"].to_numpy(), width=0.4, color="#d62728", label="Δ FN (meta − base)")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(x, d["label"].to_list(), rotation=90 if rotate else 0, fontsize=8 if rotate else 9)
        ax.set_xlim(-0.6, max(d.height, 1) - 0.4)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, -1), max(hi, 1))  # an all-zero panel still shows a ±1 scale
        ax.set_ylabel("change in count\n(meta − base; < 0: fewer errors)", fontsize=9)
        part = f"the {d.height} of {n_genes} test genes that changed most" if d.height < n_genes else \
            f"each of the {n_genes} test genes"
        ax.set_title(f"{t}: FP and FN at threshold 0.5, {part}")
        ax.grid(axis="y", alpha=0.25)
        ax.legend(fontsize=8, loc="best")
    return _save(fig, out, "gene_fp_fn_change.png")


def plot_importances(out: Path, model: MetaModel, top: int = 25) -> str:
    imp = sorted(model.importances().items(), key=lambda kv: kv[1], reverse=True)[:top]
    fig, axes = _figure(7, 0.28 * len(imp) + 1.2)
    ax = axes[0, 0]
    ax.barh([k for k, _ in imp][::-1], [v for _, v in imp][::-1])
    ax.set_xlabel("importance (total gain)" if model.kind != "sgd_logistic" else "mean |coefficient|")
    ax.set_title(f"top {len(imp)} features ({model.kind})")
    return _save(fig, out, "feature_importances.png")


def _fmt(v: object, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def metrics_table(metrics: dict) -> list[list[str]]:
    """Rows: site type, method, PR-AUC (Δ, CI), top-k 0.5/1/2/4x, FP/FN/F1 at 0.5 and at the validated threshold."""
    rows = [["type", "method", "PR-AUC", "Δ PR-AUC vs base [95% CI]", "top-k 0.5x/1x/2x/4x", "FP/FN/F1 @0.5",
             "thr", "FP/FN/F1 @thr", "Δ F1@thr vs base [95% CI]"]]
    for t in SITE_TYPES:
        for m, r in metrics["site_types"][t]["methods"].items():
            vs = r.get("vs_base", {})

            def d(key: str) -> str:
                if key not in vs:
                    return ""
                ci = vs[key]["ci95"]
                return f"{vs[key]['difference']:+.4f} [{_fmt(ci[0])}, {_fmt(ci[1])}]"

            a5, av = r["at_0.5"], r["at_valid"]
            rows.append([t, m, _fmt(r["pr_auc"]), d("pr_auc"),
                         "/".join(_fmt(r[f"topk_{f:g}x"], 3) for f in (0.5, 1, 2, 4)),
                         f"{a5['FP']}/{a5['FN']}/{_fmt(a5['f1'], 3)}", f"{av['threshold']:.2f}",
                         f"{av['FP']}/{av['FN']}/{_fmt(av['f1'], 3)}", d("f1_at_valid")])
    return rows


# --------------------------------------------------------------------------- verdict and warning


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def verdict(metrics: dict, method: str = "meta") -> str:
    """One sentence: does ``method`` beat the base model on the test genes, on which metrics, with the
    bootstrap intervals. A metric counts as better (worse) when its whole 95 % interval of the difference
    is above (below) 0; otherwise the difference is not clear."""
    n = metrics["genes"]
    better, worse, unclear, no_ci = [], [], [], []
    for t in SITE_TYPES:
        vs = metrics["site_types"][t]["methods"].get(method, {}).get("vs_base", {})
        for key, label in VERDICT_METRICS:
            if key not in vs:
                continue
            diff, (lo, hi) = vs[key]["difference"], vs[key]["ci95"]
            if diff is None or not np.isfinite(diff):
                continue
            if lo is None or hi is None:
                no_ci.append(f"{t} {label} {diff:+.4f}")
                continue
            text = f"{t} {label} ({diff:+.4f} [{lo:.4f}, {hi:.4f}])"
            (better if lo > 0 else worse if hi < 0 else unclear).append(text)
    who = _LABEL.get(method, method)
    where = f"on the {n} test gene{'s' if n != 1 else ''}"
    if no_ci and not (better or worse or unclear):
        return (f"No verdict {where}: without bootstrap intervals (--bootstrap 0) only point differences of the "
                f"{who} to the base model are known: {_join(no_ci)}.")
    if not (better or worse or unclear):
        return f"No verdict {where}: no metric of the {who} could be compared with the base model."
    if better and not worse:
        head = f"The {who} beats the base model {where} on {_join(better)}"
    elif better:
        head = f"Mixed result {where}: the {who} beats the base model on {_join(better)} but is worse on {_join(worse)}"
    elif worse:
        head = f"The {who} does not beat the base model {where}: it is worse on {_join(worse)}"
    else:
        head = f"The {who} does not beat the base model {where}: no difference is clear"
    tail = f"; no clear difference on {_join(unclear)}" if unclear and (better or worse) else \
        (f" on {_join(unclear)}" if unclear else "")
    return (f"{head}{tail} (difference to the base model [gene-level paired bootstrap 95 % interval]; a metric "
            f"counts when its interval excludes 0).")


def small_test_warning(metrics: dict) -> str | None:
    """The banner text when the test set is too small to measure (fewer than MIN_TEST_GENES genes or
    MIN_TEST_SITES annotated sites of a type), else None."""
    n = metrics["genes"]
    sites = {t: metrics["site_types"][t]["sites"] for t in SITE_TYPES}
    if n >= MIN_TEST_GENES and min(sites.values()) >= MIN_TEST_SITES:
        return None
    counts = ", ".join(f"{v:,} {t}" for t, v in sites.items())
    return (f"Small test set: {n} test gene{'s' if n != 1 else ''} ({counts} sites); fewer than {MIN_TEST_GENES} "
            f"genes or {MIN_TEST_SITES} sites of a type is a smoke test, not a measurement. The intervals are wide "
            f"or degenerate and a metric can flip with one gene: train on more genes to measure.")


# --------------------------------------------------------------------------- the page

_STYLE = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1150px; color: #222; padding: 0 12px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 12px; }
td, th { border: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:nth-child(-n+2), th:nth-child(-n+2) { text-align: left; }
img { display: block; max-width: 100%; margin: 8px 0; }
.banner { background: #fff3cd; border: 1px solid #e0b43a; color: #5c4300; padding: 10px 14px; border-radius: 4px; }
.verdict { font-size: 1.05em; background: #f1f6fb; border-left: 4px solid #1f77b4; padding: 8px 12px; }
dl.abbr { font-size: 13px; display: grid; grid-template-columns: max-content auto; gap: 3px 14px; }
dl.abbr dt { font-weight: bold; } dl.abbr dd { margin: 0; }
.file { font-size: 12px; color: #666; }
"""


def _embedded(out: Path, name: str, alt: str) -> str:
    data = base64.b64encode((out / name).read_bytes()).decode("ascii")
    return (f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f'<div class="file">also saved as {html.escape(name)}</div>')


def write_training_report(out: Path, metrics: dict, c: Collector, model: MetaModel, methods: list[str], thresholds: dict,
                          pruned: list, gene_names: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """PNG plots plus report.md and report.html (plots embedded) linking every output file.

    ``gene_names``: gene_id -> name, for the per-gene axis (the ID where absent)."""
    delta = pl.read_csv(out / "delta_vs_baseline.csv")
    pngs = {"PR curves": plot_pr(out, c, methods, metrics), "calibration": plot_calibration(out, c, methods),
            "per-gene FP/FN change": plot_gene_changes(out, delta, gene_names),
            "feature importances": plot_importances(out, model)}
    table = metrics_table(metrics)
    links = ["model_card.json", "metrics.json", "delta_vs_baseline.csv", "feature_importances.tsv", "split.tsv",
             "row_scores.parquet"]
    intro = (f"Meta-model ({model.kind}, {len(model.features):,} features) against the base model on every nucleotide "
             f"of {metrics['genes']:,} test genes ({metrics['positions']:,} positions; {metrics['scored_positions']:,} "
             f"scored by the meta-model, the rest keep base scores). Intervals: gene-level paired bootstrap, "
             f"{metrics['bootstrap']['resamples']:,} resamples. Pruned features: {len(pruned):,}.")
    banner, say = small_test_warning(metrics), verdict(metrics)
    md = ["# meta-spliceai train report", ""] + ([f"> **Warning.** {banner}", ""] if banner else [])
    md += [intro, "", f"**Verdict.** {say}", ""]
    md += ["| " + " | ".join(r) + " |" for r in table[:1]] + ["|" + "---|" * len(table[0])]
    md += ["| " + " | ".join(r) + " |" for r in table[1:]]
    md += [""] + [f"- **{k}**: {v}" for k, v in ABBREVIATIONS]
    md += [""] + [f"![{k}]({v})" for k, v in pngs.items()] + [""] + [f"- [{f}]({f})" for f in links]
    (out / "report.md").write_text("\n".join(md) + "\n")
    cells = "".join("<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(x)}</{'th' if i == 0 else 'td'}>"
                                     for x in r) + "</tr>" for i, r in enumerate(table))
    abbr = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in ABBREVIATIONS)
    body = ("<h1>meta-spliceai train report</h1>"
            + (f'<p class="banner"><b>Warning.</b> {html.escape(banner)}</p>' if banner else "")
            + f"<p>{html.escape(intro)}</p><p class='verdict'><b>Verdict.</b> {html.escape(say)}</p>"
            + f"<h2>Metrics on the test genes</h2><table>{cells}</table><dl class='abbr'>{abbr}</dl>"
            + "".join(f"<h2>{html.escape(k)}</h2>{_embedded(out, v, k)}" for k, v in pngs.items())
            + "<h2>Files</h2><ul>" + "".join(f"<li><a href='{f}'>{f}</a></li>" for f in links) + "</ul>")
    head = f"<meta charset='utf-8'><title>meta-spliceai train report</title><style>{_STYLE}</style>"
    (out / "report.html").write_text(f"<!doctype html><html lang='en'><head>{head}</head><body>{body}</body></html>\n")
    return {"report": str(out / "report.html"), **{k: str(out / v) for k, v in pngs.items()}}
