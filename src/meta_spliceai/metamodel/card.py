"""A trained meta-model as it is used: its card (features, settings, floor, thresholds, base models),
its native model file, and the corrector that turns a gene's base-model tracks into a corrected one.

A gene's corrected track: every position where the floor rule holds gets the meta-model's
probabilities; every other position keeps the labelling base model's scores. The floor rule: one base
model, max(donor, acceptor) >= the card's floor; several (a stacked model), the max over every site model of
its top score (:func:`meta_spliceai.dataset.stacking.stack_top`) >= the floor, so a position where only
another model fires is corrected too. Features come from
:func:`meta_spliceai.dataset.rows.position_features`, the builder's own code, with the settings the
card records. Positions are 0-based gene-body indices in transcription direction.

The card's ``base_models`` lists every base model's identity (base_model, version, digest, precision) in
store order, the first the labelling model (``base_model`` repeats it; a card of one model written before
stacking has only ``base_model``: :func:`card_base_models` reads both).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..config import BuildConfig
from ..dataset.evaluation import ACCEPTOR, DONOR
from ..dataset.rows import gene_sequence, position_features
from ..dataset.schema import SCHEMA_VERSION
from ..dataset.stacking import stack_top
from ..dataset.stores import IDENTITY_KEYS, check_against_card
from ..errors import ConfigMismatchError, InputError
from .models import MetaModel, load_model

log = logging.getLogger(__name__)


CARD = "model_card.json"


#: meta-model class order [neither, donor, acceptor] -> store columns [neither, acceptor, donor]
TO_STORE = [0, 2, 1]


def scored_positions(probs: np.ndarray, floor: float) -> np.ndarray:
    """0-based gene positions the meta-model scores: max(donor, acceptor) >= floor."""
    return np.flatnonzero(np.maximum(probs[:, DONOR], probs[:, ACCEPTOR]) >= floor)


Tracks = np.ndarray | Sequence[np.ndarray]


def as_tracks(tracks: Tracks) -> tuple[np.ndarray, ...]:
    """Per-model tracks as a tuple; one (L, 3) array (a one-model card's track) is a one-element tuple."""
    if isinstance(tracks, np.ndarray) and tracks.ndim == 2:
        return (tracks,)
    return tuple(tracks)


@dataclass
class Corrector:
    """Computes corrected tracks of genes: features by the builder's code, then one or more models.

    ``tracks`` arguments: a sequence of per-base-model (L, C_i) arrays in the card's ``base_models`` order
    (one (L, 3) array is accepted for a one-model card). ``sequence``: ``(seq, offset)`` as
    :meth:`sequence` returns (transcription-oriented, ``seq[offset + p]`` = gene position ``p``), which
    then replaces the genome's for the k-mer and sequence features (variants: the alternate allele's).
    """

    cfg: BuildConfig
    floor: float
    genome: object = None  # genome.Genome, needed with k-mers
    contig_map: Mapping[str, str] | None = None

    def sequence(self, gene: Mapping[str, object]) -> tuple[str | None, int]:
        """The gene's reference sequence as the features read it: (seq, index of position 0); (None, 0)
        when the model has no sequence features."""
        if not self.cfg.kmer_sizes:
            return None, 0
        if self.genome is None:
            raise InputError("the model uses k-mer features: pass the genome with --fasta")
        chrom = (self.contig_map or {}).get(str(gene["chrom"]))
        if chrom is None:
            raise InputError(f"gene {gene['gene_id']} lies on contig {gene['chrom']} absent from the FASTA")
        return gene_sequence(self.genome, chrom, gene, self.cfg)  # type: ignore[arg-type]

    def features(self, gene: Mapping[str, object], tracks: Tracks, positions: np.ndarray, *,
                 sequence: tuple[str | None, int] | None = None) -> pl.DataFrame:
        """Feature columns (the build's schema order) at ``positions`` (0-based gene-body indices)."""
        t = as_tracks(tracks)
        if len(t) != len(self.cfg.base_models):
            raise InputError(f"gene {gene.get('gene_id')}: {len(t)} score track(s) given, the model has "
                             f"{len(self.cfg.base_models)} base model(s) ({', '.join(self.cfg.base_models)}); give one "
                             "per model, in the card's order")
        seq, offset = sequence if sequence is not None else self.sequence(gene)
        return position_features(gene, t[0], positions, seq, offset, self.cfg, t[1:])

    def scored(self, tracks: Tracks) -> np.ndarray:
        """0-based positions the meta-model scores (the floor rule of the module docstring)."""
        t = as_tracks(tracks)
        if len(t) == 1:
            return scored_positions(t[0], self.floor)
        return np.flatnonzero(stack_top(t, self.cfg.base_models) >= self.floor)

    def correct(self, probs: np.ndarray, positions: np.ndarray, class_probs: np.ndarray) -> np.ndarray:
        """The gene's (L, 3) store-order track with ``class_probs`` ([neither, donor, acceptor]) at ``positions``."""
        out = probs.copy()
        out[positions] = class_probs[:, TO_STORE]
        return out


@dataclass
class LoadedModel:
    card: dict
    model: MetaModel
    cfg: BuildConfig
    folder: Path


def load_card(path: str | os.PathLike[str]) -> LoadedModel:
    """A trained model from its ``--out-dir`` (or its model_card.json)."""
    from .trainset import build_config

    card_path = card_file(path)
    card = read_card(card_path)
    if int(card.get("schema_version", -1)) != SCHEMA_VERSION:
        raise ConfigMismatchError(f"model card {card_path} is for dataset schema version {card.get('schema_version')}, "
                                  f"this meta-spliceai computes version {SCHEMA_VERSION}; retrain the model")
    cfg = build_config(card["feature_settings"])
    model = load_model(card["model"]["kind"], card_path.parent / card["model"]["file"], list(card["features"]),
                       {k: list(v) for k, v in card["categories"].items()}, card["model"].get("prior"),
                       card["model"].get("file_digest"))
    return LoadedModel(card, model, cfg, card_path.parent)


#: what a card must hold for ``apply`` (written by ``train``)
CARD_KEYS = ("model", "features", "categories", "feature_settings", "floor", "thresholds", "base_model", "card_digest")


def card_file(path: str | os.PathLike[str]) -> Path:
    """The model card of a model folder (or the card itself); one line when there is none.

    ``train`` writes the card last, so a folder without one is a run that did not finish."""
    p = Path(path)
    card_path = p / CARD if p.is_dir() else p
    if p.is_dir() and not card_path.is_file():
        if any(p.glob("model.*")) or (p / "metrics.json").is_file():
            raise InputError(f"model folder {p} is incomplete: it has no {CARD} (train writes it last, so the run "
                             "did not finish); re-run meta-spliceai train into it")
        raise InputError(f"no model card at {card_path}: give the --out-dir of meta-spliceai train")
    if not card_path.is_file():
        raise InputError(f"no model card at {card_path}: give the --out-dir of meta-spliceai train")
    return card_path


def read_card(card_path: Path) -> dict:
    """A model card's JSON; a file that is not one (damaged, or another file given as MODEL) is one line."""
    fix = "give the --out-dir of meta-spliceai train (or re-run train to write the card again)"
    try:
        card = json.loads(card_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{card_path} is not a model card (not text: a binary file?); {fix}") from None
    except json.JSONDecodeError as err:
        raise InputError(f"model card {card_path} is not valid JSON ({err.msg} at line {err.lineno}, column "
                         f"{err.colno}: damaged or truncated); {fix}") from None
    missing = [k for k in CARD_KEYS if not isinstance(card, dict) or k not in card]
    if missing or not isinstance(card.get("model"), dict) or not {"kind", "file"} <= set(card["model"]):
        raise InputError(f"{card_path} is not a meta-spliceai model card (lacks {', '.join(missing) or 'model.file'}); "
                         f"{fix}")
    return card


def card_base_models(card: Mapping[str, object]) -> list[dict[str, str]]:
    """Every base model's identity the card records, in store order (the labelling model first); an old
    one-model card's ``base_model`` as a one-element list."""
    models = card.get("base_models") or [card.get("base_model") or {}]
    return [{k: str(m[k]) for k in IDENTITY_KEYS if k in m} for m in models]  # type: ignore[union-attr]


def check_stores(card: Mapping[str, object], identities: Sequence[Mapping[str, str] | None],
                 paths: Sequence[Path]) -> None:
    """Refuse prediction stores that are not the card's base models, in its order (count, order, identity);
    an empty store (``None``: to be predicted) is checked on its model name alone."""
    want = card_base_models(card)
    have = []
    for k, ident in enumerate(identities):
        if ident is None:  # an empty store, to be predicted: only its model is known (the card's at that place)
            have.append({"base_model": want[k]["base_model"]} if k < len(want) else {"base_model": "?"})
        else:
            have.append({key: str(ident[key]) for key in IDENTITY_KEYS if key in ident})
    check_against_card(want, have, paths)


def check_store(card: dict, identity: dict[str, str] | None, store_path: Path) -> None:
    """Refuse a prediction store made by another base model than the one the model was trained on."""
    want = card.get("base_model") or {}
    if identity is None:
        return
    diff = [f"{k} {identity.get(k)!r} vs {v!r}" for k, v in want.items() if identity.get(k) != v]
    if diff:
        raise ConfigMismatchError(f"prediction store {store_path} was made by another base model than the one the "
                                  f"meta-model was trained on ({'; '.join(diff)}); predict with the card's base model")


def corrected_track(loaded: LoadedModel, corr: Corrector, gene: Mapping[str, object], tracks: Tracks, *,
                    sequence: tuple[str | None, int] | None = None) -> np.ndarray:
    """The corrected (L, 3) track of one gene from its per-model tracks (card order; see :class:`Corrector`)."""
    from .trainset import frame_matrix

    t = as_tracks(tracks)
    positions = corr.scored(t)
    feats = corr.features(gene, t, positions, sequence=sequence)
    X = frame_matrix(feats, loaded.model.features, loaded.model.categories)
    return corr.correct(t[0], positions, loaded.model.predict(X))
