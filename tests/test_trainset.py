from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from meta_spliceai.dataset.folder import open_dataset
from meta_spliceai.errors import InputError
from meta_spliceai.metamodel.trainset import (
    make_split,
    overlap_groups,
    prune_features,
    select_features,
)


def _genes(n=60, seed=0):
    rng = np.random.default_rng(seed)
    chrom = rng.choice(["1", "2", "3", "5"], n)
    start = rng.integers(1, 2_000_000, n)
    return pl.DataFrame({
        "gene_id": [f"G{i:03d}" for i in range(n)], "gene_name": [f"N{i % 40}" for i in range(n)],
        "chrom": chrom, "strand": rng.choice(["+", "-"], n), "start": start, "end": start + rng.integers(1000, 200_000, n),
    })


def _parts(split):
    return [set(split.train), set(split.valid), set(split.test)]


@pytest.mark.parametrize("kind", ["gene", "chromosome"])
@pytest.mark.parametrize("group_col", ["gene_id", "gene_name"])
def test_no_gene_in_two_parts_and_overlaps_together(kind, group_col):
    genes = _genes()
    s = make_split(genes, kind=kind, group_col=group_col, test_chroms=None, test_fraction=0.2, valid_fraction=0.2, seed=1)
    a, b, c = _parts(s)
    assert not (a & b or a & c or b & c)
    assert a | b | c == set(genes["gene_id"])
    part = s.part_of()
    groups = overlap_groups(genes)
    by_group: dict[int, set[str]] = {}
    for g, grp in groups.items():
        by_group.setdefault(grp, set()).add(part[g])
    assert all(len(v) == 1 for v in by_group.values()), "same-strand overlapping genes split apart"
    by_col: dict[str, set[str]] = {}
    for g, v in zip(genes["gene_id"], genes[group_col]):
        by_col.setdefault(v, set()).add(part[g])
    assert all(len(v) == 1 for v in by_col.values())
    if kind == "chromosome":
        on_test = set(genes.filter(pl.col("chrom").is_in(["1", "3", "5"]))["gene_id"])
        assert on_test <= set(s.test)  # SpliceAI's test chromosomes present in the data
    s2 = make_split(genes, kind=kind, group_col=group_col, test_chroms=None, test_fraction=0.2, valid_fraction=0.2, seed=1)
    assert s2.test == s.test and s2.valid == s.valid  # seeded


def test_overlap_groups_strand_aware():
    genes = pl.DataFrame({"gene_id": ["A", "B", "C", "D"], "chrom": ["1"] * 4, "strand": ["+", "+", "-", "+"],
                          "start": [100, 150, 120, 500], "end": [200, 300, 130, 600]})
    g = overlap_groups(genes)
    assert g["A"] == g["B"] and g["C"] != g["A"] and g["D"] != g["B"]


def test_chr_naming_and_bad_splits():
    genes = _genes().with_columns(("chr" + pl.col("chrom")).alias("chrom"))
    s = make_split(genes, kind="chromosome", group_col="gene_id", test_chroms=["1"], test_fraction=0.2,
                   valid_fraction=0.2, seed=0)
    assert set(genes.filter(pl.col("gene_id").is_in(s.test))["chrom"]) == {"chr1"}
    with pytest.raises(InputError, match="test chromosome.*absent from the data"):
        make_split(genes, kind="chromosome", group_col="gene_id", test_chroms=["7"], test_fraction=0.2,
                   valid_fraction=0.2, seed=0)
    with pytest.raises(InputError, match="too few genes to split"):
        make_split(genes.head(2), kind="gene", group_col="gene_id", test_chroms=None, test_fraction=0.2,
                   valid_fraction=0.2, seed=0)
    with pytest.raises(InputError, match="--group-col 'nope'"):
        make_split(genes, kind="gene", group_col="nope", test_chroms=None, test_fraction=0.2, valid_fraction=0.2, seed=0)


def test_open_dataset_forms_and_feature_subsets(chr22_build, tmp_path):
    ds = open_dataset(chr22_build)
    assert open_dataset(chr22_build / "master").files == ds.files
    assert open_dataset(ds.files[0]).files == ds.files[:1]
    feats = select_features(ds, None)
    assert "gene_type" in feats and "3mer_ACG" in feats
    assert not {"gene_id", "splice_type", "pred_type", "transcript_count", "tn_kind", "batch"} & set(feats)
    scores = select_features(ds, "scores")
    assert "donor_score" in scores and "3mer_ACG" not in scores and "gene_length" not in scores
    with pytest.raises(InputError, match="unknown feature subset"):
        select_features(ds, "nope")
    kept, dropped = prune_features(ds, feats, corr_thr=0.99, sample_rows=5000, seed=0)
    reasons = {d["feature"]: d["reason"] for d in dropped}
    assert set(kept) | set(reasons) == set(feats) and not set(kept) & set(reasons)
    assert any("zero variance" in r for r in reasons.values())  # chr22 genes lack gene_type -> constant columns
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="not a meta-spliceai build"):
        open_dataset(tmp_path / "x.parquet")


def test_open_dataset_completes_an_interrupted_in_place_change(tmp_path, chr22_dataset):
    """dedup/patch --inplace killed between the renames of its swap: training sees the new master, whole."""
    import json
    import os

    from conftest import copy_dataset

    from meta_spliceai.dataset.folder import JOURNAL, STAGING
    from meta_spliceai.maintenance.publish import staging
    from meta_spliceai.storage import link_or_copy

    root = copy_dataset(chr22_dataset, tmp_path / "ds")
    stage = staging(root)
    files = sorted((root / "master").iterdir())
    for f in files[1:]:  # the "new" dataset: one file fewer
        link_or_copy(f, stage / "master" / f.name, tmp_dir=stage)
    m = json.loads((root / "manifest.json").read_text())
    m["batches"] = {k: e for k, e in m["batches"].items() if e["file"] != files[0].name}
    (stage / "manifest.json").write_text(json.dumps(m))
    (root / JOURNAL).write_text(json.dumps({"op": "test", "new_master_ino": os.stat(stage / "master").st_ino}))
    os.rename(root / "master", stage / "old_master")  # killed between the two renames
    ds = open_dataset(root / "master")
    assert [f.name for f in ds.files] == [f.name for f in files[1:]]
    assert not (root / JOURNAL).exists() and not (root / STAGING).exists()


def test_pruning_reads_only_a_sample_of_row_groups(chr22_build, monkeypatch):
    """--prune-features on a sample: its statistics read about ``sample_rows`` rows of whole row groups drawn at
    random, not every row group of the dataset; the same seed drops the same columns."""
    import pyarrow.parquet as pq

    ds = open_dataset(chr22_build)
    feats = select_features(ds, None)
    n_groups = sum(pq.ParquetFile(f).num_row_groups for f in ds.files)
    assert n_groups >= 2
    reads = []
    real = pq.ParquetFile.read_row_group

    def counting(self, i, *a, **k):
        reads.append(i)
        return real(self, i, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    kept, dropped = prune_features(ds, feats, corr_thr=0.99, sample_rows=10, seed=3)
    assert len(reads) == 1  # 10 rows: one row group of the dataset's, not all of them
    assert any("zero variance" in d["reason"] for d in dropped) and kept
    again = prune_features(ds, feats, corr_thr=0.99, sample_rows=10, seed=3)
    assert again == (kept, dropped)
    reads.clear()
    prune_features(ds, feats, corr_thr=0.99, sample_rows=10**9, seed=3)
    assert len(reads) == n_groups  # a sample larger than the dataset reads it all
