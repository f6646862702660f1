"""``build --dry-run`` (issue 31): the plan of a build from a short real calibration, writing nothing."""

from __future__ import annotations

import pytest

from meta_spliceai.cli.main import main


@pytest.mark.slow
def test_dry_run_plans_and_writes_nothing(chr22, keras_store, tmp_path, capsys):
    from meta_spliceai.dataset.plan import plan_build

    out = tmp_path / "b"
    ref = ["--fasta", str(chr22 / "genome.fa.gz"), "--gtf", str(chr22 / "annotation.gtf")]
    assert main(["build", "--dry-run", "-o", str(out), *ref, "--subset-policy", "all", "--kmer-sizes", "2"]) == 0
    text = capsys.readouterr().out
    assert not out.exists() and "nothing written" in text
    assert "377,749 of gene body (547,749 model input with flanks)" in text and "peak memory" in text
    assert "17 of these genes lack predictions" in text and "without --run-workflow" in text
    # the store's genes are not predicted again; two workers share the predict time
    plan = plan_build(output_dir=out, fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf", subset_policy="all",
                      kmer_sizes=(2,), predictions=keras_store, workers=2)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
    assert plan.n_genes == 17 and plan.stored_genes == 17 and plan.body_nt == 0 and plan.predict_seconds == 0
    assert plan.build_seconds > 0 and plan.dataset_bytes > 0 and plan.peak_memory_bytes > 2**20
    assert plan.calibration["genes"] == 3 and plan.calibration["threads"] >= 1
