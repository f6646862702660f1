"""A merged dataset: the masters of datasets built separately (other gene sets, other machines) as one.

Datasets merge only when their rows were made the same way: the same row-determining configuration
(:data:`ROW_CONFIG`), the same FASTA and GTF (by checksum) and the same file schema; otherwise the
differences are listed and nothing is written. A gene present in more than one dataset is an error
(``--on-overlap error``), or its rows are taken from the first dataset listing it
(``--on-overlap dedup``; the builder makes a gene's rows independent of its batch and build, so
the copies are equal). Files are hard-linked where possible; files losing overlapping genes are
rewritten row group by row group. The output has one manifest (files renumbered in the order of the
datasets given, each entry naming its source), the sources' ``gene_performance.tsv`` rows, and the
first dataset's ``build.json`` and annotation tables, so it passes ``validate``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl
import pyarrow as pa

from ..dataset.folder import (
    PERFORMANCE,
    Dataset,
    dataset_root,
    open_dataset,
    parquet_file,
    row_groups,
    write_manifest,
)
from ..dataset.schema import SCHEMA_VERSION
from ..dataset.writer import RowWriter
from ..errors import ConfigMismatchError, InputError
from ..storage import fault_point, link_or_copy, write_text_atomic
from .publish import (
    copy_context,
    history_entry,
    manifest_entry,
    new_folder,
    rows_per_group,
)

log = logging.getLogger(__name__)

OnOverlap = Literal["error", "dedup"]
ON_OVERLAP: tuple[str, ...] = ("error", "dedup")
#: configuration keys that determine a gene's rows (the others choose genes or only shape files)
ROW_CONFIG: tuple[str, ...] = ("threshold", "consensus_window", "hard_prob", "window", "easy_ratio", "kmer_sizes",
                               "kmer_window", "seed", "base_model")
INPUT_KEYS: tuple[str, ...] = ("fasta_checksum", "gtf_checksum")


@dataclass
class MergeSummary:
    output: str
    datasets: list[str]
    files: int = 0
    linked: int = 0
    rewritten: int = 0
    rows: int = 0
    genes: int = 0
    overlapping_genes: list[str] = field(default_factory=list)


def _first_schema(ds: Dataset) -> pa.Schema | None:
    files = ds.files
    return parquet_file(files[0]).schema_arrow if files else None


def differences(a: Dataset, b: Dataset) -> list[str]:
    """Why ``b`` cannot be merged with ``a`` (empty when it can)."""
    diffs = []
    ca, cb = a.config, b.config
    for k in ROW_CONFIG:
        if ca.get(k) != cb.get(k):
            diffs.append(f"{k}: {ca.get(k)!r} in {a.root}, {cb.get(k)!r} in {b.root}")
    ia, ib = a.build.get("inputs") or {}, b.build.get("inputs") or {}
    for k in INPUT_KEYS:
        if ia.get(k) != ib.get(k):
            what = k.split("_")[0]
            diffs.append(f"{what} content differs ({ia.get(what)} in {a.root}, {ib.get(what)} in {b.root})")
    sa, sb = _first_schema(a), _first_schema(b)
    if sa is not None and sb is not None and not sa.equals(sb, check_metadata=True):
        only_a = [n for n in sa.names if n not in sb.names]
        only_b = [n for n in sb.names if n not in sa.names]
        detail = (f"columns only in {a.root}: {only_a[:5]}; only in {b.root}: {only_b[:5]}" if only_a or only_b
                  else "same columns, other types or metadata (schema_version, roles)")
        diffs.append(f"file schema differs ({detail})")
    return diffs


def merge(
    *,
    out: str | os.PathLike[str],
    datasets: Sequence[str | os.PathLike[str]],
    on_overlap: OnOverlap = "error",
) -> MergeSummary:
    """Merge ``datasets`` into the new folder ``out`` (module doc)."""
    if on_overlap not in ON_OVERLAP:
        raise InputError(f"--on-overlap must be one of {', '.join(ON_OVERLAP)}, got {on_overlap!r}")
    if not datasets:
        raise InputError("merge needs at least one dataset folder")
    roots = [dataset_root(d) for d in datasets]
    out = Path(out)
    for r in roots:
        if out.resolve() == r.resolve():
            raise InputError(f"the output {out} is one of the inputs; merge into a new folder")
    if len({r.resolve() for r in roots}) != len(roots):
        raise InputError("a dataset is given twice; give each once")
    dss = [open_dataset(r) for r in roots]
    diffs = [d for ds in dss[1:] for d in differences(dss[0], ds)]
    if diffs:
        raise ConfigMismatchError(f"datasets are not compatible: {'; '.join(diffs)}; rebuild them with the same "
                                  "configuration and inputs")
    owner: dict[str, int] = {}
    overlap: list[str] = []
    drop: list[set[str]] = []
    for i, ds in enumerate(dss):
        mine: set[str] = set()
        for _, e in ds.entries():
            for g in e["genes"]:
                if g in owner and owner[g] != i:
                    overlap.append(g)
                    mine.add(g)
                else:
                    owner[g] = i
        drop.append(mine)
    if overlap and on_overlap == "error":
        raise InputError(f"{len(overlap)} gene(s) are in more than one dataset: {', '.join(overlap[:5])}; "
                         "add --on-overlap dedup to keep each gene's rows from the first dataset listing it")
    summary = MergeSummary(output=str(out), datasets=[str(r) for r in roots], overlapping_genes=overlap)
    with new_folder(out) as tmp:
        manifest: dict = {"schema_version": SCHEMA_VERSION, "complete": all(ds.manifest.get("complete") for ds in dss),
                          "batches": {}}
        n = 0
        for i, ds in enumerate(dss):
            for _, entry in ds.entries():
                src = ds.master / entry["file"]
                dst = tmp / "master" / f"batch_{n:05d}.parquet"
                base = {**entry, "source": {"dataset": str(ds.root), "file": entry["file"]}}
                genes = set(entry["genes"])
                if genes & drop[i]:
                    if genes <= drop[i]:
                        continue  # every gene of this file came earlier
                    _write_without_genes(src, dst, drop[i], rows_per_group(parquet_file(src), ds.config))
                    base = manifest_entry(dst, base)
                    base.pop("raw_rows", None)
                    summary.rewritten += 1
                else:
                    link_or_copy(src, dst, tmp_dir=tmp)
                    base["file"] = dst.name
                    summary.linked += 1
                manifest["batches"][f"{n:05d}"] = base
                summary.rows += int(base["rows"])
                n += 1
                fault_point("merge_file")
        summary.files = n
        summary.genes = len(owner)
        manifest["history"] = [history_entry("merge", datasets=summary.datasets, on_overlap=on_overlap,
                                             overlapping_genes=len(overlap))]
        write_manifest(tmp / "manifest.json", manifest)
        build = dict(dss[0].build)
        build["plan"] = {"n_genes": summary.genes, "batches": [e["genes"] for _, e in sorted(manifest["batches"].items())]}
        build["merged_from"] = [{"dataset": str(ds.root), "config": ds.config} for ds in dss]
        copy_context(dss[0], tmp, manifest["history"][0], build=build)
        _merge_performance(dss, drop, tmp / PERFORMANCE)
    return summary


def _write_without_genes(src: Path, dst: Path, genes: set[str], batch_rows: int) -> None:
    import pyarrow.compute as pc

    pf = parquet_file(src)
    writer = RowWriter(dst, pf.schema_arrow, batch_rows, background=False)
    value_set = pa.array(sorted(genes), type=pf.schema_arrow.field("gene_id").type)
    for t in row_groups(pf):
        writer.add(t.filter(pc.invert(pc.is_in(t.column("gene_id"), value_set=value_set))))
    writer.close()


def _merge_performance(dss: list[Dataset], drop: list[set[str]], path: Path) -> None:
    """Concatenate the sources' gene_performance.tsv, each gene from the dataset its rows come from."""
    parts = []
    for ds, dropped in zip(dss, drop):
        f = ds.root / PERFORMANCE
        if not f.is_file():
            raise InputError(f"{f} is missing: re-run the build of {ds.root} to finalize it")
        parts.append(pl.read_csv(f, separator="\t", infer_schema_length=None).filter(
            ~pl.col("gene_id").is_in(sorted(dropped))))
    perf = pl.concat(parts, how="diagonal_relaxed")
    path.unlink(missing_ok=True)  # copy_context linked the first source's; this one replaces it
    write_text_atomic(path, perf.write_csv(separator="\t", float_precision=6))


__all__ = ["merge", "MergeSummary", "differences", "ROW_CONFIG", "ON_OVERLAP"]
