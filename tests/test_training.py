from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from conftest import FAST_XGB, TINY_XGB

from meta_spliceai.config import DEFAULT_BUILD
from meta_spliceai.dataset.schema import SCHEMA_VERSION
from meta_spliceai.metamodel.comparison import SITE_TYPES
from meta_spliceai.metamodel.training import train


def test_outputs_and_card(chr22_model):
    out, res = chr22_model
    for f in ("model.ubj", "model_card.json", "metrics.json", "delta_vs_baseline.csv", "feature_importances.tsv",
              "pr_curves.png", "calibration.png", "gene_fp_fn_change.png", "feature_importances.png", "report.html",
              "report.md", "split.tsv", "row_scores.parquet"):
        assert (out / f).is_file(), f
    card = json.loads((out / "model_card.json").read_text())
    assert card["feature_settings"] == {"kmer_sizes": [3], "kmer_window": 500,
                                        "feature_sets": list(DEFAULT_BUILD.feature_sets)}
    assert card["features"][0] == "donor_score" and "gene_type" in card["features"] and "3mer_AAA" in card["features"]
    assert not {"gene_id", "splice_type", "pred_type", "transcript_count", "tn_kind", "batch"} & set(card["features"])
    assert card["floor"] == DEFAULT_BUILD.hard_prob  # the build's hard_prob
    assert card["schema_version"] == SCHEMA_VERSION and card["base_model"]["base_model"] == "spliceai"
    assert set(card["thresholds"]) == {"donor", "acceptor"} and card["dataset"]["manifest_digest"]
    m = res.metrics
    for t in SITE_TYPES:
        meths = m["site_types"][t]["methods"]
        assert list(meths) == ["base", "calibrated_base", "meta_scores_only", "meta"]
        for name, r in meths.items():
            assert 0 <= r["pr_auc"] <= 1 and set(r) >= {"topk_0.5x", "topk_1x", "topk_2x", "topk_4x", "at_0.5", "at_valid"}
            if name != "base":
                ci = r["vs_base"]["pr_auc"]["ci95"]
                assert ci[0] <= r["vs_base"]["pr_auc"]["difference"] + 1e-9 and ci[1] >= ci[0]
    doc = json.loads((out / "metrics.json").read_text())
    assert all(v["agree"] for v in doc["baseline_tsv_check"].values())  # base recount == build's gene_performance.tsv


def test_no_gene_in_two_parts(chr22_model):
    out, _ = chr22_model
    split = pl.read_csv(out / "split.tsv", separator="\t")
    assert split["gene_id"].is_unique().all() and set(split["part"]) == {"train", "valid", "test"}


def test_base_and_meta_on_identical_positions(chr22_model, keras_store):
    from meta_spliceai.basemodel.store import PredictionStore

    out, res = chr22_model
    test = pl.read_csv(out / "split.tsv", separator="\t").filter(pl.col("part") == "test")["gene_id"].to_list()
    store = PredictionStore(keras_store)
    length = sum(store.read(g).shape[0] for g in test)
    assert res.metrics["positions"] == length
    delta = pl.read_csv(out / "delta_vs_baseline.csv")
    for t in SITE_TYPES:
        d = delta.filter(pl.col("splice_type") == t)
        n_sites = res.metrics["site_types"][t]["sites"]
        assert d["n_sites"].sum() == n_sites
        for who in ("base", "meta"):  # the same sites counted by both: TP + FN = sites
            assert (d[f"{who}_TP"] + d[f"{who}_FN"]).sum() == n_sites


def _row_scores(out):
    return pl.read_parquet(out / "row_scores.parquet").sort("gene_id", "position")


def test_poisoned_metadata_does_not_change_the_model(chr22_build, chr22_model, tmp_path):
    """Overwrite a metadata column with the label: the model's scores must not move."""
    out, _ = chr22_model
    poisoned = tmp_path / "build"
    shutil.copytree(chr22_build, poisoned, ignore=shutil.ignore_patterns(".lock"))
    for f in sorted((poisoned / "master").glob("*.parquet")):
        t = pq.read_table(f)
        code = pl.from_arrow(t.column("splice_type")).replace_strict({"neither": 0, "donor": 1, "acceptor": 2},
                                                                      return_dtype=pl.Int32)
        t2 = t.set_column(t.schema.get_field_index("transcript_count"), "transcript_count", code.to_arrow())
        f.unlink()  # master files are hard links to the trims: replace, never write through
        pq.write_table(t2.replace_schema_metadata(t.schema.metadata), f)
    out2 = tmp_path / "model"
    train(dataset=poisoned, out_dir=out2, model=FAST_XGB, bootstrap=0, ablations=False, progress=False)
    a, b = _row_scores(out), _row_scores(out2)
    assert a.height == b.height
    np.testing.assert_array_equal(a["donor"].to_numpy(), b["donor"].to_numpy())
    np.testing.assert_array_equal(a["acceptor"].to_numpy(), b["acceptor"].to_numpy())


def test_feature_subset_option(chr22_build, tmp_path):
    res = train(dataset=chr22_build, out_dir=tmp_path / "m", model=FAST_XGB, bootstrap=0, ablations=False,
                feature_subset=["donor_score", "acceptor_score", "neither_score"], progress=False)
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["features"] == ["donor_score", "acceptor_score", "neither_score"]
    assert list(res.metrics["site_types"]["donor"]["methods"]) == ["base", "meta"]


def test_lower_floor_uses_sampling_weights(chr22_build, tmp_path):
    """Below the build's hard_prob the build sampled TNs: weights from the recomputed strata."""
    from meta_spliceai.basemodel.store import PredictionStore
    from meta_spliceai.dataset.folder import open_dataset
    from meta_spliceai.metamodel.trainset import easy_weights
    from meta_spliceai.reference.annotation import load_annotation

    ds = open_dataset(chr22_build)
    ann = load_annotation(ds.build["inputs"]["gtf"], cache_dir=chr22_build / "annotation")
    genes = sorted(pl.scan_parquet(ds.files).select("gene_id").unique().collect()["gene_id"])
    store = PredictionStore(ds.store_dir)
    hard = ds.build["config"]["hard_prob"]
    assert easy_weights(ds, genes, ann, store, hard) == {}  # at hard_prob: every position kept, no weights
    w = easy_weights(ds, genes, ann, store, hard / 10)
    assert set(w) == set(genes) and min(w.values()) >= 1 and max(w.values()) > 10
    res = train(dataset=chr22_build, out_dir=tmp_path / "m", model=FAST_XGB, bootstrap=0, ablations=False,
                floor=hard / 10, progress=False)
    assert res.metrics["scored_positions"] > 0
    assert json.loads((tmp_path / "m" / "model_card.json").read_text())["floor"] == hard / 10


def test_group_col_reads_the_datasets_own_gene_type(tmp_path, chr22, chr22_dataset):
    """A dataset patched with gene types (its build GTF has none): --group-col gene_type groups by the patched types."""
    import re

    from meta_spliceai.maintenance.patching import patch

    types = ["protein_coding", "lncRNA", "pseudogene", "miRNA"]
    genes = sorted(pl.read_parquet(chr22_dataset / "master" / "*.parquet", columns=["gene_id"])["gene_id"].unique())
    type_of = {g: types[i % len(types)] for i, g in enumerate(genes)}
    lines = []
    for line in (chr22 / "annotation.gtf").read_text().splitlines():
        gid = re.search(r'gene_id "([^"]+)"', line)
        lines.append(line + (f' gene_type "{type_of.get(gid.group(1), "protein_coding")}";' if gid else ""))
    (tmp_path / "typed.gtf").write_text("\n".join(lines) + "\n")
    patch(dataset=chr22_dataset, dst=tmp_path / "ds", gtf=tmp_path / "typed.gtf")
    res = train(dataset=tmp_path / "ds", out_dir=tmp_path / "m", model=TINY_XGB, bootstrap=0, ablations=False,
                group_col="gene_type", progress=False)
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    # 4 types, of which overlapping genes join two (before: 1 group, the build GTF's "unknown", and no split)
    assert card["training"]["group_col"] == "gene_type" and 1 < card["training"]["groups"] <= len(types)
    parts = pl.read_csv(tmp_path / "m" / "split.tsv", separator="\t")
    # one gene type, one part
    assert all(len({parts.filter(pl.col("gene_id") == g)["part"].item() for g in genes if type_of[g] == t}) == 1
               for t in types)
    assert res.metrics


def test_too_small_validation_set_warns_and_the_card_says_so(chr22_model, chr22):
    """chr22's 17 genes leave a few validation genes, with fewer sites than the floor: a warning, in the card too."""
    from meta_spliceai.config import DEFAULT_TRAIN
    from meta_spliceai.metamodel.training import validation_check
    from meta_spliceai.reference.annotation import parse_annotation

    out, res = chr22_model
    card = json.loads((out / "model_card.json").read_text())
    v = card["validation"]
    valid = pl.read_csv(out / "split.tsv", separator="\t").filter(pl.col("part") == "valid")["gene_id"].to_list()
    sites = parse_annotation(chr22 / "annotation.gtf").splice_sites.filter(pl.col("gene_id").is_in(valid))
    assert v["genes"] == len(valid) and v["min_sites_per_type"] == DEFAULT_TRAIN.min_valid_sites
    assert v["sites"] == {t: sites.filter(pl.col("site_type") == t).height for t in SITE_TYPES}
    assert v["too_small"] and min(v["sites"].values()) < DEFAULT_TRAIN.min_valid_sites
    assert res.warnings == [v["warning"]]
    assert v["warning"].startswith(f"validation set too small to choose a threshold: {len(valid)} validation gene")
    assert f"donor {card['thresholds']['donor']:.2f}" in v["warning"] and "\n" not in v["warning"]
    # a floor the validation genes meet: no warning
    by_gene = {g: {t: sites.filter((pl.col("gene_id") == g) & (pl.col("site_type") == t))["position"].to_list()
                   for t in SITE_TYPES} for g in valid}
    ok = validation_check(valid, by_gene, card["thresholds"], min_sites=min(v["sites"].values()))
    assert not ok["too_small"] and ok["warning"] is None


def test_one_class_build_is_refused_before_any_work(tmp_path, chr2, chr2_random_store):
    """A build over single-exon genes holds only `neither` rows: train refuses in one line, and makes no folder."""
    import pytest

    from meta_spliceai.dataset.builder import build
    from meta_spliceai.errors import InputError

    genes = tmp_path / "single_exon.txt"
    genes.write_text("ENSG00000252465.1\nENSG00000263948.1\nENSG00000244372.2\nENSG00000232337.1\n")
    build(output_dir=tmp_path / "build", fasta=chr2 / "genome.fa.gz", gtf=chr2 / "annotation.gtf",
          gene_ids_file=genes, kmer_sizes=(), predictions=chr2_random_store, progress=False)
    with pytest.raises(InputError) as err:
        train(dataset=tmp_path / "build", out_dir=tmp_path / "model", model=FAST_XGB, bootstrap=0, progress=False)
    msg = str(err.value)
    assert "no donor, acceptor class" in msg and "single-exon" in msg and str(tmp_path / "build") in msg, msg
    assert not (tmp_path / "model").exists()


def test_card_is_written_last(chr22_model):
    out, _ = chr22_model
    card = (out / "model_card.json").stat().st_mtime_ns
    others = [p for p in out.rglob("*") if p.is_file() and p.name != "model_card.json"]
    assert others and all(p.stat().st_mtime_ns <= card for p in others), \
        [p.name for p in others if p.stat().st_mtime_ns > card]
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_a_failed_retrain_leaves_no_card(chr22_build, chr22_model, tmp_path, monkeypatch):
    """Re-training into a finished folder removes its card first: a run that dies midway leaves a folder apply
    refuses, never the old card beside half of the new files."""
    import pytest

    from meta_spliceai.metamodel import training
    from meta_spliceai.metamodel.card import load_card

    out = tmp_path / "model"
    shutil.copytree(chr22_model[0], out)

    def boom(*a, **k):
        raise RuntimeError("killed while fitting")

    monkeypatch.setattr(training, "_fit_one", boom)
    with pytest.raises(RuntimeError):
        train(dataset=chr22_build, out_dir=out, model=FAST_XGB, bootstrap=0, progress=False)
    assert (out / "model.ubj").is_file() and not (out / "model_card.json").exists()
    assert not (out / ".rows").exists() and not (out / ".xgb-cache").exists()  # the failed run's scratch is gone
    from meta_spliceai.errors import InputError

    with pytest.raises(InputError, match="is incomplete: it has no model_card.json"):
        load_card(out)


def test_not_enough_disk_is_refused_before_any_work(chr22_build, tmp_path, monkeypatch):
    """The scratch (rows above the floor, XGBoost's cache) is estimated first: too little free disk is one line
    naming the need and the free space, and no folder is made."""
    import pytest

    from meta_spliceai.errors import InputError
    from meta_spliceai.metamodel import training

    real = shutil.disk_usage
    monkeypatch.setattr(training.shutil, "disk_usage", lambda p: real(p)._replace(free=1024))
    with pytest.raises(InputError) as err:
        train(dataset=chr22_build, out_dir=tmp_path / "model", model=FAST_XGB, bootstrap=0, progress=False)
    msg = str(err.value)
    assert "not enough free disk for training" in msg and "GiB is free" in msg and "rows above --floor" in msg, msg
    assert not (tmp_path / "model").exists()
    # a matrix over --max-memory needs the external-memory cache too: the refusal names it and the way out
    with pytest.raises(InputError, match="XGBoost external-memory cache.*raise --max-memory"):
        train(dataset=chr22_build, out_dir=tmp_path / "model", model=FAST_XGB, bootstrap=0, progress=False,
              max_memory=1e-6)


def test_scratch_estimate_and_fit_figures_are_recorded(chr22_model):
    """metrics.json says what the scratch was estimated at (and what the rows took), and how the fit went."""
    out, res = chr22_model
    doc = json.loads((out / "metrics.json").read_text())
    s = doc["scratch"]
    assert s["rows_above_floor"] > 0 and s["need_bytes"] >= s["rows_bytes"] > 0 and s["free_bytes"] > 0
    assert 0 < s["rows_bytes_written"] <= s["rows_bytes"]  # the estimate is an upper bound
    t = doc["timings"]
    assert t["fit_meta_rounds"] >= 1 and t["fit_meta_round_s"] > 0 and t["fit_meta_matrix_s"] >= 0
