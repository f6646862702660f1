"""Context features: what a gene's whole donor and acceptor score tracks say about one position.

The ``base`` features read the scores within ±2 nt. The base model scores every position on its
own; exon definition ties positions together (a real donor has an acceptor an exon-length upstream
and another acceptor an intron-length downstream; a real acceptor the mirror image), and a site
competes with its same-type neighbours. These families read the tracks around a position:

- ``partner`` — per track (donor, acceptor) and direction (up, down), for each distance range
  ``[lo, hi]`` of :data:`~meta_spliceai.schema.PARTNER_RANGES` (nt, inclusive): the strongest peak
  (0 if none) and the number of peaks ≥ each threshold; and the nearest peak ≥ each threshold
  1..``NEAREST_MAX`` nt away: its distance (``NEAREST_MAX + 1`` if none) and score (0 if none).
- ``neighbourhood`` — per track and radius r: the strongest *other* peak within ±r (0 if none), the
  score over max(score, that peak), whether the score beats every other peak there (and
  :data:`PEAK_FLOOR`), and how many other peaks there score higher.
- ``gene_peaks`` — per track: how many of the gene's peaks score higher than the position (and that
  over the gene's peak count), the track's maximum over the gene and score / maximum, the gene's
  number of peaks ≥ each threshold and the share of those lying upstream of the position.

A **peak** of a track s is an index i with ``s[i] > PEAK_FLOOR``, ``s[i] >= s[i-1]`` and
``s[i] > s[i+1]`` (0 past the gene ends): one per plateau, its last base. Every feature is a function
of the two score tracks and the position only, never of any annotation, so it is the same for every
position whatever its label, and computable for a gene without annotation.

Coordinates: positions are **0-based gene-relative in transcription direction** (0 = gene start on
``+``, gene end on ``-``); *upstream* means lower positions (5' in the transcript), *downstream*
higher ones. The tracks are given in that order too (as the prediction store holds them).

Cost: O(L) per track to find the peaks, then binary searches over the sorted peak list and range
maxima from a sparse table over the P peaks (O(P log P) once): O(n log P) per column for n
positions, plus O(n × peaks within ±r) for the neighbourhood ranks. No per-position Python loop.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import InputError
from .schema import (
    CONTEXT_TRACKS,
    GENE_PEAK_THRESHOLDS,
    NEAREST_MAX,
    NEIGHBOURHOOD_RADII,
    PARTNER_RANGES,
    PARTNER_THRESHOLDS,
    normalize_feature_sets,
    threshold_tag,
)

#: a peak (and a local peak of the base features) must score above this
PEAK_FLOOR = np.float32(1e-3)
EPS = np.float32(1e-10)
#: gathered (position, peak) pairs per block when counting neighbourhood ranks (bounds memory)
_RANK_BLOCK = 1 << 22


class Peaks:
    """The peaks of one score track: sorted positions, scores, and a sparse table for range maxima."""

    def __init__(self, track: np.ndarray) -> None:
        s = np.asarray(track, dtype=np.float32)
        left = np.empty_like(s)
        right = np.empty_like(s)
        if s.size:
            left[0], left[1:] = 0, s[:-1]
            right[-1], right[:-1] = 0, s[1:]
        mask = (s > PEAK_FLOOR) & (s >= left) & (s > right)
        self.track = s
        self.pos = np.flatnonzero(mask).astype(np.int64)
        self.score = s[self.pos]
        self._levels = [self.score]  # levels[k][i] = max(score[i : i + 2**k])
        k = 1
        while 2**k <= self.score.size:
            prev, half = self._levels[-1], 2 ** (k - 1)
            self._levels.append(np.maximum(prev[:-half], prev[half:]))
            k += 1
        self._above: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def above(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of the peaks scoring at least ``threshold``."""
        if threshold not in self._above:
            keep = self.score >= np.float32(threshold)
            self._above[threshold] = (self.pos[keep], self.score[keep])
        return self._above[threshold]

    def index(
        self, lo_pos: np.ndarray, hi_pos: np.ndarray, pos: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Index range ``[a, b)`` into the (given, else all) peak positions lying in ``[lo_pos, hi_pos]``."""
        pos = self.pos if pos is None else pos
        a = np.searchsorted(pos, lo_pos, side="left")
        b = np.searchsorted(pos, hi_pos, side="right")
        return a, np.maximum(a, b)

    def range_max(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Strongest peak score over indices ``[a, b)`` of the peak list; 0 where the range is empty."""
        out = np.zeros(a.shape, dtype=np.float32)
        width = b - a
        ok = np.flatnonzero(width > 0)
        if ok.size == 0:
            return out
        level = np.frexp(width[ok].astype(np.float64))[1] - 1  # floor(log2(width)), exact for integers
        for k in np.unique(level):
            sel = ok[level == k]
            tab = self._levels[k]
            out[sel] = np.maximum(tab[a[sel]], tab[b[sel] - 2**k])
        return out

    def count_higher(self, a: np.ndarray, b: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Peaks over indices ``[a, b)`` scoring strictly more than ``s`` (per query)."""
        n = a.size
        width = (b - a).astype(np.int64)
        out = np.zeros(n, dtype=np.int32)
        ends = np.cumsum(width)
        cuts = np.searchsorted(ends, np.arange(_RANK_BLOCK, int(ends[-1]) if n else 0, _RANK_BLOCK), side="right")
        lo = 0
        for hi in [*np.unique(cuts).tolist(), n]:
            if hi <= lo:
                continue
            w = width[lo:hi]
            total = int(w.sum())
            if total:
                owner = np.repeat(np.arange(hi - lo), w)
                first = np.cumsum(w) - w
                idx = np.repeat(a[lo:hi], w) + (np.arange(total) - first[owner])
                higher = self.score[idx] > s[lo:hi][owner]
                out[lo:hi] = np.bincount(owner, weights=higher, minlength=hi - lo).astype(np.int32)
            lo = hi
        return out


def partner_features(peaks: Peaks, name: str, positions: np.ndarray) -> dict[str, np.ndarray]:
    """The ``partner`` columns of one track (``name``: donor/acceptor) at ``positions``."""
    out: dict[str, np.ndarray] = {}
    for d in ("up", "down"):
        for lo, hi in PARTNER_RANGES:
            lo_pos, hi_pos = (positions - hi, positions - lo) if d == "up" else (positions + lo, positions + hi)
            a, b = peaks.index(lo_pos, hi_pos)
            out[f"{name}_{d}_max_{lo}_{hi}"] = peaks.range_max(a, b)
            for x in PARTNER_THRESHOLDS:
                ta, tb = peaks.index(lo_pos, hi_pos, peaks.above(x)[0])
                out[f"{name}_{d}_n{threshold_tag(x)}_{lo}_{hi}"] = (tb - ta).astype(np.int32)
        for x in PARTNER_THRESHOLDS:
            tpos, tscore = peaks.above(x)
            if d == "up":
                j = np.searchsorted(tpos, positions, side="left") - 1  # last peak before the position
                ok = j >= 0
                dist = positions - tpos[np.clip(j, 0, None)] if tpos.size else np.zeros_like(positions)
            else:
                j = np.searchsorted(tpos, positions, side="right")  # first peak after it
                ok = j < tpos.size
                dist = tpos[np.clip(j, None, tpos.size - 1)] - positions if tpos.size else np.zeros_like(positions)
            ok &= dist <= NEAREST_MAX
            tag = threshold_tag(x)
            out[f"{name}_{d}_nearest{tag}_dist"] = np.where(ok, dist, NEAREST_MAX + 1).astype(np.int32)
            score = tscore[np.clip(j, 0, tpos.size - 1)] if tpos.size else np.zeros(positions.size, np.float32)
            out[f"{name}_{d}_nearest{tag}_score"] = np.where(ok, score, np.float32(0)).astype(np.float32)
    return out


def neighbourhood_features(peaks: Peaks, name: str, positions: np.ndarray) -> dict[str, np.ndarray]:
    """The ``neighbourhood`` columns of one track at ``positions``: its own peak against the others within ±r."""
    s = peaks.track[positions]
    out: dict[str, np.ndarray] = {}
    for r in NEIGHBOURHOOD_RADII:
        la, lb = peaks.index(positions - r, positions - 1)
        ra, rb = peaks.index(positions + 1, positions + r)
        other = np.maximum(peaks.range_max(la, lb), peaks.range_max(ra, rb))
        out[f"{name}_nbhd{r}_max"] = other
        out[f"{name}_nbhd{r}_ratio"] = (s / (np.maximum(s, other) + EPS)).astype(np.float32)
        out[f"{name}_nbhd{r}_is_max"] = ((s > other) & (s > PEAK_FLOOR)).astype(np.int8)
        # the position's own peak (if any) scores s, never more, so [la, rb) can include it
        out[f"{name}_nbhd{r}_rank"] = peaks.count_higher(la, rb, s)
    return out


def gene_peak_features(peaks: Peaks, name: str, positions: np.ndarray) -> dict[str, np.ndarray]:
    """The ``gene_peaks`` columns of one track at ``positions``: the position among all of the gene's peaks."""
    s = peaks.track[positions]
    n = positions.size
    ranked = np.sort(peaks.score)
    higher = (ranked.size - np.searchsorted(ranked, s, side="right")).astype(np.int32)
    top = np.float32(peaks.track.max()) if peaks.track.size else np.float32(0)
    out: dict[str, np.ndarray] = {
        f"{name}_gene_rank": higher,
        f"{name}_gene_rank_frac": (higher / max(ranked.size, 1)).astype(np.float32),
        f"{name}_gene_max": np.full(n, top, dtype=np.float32),
        f"{name}_gene_rel_max": (s / (top + EPS)).astype(np.float32),
    }
    for x in GENE_PEAK_THRESHOLDS:
        tpos = peaks.above(x)[0]
        tag = threshold_tag(x)
        out[f"{name}_gene_n{tag}"] = np.full(n, tpos.size, dtype=np.int32)
        before = np.searchsorted(tpos, positions, side="left")
        out[f"{name}_gene_order{tag}"] = (before / max(tpos.size, 1)).astype(np.float32)
    return out


_FAMILIES = {
    "partner": partner_features,
    "neighbourhood": neighbourhood_features,
    "gene_peaks": gene_peak_features,
}


def context_features(
    donor: np.ndarray, acceptor: np.ndarray, positions: np.ndarray, *, feature_sets: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """Columns of the selected context families at ``positions``, in schema order (``base`` is not made here).

    ``donor``/``acceptor``: the gene's whole score tracks (length L) in transcription order;
    ``positions``: 0-based gene-relative in transcription direction. ``feature_sets``: names as in
    :func:`meta_spliceai.schema.normalize_feature_sets` (``None``: the default selection).
    """
    sets = [fs for fs in normalize_feature_sets(feature_sets) if fs in _FAMILIES]
    positions = np.asarray(positions, dtype=np.int64)
    tracks = {t: np.ascontiguousarray(x, dtype=np.float32) for t, x in (("donor", donor), ("acceptor", acceptor))}
    length = tracks["donor"].size
    if tracks["acceptor"].size != length:
        raise InputError(f"donor and acceptor tracks differ in length ({length} vs {tracks['acceptor'].size})")
    if positions.size and (positions.min() < 0 or positions.max() >= length):
        raise InputError(f"context positions outside the gene (length {length}); positions are 0-based gene-relative")
    if not sets:
        return {}
    peaks = {t: Peaks(tracks[t]) for t in CONTEXT_TRACKS}
    out: dict[str, np.ndarray] = {}
    for fs in sets:
        for t in CONTEXT_TRACKS:
            out.update(_FAMILIES[fs](peaks[t], t, positions))
    return out


__all__ = ["PEAK_FLOOR", "Peaks", "context_features", "partner_features", "neighbourhood_features",
           "gene_peak_features"]
