"""Meta-model kinds, their parameters, fitting from streamed row batches, prediction and native files.

Three classes, in this order everywhere: ``neither`` (0), ``donor`` (1), ``acceptor`` (2).
Inputs are ``float32`` matrices of the model card's feature columns in order; ``gene_type`` (the one
categorical feature) is the index of its value in the card's category list (unseen values: NaN,
i.e. missing). Models are saved in their library's own format only: XGBoost UBJSON, LightGBM text,
and for ``sgd_logistic`` a JSON of coefficients and scaling (no pickle, nothing that breaks on an
upgrade).
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from ..errors import InputError
from ..extras import require
from ..storage import checksum, write_bytes_atomic

log = logging.getLogger(__name__)

ModelKind = Literal["xgboost", "lightgbm", "sgd_logistic"]
MODEL_KINDS: tuple[str, ...] = get_args(ModelKind)
#: where XGBoost's boosting starts: ``linear``, a multinomial logistic regression on the base models' log scores
#: at the position (fitted on the training rows, the trees then learn corrections to it); ``none``, a constant
PriorKind = Literal["linear", "none"]
PRIOR_KINDS: tuple[str, ...] = get_args(PriorKind)
#: most training rows the linear prior is fitted on (a uniform sample above it: bounded memory at any scale)
PRIOR_MAX_ROWS = 2_000_000
CLASSES: tuple[str, ...] = ("neither", "donor", "acceptor")
CATEGORICAL_FEATURES: tuple[str, ...] = ("gene_type",)

#: default parameters of each kind; a spec may override these keys and no others
DEFAULT_PARAMS: dict[str, dict[str, object]] = {
    "xgboost": {"n_estimators": 400, "learning_rate": 0.1, "max_depth": 6, "min_child_weight": 1.0,
                "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "reg_alpha": 0.0, "gamma": 0.0,
                "max_bin": 256, "early_stopping_rounds": 30, "nthread": 0, "prior": "linear"},
    "lightgbm": {"n_estimators": 400, "learning_rate": 0.05, "num_leaves": 63, "max_depth": -1,
                 "min_child_samples": 20, "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0,
                 "reg_alpha": 0.0, "early_stopping_rounds": 30, "nthread": 0},
    "sgd_logistic": {"alpha": 1e-5, "epochs": 5, "penalty": "l2", "l1_ratio": 0.15},
}

#: the optional modules (extra ``[train]``) that load and apply a model of each kind
MODULES_OF_KIND: dict[str, tuple[str, ...]] = {"xgboost": ("xgboost",), "lightgbm": ("lightgbm",), "sgd_logistic": ()}


def training_modules(kind: str) -> tuple[str, ...]:
    """What fitting a model of ``kind`` imports: its library and scikit-learn (calibration, sgd_logistic)."""
    return (*MODULES_OF_KIND.get(kind, ()), "sklearn")


#: a batch of training rows: features (n, f) float32, class codes (n,), sample weights (n,)
Batch = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ModelSpec:
    kind: ModelKind
    params: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"model": self.kind, "params": dict(self.params)}


def parse_model_spec(text: str | None) -> ModelSpec:
    """``xgboost`` / ``lightgbm`` / ``sgd_logistic``, or JSON (string or file) ``{"model": ..., "params": {...}}``."""
    text = (text or "xgboost").strip()
    if text in MODEL_KINDS:
        return ModelSpec(text, dict(DEFAULT_PARAMS[text]))  # type: ignore[arg-type]
    raw = text
    if not text.startswith("{"):
        from ..storage import is_input_file, read_once

        if not is_input_file(text):  # a file, a pipe (<(…)) or - (stdin): read once
            raise InputError(f"--model {text!r}: not a model ({', '.join(MODEL_KINDS)}), a JSON spec or a JSON file")
        raw = read_once(text).decode("utf-8-sig", errors="replace")
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InputError(f"--model JSON is malformed ({err.msg} at line {err.lineno}); "
                         'write {"model": "xgboost", "params": {"max_depth": 6}}') from None
    if not isinstance(spec, dict):
        raise InputError('--model JSON must be an object like {"model": "xgboost", "params": {}}')
    extra = sorted(set(spec) - {"model", "params"})
    if extra:
        raise InputError(f"--model JSON has unknown key(s) {', '.join(extra)}; valid keys: model, params")
    kind = spec.get("model", "xgboost")
    if kind not in MODEL_KINDS:
        raise InputError(f"--model JSON names unknown model {kind!r}; valid models: {', '.join(MODEL_KINDS)}")
    params = spec.get("params") or {}
    if not isinstance(params, dict):
        raise InputError("--model JSON params must be an object of parameter: value")
    bad = sorted(set(params) - set(DEFAULT_PARAMS[kind]))
    if bad:
        raise InputError(f"--model JSON: unknown {kind} parameter(s) {', '.join(bad)}; "
                         f"valid ones: {', '.join(DEFAULT_PARAMS[kind])}")
    return ModelSpec(kind, {**DEFAULT_PARAMS[kind], **params})


# --------------------------------------------------------------------------- the fitted model


@dataclass
class MetaModel:
    """A fitted meta-model: predicts (n, 3) class probabilities [neither, donor, acceptor]."""

    kind: ModelKind
    features: list[str]
    categories: dict[str, list[str]]
    native: object  # xgboost.Booster | lightgbm.Booster | dict (sgd coefficients)
    best_iteration: int | None = None
    matrix: str | None = None  # how XGBoost held the training rows: "in-memory" or "external"
    #: how the fit went (XGBoost): seconds making the matrix, boosting rounds run, seconds per round, rows,
    #: features, and whether the matrix was external (1) or in memory (0)
    fit_stats: dict[str, float] = field(default_factory=dict)
    #: XGBoost's starting margins (``prior`` "linear"): {"columns", "coef" (3 x k), "intercept" (3)} over the log
    #: of those feature columns; None: boosting started from a constant
    prior: dict | None = None

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if X.shape[0] == 0:
            return np.zeros((0, 3), dtype=np.float32)
        if self.kind == "xgboost":
            # in place: no DMatrix (its feature-name checks cost more than a few rows' trees); the booster's own
            # feature types mark the categorical columns; the same numbers as DMatrix + predict
            margin = prior_margin(self.prior, X, self.features) if self.prior else None
            return np.asarray(self.native.inplace_predict(X, base_margin=margin),  # type: ignore[attr-defined]
                              dtype=np.float32).reshape(-1, 3)
        if self.kind == "lightgbm":
            return np.asarray(self.native.predict(X), dtype=np.float32).reshape(-1, 3)  # type: ignore[attr-defined]
        return _sgd_predict(self.native, X, self.features, self.categories)  # type: ignore[arg-type]

    def save(self, folder: Path) -> str:
        """Write the native model file into ``folder`` (temporary name, then renamed); returns its name."""
        if self.kind == "xgboost":
            name, data = "model.ubj", bytes(self.native.save_raw(raw_format="ubj"))  # type: ignore[attr-defined]
        elif self.kind == "lightgbm":
            name, data = "model.txt", self.native.model_to_string().encode()  # type: ignore[attr-defined]
        else:
            name, data = "model.json", json.dumps(self.native).encode()
        write_bytes_atomic(folder / name, data)
        return name

    def importances(self) -> dict[str, float]:
        """Feature importance: total gain (trees) or mean |coefficient| on standardised inputs (sgd)."""
        if self.kind == "xgboost":
            gain = self.native.get_score(importance_type="total_gain")  # type: ignore[attr-defined]
            return {f: float(gain.get(f, 0.0)) for f in self.features}
        if self.kind == "lightgbm":
            gain = self.native.feature_importance(importance_type="gain")  # type: ignore[attr-defined]
            return {f: float(g) for f, g in zip(self.features, gain)}
        coef = np.abs(np.asarray(self.native["coef"]))  # type: ignore[index]
        names = _sgd_columns(self.features, self.categories)
        per = dict(zip(names, coef.mean(axis=0)))
        return {f: float(sum(v for n, v in per.items() if n == f or n.startswith(f + "="))) for f in self.features}


def load_model(kind: str, path: Path, features: list[str], categories: dict[str, list[str]],
               prior: dict | None = None, digest: str | None = None) -> MetaModel:
    """Read a native model file written by :meth:`MetaModel.save`; a missing, truncated or foreign file is
    one :class:`InputError` naming it (the fix: re-run ``train``). ``digest``: the card's checksum of the file
    (:func:`..storage.checksum`), checked first (a damaged file can crash XGBoost's own reader)."""
    if kind not in MODEL_KINDS:
        raise InputError(f"model card names unknown model kind {kind!r}; valid: {', '.join(MODEL_KINDS)}")
    require(MODULES_OF_KIND[kind], f"a {kind} meta-model")
    if not path.is_file():
        raise InputError(f"model file {path} named by the model card is missing: the model folder {path.parent} is "
                         "incomplete; re-run meta-spliceai train into it")
    if digest is not None and checksum(path) != digest:
        raise InputError(f"model file {path} is truncated or damaged (its checksum is not the model card's); re-run "
                         "meta-spliceai train to write it again")
    try:
        if kind == "xgboost":
            import xgboost as xgb

            booster = xgb.Booster()
            booster.load_model(bytearray(path.read_bytes()))
            if prior is not None:
                check_prior(prior, features, path)
            return MetaModel("xgboost", features, categories, booster, prior=prior)
        if kind == "lightgbm":
            import lightgbm as lgb

            text = path.read_text()
            lines = text.rstrip("\n").rsplit("\n", 1)
            if not (text.startswith("tree\n") and "\nend of trees" in text and lines[-1].startswith("pandas_categorical:")):
                raise ValueError("not a whole LightGBM model text")  # LightGBM aborts the process on some such files
            return MetaModel("lightgbm", features, categories, lgb.Booster(model_str=text))
        native = json.loads(path.read_text())
        if not isinstance(native, dict) or not {"coef", "intercept", "mean", "scale"} <= set(native):
            raise ValueError("not the coefficients of an sgd_logistic model")
        return MetaModel("sgd_logistic", features, categories, native)
    except ImportError:
        raise
    except Exception as err:  # noqa: BLE001 - XGBoostError, LightGBMError, JSON and decoding errors: a damaged file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        said = re.sub(r"^\[[\d:]+\] \S+: ", "", first)[:200]  # XGBoost: "[time] file.cc:line: message"
        raise InputError(f"model file {path} is truncated or damaged ({kind}: {said}); re-run meta-spliceai train "
                         f"to write it again") from None


# --------------------------------------------------------------------------- the linear prior


def prior_columns(features: Sequence[str]) -> list[str]:
    """The feature columns the linear prior reads: every base model's class scores at the position (the
    labelling model's ``neither/acceptor/donor_score``, each stacked site model's ``{model}_{class}_score``)
    and each tissue model's max P(splice) (``{model}_p_max``)."""
    from ..config import BASE_MODEL_OUTPUTS
    from ..dataset.schema import is_site_model

    want = ["neither_score", "acceptor_score", "donor_score"]
    for m in BASE_MODEL_OUTPUTS:
        want += ([f"{m}_{c}_score" for c in ("neither", "acceptor", "donor")] if is_site_model(m) else [f"{m}_p_max"])
    have = set(features)
    return [c for c in want if c in have]


def log_features(X: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(X, dtype=np.float64), 0.0, None) + 1e-10)


def prior_margin(prior: dict, X: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """(n, 3) starting margins [neither, donor, acceptor] of rows ``X`` (the model's feature order)."""
    idx = [list(features).index(c) for c in prior["columns"]]
    z = log_features(X[:, idx]) @ np.asarray(prior["coef"], dtype=np.float64).T + np.asarray(prior["intercept"])
    return z.astype(np.float32)


def check_prior(prior: object, features: Sequence[str], where: Path) -> None:
    """A prior read from a card: its columns among the features, a 3 x k coefficient matrix."""
    ok = (isinstance(prior, dict) and isinstance(prior.get("columns"), list) and set(prior["columns"]) <= set(features)
          and np.asarray(prior.get("coef", [])).shape == (3, len(prior["columns"]))
          and np.asarray(prior.get("intercept", [])).shape == (3,))
    if not ok:
        raise InputError(f"the model card of {where.parent} has a damaged prior (the linear start of the boosting); "
                         "re-run meta-spliceai train")


def fit_prior(features: list[str], train_batches: Callable[[], Iterator[Batch]], n_rows: int, seed: int) -> dict | None:
    """The linear prior: multinomial logistic regression of the class on the log base scores of the training rows
    (their sampling weights; a uniform sample of at most :data:`PRIOR_MAX_ROWS`). None without score columns or
    with a class absent."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    cols = prior_columns(features)
    if not cols:
        return None
    idx = [features.index(c) for c in cols]
    keep = min(1.0, PRIOR_MAX_ROWS / max(n_rows, 1))
    rng = np.random.default_rng(seed)
    Xs, ys, ws = [], [], []
    for X, y, w in train_batches():
        sel = rng.random(len(y)) < keep if keep < 1 else slice(None)
        Xs.append(log_features(X[sel][:, idx]))
        ys.append(y[sel])
        ws.append(w[sel])
    if not Xs:
        return None
    X, y, w = np.concatenate(Xs), np.concatenate(ys), np.concatenate(ws)
    if np.unique(y).size < 3:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lr = LogisticRegression(max_iter=1000, C=1.0).fit(X, y, sample_weight=w)
    return {"columns": cols, "coef": lr.coef_.tolist(), "intercept": lr.intercept_.tolist()}


def feature_types(features: list[str]) -> list[str]:
    return ["c" if f in CATEGORICAL_FEATURES else "q" for f in features]


# --------------------------------------------------------------------------- fitting


def fit(
    spec: ModelSpec,
    features: list[str],
    categories: dict[str, list[str]],
    train_batches: Callable[[], Iterator[Batch]],
    valid: Batch | None,
    *,
    n_train_rows: int,
    max_memory: int,
    seed: int,
    cache_dir: Path,
    progress: bool = False,
) -> MetaModel:
    """Fit a model from a re-iterable source of row batches (never all rows in one frame).

    ``valid`` (rows of validation genes) drives early stopping. XGBoost reads the batches through a
    ``DataIter`` into a ``QuantileDMatrix``, or an ``ExtMemQuantileDMatrix`` (cache in ``cache_dir``)
    when the quantised matrix would exceed ``max_memory`` bytes; ``sgd_logistic`` uses
    ``partial_fit``; LightGBM needs the rows in memory and refuses above ``max_memory``. ``progress``:
    XGBoost's boosting rounds as a progress task (round, seconds per round, validation loss).
    """
    if spec.kind == "xgboost":
        return _fit_xgboost(spec, features, categories, train_batches, valid, n_train_rows, max_memory, seed, cache_dir,
                            progress)
    if spec.kind == "lightgbm":
        return _fit_lightgbm(spec, features, categories, train_batches, valid, n_train_rows, max_memory, seed)
    return _fit_sgd(spec, features, categories, train_batches, seed)


def _fit_xgboost(spec, features, categories, train_batches, valid, n_rows, max_memory, seed, cache_dir,  # noqa: ANN001
                 progress: bool = False) -> MetaModel:
    import xgboost as xgb

    from ..progress import count_progress

    p = spec.params
    ft = feature_types(features)
    kind = str(p.get("prior", "none"))
    if kind not in PRIOR_KINDS:
        raise InputError(f"--model JSON: xgboost parameter prior must be one of {', '.join(PRIOR_KINDS)}, got {kind!r}")
    prior = fit_prior(features, train_batches, n_rows, seed) if kind == "linear" else None
    if kind == "linear" and prior is None:
        log.info("no linear prior (no base score columns, or a class absent): boosting from a constant")

    def margin(X: np.ndarray) -> np.ndarray | None:
        return prior_margin(prior, X, features) if prior else None

    class _Iter(xgb.DataIter):
        def __init__(self, cache_prefix: str | None) -> None:
            self._it: Iterator[Batch] | None = None
            super().__init__(cache_prefix=cache_prefix, release_data=True)

        def next(self, input_data: Callable) -> bool:  # type: ignore[override]
            if self._it is None:
                self._it = train_batches()
            for X, y, w in self._it:
                if len(y):
                    input_data(data=X, label=y, weight=w, base_margin=margin(X), feature_names=features,
                               feature_types=ft)
                    return True
            return False

        def reset(self) -> None:
            self._it = None

    class _Rounds(xgb.callback.TrainingCallback):
        """Each round's end time, shown as a progress task with the validation loss."""

        def __init__(self, bar, total: int) -> None:  # noqa: ANN001
            super().__init__()
            self.bar, self.start, self.ends = bar, time.perf_counter(), []
            self.task = bar.add_task("boosting rounds", total=total, rate="") if bar else None

        def mean_s(self) -> float:
            return (self.ends[-1] - self.start) / len(self.ends) if self.ends else 0.0

        def after_iteration(self, model, epoch: int, evals_log) -> bool:  # noqa: ANN001
            self.ends.append(time.perf_counter())
            if self.bar:
                loss = evals_log.get("valid", {}).get("mlogloss")
                rate = f"{self.mean_s():.2f} s/round" + (f", valid mlogloss {loss[-1]:.4f}" if loss else "")
                self.bar.update(self.task, completed=epoch + 1, rate=rate)
            return False

    quantised = n_rows * len(features)  # ~1 byte per cell once binned (<= 256 bins)
    external = quantised > max_memory
    max_bin = int(p["max_bin"])  # type: ignore[arg-type]
    t0 = time.perf_counter()
    if external:
        cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("training rows need ~%.1f GiB quantised > %.1f GiB: external-memory matrix in %s",
                 quantised / 2**30, max_memory / 2**30, cache_dir)
        dtrain = xgb.ExtMemQuantileDMatrix(_Iter(str(cache_dir / "xgb")), enable_categorical=True, max_bin=max_bin)
    else:
        dtrain = xgb.QuantileDMatrix(_Iter(None), enable_categorical=True, max_bin=max_bin)
    params = {
        "objective": "multi:softprob", "num_class": 3, "tree_method": "hist", "eval_metric": "mlogloss",
        "learning_rate": p["learning_rate"], "max_depth": p["max_depth"], "min_child_weight": p["min_child_weight"],
        "subsample": p["subsample"], "colsample_bytree": p["colsample_bytree"], "reg_lambda": p["reg_lambda"],
        "reg_alpha": p["reg_alpha"], "gamma": p["gamma"], "max_bin": max_bin, "seed": seed,
        "max_cat_to_onehot": 1, "nthread": int(p["nthread"]) or None,  # type: ignore[arg-type]
    }
    params = {k: v for k, v in params.items() if v is not None}
    evals, es = [], None
    if valid is not None and len(valid[1]):
        dvalid = xgb.QuantileDMatrix(valid[0], label=valid[1], weight=valid[2], base_margin=margin(valid[0]),
                                     feature_names=features, feature_types=ft, enable_categorical=True, ref=dtrain,
                                     max_bin=max_bin)
        evals, es = [(dvalid, "valid")], int(p["early_stopping_rounds"]) or None  # type: ignore[arg-type]
    matrix_s = time.perf_counter() - t0
    n_rounds = int(p["n_estimators"])  # type: ignore[arg-type]
    with count_progress(progress) as bar:
        rounds = _Rounds(bar, n_rounds)
        booster = xgb.train(params, dtrain, num_boost_round=n_rounds, evals=evals, early_stopping_rounds=es,
                            verbose_eval=False, callbacks=[rounds])
    best = getattr(booster, "best_iteration", None) if es else None
    stats = {"matrix_s": round(matrix_s, 2), "rounds": len(rounds.ends), "round_s": round(rounds.mean_s(), 4),
             "rows": n_rows, "features": len(features), "external": int(external)}
    log.info("boosting: %d rounds at %.2f s/round (matrix %.1f s, %d rows x %d features)", stats["rounds"],
             stats["round_s"], matrix_s, n_rows, len(features))
    if best is not None:
        booster = booster[: best + 1]
    return MetaModel("xgboost", features, categories, booster, best, "external" if external else "in-memory", stats,
                     prior)


def _collect(train_batches: Callable[[], Iterator[Batch]]) -> Batch:
    Xs, ys, ws = [], [], []
    for X, y, w in train_batches():
        Xs.append(X)
        ys.append(y)
        ws.append(w)
    return np.concatenate(Xs), np.concatenate(ys), np.concatenate(ws)


def _fit_lightgbm(spec, features, categories, train_batches, valid, n_rows, max_memory, seed) -> MetaModel:
    import lightgbm as lgb

    need = n_rows * len(features) * 4
    if need > max_memory:
        raise InputError(f"lightgbm needs the {n_rows:,} training rows in memory (~{need / 2**30:.1f} GiB > "
                         f"--max-memory {max_memory / 2**30:.1f} GiB); use --model xgboost (external memory) "
                         "or raise --max-memory")
    p = spec.params
    X, y, w = _collect(train_batches)
    cat = [i for i, f in enumerate(features) if f in CATEGORICAL_FEATURES]
    params = {"objective": "multiclass", "num_class": 3, "learning_rate": p["learning_rate"],
              "num_leaves": p["num_leaves"], "max_depth": p["max_depth"], "min_child_samples": p["min_child_samples"],
              "bagging_fraction": p["subsample"], "bagging_freq": 1 if float(p["subsample"]) < 1 else 0,  # type: ignore[arg-type]
              "feature_fraction": p["colsample_bytree"], "lambda_l2": p["reg_lambda"], "lambda_l1": p["reg_alpha"],
              "seed": seed, "deterministic": True, "verbosity": -1, "num_threads": int(p["nthread"])}  # type: ignore[arg-type]
    dtrain = lgb.Dataset(X, label=y, weight=w, feature_name=features, categorical_feature=cat, free_raw_data=True)
    callbacks, valid_sets = [], []
    if valid is not None and len(valid[1]):
        valid_sets = [lgb.Dataset(valid[0], label=valid[1], weight=valid[2], reference=dtrain)]
        if int(p["early_stopping_rounds"]):  # type: ignore[arg-type]
            callbacks.append(lgb.early_stopping(int(p["early_stopping_rounds"]), verbose=False))  # type: ignore[arg-type]
    booster = lgb.train(params, dtrain, num_boost_round=int(p["n_estimators"]), valid_sets=valid_sets,  # type: ignore[arg-type]
                        callbacks=callbacks)
    best = booster.best_iteration or None
    if best:
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return MetaModel("lightgbm", features, categories, booster, best)


def _sgd_columns(features: list[str], categories: dict[str, list[str]]) -> list[str]:
    out = []
    for f in features:
        if f in CATEGORICAL_FEATURES:
            out += [f"{f}={c}" for c in categories.get(f, [])]
        else:
            out.append(f)
    return out


def _sgd_design(X: np.ndarray, features: list[str], categories: dict[str, list[str]]) -> np.ndarray:
    """Numeric columns as they are, categorical ones one-hot (unseen/missing: all zero)."""
    parts = []
    for i, f in enumerate(features):
        col = X[:, i]
        if f in CATEGORICAL_FEATURES:
            n = len(categories.get(f, []))
            codes = np.where(np.isfinite(col), col, -1).astype(np.int64)
            parts.append((codes[:, None] == np.arange(n)[None, :]).astype(np.float32))
        else:
            parts.append(col[:, None])
    return np.hstack(parts) if parts else np.zeros((X.shape[0], 0), np.float32)


def _fit_sgd(spec, features, categories, train_batches, seed) -> MetaModel:
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    p = spec.params
    scaler = StandardScaler()
    for X, _, _ in train_batches():
        if len(X):
            scaler.partial_fit(_sgd_design(X, features, categories))
    clf = SGDClassifier(loss="log_loss", alpha=float(p["alpha"]), penalty=str(p["penalty"]),  # type: ignore[arg-type]
                        l1_ratio=float(p["l1_ratio"]), random_state=seed)  # type: ignore[arg-type]
    for _ in range(int(p["epochs"])):  # type: ignore[arg-type]
        for X, y, w in train_batches():
            if len(y):
                Z = np.nan_to_num(scaler.transform(_sgd_design(X, features, categories)))
                clf.partial_fit(Z, y, classes=np.arange(3), sample_weight=w)
    native = {"coef": clf.coef_.tolist(), "intercept": clf.intercept_.tolist(),
              "mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}
    return MetaModel("sgd_logistic", features, categories, native)


def _sgd_predict(native: dict, X: np.ndarray, features: list[str], categories: dict[str, list[str]]) -> np.ndarray:
    Z = (_sgd_design(X, features, categories) - np.asarray(native["mean"])) / np.asarray(native["scale"])
    logits = np.nan_to_num(Z) @ np.asarray(native["coef"]).T + np.asarray(native["intercept"])
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def memory_budget(max_memory_gib: float | None) -> int:
    """Bytes the training matrix may take: ``--max-memory`` GiB, or half the available memory."""
    if max_memory_gib is not None:
        if not max_memory_gib > 0 or math.isinf(max_memory_gib):
            raise InputError(f"--max-memory must be a positive number of GiB, got {max_memory_gib}")
        return int(max_memory_gib * 2**30)
    import psutil

    return int(psutil.virtual_memory().available * 0.5)
