"""The HTML report renders in a real browser (headless Chromium) and shows its plots."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from meta_spliceai.maintenance.summary import summary
from meta_spliceai.maintenance.summary_report import render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: one colour per plot: class balance (TN), rows per file, rows per gene, donor per-gene F1 / TP
PLOT_COLOURS = {"TN bars": (31, 119, 180), "rows per file": (148, 103, 189), "rows per gene": (23, 190, 207),
                "F1 / TP": (44, 160, 44), "FP score lines": (255, 127, 14)}


def _screenshot(page, tmp_path, name: str) -> np.ndarray:
    from matplotlib.image import imread

    html = tmp_path / f"{name}.html"
    html.write_text(page)
    png = tmp_path / f"{name}.png"
    r = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--hide-scrollbars",
         f"--user-data-dir={tmp_path / ('profile-' + name)}", f"--screenshot={png}", "--window-size=1200,3000",
         html.as_uri()], capture_output=True, timeout=900)  # a loaded 2-core CI machine can be slow
    assert png.is_file(), r.stderr.decode()[-2000:]
    return (imread(png)[..., :3] * 255).round().astype(int)


def _colour_pixels(img: np.ndarray) -> dict[str, int]:
    return {k: int((np.abs(img - np.array(c)).max(axis=-1) <= 6).sum()) for k, c in PLOT_COLOURS.items()}


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
def test_report_shows_its_plots_in_chromium(tmp_path, chr22_dataset):
    page = render_html(summary(dataset=chr22_dataset))
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 4
    img = _screenshot(page, tmp_path, "report")
    assert img.shape[:2] == (3000, 1200)
    seen = _colour_pixels(img)
    assert all(n > 300 for n in seen.values()), seen  # every plot drew its bars/lines
    # rows of the page that hold colour (plots) rather than text on white
    coloured_rows = (np.ptp(img, axis=-1) > 60).any(axis=1).sum()
    assert coloured_rows > 600
    # control: the same page with its images broken shows none of those colours
    broken = re.sub(r"base64,[A-Za-z0-9+/=]{100}", "base64,AAAA", page)
    assert max(_colour_pixels(_screenshot(broken, tmp_path, "broken")).values()) < 50


def text_clashes(fig) -> list[str]:
    """Titles, axis labels and tick labels of a figure that overlap one another or stick out of it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    r = canvas.get_renderer()
    page = fig.bbox
    texts = []

    def shown(ax, t, i: int) -> bool:  # tick labels of ticks outside the view are not drawn
        lo, hi = sorted((ax.get_xlim(), ax.get_ylim())[i])
        return lo - 1e-9 * abs(hi - lo) <= t.get_position()[i] <= hi + 1e-9 * abs(hi - lo)

    for k, ax in enumerate(fig.axes):
        for what, t in [("title", ax.title), ("xlabel", ax.xaxis.label), ("ylabel", ax.yaxis.label),
                        *[("xtick", t) for t in ax.get_xticklabels() if shown(ax, t, 0)],
                        *[("ytick", t) for t in ax.get_yticklabels() if shown(ax, t, 1)]]:
            if t.get_visible() and t.get_text().strip():
                b = t.get_window_extent(r)  # less a pixel each side: touching is not overlapping
                texts.append((f"axes {k} {what} {t.get_text()!r}", Bbox.from_extents(b.x0 + 1, b.y0 + 1, b.x1 - 1,
                                                                                     b.y1 - 1)))
    bad = [f"{n} outside the figure" for n, b in texts
           if b.x0 < page.x0 - 1 or b.y0 < page.y0 - 1 or b.x1 > page.x1 + 1 or b.y1 > page.y1 + 1]
    bad += [f"{a} overlaps {b}" for i, (a, ba) in enumerate(texts) for b, bb in texts[i + 1:] if ba.overlaps(bb)]
    return bad


def _figures(monkeypatch, s) -> list:
    import meta_spliceai.maintenance.summary_report as sr

    figs, img = [], sr._img
    monkeypatch.setattr(sr, "_img", lambda fig, alt: (figs.append(fig), img(fig, alt))[1])
    render_html(s)
    return figs


def test_plots_have_readable_titles_ticks_and_count_labels(monkeypatch, chr22_dataset):
    s = summary(dataset=chr22_dataset)
    figs = _figures(monkeypatch, s)
    assert len(figs) == 4
    for fig in figs:
        assert text_clashes(fig) == []
    titles = [ax.get_title() for fig in figs for ax in fig.axes]
    assert len(set(titles)) == len(titles) == 8
    balance, scores, rows, perf = figs
    for ax in (*balance.axes, *scores.axes):  # class counts on a log scale, labelled as counts
        assert ax.get_yscale() == "log"
        assert {t.get_text() for t in ax.get_yticklabels()} >= {"10", "100", "1,000"}
    per_file, per_gene = rows.axes
    assert [t.get_text() for t in per_file.get_xticklabels()] == [n.removesuffix(".parquet") for n in s.rows_per_file]
    for ax in (per_file, per_gene, *perf.axes):  # counts: integer ticks, thousands separators
        ticks = [float(t) for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        assert ticks and all(t.is_integer() for t in ticks)
    assert all("," in t.get_text() for t in per_file.get_yticklabels() if float(t.get_position()[1]) >= 1000)


def test_many_files_are_named_every_kth(monkeypatch, chr22_dataset):
    from meta_spliceai.maintenance.summary_report import MAX_FILE_LABELS, file_ticks

    names = [f"batch_{i:05d}.parquet" for i in range(250)]
    at, labels = file_ticks(names)
    assert at[0] == 0 and len(at) <= MAX_FILE_LABELS and labels[1] == f"batch_{at[1]:05d}"
    s = summary(dataset=chr22_dataset)
    s.rows_per_file = {n: 1000 * (i % 7 + 1) for i, n in enumerate(names)}
    rows = _figures(monkeypatch, s)[2]
    assert text_clashes(rows) == []
    assert [t.get_text() for t in rows.axes[0].get_xticklabels()] == labels
