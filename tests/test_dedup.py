from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest
from conftest import copy_dataset

from meta_spliceai.cli.main import main
from meta_spliceai.errors import InputError
from meta_spliceai.maintenance.dedup import DEFAULT_KEY, dedup
from meta_spliceai.maintenance.validation import validate

KEY = list(DEFAULT_KEY)


def _rows(root) -> pl.DataFrame:
    return pl.read_parquet(root / "master" / "*.parquet")


def _checksums(root) -> dict[str, str]:
    return {k: e["checksum"] for k, e in json.loads((root / "manifest.json").read_text())["batches"].items()}


@pytest.fixture(scope="module")
def deduped(tmp_path_factory, chr22_dataset):
    dst = tmp_path_factory.mktemp("dd") / "out"
    return dedup(dataset=chr22_dataset, dst=dst), dst


def test_overlapping_genes_keep_the_first_gene_id(chr22_dataset, deduped):
    res, dst = deduped
    before, after = _rows(chr22_dataset), _rows(dst)
    groups = before.group_by(KEY).agg(pl.col("gene_id").min().alias("survivor"), pl.len())
    dups = groups.filter(pl.col("len") > 1)
    assert dups.height > 0 and dups["len"].max() == 2
    assert res.removed == {"overlapping_genes": dups.height, "repeated_gene": 0}
    assert res.rows_in == before.height and res.rows_out == after.height == before.height - dups.height
    assert not after.select(pl.struct(KEY).is_duplicated().any()).item()
    kept = after.join(dups, on=KEY)
    assert kept.height == dups.height and (kept["gene_id"] == kept["survivor"]).all()
    # the surviving row is the survivor gene's own row, unchanged
    assert kept.drop("survivor", "len").sort(KEY).equals(
        before.join(dups, on=KEY).filter(pl.col("gene_id") == pl.col("survivor")).drop("survivor", "len").sort(KEY))
    assert res.share("overlapping_genes") == pytest.approx(dups.height / before.height)
    assert res.files_rewritten and validate(dataset=dst).ok


def test_default_destination_and_second_run_changes_nothing(capsys, tmp_path, chr22_dataset):
    src = copy_dataset(chr22_dataset, tmp_path / "ds")
    assert main(["dedup", str(src)]) == 0
    out = capsys.readouterr().out
    assert "overlapping_genes" in out and (tmp_path / "ds_dedup" / "manifest.json").is_file()
    dst = tmp_path / "ds_dedup"
    sums, stats = _checksums(dst), {f.name: os.stat(f).st_mtime_ns for f in (dst / "master").iterdir()}
    again = dedup(dataset=dst, inplace=True)
    assert again.removed_total == 0 and not again.changed
    assert _checksums(dst) == sums and {f.name: os.stat(f).st_mtime_ns for f in (dst / "master").iterdir()} == stats
    # into a new folder the result is the same files, hard-linked
    third = dedup(dataset=dst, dst=tmp_path / "third")
    assert third.removed_total == 0 and _checksums(tmp_path / "third") == sums
    f = next((dst / "master").iterdir())
    assert os.path.samefile(f, tmp_path / "third" / "master" / f.name)


@pytest.mark.parametrize("chunk_rows", [2_000_000, 1_000])
def test_repeated_batch_is_its_own_cause(tmp_path, chr22_dataset, monkeypatch, chunk_rows):
    import meta_spliceai.maintenance.dedup as mod

    monkeypatch.setattr(mod, "CROSS_CHUNK_ROWS", chunk_rows)  # small: many chunks of whole clusters
    monkeypatch.setattr(mod, "SPAN_PARTS", 1 if chunk_rows < 10_000 else 64)  # and span tables merged early
    src = copy_dataset(chr22_dataset, tmp_path / "ds")
    (src / "master" / "batch_00004.parquet").write_bytes((src / "master" / "batch_00001.parquet").read_bytes())
    m = json.loads((src / "manifest.json").read_text())
    m["batches"]["00004"] = {**m["batches"]["00001"], "file": "batch_00004.parquet"}
    (src / "manifest.json").write_text(json.dumps(m))
    dup_rows = m["batches"]["00001"]["rows"]
    res = dedup(dataset=src, dst=tmp_path / "out")
    assert res.removed["repeated_gene"] == dup_rows
    # the copy in the later file goes; the first file keeps its rows
    out = json.loads((tmp_path / "out" / "manifest.json").read_text())["batches"]
    assert out["00004"]["rows"] == 0 and out["00004"]["genes"] == [] and out["00001"]["rows"] == dup_rows


def test_bad_flags(tmp_path, chr22_dataset):
    with pytest.raises(InputError, match="--key column"):
        dedup(dataset=chr22_dataset, dst=tmp_path / "x", key=["chrom", "nope"])
    with pytest.raises(InputError, match="must include chrom and genomic_position, or gene_id"):
        dedup(dataset=chr22_dataset, dst=tmp_path / "x", key=["splice_type"])
    with pytest.raises(InputError, match="exclude each other"):
        dedup(dataset=chr22_dataset, dst=tmp_path / "x", inplace=True)
    with pytest.raises(InputError, match="already exists"):
        dedup(dataset=chr22_dataset, dst=chr22_dataset)


_DEDUP = "import sys; from meta_spliceai.maintenance.dedup import dedup; dedup(dataset=sys.argv[1], inplace=True)"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["dedup_write:1", "dedup_journal", "dedup_swapped"])
def test_sigkill_inplace_leaves_old_or_new(tmp_path, chr22_dataset, deduped, point):
    _, clean = deduped
    src = copy_dataset(chr22_dataset, tmp_path / "ds")
    old = _rows(src).sort(KEY + ["gene_id"])
    args = [sys.executable, "-c", _DEDUP, str(src)]
    r = subprocess.run(args, env={**os.environ, "META_SPLICEAI_FAULT": point}, capture_output=True)
    assert r.returncode == -9, r.stderr.decode()[-2000:]
    rep = validate(dataset=src)  # opening completes or rolls back the interrupted swap
    assert rep.ok, [str(p) for p in rep.problems]
    now = _rows(src).sort(KEY + ["gene_id"])
    new = _rows(clean).sort(KEY + ["gene_id"])
    assert now.equals(old) or now.equals(new)
    assert now.equals(new) == (point != "dedup_write:1")  # after the journal the new dataset wins
    r = subprocess.run(args, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert _rows(src).sort(KEY + ["gene_id"]).equals(new) and _checksums(src) == _checksums(clean)
    assert not (src / ".staging").exists() and not (src / ".journal.json").exists()
