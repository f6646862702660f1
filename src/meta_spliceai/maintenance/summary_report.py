"""The HTML report of a dataset summary: one self-contained page, plots embedded as PNG (no network).

Sections: overview, class balance (splice_type × pred_type, TN kinds), score distributions by
class, rows per file and per gene, the base model's per-gene F1 (``gene_performance.tsv``), and
the columns with nulls. Plots are drawn with matplotlib's object API (no pyplot state, no display).
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np

from ..dataset.schema import PRED_TYPES, SPLICE_TYPES
from ..storage import write_text_atomic
from .summary import SCORE_BINS, DatasetSummary

_COLORS = {"TP": "#2ca02c", "FN": "#d62728", "FP": "#ff7f0e", "TN": "#1f77b4"}
_STYLE = """
body { font-family: sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 3px 9px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { display: block; max-width: 100%; margin: 8px 0; } .note { color: #8a5a00; }
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _figure(width: float = 10, height: float = 3.6, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")  # titles and labels never overlap
    axes = fig.subplots(1, ncols)
    return fig, (list(axes) if ncols > 1 else [axes])


def _count(v: float, _pos: object = None) -> str:
    """A tick label as a count: thousands separators, no exponent."""
    return f"{v:,.0f}" if v >= 1 or v == 0 else f"{v:g}"


def _counts_axis(axis, log: bool = False, nbins: int | str = "auto") -> None:
    """Integer ticks labelled as counts (1,000 not 1e3); on a log axis one tick per power of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    if log:
        axis.set_major_locator(LogLocator(base=10))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(MaxNLocator(nbins=nbins, integer=True))
    axis.set_major_formatter(FuncFormatter(_count))


def _table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "—"
            return f"{v:,.0f}" if v.is_integer() and abs(v) >= 1 else f"{v:,.4f}" if abs(v) < 1 else f"{v:,.1f}"
        return f"{v:,}" if isinstance(v, int) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _class_balance(s: DatasetSummary) -> str:
    fig, (ax, ax2) = _figure(10, 3.8, 2)
    x = np.arange(len(SPLICE_TYPES))
    width = 0.8 / len(PRED_TYPES)
    for k, p in enumerate(PRED_TYPES):
        v = np.array([s.class_balance.get((st, p), 0) for st in SPLICE_TYPES], dtype=float)
        if v.any():
            ax.bar(x + (k - 1.5) * width, np.where(v > 0, v, np.nan), width, color=_COLORS[p], label=p)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8)  # bars from 1 row, so their heights compare
    _counts_axis(ax.yaxis, log=True)
    ax.set_xticks(x, SPLICE_TYPES)
    ax.set_xlabel("splice_type")
    ax.set_ylabel("rows (log scale)")
    ax.set_title("rows by splice_type and pred_type")
    ax.legend(title="pred_type", fontsize=8)
    kinds = [k for k in s.tn_kinds if s.tn_kinds[k] > 0] or list(s.tn_kinds)
    ax2.bar(kinds, [s.tn_kinds[k] or np.nan for k in kinds], color="#1f77b4")
    ax2.set_yscale("log")
    ax2.set_ylim(bottom=0.8)
    _counts_axis(ax2.yaxis, log=True)
    ax2.set_title("true negatives by kind")
    ax2.set_xlabel("tn_kind")
    ax2.set_ylabel("rows (log scale)")
    rows = [[st, *(s.class_balance.get((st, p), 0) for p in PRED_TYPES),
             sum(s.class_balance.get((st, p), 0) for p in PRED_TYPES)] for st in SPLICE_TYPES]
    return _img(fig, "class balance") + _table(["splice_type", *PRED_TYPES, "rows"], rows) + _table(
        ["TN kind", "rows"], [[k, v] for k, v in s.tn_kinds.items()])


def _scores(s: DatasetSummary) -> str:
    fig, axes = _figure(10, 3.6, 2)
    centres = (np.arange(SCORE_BINS) + 0.5) / SCORE_BINS
    for ax, track in zip(axes, ("donor", "acceptor")):
        for (tr, st, p), h in sorted(s.score_hist.items()):
            if tr != track or st not in (track, "neither"):
                continue
            ax.step(centres, np.maximum(h, 0.8), where="mid", color=_COLORS[p],
                    linestyle="-" if st == track else "--", label=f"{st} {p}")
        ax.set_yscale("log")
        _counts_axis(ax.yaxis, log=True)
        ax.set_xlabel(f"{track} score (solid: {track} sites, dashed: neither)")
        ax.set_ylabel("rows (log scale)")
        ax.set_title(f"{track} score by class")
        ax.legend(fontsize=7)
    return _img(fig, "score distributions by class")


#: the per-file axis names every file up to this many, else evenly spaced ones
MAX_FILE_LABELS = 30


def _rows(s: DatasetSummary) -> str:
    names = list(s.rows_per_file)
    at, labels = file_ticks(names)
    step = at[1] - at[0] if len(at) > 1 else 1
    longest = max((len(n) for n in labels), default=4)
    rotate = len(labels) * (longest + 2) > 64  # about the characters one panel holds in a row at fontsize 8
    fig, (ax, ax2) = _figure(10, 3.6 + (0.07 * min(longest, 40) if rotate else 0.3), 2)
    ax.bar(range(len(names)), [s.rows_per_file[n] for n in names], color="#9467bd")
    ax.set_title("rows per file")
    ax.set_xticks(at, labels, rotation=90 if rotate else 0, fontsize=8)
    ax.set_xlim(-0.6, max(len(names), 1) - 0.4)
    ax.set_xlabel("file (manifest order)" if step == 1 else f"file (manifest order; every {step}th named)")
    ax.set_ylabel("rows")
    _counts_axis(ax.yaxis)
    per_gene = np.array(list(s.rows_per_gene.values()) or [0])
    ax2.hist(per_gene, bins=min(50, max(5, len(per_gene) // 5)), color="#17becf")
    ax2.set_title("rows per gene")
    ax2.set_xlabel("rows of the gene")
    ax2.set_ylabel("genes")
    _counts_axis(ax2.xaxis, nbins=6)
    _counts_axis(ax2.yaxis)
    stats = s.gene_stats()
    return _img(fig, "rows per batch and per gene") + _table(
        ["rows per gene", "min", "median", "mean", "max"],
        [["", stats["min"], stats["median"], stats["mean"], stats["max"]]])


def file_ticks(names: list[str], most: int = MAX_FILE_LABELS) -> tuple[list[int], list[str]]:
    """Positions and labels of the per-file axis: every file's name (without folder and .parquet) up
    to ``most`` files, else every k-th, the first included."""
    step = max(1, math.ceil(len(names) / most))
    at = list(range(0, len(names), step))
    return at, [Path(names[i]).name.removesuffix(".parquet") for i in at]


def _performance(s: DatasetSummary) -> str:
    pooled = s.pooled_performance()
    if pooled is None or s.performance is None or s.performance.height == 0:
        return '<p class="note">No gene_performance.tsv: base-model performance not shown.</p>'
    fig, axes = _figure(10, 3.6, 2)
    for ax, st in zip(axes, ("donor", "acceptor")):
        f1 = s.performance.filter(s.performance["splice_type"] == st)["f1_score"].drop_nulls().to_numpy()
        ax.hist(f1, bins=20, range=(0, 1), color="#2ca02c" if st == "donor" else "#1f77b4")
        ax.set_title(f"{st} sites: base model F1 per gene ({f1.size:,} genes)")
        ax.set_xlabel("F1 of the gene")
        ax.set_ylabel("genes")
        _counts_axis(ax.yaxis)
    cols = ["splice_type", "genes", "TP", "FP", "FN", "precision", "recall", "f1", "mean_gene_f1"]
    rows = [[r[c] if r[c] is not None else float("nan") for c in cols] for r in pooled.iter_rows(named=True)]
    return _img(fig, "base model per-gene F1") + _table(cols, rows)


def render_html(s: DatasetSummary) -> str:
    """The report page as a string."""
    overview = _table(["", "value"], [["rows", s.rows], ["files", s.files], ["genes", s.genes],
                                      ["transcripts (of site rows)", s.transcripts], ["columns", s.columns],
                                      ["feature columns", s.features]])
    nulls = (_table(["column", "nulls"], [[k, v] for k, v in sorted(s.nulls.items())]) if s.nulls
             else "<p>No column holds nulls.</p>") + "<p>tn_kind is null on every row that is not a TN, by design.</p>"
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in s.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>meta-spliceai dataset report</title>
<style>{_STYLE}</style></head><body>
<h1>Dataset report: {html.escape(s.dataset)}</h1>{notes}
<h2>Overview</h2>{overview}
<h2>Class balance</h2>{_class_balance(s)}
<h2>Score distributions by class</h2>{_scores(s)}
<h2>Rows per batch and per gene</h2>{_rows(s)}
<h2>Base model performance</h2>{_performance(s)}
<h2>Nulls per column</h2>{nulls}
</body></html>
"""


def write_report(s: DatasetSummary, path: Path) -> Path:
    """Write the report page (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, render_html(s))
    return path


__all__ = ["render_html", "write_report"]
