"""The streaming Parquet writer of datasets: row groups of exactly ``batch_rows`` rows, written under a
temporary name and renamed when closed, with freed heap handed back to the OS as it goes.

Used by the builder (raw and trim files of a batch) and by the dataset commands that rewrite files.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import polars as pl

from ..storage import commit, tmp_path_for
from .schema import ID_COLUMNS

log = logging.getLogger(__name__)


class RowWriter:
    """Streams row groups of exactly ``batch_rows`` rows (the last may be shorter) into a Parquet file.

    The file is written under a temporary name and renamed on :meth:`close`. Encoding runs on a
    background thread (pyarrow releases the GIL) so it overlaps with computing the next genes' rows;
    at most one row group waits in memory besides the buffer. Rows may come with a keep mask, applied
    only when their row group is written: two writers (raw and trim) then share one set of tables.
    """

    def __init__(self, path: Path, schema, batch_rows: int, background: bool = True, copy_rest: bool = True) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path, self.tmp, self.schema, self.batch_rows = path, tmp_path_for(path), schema, batch_rows
        # dictionary encoding only pays for the repetitive string columns; k-mer counts are cheaper plain
        dict_cols = [f.name for f in schema if pa.types.is_large_string(f.type) or pa.types.is_string(f.type)]
        # statistics only where readers filter (ids); zstd level 1: measured ~2.5x faster than the defaults
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd", compression_level=1,
                                       use_dictionary=dict_cols, write_statistics=[name for name, _ in ID_COLUMNS])
        self.pool = ThreadPoolExecutor(max_workers=1) if background else None
        self.copy_rest = copy_rest  # False when the tables are shared: a copy would duplicate them
        self.pending = None
        self.buffer: list[tuple] = []  # (pyarrow table, keep mask or None, kept rows)
        self.buffered = 0  # kept rows in the buffer
        self.rows = 0

    def add(self, rows, keep: np.ndarray | None = None):  # noqa: ANN001, ANN201 - polars DataFrame or pyarrow Table
        """Buffer ``rows`` (written in full row groups) of which this file takes those ``keep`` marks
        (``None``: all); returns them as a table of the file's schema, unfiltered."""
        table = _conform(rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows, self.schema)
        if keep is not None and keep.all():
            keep = None
        n = table.num_rows if keep is None else int(keep.sum())
        if n:
            self.buffer.append((table, keep, n))
            self.buffered += n
        while self.buffered >= self.batch_rows:
            self._write(self.batch_rows)
        return table

    def _wait(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None

    def _write(self, n: int) -> None:
        """Write the first ``n`` kept rows of the buffer as one row group."""
        import pyarrow as pa

        parts, rest, got = [], [], 0
        for table, keep, k in self.buffer:
            if got >= n:
                rest.append((table, keep, k))
                continue
            if got + k > n:  # split: the first n - got kept rows go now
                cut = n - got if keep is None else int(np.searchsorted(np.cumsum(keep), n - got)) + 1
                tail = table.slice(cut)
                if self.copy_rest and keep is None and tail.num_rows <= n // 2:
                    tail = tail.take(pa.array(np.arange(tail.num_rows)))  # lets the written rows' buffers go
                rest.append((tail, None if keep is None else keep[cut:], got + k - n))
                table, keep = table.slice(0, cut), None if keep is None else keep[:cut]
            parts.append(table if keep is None else table.filter(pa.array(keep)))
            got += min(k, n - got)
        group = pa.concat_tables(parts)  # no copy: the writer takes chunked columns
        self.buffer, self.buffered = rest, self.buffered - group.num_rows
        del parts
        self._wait()
        self.rows += group.num_rows
        if self.pool is None:
            _encode(self.writer, group)
        else:
            self.pending = self.pool.submit(_encode, self.writer, group)

    def flush(self) -> None:
        """Write what is buffered as a (short) row group and wait until it is on disk."""
        if self.buffered:
            self._write(self.buffered)
        self._wait()

    def close(self) -> None:
        self.flush()
        if self.pool is not None:
            self.pool.shutdown()
        self.writer.close()
        self.writer = None  # its footer metadata (row groups x 4,000+ columns) is freed with it
        commit(self.tmp, self.path)
        log.debug("wrote %s: %d rows", self.path, self.rows)


def _conform(table, schema):  # noqa: ANN001, ANN202 - pyarrow Table, Schema
    """``table`` with the file's schema: only columns whose type differs are cast.

    Same result as ``table.cast(schema)``, which re-validates every one of 4,000+ columns (~90 ms a
    gene with 6-mers); here a column of the same type is passed through, checked only for nulls
    where the schema forbids them."""
    import pyarrow as pa

    if table.schema.equals(schema):
        return table
    if table.column_names != schema.names:
        return table.cast(schema)  # its error names the mismatch
    cols = []
    for col, f in zip(table.columns, schema):
        if col.type != f.type:
            col = col.cast(f.type)
        if not f.nullable and col.null_count:
            raise ValueError(f"column {f.name} holds {col.null_count} nulls but the schema forbids them")
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


@functools.cache
def _malloc_trim():  # noqa: ANN202 - ctypes function or None
    """glibc's ``malloc_trim``, looked up once (called after every row group); ``None`` where it is absent."""
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _trim_heap() -> None:
    """Return glibc's free heap pages to the OS (no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _encode(writer, group) -> None:  # noqa: ANN001 - pyarrow ParquetWriter, Table
    """One row group to disk, then the encoder's freed scratch back to the OS: it stays resident in the
    writer thread's heap otherwise (measured ~0.27 GB at the end of a 1,000-gene 6-mer batch)."""
    writer.write_table(group, row_group_size=group.num_rows)
    _trim_heap()


def release_memory() -> None:
    """Hand freed heap back to the OS: a closed writer's Parquet footer (4,000+ columns x row groups) is large."""
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()  # Arrow's allocator (mimalloc/jemalloc) keeps freed pages
    _trim_heap()
