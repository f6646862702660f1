from __future__ import annotations

import math
from collections import Counter

import numpy as np
import polars as pl
import pytest

from meta_spliceai.config import FLANK, BuildConfig
from meta_spliceai.dataset.features import (
    compute_features,
    encode_sequence,
    kmer_codes,
    kmer_counts,
)
from meta_spliceai.dataset.rows import gene_rows
from meta_spliceai.dataset.schema import (
    dataset_polars_schema,
    feature_columns,
    kmer_names,
)
from meta_spliceai.errors import InputError
from meta_spliceai.reference.annotation import parse_annotation
from meta_spliceai.reference.genome import Genome, reverse_complement

N, A, D = 0, 1, 2
GENE = {"gene_id": "G1", "transcript_count": 3, "exon_count": 7, "gene_type": "protein_coding"}


@pytest.fixture(scope="module")
def chr22_genes(chr22):
    ann = parse_annotation(chr22 / "annotation.gtf")
    genome = Genome(chr22 / "genome.fa.gz")
    npz = np.load(chr22 / "reference" / "keras_spliceai_outputs.npz")
    return ann, genome, {k: npz[k] for k in npz.files}


def _gene_seq(genome, gene, flank=FLANK):
    seq = genome.fetch(gene["chrom"], gene["start"] - 1 - flank, gene["end"] + flank)
    return reverse_complement(seq) if gene["strand"] == "-" else seq


def test_columns_dtypes_and_no_nan_or_inf():
    rng = np.random.default_rng(1)
    length = 300
    probs = rng.random((length, 3), dtype=np.float32)
    probs[:50] = 0.0  # all-zero scores: every ratio must stay finite
    probs[50:60] = [0.0, 0.0, 1.0]
    probs[60:70] = [0.0, 1.0, 0.0]
    seq = "N" * 400 + "".join(rng.choice(list("ACGT"), length)) + "N" * 10  # Ns in windows
    positions = np.arange(length)
    for sizes in ((), (2, 3)):
        frame = compute_features(probs, positions, seq=seq, seq_offset=400, kmer_sizes=sizes, kmer_window=40, gene=GENE)
        schema = dataset_polars_schema(sizes, 40)
        assert frame.schema == pl.Schema({c: schema[c] for c in feature_columns(list(schema))})
        assert frame.null_count().sum_horizontal().item() == 0
        numeric = frame.drop("gene_type").to_numpy().astype(np.float64)
        assert np.isfinite(numeric).all()
    assert frame["gene_type"].unique().to_list() == ["protein_coding"]
    assert frame["relative_position"][-1] == 1.0 and frame["gene_length"][0] == length
    assert frame["gene_transcript_count"][0] == 3 and frame["gene_exon_count"][0] == 7


def test_context_zero_past_gene_ends_and_appendix_formulas():
    probs = np.zeros((6, 3), dtype=np.float32)
    probs[:, N] = 0.5
    probs[:, D] = [0.9, 0.2, 0.1, 0.3, 0.6, 0.8]
    probs[:, A] = [0.05, 0.1, 0.2, 0.3, 0.4, 0.05]
    f = compute_features(probs, [0, 2, 5], seq=None, seq_offset=0, gene=GENE).to_dicts()
    first, mid, last = f
    for t in ("donor", "acceptor"):
        assert first[f"{t}_score_m1"] == 0 and first[f"{t}_score_m2"] == 0
        assert last[f"{t}_score_p1"] == 0 and last[f"{t}_score_p2"] == 0
    assert first["donor_score_p1"] == pytest.approx(0.2) and last["donor_score_m2"] == pytest.approx(0.3)
    # position 2: donor s=.1, m2=.9 m1=.2 p1=.3 p2=.6 ; acceptor s=.2, m2=.05 m1=.1 p1=.3 p2=.4
    d, a, n = 0.1, 0.2, 0.5
    eps = 1e-10
    expect = {
        "relative_donor_probability": d / (d + a),
        "splice_probability": (d + a) / (d + a + n),
        "donor_acceptor_diff": (d - a) / max(d, a),
        "splice_neither_diff": (max(d, a) - n) / max(d, a, n),
        "donor_acceptor_logodds": math.log(d) - math.log(a),
        "splice_neither_logodds": math.log(d + a) - math.log(n),
        "probability_entropy": -sum(x * math.log(x) for x in (d, a, n)),
        "donor_context_neighbor_mean": 0.5,
        "donor_context_asymmetry": (0.9 + 0.2) - (0.3 + 0.6),
        "donor_context_max": 0.9,
        "donor_diff_m2": 0.1 - 0.9,
        "donor_diff_p1": 0.1 - 0.3,
        "donor_surge_ratio": 0.1 / 0.5,
        "donor_weighted_context": 0.1 * 0.9 + 0.2 * 0.2 + 0.4 * 0.1 + 0.2 * 0.3 + 0.1 * 0.6,
        "donor_peak_height_ratio": 0.1 / 0.5,
        "donor_second_derivative": 0.2 + 0.3 - 0.2,
        "donor_signal_strength": 0.1 - 0.5,
        "donor_context_diff_ratio": 0.1 / 0.9,
        "acceptor_context_neighbor_mean": 0.2125,
        "acceptor_signal_strength": 0.2 - 0.2125,
        "acceptor_peak_height_ratio": 0.2 / 0.2125,
        "donor_acceptor_peak_ratio": (0.1 / 0.5) / (0.2 / 0.2125),
        "type_signal_difference": (0.1 - 0.5) - (0.2 - 0.2125),
        "score_difference_ratio": (d - a) / (d + a),
        "signal_strength_ratio": (0.1 - 0.5) / (abs(0.2 - 0.2125) + eps),
        "relative_position": 2 / 5,
    }
    for name, value in expect.items():
        assert mid[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name
    assert mid["donor_is_local_peak"] == 0 and mid["acceptor_is_local_peak"] == 0
    assert first["donor_is_local_peak"] == 1  # 0.9 > 0 (edge) and > 0.2
    assert f[2]["donor_is_local_peak"] == 1 and f[2]["donor_score_p1"] == 0


def _naive_window(seq: str, centre: int, half: int) -> str:
    lo, hi = centre - half, centre + half + 1
    return "N" * max(0, -lo) + seq[max(lo, 0) : hi] + "N" * max(0, hi - len(seq))


def _naive_kmers(window: str, k: int) -> Counter:
    return Counter(w for w in (window[i : i + k] for i in range(len(window) - k + 1)) if set(w) <= set("ACGT"))


@pytest.mark.parametrize("gene_id", ["DGCR8", "CCDC188"])  # + and - strand
def test_kmers_match_naive_count_on_chr22(chr22_genes, gene_id):
    ann, genome, probs = chr22_genes
    gene = ann.genes.filter(gene_id=gene_id).row(0, named=True)
    seq = _gene_seq(genome, gene)
    length = gene["length"]
    positions = np.array([0, 1, 137, length // 2, length - 1])
    f = compute_features(probs[gene_id], positions, seq=seq, seq_offset=FLANK, kmer_sizes=(6,), kmer_window=500, gene=gene)
    counts = f.select(kmer_names(6)).to_numpy()
    for row, p in enumerate(positions):
        # the window straight from the genome, turned to transcription orientation
        g = gene["start"] + p if gene["strand"] == "+" else gene["end"] - p  # 1-based
        window = genome.fetch(gene["chrom"], g - 1 - 250, g + 250)
        if gene["strand"] == "-":
            window = reverse_complement(window)
        assert window == _naive_window(seq, FLANK + p, 250)
        naive = _naive_kmers(window, 6)
        got = {name[5:]: int(c) for name, c in zip(kmer_names(6), counts[row]) if c}
        assert got == dict(naive)
        acgt = [window.count(b) for b in "ACGT"]
        total = sum(acgt)
        assert f["gc_content"][row] == pytest.approx((acgt[1] + acgt[2]) / total, rel=1e-5)
        entropy = -sum(c / total * math.log2(c / total) for c in acgt if c)
        assert f["sequence_complexity"][row] == pytest.approx(entropy, rel=1e-5)


def test_kmer_counting_with_ns_and_short_sequences():
    seq = "ACGTNACGTTTTAN"
    bases = encode_sequence(seq)
    assert bases.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 3, 3, 3, 0, 4]
    codes = kmer_codes(bases, 2)
    starts = np.array([0, 5, 9])
    mat = kmer_counts(codes, starts, 4, 2, np.dtype(np.uint8))
    names = [n[5:] for n in kmer_names(2)]
    for col, s in enumerate(starts):
        got = {names[i]: int(c) for i, c in enumerate(mat[:, col]) if c}
        assert got == dict(_naive_kmers(seq[s : s + 5], 2))
    # window reaching past the given sequence counts as N
    probs = np.full((len(seq), 3), 1 / 3, dtype=np.float32)
    f = compute_features(probs, [0, 13], seq=seq, seq_offset=0, kmer_sizes=(1,), kmer_window=6, gene=GENE)
    assert f.select(kmer_names(1)).rows() == [(1, 1, 1, 1), (1, 0, 0, 2)]  # NNN|ACGT, TTAN|NNN
    with pytest.raises(InputError, match="need its sequence"):
        compute_features(probs, [0], seq=None, seq_offset=0, kmer_sizes=(1,), gene=GENE)
    with pytest.raises(InputError, match="outside gene"):
        compute_features(probs, [len(seq)], seq=seq, seq_offset=0, gene=GENE)


def test_no_leakage_features_ignore_annotation(chr22_genes):
    """Same positions, different annotation: identical features; and same null pattern for all labels."""
    ann, genome, probs = chr22_genes
    gene = ann.genes.filter(gene_id="ZDHHC8").row(0, named=True)
    seq = _gene_seq(genome, gene)
    sites = ann.gene_sites("ZDHHC8")
    cfg = BuildConfig(kmer_sizes=(3,), kmer_window=100)
    full, _ = gene_rows(gene, probs["ZDHHC8"], sites, seq, FLANK, cfg, batch=0)
    half, _ = gene_rows(gene, probs["ZDHHC8"], sites[::2], seq, FLANK, cfg, batch=0)
    feats = feature_columns(list(full.columns))
    common = full.join(half.select("position", "splice_type"), on=["position", "splice_type"]).sort("position")
    # a site dropped from the annotation keeps its features when its row becomes a non-site row
    moved = full.filter(pl.col("splice_type") != "neither").join(
        half.filter(splice_type="neither"), on="position", suffix="_h"
    )
    assert moved.height > 0
    for c in feats:
        assert moved[c].equals(moved[f"{c}_h"].alias(c)), c
    other = half.join(common.select("position", "splice_type"), on=["position", "splice_type"]).sort("position")
    assert common.select(feats).equals(other.select(feats))
    # identical null pattern (none) for every label
    by_label = full.group_by("pred_type").agg(pl.col(feats).null_count().sum())
    assert by_label.drop("pred_type").sum_horizontal().sum() == 0
    # and each row's features equal a direct computation at its position alone
    direct = [
        compute_features(probs["ZDHHC8"], [p], seq=seq, seq_offset=FLANK, kmer_sizes=(3,), kmer_window=100, gene=gene)
        for p in full.filter(pred_type="TP")["position"][:3].to_list()
    ]
    assert pl.concat(direct).equals(full.filter(pred_type="TP").head(3).select(feats))
