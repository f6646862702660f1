"""``predict --sequences``: base-model scores of every nucleotide of arbitrary sequences (FASTA records).

Each record is padded with ``flank`` N on each side, as SpliceAI's README scores a sequence
(``'N' * 5000 + seq + 'N' * 5000``, the mean of the ensemble's outputs), and the model's outputs are
the positions with 5,000 nt of (padded) context on each side: with the default ``flank`` of 5,000
every nucleotide of the record; with less, a record's own first and last ``5,000 - flank`` nt serve
as context only (a record that already carries its context: ``flank 0``). Letters are read
case-insensitively (soft-masked bases score as upper-case ones); letters other than ACGTN (IUPAC
codes, gaps) are scored as N, counted in a warning.

Output: a table ``sequence`` (the record's name: the header's first word), ``position`` (1-based in
the record), ``neither``, ``acceptor``, ``donor`` (float32), records in file order: Parquet written
under a temporary name then renamed, or TSV on standard output for ``-``.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import DEFAULT_PREDICT, FLANK, BaseModelName, Device, Precision, Runtime
from ..errors import InputError
from ..progress import nucleotide_progress
from ..storage import arrow_position, arrow_string, guarded_write, is_stdio, publish_file, tmp_path_for
from .ensemble import load_base_model

log = logging.getLogger(__name__)

#: record nucleotides gathered before one call of the model (bounds memory, sets progress granularity)
_GROUP_NT = 1_000_000
_NOT_ACGTN = re.compile(r"[^ACGTN]")


@dataclass(frozen=True)
class FastaRecord:
    """One FASTA record: its name (the header's first word), upper-cased sequence and header line (1-based)."""

    name: str
    seq: str
    line: int


def read_fasta(path: str | os.PathLike[str]) -> Iterator[FastaRecord]:
    """The records of a FASTA file (plain, gzip or BGZF; ``-``: standard input), in file order.

    A file that does not start with ``>``, or two records of one name, is an InputError naming the line."""
    shown = "standard input" if is_stdio(path) else str(path)
    if is_stdio(path):
        raw: io.BufferedIOBase = sys.stdin.buffer  # type: ignore[assignment]
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"sequences not found: {p} (give a FASTA file, plain or gzip, with --sequences)")
        raw = open(p, "rb")  # noqa: SIM115 - closed below
    try:
        head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
        fh = io.TextIOWrapper(gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw, encoding="ascii",
                              errors="replace")
        name, line0, parts, seen = None, 0, [], {}
        try:
            for n, line in enumerate(fh, start=1):
                line = line.strip()
                if line.startswith(">"):
                    if name is not None:
                        yield FastaRecord(name, "".join(parts).upper(), line0)
                    name, line0, parts = (line[1:].split() or [""])[0], n, []
                    if not name:
                        raise InputError(f"{shown}, line {n}: a '>' header without a name; name every record")
                    if name in seen:
                        raise InputError(f"{shown}, line {n}: a second record named {name!r} (the first is on line "
                                         f"{seen[name]}); the output's sequence column must name one record")
                    seen[name] = n
                elif line and not line.startswith(";"):
                    if name is None:
                        raise InputError(f"{shown}, line {n}: sequence before any '>' header; is it a FASTA file?")
                    parts.append(line.replace(" ", ""))
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise InputError(f"{shown}: cannot read it ({err}); the file is truncated or corrupt") from None
        if name is None:
            raise InputError(f"{shown}: no FASTA record (no '>' header line)")
        yield FastaRecord(name, "".join(parts).upper(), line0)
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def scored_span(length: int, flank: int) -> tuple[int, int]:
    """1-based closed ``(first, last)`` positions of a record of ``length`` nt that get a score with ``flank``
    N of padding (``first > last``: none)."""
    own = FLANK - flank  # context the record's own ends must give
    return own + 1, length - own


def predict_sequences(
    *,
    sequences: str | os.PathLike[str],
    out: str | os.PathLike[str],
    flank: int = FLANK,
    base_model: BaseModelName = DEFAULT_PREDICT.base_model,
    weights: Path | None = None,
    device: Device = DEFAULT_PREDICT.device,
    precision: Precision = DEFAULT_PREDICT.precision,
    chunk_size: int = DEFAULT_PREDICT.chunk_size,
    batch_size: int = DEFAULT_PREDICT.batch_size,
    runtime: Runtime = DEFAULT_PREDICT.runtime,
    progress: bool = True,
) -> dict[str, object]:
    """Score every nucleotide of every record of ``sequences`` into ``out`` (Parquet; ``-``: TSV on stdout).

    ``flank``: N added on each side of each record (0-5,000; 5,000 as SpliceAI's README). Returns a summary
    (records, nucleotides scored, records too short to score, seconds, nt/s)."""
    if not 0 <= flank <= FLANK:
        raise InputError(f"--flank must be between 0 and {FLANK}, got {flank}")
    for flag, value in (("--batch-size", batch_size), ("--chunk-size", chunk_size)):
        if value < 1:
            raise InputError(f"{flag} must be a positive number, got {value}")
    to_stdout = is_stdio(out)
    if not to_stdout and Path(out).is_dir():
        raise InputError(f"-o {out} is a folder; with --sequences give a Parquet file to write (or - for TSV)")
    records = read_fasta(sequences)
    first = next(records)  # errors in the input before the model loads
    model = load_base_model(base_model, weights=weights, device=device, precision=precision, chunk_size=chunk_size,
                            batch_size=batch_size, runtime=runtime)
    summary: dict[str, object] = {"sequences": 0, "nt_scored": 0, "too_short": [], "other_letters": 0}
    t0 = time.perf_counter()
    with _Writer(out, tuple(model.columns)) as writer, nucleotide_progress(progress) as bar:
        task = bar.add_task(f"predict --sequences {model.name}", total=None, unit="nt", genes="")
        group: list[FastaRecord] = []

        def run() -> None:
            inputs = ["N" * flank + _NOT_ACGTN.sub("N", r.seq) + "N" * flank for r in group]
            probs = model.predict(inputs, batch_size=batch_size, on_progress=lambda nt: bar.update(task, advance=nt))
            for r, p in zip(group, probs):
                writer.write(r.name, scored_span(len(r.seq), flank)[0], p)
                summary["nt_scored"] += len(p)  # type: ignore[operator]
            group.clear()

        for rec in _chain(first, records):
            summary["sequences"] += 1  # type: ignore[operator]
            summary["other_letters"] += len(_NOT_ACGTN.findall(rec.seq))  # type: ignore[operator]
            a, b = scored_span(len(rec.seq), flank)
            if b < a:
                summary["too_short"].append(rec.name)  # type: ignore[union-attr]
                continue
            group.append(rec)
            if sum(len(r.seq) for r in group) >= _GROUP_NT:
                run()
        if group:
            run()
    seconds = time.perf_counter() - t0
    short = summary["too_short"]
    if short:
        log.warning("%d record(s) shorter than %d nt get no score with --flank %d (each needs %d nt of context "
                    "each side): %s", len(short), 2 * (FLANK - flank) + 1, flank, FLANK, ", ".join(short[:10]))  # type: ignore[arg-type]
    if summary["other_letters"]:
        log.warning("%d letter(s) other than ACGTN scored as N", summary["other_letters"])
    summary.update(out=str(out), base_model=model.name, seconds=round(seconds, 3),
                   nt_per_s=round(summary["nt_scored"] / seconds, 1) if seconds > 0 else None)  # type: ignore[operator]
    return summary


def _chain(first: FastaRecord, rest: Iterator[FastaRecord]) -> Iterator[FastaRecord]:
    yield first
    yield from rest


class _Writer:
    """Rows to a Parquet file under a temporary name (renamed on success), or TSV to standard output."""

    def __init__(self, out: str | os.PathLike[str], columns: tuple[str, ...]) -> None:
        self.out = out
        self.columns = columns  # the base model's own outputs (BASE_MODEL_OUTPUTS)
        self.tsv = is_stdio(out)
        self.pq = None
        self.tmp: Path | None = None

    def __enter__(self) -> _Writer:
        if self.tsv:
            sys.stdout.write("\t".join(("sequence", "position", *self.columns)) + "\n")
        return self

    def write(self, name: str, first: int, probs: np.ndarray) -> None:
        """One record's scores; ``first``: the 1-based position of ``probs``' first row."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        n = probs.shape[0]
        table = pa.table({
            "sequence": pa.array([name] * n, arrow_string()),
            "position": pa.array(np.arange(first, first + n, dtype=np.int64), arrow_position()),
            **{c: pa.array(np.ascontiguousarray(probs[:, i], dtype=np.float32)) for i, c in enumerate(self.columns)},
        })
        if self.tsv:
            import polars as pl

            pl.from_arrow(table).write_csv(sys.stdout, separator="\t", include_header=False)  # type: ignore[union-attr]
            return
        if self.pq is None:
            self.tmp = tmp_path_for(Path(self.out))
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self.pq = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        guarded_write(self.tmp, Path(self.out), lambda: self.pq.write_table(table))  # type: ignore[union-attr,arg-type]

    def __exit__(self, kind, value, tb) -> None:  # noqa: ANN001
        if self.tsv:
            sys.stdout.flush()
            return
        if self.pq is None and kind is None:  # no record long enough: an empty table of the same columns
            self.write("", 1, np.zeros((0, len(self.columns)), dtype=np.float32))
        if self.pq is not None:
            self.pq.close()
        if kind is None and self.tmp is not None:
            publish_file(self.tmp, self.out)
        elif self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
