"""Scale-out: local workers and Ray give the same files as a serial run, and lose nothing to a killed worker."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from meta_spliceai.dataset.builder import build
from meta_spliceai.dataset.folder import batch_paths, read_manifest
from meta_spliceai.errors import InputError
from meta_spliceai.parallel import ParallelOptions, parallel_options, run_units

FAST = {"kmer_sizes": (2,), "subset_policy": "all", "batch_size": 5}


def _ref(bundle):
    return {"fasta": bundle / "genome.fa.gz", "gtf": bundle / "annotation.gtf"}


def _checksums(out) -> dict[str, str]:
    return {b: e["checksum"] for b, e in read_manifest(out)["batches"].items()}


def _same_build(out, clean) -> None:
    """Same manifest (batches, rows, checksums, in the same order) and the same master bytes."""
    assert read_manifest(out) == read_manifest(clean)
    for b in range(len(read_manifest(clean)["batches"])):
        assert batch_paths(out, b)["master"].read_bytes() == batch_paths(clean, b)["master"].read_bytes()
    assert not list((out / "batches").glob(".*tmp*")) and not list((out / "master").glob(".*tmp*"))


@pytest.fixture(scope="module")
def serial_build(tmp_path_factory, chr22, keras_store):
    out = tmp_path_factory.mktemp("serial") / "out"
    build(output_dir=out, predictions=keras_store, progress=False, **_ref(chr22), **FAST)
    return out


def test_two_workers_give_the_serial_build_with_one_progress_display(tmp_path, chr22, keras_store, serial_build,
                                                                     capsys, monkeypatch):
    monkeypatch.setenv("META_SPLICEAI_PROGRESS_INTERVAL", "0.2")
    out = tmp_path / "out"
    summary = build(output_dir=out, predictions=keras_store, workers=2, progress=True, **_ref(chr22), **FAST)
    assert summary.built == 4 and summary.n_batches == 4
    _same_build(out, serial_build)
    lines = [x for x in capsys.readouterr().err.splitlines() if " progress: " in x]
    assert lines and "batches (2 workers) 4/4" in lines[-1]
    assert "rows/s" in lines[-1] and "w1:" in lines[-1] and "done in" in lines[-1]
    assert not any("batch 0: genes" in x for x in lines)  # one display for the run, not one per worker


def test_killed_worker_is_rerun_and_the_build_equals_a_clean_one(tmp_path, chr22, keras_store, serial_build,
                                                                 monkeypatch):
    """A worker SIGKILLed after writing its first raw row group: its batch is rebuilt by a fresh worker."""
    monkeypatch.setenv("META_SPLICEAI_FAULT", f"raw_write:1@{tmp_path / 'fired'}")
    out = tmp_path / "out"
    summary = build(output_dir=out, predictions=keras_store, workers=2, progress=False, **_ref(chr22), **FAST)
    assert (tmp_path / "fired").exists()  # a worker really was killed
    assert summary.built == 4
    _same_build(out, serial_build)


@pytest.mark.slow
def test_workers_dying_every_time_fail_in_one_line_and_a_rerun_resumes(tmp_path, chr22, keras_store, serial_build):
    out = tmp_path / "out"
    args = [sys.executable, "-m", "meta_spliceai", "build", "-o", str(out), "--predictions", str(keras_store),
            "--fasta", str(chr22 / "genome.fa.gz"), "--gtf", str(chr22 / "annotation.gtf"), "--subset-policy", "all",
            "--batch-size", "5", "--kmer-sizes", "2", "--workers", "2"]
    import os

    r = subprocess.run(args, env={**os.environ, "META_SPLICEAI_FAULT": "before_link:1"}, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr.strip().splitlines()[-1]
    assert "worker process died" in err and "re-run the same command to resume" in err and "Traceback" not in r.stderr
    assert not read_manifest(out).get("complete")
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    _same_build(out, serial_build)


def test_run_units_keeps_unit_order_and_reraises_errors():
    opts = ParallelOptions(workers=1)
    seen = []
    assert run_units(abs, [-3, 2, -1], opts, on_result=lambda i, r, w: seen.append((i, r))) == [3, 2, 1]
    assert seen == [(0, 3), (1, 2), (2, 1)]
    with pytest.raises(TypeError):
        run_units(abs, ["x"], opts)


def test_bad_scale_out_flags_are_one_line_errors(monkeypatch):
    for kwargs, words in (({"workers": 0}, "--workers 0"), ({"threads_per_worker": 0}, "--threads-per-worker 0"),
                          ({"ray_address": "127.0.0.1:6379"}, "needs --executor ray"),
                          ({"executor": "dask"}, "--executor 'dask'")):
        args = {"workers": 1, "executor": "local", "ray_address": None, "threads_per_worker": None, **kwargs}
        with pytest.raises(InputError, match=words):
            parallel_options(**args)
    opts, notes = parallel_options(workers=8, executor="local", ray_address=None, threads_per_worker=None,
                                   n_units=3, what="genes")
    assert opts.workers == 3 and notes == ["--workers 8 > 3 genes to do: using 3 worker(s)"]
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(InputError, match=r"pip install 'meta-spliceai\[ray\]'"):
        parallel_options(workers=1, executor="ray", ray_address=None, threads_per_worker=None)


def test_threads_per_worker_share_the_cores():
    from meta_spliceai.parallel import usable_cores

    assert ParallelOptions(workers=1).threads == usable_cores()
    assert ParallelOptions(workers=usable_cores() * 2).threads == 1
    assert ParallelOptions(workers=2, threads_per_worker=3).threads == 3


def _cli_build(tmp_path, chr22) -> list[str]:
    return [sys.executable, "-m", "meta_spliceai", "build", "-o", str(tmp_path / "out"),
            "--fasta", str(chr22 / "genome.fa.gz"), "--gtf", str(chr22 / "annotation.gtf")]


def test_cli_workers_zero_exits_2(tmp_path, chr22):
    r = subprocess.run([*_cli_build(tmp_path, chr22), "--workers", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--workers 0" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_cli_unreachable_ray_address_fails_in_seconds_naming_it(tmp_path, chr22):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = _cli_build(tmp_path, chr22)
    t0 = time.monotonic()
    r = subprocess.run([*base, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"--ray-address 127.0.0.1:{port}" in r.stderr and "no Ray cluster reachable" in r.stderr
    assert time.monotonic() - t0 < 60  # seconds of start-up on a busy machine, not Ray's minutes of retries
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- Ray


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One local Ray cluster for the session. Its worker processes inherit the environment of ``ray.init``:
    the fault point is armed there, to fire once (marker file) at the first raw row group written by a task."""
    import logging

    ray = pytest.importorskip("ray")
    marker = tmp_path_factory.mktemp("ray") / "fired"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("META_SPLICEAI_FAULT", f"raw_write:1@{marker}")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield marker
    ray.shutdown()


@pytest.mark.slow
def test_ray_build_with_a_killed_worker_equals_the_serial_build(tmp_path, chr22, keras_store, serial_build,
                                                                ray_cluster):
    """A Ray worker process SIGKILLed mid-batch: Ray retries the task; the build equals a serial one."""
    out = tmp_path / "out"
    summary = build(output_dir=out, predictions=keras_store, executor="ray", workers=2, progress=False,
                    **_ref(chr22), **FAST)
    assert summary.built == 4
    _same_build(out, serial_build)
    assert ray_cluster.exists(), "no Ray worker was killed"


@pytest.mark.slow
def test_predict_workers_and_ray_give_the_serial_store(tmp_path, chr22, ray_cluster):
    """A real SpliceAI model (one of the five, to keep it fast) on three short chr22 genes: serial,
    --workers 2 and Ray write the same files."""
    from meta_spliceai.basemodel.ensemble import _spliceai_files
    from meta_spliceai.basemodel.predict import predict

    genes = ["CCDC188", "TRMT2A", "GGTLC3"]
    stores = {}
    for name, kw in (("serial", {}), ("workers", {"workers": 2}), ("ray", {"executor": "ray", "workers": 2})):
        out = tmp_path / name
        res = predict(out=out, genes=genes, device="cpu", weights=_spliceai_files()[0], progress=False, **_ref(chr22),
                      **kw)
        assert res["genes_predicted"] == 3
        stores[name] = {f.name: f.read_bytes() for f in sorted(out.glob("*.parquet"))}
        assert not (tmp_path / f".{name}.tmp").exists()
    assert len(stores["serial"]) == 3
    assert stores["workers"] == stores["serial"] and stores["ray"] == stores["serial"]


@pytest.mark.slow
def test_apply_workers_and_ray_give_the_serial_outputs(tmp_path, chr22, chr22_model, keras_store, ray_cluster):
    """apply (k-mer model, every chr22 gene) serial, --workers 2 and Ray: same corrected store and calls."""
    from meta_spliceai.metamodel.correction import apply

    outs = {}
    for name, kw in (("serial", {}), ("workers", {"workers": 2}), ("ray", {"executor": "ray", "workers": 2})):
        out = tmp_path / name
        res = apply(model=chr22_model[0], predictions=keras_store, out=out, progress=False, **_ref(chr22), **kw)
        assert res["corrected_now"] == res["genes"] > 10
        outs[name] = {f.name: f.read_bytes() for f in sorted((out / "scores").glob("*.parquet"))}
        outs[name] |= {f: (out / f).read_bytes() for f in ("calls.tsv", "calls.bed")}
    assert len(outs["serial"]) > 12
    assert outs["workers"] == outs["serial"] and outs["ray"] == outs["serial"]
