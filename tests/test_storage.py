from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from meta_spliceai.errors import LockedError
from meta_spliceai.storage import (
    checksum,
    fault_point,
    folder_lock,
    link_or_copy,
    remove_stale_tmp,
    tmp_path_for,
    write_json_atomic,
)


def test_atomic_json_and_checksum(tmp_path):
    p = tmp_path / "a.json"
    write_json_atomic(p, {"x": 1})
    assert p.read_text().strip().startswith("{") and not list(tmp_path.glob(".*tmp*"))
    q = tmp_path / "b.json"
    write_json_atomic(q, {"x": 1})
    assert checksum(p) == checksum(q)
    write_json_atomic(q, {"x": 2})
    assert checksum(p) != checksum(q)


def test_link_or_copy_links_and_is_idempotent(tmp_path):
    src = tmp_path / "src.parquet"
    src.write_bytes(b"data")
    dst = tmp_path / "m" / "dst.parquet"
    dst.parent.mkdir()
    assert link_or_copy(src, dst) == "link" and os.path.samefile(src, dst)
    assert link_or_copy(src, dst) == "link"  # again: no stranded temp file
    assert not list(dst.parent.glob(".*"))


def test_link_or_copy_falls_back_to_copy(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.write_bytes(b"abc")
    dst = tmp_path / "dst"

    def no_links(a, b):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    assert link_or_copy(src, dst) == "copy"
    assert dst.read_bytes() == b"abc" and not os.path.samefile(src, dst)


def test_remove_stale_tmp(tmp_path):
    stale = tmp_path_for(tmp_path / "x.parquet")
    stale.write_text("half")
    keep = tmp_path / "x.parquet"
    keep.write_text("whole")
    remove_stale_tmp(tmp_path)
    assert not stale.exists() and keep.exists()


def test_lock_refuses_a_second_holder_and_frees_on_death(tmp_path):
    with folder_lock(tmp_path):
        code = f"from meta_spliceai.storage import folder_lock\nwith folder_lock(__import__('pathlib').Path({str(tmp_path)!r})): pass"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0 and "LockedError" in other.stderr
    # a holder killed with SIGKILL releases the lock; it says when it holds it (polling for the lock
    # from here could collide with the child's own non-blocking attempt and make it fail)
    hold = code.replace("pass", "print('held', flush=True); import time; time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError), folder_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with folder_lock(tmp_path):
        pass


def test_fault_point_is_inert_without_env(monkeypatch):
    monkeypatch.delenv("META_SPLICEAI_FAULT", raising=False)
    fault_point("anything")
    monkeypatch.setenv("META_SPLICEAI_FAULT", "other:1")
    fault_point("anything")


def test_fault_point_kills_at_the_nth_pass():
    code = "from meta_spliceai.storage import fault_point\nfor i in range(5):\n    print(i, flush=True)\n    fault_point('x')"
    r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "META_SPLICEAI_FAULT": "x:3"},
                       capture_output=True, text=True)
    assert r.returncode == -9 and r.stdout.split() == ["0", "1", "2"]


def test_lock_file_is_removed_on_release_and_on_failure(tmp_path):
    out = tmp_path / "o"
    with folder_lock(out):
        assert (out / ".lock").is_file()
    assert not (out / ".lock").exists()
    with pytest.raises(RuntimeError):
        with folder_lock(out):
            raise RuntimeError("boom")
    assert not (out / ".lock").exists()
    with folder_lock(out):  # and it can be taken again
        with pytest.raises(LockedError):
            with folder_lock(out):
                pass


def test_check_output_paths(tmp_path, monkeypatch):
    import meta_spliceai.storage as storage
    from meta_spliceai.errors import InputError
    from meta_spliceai.storage import check_output_dir, check_output_file

    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="--out .*f.txt is a file, not a folder"):
        check_output_dir(f, "--out")
    with pytest.raises(InputError, match="f.txt is a file, so the folder cannot be created"):
        check_output_dir(f / "sub" / "deeper", "--out")
    with pytest.raises(InputError, match="is a folder; give a file path"):
        check_output_file(tmp_path, "--out")
    check_output_dir(tmp_path / "new" / "deeper", "--out")  # creatable: fine, and nothing is created
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr(storage, "writable", lambda p: p != tmp_path)
    with pytest.raises(InputError, match="cannot be created: .* is read-only"):
        check_output_dir(tmp_path / "new", "--out")
    with pytest.raises(InputError, match="is read-only"):
        check_output_file(tmp_path / "g.tsv", "--out")


def test_fault_point_with_a_marker_fires_in_one_process_only(tmp_path):
    """``name:n@FILE``: worker processes inherit the variable; only the first to reach the point dies."""
    code = "from meta_spliceai.storage import fault_point\nfor i in range(3):\n    print(i, flush=True)\n    fault_point('x')"
    env = {**os.environ, "META_SPLICEAI_FAULT": f"x:2@{tmp_path / 'fired'}"}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert first.returncode == -9 and first.stdout.split() == ["0", "1"]
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert second.returncode == 0 and second.stdout.split() == ["0", "1", "2"]


def test_a_full_disk_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import errno
    import pathlib

    from meta_spliceai import storage

    real = pathlib.Path.write_text

    def full(self, *a, **k):
        real(self, "partial")  # some bytes made it, then the disk filled
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    target = tmp_path / "calls.tsv"
    with pytest.raises(OSError) as err:
        storage.write_text_atomic(target, "x\n")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert not list(tmp_path.iterdir())  # the partial temporary file is removed: it frees what it took
    assert storage.is_disk_full(err.value) and storage.being_written() != target
    msg = storage.disk_full_message(err.value, err.value.filename)
    assert msg.startswith(f"no space left on {storage.mount_point(tmp_path)} (") and f"while writing {target}" in msg
    assert msg.endswith(": free space, then re-run the same command (it resumes)")
    assert storage.is_disk_full(OSError("Error writing bytes to file. Detail: [errno 28] No space left on device"))
    assert not storage.is_disk_full(OSError(errno.EACCES, "Permission denied"))
    tmp = storage.tmp_path_for(tmp_path / "b.parquet")  # a writer that fails before commit: named while pending
    assert storage.being_written() == tmp_path / "b.parquet"
    tmp.write_bytes(b"x")
    storage.commit(tmp, tmp_path / "b.parquet")
    assert storage.being_written() != tmp_path / "b.parquet"


def test_guarded_write_names_the_file_for_any_writer(tmp_path):
    """polars reports a full disk as text ("os error 28"), not an errno: still an ENOSPC naming the file."""
    import errno

    from meta_spliceai import storage

    tmp, final = tmp_path / ".t.parquet.tmp", tmp_path / "t.parquet"

    def polars_like():
        tmp.write_bytes(b"partial")
        raise RuntimeError("No space left on device (os error 28)")

    with pytest.raises(OSError) as err:
        storage.guarded_write(tmp, final, polars_like)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(final) and not tmp.exists()
    with pytest.raises(ValueError, match="other"):  # anything else passes through unchanged
        storage.guarded_write(tmp, final, lambda: (_ for _ in ()).throw(ValueError("other")))


def test_outputs_regular_files_atomic_special_files_written_through(tmp_path, capsys):
    """A regular file is replaced by a renamed temp file (a new inode); ``-`` goes to stdout; a symlink
    stays a symlink with its target written; a FIFO stays a FIFO and its reader gets the bytes; a
    character device (a /dev/null twin) stays a device node."""
    import stat
    import threading

    from meta_spliceai.storage import (
        check_output_file,
        write_output,
        write_text_atomic,
        writes_through,
    )

    f = tmp_path / "calls.tsv"
    f.write_text("old\n")
    inode = f.stat().st_ino
    write_text_atomic(f, "new\n")
    assert f.read_text() == "new\n" and f.stat().st_ino != inode and not writes_through(f)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left

    write_output("-", "a\tb\n")
    write_output("-", b"c\n")
    assert capsys.readouterr().out == "a\tb\nc\n"

    target = tmp_path / "elsewhere" / "genes.tsv"
    target.parent.mkdir()
    target.write_text("stale\n")
    link = tmp_path / "genes.tsv"
    link.symlink_to(target)
    write_text_atomic(link, "gene_id\nG1\n")
    assert link.is_symlink() and link.resolve() == target.resolve() and target.read_text() == "gene_id\nG1\n"

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_text_atomic(fifo, "through the pipe\n")
    reader.join(timeout=30)
    assert got == [b"through the pipe\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)

    if os.geteuid() == 0:  # making device nodes needs root (and root is who replaced /dev/stdout before)
        dev = tmp_path / "null"
        os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        write_text_atomic(dev, "discarded\n")
        assert stat.S_ISCHR(os.lstat(dev).st_mode)
    # a writer that streams into its own temp file publishes it by the same rule
    from meta_spliceai.storage import publish_file, tmp_path_for

    for dst in (f, link, "-"):
        tmp = tmp_path_for(tmp_path / "streamed.vcf")
        tmp.write_text("##fileformat=VCFv4.2\n")
        publish_file(tmp, dst)
        assert not tmp.exists()
    assert f.read_text() == target.read_text() == "##fileformat=VCFv4.2\n" and link.is_symlink()
    assert capsys.readouterr().out == "##fileformat=VCFv4.2\n"
    # special files need no writable folder around them: they are written in place
    check_output_file("-", "--out")
    check_output_file(fifo, "--out")
