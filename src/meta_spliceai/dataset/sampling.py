"""Which positions of one gene become rows: every TP/FP/FN plus down-sampled true negatives.

Positions are **0-based gene-relative in transcription direction**.

Kept true negatives (TN), per gene:

- ``hard``: max(donor, acceptor) score >= ``hard_prob``;
- ``window``: within ``window`` nt (inclusive) of a TP/FP/FN row of the same gene;
- ``easy``: every other TN is eligible for a seeded random draw.

The raw file holds all TP/FP/FN, hard and window TNs, and a pool of
``ceil(RAW_EASY_POOL_FACTOR * easy_ratio * n)`` easy TNs (``n`` = the gene's TP/FP/FN rows;
capped at what exists); the trim file keeps raw's non-easy rows and ``ceil(easy_ratio * n)``
of the pool (capped). Each draw uses its own random stream seeded from ``(seed, gene_id)``
with a stable hash, so a gene's rows never depend on which batch or build it is in.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..config import RAW_EASY_POOL_FACTOR
from ..errors import InputError
from .evaluation import ACCEPTOR, DONOR, FP, NEITHER_CODE, TN, GeneOutcome, within
from .schema import TN_KINDS

HARD, WINDOW, EASY = (TN_KINDS.index(k) for k in ("hard", "window", "easy"))
NO_KIND = -1


def gene_rng(seed: int, gene_id: str, stream: str) -> np.random.Generator:
    """A random generator seeded from (seed, gene_id, stream) by BLAKE2b: stable across runs and machines."""
    digest = hashlib.blake2b(f"{int(seed)}\x1f{gene_id}\x1f{stream}".encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def easy_count(easy_ratio: float, n_non_tn: int, factor: float = 1.0) -> int:
    """``ceil(factor * easy_ratio * n_non_tn)``, robust to float noise (0.3 * 10 is 3, not 4)."""
    if easy_ratio < 0:
        raise InputError(f"easy ratio must be >= 0, got {easy_ratio} (--easy-ratio)")
    return math.ceil(round(factor * easy_ratio * n_non_tn, 9))


@dataclass(frozen=True)
class Candidates:
    """Rows chosen for one gene, sorted by (position, splice-type code); all arrays the same length."""

    positions: np.ndarray  # int64, 0-based gene-relative
    splice_type: np.ndarray  # int8 codes into schema.SPLICE_TYPES
    pred_type: np.ndarray  # int8 codes into schema.PRED_TYPES
    tn_kind: np.ndarray  # int8 codes into schema.TN_KINDS, -1 for TP/FP/FN
    site_index: np.ndarray  # int64 index into the outcome's site arrays, -1 for non-sites

    def __len__(self) -> int:
        return int(self.positions.size)


def tn_strata(
    outcome: GeneOutcome, probs: np.ndarray, *, hard_prob: float, window: int, top: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true-negative strata of one gene: bool masks (L,) of hard and window TNs, and the easy positions.

    The same code decides the builder's rows and, in ``train``, each gene's sampling weights (the
    number of easy positions a kept easy row stands for). ``top``: the (L,) score the hard rule reads
    (default max(donor, acceptor) of ``probs``; a stacked build's max over every model).
    """
    non_tn = outcome.non_tn_mask()
    if top is None:
        top = np.maximum(probs[:, DONOR], probs[:, ACCEPTOR])
    hard = ~non_tn & (top >= hard_prob)
    near = ~non_tn & ~hard & within(np.flatnonzero(non_tn), outcome.length, window)
    easy = np.flatnonzero(~non_tn & ~hard & ~near)
    return hard, near, easy


def select_candidates(
    outcome: GeneOutcome,
    probs: np.ndarray,
    *,
    hard_prob: float,
    window: int,
    easy_ratio: float,
    seed: int,
    gene_id: str,
    top: np.ndarray | None = None,
) -> Candidates:
    """The raw rows of one gene: TP/FP/FN, hard and window TNs, and the seeded easy-TN pool (``top``: see
    :func:`tn_strata`)."""
    if window < 0:
        raise InputError(f"TN window must be >= 0, got {window} (--window)")
    n_sites = outcome.site_positions.size
    n_fp = outcome.fp_positions.size
    n_non_tn = n_sites + n_fp  # rows, so a donor+acceptor position counts twice

    hard, near, easy = tn_strata(outcome, probs, hard_prob=hard_prob, window=window, top=top)
    pool_n = min(easy_count(easy_ratio, n_non_tn, RAW_EASY_POOL_FACTOR), easy.size)
    pool = easy[np.sort(gene_rng(seed, gene_id, "easy-pool").choice(easy.size, pool_n, replace=False))]
    hard_pos = np.flatnonzero(hard)
    near_pos = np.flatnonzero(near)

    def full(n: int, value: int, dtype: type = np.int8) -> np.ndarray:
        return np.full(n, value, dtype=dtype)

    n_tn = hard_pos.size + near_pos.size + pool.size
    positions = np.concatenate([outcome.site_positions, outcome.fp_positions, hard_pos, near_pos, pool]).astype(np.int64)
    splice_type = np.concatenate([outcome.site_types.astype(np.int8), full(n_fp + n_tn, NEITHER_CODE)])
    pred_type = np.concatenate([outcome.site_pred_types(), full(n_fp, FP), full(n_tn, TN)])
    tn_kind = np.concatenate(
        [full(n_non_tn, NO_KIND), full(hard_pos.size, HARD), full(near_pos.size, WINDOW), full(pool.size, EASY)]
    )
    site_index = np.concatenate([np.arange(n_sites, dtype=np.int64), full(n_fp + n_tn, -1, np.int64)])
    order = np.lexsort((splice_type, positions))
    return Candidates(positions[order], splice_type[order], pred_type[order], tn_kind[order], site_index[order])


def gene_trim_mask(gene_id: str, non_tn: np.ndarray, easy: np.ndarray, *, easy_ratio: float, seed: int) -> np.ndarray:
    """Bool per raw row of one gene: its non-easy rows plus a seeded draw of its easy pool."""
    keep = ~easy
    rows = np.flatnonzero(easy)
    want = easy_count(easy_ratio, int(np.count_nonzero(non_tn)))
    if want < rows.size:
        rows = rows[gene_rng(seed, str(gene_id), "easy-trim").choice(rows.size, want, replace=False)]
    keep[rows] = True
    return keep


def trim_mask(raw_rows: pl.DataFrame, *, easy_ratio: float, seed: int) -> np.ndarray:
    """Bool per raw row: kept in the trim (:func:`gene_trim_mask` gene by gene, in row order).

    Reads only ``gene_id``, ``pred_type`` and ``tn_kind``; works on one gene or a whole batch.
    """
    small = raw_rows.select(
        pl.col("gene_id"),
        (pl.col("pred_type") != "TN").alias("non_tn"),
        (pl.col("tn_kind") == "easy").fill_null(False).alias("easy"),
    ).with_row_index("row")
    if small.height and small["gene_id"].n_unique() == 1:  # one gene (the builder's loop): no grouping
        return gene_trim_mask(small["gene_id"][0], small["non_tn"].to_numpy(), small["easy"].to_numpy(),
                              easy_ratio=easy_ratio, seed=seed)
    keep = np.ones(small.height, dtype=bool)
    for (gene_id,), part in small.partition_by("gene_id", maintain_order=True, as_dict=True).items():
        rows = part["row"].to_numpy()
        keep[rows] = gene_trim_mask(gene_id, part["non_tn"].to_numpy(), part["easy"].to_numpy(),
                                    easy_ratio=easy_ratio, seed=seed)
    return keep


def trim(raw_rows: pl.DataFrame, *, easy_ratio: float, seed: int) -> pl.DataFrame:
    """The trim rows from raw rows (one gene or a batch; row order kept). See :func:`trim_mask`."""
    if raw_rows.height == 0:
        return raw_rows
    return raw_rows.filter(pl.Series(trim_mask(raw_rows, easy_ratio=easy_ratio, seed=seed)))
