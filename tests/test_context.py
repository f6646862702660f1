from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from meta_spliceai.config import FEATURE_SETS, BuildConfig
from meta_spliceai.dataset import context
from meta_spliceai.dataset.context import PEAK_FLOOR, Peaks, context_features
from meta_spliceai.dataset.rows import gene_rows
from meta_spliceai.dataset.schema import (
    FEATURE_SET_COLUMNS,
    GENE_PEAK_THRESHOLDS,
    NEAREST_MAX,
    NEIGHBOURHOOD_RADII,
    PARTNER_RANGES,
    PARTNER_THRESHOLDS,
    dataset_polars_schema,
    threshold_tag,
)
from meta_spliceai.errors import InputError
from meta_spliceai.reference.annotation import parse_annotation

N, A, D = 0, 1, 2
ALL = FEATURE_SETS
CONTEXT_COLS = [c for fs in ("partner", "neighbourhood", "gene_peaks") for c in FEATURE_SET_COLUMNS[fs]]
CFG = BuildConfig(kmer_sizes=(), feature_sets=ALL)  # type: ignore[arg-type]
LENGTH = 3000


def _toy_probs() -> np.ndarray:
    """A 3,000-nt gene in transcription order with hand-placed donor and acceptor peaks."""
    p = np.zeros((LENGTH, 3), dtype=np.float32)
    p[[500, 501], D] = 0.2  # a plateau: one peak, at 501
    p[1000, D], p[1005, D], p[1400, D], p[2500, D] = 0.9, 0.05, 0.3, 0.6
    p[700, A], p[900, A], p[1200, A], p[2990, A] = 0.02, 0.8, 0.4, 0.7
    p[:, N] = 1 - p[:, A] - p[:, D]
    return p


def _toy_gene(strand: str) -> dict[str, object]:
    return {"gene_id": "TOY", "gene_name": "TOY", "chrom": "1", "strand": strand, "start": 10_001,
            "end": 10_000 + LENGTH, "transcript_count": 1, "exon_count": 3, "gene_type": "protein_coding"}


def _toy_sites(strand: str, sites: list[tuple[str, int]]) -> pl.DataFrame:
    gene = _toy_gene(strand)
    return pl.DataFrame(
        {
            "gene_id": ["TOY"] * len(sites), "chrom": ["1"] * len(sites), "strand": [strand] * len(sites),
            "site_type": [t for t, _ in sites],
            "genomic_position": [gene["start"] + p if strand == "+" else gene["end"] - p for _, p in sites],
            "position": [p for _, p in sites],
            "transcript_ids": [["T1"]] * len(sites), "transcript_count": [1] * len(sites),
        },
        schema_overrides={"transcript_count": pl.Int32},
    )


def test_peaks_plateau_edges_and_range_max():
    pk = Peaks(_toy_probs()[:, D])
    assert pk.pos.tolist() == [501, 1000, 1005, 1400, 2500]  # the plateau's last base
    assert Peaks(np.array([0.5, 0.1, 0.7], np.float32)).pos.tolist() == [0, 2]  # past the ends counts as 0
    assert Peaks(np.array([PEAK_FLOOR, 0.0], np.float32)).pos.size == 0  # must exceed the floor
    a, b = np.array([0, 1, 2, 3]), np.array([5, 3, 2, 4])
    assert pk.range_max(a, b).tolist() == pytest.approx([0.9, 0.9, 0.0, 0.3])


def test_hand_checked_values_on_both_strands():
    """Gene rows of the same transcription-ordered tracks on + and -: the same, hand-checked, context values."""
    probs = _toy_probs()
    frames = {}
    for strand in "+-":
        sites = _toy_sites(strand, [("acceptor", 900), ("donor", 1000), ("acceptor", 1200), ("donor", 1400)])
        rows, _ = gene_rows(_toy_gene(strand), probs, sites, None, 0, CFG, batch=0)
        frames[strand] = rows
    plus, minus = frames["+"], frames["-"]
    assert plus["position"].equals(minus["position"])
    assert plus.select(CONTEXT_COLS).equals(minus.select(CONTEXT_COLS))
    # on -, upstream in transcription (the acceptor at 900, before the donor at 1000) is the higher coordinate
    g = dict(zip(minus["position"].to_list(), minus["genomic_position"].to_list()))
    assert g[900] == 12_100 and g[1000] == 12_000 and g[900] > g[1000]
    donor = plus.filter(position=1000, splice_type="donor").to_dicts()[0]
    assert donor["pred_type"] == "TP"
    want = {
        # partner view from the donor at 1000: the acceptor track
        "acceptor_up_max_20_300": 0.8, "acceptor_up_n01_20_300": 2, "acceptor_up_n10_20_300": 1,
        "acceptor_up_n50_20_300": 1,  # 900 (0.8) and 700 (0.02) lie 100 and 300 nt upstream
        "acceptor_up_max_300_2000": 0.02, "acceptor_up_n01_300_2000": 1, "acceptor_up_n10_300_2000": 0,
        "acceptor_up_max_2000_10000": 0.0, "acceptor_up_n01_2000_10000": 0,
        "acceptor_down_max_20_300": 0.4, "acceptor_down_n50_20_300": 0,  # 1200
        "acceptor_down_max_300_2000": 0.7, "acceptor_down_n50_300_2000": 1,  # 2990
        "acceptor_up_nearest01_dist": 100, "acceptor_up_nearest01_score": 0.8,
        "acceptor_up_nearest50_dist": 100,
        "acceptor_down_nearest01_dist": 200, "acceptor_down_nearest01_score": 0.4,
        "acceptor_down_nearest50_dist": 1990, "acceptor_down_nearest50_score": 0.7,
        # the donor track seen from its own peak
        "donor_up_nearest01_dist": 499, "donor_up_nearest01_score": 0.2,  # 501
        "donor_down_nearest01_dist": 5, "donor_down_nearest10_dist": 400,  # 1005 (0.05), 1400 (0.3)
        "donor_down_max_20_300": 0.0, "donor_down_max_300_2000": 0.6,  # 1400 is 400 away; 2500
        "donor_nbhd10_max": 0.05, "donor_nbhd10_ratio": 1.0, "donor_nbhd10_is_max": 1, "donor_nbhd10_rank": 0,
        "donor_nbhd1000_max": 0.3, "donor_nbhd1000_is_max": 1, "donor_nbhd1000_rank": 0,
        "donor_gene_rank": 0, "donor_gene_rank_frac": 0.0, "donor_gene_max": 0.9, "donor_gene_rel_max": 1.0,
        "donor_gene_n10": 4, "donor_gene_n50": 2, "donor_gene_order10": 0.25, "donor_gene_order50": 0.0,
        "acceptor_gene_rank": 4, "acceptor_gene_rel_max": 0.0, "acceptor_gene_n10": 3,
        "acceptor_gene_order10": 1 / 3,  # of 900, 1200, 2990 only 900 lies upstream
    }
    for k, v in want.items():
        assert donor[k] == pytest.approx(v, abs=1e-6), k
    fn = plus.filter(position=1400, splice_type="donor").to_dicts()[0]
    assert fn["pred_type"] == "FN"  # 0.3 < 0.5
    want_fn = {
        "donor_nbhd100_max": 0.0, "donor_nbhd100_is_max": 1,
        "donor_nbhd1000_max": 0.9, "donor_nbhd1000_ratio": 0.3 / 0.9, "donor_nbhd1000_is_max": 0,
        "donor_nbhd1000_rank": 1,  # 1000 (0.9) within ±1000; 2500 is 1,100 away
        "donor_gene_rank": 2, "donor_gene_rank_frac": 0.4, "donor_gene_rel_max": 0.3 / 0.9,
        "donor_gene_order10": 0.5, "donor_gene_order50": 0.5,
        "acceptor_up_max_20_300": 0.4, "acceptor_up_nearest10_dist": 200,
        "acceptor_down_nearest50_dist": 1590, "acceptor_down_nearest01_score": 0.7,
    }
    for k, v in want_fn.items():
        assert fn[k] == pytest.approx(v, rel=1e-6, abs=1e-6), k


def test_edges_plateau_and_nothing_found():
    probs = _toy_probs()
    f = context_features(probs[:, D], probs[:, A], np.array([0, 500, 2999]), feature_sets=ALL)
    schema = dataset_polars_schema((), 500, ALL)
    assert {k: pl.Series(v).dtype for k, v in f.items()} == {k: schema[k] for k in CONTEXT_COLS}
    # nothing within reach: sentinel distance NEAREST_MAX + 1 and score 0
    assert f["acceptor_down_nearest01_dist"][2] == NEAREST_MAX + 1 and f["acceptor_down_nearest01_score"][2] == 0
    assert f["acceptor_up_nearest50_dist"][2] == 9  # 2990
    assert f["acceptor_up_max_20_300"][2] == 0  # 2990 is only 9 nt upstream
    assert f["donor_up_nearest01_dist"][0] == NEAREST_MAX + 1 and f["donor_up_n01_20_300"][0] == 0
    # position 500 is the plateau's first base (not a peak): the peak at 501 ties it, so not the maximum
    assert f["donor_nbhd10_max"][1] == pytest.approx(0.2) and f["donor_nbhd10_is_max"][1] == 0
    assert f["donor_nbhd10_ratio"][1] == pytest.approx(1.0) and f["donor_nbhd10_rank"][1] == 0
    # a zero score: never a maximum, ranked below every peak of the gene
    assert f["donor_nbhd1000_is_max"][0] == 0 and f["donor_gene_rank"][0] == 5 and f["donor_gene_rank_frac"][0] == 1


def _naive(donor: np.ndarray, acceptor: np.ndarray, positions: np.ndarray) -> dict[str, list[float]]:
    """Per-position loops straight from the definitions in context.py's docstring."""
    out: dict[str, list[float]] = {c: [] for c in CONTEXT_COLS}
    for name, s in (("donor", donor), ("acceptor", acceptor)):
        ext = np.concatenate([[0.0], s, [0.0]])
        peaks = [(i, float(s[i])) for i in range(s.size)
                 if s[i] > PEAK_FLOOR and ext[i + 1] >= ext[i] and ext[i + 1] > ext[i + 2]]
        for p in positions:
            sp = float(s[p])
            for d, sign in (("up", -1), ("down", 1)):
                for lo, hi in PARTNER_RANGES:
                    inr = [v for q, v in peaks if lo <= sign * (q - p) <= hi]
                    out[f"{name}_{d}_max_{lo}_{hi}"].append(max(inr, default=0.0))
                    for x in PARTNER_THRESHOLDS:
                        out[f"{name}_{d}_n{threshold_tag(x)}_{lo}_{hi}"].append(sum(v >= np.float32(x) for v in inr))
                for x in PARTNER_THRESHOLDS:
                    cands = sorted((sign * (q - p), v) for q, v in peaks if sign * (q - p) >= 1 and v >= np.float32(x))
                    hit = cands[0] if cands and cands[0][0] <= NEAREST_MAX else (NEAREST_MAX + 1, 0.0)
                    out[f"{name}_{d}_nearest{threshold_tag(x)}_dist"].append(hit[0])
                    out[f"{name}_{d}_nearest{threshold_tag(x)}_score"].append(hit[1])
            for r in NEIGHBOURHOOD_RADII:
                others = [v for q, v in peaks if 1 <= abs(q - p) <= r]
                m = max(others, default=0.0)
                out[f"{name}_nbhd{r}_max"].append(m)
                out[f"{name}_nbhd{r}_ratio"].append(sp / (max(sp, m) + 1e-10))
                out[f"{name}_nbhd{r}_is_max"].append(int(sp > m and sp > PEAK_FLOOR))
                out[f"{name}_nbhd{r}_rank"].append(sum(v > sp for v in others))
            higher = sum(v > sp for _, v in peaks)
            out[f"{name}_gene_rank"].append(higher)
            out[f"{name}_gene_rank_frac"].append(higher / max(len(peaks), 1))
            out[f"{name}_gene_max"].append(float(s.max()))
            out[f"{name}_gene_rel_max"].append(sp / (float(s.max()) + 1e-10))
            for x in GENE_PEAK_THRESHOLDS:
                strong = [q for q, v in peaks if v >= np.float32(x)]
                out[f"{name}_gene_n{threshold_tag(x)}"].append(len(strong))
                out[f"{name}_gene_order{threshold_tag(x)}"].append(sum(q < p for q in strong) / max(len(strong), 1))
    return out


def test_vectorised_equals_per_position_loops(monkeypatch):
    monkeypatch.setattr(context, "_RANK_BLOCK", 50)  # neighbourhood ranks counted in many small blocks
    rng = np.random.default_rng(5)
    length = 12_000
    tracks = (rng.random((2, length)) ** 150).astype(np.float32)  # sparse peaks at every scale
    tracks[:, rng.choice(length, 30, replace=False)] = rng.random((2, 30)).astype(np.float32)
    positions = np.sort(rng.choice(length, 100, replace=False))
    positions[:2] = [0, length - 1]
    got = context_features(tracks[0], tracks[1], positions, feature_sets=ALL)
    assert list(got) == CONTEXT_COLS
    want = _naive(tracks[0], tracks[1], positions)
    for c in CONTEXT_COLS:
        np.testing.assert_allclose(got[c], np.asarray(want[c], dtype=np.float64), rtol=1e-6, atol=1e-7, err_msg=c)


def test_selection_and_errors():
    probs = _toy_probs()
    pos = np.array([3, 1000])
    assert context_features(probs[:, D], probs[:, A], pos, feature_sets=["base"]) == {}
    only = context_features(probs[:, D], probs[:, A], pos, feature_sets=["gene_peaks", "base"])
    assert list(only) == list(FEATURE_SET_COLUMNS["gene_peaks"])
    with pytest.raises(InputError, match="outside the gene"):
        context_features(probs[:, D], probs[:, A], np.array([LENGTH]), feature_sets=ALL)
    with pytest.raises(InputError, match="differ in length"):
        context_features(probs[:, D], probs[:-1, A], pos, feature_sets=ALL)
    with pytest.raises(InputError, match="unknown feature set 'exons'"):
        context_features(probs[:, D], probs[:, A], pos, feature_sets=["base", "exons"])


@pytest.fixture(scope="module")
def zdhhc8(chr22):
    ann = parse_annotation(chr22 / "annotation.gtf")
    gene = ann.genes.filter(gene_id="ZDHHC8").row(0, named=True)
    probs = np.load(chr22 / "reference" / "keras_spliceai_outputs.npz")["ZDHHC8"]
    return gene, probs, ann.gene_sites("ZDHHC8")


def test_annotation_moves_features_do_not(zdhhc8):
    """Drop, move or relabel sites: every row's context features equal the tracks' view at its position."""
    gene, probs, sites = zdhhc8
    variants = {
        "full": sites,
        "half": sites[::2],
        "moved": sites.with_columns(pl.col("position") + 7, pl.col("genomic_position") + 7),
        "swapped": sites.with_columns(
            pl.when(pl.col("site_type") == "donor").then(pl.lit("acceptor")).otherwise(pl.lit("donor")).alias("site_type")
        ),
        "none": sites.clear(),
    }
    rows = {k: gene_rows(gene, probs, v, None, 0, CFG, batch=0)[0] for k, v in variants.items()}
    for k, r in rows.items():
        direct = context_features(probs[:, D], probs[:, A], r["position"].to_numpy(), feature_sets=ALL)
        assert r.select(CONTEXT_COLS).equals(pl.DataFrame(direct).cast(r.select(CONTEXT_COLS).schema)), k
    # a true site dropped from the annotation keeps its features when its row becomes a non-site row
    full, half = rows["full"], rows["half"]
    moved = full.filter(pl.col("splice_type") != "neither").join(half.filter(splice_type="neither"), on="position",
                                                                 suffix="_h")
    assert moved.height > 0
    for c in CONTEXT_COLS:
        assert moved[c].equals(moved[f"{c}_h"].alias(c)), c


def test_same_null_pattern_for_every_label(zdhhc8):
    gene, probs, sites = zdhhc8
    rows, _ = gene_rows(gene, probs, sites, None, 0, CFG, batch=0)
    assert set(rows["pred_type"]) == {"TP", "FN", "FP", "TN"}
    nulls = rows.group_by("pred_type").agg(pl.col(CONTEXT_COLS).null_count().sum()).drop("pred_type")
    assert nulls.sum_horizontal().sum() == 0
    numeric = rows.select(CONTEXT_COLS).to_numpy().astype(np.float64)
    assert np.isfinite(numeric).all()


def test_builder_and_apply_compute_the_same_context_features(context_model, chr22, keras_store):
    """apply rebuilds the features from the model card: equal to the builder's rows, and so are the scores."""
    from meta_spliceai.basemodel.store import PredictionStore
    from meta_spliceai.metamodel.card import Corrector, load_card
    from meta_spliceai.metamodel.correction import apply

    root, _ = context_model
    loaded = load_card(root / "model")
    assert loaded.cfg.feature_sets == ALL and set(CONTEXT_COLS) <= set(loaded.model.features)
    master = pl.read_parquet(root / "build" / "master")
    genes = parse_annotation(chr22 / "annotation.gtf").genes
    corr = Corrector(loaded.cfg, float(loaded.card["floor"]))
    store = PredictionStore(keras_store)
    for gid in master["gene_id"].unique().sort().to_list()[:4]:
        rows = master.filter(gene_id=gid).unique("position", keep="first", maintain_order=True)
        gene = genes.filter(gene_id=gid).row(0, named=True)
        feats = corr.features(gene, store.read(gid), rows["position"].to_numpy())
        assert feats.select(CONTEXT_COLS).equals(rows.select(CONTEXT_COLS)), gid
    row_scores = pl.read_parquet(root / "model" / "row_scores.parquet")
    gid = row_scores["gene_id"][0]
    res = apply(model=root / "model", predictions=keras_store, out=root / "applied", genes=[gid], progress=False,
                fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf")
    assert res["genes"] == 1
    track = PredictionStore(root / "applied" / "scores").read(gid)
    part = row_scores.filter(gene_id=gid)
    np.testing.assert_allclose(track[part["position"].to_numpy(), D], part["donor"].to_numpy(), rtol=1e-6, atol=1e-7)
