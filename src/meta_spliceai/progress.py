"""Progress displays: a rich bar on a terminal, plain periodic lines when stderr is redirected.

Cluster jobs send stderr to a file, where a live bar shows nothing until the end (or garbage).
There, :class:`PlainProgress` writes one line per period (``config.PROGRESS_INTERVAL_S``, or the
``META_SPLICEAI_PROGRESS_INTERVAL`` environment variable, in seconds) from a background thread, so a
line appears even while one long step runs: every task with its count, total, rate and ETA.
Both displays write to stderr only; stdout stays free for results.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from .config import PROGRESS_INTERVAL_S

_INTERVAL_ENV = "META_SPLICEAI_PROGRESS_INTERVAL"


def progress_interval() -> float:
    """Seconds between two plain progress lines."""
    try:
        return max(float(os.environ.get(_INTERVAL_ENV, PROGRESS_INTERVAL_S)), 0.05)
    except ValueError:
        return float(PROGRESS_INTERVAL_S)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class _Task:
    description: str
    total: float | None
    fields: dict[str, object]
    completed: float = 0.0
    start: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        done = f"{self.completed:,.0f}" + (f"/{self.total:,.0f}" if self.total else "")
        unit = self.fields.get("unit")
        parts = [f"{self.description} {done}{f' {unit}' if unit else ''}"]
        parts += [str(v) for k, v in self.fields.items() if k != "unit" and v not in ("", None)]
        elapsed = time.monotonic() - self.start
        if unit and elapsed > 0:
            parts.append(f"{self.completed / elapsed:,.0f} {unit}/s")
        if self.total:
            if 0 < self.completed < self.total:
                parts.append(f"ETA {_duration(elapsed / self.completed * (self.total - self.completed))}")
            elif self.completed >= self.total:
                parts.append(f"done in {_duration(elapsed)}")
            else:
                parts.append("ETA ?")
        return ", ".join(parts)


class PlainProgress:
    """The subset of ``rich.progress.Progress`` the stages use, printed as plain timestamped lines."""

    def __init__(self, stream: TextIO | None = None, interval: float | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = progress_interval() if interval is None else interval
        self.tasks: dict[int, _Task] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_id = 0

    def __bool__(self) -> bool:
        return True

    def __enter__(self) -> PlainProgress:
        self._thread = threading.Thread(target=self._run, name="meta-spliceai-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if exc[0] is None:
            self.emit()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.emit()

    def emit(self) -> None:
        """Write one line describing every running task."""
        with self._lock:
            if not self.tasks:
                return
            text = "; ".join(t.line() for t in self.tasks.values())
        try:
            self.stream.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} progress: {text}\n")
            self.stream.flush()
        except (OSError, ValueError):  # stream closed under us: progress is best effort
            pass

    def add_task(self, description: str, total: float | None = None, **fields: object) -> int:
        with self._lock:
            tid = self._next_id
            self._next_id += 1
            self.tasks[tid] = _Task(description, total, dict(fields))
        self.emit()  # a line as each task starts, then one per period
        return tid

    def update(self, task_id: int, *, advance: float = 0, completed: float | None = None,
               total: float | None = None, description: str | None = None, **fields: object) -> None:
        with self._lock:
            t = self.tasks.get(task_id)
            if t is None:
                return
            t.completed = completed if completed is not None else t.completed + advance
            if total is not None:
                t.total = total
            if description is not None:
                t.description = description
            t.fields.update(fields)

    def remove_task(self, task_id: int) -> None:
        self.emit()
        with self._lock:
            self.tasks.pop(task_id, None)


class NullProgress:
    """No display (``progress=False``): every call is a no-op; falsy, so ``if bar:`` skips work."""

    def __bool__(self) -> bool:
        return False

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: object) -> int:
        return 0

    def update(self, task_id: int, **kwargs: object) -> None:
        return None

    def remove_task(self, task_id: int) -> None:
        return None


def stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress_display(columns: Sequence[object], *, enabled: bool = True):  # noqa: ANN201
    """A progress display on stderr: rich ``columns`` on a terminal, plain lines otherwise, or nothing."""
    if not enabled:
        return NullProgress()
    if not stderr_is_terminal():
        return PlainProgress()
    from rich.console import Console
    from rich.progress import Progress

    return Progress(*columns, console=Console(stderr=True))


__all__ = ["progress_display", "PlainProgress", "NullProgress", "progress_interval", "stderr_is_terminal"]


def count_progress(enabled: bool = True):  # noqa: ANN201
    """Counted work (batches and their genes, genes of a command): bar, count, rate, elapsed, ETA.

    Each task carries a ``rate`` field (text, e.g. ``"3,300 rows/s"``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return progress_display([TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                             TimeRemainingColumn()], enabled=enabled)


def nucleotide_progress(enabled: bool = True):  # noqa: ANN201
    """Nucleotides scored (percentage, genes done, knt/s, ETA); tasks carry a ``genes`` text field."""
    from rich.progress import BarColumn, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class NtRate(ProgressColumn):
        def render(self, task):  # noqa: ANN001, ANN202
            speed = task.finished_speed or task.speed or (task.completed / task.elapsed if task.elapsed else None)
            return Text(f"{speed / 1e3:,.1f} knt/s" if speed else "? knt/s")

    return progress_display([TextColumn("[bold]{task.description}"), BarColumn(),
                             TextColumn("{task.percentage:>5.1f}%"), TextColumn("{task.fields[genes]}"), NtRate(),
                             TimeRemainingColumn()], enabled=enabled)
