"""What the dataset commands (patch, dedup, validate, summary, merge) share: a dataset folder, opened,
read file by file, and replaced crash-safely.

A *dataset folder* is a build's output folder (or one made by ``dedup``/``patch``/``merge``)::

    DATASET/master/*.parquet      the rows (Parquet only)
    DATASET/manifest.json         per file: genes, rows, checksum, pred_type counts
    DATASET/build.json            configuration and inputs (a derived dataset copies its source's)
    DATASET/gene_performance.tsv  base-model metrics per gene
    DATASET/annotation/           parsed annotation tables (cached by the GTF's checksum)

**In-place replacement** (``--inplace``) never leaves a mix of old and new files: the new ``master/``
and manifest are written completely beside the old ones in ``DATASET/.staging/``, a journal
(``DATASET/.journal.json``) is written, then the two ``master/`` folders are exchanged in one
``renameat2(RENAME_EXCHANGE)`` (two renames where the file system lacks it) and the manifest renamed
into place. Whoever opens the dataset next (any of these commands) completes a swap whose journal
exists, or deletes a staging folder without one: the dataset is the old one until the journal is
written and the new one after.

**New folders** (``--dst``, ``merge``) are written under a hidden temporary name beside the
destination and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .dataset import BUILD_JSON, batch_paths, manifest_path, migrate_layout
from .errors import InputError
from .schema import METADATA_KEY, read_metadata
from .storage import fault_point, folder_lock, fsync_dir, link_or_copy, write_json_atomic

log = logging.getLogger(__name__)

JOURNAL = ".journal.json"
STAGING = ".staging"
PERFORMANCE = "gene_performance.tsv"
#: columns whose value is the same for every row of a gene (from the annotation)
GENE_LEVEL_COLUMNS = ("gene_name", "gene_type", "gene_length", "gene_transcript_count", "gene_exon_count")


@dataclass
class Dataset:
    """An opened dataset folder."""

    root: Path
    manifest: dict
    build: dict = field(default_factory=dict)

    @property
    def master(self) -> Path:
        return self.root / "master"

    def entries(self) -> list[tuple[str, dict]]:
        """Manifest entries (key, entry) in key order: the dataset's file order."""
        return sorted(self.manifest.get("batches", {}).items())

    def files(self) -> list[Path]:
        return [self.master / e["file"] for _, e in self.entries()]

    @property
    def config(self) -> dict:
        return dict(self.build.get("config") or {})


def dataset_root(path: str | os.PathLike[str]) -> Path:
    """The dataset folder of ``path`` (the folder itself, or its ``master/``)."""
    root = Path(path)
    if root.name == "master" and not (root / "master").is_dir() and root.parent.joinpath("master").is_dir():
        root = root.parent
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root} (give a build's output folder)")
    if not (root / "master").is_dir() and not (root / JOURNAL).is_file():  # a journal: killed mid-swap
        raise InputError(f"{root} is not a meta-spliceai dataset: it has no master/ folder (give a build's output folder)")
    return root


def open_dataset(path: str | os.PathLike[str], *, locked: bool = False) -> Dataset:
    """Open a dataset folder, first completing an interrupted in-place swap.

    ``locked``: the caller holds the folder's lock (a writing command); then an old-layout manifest is
    also moved to ``manifest.json``. Otherwise the lock is taken only when there is something to recover.
    """
    root = dataset_root(path)
    if locked:
        recover(root)
        migrate_layout(root)
    else:
        finish_interrupted(root)
    manifest = read_manifest_strict(root)
    build = {}
    if (root / BUILD_JSON).is_file():
        try:
            build = json.loads((root / BUILD_JSON).read_text())
        except json.JSONDecodeError as err:
            raise InputError(f"{root / BUILD_JSON}: not valid JSON ({err}); restore it from the build") from None
    return Dataset(root=root, manifest=manifest, build=build)


def finish_interrupted(root: Path) -> None:
    """Complete (or roll back) an in-place change a killed command left, so a reader sees one whole dataset.

    Takes the folder's lock only when there is something to do (readers of a settled dataset need none)."""
    if (root / JOURNAL).exists() or (root / STAGING).exists():
        with folder_lock(root, "meta-spliceai command"):
            recover(root)


def read_manifest_strict(root: Path) -> dict:
    """The manifest of a dataset folder; a one-line error when it is missing or not JSON."""
    path = manifest_path(root)
    if not path.is_file() and (root / "master" / "manifest.json").is_file():
        path = root / "master" / "manifest.json"  # old layout (a writing command migrates it)
    if not path.is_file():
        raise InputError(f"{root} has no manifest.json: the build did not finish (re-run it to finalize)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err}); run meta-spliceai validate, or re-run the build") from None
    if not isinstance(manifest.get("batches"), dict):
        raise InputError(f"{path} has no 'batches' table; run meta-spliceai validate, or re-run the build")
    return manifest


def parquet_file(path: Path) -> pq.ParquetFile:
    """Open a dataset file; a one-line error naming it when it is missing, truncated or not Parquet."""
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(f"{path}: file missing (listed in the manifest); run meta-spliceai validate") from None
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err}); run meta-spliceai validate") from None


def file_metadata(schema: pa.Schema, path: Path) -> dict:
    """The meta_spliceai metadata of a file's schema, with the file named in the error."""
    try:
        return read_metadata(schema)
    except InputError as err:
        raise InputError(f"{path}: {err}") from None


def row_groups(pf: pq.ParquetFile, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """The file's row groups one at a time (memory: one row group)."""
    for g in range(pf.num_row_groups):
        yield pf.read_row_group(g, columns=columns)


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
    from .storage import checksum

    entry = dict(base or {})
    entry.update(file=path.name, genes=file_genes(path), rows=parquet_file(path).metadata.num_rows,
                 pred_types=pred_type_counts(path), checksum=checksum(path))
    return entry


# --------------------------------------------------------------------------- in-place swap

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system without exchange
        return False
    raise OSError(err, os.strerror(err), str(a))


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
    _finish(root)


def _finish(root: Path) -> None:
    """Complete the swap the journal describes; idempotent, so a rerun after a kill completes it."""
    journal = json.loads((root / JOURNAL).read_text())
    stage, master = root / STAGING, root / "master"
    new_ino = int(journal["new_master_ino"])
    if not (master.is_dir() and os.stat(master).st_ino == new_ino):
        staged = stage / "master"
        if not (staged.is_dir() and os.stat(staged).st_ino == new_ino):
            raise InputError(f"{root}: the in-place change of {JOURNAL} lost its staged files; restore from the build")
        if master.is_dir():
            if not exchange(master, staged):
                os.rename(master, stage / "old_master")
                fault_point(f"{journal['op']}_swap_half")
                os.rename(staged, master)
        else:  # killed between the two renames of the fallback
            os.rename(staged, master)
        fsync_dir(root)
    fault_point(f"{journal['op']}_swapped")
    if (stage / "manifest.json").is_file():
        os.replace(stage / "manifest.json", manifest_path(root))
        fsync_dir(root)
    _relink_trims(root)
    shutil.rmtree(stage, ignore_errors=True)
    (root / JOURNAL).unlink()
    fsync_dir(root)
    log.info("%s: in-place %s complete", root, journal["op"])


def _relink_trims(root: Path) -> None:
    """In a build folder, point each batch's trim at its new master file, so a resumed build sees it done."""
    manifest = json.loads(manifest_path(root).read_text())
    for key, entry in manifest["batches"].items():
        if not (key.isdigit() and entry["file"] == f"batch_{int(key):05d}.parquet"):
            continue
        p = batch_paths(root, int(key))
        if p["trim"].is_file() and (root / "master" / entry["file"]).is_file():
            link_or_copy(root / "master" / entry["file"], p["trim"], tmp_dir=root / "batches")


def recover(root: Path) -> None:
    """Complete an in-place change whose journal exists; drop staging without one (call under the lock)."""
    if (root / JOURNAL).exists():
        log.warning("%s: completing an interrupted in-place change", root)
        _finish(root)
    elif (root / STAGING).exists():
        log.info("%s: removing the staging folder of an interrupted in-place change", root)
        shutil.rmtree(root / STAGING, ignore_errors=True)


# --------------------------------------------------------------------------- new folders


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


def write_manifest(path: Path, manifest: dict) -> None:
    write_json_atomic(path, manifest)


def history_entry(op: str, **details: object) -> dict:
    import time

    from . import __version__

    return {"op": op, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "version": __version__, **details}


def dataset_annotation(ds: Dataset, gtf: str | os.PathLike[str] | None = None):
    """The annotation of ``gtf``, else the build's (cached tables in ``annotation/``, else its GTF path)."""
    from .annotation import Annotation, load_annotation

    if gtf is not None:
        return load_annotation(gtf)
    inputs = ds.build.get("inputs") or {}
    cache_root = ds.root / "annotation"
    if inputs.get("gtf_checksum") and cache_root.is_dir():
        import polars as pl

        from .annotation import TABLES

        for cache in sorted(cache_root.glob(f"{inputs['gtf_checksum']}-v*")):
            files = {t: cache / f"{t}.parquet" for t in TABLES}
            if all(f.is_file() for f in files.values()):
                return Annotation(**{t: pl.read_parquet(f) for t, f in files.items()}, source=inputs.get("gtf", ""))
    if inputs.get("gtf") and Path(inputs["gtf"]).is_file():
        return load_annotation(inputs["gtf"])
    raise InputError(f"{ds.root}: the build's annotation is gone (no annotation/ tables, GTF {inputs.get('gtf')!r} "
                     "not found); give it with --gtf")


__all__ = ["Dataset", "open_dataset", "finish_interrupted", "parquet_file", "row_groups", "exchange", "recover", "new_folder",
           "GENE_LEVEL_COLUMNS"]
