"""Benchmark (issue 21): ``predict`` at chromosome scale vs the model alone vs the original Keras SpliceAI, same genes, same run.

Gene set: the ``gene_type "protein_coding"`` genes of a GTF (default: the chr20 bundle's GENCODE v19 GTF, 559
genes, 28,701,230 body nt) sorted by (start, gene_id); ``--max-gene-length L`` drops longer genes, ``--half``
keeps every second one (indices 0, 2, 4, ...: 280 genes, 15,991,525 nt), ``--limit N`` the first N (smoke
tests). The chosen IDs are written to ``WORK/genes.txt``. Every mode scores exactly these genes, the
exact float32 SpliceAI ensemble (5 models) on the CPU:

- ``model``: a fresh process (``--model-child``) reads the genes the way ``meta-spliceai predict`` does
  (``open_reference``, ``requested_genes``, then predict's own clusters of same-strand genes closer than
  10,000 nt, groups of ~1 Mb and inputs body +- 5,000 nt reverse-complemented on '-': ``basemodel.predict``'s
  ``_clusters``/``_groups``/``_cluster_input``), loads the model as predict does (``load_base_model`` with
  predict's defaults), reads all inputs, and only then times the group-by-group ``BaseModel.predict`` calls
  (wall: perf_counter; CPU: getrusage of that process, all threads). First-call warm-up is included.
- ``model-direct``: the same with ``load_base_model(conv="direct")``: every convolution direct on ONNX Runtime
  (the default computes the 21- and 41-tap stacks by FFT); ``fft_speedup`` = its wall / the model's.
- ``cli``: the whole ``python -m meta_spliceai predict --fasta F --gtf G --gene-ids-file WORK/genes.txt
  -o WORK/rR_cli --device D`` process (interpreter, imports, annotation parse, model load, store writes).
- ``keras``: the whole ``bench/keras_baseline.py --modes whole`` process in ``--keras-python`` (TensorFlow,
  the 5 Keras models of the ``spliceai`` package, one whole-sequence call per gene and model), on one input
  per gene (body +- 5,000 nt, N past the contig, reverse-complemented on '-': the definition of the
  bundles' ``keras_spliceai_outputs.npz``); what it reports for prediction alone is kept too.
  keras_baseline.py reads its inputs with ``np.load(INPUTS)["seqs"]``, a fixed-width unicode array: at
  chromosome scale that pads every gene to the longest (MACROD2, 2.07 Mb), 4.6 GB for the 559 genes. So
  the sequences go to a text file (one per line) and a 10-line shim (``KERAS_SHIM``) answers that one
  ``np.load`` call from it before running the script unchanged with ``runpy``.

Whole processes (cli, keras, and the model child) are measured with ``os.wait4``: wall, user+sys CPU
seconds, ``ru_maxrss`` (which is at least the launcher's RSS at fork: this launcher stays small, its own
peak is recorded as ``launcher_vmhwm_gib``). Rates are body nt / seconds (genes counted once each, as
predict writes them; ``nt_scored`` is what each mode ran through the model). When cli and keras both ran
in a round, a fresh process compares the cli store with Keras' outputs (``max_dp_cli_vs_keras``).

``--rounds R`` repeats the ``--modes`` sequence R times (interleaved, the machine is shared); the table
shows every run and the best (fastest) of each mode, and the two headline ratios of issue 21:
cli rate / model rate (bound >= 0.90) and Keras wall / cli wall (target >= 2.5). One JSON record per
invocation (all runs, load averages before/after each, machine, git commit) is appended to ``--results``.
Outputs are deleted after each round unless ``--keep-output``.

    python -m venv /work/spliceai_venv && /work/spliceai_venv/bin/pip install tensorflow-cpu spliceai
    python bench/bench_predict_scale.py                       # all 559 chr20 protein-coding genes (~2 h a round on 2 cores)
    python bench/bench_predict_scale.py --half --rounds 2     # the fixed half, two interleaved rounds
    python bench/bench_predict_scale.py --limit 2 --work-dir /tmp/bps --results /tmp/bps/r.jsonl   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHR20 = ROOT.parent / "shared" / "data" / "grch37_chr20"
WORK = ROOT / "bench" / "_work" / "predict_scale"
RESULTS = ROOT / "bench" / "results" / "predict_scale.jsonl"
MODES = ("model", "model-direct", "cli", "keras")
FLANK = 5000
GIB = 2**30

#: run in --keras-python: ``np.load(X.seqs.txt)`` gives {"seqs": the file's lines}, then keras_baseline.py as __main__
KERAS_SHIM = """\
import runpy, sys
import numpy as np
_load = np.load
def _lines(file, *a, **k):
    if str(file).endswith(".seqs.txt"):
        with open(file) as fh:
            return {"seqs": fh.read().split()}
    return _load(file, *a, **k)
np.load = _lines
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


# ---------------------------------------------------------------------------------------------- children


def model_child(genes_file: Path, fasta: Path, gtf: Path, device: str, conv: str) -> None:
    """In a fresh process: predict's inputs, predict's model, then only the model calls timed; one JSON line."""
    t0 = time.perf_counter()
    from meta_spliceai.basemodel.ensemble import load_base_model
    from meta_spliceai.basemodel.predict import _cluster_input, _clusters, _groups
    from meta_spliceai.config import DEFAULT_PREDICT as D
    from meta_spliceai.reference.genelists import requested_genes
    from meta_spliceai.reference.report import open_reference

    genome, ann, contig_map, _ = open_reference(fasta, gtf)
    selected = requested_genes(ann.genes, gene_ids_file=genes_file)
    model = load_base_model(name=D.base_model, weights=None, device=device, precision=D.precision,  # type: ignore[arg-type]
                            chunk_size=D.chunk_size, batch_size=D.batch_size, runtime=D.runtime, conv=conv)  # type: ignore[arg-type]
    clusters = _clusters(selected, contig_map)
    groups = [[_cluster_input(genome, c) for c in g] for g in _groups(clusters)]
    setup = time.perf_counter() - t0
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for seqs in groups:
        model.predict(seqs, batch_size=D.batch_size)
    wall, r1 = time.perf_counter() - w0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(json.dumps({"predict_s": round(wall, 2), "predict_cpu_s": round(cpu, 2), "setup_s": round(setup, 2),
                      "runtime": model.runtime, "conv": conv, "device": model.device, "genes": selected.height,
                      "inputs": len(clusters), "groups": len(groups), "nt_scored": sum(c.length for c in clusters),
                      "body_nt": int(selected["length"].sum())}))


def compare_child(store: Path, keras_out: Path, genes_file: Path) -> None:
    """max |dp| between the cli's store and Keras' whole-sequence outputs (gene j of genes_file = ``whole_j``)."""
    import numpy as np

    from meta_spliceai.basemodel.store import PredictionStore

    s, k = PredictionStore(store), np.load(keras_out)
    ids = genes_file.read_text().split()
    dp = max(float(np.abs(s.read(g) - k[f"whole_{j}"]).max()) for j, g in enumerate(ids))
    print(json.dumps({"genes_compared": len(ids), "max_dp_cli_vs_keras": dp}))


# ---------------------------------------------------------------------------------------------- launcher


def select_genes(a: argparse.Namespace) -> list[tuple[str, str, int, int, str]]:
    """(gene_id, chrom, start, end, strand) of the chosen protein-coding genes, in (start, gene_id) order."""
    import polars as pl

    from meta_spliceai.reference.annotation import load_annotation

    g = load_annotation(a.gtf).genes.filter(pl.col("gene_type") == "protein_coding")
    if a.max_gene_length:
        g = g.filter(pl.col("length") <= a.max_gene_length)
    g = g.sort("start", "gene_id")
    if a.half:
        g = g.gather_every(2)
    elif a.every:
        g = g.gather_every(a.every)
    if a.limit:
        g = g.head(a.limit)
    return list(g.select("gene_id", "chrom", "start", "end", "strand").iter_rows())


def write_keras_inputs(genes: list[tuple[str, str, int, int, str]], fasta: Path, out: Path) -> int:
    """One oriented input per gene (body +- 5,000 nt), one per line; returns the nt the model runs through."""
    from meta_spliceai.reference.genome import Genome, match_contigs, oriented_sequence

    genome = Genome(fasta)
    cmap = match_contigs(sorted({c for _, c, *_ in genes}), genome.contigs, fasta=fasta)
    with open(out, "w") as fh:
        fh.writelines(oriented_sequence(genome, cmap[chrom], s, e, strand, FLANK) + "\n" for _, chrom, s, e, strand in genes)
    return sum(e - s + 1 for _, _, s, e, _ in genes)


def _vmhwm_gib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / GIB
    return 0.0


def timed(cmd: list[str], log: Path) -> tuple[dict[str, object], str]:
    """Run ``cmd`` (stderr to ``log``); wall, user+sys CPU and ru_maxrss from os.wait4; returns (figures, stdout)."""
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    with open(log, "w") as err, open(log.with_suffix(".out"), "w+") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        stdout = out.read()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    return {"wall_s": round(wall, 2), "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
            "peak_rss_gib": round(ru.ru_maxrss * 1024 / GIB, 3), "load_before": load0, "load_after": os.getloadavg()}, stdout


def machine() -> dict[str, object]:
    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return {"processor": platform.processor(), "cpu_model": model, "cores": os.cpu_count(),
            "mem_gib": round(mem, 1), "platform": platform.platform(), "python": platform.python_version()}


def git_commit() -> dict[str, object]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def table(runs: list[dict], best: dict[str, dict]) -> str:
    model_rate = best["model"]["nt_per_s"] if "model" in best else None
    keras_wall = best["keras"]["wall_s"] if "keras" in best else None
    lines = ["| run | mode | wall s | CPU s | nt/s | peak RSS GiB | rate / model rate | Keras wall / wall |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]

    def row(label: str, r: dict, mode: str) -> None:
        vs_model = f"{r['nt_per_s'] / model_rate:.3f}" if model_rate else "–"
        vs_keras = f"{keras_wall / r['wall_s']:.2f}" if keras_wall else "–"
        lines.append(f"| {label} | {mode} | {r['wall_s']:,.2f} | {r['cpu_s']:,.2f} | {r['nt_per_s']:,.0f} | "
                     f"{r['peak_rss_gib']:.2f} | {vs_model} | {vs_keras} |")

    for r in runs:
        row(f"round {r['round']}", r, r["mode"] + (" (predict calls only)" if r["mode"].startswith("model") else ""))
        if r["mode"] == "keras" and "predict_only" in r:
            row(f"round {r['round']}", {**r, **r["predict_only"]}, "keras (prediction alone, in-process)")
    for m, r in best.items():
        row("**best**", r, m)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gtf", type=Path, default=CHR20 / "annotation_gencode_v19.gtf")
    ap.add_argument("--fasta", type=Path, default=CHR20 / "genome.fa.gz")
    ap.add_argument("--half", action="store_true", help="every second gene of the sorted list (indices 0, 2, 4, ...)")
    ap.add_argument("--every", type=int, help="every N-th gene of the sorted list (indices 0, N, 2N, ...; --half is 2)")
    ap.add_argument("--limit", type=int, help="only the first N genes of the list (smoke tests)")
    ap.add_argument("--max-gene-length", type=int, help="drop genes whose body is longer (before --half/--limit)")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="run in this order, every round")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the best (fastest) of each mode is reported")
    ap.add_argument("--device", default="cpu", help="--device of the model and cli modes (Keras: its TensorFlow's)")
    ap.add_argument("--keras-python", default="/work/spliceai_venv/bin/python")
    ap.add_argument("--work-dir", type=Path, default=WORK, help="gene list, inputs, outputs and logs")
    ap.add_argument("--keep-output", action="store_true", help="keep each round's cli store and Keras outputs")
    ap.add_argument("--results", type=Path, default=RESULTS, help="JSON lines file the record is appended to")
    ap.add_argument("--model-child", nargs=5, metavar=("GENES", "FASTA", "GTF", "DEVICE", "CONV"), help=argparse.SUPPRESS)
    ap.add_argument("--compare-child", nargs=3, metavar=("STORE", "KERAS_NPZ", "GENES"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.model_child:
        model_child(Path(a.model_child[0]), Path(a.model_child[1]), Path(a.model_child[2]), a.model_child[3], a.model_child[4])
        return
    if a.compare_child:
        compare_child(*map(Path, a.compare_child))
        return

    work = a.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    genes = select_genes(a)
    if not genes:
        raise SystemExit("no genes chosen")
    genes_file = work / "genes.txt"
    genes_file.write_text("".join(g[0] + "\n" for g in genes))
    body_nt = sum(e - s + 1 for _, _, s, e, _ in genes)
    print(f"{len(genes)} protein-coding genes, {body_nt:,} body nt (longest {max(e - s + 1 for _, _, s, e, _ in genes):,}); "
          f"IDs in {genes_file}", file=sys.stderr, flush=True)
    keras_in = work / "keras_inputs.seqs.txt"
    if "keras" in a.modes:
        write_keras_inputs(genes, a.fasta, keras_in)
    fasta, gtf = str(a.fasta.resolve()), str(a.gtf.resolve())

    rec: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["python", *sys.argv]),
        "gtf": gtf, "fasta": fasta, "half": a.half, "every": a.every, "limit": a.limit, "max_gene_length": a.max_gene_length,
        "genes": len(genes), "body_nt": body_nt, "device": a.device, "machine": machine(), "git": git_commit(), "runs": []}
    runs: list[dict] = rec["runs"]  # type: ignore[assignment]
    for rnd in range(1, a.rounds + 1):
        cli_out, keras_out = work / f"r{rnd}_cli", work / f"r{rnd}_keras.npz"
        for mode in a.modes:
            log = work / f"r{rnd}_{mode}.log"
            if mode in ("model", "model-direct"):
                conv = "direct" if mode == "model-direct" else "fft"
                r, out = timed([sys.executable, __file__, "--model-child", str(genes_file), fasta, gtf, a.device, conv], log)
                child = json.loads(out.strip().splitlines()[-1])
                r = {"process_wall_s": r["wall_s"], "process_cpu_s": r["cpu_s"], **r,
                     "wall_s": child["predict_s"], "cpu_s": child["predict_cpu_s"], **child}
            elif mode == "cli":
                shutil.rmtree(cli_out, ignore_errors=True)
                cmd = [sys.executable, "-m", "meta_spliceai", "predict", "--fasta", fasta, "--gtf", gtf,
                       "--gene-ids-file", str(genes_file), "-o", str(cli_out), "--device", a.device]
                r, _ = timed(cmd, log)
                r["cmd"] = " ".join(["python", *cmd[1:]])
                r["genes_written"] = len(list(cli_out.glob("*.parquet")))
            else:
                cmd = [a.keras_python, "-c", KERAS_SHIM, str(ROOT / "bench" / "keras_baseline.py"), str(keras_in),
                       str(keras_out), "--modes", "whole"]
                r, out = timed(cmd, log)
                secs = json.loads(out.strip().splitlines()[-1])
                r["predict_only"] = {"wall_s": round(secs["whole"], 2), "cpu_s": round(secs["whole_cpu"], 2),
                                     "nt_per_s": round(body_nt / secs["whole"])}
                r["nt_scored"] = body_nt
            r = {"round": rnd, "mode": mode, **r, "nt_per_s": round(body_nt / r["wall_s"])}
            r["launcher_vmhwm_gib"] = round(_vmhwm_gib(), 3)
            runs.append(r)
            print(f"round {rnd} {mode}: {r['wall_s']:,.1f} s, {r['cpu_s']:,.1f} CPU s, {r['nt_per_s']:,} nt/s, "
                  f"{r['peak_rss_gib']:.2f} GiB", file=sys.stderr, flush=True)
        if cli_out.is_dir() and keras_out.is_file():
            _, out = timed([sys.executable, __file__, "--compare-child", str(cli_out), str(keras_out), str(genes_file)],
                           work / f"r{rnd}_compare.log")
            cmp = json.loads(out.strip().splitlines()[-1])
            for r in runs:
                if r["round"] == rnd and r["mode"] == "cli":
                    r.update(cmp)
        if not a.keep_output:
            shutil.rmtree(cli_out, ignore_errors=True)
            keras_out.unlink(missing_ok=True)
    if not a.keep_output:
        keras_in.unlink(missing_ok=True)

    best: dict[str, dict] = {}
    for r in runs:
        if r["mode"] not in best or r["wall_s"] < best[r["mode"]]["wall_s"]:
            best[r["mode"]] = r
    rec["best"] = {m: {"round": r["round"], "wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "nt_per_s": r["nt_per_s"]}
                   for m, r in best.items()}
    head: dict[str, object] = {}
    if "cli" in best and "model" in best:
        head["cli_rate_over_model_rate"] = round(best["cli"]["nt_per_s"] / best["model"]["nt_per_s"], 4)
        head["per_round_cli_over_model"] = [
            round(c["nt_per_s"] / m["nt_per_s"], 4) for m in runs if m["mode"] == "model"
            for c in runs if c["mode"] == "cli" and c["round"] == m["round"]]
    if "model" in best and "model-direct" in best:
        head["fft_speedup"] = round(best["model-direct"]["wall_s"] / best["model"]["wall_s"], 3)
    if "cli" in best and "keras" in best:
        head["keras_wall_over_cli_wall"] = round(best["keras"]["wall_s"] / best["cli"]["wall_s"], 3)
        head["per_round_keras_over_cli"] = [
            round(k["wall_s"] / c["wall_s"], 3) for c in runs if c["mode"] == "cli"
            for k in runs if k["mode"] == "keras" and k["round"] == c["round"]]
    rec["headline"] = head
    rec["launcher_vmhwm_gib"] = round(_vmhwm_gib(), 3)

    print(f"\n{len(genes)} protein-coding genes, {body_nt:,} body nt, {rec['machine']['cpu_model']}, "  # type: ignore[index]
          f"git {rec['git']['commit'][:7]}{' (dirty)' if rec['git']['dirty'] else ''}\n")  # type: ignore[index]
    print(table(runs, best))
    if "cli_rate_over_model_rate" in head:
        print(f"\ncli rate / model rate (best vs best): {head['cli_rate_over_model_rate']:.3f} (bound >= 0.90; "
              f"per round {head['per_round_cli_over_model']})")
    if "fft_speedup" in head:
        print(f"model with direct convolutions / model (wall, best vs best): {head['fft_speedup']:.3f}x")
    if "keras_wall_over_cli_wall" in head:
        dp = best["cli"].get("max_dp_cli_vs_keras")
        print(f"Keras wall / cli wall (best vs best): {head['keras_wall_over_cli_wall']:.2f}x (target >= 2.5; per round "
              f"{head['per_round_keras_over_cli']}){'' if dp is None else f'; max |dp| cli vs Keras {dp:.2e}'}")
    a.results.parent.mkdir(parents=True, exist_ok=True)
    with open(a.results, "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    print(f"\nrecord appended to {a.results}")


if __name__ == "__main__":
    main()
