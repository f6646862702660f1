"""What the dataset commands (patch, dedup, validate, summary, merge) share for writing: a changed
dataset published crash-safely, in place or into a new folder, with its manifest entries and history.

**In place** (``--inplace``): the new ``master/`` and manifest are staged in ``DATASET/.staging/``, a
journal is written, then the swap is completed (``dataset.folder``, which also completes a swap a
kill interrupted). **New folders** (``--dst``, ``merge``) are written under a hidden temporary name
beside the destination and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..dataset.folder import (
    BUILD_JSON,
    JOURNAL,
    PERFORMANCE,
    STAGING,
    Dataset,
    complete_swap,
    parquet_file,
    row_groups,
    write_manifest,
)
from ..dataset.schema import METADATA_KEY
from ..errors import InputError
from ..storage import fault_point, fsync_dir, link_or_copy, write_json_atomic

log = logging.getLogger(__name__)

#: columns whose value is the same for every row of a gene (from the annotation)
GENE_LEVEL_COLUMNS = ("gene_name", "gene_type", "gene_length", "gene_transcript_count", "gene_exon_count")


def rows_per_group(pf: pq.ParquetFile, config: dict) -> int:
    """Row-group size for rewriting a file: the build's ``batch_rows``, else the file's first group's."""
    if config.get("batch_rows"):
        return int(config["batch_rows"])
    return max(pf.metadata.row_group(0).num_rows, 1) if pf.num_row_groups else 20_000


def schema_metadata_equal(a: pa.Schema, b: pa.Schema) -> bool:
    return (a.metadata or {}).get(METADATA_KEY) == (b.metadata or {}).get(METADATA_KEY)


def pred_type_counts(path: Path) -> dict[str, int]:
    import polars as pl

    counts = pl.scan_parquet(path).group_by("pred_type").len().collect()
    return dict(sorted((k, int(v)) for k, v in counts.iter_rows()))


def file_genes(path: Path) -> list[str]:
    """Gene IDs of one file in first-appearance order (streamed by row group)."""
    pf = parquet_file(path)
    seen: dict[str, None] = {}
    for t in row_groups(pf, ["gene_id"]):
        for g in t.column(0).unique().to_pylist():
            seen.setdefault(g, None)
    return list(seen)


def manifest_entry(path: Path, base: dict | None = None) -> dict:
    """A manifest entry describing ``path`` (genes, rows, pred_types, checksum), keeping other keys of ``base``."""
    from ..storage import checksum

    entry = dict(base or {})
    entry.update(file=path.name, genes=file_genes(path), rows=parquet_file(path).metadata.num_rows,
                 pred_types=pred_type_counts(path), checksum=checksum(path))
    return entry


# --------------------------------------------------------------------------- in-place swap

def staging(root: Path) -> Path:
    """A fresh staging folder ``root/.staging`` with an empty ``master/`` (any earlier one is dropped)."""
    stage = root / STAGING
    if (root / JOURNAL).exists():
        raise InputError(f"{root} has an unfinished in-place change ({JOURNAL}); open it again to complete it")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "master").mkdir(parents=True)
    return stage


def commit_staged(root: Path, stage: Path, op: str) -> None:
    """Swap ``stage/master`` and ``stage/manifest.json`` into ``root`` (the caller holds the folder lock)."""
    for f in (stage / "master").iterdir():
        if f.name.startswith("."):
            f.unlink()  # never a temp name inside master/
    fsync_dir(stage / "master")
    fault_point(f"{op}_staged")
    write_json_atomic(root / JOURNAL, {"op": op, "new_master_ino": os.stat(stage / "master").st_ino})
    fault_point(f"{op}_journal")
    complete_swap(root)


# --------------------------------------------------------------------------- new folders# --------------------------------------------------------------------------- new folders


def default_destination(root: Path, suffix: str) -> Path:
    return root.with_name(f"{root.name}_{suffix}")


@contextlib.contextmanager
def new_folder(dst: Path) -> Iterator[Path]:
    """A hidden temporary folder beside ``dst``, renamed to ``dst`` when the block completes."""
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise InputError(f"{dst} already exists; remove it, choose another destination, or use --inplace")
    dst.parent.mkdir(parents=True, exist_ok=True)
    for old in dst.parent.glob(f".{dst.name}.tmp-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    (tmp / "master").mkdir()
    yield tmp
    if dst.exists():
        dst.rmdir()
    os.rename(tmp, dst)
    fsync_dir(dst.parent)


def copy_context(src: Dataset, dst: Path, history: dict, build: dict | None = None) -> None:
    """Give a derived folder its source's build.json (with the history entry), performance table and annotation."""
    meta = dict(build if build is not None else src.build)
    meta["history"] = [*meta.get("history", []), history]
    write_json_atomic(dst / BUILD_JSON, meta)
    perf = src.root / PERFORMANCE
    if perf.is_file():
        link_or_copy(perf, dst / PERFORMANCE)
    ann = src.root / "annotation"
    if ann.is_dir():
        for f in ann.rglob("*.parquet"):
            target = dst / "annotation" / f.relative_to(ann)
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(f, target)


def publish(ds: Dataset, dst: Path | None, write, op: str, history: dict) -> None:
    """Write a changed dataset in place (staged, journaled swap) or to ``dst`` (built under a temporary name).

    ``write(master, tmp_dir)`` fills the folder ``master`` (temporary names in ``tmp_dir``) and returns
    the new manifest.
    """
    if dst is None:
        stage = staging(ds.root)
        manifest = write(stage / "master", stage)
        write_manifest(stage / "manifest.json", manifest)
        commit_staged(ds.root, stage, op)
    else:
        with new_folder(dst) as tmp:
            manifest = write(tmp / "master", tmp)
            write_manifest(tmp / "manifest.json", manifest)
            copy_context(ds, tmp, history)


def history_entry(op: str, **details: object) -> dict:
    import time

    from .. import __version__

    return {"op": op, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": __version__, **details}


def dataset_annotation(ds: Dataset, gtf: str | os.PathLike[str] | None = None):
    """The annotation of ``gtf``, else the build's (cached tables in ``annotation/``, else its GTF path)."""
    from ..reference.annotation import Annotation, load_annotation

    if gtf is not None:
        return load_annotation(gtf)
    inputs = ds.build.get("inputs") or {}
    cache_root = ds.root / "annotation"
    if inputs.get("gtf_checksum") and cache_root.is_dir():
        import polars as pl

        from ..reference.annotation import TABLES

        for cache in sorted(cache_root.glob(f"{inputs['gtf_checksum']}-v*")):
            files = {t: cache / f"{t}.parquet" for t in TABLES}
            if all(f.is_file() for f in files.values()):
                return Annotation(**{t: pl.read_parquet(f) for t, f in files.items()}, source=inputs.get("gtf", ""))
    if inputs.get("gtf") and Path(inputs["gtf"]).is_file():
        return load_annotation(inputs["gtf"])
    raise InputError(f"{ds.root}: the build's annotation is gone (no annotation/ tables, GTF {inputs.get('gtf')!r} "
                     "not found); give it with --gtf")
