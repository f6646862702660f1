"""The prediction stores of a build, in order: one per base model, the first (the labelling model) deciding
TP/FP/FN and the TN sampling (:mod:`meta_spliceai.dataset.stacking`).

Which model each store is: given (``--base-models``), else read from the store's own identity; a store
whose identity names another model than the one given is refused, as is a model given twice. The
command-line side: ``--predictions STORE [STORE ...]``, ``--base-models a,b,...`` and ``--weights
MODEL=DIR`` (:func:`weights_map`). Positions are 0-based gene-body indices in transcription direction.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..basemodel.store import PredictionStore
from ..config import BASE_MODELS, PACKAGED_WEIGHTS
from ..errors import ConfigMismatchError, InputError
from .schema import is_site_model, normalize_stack_models
from .stacking import check_tracks

#: identity fields a model card records for each base model
IDENTITY_KEYS = ("base_model", "version", "digest", "precision")

PathLike = str | os.PathLike[str]


def as_paths(predictions: PathLike | Sequence[PathLike] | None) -> tuple[Path, ...]:
    """``--predictions`` as a tuple of paths (one path, a list of them, or none)."""
    if predictions is None:
        return ()
    if isinstance(predictions, (str, os.PathLike)):
        return (Path(predictions),)
    return tuple(Path(p) for p in predictions)


def weights_map(weights: PathLike | Mapping[str, PathLike] | Sequence[str] | None,
                models: Sequence[str]) -> dict[str, Path]:
    """Model -> weights folder: ``{model: DIR}``, ``["MODEL=DIR", ...]`` (the CLI's repeated ``--weights``), or one
    DIR for a single model (or for the labelling model of a stack, as before stacking)."""
    if weights is None:
        return {}
    if isinstance(weights, Mapping):
        items = {str(k): Path(v) for k, v in weights.items()}
    elif isinstance(weights, (str, os.PathLike)):
        items = {"": Path(weights)}
    else:
        items = {}
        for w in weights:
            name, eq, path = str(w).partition("=")
            items[name if eq and name in BASE_MODELS else ""] = Path(path if eq and name in BASE_MODELS else str(w))
    if "" in items:
        plain = items.pop("")
        if len(models) > 1 and not items:
            needy = [m for m in models if m not in PACKAGED_WEIGHTS]
            if len(needy) == 1:
                items[needy[0]] = plain
            else:
                raise InputError(f"--weights {plain}: which model's? this build has {', '.join(models)}; give "
                                 "--weights MODEL=DIR for each model that needs weights")
        else:
            items.setdefault(models[0], plain)
    unknown = [m for m in items if m not in models]
    if unknown:
        raise InputError(f"--weights for {unknown[0]}, which is not one of the base models ({', '.join(models)})")
    return items


@dataclass(frozen=True)
class StoreSet:
    """The stores of the base models, in order (``names[0]`` the labelling model)."""

    names: tuple[str, ...]
    paths: tuple[Path, ...]

    @property
    def stores(self) -> tuple[PredictionStore, ...]:
        return tuple(PredictionStore(p) for p in self.paths)

    @property
    def stacked(self) -> bool:
        return len(self.names) > 1

    def identities(self) -> list[dict[str, str]]:
        """Each store's identity (IDENTITY_KEYS) in order; a store without predictions is an error."""
        out = []
        for name, s in zip(self.names, self.stores):
            ident = s.stored_identity()
            if ident is None:
                raise InputError(f"prediction store {s.path} ({name}) holds no predictions; predict {name} first")
            out.append({k: ident[k] for k in IDENTITY_KEYS})
        return out

    def read(self, gene_id: str, stores: Sequence[PredictionStore] | None = None) -> tuple[np.ndarray, ...]:
        """Every model's (L, C_i) track of a gene, checked: same length in every store, each model's columns."""
        stores = stores or self.stores
        tracks = tuple(s.read(gene_id) for s in stores)
        check_tracks(gene_id, tracks, self.names, self.paths)
        return tracks


def resolve(predictions: PathLike | Sequence[PathLike] | None, base_models: Sequence[str] | None, *,
            default_root: Path, base_model: str) -> StoreSet:
    """The build's stores and their models.

    No ``predictions``: the stores of ``base_models`` (default ``[base_model]``) under ``default_root`` (one
    model: ``default_root`` itself, as before; several: ``default_root/<model>``). ``predictions`` without
    ``base_models``: one store is ``base_model``'s; several are named by their own identities.
    """
    paths = as_paths(predictions)
    names = tuple(str(m) for m in base_models) if base_models else ()
    if not paths:
        names = names or (base_model,)
        paths = (default_root,) if len(names) == 1 else tuple(default_root / m for m in names)
    elif not names:
        if len(paths) == 1:
            names = (base_model,)
        else:
            found = []
            for p in paths:
                ident = PredictionStore(p).stored_identity()
                if ident is None:
                    raise InputError(f"prediction store {p} holds no predictions, so its base model is unknown: give "
                                     "--base-models (one per store, in order) with --run-workflow to compute it")
                found.append(ident["base_model"])
            names = tuple(found)
    if len(names) != len(paths):
        raise InputError(f"--base-models names {len(names)} model(s) ({', '.join(names)}) but --predictions gives "
                         f"{len(paths)} store(s); give one store per model, in the same order")
    normalize_stack_models(names[1:], names[0])
    if names[0] not in BASE_MODELS:
        raise InputError(f"unknown base model {names[0]!r}; choose from {', '.join(BASE_MODELS)}")
    if not is_site_model(names[0]):
        raise InputError(f"the first store decides TP/FP/FN from donor/acceptor scores, which {names[0]} does not "
                         "give; put a SpliceAI-like model's store first")
    for n, p in zip(names, paths):
        ident = PredictionStore(p).stored_identity() if Path(p).is_dir() else None
        if ident is not None and ident.get("base_model") != n:
            raise ConfigMismatchError(f"prediction store {p} holds {ident.get('base_model')} predictions but is given "
                                      f"as {n}'s; fix the order of --predictions / --base-models")
    return StoreSet(names, paths)


def check_against_card(card_models: Sequence[Mapping[str, str]], identities: Sequence[Mapping[str, str]],
                       paths: Sequence[Path]) -> None:
    """Refuse stores that are not the card's base models: other count, order or identity (one line)."""
    want = [m.get("base_model") for m in card_models]
    have = [i.get("base_model") for i in identities]
    if len(want) != len(have):
        raise ConfigMismatchError(f"the meta-model was trained on {len(want)} base model(s) ({', '.join(map(str, want))}) "
                                  f"but {len(have)} prediction store(s) are given ({', '.join(map(str, have))}); give "
                                  "--predictions with one store per model, in the card's order")
    if want != have and sorted(map(str, want)) == sorted(map(str, have)):
        raise ConfigMismatchError(f"prediction stores are for {', '.join(map(str, have))} but the meta-model was trained "
                                  f"on {', '.join(map(str, want))}, in that order; reorder --predictions")
    for w, i, p in zip(card_models, identities, paths):
        diff = [f"{k} {i.get(k)!r} vs {v!r}" for k, v in w.items() if k in IDENTITY_KEYS and k in i and i.get(k) != v]
        if diff:
            raise ConfigMismatchError(f"prediction store {p} was made by another base model than the one the "
                                      f"meta-model was trained on ({'; '.join(diff)}); predict with the card's base model")
