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
