"""Crash-safe file primitives: atomic writes, checksums, hard links, an exclusive folder lock.

Every artifact is written to a temporary name in its destination folder and renamed into place, so a
kill at any moment leaves either the old file or the new one, never half of one. A single-file output
may also be ``-`` (stdout), a symlink, a FIFO or a device: those are written through, never replaced
(:func:`write_output`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import InputError, LockedError

log = logging.getLogger(__name__)


#: temporary name -> final path of files being written in this process (tmp_path_for .. commit), oldest first
_pending: dict[Path, Path] = {}
_PENDING_MAX = 256


def tmp_path_for(path: Path) -> Path:
    """A temporary sibling of ``path`` (hidden, same folder, so rename is atomic).

    The pair is remembered until :func:`commit`, so a write that fails (a full disk) can name its file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _pending.pop(tmp, None)
    _pending[tmp] = path
    while len(_pending) > _PENDING_MAX:
        _pending.pop(next(iter(_pending)))
    return tmp


def being_written() -> Path | None:
    """The file this process most recently began writing (under a temporary name) and has not committed."""
    return next(reversed(_pending.values()), None) if _pending else None


def is_disk_full(err: BaseException) -> bool:
    """An ``ENOSPC`` (or quota) refusal, from the OS, pyarrow or polars (which may lose the errno)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p.parent != p:
        p = p.parent
    while not os.path.ismount(p) and p.parent != p:
        p = p.parent
    return p


def disk_full_message(err: BaseException, path: str | os.PathLike[str] | None) -> str:
    """One line for a full disk: its file system, the file being written, and what to do."""
    what = "disk quota exceeded" if isinstance(err, OSError) and err.errno == errno.EDQUOT else "no space left"
    if path is None:
        return f"{what} on the output's file system: free space, then re-run the same command (it resumes)"
    where = Path(path)
    fs = mount_point(where)
    free = ""
    with contextlib.suppress(OSError):
        free = f" ({shutil.disk_usage(fs).free / 2**20:,.0f} MiB free)"
    return f"{what} on {fs}{free} while writing {where}: free space, then re-run the same command (it resumes)"


def guarded_write(tmp: Path, path: Path, write: Callable[[], object]) -> None:
    """Run ``write()``, which writes ``tmp`` (to be renamed to ``path``). If it fails, the partial ``tmp`` is
    removed (a full disk gets back what it took) and a full disk's error (from the OS, pyarrow or polars) is an
    ``OSError(ENOSPC)`` naming ``path``."""
    try:
        write()
    except Exception as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        _pending.pop(tmp, None)
        if is_disk_full(err) and getattr(err, "filename", None) is None:
            code = err.errno if isinstance(err, OSError) and err.errno else errno.ENOSPC
            raise OSError(code, os.strerror(code), str(path)) from err
        raise


def fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` and rename it to ``path``."""

    def flush() -> None:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())  # a full disk may only show here (delayed allocation)

    guarded_write(tmp, path, flush)
    os.replace(tmp, path)
    _pending.pop(tmp, None)
    fsync_dir(path.parent)


def arrow_string():  # -> pyarrow.DataType (pyarrow imported on use)
    """The one Arrow type of every string column written to Parquet (``gene_id``, ``chrom``, ...): in
    prediction stores, ``master/`` files (``dataset.schema``) and ``calls.parquet``. ``large_string``, what
    polars writes, so the files join in pyarrow without casts; files of older stores (``string``) still read."""
    import pyarrow as pa

    return pa.large_string()


def arrow_position():  # -> pyarrow.DataType
    """The one Arrow type of every position column written to Parquet (a store's and ``master/``'s
    ``position``, ``genomic_position``, ``calls.parquet``'s, the raw-score and sequence tables'): int64,
    so tables join on ``(gene_id, position)`` in pyarrow without casts; stores written with int32 (before
    this type was declared here) are cast on read."""
    import pyarrow as pa

    return pa.int64()


#: an output path meaning standard output (an input path: standard input)
STDIO = "-"


def is_stdio(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``-``: standard output for an output, standard input for an input."""
    return os.fspath(path) == STDIO


def read_once(path: str | os.PathLike[str]) -> bytes:
    """The bytes of an input that is read once: ``-`` is standard input, and a pipe (``<(…)``,
    ``/dev/fd/N``) or a FIFO reads like a file. Inputs read more than once must be regular files."""
    return sys.stdin.buffer.read() if is_stdio(path) else Path(path).read_bytes()


def is_input_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` can be read by :func:`read_once`: ``-``, or an existing path that is not a folder."""
    return is_stdio(path) or (Path(path).exists() and not Path(path).is_dir())


def writes_through(path: str | os.PathLike[str]) -> bool:
    """Whether an output is opened and written in place rather than replaced by a renamed temp file:
    ``-`` (stdout) and any existing path that is not a regular file, i.e. a symlink (``/dev/stdout``,
    a link to a file elsewhere), a FIFO, a character or block device. Renaming onto those would replace
    the link or the device node with a plain file, so they keep their identity and the bytes go through."""
    if is_stdio(path):
        return True
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # not there (or a parent is a file): a new regular file, checked by check_output_file
        return False
    return not stat.S_ISREG(mode)


def write_output(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write one output file: regular files atomically (temp name, then rename), ``-`` and special files
    (:func:`writes_through`) opened and written through. Every single-file writer goes through here."""
    if is_stdio(path):
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)
        if out is None:  # a text-only stream (some embedders replace sys.stdout)
            sys.stdout.write(data if isinstance(data, str) else data.decode())
        else:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
        return
    path = Path(path)
    if writes_through(path):
        with open(path, "w" if isinstance(data, str) else "wb") as fh:
            fh.write(data)
        return
    tmp = tmp_path_for(path)
    if isinstance(data, str):
        guarded_write(tmp, path, lambda: tmp.write_text(data))
    else:
        guarded_write(tmp, path, lambda: tmp.write_bytes(data))
    commit(tmp, path)


def publish_file(tmp: Path, path: str | os.PathLike[str]) -> None:
    """Put a finished temp file in place by the rule of :func:`write_output`: renamed onto a regular (or
    new) ``path``; copied through into ``-``, a symlink, a FIFO or a device, then removed. For writers
    that stream a large output into ``tmp`` themselves."""
    if not writes_through(path):
        commit(tmp, Path(path))
        return
    try:
        if is_stdio(path):
            sys.stdout.flush()
            with open(tmp, "rb") as src:
                shutil.copyfileobj(src, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with open(tmp, "rb") as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Text to ``path`` by the rule of :func:`write_output` (atomic for regular files)."""
    write_output(path, text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Bytes to ``path`` by the rule of :func:`write_output` (atomic for regular files)."""
    write_output(path, data)


def write_json_atomic(path: Path, obj: object) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def checksum(path: Path) -> str:
    """blake2b (128-bit, hex) of a file's bytes."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 23), b""):
            h.update(block)
    return h.hexdigest()


def link_or_copy(src: Path, dst: Path, tmp_dir: Path | None = None) -> str:
    """Hard-link ``src`` to ``dst`` atomically (copy where links fail). Returns ``"link"`` or ``"copy"``.

    ``tmp_dir`` (same file system as ``dst``) holds the temporary name instead of ``dst``'s folder, for
    destinations whose readers take every file in the folder (``master/``, prediction stores).
    """
    if dst.exists() and os.path.samefile(src, dst):
        return "link"  # rename() between two links of one file is a no-op that would strand the temp name
    tmp = tmp_path_for(dst) if tmp_dir is None else tmp_dir / tmp_path_for(dst).name
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
        how = "link"
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        guarded_write(tmp, dst, lambda: shutil.copyfile(src, tmp))
        how = "copy"
    os.replace(tmp, dst)
    _pending.pop(tmp, None)
    fsync_dir(dst.parent)
    return how


def remove_stale_tmp(folder: Path) -> None:
    """Delete temporary files a killed run left behind."""
    if folder.is_dir():
        for p in folder.glob(".*.tmp-*"):
            with contextlib.suppress(OSError):
                p.unlink()


def writable(folder: Path) -> bool:
    """Whether this process may create files in ``folder`` (a seam for tests run as root)."""
    return os.access(folder, os.W_OK | os.X_OK)


def check_output_dir(folder: Path, flag: str) -> None:
    """Fail in one line, before any work and without creating anything, when ``folder`` cannot be an
    output folder: a file is in the way (itself or a parent), or it (or the nearest existing parent) is
    read-only."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{flag} {folder} is a file, not a folder; give a folder path (or move the file away)")
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"{flag} {folder}: {probe} is a file, so the folder cannot be created; give another path")
    if probe.exists() and not writable(probe):
        where = "is read-only" if probe == folder else f"cannot be created: {probe} is read-only"
        raise InputError(f"{flag} {folder} {where} for this user; choose a writable location or fix its permissions")


def check_output_file(path: str | os.PathLike[str], flag: str) -> None:
    """Like :func:`check_output_dir` for a file to be written: not a folder, and a writable place to go
    (``-`` and existing special files, written through, need only be writable themselves)."""
    if is_stdio(path):
        return
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file path, e.g. {path / 'genes.tsv'}")
    if writes_through(path):  # written in place: its folder need not take new files
        if path.exists() and not os.access(path, os.W_OK):
            raise InputError(f"{flag} {path} is not writable for this user; choose another path or fix its permissions")
        return
    check_output_dir(path.parent, f"the folder of {flag}")


LOCK_NAME = ".lock"


@contextlib.contextmanager
def folder_lock(folder: Path, what: str = "builder") -> Iterator[None]:
    """Exclusive advisory lock on ``folder`` (released by the OS if the process dies).

    The lock file is removed on release, so a finished or failed run leaves no ``.lock`` behind; a
    process that locked a file unlinked meanwhile retries on the new one.
    """
    folder = Path(folder)
    check_output_dir(folder, "output folder")
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = folder / LOCK_NAME
    while True:
        fh = open(lock_file, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise LockedError(
                f"{folder} is in use by another {what} ({holder}); wait for it to finish or use another output folder"
            ) from None
        try:
            same = os.stat(lock_file).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        fh.close()  # the holder released and removed it between our open and flock: lock the new file
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}")
    fh.flush()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_file.unlink()  # while still held: nobody can be holding the file we remove
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


_FAULT_ENV = "META_SPLICEAI_FAULT"
_fault_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Crash-test hook: SIGKILL this process at the n-th pass through ``name``.

    Armed only by the environment (``META_SPLICEAI_FAULT=name`` or ``name:n``); a no-op otherwise.
    ``name:n@FILE`` fires in one process only, the first to create ``FILE`` (worker processes
    inherit the environment: the retried unit must then run through).
    The tests use it to kill a build mid-write and check that the resumed build equals a clean one.
    """
    spec = os.environ.get(_FAULT_ENV)
    if not spec:
        return
    spec, _, once = spec.partition("@")
    target, _, count = spec.partition(":")
    if target != name:
        return
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] >= int(count or 1):
        if once:
            try:
                os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
        log.debug("fault point %s reached: killing process", name)
        os.kill(os.getpid(), 9)
