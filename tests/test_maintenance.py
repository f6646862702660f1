from __future__ import annotations

import json
import os

import pytest
from conftest import copy_dataset

from meta_spliceai.dataset.folder import (
    JOURNAL,
    STAGING,
    exchange,
    open_dataset,
    recover,
)
from meta_spliceai.errors import InputError
from meta_spliceai.maintenance.publish import commit_staged, new_folder, staging
from meta_spliceai.storage import link_or_copy


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    ino_a = os.stat(a).st_ino
    if not exchange(a, b):
        pytest.skip("file system without renameat2(RENAME_EXCHANGE); the two-rename path is used")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a" and os.stat(b).st_ino == ino_a


def _stage_copy(root):
    stage = staging(root)
    for f in (root / "master").iterdir():
        link_or_copy(f, stage / "master" / f.name, tmp_dir=stage)
    m = json.loads((root / "manifest.json").read_text())
    m["history"] = [{"op": "test"}]
    (stage / "manifest.json").write_text(json.dumps(m))
    return stage


def test_staging_without_journal_is_rolled_back(tmp_path, chr22_dataset):
    root = copy_dataset(chr22_dataset, tmp_path / "ds")
    _stage_copy(root)
    ds = open_dataset(root)  # an interrupted change that wrote no journal: the old dataset stays
    assert not (root / STAGING).exists() and "history" not in ds.manifest


def test_journal_is_completed_after_a_half_swap(tmp_path, chr22_dataset):
    root = copy_dataset(chr22_dataset, tmp_path / "ds")
    stage = _stage_copy(root)
    new_ino = os.stat(stage / "master").st_ino
    (root / JOURNAL).write_text(json.dumps({"op": "test", "new_master_ino": new_ino}))
    os.rename(root / "master", stage / "old_master")  # killed between the two renames of the fallback
    ds = open_dataset(root)
    assert os.stat(root / "master").st_ino == new_ino and ds.manifest["history"] == [{"op": "test"}]
    assert not (root / JOURNAL).exists() and not (root / STAGING).exists()
    recover(root)  # nothing left to do


def test_commit_staged_and_new_folder(tmp_path, chr22_dataset):
    root = copy_dataset(chr22_dataset, tmp_path / "ds")
    stage = _stage_copy(root)
    commit_staged(root, stage, "test")
    assert json.loads((root / "manifest.json").read_text())["history"] == [{"op": "test"}]
    with pytest.raises(InputError, match="already exists"):
        with new_folder(root):
            pass
    with new_folder(tmp_path / "new") as tmp:
        (tmp / "master" / "f").write_text("x")
        assert not (tmp_path / "new").exists()
    assert (tmp_path / "new" / "master" / "f").is_file()
