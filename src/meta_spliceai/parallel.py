"""Scale-out: run a list of independent units of work in local worker processes or as Ray tasks.

A *unit* is a picklable object and ``fn(unit)`` a module-level function that does its work and
writes its own output file(s) atomically (temporary name, then rename), returning a small picklable
result. The parent is the only writer of shared state (a build's plan and manifest): it receives each
result as it arrives (``on_result``) and records it. Units must be independent: the same unit gives
the same files whichever process runs it, so a unit lost with a killed worker is simply run again.

- ``executor="local"``, ``workers=1``: the units run one by one in this process.
- ``executor="local"``, ``workers=N``: N spawned processes (``concurrent.futures``); a worker killed
  mid-unit breaks the pool, which is restarted for the units not yet finished (up to ``max_retries``
  restarts in a row without progress, then a one-line error: a re-run resumes).
- ``executor="ray"``: one Ray task per unit (``max_retries`` for a dead worker, ``num_gpus=1`` per task
  on CUDA, else ``num_cpus`` = threads per worker) on the cluster at ``ray_address``, or on a local
  cluster of ``workers`` x threads CPUs. Ray schedules and retries; outputs must be on a path every
  node shares.

Each worker process keeps what it loads (a model, a genome) in :func:`worker_cache`, so a model is
loaded once per process, not once per unit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import DEFAULT_PARALLEL, EXECUTORS, Executor
from .errors import InputError, MetaSpliceAIError

log = logging.getLogger(__name__)

#: environment variables that size the thread pools of numpy/BLAS, torch, ONNX Runtime and polars
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS")
RAY_EXTRA = "pip install 'meta-spliceai[ray]'"


class WorkerDiedError(MetaSpliceAIError):
    """A worker process died (killed, out of memory) more often than the retries allow."""


@dataclass(frozen=True)
class ParallelOptions:
    """How units run: ``workers`` processes (local) or Ray tasks, each with ``threads`` threads."""

    workers: int = DEFAULT_PARALLEL.workers
    executor: Executor = DEFAULT_PARALLEL.executor
    ray_address: str | None = None
    threads_per_worker: int | None = None
    max_retries: int = DEFAULT_PARALLEL.max_retries
    gpus_per_task: float = 0.0

    @property
    def serial(self) -> bool:
        return self.executor == "local" and self.workers == 1

    @property
    def threads(self) -> int:
        """Threads per worker: as given, else the usable cores shared out so N workers never oversubscribe."""
        if self.threads_per_worker is not None:
            return self.threads_per_worker
        return max(1, usable_cores() // max(1, self.workers))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parallel_options(*, workers: int, executor: str, ray_address: str | None, threads_per_worker: int | None,
                     device: str = "cpu", n_units: int | None = None, what: str = "units") -> tuple[ParallelOptions, list[str]]:
    """Validate the scale-out flags; returns the options and notes for the user (e.g. workers capped).

    ``n_units`` (when known) caps ``workers`` at the number of units, with a note.
    """
    notes: list[str] = []
    if executor not in EXECUTORS:
        raise InputError(f"--executor {executor!r}: choose one of {', '.join(EXECUTORS)}")
    if workers < 1:
        raise InputError(f"--workers {workers}: give at least 1 worker process (1 runs in this process)")
    if threads_per_worker is not None and threads_per_worker < 1:
        raise InputError(f"--threads-per-worker {threads_per_worker}: give at least 1 thread")
    if ray_address is not None and executor != "ray":
        raise InputError(f"--ray-address {ray_address} needs --executor ray")
    if n_units is not None and executor == "local" and workers > max(n_units, 1):
        notes.append(f"--workers {workers} > {n_units} {what} to do: using {max(n_units, 1)} worker(s)")
        workers = max(n_units, 1)
    if executor == "ray":
        import_ray()  # fail now, before any work, when the extra is missing
        if ray_address is not None:
            _check_address(ray_address)
    gpus = 1.0 if executor == "ray" and device == "cuda" else 0.0
    return ParallelOptions(workers=workers, executor=executor, ray_address=ray_address,  # type: ignore[arg-type]
                           threads_per_worker=threads_per_worker, gpus_per_task=gpus), notes


# --------------------------------------------------------------------------- worker side

_CACHE: dict[object, object] = {}


def worker_cache(key: object, factory: Callable[[], object]) -> Any:  # noqa: ANN401
    """What this process already loaded under ``key`` (a model, a genome), made by ``factory`` the first time."""
    if key not in _CACHE:
        _CACHE[key] = factory()
    return _CACHE[key]


def set_threads(threads: int) -> None:
    """Size this process's thread pools (environment for libraries not yet imported; torch directly)."""
    for var in THREAD_ENV:
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:  # loaded already: its pool is sized by now
        torch.set_num_threads(threads)


def _init_worker(threads: int) -> None:
    set_threads(threads)


def _call(fn: Callable[[Any], Any], unit: Any, threads: int) -> tuple[str, Any]:  # noqa: ANN401
    """Run one unit in a worker; returns (worker label, result)."""
    set_threads(threads)
    return f"{socket.gethostname()}:{os.getpid()}", fn(unit)


@contextlib.contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """Thread-pool sizes in the environment while worker processes start (they inherit it)."""
    old = {v: os.environ.get(v) for v in THREAD_ENV}
    os.environ.update({v: str(threads) for v in THREAD_ENV})
    try:
        yield
    finally:
        for v, val in old.items():
            if val is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = val


# --------------------------------------------------------------------------- parent side

OnResult = Callable[[int, Any, str], None]


def run_units(fn: Callable[[Any], Any], units: Sequence[Any], opts: ParallelOptions, *,
              on_result: OnResult | None = None, what: str = "unit") -> list[Any]:
    """Run ``fn`` over ``units`` as ``opts`` says; results in unit order.

    ``on_result(index, result, worker)`` runs in this process as each unit finishes (any order), so the
    caller can record it (single writer). Errors raised by ``fn`` (e.g. InputError) are raised here.
    """
    results: list[Any] = [None] * len(units)

    def record(i: int, res: Any, worker: str) -> None:  # noqa: ANN401
        results[i] = res
        if on_result is not None:
            on_result(i, res, worker)

    if not units:
        return results
    if opts.serial:
        for i, u in enumerate(units):
            record(i, fn(u), "main")
    elif opts.executor == "local":
        _run_local(fn, units, opts, record, what)
    else:
        _run_ray(fn, units, opts, record, what)
    return results


def _run_local(fn: Callable, units: Sequence[Any], opts: ParallelOptions, record: OnResult, what: str) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pending = dict(enumerate(units))
    threads = opts.threads
    idle_breaks = 0
    while pending:
        n = min(opts.workers, len(pending))
        log.info("starting %d worker processes (%d threads each) for %d %s", n, threads, len(pending), _plural(what))
        with _thread_env(threads):  # spawned workers inherit it before importing anything
            pool = ProcessPoolExecutor(n, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                       initargs=(threads,))
            futures = {pool.submit(_call, fn, u, threads): i for i, u in pending.items()}
        broken, progressed = False, False
        try:
            remaining = set(futures)
            while remaining and not broken:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for fut in done:
                    try:
                        worker, res = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    i = futures[fut]
                    del pending[i]
                    progressed = True
                    record(i, res, worker)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if not broken:
            continue
        idle_breaks = 0 if progressed else idle_breaks + 1
        first = min(pending)
        if idle_breaks > opts.max_retries:
            raise WorkerDiedError(
                f"a worker process died {idle_breaks} times in a row with {len(pending)} {_plural(what)} left (first: "
                f"{what} {first}), killed or out of memory?; finished {_plural(what)} are kept: re-run the same command "
                "to resume (fewer --workers lowers memory)")
        log.warning("a worker process died (killed or out of memory?): restarting the workers for the %d %s "
                    "not finished", len(pending), _plural(what))


def _plural(word: str) -> str:
    return word + ("es" if word.endswith(("ch", "sh", "s", "x")) else "s")


def import_ray():  # noqa: ANN201
    """The ``ray`` module, or a one-line error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--executor ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def _check_address(address: str, timeout: float = 3.0) -> None:
    """Fail fast (seconds, not Ray's minutes of retries) when nothing listens at a ``host:port`` address."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise InputError(f"--ray-address {address}: give HOST:PORT of the Ray head (e.g. 10.0.0.1:6379), "
                         "ray://HOST:10001, or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise InputError(f"--ray-address {address}: no Ray cluster reachable there ({err.strerror or err}); "
                         "check the address and that the head node is running (ray start --head)") from None


@contextlib.contextmanager
def ray_session(opts: ParallelOptions) -> Iterator[Any]:
    """Ray connected to ``opts.ray_address`` (or an already initialised Ray, or a new local cluster)."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if opts.ray_address is not None:
        _check_address(opts.ray_address)
        kwargs: dict[str, Any] = {"address": opts.ray_address}
    else:
        kwargs = {"num_cpus": opts.workers * opts.threads, "include_dashboard": False}
    try:
        ray.init(logging_level=logging.WARNING, log_to_driver=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = opts.ray_address or "a local cluster"
        raise InputError(f"could not start Ray on {where}: {' '.join(str(err).split())[:300]}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _run_ray(fn: Callable, units: Sequence[Any], opts: ParallelOptions, record: OnResult, what: str) -> None:
    threads = opts.threads
    with ray_session(opts) as ray:
        resources = {"num_gpus": opts.gpus_per_task} if opts.gpus_per_task else {"num_cpus": threads}
        task = ray.remote(_call).options(max_retries=opts.max_retries, retry_exceptions=False, **resources)
        refs = {task.remote(fn, u, threads): i for i, u in enumerate(units)}
        log.info("submitted %d %s as Ray tasks (%s)", len(refs), _plural(what), resources)
        try:
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1)
                for ref in done:
                    i = refs.pop(ref)
                    try:
                        worker, res = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:
                        cause = err.cause if isinstance(err.cause, BaseException) else None
                        if isinstance(cause, MetaSpliceAIError):
                            raise cause from None
                        raise
                    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as err:
                        raise WorkerDiedError(
                            f"{what} {i}: its Ray worker died {opts.max_retries + 1} times ({type(err).__name__}); "
                            "finished units are kept: re-run the same command to resume") from None
                    record(i, res, worker)
        finally:
            for ref in refs:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)


# --------------------------------------------------------------------------- progress


@dataclass
class RunProgress:
    """One display for a parallel run: units done (per worker), rows/s or nt/s, ETA."""

    bar: Any
    task: int
    unit: str = "rows"
    per_worker: dict[str, int] = field(default_factory=dict)
    amount: float = 0.0
    t0: float = field(default_factory=time.monotonic)

    def done(self, worker: str, amount: float = 0.0, advance: float = 1.0) -> None:
        self.per_worker[worker] = self.per_worker.get(worker, 0) + 1
        self.amount += amount
        rate = self.amount / max(time.monotonic() - self.t0, 1e-9)
        labels = {w: f"w{k + 1}" for k, w in enumerate(self.per_worker)}
        shown = " ".join(f"{labels[w]}:{n}" for w, n in self.per_worker.items())
        self.bar.update(self.task, advance=advance, rate=f"{rate:,.0f} {self.unit}/s", workers=shown)


def run_progress(enabled: bool, description: str, total: float, unit: str = "rows") -> tuple[Any, Callable[[Any], RunProgress]]:
    """(display, start): ``with display as bar: tracker = start(bar)`` then ``tracker.done(worker, amount)``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .progress import progress_display

    display = progress_display([TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[workers]}"),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()], enabled=enabled)

    def start(bar: Any) -> RunProgress:  # noqa: ANN401
        task = bar.add_task(description, total=total, rate="", workers="")
        return RunProgress(bar, task, unit)

    return display, start


__all__ = ["ParallelOptions", "parallel_options", "run_units", "worker_cache", "set_threads", "ray_session",
           "import_ray", "WorkerDiedError", "run_progress", "usable_cores"]
