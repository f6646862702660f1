"""Plots and the one-page report of a ``train`` run (PNG files and report.html / report.md)."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import numpy as np
import polars as pl

from .comparison import SITE_TYPES, Collector
from .models import MetaModel

log = logging.getLogger(__name__)

_LABEL = {"base": "base model", "calibrated_base": "calibrated base", "meta_scores_only": "meta (scores only)",
          "meta": "meta-model"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_pr(out: Path, c: Collector, methods: list[str], metrics: dict) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, t in zip(axes, SITE_TYPES):
        for m in methods:
            r, p = c.curve(m, t)
            ap = metrics["site_types"][t]["methods"][m]["pr_auc"]
            ax.plot(r, p, label=f"{_LABEL.get(m, m)} (PR-AUC {ap:.4f})", lw=1.2)
        ax.set_title(f"{t}: every nucleotide of {len(c.genes)} test genes")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png", dpi=110)
    plt.close(fig)
    return "pr_curves.png"


def plot_calibration(out: Path, c: Collector, methods: list[str]) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, t in zip(axes, SITE_TYPES):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for m in methods:
            cal = c.calibration(m, t)
            ax.plot(cal["mean_score"], cal["site_fraction"], marker="o", ms=3, label=_LABEL.get(m, m))
        ax.set_title(f"{t}: reliability over every nucleotide")
        ax.set_xlabel("mean score in bin")
        ax.set_ylabel("fraction of annotated sites")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "calibration.png", dpi=110)
    plt.close(fig)
    return "calibration.png"


def plot_gene_changes(out: Path, delta: pl.DataFrame) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, t in zip(axes, SITE_TYPES):
        d = delta.filter(pl.col("splice_type") == t)
        x = np.arange(d.height)
        ax.bar(x - 0.2, d["delta_FP"].to_numpy(), width=0.4, label="Δ FP (meta − base)")
        ax.bar(x + 0.2, d["delta_FN"].to_numpy(), width=0.4, label="Δ FN (meta − base)")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(f"{t}: per test gene at threshold 0.5")
        ax.set_xlabel("test gene")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "gene_fp_fn_change.png", dpi=110)
    plt.close(fig)
    return "gene_fp_fn_change.png"


def plot_importances(out: Path, model: MetaModel, top: int = 25) -> str:
    plt = _plt()
    imp = sorted(model.importances().items(), key=lambda kv: kv[1], reverse=True)[:top]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(imp) + 1))
    ax.barh([k for k, _ in imp][::-1], [v for _, v in imp][::-1])
    ax.set_xlabel("importance (total gain)" if model.kind != "sgd_logistic" else "mean |coefficient|")
    ax.set_title(f"top {len(imp)} features ({model.kind})")
    fig.tight_layout()
    fig.savefig(out / "feature_importances.png", dpi=110)
    plt.close(fig)
    return "feature_importances.png"


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


def write_training_report(out: Path, metrics: dict, c: Collector, model: MetaModel, methods: list[str], thresholds: dict,
                 pruned: list) -> dict[str, str]:
    """PNG plots plus report.md and report.html linking them and every output file."""
    delta = pl.read_csv(out / "delta_vs_baseline.csv")
    pngs = {"PR curves": plot_pr(out, c, methods, metrics), "calibration": plot_calibration(out, c, methods),
            "per-gene FP/FN change": plot_gene_changes(out, delta), "feature importances": plot_importances(out, model)}
    table = metrics_table(metrics)
    links = ["model_card.json", "metrics.json", "delta_vs_baseline.csv", "feature_importances.tsv", "split.tsv",
             "row_scores.parquet"]
    intro = (f"Meta-model ({model.kind}, {len(model.features)} features) against the base model on every nucleotide "
             f"of {metrics['genes']} test genes ({metrics['positions']:,} positions; {metrics['scored_positions']:,} "
             f"scored by the meta-model, the rest keep base scores). Intervals: gene-level paired bootstrap, "
             f"{metrics['bootstrap']['resamples']} resamples. Pruned features: {len(pruned)}.")
    md = ["# meta-spliceai train report", "", intro, ""]
    md += ["| " + " | ".join(r) + " |" for r in table[:1]] + ["|" + "---|" * len(table[0])]
    md += ["| " + " | ".join(r) + " |" for r in table[1:]]
    md += [""] + [f"![{k}]({v})" for k, v in pngs.items()] + [""] + [f"- [{f}]({f})" for f in links]
    write = out / "report.md"
    write.write_text("\n".join(md) + "\n")
    cells = "".join("<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(x)}</{'th' if i == 0 else 'td'}>"
                                     for x in r) + "</tr>" for i, r in enumerate(table))
    body = (f"<h1>meta-spliceai train report</h1><p>{html.escape(intro)}</p><table border=1 cellpadding=3 "
            f"style='border-collapse:collapse;font-size:12px'>{cells}</table>"
            + "".join(f"<h3>{html.escape(k)}</h3><img src='{v}' style='max-width:100%'>" for k, v in pngs.items())
            + "<h3>Files</h3><ul>" + "".join(f"<li><a href='{f}'>{f}</a></li>" for f in links) + "</ul>")
    (out / "report.html").write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>meta-spliceai train"
                                     f"</title></head><body style='font-family:sans-serif'>{body}</body></html>\n")
    return {"report": str(out / "report.html"), **{k: str(out / v) for k, v in pngs.items()}}
