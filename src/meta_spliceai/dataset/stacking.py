"""Stacked builds: several base models' prediction stores read side by side, one column family per model.

The first store (the *labelling* model, ``BuildConfig.base_model``) decides everything about the rows:
TP/FP/FN come from its scores and the annotation, and the true-negative strata are its own, except
that a "hard" TN is one where **any** site model's top score reaches ``--hard-prob`` (:func:`stack_top`;
per-tissue models such as Pangolin add features, not positions), so positions where only another model fires are rows too (and the meta-model, which scores every position
above the floor by any site model, has seen them in training). The other stores add features at the same
positions (:func:`stack_features`; columns declared in :func:`meta_spliceai.dataset.schema.stack_fields`).

Every store must hold every gene with the same length and the column count its model declares
(``config.BASE_MODEL_OUTPUTS``); :func:`check_tracks` says which store and gene disagree.
Positions are 0-based gene-body indices in transcription direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import BASE_MODEL_OUTPUTS
from ..errors import InputError
from .context import EPS, PEAK_FLOOR, context_features
from .evaluation import ACCEPTOR, DONOR, NEITHER
from .schema import STACK_SITE_SUFFIXES, STACK_STATS, STACK_TOP, is_site_model

_TYPES = (("donor", DONOR), ("acceptor", ACCEPTOR))
_OFFSETS = (-2, -1, 1, 2)
_TAGS = ("m2", "m1", "p1", "p2")


def model_top(track: np.ndarray, name: str) -> np.ndarray:
    """(L,) top score of one model: max(donor, acceptor) of a site model, max over tissues of P(splice) else."""
    if is_site_model(name):
        return np.maximum(track[:, DONOR], track[:, ACCEPTOR])
    cols = [i for i, c in enumerate(BASE_MODEL_OUTPUTS[name]) if c.endswith("_p")]
    return track[:, cols].max(axis=1)


def stack_top(tracks: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """(L,) max over the site models (donor/acceptor columns) of their top score: the value the hard-TN rule and
    the floor apply to. A per-tissue model (Pangolin) adds features, not positions: its P(splice) is >= 0.01 at
    every nucleotide of the shared bundles, so a floor on it would put whole gene bodies above any low floor.
    The labelling model (``tracks[0]``) is always a site model."""
    top = model_top(tracks[0], names[0])
    for t, n in zip(tracks[1:], names[1:]):
        if is_site_model(n):
            top = np.maximum(top, model_top(t, n))
    return top


def check_tracks(gene_id: str, tracks: Sequence[np.ndarray], names: Sequence[str], where: Sequence[object]) -> None:
    """Every model's track of a gene has the labelling track's length and its model's column count."""
    length = tracks[0].shape[0]
    for t, n, w in zip(tracks, names, where):
        want = len(BASE_MODEL_OUTPUTS.get(n, ("neither", "acceptor", "donor")))
        if t.ndim != 2 or t.shape[1] != want:
            raise InputError(f"prediction store {w} holds {t.shape[1] if t.ndim == 2 else '?'} columns for gene "
                             f"{gene_id}, but base model {n} has {want}; give that model's store")
        if t.shape[0] != length:
            raise InputError(f"prediction store {w} holds {t.shape[0]:,} scores for gene {gene_id} but the first "
                             f"store {where[0]} holds {length:,}: the stores were made with other annotations; "
                             "predict every model over the same annotation")


def _window(track: np.ndarray, positions: np.ndarray) -> dict[str, np.ndarray]:
    """Track values at positions -2, -1, +1, +2 (0 past the gene ends)."""
    n = track.size
    out = {}
    for tag, off in zip(_TAGS, _OFFSETS):
        idx = positions + off
        out[tag] = np.where((idx >= 0) & (idx < n), track[np.clip(idx, 0, n - 1)], np.float32(0))
    return out


def _logodds(s: np.ndarray) -> np.ndarray:
    return (np.log(s + EPS) - np.log(np.float32(1) - s + EPS)).astype(np.float32)


def _site_family(name: str, track: np.ndarray, label: np.ndarray, positions: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {f"{name}_{t}_score": track[positions, c]
                                  for t, c in (*_TYPES, ("neither", NEITHER))}
    fam: dict[str, dict[str, np.ndarray]] = {}
    for t, c in _TYPES:
        s, s_l = track[positions, c], label[positions, c]
        nb = _window(np.ascontiguousarray(track[:, c]), positions)
        nb_l = _window(np.ascontiguousarray(label[:, c]), positions)
        for tag in _TAGS:
            out[f"{name}_{t}_score_{tag}"] = nb[tag]
        wmax = np.maximum.reduce([s, *nb.values()])
        wmax_l = np.maximum.reduce([s_l, *nb_l.values()])
        lo = _logodds(s)
        fam[t] = {
            "window_max": wmax, "logodds": lo,
            "is_local_peak": ((s > nb["m1"]) & (s > nb["p1"]) & (s > PEAK_FLOOR)).astype(np.int8),
            "diff": s - s_l, "logodds_diff": lo - _logodds(s_l), "window_max_diff": wmax - wmax_l,
        }
    for t, _ in _TYPES:
        out.update({f"{name}_{t}_{k}": fam[t][k] for k in STACK_SITE_SUFFIXES})
    ctx = context_features(track[:, DONOR], track[:, ACCEPTOR], positions,
                           feature_sets=("base", "neighbourhood", "gene_peaks"))
    out.update({f"{name}_{k}": v for k, v in ctx.items()})
    return out


def _tissue_family(name: str, track: np.ndarray, label: np.ndarray, positions: np.ndarray) -> dict[str, np.ndarray]:
    cols = BASE_MODEL_OUTPUTS[name]
    out: dict[str, np.ndarray] = {f"{name}_{c}": track[positions, i] for i, c in enumerate(cols)}
    for i, c in enumerate(cols):
        nb = _window(np.ascontiguousarray(track[:, i]), positions)
        out[f"{name}_{c}_window_max"] = np.maximum.reduce([track[positions, i], *nb.values()])
    for kind in ("p", "usage"):
        idx = [i for i, c in enumerate(cols) if c.endswith(f"_{kind}")]
        top = np.ascontiguousarray(track[:, idx].max(axis=1))
        out[f"{name}_{kind}_max"] = top[positions]
        for tag, v in _window(top, positions).items():
            out[f"{name}_{kind}_max_{tag}"] = v
    out[f"{name}_p_max_diff"] = out[f"{name}_p_max"] - np.maximum(label[positions, DONOR], label[positions, ACCEPTOR])
    return out


def stack_features(tracks: Sequence[np.ndarray], names: Sequence[str], positions: np.ndarray) -> dict[str, np.ndarray]:
    """The stacked columns (schema order) at ``positions``: each model after the first, then ``stack_``.

    ``tracks[0]`` is the labelling model's (L, 3) track, ``tracks[i]`` model ``names[i]``'s (L, C_i) one.
    Empty for one model.
    """
    if len(tracks) < 2:
        return {}
    label = tracks[0]
    out: dict[str, np.ndarray] = {}
    for t, n in zip(tracks[1:], names[1:]):
        out.update((_site_family if is_site_model(n) else _tissue_family)(n, t, label, positions))
    sites = [t for t, n in zip(tracks, names) if is_site_model(n)]
    for t, c in _TYPES:
        s = np.stack([tr[positions, c] for tr in sites])  # (models, n)
        stats = {"mean": s.mean(axis=0), "max": s.max(axis=0), "min": s.min(axis=0), "std": s.std(axis=0),
                 "logodds_mean": _logodds(s).mean(axis=0), "n50": (s >= 0.5).sum(axis=0).astype(np.int8)}
        out.update({f"stack_{t}_{k}": stats[k].astype(np.int8 if k == "n50" else np.float32) for k in STACK_STATS})
    out[STACK_TOP] = stack_top(tracks, names)[positions]
    return out


def mean_track(tracks: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """(L, 3) plain mean of the site models' tracks (the untrained stack the comparison reports)."""
    sites = [t for t, n in zip(tracks, names) if is_site_model(n)]
    return (np.sum(sites, axis=0) / np.float32(len(sites))).astype(np.float32)
