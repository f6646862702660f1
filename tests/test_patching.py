from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import copy_dataset

from meta_spliceai.cli.main import main
from meta_spliceai.dataset.builder import build
from meta_spliceai.dataset.schema import METADATA_KEY, SCHEMA_VERSION
from meta_spliceai.errors import InputError
from meta_spliceai.maintenance.patching import UPGRADES, patch
from meta_spliceai.maintenance.validation import validate

KEY = ["gene_id", "position", "splice_type"]
TYPES = {"XXbac-B562F10.12": "lncRNA"}  # every other chr22 gene: protein_coding


def _rows(root) -> pl.DataFrame:
    return pl.read_parquet(root / "master" / "*.parquet").sort(KEY)


def _checksums(root) -> dict[str, str]:
    return {k: e["checksum"] for k, e in json.loads((root / "manifest.json").read_text())["batches"].items()}


@pytest.fixture(scope="module")
def typed_gtf(tmp_path_factory, chr22):
    """The chr22 GTF with gene_type attributes (the shared one has none)."""
    out = []
    for line in (chr22 / "annotation.gtf").read_text().splitlines():
        gid = re.search(r'gene_id "([^"]+)"', line)
        if gid and not line.startswith("#"):
            line += f' gene_type "{TYPES.get(gid.group(1), "protein_coding")}";'
        out.append(line)
    path = tmp_path_factory.mktemp("gtf") / "typed.gtf"
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.fixture(scope="module")
def patched(tmp_path_factory, chr22_dataset, typed_gtf):
    dst = tmp_path_factory.mktemp("pt") / "out"
    return patch(dataset=chr22_dataset, dst=dst, gtf=typed_gtf), dst


def test_gene_types_filled_from_another_gtf(chr22_dataset, patched):
    res, dst = patched
    before, after = _rows(chr22_dataset), _rows(dst)
    assert set(before["gene_type"].unique()) == {"unknown"}
    genes = before["gene_id"].unique().to_list()
    assert sorted(res.type_changes) == sorted((g, "unknown", TYPES.get(g, "protein_coding")) for g in genes)
    assert len(res.files_rewritten) == 4 and not res.not_in_annotation and not res.span_differs
    want = before.with_columns(pl.col("gene_id").replace_strict(TYPES, default="protein_coding").alias("gene_type"))
    assert after.equals(want)  # nothing else changed
    assert validate(dataset=dst).ok


def test_idempotent_and_unknown_never_overwrites(patched, typed_gtf, chr22):
    _, dst = patched
    sums = _checksums(dst)
    mtimes = {f.name: os.stat(f).st_mtime_ns for f in (dst / "master").iterdir()}
    for gtf in (typed_gtf, chr22 / "annotation.gtf"):  # the build's GTF has no types: "unknown" keeps known ones
        res = patch(dataset=dst, inplace=True, gtf=gtf)
        assert not res.changed and not res.type_changes
    assert _checksums(dst) == sums
    assert {f.name: os.stat(f).st_mtime_ns for f in (dst / "master").iterdir()} == mtimes


def test_cli_reports_type_changes(capsys, tmp_path, chr22_dataset, typed_gtf):
    src = copy_dataset(chr22_dataset, tmp_path / "ds")
    assert main(["patch", str(src), "--gtf", str(typed_gtf)]) == 0
    out = capsys.readouterr().out
    assert "genes whose type changed: 17" in out and "XXbac-B562F10.12: unknown -> lncRNA" in out
    assert (tmp_path / "ds_patched" / "manifest.json").is_file()


def test_build_patch_dataset_runs_patch_once(tmp_path, chr22, keras_store, capsys):
    out = tmp_path / "b"
    kw = dict(output_dir=out, predictions=keras_store, fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf",
              gene_ids_file=_genes(tmp_path), batch_size=2, kmer_sizes=(2,), progress=False)
    argv = ["build", "--output-dir", str(out), "--predictions", str(keras_store), "--fasta", str(chr22 / "genome.fa.gz"),
            "--gtf", str(chr22 / "annotation.gtf"), "--gene-ids-file", str(_genes(tmp_path)), "--batch-size", "2",
            "--kmer-sizes", "2", "--patch-dataset"]
    assert main(argv) == 0  # the CLI runs patch once the build is complete (build itself never patches)
    printed = " ".join(capsys.readouterr().out.split())
    assert printed.count("patch: 0 file(s) rewritten") == 1 and "genes whose type changed: 0" in printed
    again = build(**kw)  # patching kept the batches done
    assert again.built == 0 and again.skipped == 2


def _rewrite_master(root, edit) -> None:
    """Rewrite every master file as ``edit(table, meta)`` returns it (``meta``: its schema metadata, edited in place)."""
    for e in json.loads((root / "manifest.json").read_text())["batches"].values():
        path = root / "master" / e["file"]
        t = pq.read_table(path)
        meta = json.loads(t.schema.metadata[METADATA_KEY])
        t = edit(t, meta).replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
        path.unlink()
        pq.write_table(t, path)


def _entropy_step(table: pa.Table, ctx) -> pa.Table:
    """A test upgrade 0 -> 1: recompute probability_entropy as the builder does."""
    eps = np.float32(1e-10)
    d, a, n = (table.column(c).to_numpy() for c in ("donor_score", "acceptor_score", "neither_score"))
    h = -(d * np.log(d + eps) + a * np.log(a + eps) + n * np.log(n + eps))
    return table.append_column("probability_entropy", pa.array(h.astype(np.float32)))


def test_schema_upgrade_steps_run_in_order(tmp_path, chr22_dataset, monkeypatch):
    """A version-0 file (no probability_entropy) is upgraded by its registered step to the current schema."""
    src = copy_dataset(chr22_dataset, tmp_path / "ds")

    def as_version_0(t: pa.Table, meta: dict) -> pa.Table:
        meta["schema_version"] = 0
        del meta["roles"]["probability_entropy"]
        return t.drop_columns(["probability_entropy"])

    _rewrite_master(src, as_version_0)
    with pytest.raises(InputError, match="no upgrade from schema_version 0 to 1"):
        patch(dataset=src, dst=tmp_path / "x")
    monkeypatch.setitem(UPGRADES, 0, _entropy_step)
    res = patch(dataset=src, dst=tmp_path / "up")
    assert sorted(res.upgraded.values()) == [0, 0, 0, 0]
    after = _rows(tmp_path / "up")
    assert after.columns == _rows(chr22_dataset).columns
    np.testing.assert_allclose(after["probability_entropy"].to_numpy(),
                               _rows(chr22_dataset)["probability_entropy"].to_numpy(), rtol=1e-6)
    assert validate(dataset=tmp_path / "up").ok


_PATCH = "import sys; from meta_spliceai.maintenance.patching import patch; patch(dataset=sys.argv[1], inplace=True, gtf=sys.argv[2])"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["patch_write:2", "patch_staged", "patch_swapped"])
def test_sigkill_inplace_leaves_old_or_new(tmp_path, chr22_dataset, patched, typed_gtf, point):
    _, clean = patched
    src = copy_dataset(chr22_dataset, tmp_path / "ds")
    old, new = _rows(src), _rows(clean)
    args = [sys.executable, "-c", _PATCH, str(src), str(typed_gtf)]
    r = subprocess.run(args, env={**os.environ, "META_SPLICEAI_FAULT": point}, capture_output=True)
    assert r.returncode == -9, r.stderr.decode()[-2000:]
    rep = validate(dataset=src)  # opening completes or rolls back the interrupted swap
    assert rep.ok, [str(p) for p in rep.problems]
    now = _rows(src)
    assert now.equals(new) if point == "patch_swapped" else now.equals(old)
    r = subprocess.run(args, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert _rows(src).equals(new) and _checksums(src) == _checksums(clean)
    # the build's trims follow the new master files, so a resumed build sees its batches done
    for f in (src / "master").iterdir():
        assert os.path.samefile(f, src / "batches" / f.name.replace(".parquet", "_trim.parquet"))


def test_schema_version_1_dataset_is_brought_to_version_2(tmp_path, chr22, keras_store):
    """A version-1 file (base features, no feature_sets in its metadata) becomes a version-2 file of the
    base family: same columns and values, the current version and feature_sets in its metadata."""
    out = tmp_path / "v1"
    build(output_dir=out, predictions=keras_store, fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf",
          gene_ids_file=_genes(tmp_path), batch_size=2, kmer_sizes=(), feature_sets=("base",), progress=False)
    before = _rows(out)

    def as_version_1(t: pa.Table, meta: dict) -> pa.Table:
        meta["schema_version"] = 1
        del meta["feature_sets"]
        return t

    _rewrite_master(out, as_version_1)
    res = patch(dataset=out, dst=tmp_path / "v2")
    assert sorted(res.upgraded.values()) == [1, 1]
    for f in (tmp_path / "v2" / "master").glob("*.parquet"):
        meta = json.loads(pq.read_schema(f).metadata[METADATA_KEY])
        assert meta["schema_version"] == SCHEMA_VERSION == 2 and meta["feature_sets"] == ["base"]
    assert _rows(tmp_path / "v2").equals(before)
    assert validate(dataset=tmp_path / "v2").ok


def _genes(tmp_path):
    path = tmp_path / "genes.txt"
    path.write_text("CCDC188\nTRMT2A\nGGTLC3\n")
    return path
