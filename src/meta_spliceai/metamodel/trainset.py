"""Training rows for the meta-model: the dataset's files, gene splits, feature pruning, streamed batches.

Nothing here holds the dataset in one frame: the split reads the id columns, pruning a seeded
sample of rows, and training rows arrive one Parquet row group at a time.

Coordinates: gene spans from the annotation are 1-based closed; rows carry ``position`` (0-based,
gene-relative, transcription direction).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..config import BuildConfig
from ..dataset.folder import Dataset
from ..dataset.schema import (
    CROSS_TRACK_FEATURES,
    PROBABILITY_FEATURES,
    SCORE_FEATURES,
    TRACK_FEATURES,
    floor_columns,
    stack_fields,
)
from ..errors import InputError
from .models import CATEGORICAL_FEATURES, CLASSES, Batch

log = logging.getLogger(__name__)

SplitKind = Literal["gene", "chromosome"]
SPLITS: tuple[str, ...] = get_args(SplitKind)
#: SpliceAI's own test chromosomes (every other chromosome was in its training set)
SPLICEAI_TEST_CHROMS: tuple[str, ...] = ("1", "3", "5", "7", "9")
#: named feature subsets; "scores" = what the base model's scores alone give (the ablation)
FEATURE_SUBSETS: dict[str, tuple[str, ...] | None] = {
    "all": None,
    "scores": SCORE_FEATURES + PROBABILITY_FEATURES + TRACK_FEATURES + CROSS_TRACK_FEATURES,
}
_CLASS_CODE = {c: i for i, c in enumerate(CLASSES)}


def build_config(config: dict) -> BuildConfig:
    """A BuildConfig from a stored config dict; an unknown setting is refused (made by a newer version)."""
    known = set(BuildConfig.__dataclass_fields__)
    unknown = sorted(set(config) - known)
    if unknown:
        raise InputError(f"build settings {', '.join(unknown)} are unknown to this meta-spliceai version; "
                         "upgrade meta-spliceai to use this dataset or model")
    return BuildConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


def check_trainable(ds: Dataset) -> Dataset:
    """``ds`` if a meta-model can be trained on it: a build (its build.json, annotation and prediction
    store beside the rows) whose files carry the columns training reads; a one-line error otherwise."""
    if not ds.build:
        raise InputError(f"{ds.root} is not a meta-spliceai build, its master/ folder or one of its Parquet files "
                         "(train needs the build's build.json, annotation and prediction store beside the rows)")
    if not ds.files:
        raise InputError(f"no Parquet files in {ds.master}; finish the build first (re-run meta-spliceai build)")
    roles = ds.roles
    names = set(pq.read_schema(ds.files[0]).names)
    for need in ("splice_type", "gene_id", "position", "donor_score", "acceptor_score"):
        if need not in roles or need not in names:
            raise InputError(f"{ds.files[0]} lacks the {need} column; it cannot be used for training (rebuild it)")
    return ds


def floor_expr(names: Sequence[str]) -> pl.Expr:
    """The score the floor applies to, per row: max(donor, acceptor), and in a stacked build every model's top
    (``stack_top_score``)."""
    return pl.max_horizontal(*floor_columns(names))


def floor_mask(table: pa.Table, floor: float) -> pa.ChunkedArray:
    """Rows of an Arrow table (holding :func:`schema.floor_columns`) whose floor score reaches ``floor``."""
    cols = [table.column(c) for c in floor_columns(table.column_names)]
    top = cols[0]
    for c in cols[1:]:
        top = pc.max_element_wise(top, c)
    return pc.greater_equal(top, pa.scalar(floor, pa.float32()))


def select_features(ds: Dataset, subset: str | Sequence[str] | None) -> list[str]:
    """Feature columns to train on: all of them, a named subset (FEATURE_SUBSETS) or an explicit list.

    ``scores`` in a stacked build also takes every other model's family and the ``stack_`` columns (all
    derived from the models' scores alone)."""
    cols = ds.feature_columns
    if subset is None or subset == "all":
        return cols
    if isinstance(subset, str):
        if subset not in FEATURE_SUBSETS:
            raise InputError(f"unknown feature subset {subset!r}; choose one of {', '.join(FEATURE_SUBSETS)}")
        allowed = set(FEATURE_SUBSETS[subset] or cols)
        if subset == "scores":
            allowed |= {n for n, _ in stack_fields(tuple(ds.schema_meta.get("stack_models") or ()))}
        return [c for c in cols if c in allowed]
    missing = [c for c in subset if c not in cols]
    if missing:
        raise InputError(f"feature columns {', '.join(missing[:5])} are not feature-role columns of the dataset")
    return [c for c in cols if c in set(subset)]


# --------------------------------------------------------------------------- splits


@dataclass
class Split:
    train: list[str]
    valid: list[str]
    test: list[str]
    kind: str
    detail: dict = field(default_factory=dict)

    def part_of(self) -> dict[str, str]:
        return {**{g: "train" for g in self.train}, **{g: "valid" for g in self.valid}, **{g: "test" for g in self.test}}


def overlap_groups(genes: pl.DataFrame) -> dict[str, int]:
    """Gene -> group id, genes whose bodies overlap on the same chromosome and strand sharing a group."""
    out: dict[str, int] = {}
    group = -1
    cur = (None, None, -1)
    for gid, chrom, strand, start, end in genes.sort("chrom", "strand", "start", "gene_id").select(
        "gene_id", "chrom", "strand", "start", "end"
    ).iter_rows():
        if (chrom, strand) != cur[:2] or start > cur[2]:
            group += 1
            cur = (chrom, strand, end)
        else:
            cur = (chrom, strand, max(cur[2], end))
        out[gid] = group
    return out


def _contig_name(chrom: str, have: set[str]) -> str | None:
    from ..reference.genome import contig_aliases

    return next((a for a in contig_aliases(chrom) if a in have), None)


def make_split(
    genes: pl.DataFrame,
    *,
    kind: SplitKind,
    group_col: str,
    test_chroms: Sequence[str] | None,
    test_fraction: float,
    valid_fraction: float,
    seed: int,
) -> Split:
    """Split genes (gene_id, chrom, strand, start, end and ``group_col``) into train/valid/test.

    Units are groups: genes sharing a ``group_col`` value, merged with genes overlapping them on the
    same strand, so no gene (and no overlapping pair) lands in two parts. ``chromosome``: the test
    part is ``test_chroms`` (SpliceAI's 1, 3, 5, 7, 9 in the data's naming by default); ``gene``: a
    seeded ``test_fraction`` of groups. Validation: a seeded ``valid_fraction`` of the rest.
    """
    if kind not in SPLITS:
        raise InputError(f"--split {kind!r}: choose one of {', '.join(SPLITS)}")
    for name, v in (("--valid-fraction", valid_fraction), ("--test-fraction", test_fraction)):
        if not 0 < v < 1:
            raise InputError(f"{name} must be between 0 and 1, got {v}")
    if group_col not in genes.columns:
        raise InputError(f"--group-col {group_col!r} is not a column of the dataset; use gene_id (default), "
                         f"or one of {', '.join(c for c in genes.columns if c not in ('start', 'end'))}")
    # union of the group column and same-strand overlaps
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    ov = overlap_groups(genes)
    firsts: dict[object, str] = {}
    for gid, key in zip(genes["gene_id"].to_list(), genes[group_col].to_list()):
        for k in (("col", key), ("ov", ov[gid])):
            if k in firsts:
                parent[find(gid)] = find(firsts[k])
            else:
                firsts[k] = gid
                find(gid)
    members: dict[str, list[str]] = {}
    for gid in sorted(genes["gene_id"].to_list()):
        members.setdefault(find(gid), []).append(gid)
    units = sorted(members.values(), key=lambda m: m[0])
    if len(units) < 3:
        raise InputError(f"too few genes to split: {genes.height} gene(s) in {len(units)} independent group(s); "
                         "train needs at least 3 (one each for train, validation and test): build more genes")
    rng = np.random.default_rng(seed)
    chrom_of = dict(zip(genes["gene_id"].to_list(), genes["chrom"].to_list()))
    detail: dict[str, object] = {"groups": len(units), "group_col": group_col}
    if kind == "chromosome":
        have = set(genes["chrom"].unique().to_list())
        asked = list(test_chroms or SPLICEAI_TEST_CHROMS)
        mapped = {c: _contig_name(c, have) for c in asked}
        absent = [c for c, m in mapped.items() if m is None]
        if absent and (test_chroms or all(m is None for m in mapped.values())):
            raise InputError(f"test chromosome(s) {', '.join(absent)} absent from the data (it has "
                             f"{', '.join(sorted(have)[:10])}); pass --test-chroms with chromosomes of the dataset, "
                             "or use --split gene")
        test_set = {m for m in mapped.values() if m}
        detail["test_chroms"] = sorted(test_set)
        test_units = [u for u in units if any(chrom_of[g] in test_set for g in u)]
        rest = [u for u in units if not any(chrom_of[g] in test_set for g in u)]
    else:
        order = rng.permutation(len(units))
        n_test = max(1, int(round(test_fraction * len(units))))
        test_units = [units[i] for i in order[:n_test]]
        rest = [units[i] for i in order[n_test:]]
    order = rng.permutation(len(rest))
    n_valid = max(1, int(round(valid_fraction * len(rest))))
    valid_units = [rest[i] for i in order[:n_valid]]
    train_units = [rest[i] for i in order[n_valid:]]
    if not train_units or not test_units:
        raise InputError(f"too few genes to split: {genes.height} genes give an empty train or test part; "
                         "build more genes or change --split/--test-chroms")

    def flat(us: list[list[str]]) -> list[str]:
        return sorted(g for u in us for g in u)

    return Split(flat(train_units), flat(valid_units), flat(test_units), kind, detail)


# --------------------------------------------------------------------------- pruning


def prune_features(
    ds: Dataset, features: list[str], *, corr_thr: float, sample_rows: int, seed: int
) -> tuple[list[str], list[dict[str, object]]]:
    """Drop zero-variance columns and, of each pair with |Pearson ρ| > ``corr_thr``, the later one.

    Statistics come from a seeded sample of about ``sample_rows`` rows: whole row groups drawn at random,
    so the cost is one read of the sample whatever the size of the dataset. Returns the kept features (order
    kept) and one record per dropped column with the reason.
    """
    if not 0 < corr_thr <= 1:
        raise InputError(f"--corr-thr must be in (0, 1], got {corr_thr}")
    numeric = [f for f in features if f not in CATEGORICAL_FEATURES]
    groups = [(f, g, n) for f in ds.files for g, n in enumerate(_group_rows(f))]
    rng = np.random.default_rng(seed)
    # a sample of whole row groups (in random order until ~sample_rows rows), then up to an equal share of
    # each: the statistics cost one read of the sample, not of the dataset (wide rows: 4,000+ columns)
    chosen, covered = [], 0
    for i in rng.permutation(len(groups)):
        if covered >= sample_rows:
            break
        chosen.append(groups[i])
        covered += groups[i][2]
    chosen.sort(key=lambda t: (str(t[0]), t[1]))
    per_group = max(1, -(-sample_rows // max(len(chosen), 1)))
    parts = []
    for f, g, _ in chosen:
        t = pq.ParquetFile(f).read_row_group(g, columns=numeric)
        take = np.sort(rng.choice(t.num_rows, min(per_group, t.num_rows), replace=False))
        parts.append(_matrix(t.take(pa.array(take)), numeric, {}))
    X = np.concatenate(parts) if parts else np.zeros((0, len(numeric)), np.float32)
    dropped: list[dict[str, object]] = []
    var = X.astype(np.float64).var(axis=0) if X.shape[0] else np.zeros(len(numeric))
    live = [i for i in range(len(numeric)) if var[i] > 0]
    for i in range(len(numeric)):
        if var[i] <= 0:
            dropped.append({"feature": numeric[i], "reason": "zero variance"})
    kept_idx: list[int] = []
    if live:
        Z = X[:, live].astype(np.float64)
        Z = ((Z - Z.mean(axis=0)) / Z.std(axis=0)).astype(np.float32)  # standardised in float64, product in float32
        corr = np.abs(Z.T @ Z / np.float32(Z.shape[0]))
        keep_local: list[int] = []
        for j in range(len(live)):
            hit = [k for k in keep_local if corr[j, k] > corr_thr]
            if hit:
                dropped.append({"feature": numeric[live[j]], "reason": f"|rho| {corr[j, hit[0]]:.4f} > {corr_thr} "
                                f"with {numeric[live[hit[0]]]}"})
            else:
                keep_local.append(j)
        kept_idx = [live[j] for j in keep_local]
    kept = {numeric[i] for i in kept_idx} | {f for f in features if f in CATEGORICAL_FEATURES}
    log.info("pruning on %d sampled rows dropped %d of %d features", X.shape[0], len(dropped), len(features))
    return [f for f in features if f in kept], dropped


# --------------------------------------------------------------------------- batches


def _group_rows(path: str | Path) -> list[int]:
    md = pq.ParquetFile(path).metadata
    return [md.row_group(g).num_rows for g in range(md.num_row_groups)]


def extract_scored_rows(ds: Dataset, floor: float, folder: Path, batch_rows: int = 50_000,
                        progress: bool = False) -> Dataset:
    """The dataset's rows with max(donor, acceptor) >= ``floor`` (the only ones training reads), in one
    Parquet file under ``folder``: one streamed pass over the dataset instead of one per training pass.

    A row group is decoded in full only when one of its rows is kept (its score columns are read
    first); ``progress`` shows the row groups read. Returns a Dataset view over the extracted file (same
    build, roles and digest).
    """
    from ..storage import commit, tmp_path_for

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scored_rows.parquet"
    tmp = tmp_path_for(path)
    schema = pq.read_schema(ds.files[0])
    writer = pq.ParquetWriter(tmp, schema, compression="zstd", compression_level=1)
    buffered: list[pa.Table] = []
    n_buf = n_kept = 0
    from ..progress import count_progress

    total = sum(pq.ParquetFile(f).metadata.num_row_groups for f in ds.files)
    with count_progress(progress) as bar:
        task = bar.add_task("training rows: row groups read", total=total, rate="") if bar else None
        for f in ds.files:
            pf = pq.ParquetFile(f)
            if pf.schema_arrow.names != schema.names:
                raise InputError(f"{f} has other columns than {ds.files[0]}: the dataset mixes builds; train on one build")
            for g in range(pf.num_row_groups):
                small = pf.read_row_group(g, columns=floor_columns(schema.names))
                keep = floor_mask(small, floor)
                if pc.any(keep).as_py():
                    t = pf.read_row_group(g).filter(keep)
                    buffered.append(t)
                    n_buf += t.num_rows
                    n_kept += t.num_rows
                    if n_buf >= batch_rows:
                        writer.write_table(pa.concat_tables(buffered), row_group_size=batch_rows)
                        buffered, n_buf = [], 0
                if bar:
                    bar.update(task, advance=1, rate=f"{n_kept:,} rows kept")
    if buffered:
        writer.write_table(pa.concat_tables(buffered), row_group_size=batch_rows)
    writer.close()
    commit(tmp, path)
    log.info("training rows: %d rows with max(donor, acceptor) >= %g of %d row groups", n_kept, floor, total)
    return dataclasses.replace(ds, paths=(path,))


def _matrix(table: pa.Table, features: list[str], categories: dict[str, list[str]]) -> np.ndarray:
    """float32 (rows, features); categorical columns as the index into ``categories`` (NaN if unseen)."""
    out = np.empty((table.num_rows, len(features)), dtype=np.float32)
    for i, f in enumerate(features):
        col = table.column(f)
        if f in CATEGORICAL_FEATURES:
            lut = {c: j for j, c in enumerate(categories.get(f, []))}
            out[:, i] = np.array([lut.get(v, np.nan) for v in col.to_pylist()], dtype=np.float32)
        else:
            out[:, i] = col.to_numpy(zero_copy_only=False)
    return out


def frame_matrix(frame: pl.DataFrame, features: list[str], categories: dict[str, list[str]]) -> np.ndarray:
    """:func:`_matrix` of a polars frame (features computed at prediction time)."""
    have = set(frame.columns)  # a set: ``frame.columns`` builds a new list on every access (4,000+ names)
    missing = [f for f in features if f not in have]
    if missing:
        raise InputError(f"computed features lack {', '.join(missing[:5])}: the model needs other feature settings")
    cats = [f for f in features if f in CATEGORICAL_FEATURES]
    if not cats:  # one conversion of the whole frame, not one per column (thousands of k-mer columns, few rows)
        return frame.select(pl.col(features).cast(pl.Float32)).to_numpy()
    out = np.empty((frame.height, len(features)), dtype=np.float32)
    num = [i for i, f in enumerate(features) if f not in CATEGORICAL_FEATURES]
    if num:
        out[:, num] = frame.select(pl.col([features[i] for i in num]).cast(pl.Float32)).to_numpy()
    for f in cats:
        out[:, features.index(f)] = _matrix(frame.select(f).to_arrow(), [f], categories)[:, 0]
    return out


def categories_of(ds: Dataset, features: list[str]) -> dict[str, list[str]]:
    """Sorted values of each categorical feature over the dataset (one small column read)."""
    out = {}
    for f in features:
        if f in CATEGORICAL_FEATURES:
            out[f] = sorted(pl.scan_parquet(ds.files).select(pl.col(f).unique()).collect()[f].drop_nulls().to_list())
    return out


def row_batches(
    ds: Dataset,
    genes: set[str],
    features: list[str],
    categories: dict[str, list[str]],
    *,
    floor: float,
    easy_weight: dict[str, float] | None,
    columns_override: dict[str, str] | None = None,
) -> Iterator[tuple[Batch, pa.Table]]:
    """(X, y, w) of each row group, restricted to ``genes`` and rows with max(donor, acceptor) >= ``floor``.

    ``easy_weight``: gene -> weight of its kept easy TNs (sampling weights); every other row weighs 1.
    Also yields the row group's id columns (gene_id, position) of the kept rows.
    ``columns_override`` maps a feature to the column read for it (tests poison a column this way).
    """
    src = {f: (columns_override or {}).get(f, f) for f in features}
    gene_arr = pa.array(sorted(genes), type=pa.large_string())
    for f in ds.files:
        pf = pq.ParquetFile(f)
        need = sorted(set(src.values()) | {"gene_id", "position", "splice_type", "tn_kind",
                                           *floor_columns(pf.schema_arrow.names)})
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=need)
            keep = pc.and_(pc.is_in(t.column("gene_id"), value_set=gene_arr), floor_mask(t, floor))
            t = t.filter(keep)
            if t.num_rows == 0:
                continue
            view = pa.table({f: t.column(c) for f, c in src.items()})
            X = _matrix(view, features, categories)
            y = np.array([_CLASS_CODE[s] for s in t.column("splice_type").to_pylist()], dtype=np.int32)
            w = np.ones(t.num_rows, dtype=np.float32)
            if easy_weight:
                easy = np.asarray(pc.fill_null(pc.equal(t.column("tn_kind"), "easy"), False))
                gid = t.column("gene_id").to_pylist()
                w[easy] = np.array([easy_weight.get(gid[i], 1.0) for i in np.flatnonzero(easy)], dtype=np.float32)
            yield (X, y, w), t.select(["gene_id", "position"])


def easy_weights(ds: Dataset, genes: Sequence[str], annotation, store, floor: float) -> dict[str, float]:  # noqa: ANN001
    """Gene -> weight of its kept easy TN rows above ``floor``: (easy positions >= floor) / (easy rows kept >= floor).

    The population is recomputed exactly from the prediction store(s) and the annotation with the
    builder's own code (:func:`evaluation.evaluate_gene`, :func:`sampling.tn_strata`) and settings. A gene
    whose easy positions above the floor have no kept row takes the pooled ratio over ``genes``.
    Empty when ``floor`` >= the build's ``hard_prob`` (easy TNs all score below it: nothing to weigh).
    ``store``: a PredictionStore, or a :class:`meta_spliceai.dataset.stores.StoreSet` (stacked build: the
    strata and the floor read every model's top score).
    """
    from ..dataset.sampling import tn_strata
    from ..dataset.stacking import stack_top

    cfg = build_config(ds.config)
    if floor >= cfg.hard_prob:
        return {}
    kept = dict(
        pl.scan_parquet(ds.files)
        .filter((pl.col("tn_kind") == "easy") & (floor_expr(ds.feature_columns) >= floor))
        .group_by("gene_id").len().collect().iter_rows()
    )
    sites = annotation.splice_sites.filter(pl.col("gene_id").is_in(list(genes)))
    by_gene = {k[0]: v for k, v in sites.partition_by("gene_id", as_dict=True).items()}
    population: dict[str, int] = {}
    from ..dataset.evaluation import evaluate_gene

    for gid in genes:
        got = store.read(gid)
        tracks = got if isinstance(got, tuple) else (got,)
        probs = tracks[0]
        top = stack_top(tracks, cfg.base_models)
        s = by_gene.get(gid)
        d = s.filter(pl.col("site_type") == "donor")["position"].to_numpy() if s is not None else np.zeros(0, int)
        a = s.filter(pl.col("site_type") == "acceptor")["position"].to_numpy() if s is not None else np.zeros(0, int)
        outcome = evaluate_gene(probs, d, a, threshold=cfg.threshold, window=cfg.consensus_window, where=f"gene {gid}")
        _, _, easy = tn_strata(outcome, probs, hard_prob=cfg.hard_prob, window=cfg.window, top=top)
        population[gid] = int((top[easy] >= floor).sum())
    n_kept = sum(int(kept.get(g, 0)) for g in genes)
    pooled = sum(population.values()) / n_kept if n_kept else 1.0
    log.info("easy TNs above the floor %.3g: %d positions, %d rows kept (pooled weight %.1f)", floor,
             sum(population.values()), n_kept, pooled)
    return {g: max(population[g] / int(kept[g]), 1.0) if kept.get(g) else max(pooled, 1.0) for g in genes}
