from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from meta_spliceai.config import FLANK, RAW_EASY_POOL_FACTOR, BuildConfig
from meta_spliceai.dataset.evaluation import evaluate_gene, within
from meta_spliceai.dataset.rows import gene_rows
from meta_spliceai.dataset.sampling import easy_count, gene_rng, select_candidates, trim
from meta_spliceai.dataset.schema import PERFORMANCE_COLUMNS, dataset_polars_schema
from meta_spliceai.errors import InputError
from meta_spliceai.reference.annotation import parse_annotation
from meta_spliceai.reference.genome import Genome, reverse_complement

CFG = BuildConfig(kmer_sizes=(2,), kmer_window=50)


@pytest.fixture(scope="module")
def chr22_build(chr22):
    ann = parse_annotation(chr22 / "annotation.gtf")
    genome = Genome(chr22 / "genome.fa.gz")
    npz = np.load(chr22 / "reference" / "keras_spliceai_outputs.npz")
    genes = {g["gene_id"]: g for g in ann.genes.iter_rows(named=True)}
    seqs = {}
    for gid, g in genes.items():
        s = genome.fetch(g["chrom"], g["start"] - 1 - FLANK, g["end"] + FLANK)
        seqs[gid] = reverse_complement(s) if g["strand"] == "-" else s
    return ann, genes, seqs, {k: npz[k] for k in npz.files}


def _rows(build, gene_id, cfg=CFG, batch=0):
    ann, genes, seqs, probs = build
    return gene_rows(genes[gene_id], probs[gene_id], ann.gene_sites(gene_id), seqs[gene_id], FLANK, cfg, batch)


def test_stable_seeding():
    a = gene_rng(42, "ENSG00000100030.14", "easy-pool").integers(0, 1 << 30, 3)
    b = gene_rng(42, "ENSG00000100030.14", "easy-pool").integers(0, 1 << 30, 3)
    assert a.tolist() == b.tolist()
    assert a.tolist() != gene_rng(43, "ENSG00000100030.14", "easy-pool").integers(0, 1 << 30, 3).tolist()
    assert a.tolist() != gene_rng(42, "ENSG00000100030.14", "easy-trim").integers(0, 1 << 30, 3).tolist()
    # pinned: BLAKE2b + PCG64, no dependence on the process (python's hash() is salted)
    assert gene_rng(42, "G", "s").integers(0, 1000, 3).tolist() == [689, 884, 100]


def test_easy_count():
    assert easy_count(0.3, 10) == 3 and easy_count(0.5, 7) == 4 and easy_count(0.5, 7, 3) == 11
    assert easy_count(0.0, 100) == 0
    with pytest.raises(InputError, match="easy ratio"):
        easy_count(-0.1, 3)


def test_candidate_classes_and_counts():
    rng = np.random.default_rng(3)
    length = 5000
    probs = np.zeros((length, 3), dtype=np.float32)
    probs[:, 1:] = rng.random((length, 2), dtype=np.float32) ** 200  # mostly tiny, a few hits
    probs[:, 0] = 1 - probs[:, 1:].sum(axis=1).clip(0, 1)
    donors, acceptors = [500, 2000, 4990], [800, 2600]
    probs[[500, 2000], 2] = 0.9
    out = evaluate_gene(probs, donors, acceptors, threshold=0.5, window=2)
    cand = select_candidates(out, probs, hard_prob=0.15, window=75, easy_ratio=0.5, seed=7, gene_id="G")
    again = select_candidates(out, probs, hard_prob=0.15, window=75, easy_ratio=0.5, seed=7, gene_id="G")
    for field in ("positions", "splice_type", "pred_type", "tn_kind", "site_index"):
        assert np.array_equal(getattr(cand, field), getattr(again, field))
    order = np.lexsort((cand.splice_type, cand.positions))
    assert np.array_equal(order, np.arange(len(cand)))
    non_tn = cand.pred_type != 3
    n_non_tn = int(non_tn.sum())
    assert n_non_tn == out.site_positions.size + out.fp_positions.size
    top = probs[:, 1:].max(axis=1)
    tn_pos = cand.positions[~non_tn]
    kinds = cand.tn_kind[~non_tn]
    hard_expected = np.flatnonzero((top >= 0.15) & ~out.non_tn_mask())
    assert np.array_equal(tn_pos[kinds == 0], hard_expected)
    near = within(np.flatnonzero(out.non_tn_mask()), length, 75)
    window_expected = np.flatnonzero(near & ~out.non_tn_mask() & (top < 0.15))
    assert np.array_equal(tn_pos[kinds == 1], window_expected)
    easy = tn_pos[kinds == 2]
    available = length - out.non_tn_mask().sum() - hard_expected.size - window_expected.size
    assert 0 < easy.size == min(math.ceil(RAW_EASY_POOL_FACTOR * 0.5 * n_non_tn), available)
    assert not near[easy].any() and (top[easy] < 0.15).all()
    other = select_candidates(out, probs, hard_prob=0.15, window=75, easy_ratio=0.5, seed=8, gene_id="G")
    assert not np.array_equal(other.positions, cand.positions)  # another seed, another pool


def test_gene_rows_schema_labels_and_determinism(chr22_build):
    ann, genes, _, _ = chr22_build
    schema = dataset_polars_schema(CFG.kmer_sizes, CFG.kmer_window)
    all_rows = []
    for gid in genes:
        rows, perf = _rows(chr22_build, gid)
        assert rows.schema == schema
        assert rows.select(pl.struct("position", "splice_type").is_duplicated().any()).item() is False
        assert rows.equals(rows.sort("position", "splice_type"))
        assert [list(p) for p in perf] == [list(PERFORMANCE_COLUMNS)] * 2
        all_rows.append(rows)
    rows = pl.concat(all_rows)
    # the site rows are exactly the annotated sites, once each, whatever the model said
    site_rows = rows.filter(pl.col("splice_type") != "neither")
    got = site_rows.select("gene_id", pl.col("splice_type").alias("site_type"), "genomic_position").sort(pl.all())
    want = ann.splice_sites.select("gene_id", "site_type", "genomic_position").sort(pl.all())
    assert got.equals(want)
    assert set(site_rows["pred_type"]) <= {"TP", "FN"}
    assert set(rows.filter(splice_type="neither")["pred_type"]) <= {"FP", "TN"}
    assert (site_rows["transcript_count"] >= 1).all() and (site_rows["transcript_ids"].list.len() >= 1).all()
    neither = rows.filter(splice_type="neither")
    assert (neither["transcript_count"] == 0).all() and neither["tn_kind"].is_null().sum() == neither.filter(
        pred_type="FP"
    ).height
    # determinism: same gene, other batch number -> same rows except the batch column
    again, _ = _rows(chr22_build, "DGCR8", batch=9)
    first = rows.filter(gene_id="DGCR8")
    assert again.drop("batch").equals(first.drop("batch")) and set(again["batch"]) == {9}


def test_trim_counts_and_batch_independence(chr22_build):
    raws = {gid: _rows(chr22_build, gid)[0] for gid in ("DGCR8", "CCDC188", "RIMBP3", "ZNF74")}
    for gid, raw in raws.items():
        t = trim(raw, easy_ratio=CFG.easy_ratio, seed=CFG.seed)
        n_non_tn = raw.filter(pl.col("pred_type") != "TN").height
        pool = raw.filter(tn_kind="easy").height
        assert pool <= easy_count(CFG.easy_ratio, n_non_tn, RAW_EASY_POOL_FACTOR)
        if gid == "DGCR8":  # long gene: the pool is not capped
            assert pool == easy_count(CFG.easy_ratio, n_non_tn, RAW_EASY_POOL_FACTOR) > 0
        assert t.filter(tn_kind="easy").height == min(easy_count(CFG.easy_ratio, n_non_tn), pool)
        not_easy = pl.col("tn_kind").fill_null("") != "easy"
        assert t.filter(not_easy).equals(raw.filter(not_easy))
        assert t.equals(trim(raw, easy_ratio=CFG.easy_ratio, seed=CFG.seed))
        assert t.join(raw, on=t.columns, how="anti", nulls_equal=True).height == 0  # a subset of raw
    # a batch trims like its genes one by one, in any batch composition
    batch_a = trim(pl.concat([raws["DGCR8"], raws["CCDC188"]]), easy_ratio=0.5, seed=42)
    batch_b = trim(pl.concat([raws["ZNF74"], raws["DGCR8"], raws["RIMBP3"]]), easy_ratio=0.5, seed=42)
    alone = trim(raws["DGCR8"], easy_ratio=0.5, seed=42)
    assert batch_a.filter(gene_id="DGCR8").equals(alone) and batch_b.filter(gene_id="DGCR8").equals(alone)
    # easy_ratio 0 keeps no easy row
    assert trim(raws["DGCR8"], easy_ratio=0.0, seed=42).filter(tn_kind="easy").height == 0


def test_gene_rows_bad_input(chr22_build):
    ann, genes, seqs, probs = chr22_build
    g = genes["DGCR8"]
    with pytest.raises(InputError, match="rows but the gene spans"):
        gene_rows(g, probs["DGCR8"][:-1], ann.gene_sites("DGCR8"), seqs["DGCR8"], FLANK, CFG, 0)
    dup = pl.concat([ann.gene_sites("DGCR8"), ann.gene_sites("DGCR8").head(1)])
    with pytest.raises(InputError, match="twice"):
        gene_rows(g, probs["DGCR8"], dup, seqs["DGCR8"], FLANK, CFG, 0)
    shifted = ann.gene_sites("DGCR8").with_columns(pl.col("genomic_position") + 1)
    with pytest.raises(InputError, match="disagree"):
        gene_rows(g, probs["DGCR8"], shifted, seqs["DGCR8"], FLANK, CFG, 0)


def test_chr2_bundle_sites_with_synthetic_scores(chr2):
    """Many transcripts per gene, exon-only GTF: site rows are still exactly the annotated sites."""
    ann = parse_annotation(chr2 / "annotation.gtf")
    cfg = BuildConfig(kmer_sizes=())
    rng = np.random.default_rng(0)
    got = []
    for gene in ann.genes.iter_rows(named=True):
        probs = (rng.random((gene["length"], 3), dtype=np.float32) ** 20).astype(np.float32)
        rows, _ = gene_rows(gene, probs, ann.gene_sites(gene["gene_id"]), None, 0, cfg, 0)
        got.append(rows.filter(pl.col("splice_type") != "neither").select("gene_id", "splice_type", "genomic_position"))
    got_sites = pl.concat(got).rename({"splice_type": "site_type"}).sort(pl.all())
    assert got_sites.equals(ann.splice_sites.select("gene_id", "site_type", "genomic_position").sort(pl.all()))


def test_gene_without_rows_still_has_the_schema():
    gene = {"gene_id": "E", "gene_name": "E", "chrom": "1", "strand": "-", "start": 101, "end": 400,
            "transcript_count": 1, "exon_count": 1, "gene_type": "lncRNA"}
    probs = np.zeros((300, 3), dtype=np.float32)
    probs[:, 0] = 1.0
    probs[5, 0], probs[5, 1] = 0.0, 1.0e-20  # also: negative noise would be clipped, not NaN
    sites = pl.DataFrame(schema={"site_type": pl.String, "position": pl.Int64, "genomic_position": pl.Int64,
                                 "transcript_ids": pl.List(pl.String), "transcript_count": pl.Int32})
    rows, perf = gene_rows(gene, probs, sites, "A" * 10_600, FLANK, CFG, 3)
    assert rows.height == 0 and rows.schema == dataset_polars_schema(CFG.kmer_sizes, CFG.kmer_window)
    assert [p["TN"] for p in perf] == [300, 300] and trim(rows, easy_ratio=0.5, seed=1).height == 0
