"""Per-position features of one gene, from base-model scores, sequence and gene-level structure.

No annotation of any position is an input here: a feature is computed the same way for every
position, whatever its label, and can be computed at prediction time for an unannotated gene
(the design's leakage rule). Positions are **0-based gene-relative in transcription direction**.

Definitions follow the design's appendix (ε = 1e-10; neighbours past the gene ends are 0), with
each track's (donor_/acceptor_) context features computed from its own scores. Ratios whose
denominator can be negative (``signal_strength_ratio``) divide by ``|x| + ε``, so every output
is finite.

k-mers: for each k, counts of every k-mer (``{k}mer_ACGT…``) in the window
``position ± kmer_window // 2`` (inclusive: 501 nt for 500) of the transcription-oriented
sequence; k-mers containing ``N`` (or any non-ACGT letter) are not counted. ``gc_content`` is
(G + C) / ACGT bases of that window and ``sequence_complexity`` the Shannon entropy (bits) of its
ACGT composition (both 0 when the window has no ACGT base).

The context families (``partner``, ``neighbourhood``, ``gene_peaks``: views of the whole score
tracks) come from :func:`meta_spliceai.context.context_features`; ``feature_sets`` selects them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import polars as pl

from ..errors import InputError
from .context import EPS, PEAK_FLOOR, context_features
from .evaluation import ACCEPTOR, DONOR, NEITHER, check_probs
from .schema import (
    dataset_polars_schema,
    kmer_count_type,
    kmer_names,
    kmer_span,
    normalize_feature_sets,
    normalize_kmer_sizes,
)
from .stacking import check_tracks, stack_features

_OFFSETS = {"m2": -2, "m1": -1, "p1": 1, "p2": 2}
#: rows per k-mer counting block (bincount buffer ~rows * 4^k * 8 bytes)
_KMER_BLOCK_ROWS = 64  # measured: 64 keeps the buffer in cache (2x faster than 1024)

_LUT = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _LUT[ord(_b)] = _i
    _LUT[ord(_b.lower())] = _i


def encode_sequence(seq: str) -> np.ndarray:
    """uint8 codes A=0, C=1, G=2, T=3, anything else (N) = 4."""
    return _LUT[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]


def kmer_codes(bases: np.ndarray, k: int) -> np.ndarray:
    """int32 code of the k-mer starting at each index (``len - k + 1`` entries); ``4**k`` if it holds an N."""
    n = bases.size - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int32)
    codes = np.zeros(n, dtype=np.int32)
    bad = np.zeros(n, dtype=bool)
    for i in range(k):
        part = bases[i : i + n]
        codes = codes * 4 + np.minimum(part, 3)
        bad |= part > 3
    codes[bad] = 4**k
    return codes


def kmer_counts(codes: np.ndarray, starts: np.ndarray, n_kmers: int, k: int, dtype: np.dtype) -> np.ndarray:
    """Counts ``(4**k, len(starts))`` of each k-mer code in ``codes[s : s + n_kmers]`` for each start.

    Column-major result (one contiguous row per k-mer) so each k-mer column is a cheap view.
    Codes equal to ``4**k`` (N-containing) are dropped.
    """
    n_codes = 4**k
    out = np.empty((n_codes, starts.size), dtype=dtype)
    offsets = np.arange(n_kmers, dtype=np.int64)
    for lo in range(0, starts.size, _KMER_BLOCK_ROWS):
        block = starts[lo : lo + _KMER_BLOCK_ROWS]
        nb = block.size
        win = codes[block[:, None] + offsets[None, :]].astype(np.int64)  # (nb, n_kmers)
        flat = win * nb + np.arange(nb, dtype=np.int64)[:, None]
        counts = np.bincount(flat.ravel(), minlength=(n_codes + 1) * nb)
        out[:, lo : lo + nb] = counts[: n_codes * nb].reshape(n_codes, nb)
    return out


def _neighbours(track: np.ndarray, positions: np.ndarray) -> dict[str, np.ndarray]:
    """Track values at positions + offset, 0 past the gene ends."""
    length = track.size
    out = {}
    for name, off in _OFFSETS.items():
        idx = positions + off
        inside = (idx >= 0) & (idx < length)
        out[name] = np.where(inside, track[np.clip(idx, 0, length - 1)], np.float32(0))
    return out


def _track_features(prefix: str, s: np.ndarray, nb: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    m2, m1, p1, p2 = nb["m2"], nb["m1"], nb["p1"], nb["p2"]
    mean4 = (m2 + m1 + p1 + p2) / np.float32(4)
    max4 = np.maximum(np.maximum(m2, m1), np.maximum(p1, p2))
    f = {
        "context_neighbor_mean": mean4,
        "context_asymmetry": (m1 + m2) - (p1 + p2),
        "context_max": max4,
        "diff_m2": s - m2,
        "diff_m1": s - m1,
        "diff_p1": s - p1,
        "diff_p2": s - p2,
        "surge_ratio": s / (m1 + p1 + EPS),
        "is_local_peak": ((s > m1) & (s > p1) & (s > PEAK_FLOOR)).astype(np.int8),
        "weighted_context": np.float32(0.1) * m2
        + np.float32(0.2) * m1
        + np.float32(0.4) * s
        + np.float32(0.2) * p1
        + np.float32(0.1) * p2,
        "peak_height_ratio": s / (mean4 + EPS),
        "second_derivative": m1 + p1 - np.float32(2) * s,
        "signal_strength": s - mean4,
        "context_diff_ratio": s / (max4 + EPS),
    }
    return {f"{prefix}_{k}": v for k, v in f.items()}


def score_features(probs: np.ndarray, positions: np.ndarray) -> dict[str, np.ndarray]:
    """Score, probability, context and cross-track features at ``positions`` (0-based gene-relative)."""
    d = probs[positions, DONOR]
    a = probs[positions, ACCEPTOR]
    n = probs[positions, NEITHER]
    out: dict[str, np.ndarray] = {"donor_score": d, "acceptor_score": a, "neither_score": n}
    nbs = {}
    for name, col in (("donor", DONOR), ("acceptor", ACCEPTOR)):
        nbs[name] = _neighbours(np.ascontiguousarray(probs[:, col]), positions)
        for off in _OFFSETS:
            out[f"{name}_score_{off}"] = nbs[name][off]
    top = np.maximum(d, a)
    out.update(
        relative_donor_probability=d / (d + a + EPS),
        splice_probability=(d + a) / (d + a + n + EPS),
        donor_acceptor_diff=(d - a) / (top + EPS),
        splice_neither_diff=(top - n) / (np.maximum(top, n) + EPS),
        donor_acceptor_logodds=np.log(d + EPS) - np.log(a + EPS),
        splice_neither_logodds=np.log(d + a + EPS) - np.log(n + EPS),
        probability_entropy=-(d * np.log(d + EPS) + a * np.log(a + EPS) + n * np.log(n + EPS)),
    )
    out.update(_track_features("donor", d, nbs["donor"]))
    out.update(_track_features("acceptor", a, nbs["acceptor"]))
    out.update(
        donor_acceptor_peak_ratio=out["donor_peak_height_ratio"] / (out["acceptor_peak_height_ratio"] + EPS),
        type_signal_difference=out["donor_signal_strength"] - out["acceptor_signal_strength"],
        score_difference_ratio=(d - a) / (d + a + EPS),
        signal_strength_ratio=out["donor_signal_strength"] / (np.abs(out["acceptor_signal_strength"]) + EPS),
    )
    return out


def sequence_features(
    positions: np.ndarray, *, seq: str, seq_offset: int, kmer_sizes: Iterable[int], kmer_window: int
) -> tuple[dict[str, np.ndarray], dict[int, np.ndarray]]:
    """GC content and complexity, and per k the ``(4**k, n)`` k-mer count matrix, of each position's window.

    ``seq`` is transcription-oriented; ``seq[seq_offset + p]`` is gene position ``p`` (0-based
    gene-relative). Window indices outside ``seq`` count as N.
    """
    sizes = normalize_kmer_sizes(kmer_sizes)
    if not sizes:
        return {}, {}
    half = kmer_window // 2
    span = kmer_span(kmer_window)
    padded = np.full(len(seq) + 2 * half, 4, dtype=np.uint8)
    padded[half : half + len(seq)] = encode_sequence(seq)
    starts = positions.astype(np.int64) + seq_offset  # window start in padded coordinates
    if starts.size and (starts.min() < 0 or starts.max() + span > padded.size):
        raise InputError(
            f"sequence of {len(seq)} nt with offset {seq_offset} does not cover gene positions "
            f"{int(positions.min())}..{int(positions.max())}; pass the gene body plus flank"
        )
    out: dict[str, np.ndarray] = {}
    win = padded[starts[:, None] + np.arange(span)[None, :]]  # (n, span)
    base_n = np.stack([(win == b).sum(axis=1) for b in range(4)]).astype(np.float32)  # (4, n)
    valid = base_n.sum(axis=0)
    denom = np.maximum(valid, np.float32(1))
    frac = base_n / denom
    out["gc_content"] = (base_n[1] + base_n[2]) / denom
    logs = np.log2(np.where(frac > 0, frac, np.float32(1)))  # 0 log 0 = 0
    out["sequence_complexity"] = np.abs((frac * logs).sum(axis=0))  # abs: no -0.0
    mats = {}
    for k in sizes:
        dtype = np.dtype(kmer_count_type(k, kmer_window).to_pandas_dtype())
        mats[k] = kmer_counts(kmer_codes(padded, k), starts, max(span - k + 1, 0), k, dtype)
    return out, mats


def gene_features(positions: np.ndarray, gene: Mapping[str, object], length: int) -> dict[str, np.ndarray | list[str]]:
    """Gene-level structure, the same for every row of the gene (``relative_position`` = p / (L - 1))."""
    n = positions.size
    try:
        tx = int(gene["transcript_count"])  # type: ignore[arg-type]
        ex = int(gene["exon_count"])  # type: ignore[arg-type]
    except KeyError as err:
        raise InputError(f"gene record {gene.get('gene_id', '?')} lacks {err}; pass a row of the genes table") from None
    gene_type = gene.get("gene_type") or "unknown"
    return {
        "gene_length": np.full(n, length, dtype=np.int32),
        "gene_transcript_count": np.full(n, tx, dtype=np.int32),
        "gene_exon_count": np.full(n, ex, dtype=np.int32),
        "gene_type": [str(gene_type)] * n,  # type: ignore[dict-item]
        "relative_position": (positions / max(length - 1, 1)).astype(np.float32),
    }


def _matrix_frame(mat: np.ndarray, names: list[str]) -> pl.DataFrame:
    """Frame whose i-th column is row i of ``mat``: zero-copy slices of one Series (3x faster than from_numpy)."""
    n = mat.shape[1]
    if mat.size >= 2**31:  # beyond one polars array's length: one Series per column
        return pl.DataFrame([pl.Series(name, row) for name, row in zip(names, mat)])
    flat = pl.Series("", np.ascontiguousarray(mat).ravel())
    return pl.DataFrame([flat.slice(i * n, n).alias(name) for i, name in enumerate(names)])


def compute_features(
    probs: np.ndarray,
    positions: np.ndarray,
    *,
    seq: str | None,
    seq_offset: int,
    kmer_sizes: Iterable[int] = (),
    kmer_window: int = 500,
    gene: Mapping[str, object],
    feature_sets: Iterable[str] | None = None,
    others: Sequence[np.ndarray] = (),
    base_models: Sequence[str] = (),
) -> pl.DataFrame:
    """All feature columns for ``positions`` (0-based gene-relative, transcription direction).

    One row per position, columns and dtypes exactly ``schema.feature_fields(kmer_sizes, kmer_window,
    feature_sets)`` (``feature_sets=None``: the default selection). ``probs`` is the gene's whole
    (L, 3) track: the context families read all of it.
    ``seq``: transcription-oriented sequence, ``seq[seq_offset + p]`` = gene position ``p``
    (``None`` is allowed without k-mers). ``gene``: a genes-table row (transcript_count, exon_count, gene_type).
    ``others``: a stacked build's other models' whole tracks, in ``base_models[1:]`` order (``base_models[0]``
    is the labelling model, whose track is ``probs``); they add the columns of :mod:`meta_spliceai.dataset.stacking`.
    """
    where = str(gene.get("gene_id", "gene"))
    probs = check_probs(probs, where)
    positions = np.asarray(positions, dtype=np.int64)
    length = probs.shape[0]
    if positions.size and (positions.min() < 0 or positions.max() >= length):
        raise InputError(f"feature positions outside gene {where} (length {length}); positions are 0-based gene-relative")
    sizes = normalize_kmer_sizes(kmer_sizes)
    sets = normalize_feature_sets(feature_sets)
    stacked = tuple(base_models[1:]) if others else ()
    schema = dataset_polars_schema(sizes, kmer_window, sets, stacked)
    cols = score_features(probs, positions)
    cols.update(gene_features(positions, gene, length))
    cols.update(context_features(probs[:, DONOR], probs[:, ACCEPTOR], positions, feature_sets=sets))
    if others:
        if len(others) != len(base_models) - 1:
            raise InputError(f"gene {where}: {len(others) + 1} score tracks for {len(base_models)} base models "
                             f"({', '.join(base_models)}); give one track per model")
        tracks = (probs, *others)
        check_tracks(where, tracks, tuple(base_models), tuple(base_models))
        cols.update(stack_features(tracks, tuple(base_models), positions))
    mats: dict[int, np.ndarray] = {}
    if sizes:
        if seq is None:
            raise InputError(f"k-mer features of gene {where} need its sequence (or use --kmer-sizes 0)")
        seq_cols, mats = sequence_features(
            positions, seq=seq, seq_offset=seq_offset, kmer_sizes=sizes, kmer_window=kmer_window
        )
        cols.update(seq_cols)
    frames = [pl.DataFrame(cols, schema={c: schema[c] for c in schema if c in cols})]
    frames += [_matrix_frame(mats[k], kmer_names(k)) for k in sizes]
    out = pl.concat(frames, how="horizontal") if len(frames) > 1 else frames[0]
    return out
