from __future__ import annotations

import json

import numpy as np
import pytest

from meta_spliceai.errors import InputError
from meta_spliceai.metamodel.models import (
    MODEL_KINDS,
    fit,
    load_model,
    parse_model_spec,
)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("randomforest", "not a model"),
        ('{"model": "svm"}', "unknown model 'svm'; valid models: xgboost, lightgbm, sgd_logistic"),
        ('{"model": "xgboost", "params": {"depth": 3}}', "unknown xgboost parameter(s) depth; valid ones"),
        ('{"model": "xgboost", "extra": 1}', "unknown key(s) extra"),
        ('{"model": ', "malformed"),
    ],
)
def test_bad_specs(text, fragment):
    with pytest.raises(InputError) as err:
        parse_model_spec(text)
    assert fragment in str(err.value)


def test_spec_from_file(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"model": "lightgbm", "params": {"num_leaves": 7}}))
    spec = parse_model_spec(str(p))
    assert spec.kind == "lightgbm" and spec.params["num_leaves"] == 7 and "learning_rate" in spec.params


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_fit_save_load_roundtrip(kind, tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    X = rng.random((n, 3)).astype(np.float32)
    X[:, 2] = rng.integers(0, 3, n)  # gene_type codes
    y = (X[:, 0] * 3).astype(np.int32).clip(0, 2)
    w = np.ones(n, np.float32)
    feats = ["a", "b", "gene_type"]
    cats = {"gene_type": ["x", "y", "z"]}
    small = {"xgboost": {"n_estimators": 10}, "lightgbm": {"n_estimators": 10, "min_child_samples": 5},
             "sgd_logistic": {"epochs": 3}}[kind]
    spec = parse_model_spec(json.dumps({"model": kind, "params": small}))

    def batches():
        yield X[:300], y[:300], w[:300]
        yield X[300:], y[300:], w[300:]

    m = fit(spec, feats, cats, batches, (X[:100], y[:100], w[:100]), n_train_rows=n, max_memory=2**30, seed=0,
            cache_dir=tmp_path / "c")
    p = m.predict(X)
    assert p.shape == (n, 3) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert (p.argmax(axis=1) == y).mean() > 0.6
    name = m.save(tmp_path)
    again = load_model(kind, tmp_path / name, feats, cats)
    np.testing.assert_allclose(again.predict(X), p, rtol=1e-5, atol=1e-6)
    assert set(m.importances()) == set(feats)
    if kind == "xgboost":
        assert m.matrix == "in-memory"


def test_xgboost_external_memory(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.random((400, 2)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(np.int32) * 2
    spec = parse_model_spec('{"model": "xgboost", "params": {"n_estimators": 5}}')
    m = fit(spec, ["a", "b"], {}, lambda: iter([(X, y, np.ones(400, np.float32))]), None, n_train_rows=400,
            max_memory=10, seed=0, cache_dir=tmp_path / "cache")  # 10 bytes: forces external memory
    assert m.matrix == "external"
    assert (m.predict(X).argmax(axis=1) == y).mean() > 0.9


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_damaged_model_file_is_one_line(kind, tmp_path):
    from meta_spliceai.errors import InputError

    rng = np.random.default_rng(1)
    X = rng.random((300, 2)).astype(np.float32)
    y = rng.integers(0, 3, 300).astype(np.int32)
    small = {"xgboost": {"n_estimators": 5}, "lightgbm": {"n_estimators": 5, "min_child_samples": 5},
             "sgd_logistic": {"epochs": 1}}[kind]
    m = fit(parse_model_spec(json.dumps({"model": kind, "params": small})), ["a", "b"], {},
            lambda: iter([(X, y, np.ones(300, np.float32))]), None, n_train_rows=300, max_memory=2**30, seed=0,
            cache_dir=tmp_path / "c")
    path = tmp_path / m.save(tmp_path)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # written under a temporary name, renamed
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    with pytest.raises(InputError) as err:
        load_model(kind, path, ["a", "b"], {})
    msg = str(err.value)
    assert str(path) in msg and "truncated or damaged" in msg and "re-run meta-spliceai train" in msg, msg
    assert "\n" not in msg and "Stack trace" not in msg
    path.unlink()
    with pytest.raises(InputError, match="is missing: the model folder .* is incomplete"):
        load_model(kind, path, ["a", "b"], {})


def test_model_spec_from_a_pipe_or_stdin(monkeypatch):
    """A JSON spec is read once: ``--model <(echo '{…}')`` (/dev/fd/N) and ``--model -`` (stdin) work."""
    import io
    import os
    import sys
    import threading

    text = b'{"model": "xgboost", "params": {"max_depth": 3}}'
    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, text), os.close(w)))
    writer.start()
    try:
        assert parse_model_spec(f"/dev/fd/{r}").params["max_depth"] == 3
    finally:
        writer.join()
        os.close(r)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text)))
    assert parse_model_spec("-").params["max_depth"] == 3


def test_xgboost_rounds_progress_and_fit_figures(tmp_path, capsys, monkeypatch):
    """Boosting shows its rounds (count, seconds per round, validation loss) and records what the fit took."""
    monkeypatch.setenv("META_SPLICEAI_PROGRESS_INTERVAL", "0.05")
    rng = np.random.default_rng(2)
    X = rng.random((500, 2)).astype(np.float32)
    y = (X[:, 0] * 3).astype(np.int32).clip(0, 2)
    w = np.ones(500, np.float32)
    spec = parse_model_spec('{"model": "xgboost", "params": {"n_estimators": 12, "early_stopping_rounds": 0}}')
    m = fit(spec, ["a", "b"], {}, lambda: iter([(X, y, w)]), (X[:100], y[:100], w[:100]), n_train_rows=500,
            max_memory=2**30, seed=0, cache_dir=tmp_path / "c", progress=True)
    err = capsys.readouterr().err
    assert "boosting rounds 12/12" in err and "s/round" in err and "valid mlogloss" in err, err
    assert m.fit_stats["rounds"] == 12 and m.fit_stats["round_s"] > 0 and m.fit_stats["matrix_s"] >= 0


def _scored_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose first three columns are a noisy base model's scores [neither, acceptor, donor] of class y."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)  # 0 neither, 1 donor, 2 acceptor
    logits = rng.normal(0, 1.5, (n, 3))
    logits[np.arange(n), np.array([0, 2, 1])[y]] += 2.0  # the true class, in store order (neither, acceptor, donor)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    X = np.column_stack([p, rng.random(n)]).astype(np.float32)
    return X, y


def test_xgboost_linear_prior_starts_from_the_log_score_regression(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from meta_spliceai.metamodel.models import prior_columns

    feats = ["neither_score", "acceptor_score", "donor_score", "noise"]
    assert prior_columns(feats + ["openspliceai_donor_score", "donor_score_m1"]) == [
        "neither_score", "acceptor_score", "donor_score", "openspliceai_donor_score"]
    X, y = _scored_rows(3000, 0)
    w = np.ones(len(y), np.float32)

    def batches():
        yield X[:1500], y[:1500], w[:1500]
        yield X[1500:], y[1500:], w[1500:]

    def fitted(params: dict) -> object:
        spec = parse_model_spec(json.dumps({"model": "xgboost", "params": params}))
        return fit(spec, feats, {}, batches, None, n_train_rows=len(y), max_memory=2**30, seed=0,
                   cache_dir=tmp_path / "c")

    # boosting with (almost) no step: the model is the prior, i.e. the logistic regression on log scores
    start = fitted({"n_estimators": 2, "learning_rate": 1e-9})
    assert start.prior is not None and start.prior["columns"] == feats[:3]
    lr = LogisticRegression(max_iter=1000).fit(np.log(X[:, :3].astype(np.float64) + 1e-10), y)
    np.testing.assert_allclose(start.predict(X), lr.predict_proba(np.log(X[:, :3].astype(np.float64) + 1e-10)),
                               atol=2e-3)
    flat = fitted({"n_estimators": 2, "learning_rate": 1e-9, "prior": "none"})
    assert flat.prior is None and np.ptp(flat.predict(X)[:, 1]) < 1e-3  # a constant start: every row alike
    # a real fit: saved, loaded with its card's prior, the same numbers
    m = fitted({"n_estimators": 20})
    name = m.save(tmp_path)
    again = load_model("xgboost", tmp_path / name, feats, {}, m.prior)
    np.testing.assert_allclose(again.predict(X), m.predict(X), rtol=1e-5, atol=1e-6)
    without = load_model("xgboost", tmp_path / name, feats, {})
    assert np.abs(without.predict(X) - m.predict(X)).max() > 0.01  # the prior is part of the model
    with pytest.raises(InputError, match="damaged prior"):
        load_model("xgboost", tmp_path / name, feats, {}, {**m.prior, "coef": [[1.0]]})
    with pytest.raises(InputError, match="prior must be one of linear, none"):
        fitted({"n_estimators": 2, "prior": "tree"})


def test_the_cards_checksum_catches_a_damaged_file_before_xgboost_reads_it(tmp_path):
    """A truncated model file can crash XGBoost's own reader: with the card's checksum it never gets there."""
    from meta_spliceai.storage import checksum

    rng = np.random.default_rng(2)
    X = rng.random((300, 2)).astype(np.float32)
    y = rng.integers(0, 3, 300).astype(np.int32)
    m = fit(parse_model_spec('{"model": "xgboost", "params": {"n_estimators": 5}}'), ["a", "b"], {},
            lambda: iter([(X, y, np.ones(300, np.float32))]), None, n_train_rows=300, max_memory=2**30, seed=0,
            cache_dir=tmp_path / "c")
    path = tmp_path / m.save(tmp_path)
    digest = checksum(path)
    np.testing.assert_allclose(load_model("xgboost", path, ["a", "b"], {}, digest=digest).predict(X), m.predict(X))
    data = path.read_bytes()
    for cut in (len(data) // 3, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(InputError, match="truncated or damaged \\(its checksum is not the model card's\\)"):
            load_model("xgboost", path, ["a", "b"], {}, digest=digest)
