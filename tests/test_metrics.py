from __future__ import annotations

import numpy as np
import pytest

from meta_spliceai.dataset.evaluation import (
    ACCEPTOR,
    DONOR,
    evaluate_gene,
    gene_performance,
)
from meta_spliceai.metamodel.metrics import (
    RankedPoints,
    SiteCounts,
    bootstrap_weights,
    interval,
    prf,
    window_max,
)


def _points(scores, labels, genes=None):
    scores = np.asarray(scores, float)
    labels = np.asarray(labels, bool)
    genes = np.zeros(scores.size, int) if genes is None else np.asarray(genes)
    return RankedPoints.build(scores, labels.astype(float), (~labels).astype(float), genes)


def test_average_precision_hand_computed():
    # ranked: .9 site, .8 no, .7 site, .1 no, .05 site -> P at each site: 1, 2/3, 3/5
    rp = _points([0.9, 0.8, 0.7, 0.1, 0.05], [1, 0, 1, 0, 1])
    assert rp.average_precision() == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_average_precision_ties_and_sklearn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    s = np.round(rng.random(500), 2)  # many ties
    y = rng.random(500) < 0.1
    assert _points(s, y).average_precision() == pytest.approx(average_precision_score(y, s))


def test_topk_hand_computed():
    # 2 sites; scores ranked .9 (site) .8 .7 (site) .6
    rp = _points([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    assert rp.topk_accuracy(1.0) == pytest.approx(0.5)  # top 2 hold one site
    assert rp.topk_accuracy(0.5) == pytest.approx(1.0)  # top 1 is a site, / min(1, 2)
    assert rp.topk_accuracy(2.0) == pytest.approx(1.0)  # top 4 hold both, / min(4, 2)
    # a tie at the cut counts in proportion: top 1 among {.5 site, .5 no} -> 0.5
    assert _points([0.5, 0.5], [1, 0]).topk_accuracy(1.0) == pytest.approx(0.5)


def test_binned_points_equal_expanded_points():
    exact = _points([0.9, 0.2, 0.2, 0.2, 0.1], [1, 1, 0, 0, 0])
    binned = RankedPoints.build(np.array([0.9, 0.2, 0.1]), np.array([1.0, 1, 0]), np.array([0.0, 2, 1]), np.zeros(3, int))
    assert binned.average_precision() == pytest.approx(exact.average_precision())
    assert binned.topk_accuracy(1.0) == pytest.approx(exact.topk_accuracy(1.0))


def test_gene_weights_equal_duplicated_genes():
    s = np.array([0.9, 0.3, 0.8, 0.1])
    y = np.array([1, 0, 0, 1], bool)
    g = np.array([0, 0, 1, 1])
    rp = _points(s, y, g)
    dup = _points(np.concatenate([s, s[:2]]), np.concatenate([y, y[:2]]), np.concatenate([g, g[:2]]))
    w = np.array([2.0, 1.0])
    assert rp.average_precision(w) == pytest.approx(dup.average_precision())
    assert rp.topk_accuracy(1.0, w) == pytest.approx(dup.topk_accuracy(1.0))


def test_site_counts_match_the_builders_rule(keras_store):
    from meta_spliceai.basemodel.store import PredictionStore

    store = PredictionStore(keras_store)
    gid = sorted(store.finished_genes())[0]
    probs = store.read(gid)
    rng = np.random.default_rng(1)
    donors = np.sort(rng.choice(probs.shape[0], 5, replace=False))
    acceptors = np.setdiff1d(np.flatnonzero(probs[:, ACCEPTOR] > 0.3), donors)[:4]
    for t in (0.5, 0.2):
        perf = gene_performance(evaluate_gene(probs, donors, acceptors, threshold=t, window=2), probs)
        any_site = np.zeros(probs.shape[0], bool)
        any_site[np.concatenate([donors, acceptors])] = True
        for row, track, sites in ((perf[0], DONOR, donors), (perf[1], ACCEPTOR, acceptors)):
            tp, fp, fn = SiteCounts.of(probs[:, track], sites, any_site, 2, 0.01).counts(t)
            assert (tp, fp, fn) == (row["TP"], row["FP"], row["FN"])


def test_window_max_and_helpers():
    assert window_max(np.array([0, 5, 0, 0, 1.0]), 1).tolist() == [5, 5, 5, 1, 1]
    assert prf(0, 0, 0)["f1"] is None
    w = bootstrap_weights(4, 10, seed=3)
    assert w.shape == (10, 4) and (w.sum(axis=1) == 4).all()
    assert interval(np.array([np.nan, np.nan])) == [None, None]
