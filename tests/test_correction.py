from __future__ import annotations

import json
import shutil
from pathlib import Path

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


def test_bed_contigs_follow_the_fasta(tmp_path, chr22, chr22_model, keras_store):
    """The bundle's FASTA and GTF both say ``22``; with the GTF renamed to ``chr22``, calls.bed still says ``22``
    (the FASTA's name: bedtools getfasta -fi / slop -g FASTA.fai find every interval), while calls.tsv and
    calls.parquet keep the annotation's ``chr22``."""
    import pysam

    fasta = chr22 / "genome.fa.gz"
    fai = [line.split("\t")[0] for line in Path(f"{fasta}.fai").read_text().splitlines()]
    assert fai == ["22"] and {ln.split("\t")[0] for ln in (chr22 / "annotation.gtf").read_text().splitlines()
                              if ln and not ln.startswith("#")} == {"22"}
    gtf = tmp_path / "chr.gtf"
    gtf.write_text("".join(("chr" + line if line.strip() and not line.startswith("#") else line)
                           for line in (chr22 / "annotation.gtf").read_text().splitlines(keepends=True)))
    gene = pl.read_csv(chr22_model[0] / "split.tsv", separator="\t")["gene_id"][0]
    res = apply(model=chr22_model[0], predictions=keras_store, out=tmp_path / "o", fasta=fasta,
                gtf=gtf, genes=[gene], progress=False)
    bed = [line.split("\t") for line in (tmp_path / "o" / "calls.bed").read_text().splitlines()]
    assert res["calls"] == len(bed) > 0 and {b[0] for b in bed} == {"22"}
    with pysam.FastaFile(str(fasta)) as fa:  # what bedtools getfasta does with each interval
        assert all(len(fa.fetch(b[0], int(b[1]), int(b[2]))) == 1 for b in bed)
    tsv = pl.read_csv(tmp_path / "o" / "calls.tsv", separator="\t")
    assert set(tsv["chrom"]) == {"chr22"} and set(pl.read_parquet(tmp_path / "o" / "calls.parquet")["chrom"]) == {"chr22"}
    # the annotation's name where the FASTA has none (no FASTA contig to follow)
    from meta_spliceai.metamodel.correction import write_calls
    from meta_spliceai.reference.annotation import parse_annotation

    genes = parse_annotation(gtf).genes.filter(pl.col("gene_id") == gene)
    card = json.loads((chr22_model[0] / "model_card.json").read_text())
    write_calls(tmp_path / "o", genes, PredictionStore(keras_store), PredictionStore(tmp_path / "o" / "scores"),
                card["thresholds"], contig_map={})
    assert {ln.split("\t")[0] for ln in (tmp_path / "o" / "calls.bed").read_text().splitlines()} == {"chr22"}


def test_resume_is_a_no_op(applied, chr22, chr22_model, keras_store):
    dest, res, genes = applied
    assert not (dest / ".scores.tmp").exists()  # the writers' temp folder goes once apply is done
    before = {f: (dest / f).read_bytes() for f in ("calls.tsv", "calls.parquet", "calls.bed")}
    (dest / ".scores.tmp").mkdir()
    (dest / ".scores.tmp" / "TANGO2.parquet.12345").write_bytes(b"half a file of a killed run")
    again = apply(model=chr22_model[0], predictions=keras_store, out=dest, genes=genes, progress=False, **_ref(chr22))
    assert again["corrected_now"] == 0 and {f: (dest / f).read_bytes() for f in before} == before
    assert not (dest / ".scores.tmp").exists()


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


def test_store_master_and_calls_join_in_pyarrow(applied, chr22_build, keras_store, tmp_path):
    """gene_id/chrom have one Arrow type (storage.arrow_string) in a prediction store, master/ and calls.parquet:
    pyarrow joins them without casts; calls.parquet keeps chrom "22" a string in polars and pandas; a store
    file of the older type (string) still reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from meta_spliceai.dataset.schema import STRING
    from meta_spliceai.storage import arrow_string

    dest, _, genes = applied
    assert STRING == arrow_string() == pa.large_string()
    store_file = PredictionStore(keras_store).file_of(genes[0])
    master = pq.read_table(min((chr22_build / "master").glob("*.parquet")),
                           columns=["gene_id", "chrom", "genomic_position", "position", "splice_type"])
    store = pq.read_table(store_file)
    calls = pq.read_table(dest / "calls.parquet")
    assert store.schema.field("gene_id").type == master.schema.field("gene_id").type == calls.schema.field("gene_id").type
    assert master.schema.field("chrom").type == calls.schema.field("chrom").type == STRING
    # position is int32 in stores, int64 in master/ (unchanged: mixed-type stores would not scan as one table)
    store = store.set_column(1, "position", store.column("position").cast(pa.int64()))
    joined = store.join(master.select(["gene_id", "position", "splice_type"]), ["gene_id", "position"])
    assert joined.num_rows > 0 and set(joined.column("gene_id").to_pylist()) == {genes[0]}
    on_site = calls.rename_columns([("genomic_position" if c == "position" else c) for c in calls.column_names]).join(
        master, ["gene_id", "chrom", "genomic_position"])
    assert 0 < on_site.num_rows and set(on_site.column("chrom").to_pylist()) == {"22"}
    tsv = pl.read_csv(dest / "calls.tsv", separator="\t", schema_overrides={"chrom": pl.String})
    from polars.testing import assert_frame_equal

    assert_frame_equal(pl.read_parquet(dest / "calls.parquet"), tsv, check_exact=False, abs_tol=1e-6)  # TSV: 6 digits
    pd = pytest.importorskip("pandas")
    assert pd.read_parquet(dest / "calls.parquet")["chrom"].map(type).eq(str).all()
    old = tmp_path / "old"
    old.mkdir()
    before = pq.read_table(store_file)
    pq.write_table(before.cast(before.schema.set(0, pa.field("gene_id", pa.string()))), old / store_file.name)
    shutil.copy(PredictionStore(keras_store).file_of(genes[1]), old)  # one file of each type: scans as one table
    np.testing.assert_array_equal(PredictionStore(old).read(genes[0]), PredictionStore(keras_store).read(genes[0]))
    both = PredictionStore(old).scan().collect()
    assert both["gene_id"].dtype == pl.String and set(both["gene_id"]) == set(genes[:2])
