from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from meta_spliceai.config import BuildConfig
from meta_spliceai.dataset.selection import (
    candidate_pool,
    check_policy,
    evaluate_pool,
    plan_batches,
    rank_by_errors,
    select_genes,
)
from meta_spliceai.errors import InputError
from meta_spliceai.reference.annotation import parse_annotation
from meta_spliceai.reference.genome import Genome, match_contigs


@pytest.fixture(scope="module")
def chr2_pool(chr2):
    ann = parse_annotation(chr2 / "annotation.gtf")
    genome = Genome(chr2 / "genome.fa.gz")
    cmap = match_contigs(ann.genes["chrom"].unique().to_list(), genome.contigs)
    return ann, candidate_pool(ann, cmap, genome.contigs, None)


def test_pool_has_multi_exon_genes_in_canonical_order(chr2_pool):
    ann, pool = chr2_pool
    assert pool.height == ann.splice_sites["gene_id"].n_unique() == 12
    assert pool.equals(pool.sort("chrom", "start", "gene_id"))


def test_pool_gene_types(chr2_pool, chr2):
    ann, _ = chr2_pool
    genome = Genome(chr2 / "genome.fa.gz")
    cmap = {"chr2": "chr2"}
    pc = candidate_pool(ann, cmap, genome.contigs, ["protein_coding"])
    assert set(pc["gene_type"]) == {"protein_coding"} and pc.height > 0
    with pytest.raises(InputError, match="--gene-types nonsense not in the annotation"):
        candidate_pool(ann, cmap, genome.contigs, ["nonsense"])


def test_pool_drops_genes_without_sequence(chr2_pool):
    ann, pool = chr2_pool
    short = candidate_pool(ann, {"chr2": "chr2"}, {"chr2": 160_700_000}, None)
    assert 0 < short.height < pool.height and (short["end"] <= 160_700_000).all()


def test_random_is_seeded(chr2_pool):
    _, pool = chr2_pool
    a = select_genes(pool, policy="random", n_genes=5, seed=1)
    assert a == select_genes(pool, policy="random", n_genes=5, seed=1)
    assert a != select_genes(pool, policy="random", n_genes=5, seed=2)
    assert len(a) == 5 and a == [g for g in pool["gene_id"] if g in a]  # canonical order


def test_error_ranking_and_hard(chr2_pool):
    _, pool = chr2_pool
    ids = pool["gene_id"].to_list()
    perf = pl.DataFrame({
        "gene_id": ids * 2,
        "splice_type": ["donor"] * len(ids) + ["acceptor"] * len(ids),
        "TP": [5] * len(ids) * 2,
        "FP": [i % 3 for i in range(len(ids))] * 2,
        "FN": [len(ids) - i for i in range(len(ids))] * 2,
    })
    assert rank_by_errors(pool, perf, "error_fn")[:2] == ids[:2]
    assert rank_by_errors(pool, perf, "error_fp")[0] == ids[2]  # FP = 2, first in canonical order
    hard = rank_by_errors(pool, perf, "hard")
    assert hard[0] == ids[0]  # most FN → lowest F1
    top3 = select_genes(pool, policy="error_total", n_genes=3, seed=0, perf=perf)
    assert len(top3) == 3 and set(top3) == set(rank_by_errors(pool, perf, "error_total")[:3])


def test_evaluate_pool_counts(chr2_pool):
    ann, pool = chr2_pool
    lengths = dict(pool.select("gene_id", "length").iter_rows())

    def flat(gid):  # nothing called anywhere: every site is FN, no FP
        p = np.zeros((lengths[gid], 3), dtype=np.float32)
        p[:, 0] = 1
        return p

    perf = evaluate_pool(pool, ann, flat, BuildConfig())
    assert perf.height == 2 * pool.height
    assert perf["TP"].sum() == 0 and perf["FP"].sum() == 0
    assert perf["FN"].sum() == ann.splice_sites.height


def test_plan_batches():
    assert plan_batches(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]


def test_unknown_policy():
    with pytest.raises(InputError, match="unknown --subset-policy 'worst'"):
        check_policy("worst")
