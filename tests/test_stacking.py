"""Stacked builds and meta-models: several base models' stores, one column family per extra model.

The second model is a plumbing stand-in: the Keras SpliceAI outputs of the chr22 genes with seeded
noise, stamped as an ``openspliceai`` store, plus a few peaks only it has (so the any-model hard TNs and
floor are exercised). Real OpenSpliceAI scores are measured in bench/bench_stack.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from meta_spliceai.errors import ConfigMismatchError, InputError

from conftest import SMALL_BUILD, TINY_XGB

OTHER_IDENTITY = {"base_model": "openspliceai", "version": "test-perturbed", "digest": "seed-3", "precision": "float32"}


def _perturbed(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    q = p.copy()
    q[:, 1:] = np.clip(q[:, 1:] * rng.uniform(0.5, 1.5, size=(len(p), 2)), 0, 1)
    extra = rng.choice(len(p), size=max(1, len(p) // 20_000), replace=False)
    q[extra, 2] = 0.6  # donor peaks only this model has
    q[:, 0] = np.clip(1 - q[:, 1:].sum(axis=1), 0, 1)
    return q.astype(np.float32)


@pytest.fixture(scope="session")
def other_store(tmp_path_factory, keras_store) -> Path:
    from meta_spliceai.basemodel.store import PredictionStore

    src = PredictionStore(keras_store)
    out = PredictionStore(tmp_path_factory.mktemp("other") / "store", OTHER_IDENTITY)
    rng = np.random.default_rng(3)
    for gid in sorted(src.finished_genes()):
        out.write(gid, _perturbed(src.read(gid), rng))
    return out.path


def _build(out: Path, chr22: Path, predictions, **kw):  # noqa: ANN001, ANN202
    from meta_spliceai.dataset.builder import build

    args = {"subset_policy": "all", "batch_size": 9, "kmer_sizes": (2,), "progress": False, **kw}
    return build(output_dir=out, fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf", predictions=predictions,
                 **args)


@pytest.fixture(scope="session")
def stacked(tmp_path_factory, chr22, keras_store, other_store):
    """A stacked chr22 build (Keras SpliceAI first), its training with --feature-ablation: (root, result)."""
    from meta_spliceai.metamodel.training import train

    root = tmp_path_factory.mktemp("stacked")
    _build(root / "build", chr22, [keras_store, other_store])
    res = train(dataset=root / "build", out_dir=root / "model", model=TINY_XGB, bootstrap=20, feature_ablation=True,
                progress=False)
    return root, res


def test_stacked_build_has_each_models_family_and_records_the_stores(stacked, other_store):
    from meta_spliceai.dataset.schema import model_fields, read_metadata, stack_fields

    root, _ = stacked
    files = sorted((root / "build" / "master").glob("*.parquet"))
    meta = read_metadata(pq.read_schema(files[0]))
    assert meta["stack_models"] == ["openspliceai"]
    names = pq.read_schema(files[0]).names
    family = [n for n, _ in stack_fields(("openspliceai",))]
    assert [n for n in names if n in set(family)] == family
    assert {n for n, _ in model_fields("openspliceai")} <= {c for c, r in meta["roles"].items() if r == "feature"}
    build = json.loads((root / "build" / "build.json").read_text())
    assert build["config"]["stack_models"] == ["openspliceai"]
    assert build["stack_predictions"] == [str(other_store.resolve())]


def test_hard_negatives_include_positions_where_only_another_model_fires(stacked):
    root, _ = stacked
    df = pl.read_parquet(root / "build" / "master", columns=["pred_type", "tn_kind", "donor_score", "acceptor_score",
                                                              "openspliceai_donor_score", "stack_top_score"])
    hard = json.loads((root / "build" / "build.json").read_text())["config"]["hard_prob"]
    only_other = df.filter((pl.col("tn_kind") == "hard") & (pl.max_horizontal("donor_score", "acceptor_score") < hard))
    assert only_other.height > 0 and (only_other["stack_top_score"] >= hard).all()
    # TP/FP/FN come from the first store alone: an FP needs its own score >= 0.5
    fp = df.filter(pl.col("pred_type") == "FP")
    assert (pl.Series(np.maximum(fp["donor_score"].to_numpy(), fp["acceptor_score"].to_numpy())) >= 0.5).all()


def test_single_store_in_a_list_builds_the_same_bytes(tmp_path, chr22, keras_store, chr22_dataset):
    """--predictions with one store (the CLI now passes a list) is today's one-model build, file for file."""
    from meta_spliceai.dataset.builder import build

    build(output_dir=tmp_path / "b", predictions=[keras_store], fasta=chr22 / "genome.fa.gz",
          gtf=chr22 / "annotation.gtf", **SMALL_BUILD)
    for f in sorted((chr22_dataset / "master").glob("*.parquet")):
        assert (tmp_path / "b" / "master" / f.name).read_bytes() == f.read_bytes(), f.name
    assert "stack_models" not in json.loads((tmp_path / "b" / "build.json").read_text())["config"]


def test_stores_of_other_genes_or_lengths_or_order_are_refused(tmp_path, chr22, keras_store, other_store):
    from meta_spliceai.basemodel.store import PredictionStore

    src = PredictionStore(other_store)
    short = PredictionStore(tmp_path / "short", OTHER_IDENTITY)
    genes = sorted(src.finished_genes())
    for gid in genes:
        p = src.read(gid)
        short.write(gid, p[:-1] if gid == genes[0] else p)
    with pytest.raises(InputError, match=rf"predictions in {short.path} no longer match .*: {genes[0]} \(2,638 scores"):
        _build(tmp_path / "b1", chr22, [keras_store, short.path])
    (short.file_of(genes[0])).unlink()
    with pytest.raises(InputError, match=rf"no predictions in {short.path} for .*{genes[0]}"):
        _build(tmp_path / "b2", chr22, [keras_store, short.path])
    with pytest.raises(ConfigMismatchError, match="holds spliceai predictions but is given as openspliceai"):
        _build(tmp_path / "b3", chr22, [keras_store, other_store], base_models=["openspliceai", "spliceai"])
    with pytest.raises(InputError, match="given twice"):
        _build(tmp_path / "b4", chr22, [keras_store, keras_store])
    with pytest.raises(InputError, match="--base-models names 3 model"):
        _build(tmp_path / "b5", chr22, [keras_store, other_store], base_models=["spliceai", "openspliceai", "pangolin"])


def test_train_compares_with_each_base_model_and_their_mean(stacked):
    root, res = stacked
    card = json.loads((root / "model" / "model_card.json").read_text())
    assert [m["base_model"] for m in card["base_models"]] == ["spliceai", "openspliceai"]
    assert card["base_models"][1] == OTHER_IDENTITY and card["base_model"] == card["base_models"][0]
    assert card["feature_settings"]["stack_models"] == ["openspliceai"]
    assert card["ablations"]["calibrated_stack"]["columns"][3:] == [f"openspliceai_{c}_score" for c in
                                                                    ("neither", "acceptor", "donor")]
    for t in ("donor", "acceptor"):
        ms = res.metrics["site_types"][t]["methods"]
        assert list(ms)[:5] == ["base", "base_openspliceai", "base_mean", "calibrated_base", "calibrated_stack"]
        for ref in ("base", "base_openspliceai", "base_mean"):
            lo, hi = ms["meta"][f"vs_{ref}"]["pr_auc"]["ci95"]
            assert lo <= ms["meta"][f"vs_{ref}"]["pr_auc"]["difference"] <= hi
        st = res.metrics["stack"][t]
        assert st["best_single"] in ("base", "base_openspliceai")
        assert st["pr_auc"]["base_openspliceai"] == ms["base_openspliceai"]["pr_auc"]


def test_feature_ablation_adds_one_base_model_at_a_time(stacked):
    root, res = stacked
    table = pl.read_csv(root / "model" / "feature_ablation.tsv", separator="\t")
    assert res.metrics["feature_ablation"]["reference"] == "meta_models_spliceai"
    methods = table.filter(site_type="donor")["method"].to_list()
    assert methods.index("meta_models_spliceai") < methods.index("meta")
    n = dict(table.filter(site_type="donor").select("method", "features").iter_rows())
    card = json.loads((root / "model" / "model_card.json").read_text())
    feats = card["ablations"]["meta_models_spliceai"]["features"]
    assert not any(f.startswith(("openspliceai_", "stack_")) for f in feats) and n["meta_models_spliceai"] == len(feats)
    assert n["meta"] > n["meta_models_spliceai"]


def test_apply_reproduces_train_and_refuses_other_stores(stacked, tmp_path, chr22, keras_store, other_store):
    from meta_spliceai.basemodel.store import PredictionStore
    from meta_spliceai.metamodel.correction import apply

    root, _ = stacked
    rows = pl.read_parquet(root / "model" / "row_scores.parquet")
    gid = rows.filter(pl.col("part") == "test")["gene_id"][0]
    ref = {"fasta": chr22 / "genome.fa.gz", "gtf": chr22 / "annotation.gtf", "genes": [gid], "progress": False}
    apply(model=root / "model", predictions=[keras_store, other_store], out=tmp_path / "a", **ref)
    track = PredictionStore(tmp_path / "a" / "scores").read(gid)
    part = rows.filter(gene_id=gid)
    np.testing.assert_allclose(track[part["position"].to_numpy(), 2], part["donor"].to_numpy(), rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigMismatchError, match=r"trained on 2 base model\(s\) .* but 1 prediction store"):
        apply(model=root / "model", predictions=[keras_store], out=tmp_path / "b", **ref)
    with pytest.raises(ConfigMismatchError, match="in that order; reorder --predictions"):
        apply(model=root / "model", predictions=[other_store, keras_store], out=tmp_path / "c", **ref)
    renamed = PredictionStore(tmp_path / "renamed", {**OTHER_IDENTITY, "digest": "another"})
    renamed.write(gid, PredictionStore(other_store).read(gid))
    with pytest.raises(ConfigMismatchError, match="digest 'another' vs 'seed-3'"):
        apply(model=root / "model", predictions=[keras_store, renamed.path], out=tmp_path / "d", **ref)


def test_corrector_takes_per_model_tracks_and_a_sequence(stacked, chr22, keras_store, other_store):
    """The variants API: features from a list of tracks in card order, and k-mers from a given sequence."""
    from meta_spliceai.basemodel.store import PredictionStore
    from meta_spliceai.metamodel.card import Corrector, card_base_models, corrected_track, load_card
    from meta_spliceai.reference.annotation import parse_annotation
    from meta_spliceai.reference.genome import Genome, match_contigs

    root, _ = stacked
    loaded = load_card(root / "model")
    assert [m["base_model"] for m in card_base_models(loaded.card)] == ["spliceai", "openspliceai"]
    genome = Genome(chr22 / "genome.fa.gz")
    ann = parse_annotation(chr22 / "annotation.gtf")
    corr = Corrector(loaded.cfg, float(loaded.card["floor"]), genome,
                     match_contigs(ann.genes["chrom"].unique().to_list(), genome.contigs, strict=False))
    master = pl.read_parquet(root / "build" / "master")
    gid = master["gene_id"][0]
    gene = ann.genes.filter(gene_id=gid).row(0, named=True)
    tracks = [PredictionStore(keras_store).read(gid), PredictionStore(other_store).read(gid)]
    rows = master.filter(gene_id=gid).unique("position", keep="first", maintain_order=True)
    feats = corr.features(gene, tracks, rows["position"].to_numpy())
    assert feats.equals(rows.select(feats.columns))
    seq, offset = corr.sequence(gene)
    alt = seq[:offset] + "".join("A" if b != "A" else "C" for b in seq[offset:offset + 40]) + seq[offset + 40:]
    pos = np.array([5])
    changed = corr.features(gene, tracks, pos, sequence=(alt, offset))
    assert not changed.select("2mer_AA").equals(corr.features(gene, tracks, pos).select("2mer_AA"))
    assert changed.select("stack_top_score").equals(corr.features(gene, tracks, pos).select("stack_top_score"))
    with pytest.raises(InputError, match=r"1 score track\(s\) given, the model has 2 base model"):
        corr.features(gene, tracks[0], pos)
    out = corrected_track(loaded, corr, gene, tracks)
    assert out.shape == tracks[0].shape
    keep = np.setdiff1d(np.arange(len(out)), corr.scored(tracks))
    np.testing.assert_array_equal(out[keep], tracks[0][keep])


def test_cli_stacked_apply_mismatch_is_one_line(stacked, tmp_path, chr22, keras_store, capsys):
    from meta_spliceai.cli.main import main

    root, _ = stacked
    code = main(["apply", str(root / "model"), "--predictions", str(keras_store), "--fasta", str(chr22 / "genome.fa.gz"),
                 "--gtf", str(chr22 / "annotation.gtf"), "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "2 base model(s)" in err[0]


def test_stack_features_by_hand():
    """A few stacked columns checked by hand on tiny tracks (site model and Pangolin's tissue columns)."""
    from meta_spliceai.config import BASE_MODEL_OUTPUTS
    from meta_spliceai.dataset.schema import stack_fields
    from meta_spliceai.dataset.stacking import stack_features, stack_top

    L = 6
    a = np.zeros((L, 3), np.float32)
    a[:, 0] = 1
    a[2] = (0.1, 0.1, 0.8)  # [neither, acceptor, donor]
    b = a.copy()
    b[2] = (0.5, 0.1, 0.4)
    b[4] = (0.3, 0.7, 0.0)
    pang = np.zeros((L, len(BASE_MODEL_OUTPUTS["pangolin"])), np.float32)
    pang[3, 0] = 0.9  # heart P(splice) at 3
    pang[5, 3] = 0.2  # liver usage at 5
    names = ("spliceai", "openspliceai", "pangolin")
    pos = np.arange(L)
    f = stack_features((a, b, pang), names, pos)
    assert list(f) == [n for n, _ in stack_fields(names[1:])]
    np.testing.assert_allclose(f["openspliceai_donor_diff"][2], 0.4 - 0.8, rtol=1e-6)
    np.testing.assert_allclose(f["stack_donor_mean"][2], 0.6, rtol=1e-6)
    assert f["stack_donor_n50"][2] == 1 and f["openspliceai_acceptor_is_local_peak"][4] == 1
    np.testing.assert_allclose(f["openspliceai_donor_window_max"][:5], [0.4, 0.4, 0.4, 0.4, 0.4])
    assert f["pangolin_p_max"][3] == pytest.approx(0.9) and f["pangolin_p_max_m1"][4] == pytest.approx(0.9)
    assert f["pangolin_usage_max"][5] == pytest.approx(0.2) and f["pangolin_heart_p_window_max"][1] == pytest.approx(0.9)
    # the floor reads the site models only: Pangolin's 0.9 at 3 is a feature, not a position above the floor
    np.testing.assert_allclose(stack_top((a, b, pang), names), [0, 0, 0.8, 0, 0.7, 0])
    np.testing.assert_allclose(f["stack_top_score"], [0, 0, 0.8, 0, 0.7, 0])


@pytest.mark.slow
def test_run_workflow_computes_each_models_store(tmp_path, chr22):
    """build --run-workflow --base-models spliceai,openspliceai: OUT/predictions/<model>, real models, one gene."""
    from meta_spliceai.basemodel.store import PredictionStore

    weights = chr22.parents[1] / "models" / "openspliceai-mane-10000nt"
    genes = tmp_path / "one.txt"
    genes.write_text("CCDC188\n")
    from meta_spliceai.dataset.builder import build

    build(output_dir=tmp_path / "b", fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf", gene_ids_file=genes,
          kmer_sizes=(), run_workflow=True, base_models=["spliceai", "openspliceai"],
          weights={"openspliceai": weights}, progress=False)
    for m in ("spliceai", "openspliceai"):
        assert PredictionStore(tmp_path / "b" / "predictions" / m).stored_identity()["base_model"] == m
    cols = pq.read_schema(next((tmp_path / "b" / "master").glob("*.parquet"))).names
    assert "openspliceai_donor_score" in cols
