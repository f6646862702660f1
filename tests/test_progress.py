"""Plain progress lines (stderr not a terminal) and the null display."""

from __future__ import annotations

import io
import re
import time

from meta_spliceai.progress import (
    NullProgress,
    PlainProgress,
    progress_display,
    progress_interval,
)


def test_plain_progress_writes_periodic_lines_with_counts_rate_and_eta():
    stream = io.StringIO()
    with PlainProgress(stream=stream, interval=0.05) as bar:
        outer = bar.add_task("batches", total=4, rate="")
        inner = bar.add_task("batch 0: genes", total=10, rate="")
        for i in range(10):
            bar.update(inner, advance=1, rate=f"{1000 * (i + 1):,} rows/s")
            time.sleep(0.02)
        bar.remove_task(inner)
        bar.update(outer, advance=1)
        time.sleep(0.15)  # nothing moves: lines keep coming (a long step still shows life)
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 4
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d progress: ", ln) for ln in lines)
    assert any(re.search(r"batches 0/4, ETA \?; batch 0: genes \d+/10, [\d,]+ rows/s, ETA \d:\d\d:\d\d", ln) for ln in lines)
    assert "batch 0: genes 10/10" in stream.getvalue() and "done in" in stream.getvalue()
    assert re.search(r"batches 1/4, ETA \d:\d\d:\d\d$", lines[-1])


def test_unit_rate_and_null_display(monkeypatch):
    stream = io.StringIO()
    bar = PlainProgress(stream=stream, interval=10)
    t = bar.add_task("predict", total=1000, unit="nt", genes="0/2 genes")
    bar.update(t, advance=500, genes="1/2 genes")
    bar.emit()
    assert re.search(r"predict 500/1,000 nt, 1/2 genes, [\d,]+ nt/s, ETA", stream.getvalue())
    null = progress_display([], enabled=False)
    assert isinstance(null, NullProgress) and not null
    with null as b:
        b.update(b.add_task("x", total=1), advance=1)
    monkeypatch.setenv("META_SPLICEAI_PROGRESS_INTERVAL", "2.5")
    assert progress_interval() == 2.5
    assert isinstance(progress_display([], enabled=True), PlainProgress)  # pytest's stderr is not a terminal
