"""Stacked meta-model benchmark (issue 30): is a meta-model on several base models better than the best one?

Plan (each step a ``meta-spliceai`` subprocess under ``nice -n 10``; a step whose output exists is skipped):

  build   chr20 protein-coding genes (--gene-ids-file), one store       -> WORK/build_single
  build   the same genes, every model's store (first: spliceai)         -> WORK/build_stack
  train   each, gene split, seed 42 (the same test genes); the stack with --feature-ablation
  apply   --evaluate each model on the chr22 and chr2 bundles' genes    -> WORK/apply_{single,stack}_{chr22,chr2}

Stores: STORES/<bundle>_<model> (``predict`` outputs: chr20, chr22, chr2). The table gives, per evaluation set
and site type, PR-AUC over every nucleotide of each base model, their plain mean, the one-model meta-model and
the stacked one, with the stacked model's difference to the best single base model (gene-level paired bootstrap,
95 %). Results: WORK/stack_bench.json and Markdown on stdout (for bench/RESULTS.md).

Usage:
  python bench/bench_stack.py --stores /work/stores --genes /work/stores/chr20_pc_every3.tsv \\
      --work bench/_work/stack --models spliceai,openspliceai [--kmer-sizes 3] [--model SPEC] [--table-only]

A WORK whose build_single / build_stack are links to another run's builds trains and applies on those.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BUNDLES = {
    "chr20": (DATA / "grch37_chr20" / "genome.fa.gz", DATA / "grch37_chr20" / "annotation_gencode_v19.gtf"),
    "chr22": (DATA / "grch37_chr22_20-21Mb" / "genome.fa.gz", DATA / "grch37_chr22_20-21Mb" / "annotation.gtf"),
    "chr2": (DATA / "grch37_chr2_160-162Mb" / "genome.fa.gz", DATA / "grch37_chr2_160-162Mb" / "annotation.gtf"),
}


SRC = ROOT / "src"


def run(name: str, argv: list[str], work: Path) -> dict[str, object]:
    """One CLI step (nice -n 10); wall seconds; the log in WORK/<name>.log."""
    cmd = ["nice", "-n", "10", sys.executable, "-m", "meta_spliceai", *argv]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    t0 = time.perf_counter()
    with open(work / f"{name}.log", "w") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - t0
    print(f"{name}: rc {rc}, {wall:.0f} s: {' '.join(argv)}", file=sys.stderr)
    if rc:
        raise SystemExit(f"{name} failed (rc {rc}); see {work / f'{name}.log'}")
    return {"step": name, "wall_s": round(wall, 1), "argv": argv}


def steps(args: argparse.Namespace, work: Path) -> list[dict[str, object]]:
    models = args.models.split(",")
    store = {(b, m): str(Path(args.stores) / f"{b}_{m}") for b in BUNDLES for m in models}
    fasta, gtf = BUNDLES["chr20"]
    common = ["--fasta", str(fasta), "--gtf", str(gtf), "--gene-ids-file", args.genes, "--kmer-sizes",
              *args.kmer_sizes.split(","), "--batch-size", "100", *args.build_args.split()]
    done = []
    plans = {"single": models[:1], "stack": models}
    for kind, ms in plans.items():
        out = work / f"build_{kind}"
        if not (out / "gene_performance.tsv").is_file():
            done.append(run(f"build_{kind}", ["build", *common, "-o", str(out), "--base-models", ",".join(ms),
                                              "--predictions", *(store[("chr20", m)] for m in ms)], work))
        model = work / f"model_{kind}"
        if not (model / "model_card.json").is_file():
            extra = ["--feature-ablation"] if kind == "stack" else []
            spec = ["--model", args.model] if args.model else []
            done.append(run(f"train_{kind}", ["train", str(out), "-o", str(model), "--bootstrap", str(args.bootstrap),
                                              *spec, *extra], work))
        for b in ("chr22", "chr2"):
            app = work / f"apply_{kind}_{b}"
            if not (app / "metrics.json").is_file():
                f, g = BUNDLES[b]
                done.append(run(f"apply_{kind}_{b}", ["apply", str(model), "--predictions", *(store[(b, m)] for m in ms),
                                                      "--fasta", str(f), "--gtf", str(g), "-o", str(app), "--evaluate",
                                                      "--bootstrap", str(args.bootstrap)], work))
    return done


def _fmt(d: dict | None) -> str:
    if not d:
        return "—"
    lo, hi = d["ci95"]
    return f"{d['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def table(work: Path) -> tuple[str, dict]:
    """Markdown table and the figures, from the metrics of every train/apply output."""
    sets = {"chr20 test genes": ("model_single/metrics.json", "model_stack/metrics.json")}
    for b in ("chr22", "chr2"):
        sets[f"{b} bundle"] = (f"apply_single_{b}/metrics.json", f"apply_stack_{b}/metrics.json")
    lines = ["| genes | type | " + "PR-AUC: base models | mean | meta (1 model) | meta (stack) | "
             "stack − best single [95% CI] | stack − mean [95% CI] | single meta − its base [95% CI] |",
             "|---|---|---|---:|---:|---:|---|---|---|"]
    figures: dict[str, object] = {}
    for name, (single_f, stack_f) in sets.items():
        if not (work / single_f).is_file() or not (work / stack_f).is_file():
            continue
        single, stack = json.loads((work / single_f).read_text()), json.loads((work / stack_f).read_text())
        for t in ("donor", "acceptor"):
            st = stack["stack"][t]
            sm = single["site_types"][t]["methods"]
            bases = ", ".join(f"{m.removeprefix('base_') if m != 'base' else 'labelling'} {v:.4f}"
                              for m, v in st["pr_auc"].items() if m.startswith("base") and m != "base_mean")
            lines.append(f"| {name} ({stack['genes']}) | {t} | {bases} | {st['pr_auc'].get('base_mean', 0):.4f} | "
                         f"{sm['meta']['pr_auc']:.4f} | {st['pr_auc']['meta']:.4f} | "
                         f"{_fmt(st['meta_vs_best_single'])} (best: {st['best_single']}) | {_fmt(st['meta_vs_mean'])} | "
                         f"{_fmt(sm['meta'].get('vs_base', {}).get('pr_auc'))} |")
            figures[f"{name}/{t}"] = {"stack": st, "single_meta": sm["meta"]["pr_auc"],
                                      "single_meta_vs_base": sm["meta"].get("vs_base", {}).get("pr_auc")}
    abl = work / "model_stack" / "feature_ablation.md"
    text = "\n".join(lines) + "\n"
    if abl.is_file():
        text += "\nModel ablation on the chr20 test genes (each against the labelling model's features alone):\n\n"
        text += abl.read_text()
    return text, figures


def main() -> int:
    global SRC
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", required=True, help="folder of <bundle>_<model> prediction stores")
    ap.add_argument("--genes", required=True, help="chr20 genes to build (a gene list file)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "_work" / "stack")
    ap.add_argument("--models", default="spliceai,openspliceai", help="base models, the labelling model first")
    ap.add_argument("--kmer-sizes", default="3", help="k-mer sizes of both builds (0: none)")
    ap.add_argument("--bootstrap", type=int, default=300, help="gene-level bootstrap resamples")
    ap.add_argument("--model", help="train --model (a kind or JSON spec), e.g. "
                    "'{\"model\": \"xgboost\", \"params\": {\"prior\": \"none\"}}'; default: train's")
    ap.add_argument("--build-args", default="", help="more build flags of both builds, e.g. '--hard-prob 0.02'")
    ap.add_argument("--table-only", action="store_true", help="only print the table of what is there")
    ap.add_argument("--src", type=Path, default=SRC, help="meta_spliceai source to run (another version's src/)")
    args = ap.parse_args()
    SRC = args.src
    args.work.mkdir(parents=True, exist_ok=True)
    done = [] if args.table_only else steps(args, args.work)
    text, figures = table(args.work)
    (args.work / "stack_bench.json").write_text(json.dumps({"steps": done, "figures": figures}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
