"""The cone engine: each alternate allele computed only inside its cone of influence gives what full
passes over its reference and alternate windows give (random weights of the real architecture)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from meta_spliceai.basemodel.cone import MAX_CLUSTER, ConeEngine, ConeVariant
from meta_spliceai.basemodel.ensemble import one_hot, random_weights
from meta_spliceai.basemodel.onnx_graph import build_onnx, build_pieces
from meta_spliceai.config import FLANK


def _full(members, seqs):
    """The member mean of full-graph passes, summed in member order as BaseModel does."""
    sessions = [ort.InferenceSession(build_onnx(w).SerializeToString(), providers=["CPUExecutionProvider"])
                for w in members]
    out = []
    for s in seqs:
        x = np.ascontiguousarray(one_hot(s).T[None])
        total = sessions[0].run(None, {"x": x})[0][0].copy()
        for sess in sessions[1:]:
            total += sess.run(None, {"x": x})[0][0]
        out.append((total / np.float32(len(sessions))).T)
    return out


def _gene(rng, n):
    s = "".join(rng.choice(list("ACGT"), size=n))
    return "N" * 2_000 + s + "N" * 1_500  # N ends as the masked gene inputs have


@pytest.mark.parametrize(("leaky", "n_members"), [(0.0, 2), (0.1, 1)])
def test_cone_equals_full_windows(leaky, n_members):
    rng = np.random.default_rng(3)
    members = random_weights(n_members, seed=11)
    for w in members:
        w.leaky = leaky
    gene = _gene(rng, 40_000)
    cases = []
    for cov in (3, 101):
        half = FLANK + cov // 2
        # SNV, insertion, deletion, a complex allele; near the input's first window, clustered, alone
        for at in (half, 20_000, len(gene) - half - 12):
            for ref_len, alt in ((1, "G"), (1, "TACGATT"), (5, "A"), (3, "CC")):
                if at + ref_len + half <= len(gene) and ref_len <= 2 * (cov // 2):  # SpliceAI: len(REF) <= 2D
                    cases.append(ConeVariant(start=at - half, at=at, ref_len=ref_len, alt=alt, cov=cov))
    cases.append(ConeVariant(start=20_002 - FLANK - 50, at=20_002, ref_len=1, alt="T", cov=101))  # clustered
    got = ConeEngine(members, threads=2).score(gene, cases)
    windows = []
    for v in cases:
        wid = 2 * FLANK + v.cov
        windows += [gene[v.start: v.start + wid],
                    gene[v.start: v.at] + v.alt + gene[v.at + v.ref_len: v.start + wid]]
    want = _full(members, windows)
    for k, (v, (ref, alt)) in enumerate(zip(cases, got)):
        assert ref.shape == (v.cov, 3) and alt.shape == (v.cov + len(v.alt) - v.ref_len, 3)
        np.testing.assert_allclose(ref, want[2 * k], rtol=0, atol=1e-5)
        np.testing.assert_allclose(alt, want[2 * k + 1], rtol=0, atol=1e-5)
    assert not np.allclose(got[0][0][:, 1:], got[0][1][:, 1:])  # the allele changes the outputs


def test_far_apart_variants_form_clusters_of_bounded_span():
    rng = np.random.default_rng(4)
    members = random_weights(1, seed=12)
    gene = _gene(rng, 2 * MAX_CLUSTER + 30_000)
    half = FLANK + 5
    cases = [ConeVariant(start=at - half, at=at, ref_len=1, alt="A", cov=11)
             for at in (half, MAX_CLUSTER + half + 10, 2 * MAX_CLUSTER + 20_000)]
    one = ConeEngine(members, threads=1)
    got = one.score(gene, cases)
    alone = [one.score(gene, [v])[0] for v in cases]  # each variant's own cluster
    for (r, a), (r1, a1) in zip(got, alone):
        np.testing.assert_array_equal(r, r1)
        np.testing.assert_array_equal(a, a1)


def test_pieces_chain_to_the_full_graph():
    w = random_weights(1, seed=13)[0]
    pieces = {k: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
              for k, m in build_pieces(w).items()}
    x = np.ascontiguousarray(one_hot(_gene(np.random.default_rng(5), 7_000)).T[None])
    states = [pieces["stem"].run(None, {"x": x})[0]]
    for u in range(16):
        states.append(pieces[f"unit{u}"].run(None, {"h": states[-1]})[0])
    n_out = x.shape[2] - 2 * FLANK
    lost = [(x.shape[2] - s.shape[2]) // 2 for s in states]
    feeds = {f"h{u}": np.ascontiguousarray(states[u][:, :, FLANK - lost[u]: FLANK - lost[u] + n_out])
             for u in (0, 4, 8, 12, 16)}
    got = pieces["head"].run(None, feeds)[0]
    want = ort.InferenceSession(build_onnx(w).SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert got.shape == want.shape == (1, 3, n_out)
    np.testing.assert_array_equal(got, want)
