from __future__ import annotations

import numpy as np
import pytest

from meta_spliceai.dataset.evaluation import (
    ACCEPTOR_CODE,
    DONOR_CODE,
    evaluate_gene,
    gene_performance,
)
from meta_spliceai.errors import InputError
from meta_spliceai.reference.annotation import parse_annotation

N, A, D = 0, 1, 2


def _probs(length: int) -> np.ndarray:
    p = np.zeros((length, 3), dtype=np.float32)
    p[:, N] = 1.0
    return p


def _label(outcome, pos: int, code: int | None = None) -> str:
    """Row label at a position (site rows by type), following the design's rules."""
    hit = np.flatnonzero(outcome.site_positions == pos)
    if hit.size:
        sel = [i for i in hit if code is None or outcome.site_types[i] == code]
        return "TP" if outcome.site_tp[sel[0]] else "FN"
    return "FP" if pos in set(outcome.fp_positions.tolist()) else "TN"


def test_hand_built_cases():
    p = _probs(60)
    p[12, D] = 0.6  # donor site 10: hit at +2 -> TP; 12 is no FP (site within window)
    p[23, D] = 0.9  # donor site 20: hit at +3 -> FN; 23 is FP (no donor within 2)
    p[40, D] = 0.7  # no site near -> FP
    p[32, A] = 0.9  # acceptor site 30: TP via +2; 32 -> TN
    p[5, A] = 0.5  # exactly the threshold counts -> FP
    p[10, A] = 0.99  # acceptor score on the donor site: site rows are never FP
    p[50, A] = 0.49  # below threshold -> TN
    p[45, D] = 0.8  # an acceptor site within the window does not rescue a donor hit -> FP
    out = evaluate_gene(p, [10, 20], [30, 44], threshold=0.5, window=2)
    assert _label(out, 10) == "TP" and _label(out, 20) == "FN"
    assert _label(out, 30) == "TP" and _label(out, 44) == "FN"
    assert out.fp_positions.tolist() == [5, 23, 40, 45]
    assert out.fp_donor.tolist() == [False, True, True, True]
    assert out.fp_acceptor.tolist() == [True, False, False, False]
    for tn in (12, 32, 50, 0, 59):
        assert _label(out, tn) == "TN"
    # window 3 turns the donor at 20 into a TP and removes the FP at 23
    out3 = evaluate_gene(p, [10, 20], [30, 44], threshold=0.5, window=3)
    assert _label(out3, 20) == "TP" and 23 not in out3.fp_positions


def test_site_both_donor_and_acceptor_and_gene_edges():
    p = _probs(20)
    p[0, D] = 0.8
    p[19, A] = 0.8
    out = evaluate_gene(p, [1, 7], [7, 18], threshold=0.5, window=2)
    assert out.site_positions.tolist() == [1, 7, 7, 18]
    assert out.site_types.tolist() == [DONOR_CODE, ACCEPTOR_CODE, DONOR_CODE, ACCEPTOR_CODE]
    assert out.site_tp.tolist() == [True, False, False, True]
    assert out.fp_positions.size == 0
    assert out.non_tn_mask().sum() == 3  # position 7 once


def test_bad_input():
    p = _probs(10)
    with pytest.raises(InputError, match="outside the gene body"):
        evaluate_gene(p, [10], [], threshold=0.5, window=2)
    with pytest.raises(InputError, match="shape"):
        evaluate_gene(p[:, :2], [], [], threshold=0.5, window=2)
    bad = p.copy()
    bad[3, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        evaluate_gene(bad, [], [], threshold=0.5, window=2)


def test_performance_hand_built():
    p = _probs(100)
    p[[10, 30, 70], D] = [0.9, 0.6, 0.8]  # sites 10 (TP), 30 (TP), 50 (FN); 70 FP
    p[[20, 60], A] = [0.3, 0.2]  # no acceptor hits; top-2 acceptor scores at the sites
    out = evaluate_gene(p, [10, 30, 50], [20, 60], threshold=0.5, window=2)
    donor, acceptor = gene_performance(out, p)
    assert donor["splice_type"] == "donor" and acceptor["splice_type"] == "acceptor"
    assert (donor["TP"], donor["FP"], donor["FN"], donor["TN"]) == (2, 1, 1, 96)
    assert donor["precision"] == pytest.approx(2 / 3) and donor["recall"] == pytest.approx(2 / 3)
    assert donor["f1_score"] == pytest.approx(2 / 3)
    assert donor["topk_acc"] == pytest.approx(2 / 3)  # top 3 donor scores: 10, 70, 30
    assert (acceptor["TP"], acceptor["FN"], acceptor["precision"], acceptor["recall"]) == (0, 2, None, 0.0)
    assert acceptor["topk_acc"] == 1.0 and acceptor["f1_score"] == 0.0
    empty = gene_performance(evaluate_gene(_probs(5), [], [], threshold=0.5, window=2), _probs(5))
    assert empty[0]["topk_acc"] is None and empty[0]["recall"] is None and empty[0]["TN"] == 5


def _naive(probs, donors, acceptors, t, w):
    """Position-by-position reference implementation of the design's rules."""
    length = probs.shape[0]
    sites = {"donor": set(donors), "acceptor": set(acceptors)}
    col = {"donor": D, "acceptor": A}
    site_rows = {}
    for kind, pos in sites.items():
        for s in pos:
            lo, hi = max(0, s - w), min(length, s + w + 1)
            site_rows[(s, kind)] = bool((probs[lo:hi, col[kind]] >= t).any())
    fps = []
    any_site = sites["donor"] | sites["acceptor"]
    for i in range(length):
        if i in any_site:
            continue
        for kind in ("donor", "acceptor"):
            near = any(abs(i - s) <= w for s in sites[kind])
            if probs[i, col[kind]] >= t and not near:
                fps.append(i)
                break
    return site_rows, fps


@pytest.fixture(scope="module")
def chr22_data(chr22):
    ann = parse_annotation(chr22 / "annotation.gtf")
    probs = np.load(chr22 / "reference" / "keras_spliceai_outputs.npz")
    return ann, {k: probs[k] for k in probs.files}


def test_real_genes_every_site_once_and_counts_add_up(chr22_data):
    ann, probs = chr22_data
    totals = {"TP": 0, "FN": 0}
    for gene in ann.genes.iter_rows(named=True):
        gid = gene["gene_id"]
        sites = ann.gene_sites(gid)
        donors = sites.filter(site_type="donor")["position"].to_numpy()
        acceptors = sites.filter(site_type="acceptor")["position"].to_numpy()
        out = evaluate_gene(probs[gid], donors, acceptors, threshold=0.5, window=2)
        got = {(int(p), "donor" if c == DONOR_CODE else "acceptor") for p, c in zip(out.site_positions, out.site_types)}
        want = set(zip(sites["position"].to_list(), sites["site_type"].to_list()))
        assert got == want and len(out.site_positions) == sites.height
        assert not set(out.fp_positions.tolist()) & set(sites["position"].to_list())
        for row in gene_performance(out, probs[gid]):
            assert row["TP"] + row["FP"] + row["FN"] + row["TN"] == gene["length"]
            assert row["TP"] + row["FN"] == row["n_splice_sites"]
            totals["TP"] += row["TP"]
            totals["FN"] += row["FN"]
        if gene["length"] < 7000:  # naive check on the small genes
            site_rows, fps = _naive(probs[gid], donors, acceptors, 0.5, 2)
            for p, c, tp in zip(out.site_positions, out.site_types, out.site_tp):
                assert site_rows[(int(p), "donor" if c == DONOR_CODE else "acceptor")] == tp
            assert out.fp_positions.tolist() == fps
    # SpliceAI recovers most canonical sites of the bundle
    assert totals["TP"] > 3 * totals["FN"]


def test_megabase_gene_is_fine():
    rng = np.random.default_rng(0)
    length = 2_300_000
    p = rng.random((length, 3), dtype=np.float32) ** 40  # mostly tiny, some hits
    sites = np.sort(rng.choice(length, 200, replace=False))
    out = evaluate_gene(p, sites[::2], sites[1::2], threshold=0.5, window=2)
    rows = gene_performance(out, p)
    assert sum(r["n_splice_sites"] for r in rows) == 200
    assert all(r["TP"] + r["FP"] + r["FN"] + r["TN"] == length for r in rows)
