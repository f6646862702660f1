"""Like-for-like comparison of scoring methods over every nucleotide of a set of genes.

Each *method* (base model, calibrated base, meta-models) yields a corrected (L, 3) track per gene
that differs from the base track only at the *scored* positions (base max(donor, acceptor) >=
floor; in a stacked comparison, any site model's top score >= floor). The other base models of a stack
and their plain mean are methods too, whose tracks are their own everywhere (below the floor at
every unscored position, as every model is there). Per site type and method this module keeps:

- every scored position exactly (score, is-site, gene);
- every other position of the gene in log-spaced score bins of that method's own track
  (``TAIL_BINS`` bins per gene from 1e-8 to the floor; the same bins for every method that keeps
  the base scores there);
- per gene, what TP/FP/FN at any threshold >= the floor needs (:class:`metrics.SiteCounts`).

so every method is measured on exactly the same positions, with memory bounded by the scored
positions. Positions are 0-based gene-relative in transcription direction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..dataset.evaluation import ACCEPTOR, DONOR
from .metrics import (
    TOPK_FACTORS,
    RankedPoints,
    SiteCounts,
    bootstrap_weights,
    count_matrix,
    interval,
    prf,
)

SITE_TYPES: tuple[str, ...] = ("donor", "acceptor")
_TRACK = {"donor": DONOR, "acceptor": ACCEPTOR}
TAIL_BINS = 128
TAIL_LOW = 1e-8


@dataclass
class _Points:
    score: list[np.ndarray] = field(default_factory=list)
    pos: list[np.ndarray] = field(default_factory=list)
    neg: list[np.ndarray] = field(default_factory=list)
    gene: list[np.ndarray] = field(default_factory=list)

    def add(self, score: np.ndarray, pos: np.ndarray, neg: np.ndarray, g: int) -> None:
        self.score.append(score.astype(np.float64))
        self.pos.append(pos.astype(np.float64))
        self.neg.append(neg.astype(np.float64))
        self.gene.append(np.full(score.size, g, dtype=np.int64))

    def ranked(self, genes: np.ndarray | None = None) -> RankedPoints:
        idx = range(len(self.score)) if genes is None else genes
        cat = [np.concatenate([getattr(self, a)[i] for i in idx]) if len(idx) else np.zeros(0) for a in
               ("score", "pos", "neg", "gene")]
        return RankedPoints.build(*cat)


class Collector:
    """Accumulates, gene by gene, what the metrics of each method and site type need."""

    def __init__(self, methods: list[str], *, floor: float, window: int, own_tail: set[str] | None = None) -> None:
        self.methods, self.floor, self.window = methods, float(floor), int(window)
        #: methods whose unscored positions are not the base model's (another base model, the models' mean)
        self.own_tail = set(own_tail or ())
        self.genes: list[str] = []
        self.points = {(m, t): _Points() for m in methods for t in SITE_TYPES}
        self.counts: dict[tuple[str, str], list[SiteCounts]] = {(m, t): [] for m in methods for t in SITE_TYPES}
        self.n_sites: dict[str, list[int]] = {t: [] for t in SITE_TYPES}
        self.n_positions = 0
        self.n_scored = 0
        edges = np.logspace(np.log10(TAIL_LOW), np.log10(self.floor), TAIL_BINS + 1)
        self._edges = edges
        self._mid = np.concatenate(([TAIL_LOW / 2], np.sqrt(edges[:-1] * edges[1:])))

    def add(self, gene_id: str, tracks: Mapping[str, np.ndarray], scored: np.ndarray,
            sites: Mapping[str, np.ndarray]) -> None:
        """One gene: each method's (L, 3) track, the scored positions, and the 0-based sites of each type."""
        g = len(self.genes)
        self.genes.append(gene_id)
        base = tracks[self.methods[0]]
        length = base.shape[0]
        self.n_positions += length
        self.n_scored += scored.size
        rest = np.ones(length, dtype=bool)
        rest[scored] = False
        any_site = np.zeros(length, dtype=bool)
        for s in sites.values():
            any_site[s] = True
        for t in SITE_TYPES:
            label = np.zeros(length, dtype=bool)
            label[sites[t]] = True
            self.n_sites[t].append(int(sites[t].size))
            tails: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
            for m in self.methods:
                track = tracks[m][:, _TRACK[t]]
                src = m if m in self.own_tail else self.methods[0]  # others keep the base scores there: binned once
                if src not in tails:
                    b = np.searchsorted(self._edges, tracks[src][rest, _TRACK[t]], side="right")  # 0: below TAIL_LOW
                    b = np.minimum(b, TAIL_BINS)
                    tp_ = np.bincount(b, weights=label[rest], minlength=TAIL_BINS + 1)
                    tn_ = np.bincount(b, minlength=TAIL_BINS + 1) - tp_
                    tails[src] = (tp_, tn_, (tp_ + tn_) > 0)
                tpos, tneg, nz = tails[src]
                pts = self.points[(m, t)]
                pts.add(np.concatenate([track[scored], self._mid[nz]]),
                        np.concatenate([label[scored], tpos[nz]]),
                        np.concatenate([~label[scored], tneg[nz]]), g)
                self.counts[(m, t)].append(SiteCounts.of(track, sites[t], any_site, self.window, self.floor))

    # ------------------------------------------------------------------ metrics

    def summary(self, thresholds: Mapping[tuple[str, str], float], *, n_boot: int, seed: int,
                reference: str | None = None, also_against: Sequence[str] = ()) -> dict[str, object]:
        """Pooled metrics of every method and site type, with paired bootstrap intervals of the differences
        to ``reference`` (default the first method), and of every method not in ``also_against`` to each of
        those (a stack's other base models and their mean: ``vs_<method>``), on the same resamples."""
        ref = reference or self.methods[0]
        G = len(self.genes)
        W = bootstrap_weights(G, n_boot, seed) if n_boot and G else np.zeros((0, G))
        out: dict[str, object] = {"genes": G, "positions": self.n_positions, "scored_positions": self.n_scored,
                                  "bootstrap": {"resamples": int(n_boot), "seed": seed, "unit": "gene", "level": 0.95},
                                  "site_types": {}}
        for t in SITE_TYPES:
            per_method: dict[str, dict[str, object]] = {}
            boot: dict[str, dict[str, np.ndarray]] = {}
            for m in self.methods:
                rp = self.points[(m, t)].ranked()
                res: dict[str, object] = {"pr_auc": rp.average_precision()}
                for f in TOPK_FACTORS:
                    res[f"topk_{f:g}x"] = rp.topk_accuracy(f)
                mats = {}
                for name, thr in (("at_0.5", 0.5), ("at_valid", thresholds.get((m, t), 0.5))):
                    mat = count_matrix(self.counts[(m, t)], thr)
                    mats[name] = mat
                    tp, fp, fn = (int(x) for x in mat.sum(axis=0))
                    res[name] = {"threshold": thr, "TP": tp, "FP": fp, "FN": fn, **prf(tp, fp, fn)}
                per_method[m] = res
                b = {"pr_auc": np.array([rp.average_precision(w) or np.nan for w in W]),
                     "topk_1x": np.array([rp.topk_accuracy(1.0, w) or np.nan for w in W])}
                for name, mat in mats.items():
                    sums = W @ mat  # (B, 3)
                    b[f"f1_{name}"] = np.array([prf(*row)["f1"] or np.nan for row in sums])
                    b[f"fp_{name}"] = sums[:, 1]
                    b[f"fn_{name}"] = sums[:, 2]
                boot[m] = b
            for r in (ref, *also_against):
                for m in self.methods:
                    if m == r or (r != ref and (m in also_against or m == ref)):
                        continue
                    diffs = {}
                    for k in boot[m]:
                        point = _point(per_method[m], k) - _point(per_method[r], k)
                        diffs[k] = {"difference": point, "ci95": interval(boot[m][k] - boot[r][k])}
                    per_method[m][f"vs_{r}"] = diffs
            out["site_types"][t] = {"sites": int(sum(self.n_sites[t])), "methods": per_method}  # type: ignore[index]
        return out

    def per_gene(self, methods: tuple[str, str], thresholds: Mapping[tuple[str, str], float]) -> pl.DataFrame:
        """delta_vs_baseline rows: per gene and site type, FP/FN/F1 at 0.5 and top-k of two methods."""
        a, b = methods
        rows = []
        for t in SITE_TYPES:
            mats = {m: count_matrix(self.counts[(m, t)], 0.5) for m in methods}
            for g, gid in enumerate(self.genes):
                row: dict[str, object] = {"gene_id": gid, "splice_type": t, "n_sites": self.n_sites[t][g]}
                for m, tag in ((a, "base"), (b, "meta")):
                    tp, fp, fn = (int(x) for x in mats[m][g])
                    rp = self.points[(m, t)].ranked(np.array([g]))
                    row.update({f"{tag}_TP": tp, f"{tag}_FP": fp, f"{tag}_FN": fn, f"{tag}_f1": prf(tp, fp, fn)["f1"],
                                f"{tag}_topk": rp.topk_accuracy(1.0)})
                row["delta_FP"] = row["meta_FP"] - row["base_FP"]  # type: ignore[operator]
                row["delta_FN"] = row["meta_FN"] - row["base_FN"]  # type: ignore[operator]
                fa, fb = row["base_f1"], row["meta_f1"]
                row["delta_f1"] = fb - fa if fa is not None and fb is not None else None  # type: ignore[operator]
                rows.append(row)
        return pl.DataFrame(rows, infer_schema_length=None)

    def curve(self, method: str, site_type: str) -> tuple[np.ndarray, np.ndarray]:
        """(recall, precision) at each distinct score, for plots."""
        rp = self.points[(method, site_type)].ranked()
        tp = np.cumsum(rp.pos)[rp.ends]
        fp = np.cumsum(rp.neg)[rp.ends]
        return tp / max(tp[-1], 1e-12), tp / np.maximum(tp + fp, 1e-12)

    def calibration(self, method: str, site_type: str, bins: int = 10) -> dict[str, list[float]]:
        """Mean score vs observed site fraction over every position, in score bins (reliability)."""
        p = self.points[(method, site_type)]
        s = np.concatenate(p.score)
        pos = np.concatenate(p.pos)
        n = pos + np.concatenate(p.neg)
        edges = np.linspace(0, 1, bins + 1)
        b = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1)
        tot = np.bincount(b, weights=n, minlength=bins)
        hit = np.bincount(b, weights=pos, minlength=bins)
        mean = np.bincount(b, weights=s * n, minlength=bins)
        keep = tot > 0
        return {"mean_score": (mean[keep] / tot[keep]).tolist(), "site_fraction": (hit[keep] / tot[keep]).tolist(),
                "positions": tot[keep].tolist()}


def _point(res: Mapping[str, object], key: str) -> float:
    if key == "pr_auc":
        v = res["pr_auc"]
    elif key == "topk_1x":
        v = res["topk_1x"]
    else:
        stat, _, where = key.partition("_")
        v = res[where][stat.upper() if stat in ("fp", "fn") else stat]  # type: ignore[index]
    return float(v) if v is not None else float("nan")  # type: ignore[arg-type]


def compare_with_base(metrics: Mapping[str, object], method: str = "meta") -> dict[str, object]:
    """``method`` at its validated threshold (the one its calls use) against the base model at 0.5 (SpliceAI's
    own cutoff) and at its validated threshold, per site type: precision, recall, F1, and a one-line verdict.

    ``worse``: the site types where ``method``'s F1 is below the base model's better F1 of the two (point
    estimates): a meta-model that loses to the base model is never applied without a word.
    ``metrics`` is a :meth:`Collector.summary`. Returns ``{"genes", "rows", "worse", "better", "verdict"}``;
    each row: site_type, method, at ("0.5" or "validated"), threshold, TP, FP, FN, precision, recall, f1.
    """
    rows: list[dict[str, object]] = []
    worse: list[str] = []
    better: list[str] = []
    pairs: list[str] = []
    site_types = metrics["site_types"]  # type: ignore[index]
    for t in SITE_TYPES:
        ms = site_types[t]["methods"]  # type: ignore[index]
        if method not in ms or "base" not in ms:
            continue
        for m, at, key in (("base", "0.5", "at_0.5"), ("base", "validated", "at_valid"), (method, "validated", "at_valid")):
            r = ms[m][key]
            rows.append({"site_type": t, "method": m, "at": at,
                         **{k: r[k] for k in ("threshold", "TP", "FP", "FN", "precision", "recall", "f1")}})
        base_f1 = [ms["base"][k]["f1"] for k in ("at_0.5", "at_valid") if ms["base"][k]["f1"] is not None]
        fm = ms[method]["at_valid"]["f1"]
        if not base_f1 or fm is None:
            continue
        fb = max(base_f1)
        pairs.append(f"{t} F1 {fm:.3f} vs {fb:.3f}")
        if fm < fb:
            worse.append(t)
        elif fm > fb:
            better.append(t)
    n = metrics["genes"]
    on = f"on these {n} gene{'s' if n != 1 else ''}"
    vs = f"{method} at its validated threshold vs the base model's better of 0.5 and its validated threshold"
    if not pairs:
        text = f"no verdict {on}: no site type with an F1 for both the base model and the {method} model"
    elif worse:
        text = (f"WARNING: the {method} model is worse than the base model {on} on {' and '.join(worse)} "
                f"({'; '.join(pairs)}; {vs}): use the base model's scores, or retrain on more genes")
    elif len(better) == len(pairs):
        text = f"the {method} model is better than the base model {on} ({'; '.join(pairs)}; {vs})"
    else:
        text = f"the {method} model is no better than the base model {on} ({'; '.join(pairs)}; {vs})"
    return {"genes": n, "rows": rows, "worse": worse, "better": better, "verdict": text}
