"""The demo: the main job on the built-in reference, without noise about flags it does not take."""

from __future__ import annotations

import shutil

import pytest

from meta_spliceai.cli.main import main


@pytest.mark.slow
def test_demo_does_not_warn_about_flags_it_does_not_take(tmp_path, keras_store, capsys):
    out = tmp_path / "demo"
    shutil.copytree(keras_store, out / "predictions")  # the demo genes' SpliceAI scores: no model run needed
    assert main(["demo", str(out)]) == 0
    captured = capsys.readouterr()
    assert "--" not in captured.err, captured.err  # no warning or note naming a flag (--fasta, --n-genes, ...)
    assert "--n-genes" not in captured.out
    assert (out / "manifest.json").is_file() and (out / "gene_ids.tsv").is_file()
    assert "master dataset" in captured.out
    # it says what it ran on, lists every calls file, and leaves no temp folder of the corrected scores
    assert "reference: the built-in demo reference, GRCh37 chr22:20-21 Mb (FASTA " in captured.out
    for name in ("calls.tsv", "calls.parquet", "calls.bed"):
        assert str(out / "apply" / name) in captured.out and (out / "apply" / name).is_file()
    assert not [p.name for p in (out / "apply").iterdir() if p.name.startswith(".")]
