from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import make_foreign, write_store

from meta_spliceai.basemodel.store import PredictionStore
from meta_spliceai.dataset.builder import build
from meta_spliceai.dataset.folder import batch_paths, read_manifest
from meta_spliceai.dataset.schema import feature_columns
from meta_spliceai.errors import ConfigMismatchError, InputError, LockedError
from meta_spliceai.reference.annotation import parse_annotation
from meta_spliceai.storage import folder_lock

FAST = {"kmer_sizes": (2,), "progress": False}


def _ref(bundle):
    return {"fasta": bundle / "genome.fa.gz", "gtf": bundle / "annotation.gtf"}


def _master(out) -> pl.DataFrame:
    return pl.read_parquet(out / "master" / "*.parquet")


def _checksums(out) -> dict[str, str]:
    return {b: e["checksum"] for b, e in read_manifest(out)["batches"].items()}


@pytest.fixture(scope="module")
def chr22_build(tmp_path_factory, chr22, keras_store):
    out = tmp_path_factory.mktemp("b") / "out"
    summary = build(output_dir=out, predictions=keras_store, subset_policy="all", batch_size=5, **_ref(chr22), **FAST)
    return out, summary


def test_layout_and_manifest(chr22_build):
    out, summary = chr22_build
    assert summary.n_genes == 17 and summary.n_batches == 4 and summary.built == 4
    manifest = read_manifest(out)
    assert manifest["complete"] and len(manifest["batches"]) == 4
    for b in range(4):
        p = batch_paths(out, b)
        assert p["raw"].is_file() and p["trim"].is_file()
        assert os.path.samefile(p["trim"], p["master"])  # hard link
        entry = manifest["batches"][f"{b:05d}"]
        assert entry["rows"] == pq.ParquetFile(p["master"]).metadata.num_rows
    plan = json.loads((out / "build.json").read_text())["plan"]["batches"]
    assert [e["genes"] for e in manifest["batches"].values()] == plan
    perf = pl.read_csv(out / "gene_performance.tsv", separator="\t")
    assert perf.height == 2 * 17
    assert set(perf.columns) >= {"gene_id", "splice_type", "TP", "FP", "FN", "TN", "precision", "recall",
                                 "f1_score", "topk_acc", "n_splice_sites"}


def _assert_labels_are_the_annotation(master: pl.DataFrame, ann, gene_ids) -> None:
    sites = ann.splice_sites.filter(pl.col("gene_id").is_in(list(gene_ids)))
    rows = master.filter(pl.col("splice_type") != "neither")
    key = ["gene_id", "splice_type", "genomic_position"]
    got = rows.select(key).sort(key)
    want = sites.select("gene_id", pl.col("site_type").alias("splice_type"), "genomic_position").sort(key)
    assert got.equals(want)  # each annotated site exactly once, nothing else
    assert set(rows["pred_type"].unique()) <= {"TP", "FN"}
    assert set(master.filter(pl.col("splice_type") == "neither")["pred_type"].unique()) <= {"FP", "TN"}


def test_labels_are_exactly_the_annotated_sites_chr22(chr22_build, chr22):
    out, _ = chr22_build
    ann = parse_annotation(chr22 / "annotation.gtf")
    master = _master(out)
    _assert_labels_are_the_annotation(master, ann, master["gene_id"].unique())
    # transcripts of the site travel as metadata; empty for non-sites
    sites = master.filter(pl.col("splice_type") != "neither")
    assert (sites["transcript_count"] >= 1).all()
    assert (master.filter(pl.col("splice_type") == "neither")["transcript_count"] == 0).all()


def test_labels_are_exactly_the_annotated_sites_chr2(tmp_path, chr2, chr2_random_store):
    out = tmp_path / "out"
    build(output_dir=out, predictions=chr2_random_store, subset_policy="all", batch_size=4, **_ref(chr2), **FAST)
    ann = parse_annotation(chr2 / "annotation.gtf")
    master = _master(out)
    assert master["gene_id"].n_unique() == ann.splice_sites["gene_id"].n_unique()
    _assert_labels_are_the_annotation(master, ann, master["gene_id"].unique())


def test_pred_type_follows_the_design(chr22_build, chr22):
    """Recompute each row's outcome from the Keras scores with a plain loop."""
    out, _ = chr22_build
    z = np.load(chr22 / "reference" / "keras_spliceai_outputs.npz")
    ann = parse_annotation(chr22 / "annotation.gtf")
    master = _master(out)
    t, w = 0.5, 2
    for (gid,), rows in master.partition_by("gene_id", as_dict=True).items():
        probs = z[gid]
        s = ann.gene_sites(gid)
        true = {st: set(s.filter(pl.col("site_type") == st)["position"].to_list()) for st in ("donor", "acceptor")}
        col = {"acceptor": 1, "donor": 2}
        for pos, st, pt in rows.select("position", "splice_type", "pred_type").iter_rows():
            lo, hi = max(0, pos - w), min(len(probs), pos + w + 1)
            if st != "neither":
                want = "TP" if (probs[lo:hi, col[st]] >= t).any() else "FN"
            else:
                fp = any(probs[pos, col[k]] >= t and not any(abs(q - pos) <= w for q in true[k]) for k in col)
                want = "FP" if fp else "TN"
            assert pt == want, (gid, pos, st)


def test_same_command_same_files(tmp_path, chr22, keras_store):
    """Determinism with the default 6-mers: byte-identical trims and raws."""
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        build(output_dir=out, predictions=keras_store, gene_ids_file=_gene_file(tmp_path, ["TANGO2", "DGCR8", "CCDC188"]),
              batch_size=2, progress=False, **_ref(chr22))
    assert _checksums(outs[0]) == _checksums(outs[1])
    for b in range(2):
        pa, pb = batch_paths(outs[0], b), batch_paths(outs[1], b)
        assert pa["raw"].read_bytes() == pb["raw"].read_bytes()
    cols = _master(outs[0]).columns
    assert sum(c.startswith("6mer_") for c in cols) == 4096


def _gene_file(tmp_path, genes, name="genes.txt"):
    f = tmp_path / name
    f.write_text("\n".join(genes) + "\n")
    return f


def test_rows_do_not_depend_on_batches_or_builds(tmp_path, chr22, keras_store, chr22_build):
    whole, _ = chr22_build
    ids = json.loads((whole / "build.json").read_text())["plan"]["batches"]
    ids = [g for batch in ids for g in batch]
    halves = [ids[: len(ids) // 2], ids[len(ids) // 2 :]]
    parts = []
    for i, half in enumerate(halves):
        out = tmp_path / f"half{i}"
        build(output_dir=out, predictions=keras_store, gene_ids_file=_gene_file(tmp_path, half, f"h{i}.txt"),
              batch_size=3, **_ref(chr22), **FAST)
        parts.append(_master(out))
    key = ["gene_id", "position", "splice_type"]
    merged = pl.concat(parts).drop("batch").sort(key)
    assert merged.equals(_master(whole).drop("batch").sort(key))


def test_resume_skips_finished_batches_and_refuses_other_config(chr22_build, chr22, keras_store):
    out, _ = chr22_build
    before = _checksums(out)
    again = build(output_dir=out, predictions=keras_store, subset_policy="all", batch_size=5, **_ref(chr22), **FAST)
    assert again.skipped == 4 and again.built == 0 and _checksums(out) == before
    with pytest.raises(ConfigMismatchError, match="batch_size: 5 there, 6 now") as err:
        build(output_dir=out, predictions=keras_store, subset_policy="all", batch_size=6, **_ref(chr22), **FAST)
    assert "--overwrite" in str(err.value)
    with pytest.raises(ConfigMismatchError, match=r"feature_sets: \['base', 'partner'\] there, \['base'\] now"):
        build(output_dir=out, predictions=keras_store, subset_policy="all", batch_size=5, feature_sets=["base"],
              **_ref(chr22), **FAST)
    assert json.loads((out / "build.json").read_text())["config"]["feature_sets"] == ["base", "partner"]


def test_overwrite_rebuilds(tmp_path, chr22, keras_store):
    out = tmp_path / "o"
    build(output_dir=out, predictions=keras_store, subset_policy="all", batch_size=9, **_ref(chr22), **FAST)
    s = build(output_dir=out, predictions=keras_store, subset_policy="all", batch_size=6, overwrite=True,
              **_ref(chr22), **FAST)
    assert s.built == 3 and s.n_batches == 3
    assert not batch_paths(out, 3)["trim"].exists()


def test_second_builder_is_refused(tmp_path, chr22, keras_store):
    out = tmp_path / "locked"
    with folder_lock(out):
        with pytest.raises(LockedError, match="in use by another builder"):
            build(output_dir=out, predictions=keras_store, subset_policy="all", **_ref(chr22), **FAST)


def test_missing_predictions_name_genes_and_flag(tmp_path, chr22):
    with pytest.raises(InputError, match=r"no predictions .* for the genes of the build: .*--run-workflow"):
        build(output_dir=tmp_path / "x", subset_policy="random", n_genes=2, **_ref(chr22), **FAST)
    with pytest.raises(InputError, match=r"candidate pool of --subset-policy error_total.*--run-workflow"):
        build(output_dir=tmp_path / "y", n_genes=2, **_ref(chr22), **FAST)


def test_error_policies_rank_by_base_model_errors(tmp_path, chr22, keras_store, chr22_build):
    whole, _ = chr22_build
    perf = pl.read_csv(whole / "gene_performance.tsv", separator="\t")
    errors = perf.group_by("gene_id").agg((pl.col("FP") + pl.col("FN")).sum().alias("e"), pl.col("FN").sum())
    for policy, col in (("error_total", "e"), ("error_fn", "FN")):
        out = tmp_path / policy
        s = build(output_dir=out, predictions=keras_store, subset_policy=policy, n_genes=3, **_ref(chr22), **FAST)
        chosen = set(_master(out)["gene_id"].unique())
        assert s.n_genes == 3
        worst = errors.sort(col, descending=True)[col].to_list()
        assert sorted(errors.filter(pl.col("gene_id").is_in(list(chosen)))[col].to_list(), reverse=True) == worst[:3]


def test_n_genes_beyond_available_builds_all(tmp_path, chr22, keras_store):
    s = build(output_dir=tmp_path / "all", predictions=keras_store, subset_policy="random", n_genes=500,
              **_ref(chr22), **FAST)
    assert s.n_genes == 17 and any("built all" in n for n in s.notes)


def test_no_leakage_features_blind_to_labels(chr22_build):
    out, _ = chr22_build
    master = _master(out)
    feats = feature_columns(pq.read_schema(batch_paths(out, 0)["master"]))
    assert feats and not {"splice_type", "pred_type", "transcript_ids", "transcript_count"} & set(feats)
    site = master.filter(pl.col("pred_type").is_in(["TP", "FN"]))
    other = master.filter(pl.col("pred_type").is_in(["FP", "TN"]))
    for c in feats:
        # the same null pattern (none) for site rows and non-site rows
        assert site[c].null_count() == 0 and other[c].null_count() == 0, c


def test_no_leakage_features_do_not_move_with_the_annotation(tmp_path, chr22, keras_store):
    """Shift one internal exon boundary: the rows at the positions both builds share keep their features."""
    lines = (chr22 / "annotation.gtf").read_text().splitlines()
    exons = [i for i, ln in enumerate(lines) if "\texon\t" in ln and 'gene_id "DGCR8"' in ln]
    f = lines[exons[3]].split("\t")
    f[3] = str(int(f[3]) + 3)  # move the acceptor of exon 4 by 3 nt; gene span and exon count unchanged
    lines[exons[3]] = "\t".join(f)
    gtf2 = tmp_path / "moved.gtf"
    gtf2.write_text("\n".join(lines) + "\n")
    genes = _gene_file(tmp_path, ["DGCR8"])
    a, b = tmp_path / "a", tmp_path / "b"
    build(output_dir=a, predictions=keras_store, gene_ids_file=genes, **_ref(chr22), **FAST)
    build(output_dir=b, predictions=keras_store, gene_ids_file=genes, fasta=chr22 / "genome.fa.gz", gtf=gtf2,
          kmer_sizes=(2,), progress=False)
    ma, mb = _master(a), _master(b)
    feats = feature_columns(ma.columns)
    key = ["position"]
    common = ma.filter(pl.col("splice_type") == "neither").join(
        mb.filter(pl.col("splice_type") == "neither"), on=key, suffix="_b")
    assert common.height > 100
    for c in feats:
        assert common[c].equals(common[f"{c}_b"].alias(c)), c
    # and the moved site's row sits on its new position
    assert int(f[3]) in mb.filter(pl.col("splice_type") == "acceptor")["genomic_position"].to_list()


# --------------------------------------------------------------------------- outputs read with the users' own tools


def _read_with_every_reader(master) -> dict[str, int]:
    """Rows of OUT/master read as a folder by polars, pyarrow.dataset and pandas."""
    import pandas as pd
    import pyarrow.dataset as ds

    return {
        "polars": pl.scan_parquet(master).select(pl.len()).collect().item(),
        "pyarrow": ds.dataset(master, format="parquet").count_rows(),
        "pandas": len(pd.read_parquet(master, columns=["gene_id", "position"])),
    }


def _only_batches(master) -> None:
    names = sorted(p.name for p in master.iterdir())
    assert names and all(re.fullmatch(r"batch_\d{5}\.parquet", n) for n in names), names


def test_master_folder_is_readable_by_polars_pyarrow_pandas(chr22_build):
    out, summary = chr22_build
    _only_batches(out / "master")
    assert (out / "manifest.json").is_file()
    assert set(_read_with_every_reader(out / "master").values()) == {summary.rows_trim}
    # column roles travel in each file's schema metadata (see the README)
    meta = json.loads(pq.read_schema(batch_paths(out, 0)["master"]).metadata[b"meta_spliceai"])
    assert meta["roles"]["gene_id"] == "id" and meta["roles"]["pred_type"] == "label"


def test_old_layout_is_moved_on_resume_and_then_readable(tmp_path, chr22, keras_store):
    out = tmp_path / "old"
    kw = dict(output_dir=out, predictions=keras_store, subset_policy="random", n_genes=4, batch_size=2,
              **_ref(chr22), **FAST)
    first = build(**kw)
    # the layout of earlier versions: the manifest inside master/, which readers of the folder choke on
    (out / "manifest.json").rename(out / "master" / "manifest.json")
    with pytest.raises(Exception):
        pl.scan_parquet(out / "master").collect()
    assert read_manifest(out)["complete"]  # still readable where it was
    again = build(**kw)
    assert again.skipped == 2 and again.built == 0 and any("new layout" in n for n in again.notes)
    _only_batches(out / "master")
    assert set(_read_with_every_reader(out / "master").values()) == {first.rows_trim}


def test_batch_rows_may_change_on_resume_rows_stay_the_same(tmp_path, chr22, keras_store):
    out = tmp_path / "rows"
    kw = dict(output_dir=out, predictions=keras_store, subset_policy="random", n_genes=4, batch_size=2,
              **_ref(chr22), **FAST)
    build(**kw, batch_rows=1000)
    before = _master(out).sort("gene_id", "position")
    for key in ("raw", "trim", "perf", "master"):  # batch 1 lost: it is rebuilt with other row groups
        batch_paths(out, 1)[key].unlink()
    s = build(**kw, batch_rows=300)
    assert s.built == 1 and s.skipped == 1 and any("--batch-rows 300 (was 1000)" in n for n in s.notes)
    assert pq.ParquetFile(batch_paths(out, 1)["master"]).metadata.row_group(0).num_rows == 300
    assert _master(out).sort("gene_id", "position").equals(before)
    with pytest.raises(ConfigMismatchError, match="easy_ratio"):  # what changes rows is still refused
        build(**kw, batch_rows=300, easy_ratio=1.0)


def _extend_gene(src, dst, gene: str, by: int = 30):
    """The annotation changed: ``gene``'s last exon (and so its body) grows by ``by`` nt."""
    lines = src.read_text().splitlines()
    idx = [i for i, ln in enumerate(lines) if f'gene_name "{gene}"' in ln and ln.split("\t")[2] in ("exon", "gene", "transcript")]
    end = max(int(lines[i].split("\t")[4]) for i in idx)
    for i in idx:
        f = lines[i].split("\t")
        if int(f[4]) == end:
            f[4] = str(end + by)
            lines[i] = "\t".join(f)
    dst.write_text("\n".join(lines) + "\n")
    return dst


def test_stale_predictions_name_the_flag_that_fixes_them(tmp_path, chr22, keras_store):
    gtf = _extend_gene(chr22 / "annotation.gtf", tmp_path / "changed.gtf", "CCDC188")
    out = tmp_path / "stale"
    with pytest.raises(InputError, match=r"no longer match .*CCDC188.*--run-workflow.*predict --overwrite"):
        build(output_dir=out, predictions=keras_store, gene_ids_file=_gene_file(tmp_path, ["CCDC188", "TANGO2"]),
              fasta=chr22 / "genome.fa.gz", gtf=gtf, **FAST)
    assert not out.exists()  # a failed start leaves nothing behind


@pytest.mark.slow
def test_stale_predictions_are_recomputed_with_run_workflow(tmp_path, chr22, caplog):
    """Workflow A after an annotation change: the gene's predictions are recomputed (and it says so)."""
    genes = _gene_file(tmp_path, ["CCDC188"])
    store = tmp_path / "store"
    build(output_dir=tmp_path / "a", predictions=store, gene_ids_file=genes, run_workflow=True, device="cpu",
          **_ref(chr22), **FAST)
    from meta_spliceai.basemodel.store import PredictionStore

    n0 = PredictionStore(store).length_of(next(iter(PredictionStore(store).finished_genes())))
    gtf = _extend_gene(chr22 / "annotation.gtf", tmp_path / "changed.gtf", "CCDC188")
    with caplog.at_level("WARNING"):
        build(output_dir=tmp_path / "b", predictions=store, gene_ids_file=genes, run_workflow=True, device="cpu",
              fasta=chr22 / "genome.fa.gz", gtf=gtf, **FAST)
    assert "recomputing predictions whose length no longer matches" in caplog.text
    assert PredictionStore(store).length_of(next(iter(PredictionStore(store).finished_genes()))) == n0 + 30


def test_failed_start_leaves_no_folder_lock_or_cache(tmp_path, chr22, keras_store):
    out = tmp_path / "never"
    with pytest.raises(InputError, match="not found in the annotation"):
        build(output_dir=out, predictions=keras_store, gene_ids_file=_gene_file(tmp_path, ["NOPE"]), **_ref(chr22),
              **FAST)
    assert not out.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(InputError, match="--seed must be >= 0"):
        build(output_dir=existing, predictions=keras_store, seed=-1, **_ref(chr22), **FAST)
    assert list(existing.iterdir()) == []


# --------------------------------------------------------------------------- crash safety

_BUILD_SCRIPT = """
import sys
from meta_spliceai.dataset.builder import build
build(output_dir=sys.argv[1], predictions=sys.argv[2], fasta=sys.argv[3], gtf=sys.argv[4],
      subset_policy="all", batch_size=5, kmer_sizes=(2,), progress=False)
"""


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory, chr22, keras_store):
    out = tmp_path_factory.mktemp("clean") / "out"
    build(output_dir=out, predictions=keras_store, subset_policy="all", batch_size=5, **_ref(chr22), **FAST)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("point", ["raw_write:2", "after_raw:1", "before_link:2", "manifest_write:3", "manifest_write:5"])
def test_sigkill_then_resume_equals_clean_build(tmp_path, chr22, keras_store, clean_build, point):
    out = tmp_path / "out"
    args = [sys.executable, "-c", _BUILD_SCRIPT, str(out), str(keras_store), str(chr22 / "genome.fa.gz"),
            str(chr22 / "annotation.gtf")]
    killed = subprocess.run(args, env={**os.environ, "META_SPLICEAI_FAULT": point}, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert not read_manifest(out).get("complete")
    if (out / "master").is_dir() and any((out / "master").iterdir()):  # a kill leaves no temp file in master/
        _only_batches(out / "master")
    resumed = subprocess.run(args, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    assert _checksums(out) == _checksums(clean_build)
    for b in range(4):
        assert batch_paths(out, b)["master"].read_bytes() == batch_paths(clean_build, b)["master"].read_bytes()
    assert not list((out / "batches").glob(".*tmp*")) and not list((out / "master").glob(".*tmp*"))


_WORKFLOW_SCRIPT = """
import sys
from meta_spliceai.dataset.builder import build
build(output_dir=sys.argv[1], fasta=sys.argv[2], gtf=sys.argv[3], gene_ids_file=sys.argv[4], batch_size=2,
      kmer_sizes=(2,), run_workflow=True, device="cpu", progress=False)
"""


@pytest.mark.slow
def test_sigkill_during_prediction_then_resume(tmp_path, chr22):
    """Workflow A with the real SpliceAI: killed after the 2nd gene's predictions, resumed, equals a clean run."""
    genes = _gene_file(tmp_path, ["CCDC188", "TRMT2A", "GGTLC3"])  # three short genes
    outs = {}
    for name, fault in (("clean", None), ("killed", "predict_gene:2")):
        out = tmp_path / name
        args = [sys.executable, "-c", _WORKFLOW_SCRIPT, str(out), str(chr22 / "genome.fa.gz"),
                str(chr22 / "annotation.gtf"), str(genes)]
        if fault:
            r = subprocess.run(args, env={**os.environ, "META_SPLICEAI_FAULT": fault}, capture_output=True)
            assert r.returncode == -9, r.stderr.decode()[-2000:]
            assert len(list((out / "predictions").glob("*.parquet"))) == 2
            assert not (out / "manifest.json").exists()
        r = subprocess.run(args, capture_output=True)
        assert r.returncode == 0, r.stderr.decode()[-2000:]
        outs[name] = out
    assert _checksums(outs["clean"]) == _checksums(outs["killed"])
    assert _master(outs["killed"])["gene_id"].n_unique() == 3


@pytest.mark.parametrize("background", [True, False])
def test_row_writer_keep_masks_equal_filtering_first(tmp_path, background):
    """Two writers sharing tables, one taking them through keep masks, write the rows and row groups
    that filtering first would (the builder's raw and trim in one pass)."""
    import pyarrow as pa

    from meta_spliceai.dataset.writer import RowWriter

    rng = np.random.default_rng(7)
    schema = pa.schema([("gene_id", pa.large_string()), ("x", pa.uint16()), ("y", pa.float32())])
    tables, masks = [], []
    for n in [0, 1, 13, 5, 40, 2, 9, 31, 3]:  # tables shorter and longer than a row group, some all kept or all dropped
        tables.append(pa.table({"gene_id": [f"g{n}"] * n, "x": rng.integers(0, 500, n).astype(np.uint16),
                                "y": rng.random(n).astype(np.float32)}, schema=schema))
        masks.append(np.ones(n, bool) if n == 5 else np.zeros(n, bool) if n == 2 else rng.random(n) < 0.7)
    raw = RowWriter(tmp_path / "raw.parquet", schema, 8, background=background, copy_rest=False)
    trim = RowWriter(tmp_path / "trim.parquet", schema, 8, background=background, copy_rest=False)
    ref = RowWriter(tmp_path / "ref.parquet", schema, 8, background=background)
    for t, m in zip(tables, masks):
        trim.add(raw.add(t), keep=m)
        ref.add(t.filter(pa.array(m)))
    for w in (raw, trim, ref):
        w.close()
    kept = pa.concat_tables(tables).filter(pa.array(np.concatenate(masks)))
    for name, expect in [("raw", pa.concat_tables(tables)), ("trim", kept), ("ref", kept)]:
        f = pq.ParquetFile(tmp_path / f"{name}.parquet")
        sizes = [f.metadata.row_group(g).num_rows for g in range(f.num_row_groups)]
        assert sizes == [8] * (expect.num_rows // 8) + ([expect.num_rows % 8] if expect.num_rows % 8 else []), name
        assert f.read().equals(expect), name
    assert (tmp_path / "trim.parquet").read_bytes() == (tmp_path / "ref.parquet").read_bytes()


def test_build_names_a_store_file_of_another_base_model(tmp_path, chr22, keras_store):
    """A spliceai store holding one openspliceai file: the build stops naming it (never builds on mixed scores)."""
    genes = ["GGTLC3", "TANGO2", "ZNF74"]
    src = PredictionStore(keras_store)
    write_store(tmp_path / "s", {g: src.read(g) for g in genes})
    foreign = make_foreign(tmp_path / "s", "TANGO2", base_model="openspliceai")
    (tmp_path / "genes.txt").write_text("\n".join(genes) + "\n")
    with pytest.raises(ConfigMismatchError, match=rf"{foreign.name} was written by another base model.*openspliceai"):
        build(output_dir=tmp_path / "out", predictions=tmp_path / "s", gene_ids_file=tmp_path / "genes.txt",
              **_ref(chr22), **FAST)


@pytest.mark.parametrize("genes", [["RIMBP3"], ["RIMBP3", "TANGO2"]])
def test_a_gene_without_rows_is_named_and_validate_agrees(tmp_path, chr22, keras_store, genes):
    """RIMBP3, chr22's single-exon gene, with a flat track (no site, no confident score) makes no row: the build
    says which gene and why, and its own validate passes (only single-exon genes, or mixed with a real one)."""
    from meta_spliceai.maintenance.validation import validate

    flat = np.zeros((PredictionStore(keras_store).length_of("RIMBP3"), 3), np.float32)
    flat[:, 0] = 1
    write_store(tmp_path / "s", {"RIMBP3": flat, "TANGO2": PredictionStore(keras_store).read("TANGO2")})
    (tmp_path / "g.txt").write_text("\n".join(genes) + "\n")
    kw = {"output_dir": tmp_path / "out", "predictions": tmp_path / "s", "gene_ids_file": tmp_path / "g.txt"}
    summary = build(**kw, **_ref(chr22), **FAST)
    assert summary.n_genes == len(genes) and list(summary.genes_without_rows) == ["RIMBP3"]
    note = next(n for n in summary.notes if "no rows" in n)
    assert note.startswith(f"1 of {len(genes)} genes have no rows (RIMBP3: no annotated splice site") and "\n" not in note
    assert "--hard-prob" in note
    entry = read_manifest(tmp_path / "out")["batches"]["00000"]
    assert entry["genes"] == genes or sorted(entry["genes"]) == sorted(genes)
    assert list(entry["genes_without_rows"]) == ["RIMBP3"]
    assert set(_master(tmp_path / "out")["gene_id"].unique()) == set(genes) - {"RIMBP3"}
    rep = validate(dataset=tmp_path / "out")
    assert rep.ok, rep.problems
    # a resumed build says it again
    assert any("RIMBP3" in n for n in build(**kw, **_ref(chr22), **FAST).notes)


def test_kmer_size_zero_with_other_sizes_is_refused(tmp_path, chr22, keras_store):
    with pytest.raises(InputError, match=r"--kmer-sizes 0 6: 0 means no k-mers and cannot be combined"):
        build(output_dir=tmp_path / "o", predictions=keras_store, subset_policy="all", kmer_sizes=(0, 6),
              progress=False, **_ref(chr22))
    assert not (tmp_path / "o").exists()


def test_duplicate_gene_ids_are_one_note(tmp_path, chr22, keras_store, caplog):
    (tmp_path / "g.txt").write_text("TANGO2\nZNF74\nTANGO2\nTANGO2\n")
    with caplog.at_level("WARNING"):
        summary = build(output_dir=tmp_path / "o", predictions=keras_store, gene_ids_file=tmp_path / "g.txt",
                        **_ref(chr22), **FAST)
    dup = [r.getMessage() for r in caplog.records if "more than once" in r.getMessage()]
    assert len(dup) == 1 and "TANGO2 (3x)" in dup[0] and "g.txt" in dup[0] and "ZNF74" not in dup[0]
    assert summary.n_genes == 2


def _small(tmp_path, chr22, keras_store):
    (tmp_path / "g.txt").write_text("TANGO2\nZNF74\nGGTLC3\nRIMBP3\n")
    return {"output_dir": tmp_path / "out", "predictions": keras_store, "gene_ids_file": tmp_path / "g.txt",
            "batch_size": 2, **_ref(chr22), **FAST}


def test_a_foreign_parquet_file_in_master_is_refused_at_the_start(tmp_path, chr22, keras_store):
    kw = _small(tmp_path, chr22, keras_store)
    foreign = PredictionStore(keras_store).file_of("TANGO2")
    # a fresh folder whose master/ already holds someone's Parquet file: nothing is built
    (tmp_path / "out" / "master").mkdir(parents=True)
    shutil.copy(foreign, tmp_path / "out" / "master" / "mine.parquet")
    with pytest.raises(InputError, match=r"master/mine\.parquet was not written by this build.*move it out") as err:
        build(**kw)
    assert "\n" not in str(err.value) and not (tmp_path / "out" / "build.json").exists()
    # a finished build with one dropped in: the resume (and --overwrite, which would delete it) refuse it
    (tmp_path / "out" / "master" / "mine.parquet").unlink()
    build(**kw)
    shutil.copy(foreign, tmp_path / "out" / "master" / "mine.parquet")
    for extra in ({}, {"overwrite": True}):
        with pytest.raises(InputError, match=r"mine\.parquet was not written by this build"):
            build(**kw, **extra)
    assert (tmp_path / "out" / "master" / "mine.parquet").is_file()
    # named like a batch file, but of no batch of this build's plan (2 batches): foreign too
    (tmp_path / "out" / "master" / "mine.parquet").rename(tmp_path / "out" / "master" / "batch_00009.parquet")
    with pytest.raises(InputError, match=r"batch_00009\.parquet was not written by this build"):
        build(**kw)
    (tmp_path / "out" / "master" / "batch_00009.parquet").unlink()
    assert build(**kw).skipped == 2


def test_a_truncated_master_file_is_named_with_the_recovery(tmp_path, chr22, keras_store):
    from meta_spliceai.maintenance.validation import validate

    kw = _small(tmp_path, chr22, keras_store)
    build(**kw)
    before = _checksums(tmp_path / "out")
    p = batch_paths(tmp_path / "out", 1)
    assert os.path.samefile(p["master"], p["trim"])  # hard-linked: truncating one truncates both
    os.truncate(p["master"], p["master"].stat().st_size // 2)
    with pytest.raises(InputError, match=r"cannot read .*batch_00001_trim\.parquet .*truncated or damaged; delete "
                                         r".*batches/batch_00001_\*\.parquet and .*master/batch_00001\.parquet") as err:
        build(**kw)
    assert "\n" not in str(err.value)
    # the recovery it names works: the batch is remade, byte for byte
    for f in (tmp_path / "out" / "batches").glob("batch_00001_*.parquet"):
        f.unlink()
    p["master"].unlink()
    build(**kw)
    assert _checksums(tmp_path / "out") == before and validate(dataset=tmp_path / "out").ok
