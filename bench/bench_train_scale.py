"""Benchmark (issue 21): ``train`` on a genome-scale build, then ``apply`` of its model to the chr22 bundle.

    python bench/bench_train_scale.py --build BUILD --out OUT [--train-args "..."] [--apply]

- ``train``: ``python -m meta_spliceai train BUILD -o OUT/model TRAIN_ARGS`` in a subprocess: wall, CPU (user +
  system) and peak RSS (``ru_maxrss``) from ``os.wait4``; the process tree's summed RSS and the bytes under the
  model folder (its scratch: ``.rows``, ``.xgb-cache``) polled every second; then the figures ``train`` records
  in ``metrics.json`` (scratch estimate and real size of the rows, timings of each step, rows, features, rounds and
  seconds per round of each model, in-memory or external matrix) and its headline comparison;
- ``--apply``: the chr22 bundle's genes predicted into OUT/chr22_store (``predict``, timed on its own), then
  ``apply OUT/model --predictions OUT/chr22_store --evaluate`` (wall, CPU, peak RSS, nt/s over the genes' bodies).

One JSON record per invocation is appended to ``--results`` (default bench/results/train_scale.jsonl).
Build input: ``bench/make_synthetic_build_input.py --n-genes 20000`` and ``bench/bench_build.py --n-genes 20000
--keep-output`` (6-mers, the default feature sets).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHR22 = ROOT.parent / "shared" / "data" / "grch37_chr22_20-21Mb"
RESULTS = ROOT / "bench" / "results" / "train_scale.jsonl"
sys.path.insert(0, str(ROOT / "bench"))
from bench_build import disk_usage, tree_rss
from make_synthetic_build_input import IDENTITY


def run(cmd: list[str], log: Path, watch: Path | None = None) -> dict:
    """Run ``cmd``; wall, CPU, peak RSS; the tree's peak RSS and the peak bytes under ``watch``, polled each second."""
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    peak = {"tree": 0, "disk": 0}
    done = threading.Event()

    def poll() -> None:
        while not done.wait(1.0):
            peak["tree"] = max(peak["tree"], tree_rss(proc.pid))
            if watch is not None and watch.exists():
                peak["disk"] = max(peak["disk"], disk_usage(watch))

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    _, status, ru = os.wait4(proc.pid, 0)
    done.set()
    th.join()
    return {"cmd": shlex.join(cmd), "exit": os.waitstatus_to_exitcode(status), "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 1), "peak_rss_gib": round(ru.ru_maxrss / 2**20, 3),
            "tree_gib": round(peak["tree"] / 2**30, 3), "peak_disk_gib": round(peak["disk"] / 2**30, 3),
            "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}


def keras_store(path: Path, bundle: Path) -> Path:
    """The bundle's original Keras SpliceAI outputs as a prediction store, with the synthetic build's identity."""
    import numpy as np

    from meta_spliceai.basemodel.store import PredictionStore

    if not path.exists():  # written under a temporary name, then renamed: a killed run leaves no half store
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        z = np.load(bundle / "reference" / "keras_spliceai_outputs.npz")
        store = PredictionStore(tmp, IDENTITY)
        for gene_id in z.files:
            store.write(gene_id, z[gene_id])
        tmp.rename(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train-args", default="", help="extra train arguments, one string")
    ap.add_argument("--apply", action="store_true", help="then predict the chr22 bundle and apply the model there")
    ap.add_argument("--skip-train", action="store_true", help="reuse OUT/model")
    ap.add_argument("--results", type=Path, default=RESULTS)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    py = [sys.executable, "-m", "meta_spliceai"]
    rec: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "build": str(a.build), "train_args": a.train_args,
                 "git": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False, capture_output=True,
                                       text=True).stdout.strip()}
    model = a.out / "model"
    if not a.skip_train:
        rec["train"] = run([*py, "train", str(a.build), "-o", str(model), *shlex.split(a.train_args)],
                           a.out / "train.log", watch=model)
        print(f"train: {rec['train']}", flush=True)
    m = json.loads((model / "metrics.json").read_text())
    rec["metrics"] = {k: m.get(k) for k in ("timings", "scratch", "split", "genes", "positions", "scored_positions")}
    rec["pruned_features"] = len(m.get("pruned_features") or [])
    rec["headline"] = {t: {meth: {"pr_auc": v["pr_auc"], "f1_at_valid": v["at_valid"]["f1"]}
                           for meth, v in m["site_types"][t]["methods"].items()} for t in m["site_types"]}
    if a.apply:
        store = a.out / "chr22_store"
        fa, gtf = CHR22 / "genome.fa.gz", CHR22 / "annotation.gtf"
        if not store.exists():
            rec["predict_chr22"] = run([*py, "predict", "--fasta", str(fa), "--gtf", str(gtf), "-o", str(store)],
                                       a.out / "predict_chr22.log")
        # a model trained on the synthetic build (Keras reference scores) applies only to a store of that base
        # model (apply refuses any other): the chr22 bundle's Keras reference outputs, written as such a store
        if json.loads((model / "model_card.json").read_text())["base_model"] == IDENTITY:
            store = keras_store(a.out / "chr22_keras_store", CHR22)
        out = a.out / "apply_chr22"
        rec["apply_chr22"] = run([*py, "apply", str(model), "--predictions", str(store), "--fasta", str(fa), "--gtf",
                                  str(gtf), "-o", str(out), "--evaluate"], a.out / "apply_chr22.log")
        am = json.loads((out / "metrics.json").read_text())
        rec["apply_chr22"]["positions"] = am.get("positions")
        if am.get("positions"):
            rec["apply_chr22"]["nt_per_s"] = round(am["positions"] / rec["apply_chr22"]["wall_s"], 1)
        print(f"apply chr22: {rec['apply_chr22']}", flush=True)
    a.results.parent.mkdir(parents=True, exist_ok=True)
    with open(a.results, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(json.dumps({k: rec[k] for k in ("metrics", "pruned_features")}, indent=1))
    for t, meths in rec["headline"].items():
        print(t, {k: (round(v["pr_auc"], 4), v["f1_at_valid"]) for k, v in meths.items()})


if __name__ == "__main__":
    main()
