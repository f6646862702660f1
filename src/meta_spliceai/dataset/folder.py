"""The dataset folder: its layout, its manifest, and the one way to open it.

A *dataset folder* is a build's output folder (or one made by ``dedup``/``patch``/``merge``)::

    DATASET/build.json            configuration, inputs, the plan (a derived dataset copies its source's)
    DATASET/annotation/           parsed annotation tables (cached by the GTF's checksum)
    DATASET/predictions/          prediction store (or the build's --predictions elsewhere)
    DATASET/batches/              batch_NNNNN_raw.parquet, _trim.parquet, _perf.parquet (builds only)
    DATASET/master/*.parquet      the rows (Parquet only, so any reader takes the folder as one table)
    DATASET/manifest.json         per file: genes, rows, checksum, pred_type counts; schema version
    DATASET/gene_performance.tsv  base-model metrics per gene

**In-place replacement** (``--inplace`` of the dataset commands) writes the new ``master/`` and
manifest beside the old ones in ``DATASET/.staging/``, writes a journal (``DATASET/.journal.json``),
then exchanges the two ``master/`` folders in one ``renameat2(RENAME_EXCHANGE)`` (two renames where
the file system lacks it) and renames the manifest into place. :func:`open_dataset` completes a swap
whose journal exists, or drops a staging folder without one, before anything reads the folder.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError
from ..storage import (
    checksum,
    commit,
    fault_point,
    folder_lock,
    fsync_dir,
    link_or_copy,
    tmp_path_for,
    write_text_atomic,
)
from .schema import SCHEMA_VERSION, read_metadata

log = logging.getLogger(__name__)

BUILD_JSON = "build.json"
MANIFEST = "manifest.json"
PERFORMANCE = "gene_performance.tsv"
JOURNAL = ".journal.json"
STAGING = ".staging"


# --------------------------------------------------------------------------- layout and manifest


def batch_paths(out: Path, b: int) -> dict[str, Path]:
    stem = f"batch_{b:05d}"
    return {
        "raw": out / "batches" / f"{stem}_raw.parquet",
        "trim": out / "batches" / f"{stem}_trim.parquet",
        "perf": out / "batches" / f"{stem}_perf.parquet",
        "master": out / "master" / f"{stem}.parquet",
    }


def manifest_path(out: Path) -> Path:
    """``OUT/manifest.json``: beside ``master/``, never inside it (readers take every file in ``master/``)."""
    return out / MANIFEST


def migrate_layout(out: Path) -> bool:
    """Move a manifest of the old layout (``OUT/master/manifest.json``) to ``OUT/manifest.json``.

    Crash-safe: the old file is copied to the new place atomically first, then removed. Returns True
    when something was moved.
    """
    old = out / "master" / MANIFEST
    if not old.is_file():
        return False
    new = manifest_path(out)
    if not new.is_file():
        write_text_atomic(new, old.read_text())
    old.unlink()
    log.info("moved %s to %s (new layout: master/ holds Parquet files only)", old, new)
    return True


def read_manifest(root: Path, *, strict: bool = False) -> dict:
    """The manifest of a dataset folder (old layout ``master/manifest.json`` too).

    ``strict``: a missing, unreadable or malformed manifest is a one-line error (readers of a finished
    dataset); otherwise a missing one is an empty, incomplete manifest (a build that is starting).
    """
    path = manifest_path(root)
    if not path.is_file() and (root / "master" / MANIFEST).is_file():
        path = root / "master" / MANIFEST  # old layout, not yet migrated (a writing command migrates it)
    if not path.is_file():
        if strict:
            raise InputError(f"{root} has no manifest.json: the build did not finish (re-run it to finalize)")
        return {"schema_version": SCHEMA_VERSION, "complete": False, "batches": {}}
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err}); run meta-spliceai validate, or re-run the build") from None
    if strict and not isinstance(manifest.get("batches"), dict):
        raise InputError(f"{path} has no 'batches' table; run meta-spliceai validate, or re-run the build")
    return manifest


def write_manifest(path: Path, manifest: dict) -> None:
    """Write a manifest atomically (temporary name, then rename); ``path`` is its final name."""
    tmp = tmp_path_for(path)
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    fault_point("manifest_write")
    commit(tmp, path)



# --------------------------------------------------------------------------- opening


@dataclass
class Dataset:
    """An opened dataset folder."""

    root: Path
    manifest: dict
    build: dict = field(default_factory=dict)
    #: the files to read when not every file of the manifest (one file given, or rows derived elsewhere)
    paths: tuple[Path, ...] | None = None

    @property
    def master(self) -> Path:
        return self.root / "master"

    def entries(self) -> list[tuple[str, dict]]:
        """Manifest entries (key, entry) in key order: the dataset's file order."""
        return sorted(self.manifest.get("batches", {}).items())

    @property
    def files(self) -> list[Path]:
        """The Parquet files of the rows, in manifest order."""
        if self.paths is not None:
            return list(self.paths)
        return [self.master / e["file"] for _, e in self.entries()]

    @property
    def config(self) -> dict:
        """The build's configuration as stored in ``build.json`` (empty when there is none)."""
        return dict(self.build.get("config") or {})

    @functools.cached_property
    def schema_meta(self) -> dict:
        """The meta_spliceai metadata (roles, schema version, feature settings) of the first file."""
        if not self.files:
            raise InputError(f"no Parquet files in {self.master}; finish the build first (re-run meta-spliceai build)")
        first = self.files[0]
        try:
            return read_metadata(parquet_file(first).schema_arrow)
        except InputError:
            raise InputError(f"{first} has no column roles (meta_spliceai schema metadata): it is not a "
                             "meta-spliceai dataset; rebuild it with meta-spliceai build") from None

    @property
    def roles(self) -> dict[str, str]:
        return dict(self.schema_meta["roles"])  # type: ignore[arg-type]

    @property
    def feature_columns(self) -> list[str]:
        return [c for c, r in self.roles.items() if r == "feature"]

    @property
    def store_dir(self) -> Path:
        """The build's prediction store."""
        return Path(self.build.get("predictions") or self.root / "predictions")

    @property
    def stack_dirs(self) -> tuple[Path, ...]:
        """A stacked build's other prediction stores, in order (none for one base model)."""
        return tuple(Path(p) for p in self.build.get("stack_predictions") or ())

    @functools.cached_property
    def digest(self) -> str:
        """Identity of the rows: a digest of the manifest's file checksums (the manifest's bytes when empty)."""
        batches = self.manifest.get("batches") or {}
        if not batches:
            return checksum(manifest_path(self.root))
        parts = [f"{k}:{v['checksum']}" for k, v in sorted(batches.items())]
        return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()


def dataset_root(path: str | os.PathLike[str]) -> Path:
    """The dataset folder of ``path`` (the folder itself, or its ``master/``)."""
    root = Path(path)
    if root.name == "master" and not (root / "master").is_dir() and (root.parent.joinpath("master").is_dir()
                                                                   or (root.parent / JOURNAL).is_file()):
        root = root.parent
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root} (give a build's output folder)")
    if not (root / "master").is_dir() and not (root / JOURNAL).is_file():  # a journal: killed mid-swap
        raise InputError(f"{root} is not a meta-spliceai dataset: it has no master/ folder (give a build's output folder)")
    return root


def open_dataset(path: str | os.PathLike[str], *, locked: bool = False) -> Dataset:
    """Open a dataset: its folder, its ``master/`` folder, or one Parquet file of its ``master/``.

    An interrupted in-place swap is completed first, so a reader never sees half of one; the manifest
    is read strictly. ``locked``: the caller holds the folder's lock (a writing command); then an
    old-layout manifest is also moved to ``manifest.json``. Otherwise the lock is taken only when
    there is something to recover. A single file gives a dataset of that file alone.
    """
    p = Path(path)
    selected: tuple[Path, ...] | None = None
    if p.suffix == ".parquet" and not p.is_dir():
        if not p.is_file():
            raise InputError(f"dataset file not found: {p} (give a build folder, its master/ or one of its files)")
        if p.parent.name != "master":
            raise InputError(f"{p} is not a meta-spliceai build, its master/ folder or one of its files "
                             "(give a build folder made by meta-spliceai build)")
        selected, p = (p,), p.parent
    root = dataset_root(p)
    if locked:
        recover(root)
        migrate_layout(root)
    else:
        finish_interrupted(root)
    manifest = read_manifest(root, strict=True)
    build = {}
    if (root / BUILD_JSON).is_file():
        try:
            build = json.loads((root / BUILD_JSON).read_text())
        except json.JSONDecodeError as err:
            raise InputError(f"{root / BUILD_JSON}: not valid JSON ({err}); restore it from the build") from None
    return Dataset(root=root, manifest=manifest, build=build, paths=selected)


def finish_interrupted(root: Path) -> None:
    """Complete (or roll back) an in-place change a killed command left, so a reader sees one whole dataset.

    Takes the folder's lock only when there is something to do (readers of a settled dataset need none)."""
    if (root / JOURNAL).exists() or (root / STAGING).exists():
        with folder_lock(root, "meta-spliceai command"):
            recover(root)



# --------------------------------------------------------------------------- reading files


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


# --------------------------------------------------------------------------- completing an in-place swap

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


def complete_swap(root: Path) -> None:
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
        complete_swap(root)
    elif (root / STAGING).exists():
        log.info("%s: removing the staging folder of an interrupted in-place change", root)
        shutil.rmtree(root / STAGING, ignore_errors=True)
