from __future__ import annotations

import json
import os

import polars as pl
import pytest
from conftest import copy_dataset

from meta_spliceai.cli.main import main
from meta_spliceai.errors import ConfigMismatchError, InputError
from meta_spliceai.maintenance.merging import merge
from meta_spliceai.maintenance.validation import validate

KEY = ["gene_id", "position", "splice_type"]


def _rows(root) -> pl.DataFrame:
    return pl.read_parquet(root / "master" / "*.parquet")


def test_two_half_builds_equal_the_full_build(capsys, tmp_path, chr22_dataset, chr22_halves):
    a, b = chr22_halves
    out = tmp_path / "merged"
    code = main(["merge", str(out), str(a), str(b), "--on-overlap", "dedup"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "1 gene(s) present twice" in printed
    merged, full = _rows(out), _rows(chr22_dataset)
    assert merged.drop("batch").sort(KEY).equals(full.drop("batch").sort(KEY))
    assert validate(dataset=out).ok
    manifest = json.loads((out / "manifest.json").read_text())
    entries = list(manifest["batches"].values())
    assert [e["source"]["dataset"] for e in entries] == [str(a)] * 3 + [str(b)] * 3
    # untouched files are hard links of the sources; the file that lost the shared gene was rewritten
    linked = [os.path.samefile(out / "master" / e["file"], e["source"]["dataset"] + "/master/" + e["source"]["file"])
              for e in entries]
    assert sum(linked) == 5
    perf = pl.read_csv(out / "gene_performance.tsv", separator="\t")
    assert perf.height == 2 * 17 and perf["gene_id"].n_unique() == 17


def test_overlap_is_an_error_by_default(tmp_path, chr22_halves):
    with pytest.raises(InputError, match=r"1 gene\(s\) are in more than one dataset: .*--on-overlap dedup"):
        merge(out=tmp_path / "m", datasets=list(chr22_halves))
    assert not (tmp_path / "m").exists()


def test_incompatible_configurations_are_listed(tmp_path, chr22_halves):
    a, b = chr22_halves
    other = copy_dataset(b, tmp_path / "other")
    meta = json.loads((other / "build.json").read_text())
    meta["config"]["threshold"] = 0.4
    meta["inputs"]["gtf_checksum"] = "0" * 32
    (other / "build.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigMismatchError, match=r"threshold: 0\.5 in .*, 0\.4 in .*; gtf content differs"):
        merge(out=tmp_path / "m", datasets=[a, other], on_overlap="dedup")


def test_bad_arguments(tmp_path, chr22_halves):
    a, _ = chr22_halves
    with pytest.raises(InputError, match="given twice"):
        merge(out=tmp_path / "m", datasets=[a, a])
    with pytest.raises(InputError, match="is one of the inputs"):
        merge(out=a, datasets=[a])
    with pytest.raises(InputError, match="no master/ folder"):
        merge(out=tmp_path / "m", datasets=[a, tmp_path])
