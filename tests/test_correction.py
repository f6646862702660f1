from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest
from conftest import make_foreign, write_store

from meta_spliceai.basemodel.store import PredictionStore
from meta_spliceai.dataset.schema import SCHEMA_VERSION
from meta_spliceai.errors import ConfigMismatchError
from meta_spliceai.metamodel.card import load_card
from meta_spliceai.metamodel.correction import apply


def _ref(chr22):
    return {"fasta": chr22 / "genome.fa.gz", "gtf": chr22 / "annotation.gtf"}


@pytest.fixture(scope="module")
def applied(tmp_path_factory, chr22, chr22_model, keras_store):
    out, _ = chr22_model
    train_genes = pl.read_csv(out / "split.tsv", separator="\t").filter(pl.col("part") == "train")["gene_id"].to_list()
    dest = tmp_path_factory.mktemp("apply") / "out"
    res = apply(model=out, predictions=keras_store, out=dest, genes=train_genes, progress=False, **_ref(chr22))
    return dest, res, train_genes


def test_apply_on_training_genes_reproduces_train_scores(applied, chr22_model):
    dest, res, train_genes = applied
    out, _ = chr22_model
    rows = pl.read_parquet(out / "row_scores.parquet").filter(pl.col("part") == "train")
    assert set(rows["gene_id"]) <= set(train_genes) and rows.height > 100
    scores = PredictionStore(dest / "scores")
    for gid, part in rows.partition_by("gene_id", as_dict=True).items():
        track = scores.read(gid[0])
        pos = part["position"].to_numpy()
        np.testing.assert_allclose(track[pos, 2], part["donor"].to_numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(track[pos, 1], part["acceptor"].to_numpy(), rtol=1e-6, atol=1e-7)


def test_unscored_positions_keep_base_scores(applied, keras_store, chr22_model):
    dest, _, train_genes = applied
    floor = json.loads((chr22_model[0] / "model_card.json").read_text())["floor"]
    base, meta = PredictionStore(keras_store), PredictionStore(dest / "scores")
    g = train_genes[0]
    b, m = base.read(g), meta.read(g)
    low = b[:, 1:].max(axis=1) < floor
    np.testing.assert_array_equal(b[low], m[low])
    assert not np.array_equal(b[~low], m[~low])


def test_calls_tsv_and_bed(applied, chr22_model):
    dest, res, _ = applied
    tsv = pl.read_csv(dest / "calls.tsv", separator="\t")
    bed = pl.read_csv(dest / "calls.bed", separator="\t", has_header=False,
                      new_columns=["chrom", "start", "end", "name", "score", "strand"])
    assert tsv.height == bed.height == res["calls"] > 0
    assert (bed["start"] == tsv["position"] - 1).all() and (bed["end"] == tsv["position"]).all()
    assert (bed["chrom"] == tsv["chrom"]).all() and set(tsv["chrom"].cast(str)) == {"22"}
    thr = json.loads((chr22_model[0] / "model_card.json").read_text())["thresholds"]
    for t in ("donor", "acceptor"):
        assert (tsv.filter(pl.col("type") == t)["meta_score"] >= thr[t] - 1e-6).all()


def test_contig_names_follow_the_annotation(tmp_path, chr22, chr22_model, keras_store):
    gtf = tmp_path / "chr.gtf"
    gtf.write_text("".join(("chr" + line if line.strip() and not line.startswith("#") else line)
                           for line in (chr22 / "annotation.gtf").read_text().splitlines(keepends=True)))
    gene = pl.read_csv(chr22_model[0] / "split.tsv", separator="\t")["gene_id"][0]
    res = apply(model=chr22_model[0], predictions=keras_store, out=tmp_path / "o", fasta=chr22 / "genome.fa.gz",
                gtf=gtf, genes=[gene], progress=False)
    bed = (tmp_path / "o" / "calls.bed").read_text().splitlines()
    assert res["calls"] == len(bed) and all(line.startswith("chr22\t") for line in bed)


def test_resume_is_a_no_op(applied, chr22, chr22_model, keras_store):
    dest, res, genes = applied
    before = (dest / "calls.tsv").read_bytes()
    again = apply(model=chr22_model[0], predictions=keras_store, out=dest, genes=genes, progress=False, **_ref(chr22))
    assert again["corrected_now"] == 0 and (dest / "calls.tsv").read_bytes() == before


def test_card_mismatch_refused(tmp_path, chr22, chr22_model, keras_store):
    out = chr22_model[0]
    other = write_store(tmp_path / "store", {g: PredictionStore(keras_store).read(g) for g in ["TANGO2"]})
    meta = PredictionStore(other)
    f = meta.file_of("TANGO2")
    import pyarrow.parquet as pq

    t = pq.read_table(f)
    md = json.loads(t.schema.metadata[b"meta_spliceai.prediction_store"])
    md["base_model"] = "openspliceai"
    pq.write_table(t.replace_schema_metadata({b"meta_spliceai.prediction_store": json.dumps(md)}), f)
    with pytest.raises(ConfigMismatchError, match="another base model"):
        apply(model=out, predictions=other, out=tmp_path / "o", genes=["TANGO2"], progress=False, **_ref(chr22))
    card = tmp_path / "card"
    shutil.copytree(out, card)
    doc = json.loads((card / "model_card.json").read_text())
    doc["schema_version"] = 99
    (card / "model_card.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigMismatchError, match="schema version 99"):
        load_card(card)
    doc["schema_version"] = SCHEMA_VERSION
    doc["feature_settings"]["feature_from_the_future"] = 1
    (card / "model_card.json").write_text(json.dumps(doc))
    with pytest.raises(Exception, match="unknown to this meta-spliceai"):
        load_card(card)


def test_apply_names_a_store_file_of_another_base_model(tmp_path, chr22, chr22_model, keras_store):
    """The card's base model is spliceai and so is the store, but for one file that openspliceai wrote."""
    genes = ["GGTLC3", "TANGO2", "ZNF74"]
    write_store(tmp_path / "s", {g: PredictionStore(keras_store).read(g) for g in genes})
    foreign = make_foreign(tmp_path / "s", "ZNF74", base_model="openspliceai")
    with pytest.raises(ConfigMismatchError, match=rf"{foreign.name} was written by another base model.*openspliceai"):
        apply(model=chr22_model[0], predictions=tmp_path / "s", out=tmp_path / "o", genes=genes, progress=False,
              **_ref(chr22))


def test_apply_evaluate_warns_when_the_meta_model_is_worse(tmp_path, chr22, chr22_model, keras_store, caplog):
    """The card's meta thresholds set to 0.99 (a threshold chosen on too few validation sites can be that far off):
    the meta-model's calls are worse than the base model's, and apply --evaluate says so."""
    from meta_spliceai.metamodel.comparison import compare_with_base

    out, res = chr22_model
    test = pl.read_csv(out / "split.tsv", separator="\t").filter(pl.col("part") == "test")["gene_id"].to_list()
    good = compare_with_base(res.metrics)
    assert [(r["site_type"], r["method"], r["at"]) for r in good["rows"]] == [
        (t, m, at) for t in ("donor", "acceptor") for m, at in (("base", "0.5"), ("base", "validated"), ("meta", "validated"))]
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    doc = json.loads((bad / "model_card.json").read_text())
    doc["thresholds"] = {"donor": 0.99, "acceptor": 0.99}
    doc["method_thresholds"].update({"meta/donor": 0.99, "meta/acceptor": 0.99})
    (bad / "model_card.json").write_text(json.dumps(doc))
    with caplog.at_level("WARNING"):
        r = apply(model=bad, predictions=keras_store, out=tmp_path / "o", genes=test, evaluate=True, bootstrap=0,
                  progress=False, **_ref(chr22))
    comp = r["comparison"]
    assert comp["worse"] and comp["verdict"].startswith("WARNING: the meta model is worse than the base model")
    rows = {(x["site_type"], x["method"], x["at"]): x for x in comp["rows"]}
    for t in comp["worse"]:
        meta = rows[(t, "meta", "validated")]
        assert meta["threshold"] == 0.99 and rows[(t, "base", "0.5")]["threshold"] == 0.5
        assert meta["f1"] < max(rows[(t, "base", at)]["f1"] for at in ("0.5", "validated"))
    assert comp["verdict"] in [rec.getMessage() for rec in caplog.records]
    assert comp["verdict"] in (tmp_path / "o" / "report.md").read_text()
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["verdict"] == comp["verdict"]


def test_apply_evaluate_reports_the_train_comparison(tmp_path, chr22, chr22_model, keras_store):
    out, res = chr22_model
    test = pl.read_csv(out / "split.tsv", separator="\t").filter(pl.col("part") == "test")["gene_id"].to_list()
    r = apply(model=out, predictions=keras_store, out=tmp_path / "o", genes=test, evaluate=True, bootstrap=30,
              progress=False, **_ref(chr22))
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert (tmp_path / "o" / "report.md").is_file() and r["metrics"]
    for t in ("donor", "acceptor"):  # the same genes and models: the same figures as train's test evaluation
        for meth in ("base", "calibrated_base", "meta_scores_only", "meta"):
            assert m["site_types"][t]["methods"][meth]["pr_auc"] == pytest.approx(
                res.metrics["site_types"][t]["methods"][meth]["pr_auc"], rel=1e-6)
            assert m["site_types"][t]["methods"][meth]["at_valid"] == res.metrics["site_types"][t]["methods"][meth]["at_valid"]
