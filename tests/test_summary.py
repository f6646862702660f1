from __future__ import annotations

import polars as pl
import pytest

from meta_spliceai.cli.main import main
from meta_spliceai.maintenance.summary import summary


@pytest.fixture(scope="module")
def rows(chr22_dataset) -> pl.DataFrame:
    return pl.read_parquet(chr22_dataset / "master" / "*.parquet")


def test_counts_match_the_rows(chr22_dataset, rows):
    s = summary(dataset=chr22_dataset)
    assert (s.files, s.rows, s.genes) == (4, rows.height, 17)
    assert s.transcripts == rows["transcript_ids"].explode().drop_nulls().n_unique() == 17
    want = {(a, b): n for a, b, n in rows.group_by("splice_type", "pred_type").len().iter_rows()}
    assert s.class_balance == want
    assert s.tn_kinds == {k: n for k, n in rows["tn_kind"].drop_nulls().value_counts().iter_rows()}
    assert s.nulls == {"tn_kind": rows["tn_kind"].null_count()}
    assert s.rows_per_gene == dict(rows.group_by("gene_id").len().iter_rows())
    assert sum(s.rows_per_file.values()) == rows.height
    # every row lands in one score-histogram bin per track
    assert sum(h.sum() for (t, _, _), h in s.score_hist.items() if t == "donor") == rows.height


def test_pooled_base_model_performance(chr22_dataset):
    s = summary(dataset=chr22_dataset)
    perf = pl.read_csv(chr22_dataset / "gene_performance.tsv", separator="\t")
    pooled = {r["splice_type"]: r for r in s.pooled_performance().iter_rows(named=True)}
    for st in ("donor", "acceptor"):
        p = perf.filter(pl.col("splice_type") == st)
        tp, fp, fn = (int(p[c].sum()) for c in ("TP", "FP", "FN"))
        assert (pooled[st]["TP"], pooled[st]["FP"], pooled[st]["FN"]) == (tp, fp, fn)
        assert pooled[st]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
        assert pooled[st]["genes"] == 17


def test_cli_prints_summary_and_writes_report(capsys, tmp_path, chr22_dataset, rows):
    report = tmp_path / "r" / "report.html"
    assert main(["summary", str(chr22_dataset), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert f"{rows.height:,}" in out and "Class balance" in out and "Base model" in out
    page = report.read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert "http://" not in page and "https://" not in page  # self-contained


def test_cli_report_to_stdout(capsys, chr22_dataset):
    """``--report -``: the page alone on stdout (the summary tables go to stderr)."""
    assert main(["summary", str(chr22_dataset), "--report", "-"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("<!DOCTYPE html>")
    assert captured.out.rstrip().endswith("</html>") and "Class balance" in captured.err
