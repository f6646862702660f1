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
