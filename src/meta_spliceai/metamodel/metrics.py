"""Site-calling metrics over every nucleotide of a set of genes, with gene-level bootstrap weights.

Scores of one site type are held as *points*: ``(score, positives, negatives, gene)``. A scored
nucleotide is a point with one positive (an annotated site of that type) or one negative; positions
below the evaluation floor may be grouped into score bins (points with many negatives), which keeps
memory bounded on whole genomes (see :mod:`meta_spliceai.comparison`). A bootstrap resample of genes
is a weight per gene (how often it was drawn); every metric takes those weights, so a paired
bootstrap sorts the points once.

- **PR-AUC** = average precision, ``Σ (R_i - R_{i-1}) P_i`` over the distinct scores in descending
  order (ties form one threshold), as scikit-learn's ``average_precision_score``.
- **top-k accuracy** (SpliceAI paper): with ``n`` annotated sites and ``k = floor(f * n)``, the
  fraction ``|sites among the k best-scored positions| / min(k, n)``; positions tied at the
  cut count in proportion (the expectation under random tie-breaking).
- **Counts at a threshold** follow the builder's ``pred_type`` rule (``evaluation.evaluate_gene``):
  a site is TP when its track reaches ``t`` within ±w; a position that is no site, with no site of
  the type within ±w, whose score reaches ``t`` is FP.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dataset.evaluation import within

TOPK_FACTORS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)


@dataclass
class RankedPoints:
    """Points sorted by descending score, with the last index of each group of tied scores."""

    score: np.ndarray  # float64, descending
    pos: np.ndarray  # float64 positives per point
    neg: np.ndarray  # float64 negatives per point
    gene: np.ndarray  # int64 gene index per point
    ends: np.ndarray  # int64 index of the last point of each tied-score group

    @classmethod
    def build(cls, score: np.ndarray, pos: np.ndarray, neg: np.ndarray, gene: np.ndarray) -> RankedPoints:
        order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
        s = np.asarray(score, dtype=np.float64)[order]
        ends = np.flatnonzero(np.append(s[1:] != s[:-1], True)) if s.size else np.zeros(0, dtype=np.int64)
        return cls(s, np.asarray(pos, np.float64)[order], np.asarray(neg, np.float64)[order],
                   np.asarray(gene, np.int64)[order], ends)

    def _weighted(self, gene_weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if gene_weights is None:
            return self.pos, self.neg
        w = gene_weights[self.gene]
        return self.pos * w, self.neg * w

    def average_precision(self, gene_weights: np.ndarray | None = None) -> float | None:
        """PR-AUC (average precision); None without positives."""
        pos, neg = self._weighted(gene_weights)
        if self.ends.size == 0:
            return None
        tp = np.cumsum(pos)[self.ends]
        fp = np.cumsum(neg)[self.ends]
        total = tp[-1]
        if total <= 0:
            return None
        called = tp + fp
        precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
        recall_step = np.diff(np.concatenate(([0.0], tp))) / total
        return float(np.sum(recall_step * precision))

    def topk_accuracy(self, factor: float = 1.0, gene_weights: np.ndarray | None = None) -> float | None:
        """Top-k accuracy with ``k = floor(factor * sites)``; None without sites."""
        pos, neg = self._weighted(gene_weights)
        n_sites = float(pos.sum())
        k = float(np.floor(factor * n_sites + 1e-9))
        if n_sites <= 0 or k <= 0:
            return None
        cum_n = np.cumsum(pos + neg)[self.ends]
        cum_p = np.cumsum(pos)[self.ends]
        g = int(np.searchsorted(cum_n, k, side="left"))  # first group reaching k
        if g >= cum_n.size:
            hits = cum_p[-1]
        else:
            before_n = cum_n[g - 1] if g else 0.0
            before_p = cum_p[g - 1] if g else 0.0
            group_n = cum_n[g] - before_n
            hits = before_p + (cum_p[g] - before_p) * ((k - before_n) / group_n if group_n > 0 else 0.0)
        return float(hits / min(k, n_sites))


def window_max(track: np.ndarray, w: int) -> np.ndarray:
    """``max(track[i-w .. i+w])`` (clipped to the gene) for every position."""
    out = track.copy()
    for d in range(1, w + 1):
        out[d:] = np.maximum(out[d:], track[:-d])
        out[:-d] = np.maximum(out[:-d], track[d:])
    return out


@dataclass
class SiteCounts:
    """One gene and site type: what TP/FP/FN at any threshold ``t`` (>= ``min_threshold``) needs."""

    site_best: np.ndarray  # per annotated site: best score of the track within ±w
    fp_scores: np.ndarray  # sorted scores (>= min_threshold) of positions that would be FP when called

    @classmethod
    def of(cls, track: np.ndarray, sites: np.ndarray, any_site: np.ndarray, w: int, min_threshold: float) -> SiteCounts:
        best = window_max(track, w)[sites] if sites.size else np.zeros(0, np.float32)
        eligible = ~any_site & ~within(sites, track.size, w) & (track >= min_threshold)
        return cls(best.astype(np.float32), np.sort(track[eligible]).astype(np.float32))

    def counts(self, t: float) -> tuple[int, int, int]:
        """(TP, FP, FN) at threshold ``t`` (a score ``>= t`` is a call)."""
        tp = int((self.site_best >= t).sum())
        fp = int(self.fp_scores.size - np.searchsorted(self.fp_scores, np.float32(t), side="left"))
        return tp, fp, int(self.site_best.size) - tp


def prf(tp: float, fp: float, fn: float) -> dict[str, float | None]:
    """Precision, recall and F1 (None where 0/0)."""
    return {
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None,
    }


def count_matrix(per_gene: list[SiteCounts], t: float) -> np.ndarray:
    """(genes, 3) int64 TP, FP, FN of each gene at threshold ``t``."""
    return np.array([c.counts(t) for c in per_gene], dtype=np.int64).reshape(len(per_gene), 3)


def best_threshold(per_gene: list[SiteCounts], grid: np.ndarray) -> tuple[float, float]:
    """Threshold of ``grid`` with the highest pooled F1 (first of ties) and that F1."""
    best_t, best_f1 = float(grid[0]), -1.0
    for t in grid:
        tp, fp, fn = count_matrix(per_gene, float(t)).sum(axis=0)
        f1 = prf(tp, fp, fn)["f1"] or 0.0
        if f1 > best_f1 + 1e-12:
            best_t, best_f1 = float(t), f1
    return best_t, best_f1


def bootstrap_weights(n_genes: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_genes) multiplicities of a seeded gene-level bootstrap."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_genes, size=(n_boot, n_genes))
    return np.stack([np.bincount(d, minlength=n_genes) for d in draws]).astype(np.float64)


def interval(values: np.ndarray, level: float = 0.95) -> list[float | None]:
    """Percentile interval of bootstrap values (NaN dropped)."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return [None, None]
    a = (1 - level) / 2
    return [float(np.quantile(v, a)), float(np.quantile(v, 1 - a))]
