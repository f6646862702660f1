"""The train report (metamodel/report.py): verdict, small-test-set banner, self-contained page, gene names,
and its rendering in a real browser (headless Chromium)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from test_summary_report import CHROMIUM, _screenshot, text_clashes

from meta_spliceai.metamodel import report
from meta_spliceai.metamodel.comparison import SITE_TYPES, Collector

FLOOR = 0.15


@dataclass
class _Model:
    """What the report reads of a MetaModel."""

    kind: str = "xgboost"
    features: list[str] = field(default_factory=lambda: ["donor_score", "acceptor_score", "gene_length"])

    def importances(self) -> dict[str, float]:
        return {"donor_score": 5.0, "acceptor_score": 3.0, "gene_length": 0.5}


def _collector(n_genes: int, sites_per_type: int, seed: int = 0) -> Collector:
    """Base: every site scored 0.3-0.99 (some missed at 0.5) plus decoys at 0.3-0.8; meta: sites up, decoys down."""
    rng = np.random.default_rng(seed)
    c = Collector(["base", "meta"], floor=FLOOR, window=2)
    for g in range(n_genes):
        length = 4000
        pos = rng.choice(np.arange(50, length - 50, 20), size=2 * sites_per_type + 8, replace=False)
        sites = {"donor": np.sort(pos[:sites_per_type]), "acceptor": np.sort(pos[sites_per_type:2 * sites_per_type])}
        decoys = pos[2 * sites_per_type:]
        base = np.zeros((length, 3))
        base[:, 1:] = rng.uniform(0, 1e-3, (length, 2))
        for col, t, dec in ((2, "donor", decoys[:4]), (1, "acceptor", decoys[4:])):  # columns: neither, acceptor, donor
            base[sites[t], col] = rng.uniform(0.3, 0.99, sites[t].size)
            base[dec, col] = rng.uniform(0.3, 0.8, dec.size)
        base[:, 0] = 1 - base[:, 1:].sum(axis=1)
        scored = np.flatnonzero(base[:, 1:].max(axis=1) >= FLOOR)
        meta = base.copy()
        for col, t in ((2, "donor"), (1, "acceptor")):
            meta[sites[t], col] = np.minimum(0.999, base[sites[t], col] + 0.3)
        meta[decoys, 1:] *= 0.3
        meta[:, 0] = 1 - meta[:, 1:].sum(axis=1)
        c.add(f"ENSG{g:011d}.1", {"base": base, "meta": meta}, scored, sites)
    return c


def _report(tmp_path: Path, n_genes: int, sites_per_type: int, names: dict | None = None) -> tuple[Path, dict]:
    c = _collector(n_genes, sites_per_type)
    thresholds = {(m, t): 0.5 for m in c.methods for t in SITE_TYPES}
    metrics = c.summary(thresholds, n_boot=200, seed=1)
    out = tmp_path / f"r{n_genes}"
    out.mkdir()
    c.per_gene(("base", "meta"), thresholds).write_csv(out / "delta_vs_baseline.csv")
    report.write_training_report(out, metrics, c, _Model(), c.methods, thresholds, [], names)
    return out, metrics


def _vs(diff: float | None, lo: float | None, hi: float | None) -> dict:
    return {"difference": diff, "ci95": [lo, hi]}


def _metrics(per_type: dict[str, dict[str, dict]], genes: int = 40, sites: int = 400) -> dict:
    return {"genes": genes, "site_types": {
        t: {"sites": sites, "methods": {"base": {}, "meta": {"vs_base": per_type[t]}}} for t in SITE_TYPES}}


def test_verdict_names_what_is_better_worse_or_unclear():
    m = _metrics({"donor": {"pr_auc": _vs(0.02, 0.01, 0.03), "topk_1x": _vs(0.0, -0.01, 0.01),
                            "f1_at_valid": _vs(0.05, 0.02, 0.08)},
                  "acceptor": {"pr_auc": _vs(0.01, 0.0, 0.02), "topk_1x": _vs(-0.01, -0.02, 0.0),
                               "f1_at_valid": _vs(0.03, 0.001, 0.06)}})
    v = report.verdict(m)
    assert v.startswith("The meta-model beats the base model on the 40 test genes on ")
    better, unclear = v.split("; no clear difference on ")
    for s in ("donor PR-AUC (+0.0200 [0.0100, 0.0300])", "donor F1 @thr (+0.0500", "acceptor F1 @thr (+0.0300"):
        assert s in better
    for s in ("donor top-k 1x", "acceptor PR-AUC", "acceptor top-k 1x"):  # intervals touching 0 do not count
        assert s in unclear and s not in better
    assert "worse" not in v

    worse = _metrics({t: {"pr_auc": _vs(-0.02, -0.03, -0.01), "f1_at_valid": _vs(0.0, -0.01, 0.01)}
                      for t in SITE_TYPES})
    v = report.verdict(worse)
    assert v.startswith("The meta-model does not beat the base model") and "worse on donor PR-AUC" in v
    assert "acceptor PR-AUC (-0.0200 [-0.0300, -0.0100])" in v and "no clear difference on donor F1 @thr" in v

    mixed = _metrics({"donor": {"pr_auc": _vs(0.02, 0.01, 0.03)}, "acceptor": {"pr_auc": _vs(-0.02, -0.03, -0.01)}})
    v = report.verdict(mixed)
    assert v.startswith("Mixed result") and "beats the base model on donor PR-AUC" in v and "worse on acceptor" in v

    flat = _metrics({t: {"pr_auc": _vs(0.0, 0.0, 0.0)} for t in SITE_TYPES}, genes=1)
    assert report.verdict(flat).startswith("The meta-model does not beat the base model on the 1 test gene: "
                                           "no difference is clear on donor PR-AUC")
    no_boot = _metrics({t: {"pr_auc": _vs(0.01, None, None)} for t in SITE_TYPES})
    assert report.verdict(no_boot).startswith("No verdict") and "--bootstrap 0" in report.verdict(no_boot)


def test_small_test_set_warning_thresholds():
    m = _metrics({t: {} for t in SITE_TYPES}, genes=report.MIN_TEST_GENES, sites=report.MIN_TEST_SITES)
    assert report.small_test_warning(m) is None
    few_genes = _metrics({t: {} for t in SITE_TYPES}, genes=report.MIN_TEST_GENES - 1, sites=10_000)
    assert "9 test genes" in report.small_test_warning(few_genes)
    few_sites = _metrics({t: {} for t in SITE_TYPES}, genes=500, sites=report.MIN_TEST_SITES)
    few_sites["site_types"]["acceptor"]["sites"] = report.MIN_TEST_SITES - 1
    assert "49 acceptor sites" in report.small_test_warning(few_sites)


def test_large_report_is_self_contained_with_a_verdict_and_no_banner(tmp_path):
    out, metrics = _report(tmp_path, n_genes=30, sites_per_type=20)
    assert metrics["genes"] == 30 and all(metrics["site_types"][t]["sites"] == 600 for t in SITE_TYPES)
    page = (out / "report.html").read_text()
    imgs = re.findall(r"<img [^>]*>", page)
    assert len(imgs) == 4 and all('src="data:image/png;base64,' in i for i in imgs)
    assert not re.search(r"<img [^>]*src=['\"][^'\"]*\.png['\"]", page)  # no image read from a file
    for png in ("pr_curves.png", "calibration.png", "gene_fp_fn_change.png", "feature_importances.png"):
        assert (out / png).stat().st_size > 1000  # the files are kept too
        assert f"({png})" in (out / "report.md").read_text()
    assert "Small test set" not in page and 'class="banner"' not in page
    # the synthetic meta-model lifts every site and lowers every decoy: clearly better on PR-AUC and F1
    for t in SITE_TYPES:
        vs = metrics["site_types"][t]["methods"]["meta"]["vs_base"]
        assert vs["pr_auc"]["ci95"][0] > 0 and vs["f1_at_valid"]["ci95"][0] > 0
    say = report.verdict(metrics)
    assert say.startswith("The meta-model beats the base model on the 30 test genes on donor PR-AUC")
    assert "acceptor F1 @thr" in say.split(";")[0] and "worse" not in say
    assert f"<b>Verdict.</b> {say}" in page.replace("&#x27;", "'")
    for term, _ in report.ABBREVIATIONS:
        assert f"<dt>{term}</dt>" in page.replace("&amp;", "&")


def test_small_report_shows_the_banner(tmp_path):
    out, _ = _report(tmp_path, n_genes=3, sites_per_type=20)
    page = (out / "report.html").read_text()
    assert 'class="banner"' in page and "Small test set: 3 test genes (60 donor, 60 acceptor sites)" in page
    assert "Small test set" in (out / "report.md").read_text()


def test_gene_axis_uses_names_and_keeps_the_largest_changes(tmp_path):
    c = _collector(12, 6)
    delta = c.per_gene(("base", "meta"), {(m, t): 0.5 for m in c.methods for t in SITE_TYPES})
    names = {g: f"GENE{i}" for i, g in enumerate(c.genes) if i != 3}  # gene 3 has no name: its ID is shown
    d = report.gene_changes(delta, "donor", names, max_genes=5)
    assert d.height == 5
    assert set(d["label"]) <= set(names.values()) | {c.genes[3]}
    change = (d["delta_FP"].abs() + d["delta_FN"].abs()).to_list()
    assert change == sorted(change, reverse=True)
    full = delta.filter(delta["splice_type"] == "donor")
    assert min(change) >= sorted((full["delta_FP"].abs() + full["delta_FN"].abs()).to_list(), reverse=True)[4]
    assert set(report.gene_changes(delta, "acceptor", names)["label"]) == set(names.values()) | {c.genes[3]}


@pytest.mark.parametrize("n_genes", [3, 80])
def test_plots_have_readable_titles_ticks_and_labels(tmp_path, monkeypatch, n_genes):
    figs, save = {}, report._save
    monkeypatch.setattr(report, "_save", lambda fig, out, name: (figs.__setitem__(name, fig), save(fig, out, name))[1])
    c = _collector(n_genes, 20)
    names = {g: f"LINC{i:05d}-AS1" for i, g in enumerate(c.genes)}
    _report(tmp_path, n_genes, 20, names)
    assert set(figs) == {"pr_curves.png", "calibration.png", "gene_fp_fn_change.png", "feature_importances.png"}
    for name, fig in figs.items():
        assert text_clashes(fig) == [], name
    pr = figs["pr_curves.png"].axes
    assert [ax.get_xlim()[0] for ax in pr] == [0, 0, report.ZOOM_RECALL[0], report.ZOOM_RECALL[0]]
    genes = figs["gene_fp_fn_change.png"].axes
    for ax in genes:  # names on the axis, integer counts, a y label
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels and set(labels) <= set(names.values()) and len(labels) == min(n_genes, report.MAX_GENES_SHOWN)
        assert all(float(t).is_integer() for t in ax.get_yticks()) and "change in count" in ax.get_ylabel()
    counts = figs["calibration.png"].axes[2:]
    assert all(ax.get_yscale() == "log" and "positions" in ax.get_ylabel() for ax in counts)


def _plot_pixels(img: np.ndarray) -> int:
    """Pixels of the matplotlib default colours the plots draw with (blue, orange, green, red)."""
    colours = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)])
    return int((np.abs(img[:, :, None, :] - colours[None, None]).max(axis=-1) <= 6).any(axis=-1).sum())


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
def test_train_report_renders_in_chromium_when_copied_alone(tmp_path, chr22_model):
    out, res = chr22_model
    alone = tmp_path / "copied"
    alone.mkdir()
    shutil.copy(out / "report.html", alone / "report.html")  # no PNG beside it
    page = (alone / "report.html").read_text()
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 4
    img = _screenshot(page, alone, "train")
    assert img.shape[:2] == (3000, 1200)
    assert _plot_pixels(img) > 20_000  # the four plots drew their lines and bars
    broken = re.sub(r"base64,[A-Za-z0-9+/=]{100}", "base64,AAAA", page)
    assert _plot_pixels(_screenshot(broken, alone, "broken")) < 2_000
    # the chr22 test set is small: the banner says so, and the verdict is on the page
    if res.metrics["genes"] < report.MIN_TEST_GENES:
        assert 'class="banner"' in page
    assert "<b>Verdict.</b>" in page
