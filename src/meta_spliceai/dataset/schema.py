"""The dataset's row schema, declared once: column names, roles, dtypes and version.

Every row is one candidate position of one gene. Each column has a *role*:

- ``id``: where the row is (gene, chromosome, strand, positions);
- ``label``: the annotation's truth (``splice_type``) and the base model's outcome (``pred_type``);
- ``metadata``: facts about the row that are not features (the site's transcripts, the batch,
  why a true negative was kept);
- ``feature``: what a meta-model may read. Features are computed the same way for every
  position, whatever its label (see :mod:`meta_spliceai.features`).

Feature columns come in families (``feature_sets``, see :data:`FEATURE_SET_COLUMNS`): ``base`` (scores
at ±2, probability, context-shape and gene-level features), ``partner``, ``neighbourhood`` and
``gene_peaks`` (views of the whole score tracks, :mod:`meta_spliceai.context`); k-mers and the
sequence summary follow ``kmer_sizes``.

Roles, the schema version, the feature sets and the k-mer settings are stored in the Parquet schema metadata
under the key ``b"meta_spliceai"`` (JSON), so any file can be interpreted on its own.

Coordinates: ``genomic_position`` is 1-based on the chromosome; ``position`` is the 0-based
index into the gene body in transcription direction (0 = gene start on ``+``, gene end on ``-``).
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, get_args

import numpy as np
import polars as pl
import pyarrow as pa

from ..config import BASE_MODEL_OUTPUTS, BASE_MODELS, DEFAULT_BUILD, FEATURE_SETS
from ..errors import InputError
from ..storage import arrow_string

#: bump when a column is added, removed, renamed or changes meaning or type
#: (2: context feature families partner / neighbourhood / gene_peaks; feature_sets in the metadata)
SCHEMA_VERSION = 2
#: key of the Parquet/Arrow schema metadata entry holding roles and version (JSON)
METADATA_KEY = b"meta_spliceai"

Role = Literal["id", "label", "metadata", "feature"]
ROLES: tuple[str, ...] = get_args(Role)

#: category orders (codes used internally are indices into these; alphabetical so code order = string order)
SPLICE_TYPES: tuple[str, ...] = ("acceptor", "donor", "neither")
PRED_TYPES: tuple[str, ...] = ("TP", "FP", "FN", "TN")
#: why a true negative was kept: high score, near a TP/FP/FN, or drawn at random
TN_KINDS: tuple[str, ...] = ("hard", "window", "easy")
BASES = "ACGT"

#: the Arrow type of every string column (declared once, in storage: prediction stores and calls share it)
STRING: pa.DataType = arrow_string()
_STR = STRING

# --- fixed columns, in file order: (name, role, arrow type) ---------------------------------
ID_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("gene_id", _STR),
    ("gene_name", _STR),
    ("chrom", _STR),
    ("strand", _STR),
    ("genomic_position", pa.int64()),  # 1-based on the chromosome
    ("position", pa.int64()),  # 0-based in the gene body, transcription direction
)
LABEL_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("splice_type", _STR),  # donor / acceptor / neither (annotation truth at this position)
    ("pred_type", _STR),  # TP / FP / FN / TN (base model's outcome)
)
METADATA_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("transcript_ids", pa.large_list(_STR)),  # transcripts annotating this site; empty for non-sites
    ("transcript_count", pa.int32()),  # len(transcript_ids)
    ("tn_kind", _STR),  # hard / window / easy for TN rows, null otherwise
    ("batch", pa.int32()),
)

#: score columns: the three outputs at the position and both tracks at -2, -1, +1, +2
SCORE_FEATURES: tuple[str, ...] = (
    "donor_score",
    "acceptor_score",
    "neither_score",
    *(f"{t}_score_{o}" for t in ("donor", "acceptor") for o in ("m2", "m1", "p1", "p2")),
)
#: features from the three scores at the position
PROBABILITY_FEATURES: tuple[str, ...] = (
    "relative_donor_probability",
    "splice_probability",
    "donor_acceptor_diff",
    "splice_neither_diff",
    "donor_acceptor_logodds",
    "splice_neither_logodds",
    "probability_entropy",
)
#: per-track context/shape features; each track (donor_, acceptor_) from its own scores
TRACK_FEATURE_SUFFIXES: tuple[str, ...] = (
    "context_neighbor_mean",
    "context_asymmetry",
    "context_max",
    "diff_m2",
    "diff_m1",
    "diff_p1",
    "diff_p2",
    "surge_ratio",
    "is_local_peak",
    "weighted_context",
    "peak_height_ratio",
    "second_derivative",
    "signal_strength",
    "context_diff_ratio",
)
TRACK_FEATURES: tuple[str, ...] = tuple(f"{t}_{s}" for t in ("donor", "acceptor") for s in TRACK_FEATURE_SUFFIXES)
CROSS_TRACK_FEATURES: tuple[str, ...] = (
    "donor_acceptor_peak_ratio",
    "type_signal_difference",
    "score_difference_ratio",
    "signal_strength_ratio",
)
#: gene-level structure: identical for every row of a gene
GENE_FEATURES: tuple[str, ...] = (
    "gene_length",
    "gene_transcript_count",
    "gene_exon_count",
    "gene_type",
    "relative_position",
)
#: sequence summary of the k-mer window (present when k-mers are)
SEQUENCE_FEATURES: tuple[str, ...] = ("gc_content", "sequence_complexity")

# --- context families: settings that name their columns (meta_spliceai.context computes them) -----
#: tracks each context family looks at, for every position (a donor's partner is the acceptor track,
#: but both views are computed for every row, whatever its label)
CONTEXT_TRACKS: tuple[str, ...] = ("donor", "acceptor")
#: partner view: inclusive distance ranges (nt) upstream ("up", lower positions) and downstream ("down")
PARTNER_RANGES: tuple[tuple[int, int], ...] = ((20, 300), (300, 2_000), (2_000, 10_000))
#: peak-score thresholds of the partner counts and nearest-peak features
PARTNER_THRESHOLDS: tuple[float, ...] = (0.01, 0.1, 0.5)
#: nearest peaks are searched 1..NEAREST_MAX nt away; none there: distance NEAREST_MAX + 1, score 0
NEAREST_MAX = 10_000
#: same-type neighbourhood half-widths (nt): the window is position ± radius
NEIGHBOURHOOD_RADII: tuple[int, ...] = (10, 100, 1_000)
#: thresholds of the gene-level peak counts and of the position's order among the gene's peaks
GENE_PEAK_THRESHOLDS: tuple[float, ...] = (0.1, 0.5)
DIRECTIONS: tuple[str, ...] = ("up", "down")


def threshold_tag(t: float) -> str:
    """Column-name tag of a score threshold in hundredths: 0.01 -> "01", 0.5 -> "50"."""
    return f"{round(t * 100):02d}"


def _partner_fields() -> tuple[tuple[str, pa.DataType], ...]:
    out: list[tuple[str, pa.DataType]] = []
    for t in CONTEXT_TRACKS:
        for d in DIRECTIONS:
            for lo, hi in PARTNER_RANGES:
                out.append((f"{t}_{d}_max_{lo}_{hi}", pa.float32()))  # strongest peak in the range, 0 if none
                out += [(f"{t}_{d}_n{threshold_tag(x)}_{lo}_{hi}", pa.int32()) for x in PARTNER_THRESHOLDS]
            for x in PARTNER_THRESHOLDS:
                out.append((f"{t}_{d}_nearest{threshold_tag(x)}_dist", pa.int32()))
                out.append((f"{t}_{d}_nearest{threshold_tag(x)}_score", pa.float32()))
    return tuple(out)


def _neighbourhood_fields() -> tuple[tuple[str, pa.DataType], ...]:
    out: list[tuple[str, pa.DataType]] = []
    for t in CONTEXT_TRACKS:
        for r in NEIGHBOURHOOD_RADII:
            out += [
                (f"{t}_nbhd{r}_max", pa.float32()),  # strongest other peak within ± r
                (f"{t}_nbhd{r}_ratio", pa.float32()),  # score / max(score, that peak)
                (f"{t}_nbhd{r}_is_max", pa.int8()),  # score above every other peak within ± r (and the floor)
                (f"{t}_nbhd{r}_rank", pa.int32()),  # other peaks within ± r scoring higher
            ]
    return tuple(out)


def _gene_peak_fields() -> tuple[tuple[str, pa.DataType], ...]:
    out: list[tuple[str, pa.DataType]] = []
    for t in CONTEXT_TRACKS:
        out += [
            (f"{t}_gene_rank", pa.int32()),  # the gene's peaks scoring higher than this position
            (f"{t}_gene_rank_frac", pa.float32()),  # that / the gene's peak count
            (f"{t}_gene_max", pa.float32()),  # the track's maximum over the gene
            (f"{t}_gene_rel_max", pa.float32()),  # score / gene max
        ]
        for x in GENE_PEAK_THRESHOLDS:
            out.append((f"{t}_gene_n{threshold_tag(x)}", pa.int32()))  # the gene's peaks >= x
            out.append((f"{t}_gene_order{threshold_tag(x)}", pa.float32()))  # share of them upstream of here
    return tuple(out)


_PARTNER = _partner_fields()
_NEIGHBOURHOOD = _neighbourhood_fields()
_GENE_PEAKS = _gene_peak_fields()
PARTNER_FEATURES: tuple[str, ...] = tuple(n for n, _ in _PARTNER)
NEIGHBOURHOOD_FEATURES: tuple[str, ...] = tuple(n for n, _ in _NEIGHBOURHOOD)
GENE_PEAK_FEATURES: tuple[str, ...] = tuple(n for n, _ in _GENE_PEAKS)
BASE_FEATURES: tuple[str, ...] = (
    SCORE_FEATURES + PROBABILITY_FEATURES + TRACK_FEATURES + CROSS_TRACK_FEATURES + GENE_FEATURES
)
#: feature set name -> its columns in file order (k-mers and the sequence summary follow ``kmer_sizes``)
FEATURE_SET_COLUMNS: dict[str, tuple[str, ...]] = {
    "base": BASE_FEATURES,
    "partner": PARTNER_FEATURES,
    "neighbourhood": NEIGHBOURHOOD_FEATURES,
    "gene_peaks": GENE_PEAK_FEATURES,
}

# --- stacked builds: one column family per base model after the first (meta_spliceai.dataset.stacking) ----
#: store columns of a model that scores sites by type (SpliceAI, OpenSpliceAI, CI-SpliceAI)
SITE_OUTPUTS: tuple[str, ...] = ("neither", "acceptor", "donor")
_OFFSET_TAGS: tuple[str, ...] = ("m2", "m1", "p1", "p2")
#: per site type of a site model ``M``: ``M_{type}_{suffix}``; ``diff`` and ``*_diff`` are against the
#: labelling model's track of the same type
STACK_SITE_SUFFIXES: tuple[str, ...] = ("window_max", "logodds", "is_local_peak", "diff", "logodds_diff",
                                        "window_max_diff")
#: model-agnostic features over the site tracks of every site model of the build (labelling model included),
#: per type ``stack_{type}_{stat}``, and ``stack_top_score``: max over every model of its top score (the
#: floor's value: max(donor, acceptor) of site models, max over tissues of P(splice) of tissue models)
STACK_STATS: tuple[str, ...] = ("mean", "max", "min", "std", "logodds_mean", "n50")
STACK_TOP = "stack_top_score"


def is_site_model(name: str) -> bool:
    """Does this base model's store hold neither/acceptor/donor (else per-tissue scores: Pangolin)?"""
    return tuple(BASE_MODEL_OUTPUTS.get(name, SITE_OUTPUTS)) == SITE_OUTPUTS


def model_fields(name: str) -> tuple[tuple[str, pa.DataType], ...]:
    """The column family of base model ``name`` in a stacked build (prefix ``{name}_``), in file order.

    Site models: their three scores at the position, both tracks at -2..+2, and per type the window max
    (±2), log-odds, local peak, and the differences to the labelling model. Tissue models (Pangolin): each
    store column at the position and its ±2 window max, the max over tissues of P(splice) and of usage at
    the position and -2..+2, and that P(splice) max minus the labelling model's max(donor, acceptor).
    """
    f32 = pa.float32()
    if is_site_model(name):
        out = [(f"{name}_{t}_score", f32) for t in ("donor", "acceptor", "neither")]
        out += [(f"{name}_{t}_score_{o}", f32) for t in ("donor", "acceptor") for o in _OFFSET_TAGS]
        for t in ("donor", "acceptor"):
            out += [(f"{name}_{t}_{s}", pa.int8() if s == "is_local_peak" else f32) for s in STACK_SITE_SUFFIXES]
        return tuple(out)
    cols = BASE_MODEL_OUTPUTS[name]
    out = [(f"{name}_{c}", f32) for c in cols] + [(f"{name}_{c}_window_max", f32) for c in cols]
    for kind in ("p", "usage"):
        out += [(f"{name}_{kind}_max", f32)] + [(f"{name}_{kind}_max_{o}", f32) for o in _OFFSET_TAGS]
    out.append((f"{name}_p_max_diff", f32))
    return tuple(out)


def stack_fields(stack_models: Sequence[str]) -> tuple[tuple[str, pa.DataType], ...]:
    """Feature columns a stacked build adds (none for one model): each model's family, then the ``stack_`` family."""
    if not stack_models:
        return ()
    out = [f for m in stack_models for f in model_fields(m)]
    out += [(f"stack_{t}_{s}", pa.int8() if s == "n50" else pa.float32()) for t in ("donor", "acceptor")
            for s in STACK_STATS]
    out.append((STACK_TOP, pa.float32()))
    return tuple(out)


def normalize_stack_models(stack_models: Iterable[str] | None, base_model: str | None = None) -> tuple[str, ...]:
    """The stacked models as a tuple, checked: known names, none twice, none the labelling model."""
    names = tuple(str(m) for m in (stack_models or ()))
    bad = [m for m in names if m not in BASE_MODELS]
    if bad:
        raise InputError(f"unknown base model {bad[0]!r}; choose from {', '.join(BASE_MODELS)}")
    seen = [base_model] if base_model else []
    for m in names:
        if m in seen:
            raise InputError(f"base model {m} is given twice (each base model's columns are named after it); give "
                             "each model's store once")
        seen.append(m)
    return names


def floor_columns(names: Iterable[str]) -> list[str]:
    """Score columns whose maximum the floor applies to: the labelling model's donor and acceptor, and in a
    stacked build ``stack_top_score`` (every model's top score)."""
    have = set(names)
    return ["donor_score", "acceptor_score", *([STACK_TOP] if STACK_TOP in have else [])]


_F32 = pa.float32()
_STACK_TYPES: dict[str, pa.DataType] = dict(stack_fields(BASE_MODELS))
_FEATURE_TYPES: dict[str, pa.DataType] = {
    **{c: _F32 for c in SCORE_FEATURES + PROBABILITY_FEATURES + TRACK_FEATURES + CROSS_TRACK_FEATURES},
    "donor_is_local_peak": pa.int8(),
    "acceptor_is_local_peak": pa.int8(),
    "gene_length": pa.int32(),
    "gene_transcript_count": pa.int32(),
    "gene_exon_count": pa.int32(),
    "gene_type": _STR,  # categorical; trainers encode it
    "relative_position": _F32,
    "gc_content": _F32,
    "sequence_complexity": _F32,
    **dict(_PARTNER + _NEIGHBOURHOOD + _GENE_PEAKS),
    **_STACK_TYPES,
}


def normalize_feature_sets(feature_sets: Iterable[str] | None) -> tuple[str, ...]:
    """Unique feature-set names in canonical order; ``None`` means the default. ``base`` is required."""
    if feature_sets is None:
        return tuple(DEFAULT_BUILD.feature_sets)
    names = [str(x) for x in feature_sets]
    bad = [x for x in names if x not in FEATURE_SETS]
    if bad:
        raise InputError(
            f"unknown feature set {bad[0]!r}; choose from {', '.join(FEATURE_SETS)} (check --feature-sets)"
        )
    if "base" not in names:
        raise InputError(
            f"feature sets {', '.join(names) or '(none)'} lack 'base' (scores at ±2 and gene structure), which "
            "every dataset carries; add base to --feature-sets"
        )
    return tuple(x for x in FEATURE_SETS if x in names)


def kmer_names(k: int) -> list[str]:
    """Column names of all 4^k k-mers, ``{k}mer_{ACGT…}``, in lexicographic (= code) order."""
    if k < 1:
        raise InputError(f"k-mer size must be >= 1, got {k} (use --kmer-sizes 0 for no k-mers)")
    return [f"{k}mer_" + "".join(p) for p in itertools.product(BASES, repeat=k)]


def kmer_span(kmer_window: int) -> int:
    """Nucleotides in the k-mer window: ``position ± kmer_window // 2`` inclusive (501 for 500)."""
    return 2 * (kmer_window // 2) + 1


def kmer_count_type(k: int, kmer_window: int) -> pa.DataType:
    """Smallest unsigned integer type that holds the largest possible count of one k-mer in the window."""
    most = max(kmer_span(kmer_window) - k + 1, 0)
    for t in (pa.uint8(), pa.uint16(), pa.uint32()):
        if most <= np.iinfo(t.to_pandas_dtype()).max:
            return t
    return pa.uint64()


def normalize_kmer_sizes(kmer_sizes: Iterable[int] | None) -> tuple[int, ...]:
    """Sorted unique k-mer sizes; ``0`` (the CLI's "none") and ``None`` mean no k-mers."""
    sizes = sorted({int(k) for k in (kmer_sizes or ()) if int(k) != 0})
    for k in sizes:
        if k < 0 or k > 8:
            raise InputError(f"k-mer size {k} is out of range (1..8; 0 for none), check --kmer-sizes")
    return tuple(sizes)


def feature_fields(
    kmer_sizes: Iterable[int] | None = (), kmer_window: int = 500, feature_sets: Iterable[str] | None = None,
    stack_models: Iterable[str] | None = (),
) -> list[pa.Field]:
    """Arrow fields of the feature columns, in file order: the feature sets, the stacked models' families
    (:func:`stack_fields`), then sequence and k-mers."""
    sizes = normalize_kmer_sizes(kmer_sizes)
    names = [n for fs in normalize_feature_sets(feature_sets) for n in FEATURE_SET_COLUMNS[fs]]
    fields = [pa.field(n, _FEATURE_TYPES[n], nullable=False) for n in names]
    fields += [pa.field(n, t, nullable=False) for n, t in stack_fields(tuple(stack_models or ()))]
    if sizes:
        fields += [pa.field(n, _FEATURE_TYPES[n], nullable=False) for n in SEQUENCE_FEATURES]
        for k in sizes:
            t = kmer_count_type(k, kmer_window)
            fields += [pa.field(n, t, nullable=False) for n in kmer_names(k)]
    return fields


def arrow_schema(
    kmer_sizes: Iterable[int] | None = (), kmer_window: int = 500, feature_sets: Iterable[str] | None = None,
    stack_models: Iterable[str] | None = (),
) -> pa.Schema:
    """The dataset's Arrow schema for these k-mer settings, feature sets (``None``: the default) and stacked
    base models (after the labelling one), roles and version in its metadata."""
    return _arrow_schema(normalize_kmer_sizes(kmer_sizes), int(kmer_window), normalize_feature_sets(feature_sets),
                         normalize_stack_models(stack_models))


def schema_of(settings: Mapping[str, object]) -> pa.Schema:
    """The Arrow schema a file's metadata or a build's config describes.

    Absent ``feature_sets`` means ``base`` alone: files and builds of schema version 1 had no families.
    """
    return arrow_schema(settings.get("kmer_sizes") or (), int(settings.get("kmer_window", 500)),  # type: ignore[arg-type]
                        settings.get("feature_sets") or ("base",), settings.get("stack_models") or ())  # type: ignore[arg-type]


@functools.lru_cache(maxsize=16)
def _arrow_schema(sizes: tuple[int, ...], kmer_window: int, feature_sets: tuple[str, ...],
                  stack_models: tuple[str, ...] = ()) -> pa.Schema:
    fields: list[pa.Field] = []
    roles: dict[str, str] = {}
    for role, cols in (("id", ID_COLUMNS), ("label", LABEL_COLUMNS), ("metadata", METADATA_COLUMNS)):
        for name, typ in cols:
            fields.append(pa.field(name, typ, nullable=name == "tn_kind"))
            roles[name] = role
    for f in feature_fields(sizes, kmer_window, feature_sets, stack_models):
        fields.append(f)
        roles[f.name] = "feature"
    meta: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "feature_sets": list(feature_sets),
        "kmer_sizes": list(sizes),
        "kmer_window": int(kmer_window),
    }
    if stack_models:  # only stacked builds carry the key: a one-model file's bytes are as before
        meta["stack_models"] = list(stack_models)
    meta["roles"] = roles
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(meta, separators=(",", ":")).encode()})


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars dtypes of an Arrow schema, in the same order."""
    return pl.Schema(pl.from_arrow(schema.empty_table()).schema)


def dataset_polars_schema(
    kmer_sizes: Iterable[int] | None = (), kmer_window: int = 500, feature_sets: Iterable[str] | None = None,
    stack_models: Iterable[str] | None = (),
) -> pl.Schema:
    """Polars dtypes of :func:`arrow_schema` (cached; treat as read-only)."""
    return _dataset_polars_schema(
        normalize_kmer_sizes(kmer_sizes), int(kmer_window), normalize_feature_sets(feature_sets),
        normalize_stack_models(stack_models),
    )


@functools.lru_cache(maxsize=16)
def _dataset_polars_schema(sizes: tuple[int, ...], kmer_window: int, feature_sets: tuple[str, ...],
                           stack_models: tuple[str, ...] = ()) -> pl.Schema:
    return polars_schema(_arrow_schema(sizes, kmer_window, feature_sets, stack_models))


def read_metadata(schema: pa.Schema) -> dict[str, object]:
    """The ``meta_spliceai`` entry of a schema (e.g. ``pq.read_schema(path)``); error if absent."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise InputError(
            "Parquet file has no meta_spliceai schema metadata (not a meta-spliceai dataset, or written "
            "by a tool that dropped it); rebuild it with meta-spliceai build"
        )
    return json.loads(raw)


def read_roles(schema: pa.Schema) -> dict[str, str]:
    """Column name -> role, from a schema's metadata."""
    return dict(read_metadata(schema)["roles"])  # type: ignore[arg-type]


def _role_map(schema_or_names: pa.Schema | pl.Schema | Mapping[str, object] | Sequence[str]) -> dict[str, str]:
    """Roles of the given columns: from metadata for an Arrow schema that has it, else by name."""
    if isinstance(schema_or_names, pa.Schema) and METADATA_KEY in (schema_or_names.metadata or {}):
        return read_roles(schema_or_names)
    names = list(schema_or_names.names if isinstance(schema_or_names, pa.Schema) else schema_or_names)
    return {n: role_of(n) for n in names}


def role_of(name: str) -> str:
    """Role of a column by its name (for frames without schema metadata)."""
    for role, cols in (("id", ID_COLUMNS), ("label", LABEL_COLUMNS), ("metadata", METADATA_COLUMNS)):
        if any(name == c for c, _ in cols):
            return role
    if name in _FEATURE_TYPES or _is_kmer_name(name):
        return "feature"
    raise InputError(f"column {name!r} is not part of the meta-spliceai row schema (version {SCHEMA_VERSION})")


def _is_kmer_name(name: str) -> bool:
    head, _, tail = name.partition("mer_")
    return head.isdigit() and len(tail) == int(head) and set(tail) <= set(BASES)


def columns_by_role(
    schema_or_names: pa.Schema | pl.Schema | Mapping[str, object] | Sequence[str], role: Role
) -> list[str]:
    """Columns of one role, in the given order."""
    if role not in ROLES:
        raise InputError(f"unknown column role {role!r}; choose one of {', '.join(ROLES)}")
    return [n for n, r in _role_map(schema_or_names).items() if r == role]


def feature_columns(schema_or_names: pa.Schema | pl.Schema | Mapping[str, object] | Sequence[str]) -> list[str]:
    """The columns a meta-model may read (role ``feature``), in the given order."""
    return columns_by_role(schema_or_names, "feature")


#: columns of gene_performance.tsv (one row per gene and site type)
PERFORMANCE_COLUMNS: tuple[str, ...] = (
    "gene_id",
    "gene_name",
    "splice_type",
    "n_splice_sites",
    "TP",
    "FP",
    "FN",
    "TN",
    "precision",
    "recall",
    "f1_score",
    "topk_acc",
)


def to_arrow(
    rows: pl.DataFrame,
    kmer_sizes: Iterable[int] | None = (),
    kmer_window: int = 500,
    feature_sets: Iterable[str] | None = None,
    stack_models: Iterable[str] | None = (),
) -> pa.Table:
    """Rows (e.g. from :func:`meta_spliceai.rows.gene_rows`) as an Arrow table in the dataset schema, metadata included."""
    schema = arrow_schema(kmer_sizes, kmer_window, feature_sets, stack_models)
    if rows.columns != schema.names:
        missing = [c for c in schema.names if c not in rows.columns]
        extra = [c for c in rows.columns if c not in schema.names]
        raise InputError(
            f"rows do not match the dataset schema (missing {missing[:5]}, extra {extra[:5]}, or out of order); "
            "build them with meta_spliceai.rows.gene_rows"
        )
    return rows.to_arrow().cast(schema).replace_schema_metadata(schema.metadata)
