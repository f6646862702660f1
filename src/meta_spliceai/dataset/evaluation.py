"""Base-model outcome per position of one gene (TP/FP/FN/TN) and per-gene performance.

All positions here are **0-based gene-relative in transcription direction** (row ``i`` of a
gene's ``(L, 3)`` score array, columns ``[neither, acceptor, donor]``).

Outcome rules (design, "pred_type"), at threshold ``t`` and consensus window ``w``:

- an annotated site of type T is **TP** when the T score reaches ``t`` (``>= t``) at some
  position within ``±w`` of it (clipped to the gene), else **FN**; a position that is both a
  donor and an acceptor site gives one site row per type;
- a position that is no annotated site (of either type), whose donor or acceptor score
  reaches ``t`` with no true site *of that type* within ``±w``, is **FP**;
- every other position is **TN**.

Everything is vectorised over the gene (prefix sums), so multi-megabase genes are cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .schema import PRED_TYPES, SPLICE_TYPES

#: score-array columns
NEITHER, ACCEPTOR, DONOR = 0, 1, 2
#: site-type codes (indices into ``schema.SPLICE_TYPES``)
ACCEPTOR_CODE, DONOR_CODE, NEITHER_CODE = (SPLICE_TYPES.index(s) for s in ("acceptor", "donor", "neither"))
TP, FP, FN, TN = (PRED_TYPES.index(p) for p in ("TP", "FP", "FN", "TN"))
_TRACK = {ACCEPTOR_CODE: ACCEPTOR, DONOR_CODE: DONOR}


@dataclass(frozen=True)
class GeneOutcome:
    """Outcome of one gene. Positions are 0-based gene-relative (transcription direction).

    ``site_*`` arrays hold one entry per annotated (position, type), sorted by (position, type code);
    ``fp_*`` arrays one entry per FP position (sorted); every other position is TN.
    """

    length: int
    site_positions: np.ndarray  # int64
    site_types: np.ndarray  # int8 codes into SPLICE_TYPES (acceptor/donor)
    site_tp: np.ndarray  # bool: TP (True) or FN (False)
    fp_positions: np.ndarray  # int64, sorted, unique; never a site position
    fp_donor: np.ndarray  # bool per FP position: FP of the donor track
    fp_acceptor: np.ndarray  # bool per FP position: FP of the acceptor track

    def non_tn_mask(self) -> np.ndarray:
        """Bool (L,): positions holding a TP, FN or FP row."""
        mask = np.zeros(self.length, dtype=bool)
        mask[self.site_positions] = True
        mask[self.fp_positions] = True
        return mask

    def site_pred_types(self) -> np.ndarray:
        """Int8 pred-type code (TP/FN) of each site entry."""
        return np.where(self.site_tp, TP, FN).astype(np.int8)


def check_probs(probs: np.ndarray, where: str = "gene") -> np.ndarray:
    """Validate a ``(L, 3)`` score array ``[neither, acceptor, donor]``; returns it as float32."""
    arr = np.asarray(probs)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < 1:
        raise InputError(f"scores of {where} have shape {arr.shape}, expected (gene_length, 3) [neither, acceptor, donor]")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise InputError(f"scores of {where} contain NaN or inf; recompute the predictions (meta-spliceai predict)")
    if arr.min() < 0:  # rounding noise of 1 - sum(...) style inputs; scores are probabilities
        arr = np.maximum(arr, np.float32(0))
    return arr


def _site_array(positions: Sequence[int] | np.ndarray, length: int, kind: str, where: str) -> np.ndarray:
    pos = np.unique(np.asarray(positions, dtype=np.int64).ravel())
    if pos.size and (pos[0] < 0 or pos[-1] >= length):
        bad = pos[(pos < 0) | (pos >= length)]
        raise InputError(
            f"{kind} site position(s) {bad[:5].tolist()} outside the gene body of {where} (length {length}); "
            "positions must be 0-based gene-relative; does the annotation match the predictions?"
        )
    return pos


def _count_in_window(indicator: np.ndarray, centres: np.ndarray, w: int) -> np.ndarray:
    """Number of True entries of ``indicator`` within ``centres ± w`` (clipped to the array)."""
    csum = np.concatenate(([0], np.cumsum(indicator, dtype=np.int64)))
    lo = np.clip(centres - w, 0, indicator.size)
    hi = np.clip(centres + w + 1, 0, indicator.size)
    return csum[hi] - csum[lo]


def within(positions: np.ndarray, length: int, w: int) -> np.ndarray:
    """Bool (L,): True within ``±w`` of any of ``positions``."""
    diff = np.zeros(length + 1, dtype=np.int32)
    np.add.at(diff, np.clip(positions - w, 0, length), 1)
    np.add.at(diff, np.clip(positions + w + 1, 0, length), -1)
    return np.cumsum(diff[:-1]) > 0


def evaluate_gene(
    probs: np.ndarray,
    donor_positions: Sequence[int] | np.ndarray,
    acceptor_positions: Sequence[int] | np.ndarray,
    *,
    threshold: float,
    window: int,
    where: str = "gene",
) -> GeneOutcome:
    """Classify every position of one gene (0-based gene-relative, transcription direction).

    ``probs``: (L, 3) float scores ``[neither, acceptor, donor]``; site positions: 0-based
    gene-relative; ``where`` names the gene in error messages.
    """
    probs = check_probs(probs, where)
    if window < 0:
        raise InputError(f"consensus window must be >= 0, got {window} (--consensus-window)")
    length = probs.shape[0]
    sites = {
        DONOR_CODE: _site_array(donor_positions, length, "donor", where),
        ACCEPTOR_CODE: _site_array(acceptor_positions, length, "acceptor", where),
    }
    any_site = np.zeros(length, dtype=bool)
    for pos in sites.values():
        any_site[pos] = True

    site_pos, site_type, site_tp = [], [], []
    fp_by_type: dict[int, np.ndarray] = {}
    for code, pos in sites.items():
        hit = probs[:, _TRACK[code]] >= threshold
        site_pos.append(pos)
        site_type.append(np.full(pos.size, code, dtype=np.int8))
        site_tp.append(_count_in_window(hit, pos, window) > 0)
        # FP of this track: hit, no site of any type here, no site of this type within the window
        fp_by_type[code] = hit & ~any_site & ~within(pos, length, window)

    positions = np.concatenate(site_pos)
    types = np.concatenate(site_type)
    order = np.lexsort((types, positions))
    fp_any = fp_by_type[DONOR_CODE] | fp_by_type[ACCEPTOR_CODE]
    fp_positions = np.flatnonzero(fp_any).astype(np.int64)
    return GeneOutcome(
        length=length,
        site_positions=positions[order],
        site_types=types[order],
        site_tp=np.concatenate(site_tp)[order],
        fp_positions=fp_positions,
        fp_donor=fp_by_type[DONOR_CODE][fp_positions],
        fp_acceptor=fp_by_type[ACCEPTOR_CODE][fp_positions],
    )


def _topk_accuracy(scores: np.ndarray, sites: np.ndarray) -> float | None:
    """Fraction of annotated sites among the k = len(sites) highest scores (ties: lower position first)."""
    k = sites.size
    if k == 0:
        return None
    n = scores.size
    kth = np.partition(scores, n - k)[n - k]  # k-th largest value
    top = scores > kth
    ties = np.flatnonzero(scores == kth)[: k - int(top.sum())]
    top[ties] = True
    return float(top[sites].sum()) / k


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def gene_performance(outcome: GeneOutcome, probs: np.ndarray) -> list[dict[str, object]]:
    """Per site type (donor, then acceptor): counts and metrics of the base model on one gene.

    Per type T: TP/FN over T sites; FP = FP positions of track T; TN = every other position, so
    TP + FP + FN + TN = gene length. Undefined ratios (0/0) are ``None``. Keys follow
    ``schema.PERFORMANCE_COLUMNS`` (without gene_id/gene_name, which the caller adds).
    """
    probs = check_probs(probs)
    rows = []
    for code, fp_mask in ((DONOR_CODE, outcome.fp_donor), (ACCEPTOR_CODE, outcome.fp_acceptor)):
        of_type = outcome.site_types == code
        tp = int(outcome.site_tp[of_type].sum())
        n_sites = int(of_type.sum())
        fn = n_sites - tp
        fp = int(fp_mask.sum())
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, n_sites)
        f1 = _ratio(2 * tp, 2 * tp + fp + fn)
        rows.append(
            {
                "splice_type": SPLICE_TYPES[code],
                "n_splice_sites": n_sites,
                "TP": tp,
                "FP": fp,
                "FN": fn,
                "TN": outcome.length - n_sites - fp,
                "precision": precision,
                "recall": recall,
                "f1_score": f1,
                "topk_acc": _topk_accuracy(probs[:, _TRACK[code]], outcome.site_positions[of_type]),
            }
        )
    return rows

