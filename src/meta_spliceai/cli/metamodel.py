"""Meta-model commands: ``train`` (fit and compare like for like) and ``apply`` (corrected scores and calls)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .. import config
from .common import (
    add_output_dir,
    add_parallel_args,
    add_reference_args,
    add_subcommand,
    console,
    parallel_kwargs,
)

if TYPE_CHECKING:
    from rich.console import Console

TRAIN_EPILOG = """\
Evaluation: every nucleotide of the test genes, from the build's prediction store and annotation. Positions with
max(donor, acceptor) >= --floor are scored by the meta-model, every other position keeps the base model's scores.
Side by side: base model, calibrated base (logistic regression on its log scores, fitted on validation genes),
meta-model on score features only, and the meta-model. Thresholds are chosen on validation genes.
"""


def add_train(sub: argparse._SubParsersAction) -> None:
    d = config.DEFAULT_TRAIN
    p = add_subcommand(sub, "train", help="train a meta-model on a build and compare it with the base model, like for like",
                       epilog=TRAIN_EPILOG)
    p.add_argument("dataset", type=Path, help="build folder, its master/ folder or Parquet files of a build's master/")
    p.add_argument("baseline_tsv", type=Path, nargs="?",
                   help="base-model performance per gene (default: the build's gene_performance.tsv)")
    p.add_argument("--model", default=d.model,
                   help='xgboost (default), lightgbm, sgd_logistic, or JSON (string or file) '
                        '{"model": "xgboost", "params": {"max_depth": 6}}')
    add_output_dir(p, "folder for the model, card, metrics, plots, report", "--out-dir")
    p.add_argument("--prune-features", action="store_true",
                   help="drop zero-variance columns and one of each pair with |rho| > --corr-thr (streamed sample)")
    p.add_argument("--corr-thr", type=float, default=d.corr_thr, help="correlation threshold of --prune-features")
    p.add_argument("--group-col", default=d.group_col, help="genes sharing this column's value stay in one part")
    p.add_argument("--split", choices=("gene", "chromosome"), default=d.split, help="gene-wise or by chromosome")
    p.add_argument("--test-chroms", nargs="+", metavar="CHROM",
                   help="test chromosomes of --split chromosome (default SpliceAI's 1 3 5 7 9, in the data's naming)")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction, help="test share of genes (--split gene)")
    p.add_argument("--valid-fraction", type=float, default=d.valid_fraction,
                   help="validation share of the non-test genes (thresholds, calibration, early stopping)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the split, the model and the bootstrap")
    p.add_argument("--floor", type=float, default=d.floor,
                   help="positions with max(donor, acceptor) below this keep the base model's scores (default: the "
                        "build's --hard-prob, above which the build kept every position; lower floors use weights)")
    p.add_argument("--max-memory", type=float, metavar="GIB",
                   help="memory for the training matrix; above it XGBoost trains from external memory "
                        "(default: half the available memory)")
    p.add_argument("--bootstrap", type=int, default=d.bootstrap, help="gene-level bootstrap resamples (0: none)")
    p.add_argument("--predictions", type=Path, nargs="+", metavar="STORE",
                   help="prediction store(s) of the build, one per base model in order (default: those build.json names)")
    p.add_argument("--feature-ablation", action="store_true",
                   help="also fit score features + each context family of the build (partner, neighbourhood, "
                        "gene_peaks) and compare each with the score-only model, paired by gene (feature_ablation.md); "
                        "on a stacked build: the base models added one at a time, against the first model's alone")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from ..metamodel.report import metrics_table
    from ..metamodel.training import train

    res = train(dataset=args.dataset, out_dir=args.output_dir, baseline_tsv=args.baseline_tsv, model=args.model,
                prune=args.prune_features, corr_thr=args.corr_thr, group_col=args.group_col, split=args.split,
                test_chroms=args.test_chroms, test_fraction=args.test_fraction, valid_fraction=args.valid_fraction,
                seed=args.seed, floor=args.floor, max_memory=args.max_memory, bootstrap=args.bootstrap,
                predictions=args.predictions, feature_ablation=args.feature_ablation, progress=True)
    rows = metrics_table(res.metrics)
    con = console()
    con.print(f"[bold]Test genes: {res.metrics['genes']} ({res.metrics['positions']:,} nucleotides, every one scored)[/]")
    for r in rows:
        con.print(" | ".join(r), soft_wrap=True, highlight=False)
    if "feature_ablation" in res.files:
        con.print("[bold]Feature families against the score-only meta-model (paired by gene)[/]")
        con.print(Path(res.files["feature_ablation"]).read_text(), soft_wrap=True, highlight=False, markup=False)
    for k, v in res.files.items():
        con.print(f"  {k:<22} {v}")
    con.print(f"seconds: {res.seconds:,.1f}")
    return 0


def add_apply(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "apply", help="corrected scores and site calls of genes with a trained meta-model")
    p.add_argument("model", type=Path, help="the -o/--output-dir of meta-spliceai train (or its model_card.json)")
    p.add_argument("--predictions", type=Path, nargs="+", required=True, metavar="STORE",
                   help="base-model prediction store of the genes; a stacked model: one per base model, in the "
                        "order of its card's base_models (the first the labelling model)")
    add_reference_args(p)
    p.add_argument("--genes", nargs="+", metavar="GENE", help="gene IDs or names (default: every gene of the GTF)")
    p.add_argument("--gene-ids-file", type=Path, help="file of gene IDs or names (- for standard input)")
    add_output_dir(p, "output folder: scores/, calls.tsv, calls.bed (resumable)", "--out")
    p.add_argument("--run-workflow", action="store_true", help="predict genes missing from --predictions first")
    p.add_argument("--device", choices=config.DEVICES, default=config.DEFAULT_PREDICT.device,
                   help="device of the base model for --run-workflow")
    p.add_argument("--weights", nargs="+", metavar="[MODEL=]DIR",
                   help="weights of the base models --run-workflow runs that need them (openspliceai=DIR ...)")
    p.add_argument("--evaluate", action="store_true",
                   help="also compare base, ablations and meta-model on every nucleotide of the genes against the "
                        "annotation (DIR/metrics.json, DIR/report.md)")
    p.add_argument("--bootstrap", type=int, default=config.DEFAULT_TRAIN.bootstrap,
                   help="gene-level bootstrap resamples of --evaluate")
    add_parallel_args(p, "genes")
    p.set_defaults(handler=_run_apply)


def _run_apply(args: argparse.Namespace) -> int:
    from ..metamodel.correction import apply

    res = apply(model=args.model, predictions=args.predictions, out=args.output_dir, fasta=args.fasta, gtf=args.gtf,
                genes=args.genes, gene_ids_file=args.gene_ids_file, run_workflow=args.run_workflow,
                device=args.device, evaluate=args.evaluate, bootstrap=args.bootstrap, progress=True,
                weights=args.weights,
                **parallel_kwargs(args))
    con = console()
    comparison = res.pop("comparison", None)
    for k, v in res.items():
        con.print(f"{k:>14}: {v}")
    if comparison is not None:
        print_comparison(con, comparison)
    return 0


def print_comparison(con: Console, comparison: dict) -> None:
    """apply --evaluate: meta-model against base model per site type, then the verdict (red when worse)."""
    from rich.table import Table

    def f(v: object) -> str:
        return "-" if v is None else f"{v:.3f}"

    t = Table(title=f"meta-model vs base model on {comparison['genes']} genes")
    for col in ("site type", "method", "threshold", "TP", "FP", "FN", "precision", "recall", "F1"):
        t.add_column(col, justify="left" if col in ("site type", "method") else "right")
    for r in comparison["rows"]:
        t.add_row(r["site_type"], r["method"], f"{r['threshold']:.2f} ({'validated' if r['at'] == 'validated' else 'fixed'})", f"{r['TP']:,}", f"{r['FP']:,}", f"{r['FN']:,}",
                  f(r["precision"]), f(r["recall"]), f(r["f1"]))
    con.print(t)
    style = "bold red" if comparison["worse"] else "bold"
    con.print(f"verdict: {comparison['verdict']}", style=style, soft_wrap=True, highlight=False, markup=False)
