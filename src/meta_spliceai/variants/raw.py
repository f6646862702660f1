"""``variants --raw-scores OUT.parquet``: the reference and alternate scores behind every delta.

One row per scored (record, allele, gene) and position of its ±D window, in input order:

- ``record`` (1-based ordinal of the record in the input VCF), ``chrom``, ``pos`` (the record's, 1-based),
  ``ref``, ``alt`` (the allele), ``gene`` (the SYMBOL of its SpliceAI entry);
- ``position``: the genome position (1-based), ``pos - D .. pos + D``;
- ``ref_acceptor``, ``ref_donor``, ``alt_acceptor``, ``alt_donor`` (float32): the base model's outputs the
  deltas are taken from, as the cone engine computed them; the alternate ones aligned to the reference's
  positions as SpliceAI aligns them (a deletion's deleted bases 0, an insertion's inserted bases merged
  by their maximum at its position), so ``DS_AG = max(alt_acceptor - ref_acceptor)`` over a window;
- with ``--model``: ``meta_ref_acceptor`` … ``meta_alt_donor``, the corrected ones (null where the gene has
  no stored track).

Per chunk of records a part file is written (temporary name, then renamed) beside the VCF's chunks, so a
resumed run keeps them; the parts are joined into ``OUT`` under a temporary name, then renamed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..storage import arrow_position, arrow_string, commit, guarded_write, tmp_path_for
from .deltas import ACCEPTOR, DONOR, RawTracks, Record

#: track columns: (name, which of (ref, alt), model output)
TRACKS = (("ref_acceptor", 0, ACCEPTOR), ("ref_donor", 0, DONOR), ("alt_acceptor", 1, ACCEPTOR), ("alt_donor", 1, DONOR))


def schema(meta: bool):  # -> pyarrow.Schema
    import pyarrow as pa

    s, i = arrow_string(), arrow_position()
    cols = [("record", i), ("chrom", s), ("pos", i), ("ref", s), ("alt", s), ("gene", s), ("position", i)]
    cols += [(name, pa.float32()) for name, _, _ in TRACKS]
    if meta:
        cols += [(f"meta_{name}", pa.float32()) for name, _, _ in TRACKS]
    return pa.schema(cols)


def raw_table(rows: Sequence[tuple[int, Record, RawTracks]], distance: int, meta: bool):  # -> pyarrow.Table
    """The rows of ``(record ordinal (1-based), record, tracks)`` triples, one per position of each window."""
    import pyarrow as pa

    cov = 2 * distance + 1
    n = len(rows) * cov
    col: dict[str, object] = {
        "record": np.repeat(np.array([o for o, _, _ in rows], dtype=np.int64), cov),
        "chrom": np.repeat(np.array([r.chrom for _, r, _ in rows], dtype=object), cov),
        "pos": np.repeat(np.array([r.pos for _, r, _ in rows], dtype=np.int64), cov),
        "ref": np.repeat(np.array([r.ref for _, r, _ in rows], dtype=object), cov),
        "alt": np.repeat(np.array([r.alts[t.allele] for _, r, t in rows], dtype=object), cov),  # type: ignore[index]
        "gene": np.repeat(np.array([t.gene for _, _, t in rows], dtype=object), cov),
        "position": (np.repeat(np.array([r.pos for _, r, _ in rows], dtype=np.int64), cov)
                     + np.tile(np.arange(-distance, distance + 1, dtype=np.int64), len(rows))),
    }
    for name, side, k in TRACKS:
        col[name] = (np.concatenate([(t.ref, t.alt)[side][:, k] for _, _, t in rows]).astype(np.float32)
                     if rows else np.zeros(0, np.float32))
        if meta:
            vals = [(t.corrected[side][:, k] if t.corrected is not None else np.full(cov, np.nan, np.float32))
                    for _, _, t in rows]
            arr = np.concatenate(vals).astype(np.float32) if rows else np.zeros(0, np.float32)
            col[f"meta_{name}"] = pa.array(arr, mask=np.isnan(arr) if n else None)
    sch = schema(meta)
    return pa.table({f.name: pa.array(col[f.name], f.type) if not isinstance(col[f.name], pa.Array) else col[f.name]
                     for f in sch}, schema=sch)


def write_part(path: Path, table) -> None:  # noqa: ANN001 - pyarrow.Table
    """One chunk's rows, written under a temporary name then renamed."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def assemble(out: Path, parts: Sequence[Path], meta: bool) -> None:
    """Every chunk's part, in order, into ``out`` (temporary name, then renamed)."""
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(out)

    def write() -> None:
        with pq.ParquetWriter(tmp, schema(meta), compression="zstd") as w:
            for p in parts:
                w.write_table(pq.read_table(p))

    guarded_write(tmp, out, write)
    commit(tmp, out)
