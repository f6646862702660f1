from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from meta_spliceai.basemodel.store import PredictionStore
from meta_spliceai.dataset.schema import FEATURE_SET_COLUMNS
from meta_spliceai.errors import InputError
from meta_spliceai.metamodel.ablation import (
    ABLATION_COLUMNS,
    REFERENCE,
    ablation_table,
    family_subsets,
    markdown,
)
from meta_spliceai.metamodel.card import Corrector, load_card
from meta_spliceai.metamodel.scoring import evaluate_genes
from meta_spliceai.reference.annotation import parse_annotation

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
    card = json.loads((root / "model" / "model_card.json").read_text())
    assert row["features"] == len(card["ablations"][REFERENCE]["features"]) + len(FEATURE_SET_COLUMNS["partner"])
    assert res.metrics["feature_ablation"]["reference"] == REFERENCE
    md = (root / "model" / "feature_ablation.md").read_text()
    assert md.startswith("| type | method |") and "meta_scores+gene_peaks" in md and len(md.splitlines()) == table.height + 2
    assert markdown(table).splitlines()[0] == md.splitlines()[0]


def test_card_lists_the_family_models_and_evaluation_reproduces_train(ablated, chr22, keras_store):
    """The card's ablation models, scored through apply's feature path on the test genes, give train's table."""
    root, res = ablated
    loaded = load_card(root / "model")
    card = json.loads((root / "model" / "model_card.json").read_text())
    assert {f"meta_scores+{f}" for f in FAMILIES} | {REFERENCE} <= set(card["ablations"])
    split = pl.read_csv(root / "model" / "split.tsv", separator="\t")
    test = split.filter(pl.col("part") == "test")["gene_id"].to_list()
    ann = parse_annotation(chr22 / "annotation.gtf")
    genes = ann.genes.filter(pl.col("gene_id").is_in(test)).sort("chrom", "start", "gene_id")
    corr = Corrector(loaded.cfg, float(card["floor"]))
    summary, c = evaluate_genes(loaded, PredictionStore(keras_store), ann, genes, corr, n_boot=0, seed=42)
    assert c.methods[:3] == ["base", "calibrated_base", REFERENCE] and c.methods[-1] == "meta"
    thr = {tuple(k.split("/")): v for k, v in card["method_thresholds"].items()}
    table = ablation_table(c, thr, {}, n_boot=0, seed=42)
    want = pl.read_csv(root / "model" / "feature_ablation.tsv", separator="\t")
    for t in ("donor", "acceptor"):
        for m in ("meta", "meta_scores+partner", "meta_scores+gene_peaks", "base"):
            got = table.filter(site_type=t, method=m).row(0, named=True)
            exp = want.filter(site_type=t, method=m).row(0, named=True)
            assert got["pr_auc"] == pytest.approx(exp["pr_auc"], abs=2e-6), (t, m)
            assert got["d_errors_0.5"] == exp["d_errors_0.5"] and got["FP_0.5"] == exp["FP_0.5"], (t, m)
            assert summary["site_types"][t]["methods"][m]["pr_auc"] == pytest.approx(got["pr_auc"]), (t, m)
