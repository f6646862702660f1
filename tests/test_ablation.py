from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from meta_spliceai.ablation import (
    ABLATION_COLUMNS,
    REFERENCE,
    evaluate_models,
    family_subsets,
    load_models,
    markdown,
)
from meta_spliceai.annotation import parse_annotation
from meta_spliceai.errors import InputError
from meta_spliceai.predictions import PredictionStore
from meta_spliceai.schema import FEATURE_SET_COLUMNS

FAMILIES = ("partner", "neighbourhood", "gene_peaks")


@pytest.fixture(scope="module")
def ablated(context_model):
    return context_model


def test_family_subsets():
    subsets = family_subsets(["base", "partner", "gene_peaks"], list(FEATURE_SET_COLUMNS["partner"]) + ["donor_score"],
                             ["donor_score"])
    assert list(subsets) == ["meta_scores+partner"]  # gene_peaks columns absent from the features: no model
    assert subsets["meta_scores+partner"] == ["donor_score", *FEATURE_SET_COLUMNS["partner"]]
    with pytest.raises(InputError, match="--feature-sets all"):
        family_subsets(["base"], ["donor_score"], ["donor_score"])


def test_train_writes_the_ablation_table(ablated):
    root, res = ablated
    table = pl.read_csv(root / "model" / "feature_ablation.tsv", separator="\t")
    assert table.columns == list(ABLATION_COLUMNS)
    methods = set(table["method"])
    assert {f"meta_scores+{f}" for f in FAMILIES} | {REFERENCE, "meta", "base"} <= methods
    ref = table.filter(pl.col("method") == REFERENCE)
    assert ref["d_pr_auc"].null_count() == ref.height  # the reference has no difference to itself
    row = table.filter(pl.col("method") == "meta_scores+partner", pl.col("site_type") == "donor").row(0, named=True)
    scores_only = table.filter(pl.col("method") == REFERENCE, pl.col("site_type") == "donor").row(0, named=True)
    assert row["d_pr_auc"] == pytest.approx(row["pr_auc"] - scores_only["pr_auc"], abs=2e-6)  # 6 digits in the TSV
    assert row["d_errors_0.5"] == (row["FP_0.5"] + row["FN_0.5"]) - (scores_only["FP_0.5"] + scores_only["FN_0.5"])
    assert row["d_pr_auc_lo"] <= row["d_pr_auc"] <= row["d_pr_auc_hi"] or np.isclose(row["d_pr_auc_lo"], row["d_pr_auc_hi"])
    assert row["features"] == len(json.loads((root / "model" / "meta_scores_only" / "features.json").read_text())
                                  ["features"]) + len(FEATURE_SET_COLUMNS["partner"])
    assert res.metrics["feature_ablation"]["reference"] == REFERENCE
    md = (root / "model" / "feature_ablation.md").read_text()
    assert md.startswith("| type | method |") and "meta_scores+gene_peaks" in md and md == markdown(table)


def test_models_reload_and_evaluate_like_train(ablated, chr22, keras_store):
    """The saved models, scored through apply's feature path on the test genes, give train's numbers."""
    root, res = ablated
    models, thresholds, cfg, floor = load_models(root / "model")
    assert set(models) >= {"meta", REFERENCE, *(f"meta_scores+{f}" for f in FAMILIES)}
    split = pl.read_csv(root / "model" / "split.tsv", separator="\t")
    test = split.filter(pl.col("part") == "test")["gene_id"].to_list()
    ann = parse_annotation(chr22 / "annotation.gtf")
    genes = ann.genes.filter(pl.col("gene_id").is_in(test)).sort("chrom", "start", "gene_id")
    sites = {g: {t: np.unique(ann.splice_sites.filter(gene_id=g, site_type=t)["position"].to_numpy())
                 for t in ("donor", "acceptor")} for g in test}
    c = evaluate_models(models, genes, PredictionStore(keras_store), sites, cfg, floor)
    again = c.summary(thresholds, n_boot=0, seed=42)
    for t in ("donor", "acceptor"):
        for m in ("meta", "meta_scores+partner", "base"):
            want = res.metrics["site_types"][t]["methods"][m]["pr_auc"]
            assert again["site_types"][t]["methods"][m]["pr_auc"] == pytest.approx(want, rel=1e-9), (t, m)
