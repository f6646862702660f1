"""A patched dataset: gene-level columns refreshed from an annotation, files brought to the current schema.

**Gene-level columns** (the same for every row of a gene): ``gene_name``, ``gene_type``,
``gene_transcript_count`` and ``gene_exon_count`` are taken from the build's annotation or from
``--gtf`` (e.g. a GENCODE GTF with gene types where the build's had none). Genes are matched by
``gene_id``, then by the ID without its version suffix. A type the annotation lacks (``unknown``)
never overwrites a known one. ``gene_length`` and ``relative_position`` belong to the span the
predictions were made on, so they are never changed; genes whose span differs in the annotation are
reported. Genes missing from the annotation keep their values and are reported.

**Schema upgrades**: a file of an older ``schema_version`` passes through one registered step per
version (:data:`UPGRADES`, ``v -> v + 1``), row group by row group; a step may read the build's
annotation or prediction store through its :class:`UpgradeContext`. A new schema version adds its
step with :func:`register_upgrade`.

Idempotent: files whose columns already hold these values and the current version are not
rewritten (in place) or are hard-linked (``--dst``). Streaming: memory is one row group plus one
small table per gene.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ..dataset.folder import (
    Dataset,
    dataset_root,
    file_metadata,
    open_dataset,
    parquet_file,
    row_groups,
)
from ..dataset.schema import SCHEMA_VERSION, schema_of
from ..dataset.writer import RowWriter
from ..errors import InputError
from ..storage import fault_point, folder_lock, link_or_copy
from .publish import (
    dataset_annotation,
    default_destination,
    history_entry,
    manifest_entry,
    publish,
    rows_per_group,
)

log = logging.getLogger(__name__)

#: columns patch refreshes from the annotation (annotation genes-table column of each)
PATCHED_COLUMNS: dict[str, str] = {
    "gene_name": "gene_name",
    "gene_type": "gene_type",
    "gene_transcript_count": "transcript_count",
    "gene_exon_count": "exon_count",
}
UNKNOWN_TYPE = "unknown"


@dataclass
class UpgradeContext:
    """What an upgrade step may read besides the row group: the dataset, the file, and the build's inputs."""

    dataset: Dataset
    path: Path
    metadata: dict
    _annotation: object = None
    _store: object = None

    @property
    def annotation(self):
        if self._annotation is None:
            self._annotation = dataset_annotation(self.dataset)
        return self._annotation

    @property
    def store(self):
        """The build's prediction store (``DATASET/predictions``), for steps that add score features."""
        if self._store is None:
            from ..basemodel.store import PredictionStore

            folder = self.dataset.root / "predictions"
            if not folder.is_dir():
                raise InputError(f"upgrading {self.path} needs the build's predictions in {folder}; "
                                 "copy the prediction store there or rebuild the dataset")
            self._store = PredictionStore(folder)
        return self._store


UpgradeStep = Callable[[pa.Table, UpgradeContext], pa.Table]
#: schema_version v -> the step that turns a row group of version v into version v + 1
UPGRADES: dict[int, UpgradeStep] = {}


def register_upgrade(from_version: int) -> Callable[[UpgradeStep], UpgradeStep]:
    """Decorator: register the step from ``from_version`` to ``from_version + 1``."""

    def add(step: UpgradeStep) -> UpgradeStep:
        UPGRADES[from_version] = step
        return step

    return add


@register_upgrade(1)
def _v1_to_v2(table: pa.Table, ctx: UpgradeContext) -> pa.Table:
    """Version 2 added optional context families and ``feature_sets`` to the metadata; a version-1 file
    holds exactly the ``base`` family, so its columns stay as they are (the target schema says ``base``)."""
    return table


def upgrade_table(table: pa.Table, version: int, ctx: UpgradeContext) -> pa.Table:
    """A row group of ``version`` in the current schema (every registered step in turn, then the exact schema)."""
    for v in range(version, SCHEMA_VERSION):
        step = UPGRADES.get(v)
        if step is None:
            raise InputError(f"{ctx.path}: no upgrade from schema_version {v} to {v + 1} is known; rebuild the dataset")
        table = step(table, ctx)
    meta = ctx.metadata
    target = schema_of(meta)
    have = set(table.column_names)
    missing = [n for n in target.names if n not in have]
    if missing:
        raise InputError(f"{ctx.path}: after upgrading, columns {missing[:5]} are missing; rebuild the dataset")
    return table.select(target.names).cast(target).replace_schema_metadata(target.metadata)


@dataclass
class PatchSummary:
    """What patch changed; the CLI prints it."""

    dataset: str
    output: str
    annotation: str
    files_rewritten: list[str] = field(default_factory=list)
    upgraded: dict[str, int] = field(default_factory=dict)  # file -> old schema_version
    type_changes: list[tuple[str, str, str]] = field(default_factory=list)  # gene, old, new
    other_changes: list[tuple[str, str, object, object]] = field(default_factory=list)  # gene, column, old, new
    span_differs: list[str] = field(default_factory=list)
    not_in_annotation: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.files_rewritten)


def _annotation_genes(ann) -> pl.DataFrame:
    g = ann.genes.select("gene_id", "gene_name", "gene_type", "length", "transcript_count", "exon_count")
    from ..reference.genelists import strip_version

    return g.with_columns(pl.col("gene_id").map_elements(strip_version, return_dtype=pl.String).alias("_base"))


def _current_values(path: Path) -> pl.DataFrame:
    """One row per gene of the file: its gene-level columns (first row of the gene), streamed."""
    cols = ["gene_id", *PATCHED_COLUMNS, "gene_length"]
    parts = [pl.from_arrow(t).unique("gene_id", keep="first", maintain_order=True)
             for t in row_groups(parquet_file(path), cols)]
    return pl.concat(parts).unique("gene_id", keep="first", maintain_order=True)


def _new_values(cur: pl.DataFrame, genes: pl.DataFrame) -> pl.DataFrame:
    """cur joined to the annotation: ``new_*`` columns (= current where the annotation has nothing better)."""
    from ..reference.genelists import strip_version

    exact = set(genes["gene_id"].to_list())
    base = {b: g for g, b in genes.select("gene_id", "_base").iter_rows()}
    match = [g if g in exact else base.get(strip_version(g)) for g in cur["gene_id"].to_list()]
    cur = cur.with_columns(pl.Series("_match", match, dtype=pl.String))
    j = cur.join(genes.drop("_base"), left_on="_match", right_on="gene_id", how="left", suffix="_ann")
    return j.with_columns(
        pl.coalesce("gene_name_ann", "gene_name").alias("new_gene_name"),
        pl.when(pl.col("gene_type_ann").is_null() | (pl.col("gene_type_ann") == UNKNOWN_TYPE))
        .then(pl.col("gene_type")).otherwise(pl.col("gene_type_ann")).alias("new_gene_type"),
        pl.coalesce(pl.col("transcript_count").cast(pl.Int32), "gene_transcript_count").alias("new_gene_transcript_count"),
        pl.coalesce(pl.col("exon_count").cast(pl.Int32), "gene_exon_count").alias("new_gene_exon_count"),
    )


def _replace_gene_columns(t: pa.Table, values: pl.DataFrame) -> pa.Table:
    """Row group ``t`` with the patched columns taken from ``values`` (one row per gene)."""
    genes = pa.array(values["gene_id"].to_list(), type=t.schema.field("gene_id").type)
    idx = pc.index_in(t.column("gene_id"), value_set=genes)
    for col in PATCHED_COLUMNS:
        f = t.schema.field(col)
        new = pa.array(values[f"new_{col}"].to_list(), type=f.type)
        t = t.set_column(t.schema.get_field_index(col), f, new.take(idx))
    return t


def patch(
    *,
    dataset: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    inplace: bool = False,
    gtf: str | os.PathLike[str] | None = None,
) -> PatchSummary:
    """Refresh gene-level columns and upgrade old files (module doc) into ``dst`` (default ``<dataset>_patched``)
    or in place."""
    if inplace and dst is not None:
        raise InputError("--inplace and --dst exclude each other: choose one")
    root = dataset_root(dataset)
    if inplace:
        with folder_lock(root, "meta-spliceai command"):
            return _patch(open_dataset(root, locked=True), None, gtf)
    return _patch(open_dataset(root), Path(dst) if dst else default_destination(root, "patched"), gtf)


def _patch(ds: Dataset, dst: Path | None, gtf: str | os.PathLike[str] | None) -> PatchSummary:
    ann = dataset_annotation(ds, gtf)
    genes = _annotation_genes(ann)
    summary = PatchSummary(dataset=str(ds.root), output=str(dst or ds.root), annotation=str(gtf or ann.source))
    plans: dict[str, tuple[pl.DataFrame, int, dict]] = {}
    for _, entry in ds.entries():
        path = ds.master / entry["file"]
        meta = file_metadata(parquet_file(path).schema_arrow, path)
        version = int(meta.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise InputError(f"{path} has schema_version {version}, newer than this meta-spliceai's "
                             f"({SCHEMA_VERSION}); upgrade meta-spliceai")
        values = _new_values(_current_values(path), genes)
        summary.not_in_annotation += values.filter(pl.col("_match").is_null())["gene_id"].to_list()
        summary.span_differs += values.filter(pl.col("length").is_not_null() & (pl.col("length") != pl.col("gene_length")))[
            "gene_id"].to_list()
        changed = False
        for col in PATCHED_COLUMNS:
            diff = values.filter(pl.col(col).ne_missing(pl.col(f"new_{col}")))
            for gid, old, new in diff.select("gene_id", col, f"new_{col}").iter_rows():
                if col == "gene_type":
                    summary.type_changes.append((gid, old, new))
                else:
                    summary.other_changes.append((gid, col, old, new))
            changed |= diff.height > 0
        if version < SCHEMA_VERSION:
            summary.upgraded[entry["file"]] = version
        if changed or version < SCHEMA_VERSION:
            plans[entry["file"]] = (values, version, meta)
    for what, genes_ in (("not in the annotation (kept as they were)", summary.not_in_annotation),
                         ("with another span in the annotation (length kept)", summary.span_differs)):
        if genes_:
            log.warning("%d gene(s) %s: %s", len(genes_), what, ", ".join(genes_[:5]))
    if dst is None and not plans:
        log.info("%s: gene-level columns and schema are current; nothing changed", ds.root)
        return summary
    history = history_entry("patch", annotation=summary.annotation, files=sorted(plans),
                            type_changes=len(summary.type_changes))

    def write(master: Path, tmp_dir: Path) -> dict:
        manifest = {k: v for k, v in ds.manifest.items() if k != "batches"}
        manifest["batches"] = {}
        manifest["history"] = [*ds.manifest.get("history", []), history]
        manifest["schema_version"] = SCHEMA_VERSION
        for k, entry in ds.entries():
            src, out = ds.master / entry["file"], master / entry["file"]
            if entry["file"] in plans:
                values, version, meta = plans[entry["file"]]
                _rewrite(ds, src, out, values, version, meta)
                manifest["batches"][k] = manifest_entry(out, entry)
                summary.files_rewritten.append(entry["file"])
            else:
                link_or_copy(src, out, tmp_dir=tmp_dir)
                manifest["batches"][k] = dict(entry)
        return manifest

    publish(ds, dst, write, "patch", history)
    return summary


def _rewrite(ds: Dataset, src: Path, out: Path, values: pl.DataFrame, version: int, meta: dict) -> None:
    pf = parquet_file(src)
    ctx = UpgradeContext(dataset=ds, path=src, metadata=meta)
    target = schema_of(meta)
    writer = RowWriter(out, target, rows_per_group(pf, ds.config), background=False)
    for t in row_groups(pf):
        if version < SCHEMA_VERSION:
            t = upgrade_table(t, version, ctx)
        writer.add(_replace_gene_columns(t, values))
        fault_point("patch_write")
    writer.close()


__all__ = ["patch", "PatchSummary", "UPGRADES", "register_upgrade", "upgrade_table", "UpgradeContext",
           "PATCHED_COLUMNS"]
