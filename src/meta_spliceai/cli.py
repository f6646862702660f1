"""Command line: ``meta-spliceai <subcommand>``. Each subcommand calls one library function of the same name."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__, config
from .errors import MetaSpliceAIError

Handler = Callable[[argparse.Namespace], int]


def _console():
    """Console for results (stdout). Not a terminal: no hard wrapping, so paths stay whole in logs."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(soft_wrap=True, width=_PLAIN_WIDTH)


#: line width of rich output when it goes to a file (no terminal to fit): never wrap paths
_PLAIN_WIDTH = 1000


def _setup_logging(verbose: int) -> None:
    """Logs to stderr: rich on a terminal, plain timestamped unwrapped lines when redirected."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=verbose > 1)
        fmt = logging.Formatter("%(message)s", datefmt="[%X]")
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")
    handler.setFormatter(fmt)
    logging.basicConfig(level=level, handlers=[handler], force=True)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless it names one); epilogs keep their line breaks.

    Set once for the top-level parser and every subcommand (see :class:`_Parser`): commands added
    later get it without asking.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        silent = (argparse._HelpAction, argparse._VersionAction, argparse._CountAction)
        if (not action.option_strings or default is None or default is False or default == argparse.SUPPRESS
                or "default" in text or isinstance(action, silent)):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (tuple, list)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def add_subcommand(sub: argparse._SubParsersAction, name: str, help: str,  # noqa: A002
                   **kwargs) -> argparse.ArgumentParser:  # noqa: ANN003
    """Add a subcommand: ``help`` is its line in the command list and, capitalised, its --help description.

    Every subcommand's parser shows each option's default (:class:`HelpFormatter`) and takes ``-v``.
    """
    kwargs.setdefault("description", help[:1].upper() + help[1:] + ".")
    return sub.add_parser(name, help=help, **kwargs)


def _add_reference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fasta", type=Path, help="genome FASTA (plain or BGZF); default: the built-in demo reference")
    p.add_argument("--gtf", type=Path, help="gene annotation, GTF or GFF3 (plain or gzip); default: the demo reference")


# --------------------------------------------------------------------------- reference


def _reference_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "reference", "index and inspect a FASTA + annotation pair before a long run")
    _add_reference_args(p)
    p.set_defaults(handler=_run_reference)


def _run_reference(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .reference import reference

    rep = reference(fasta=args.fasta, gtf=args.gtf)
    con = _console()
    con.print(f"FASTA       {rep.fasta}  ({len(rep.fasta_contigs)} contigs)")
    con.print(f"annotation  {rep.gtf}")
    t = Table(title="Contents", show_header=False)
    for k, v in (
        ("genes", rep.n_genes),
        ("genes with ≥2-exon transcripts", rep.n_multi_exon_genes),
        ("transcripts", rep.n_transcripts),
        ("distinct exons", rep.n_exons),
        ("donor sites", rep.n_donors),
        ("acceptor sites", rep.n_acceptors),
    ):
        t.add_row(k, f"{v:,}")
    con.print(t)
    types = Table(title="Genes per type")
    types.add_column("gene_type")
    types.add_column("genes", justify="right")
    for k, v in rep.genes_by_type.items():
        types.add_row(k, f"{v:,}")
    con.print(types)
    pairs = ", ".join(f"{a}→{b}" if a != b else a for a, b in rep.contig_map.items())
    con.print(f"contigs matched: {pairs or 'none'}")
    if rep.unmatched_contigs:
        con.print(f"[red]annotation contigs missing from the FASTA: {', '.join(rep.unmatched_contigs)}[/]")
    for what, ids in (("without sequence", rep.missing_sequence), ("mostly N", rep.mostly_n)):
        if ids:
            more = f" … ({len(ids)} in all)" if len(ids) > 10 else ""
            con.print(f"[red]genes {what}: {', '.join(ids[:10])}{more}[/]")
        else:
            con.print(f"genes {what}: none")
    return 0


# --------------------------------------------------------------------------- predict


def _add_model_args(p: argparse.ArgumentParser) -> None:
    d = config.DEFAULT_PREDICT
    p.add_argument("--base-model", choices=config.BASE_MODELS, default=d.base_model,
                   help="spliceai (weights of the installed `spliceai` package, CC BY-NC 4.0) or openspliceai "
                        "(OpenSpliceAI MANE checkpoints given with --weights)")
    p.add_argument("--weights", type=Path,
                   help="weights: openspliceai needs the folder of its .pt checkpoints; spliceai takes .h5 files "
                        "(default: those of the installed spliceai package)")
    p.add_argument("--device", choices=config.DEVICES, default=d.device, help="auto: CUDA when present, else CPU")
    p.add_argument("--precision", choices=config.PRECISIONS, default=d.precision,
                   help="float32 is exact; bfloat16 is faster on GPUs and CPUs with AVX512-BF16, not exact "
                        "(site calls agree, |dp| <= 0.01)")
    p.add_argument("--runtime", choices=config.RUNTIMES, default=d.runtime,
                   help="auto: ONNX Runtime for CPU float32 when installed (the [onnx] extra), else PyTorch")


def add_parallel_args(p: argparse.ArgumentParser, unit: str) -> None:
    """--workers, --threads-per-worker, --executor, --ray-address (library: ``parallel.run_units``)."""
    d = config.DEFAULT_PARALLEL
    p.add_argument("--workers", type=int, default=d.workers, metavar="N",
                   help=f"{unit} in N parallel processes, each loading the model once (1: in this process; "
                        "with --executor ray: the size of a local Ray cluster)")
    p.add_argument("--threads-per-worker", type=int, metavar="T",
                   help="threads of each worker (default: the usable cores divided by --workers)")
    p.add_argument("--executor", choices=config.EXECUTORS, default=d.executor,
                   help="local processes, or Ray tasks (extra meta-spliceai[ray]; outputs on a path every node shares)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="Ray cluster to run on (HOST:PORT, ray://HOST:PORT or auto; default: start a local one)")


def _parallel_kwargs(args: argparse.Namespace) -> dict[str, object]:
    return {"workers": args.workers, "threads_per_worker": args.threads_per_worker, "executor": args.executor,
            "ray_address": args.ray_address}


def _predict_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "predict", "score gene bodies with the base model into a prediction store")
    _add_reference_args(p)
    p.add_argument("--out", type=Path, required=True, help="prediction store folder (resumable, one file per gene)")
    p.add_argument("--genes", nargs="+", metavar="GENE", help="gene IDs or names")
    p.add_argument("--gene-ids-file", type=Path, help="file of gene IDs or names (one per line, or a TSV/CSV column)")
    p.add_argument("--gene-col", help="column of --gene-ids-file holding the genes (default gene_id)")
    p.add_argument("--n-genes", type=int, help="only the first N selected genes (in chrom, start order)")
    p.add_argument("--batch-size", type=int, default=config.DEFAULT_PREDICT.batch_size,
                   help="sequences per forward pass for short genes")
    p.add_argument("--chunk-size", type=int, default=config.DEFAULT_PREDICT.chunk_size,
                   help="nucleotides per forward pass for long genes (results do not depend on it)")
    p.add_argument("--overwrite", action="store_true",
                   help="recompute the chosen genes even if the store has them (e.g. after an annotation change)")
    _add_model_args(p)
    add_parallel_args(p, "genes")
    p.set_defaults(handler=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from .predictions import predict

    res = predict(fasta=args.fasta, gtf=args.gtf, out=args.out, genes=args.genes, gene_ids_file=args.gene_ids_file,
                  gene_col=args.gene_col, n_genes=args.n_genes, batch_size=args.batch_size, device=args.device,
                  base_model=args.base_model, weights=args.weights, precision=args.precision,
                  chunk_size=args.chunk_size, runtime=args.runtime, progress=True, overwrite=args.overwrite,
                  **_parallel_kwargs(args))
    con = _console()
    for k, v in res.items():
        con.print(f"{k:>18}: {v:,.1f}" if isinstance(v, float) else f"{k:>18}: {v}")
    con.print(f"prediction store: {args.out}  (polars.scan_parquet('{args.out}'))")
    return 0


# --------------------------------------------------------------------------- build

BUILD_EPILOG = """\
TN sampling (every draw seeded from --seed and the gene ID, so a gene's rows never depend on its batch or build):
  raw  = every TP/FP/FN row, every "hard" TN (max(donor, acceptor) >= --hard-prob), every TN within --window nt
         of a TP/FP/FN of the same gene, and a pool of 3 x --easy-ratio x (the gene's TP/FP/FN rows) easy TNs;
  trim = raw without the unused easy TNs: --easy-ratio x (the gene's TP/FP/FN rows) of the pool, drawn at random.
Workflows: A  --run-workflow computes missing predictions;  B  --gene-ids-file with existing predictions;
           C  re-run the same command to resume or finalize (finished batches are skipped).
"""


def _kmer_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--kmer-sizes takes integers like '6', '4,6' or '4 6', got {text!r}") from None
    return sizes


class _FlattenSizes(argparse.Action):
    """``--kmer-sizes 4 6``, ``--kmer-sizes 4,6`` and ``--kmer-sizes "4 6"`` all give (4, 6)."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        setattr(namespace, self.dest, tuple(k for v in values for k in v))


def _feature_sets(text: str) -> tuple[str, ...]:
    """'base,partner' or 'base partner' -> names (checked by the library); 'all' -> every set."""
    names = tuple(x for x in text.replace(",", " ").split() if x)
    return config.FEATURE_SETS if names == ("all",) else names


def _build_parser(sub: argparse._SubParsersAction) -> None:
    d = config.DEFAULT_BUILD
    p = add_subcommand(sub, "build", "build (or resume) a meta-model training dataset batch by batch",
                       epilog=BUILD_EPILOG)
    _add_reference_args(p)
    p.add_argument("--output-dir", "-o", type=Path, required=True, help="build folder (resumable)")
    p.add_argument("--n-genes", type=int, help=f"genes to build (default {d.n_genes}; not with custom/all)")
    p.add_argument("--subset-policy", choices=config.SUBSET_POLICIES,
                   help=f"how genes are chosen (default {d.subset_policy}; custom with --gene-ids-file)")
    p.add_argument("--gene-ids-file", type=Path, help="genes to build (IDs with/without version, or names)")
    p.add_argument("--gene-col", help="column of --gene-ids-file holding the genes (default gene_id)")
    p.add_argument("--gene-types", nargs="+", metavar="TYPE", help="only genes of these types (e.g. protein_coding)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="genes per batch")
    p.add_argument("--batch-rows", type=int, default=d.batch_rows, help="rows per Parquet row group (bounds memory)")
    p.add_argument("--run-workflow", action="store_true", help="compute missing base-model predictions")
    p.add_argument("--predictions", type=Path, help="prediction store to read/extend (default OUTPUT_DIR/predictions)")
    p.add_argument("--threshold", type=float, default=d.threshold, help="score at which a site counts as called")
    p.add_argument("--consensus-window", type=int, default=d.consensus_window, help="± nt a call may sit off a site")
    p.add_argument("--hard-prob", type=float, default=d.hard_prob, help="TNs scoring at least this are all kept")
    p.add_argument("--window", type=int, default=d.window, help="TNs within this many nt of a TP/FP/FN are kept")
    p.add_argument("--easy-ratio", type=float, default=d.easy_ratio, help="easy TNs per TP/FP/FN row of a gene")
    p.add_argument("--kmer-sizes", type=_kmer_sizes, nargs="+", action=_FlattenSizes, default=d.kmer_sizes,
                   metavar="K", help="k-mer sizes of the sequence features, e.g. 6, 4,6 or 4 6; 0 for none")
    p.add_argument("--feature-sets", type=_feature_sets, default=d.feature_sets,
                   help=f"feature families, comma-separated, base required: {', '.join(config.FEATURE_SETS)}, or "
                        f"all (default {','.join(d.feature_sets)}; see README)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of every random choice")
    p.add_argument("--overwrite", action="store_true", help="rebuild from scratch (keeps predictions)")
    p.add_argument("--patch-dataset", action="store_true",
                   help="when the build is complete, run `meta-spliceai patch --inplace` on it once")
    _add_model_args(p)
    add_parallel_args(p, "batches")
    p.set_defaults(handler=_run_build)


def _print_build(summary) -> None:
    from rich.table import Table

    con = _console()
    t = Table(title=f"Build {summary.output_dir}", show_header=False)
    for k, v in (("genes", summary.n_genes), ("batches", summary.n_batches), ("built now", summary.built),
                 ("already done", summary.skipped), ("raw rows", summary.rows_raw), ("trim rows", summary.rows_trim)):
        t.add_row(k, f"{v:,}")
    for k, v in sorted(summary.pred_types.items()):
        t.add_row(f"  {k}", f"{v:,}")
    t.add_row("seconds", f"{summary.seconds:,.1f}")
    con.print(t)
    for note in summary.notes:
        con.print(f"[yellow]{note}[/]")
    out = Path(summary.output_dir)
    con.print(f"master dataset: {out / 'master'}  (manifest {out / 'manifest.json'})")
    con.print(f"base-model performance per gene: {out / 'gene_performance.tsv'}")


def _run_build(args: argparse.Namespace) -> int:
    from .dataset import build

    summary = build(
        output_dir=args.output_dir, fasta=args.fasta, gtf=args.gtf, subset_policy=args.subset_policy,
        n_genes=args.n_genes, gene_ids_file=args.gene_ids_file, gene_col=args.gene_col, gene_types=args.gene_types,
        batch_size=args.batch_size, batch_rows=args.batch_rows, threshold=args.threshold,
        consensus_window=args.consensus_window, hard_prob=args.hard_prob, window=args.window,
        easy_ratio=args.easy_ratio, kmer_sizes=args.kmer_sizes, feature_sets=args.feature_sets, seed=args.seed,
        run_workflow=args.run_workflow,
        overwrite=args.overwrite, predictions=args.predictions, device=args.device, base_model=args.base_model,
        weights=args.weights, precision=args.precision, runtime=args.runtime, progress=True,
        **_parallel_kwargs(args),
        patch_dataset=args.patch_dataset,
    )
    _print_build(summary)
    if summary.patch is not None:
        _print_patch(summary.patch)
    return 0


# --------------------------------------------------------------------------- gene-ids


def _gene_ids_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "gene-ids", "list the genes (and transcript IDs) present in a prediction store")
    p.add_argument("--eval-dir", type=Path, required=True, help="prediction store, or a build output folder")
    p.add_argument("--out", type=Path, required=True, help="TSV to write (gene_id, gene_name, transcript_ids)")
    p.add_argument("--gtf", type=Path, help="annotation for names and transcript IDs (a build folder has its own)")
    p.add_argument("--n-genes", type=int, help="a seeded random sample of N genes")
    p.add_argument("--seed", type=int, default=config.DEFAULT_BUILD.seed, help="seed of the sample")
    p.set_defaults(handler=_run_gene_ids)


def _run_gene_ids(args: argparse.Namespace) -> int:
    from .selection import gene_ids

    table = gene_ids(eval_dir=args.eval_dir, out=args.out, gtf=args.gtf, n_genes=args.n_genes, seed=args.seed)
    _console().print(f"{table.height:,} genes written to {args.out}")
    return 0


# --------------------------------------------------------------------------- train


TRAIN_EPILOG = """\
Evaluation: every nucleotide of the test genes, from the build's prediction store and annotation. Positions with
max(donor, acceptor) >= --floor are scored by the meta-model, every other position keeps the base model's scores.
Side by side: base model, calibrated base (logistic regression on its log scores, fitted on validation genes),
meta-model on score features only, and the meta-model. Thresholds are chosen on validation genes.
"""


def _train_parser(sub: argparse._SubParsersAction) -> None:
    d = config.DEFAULT_TRAIN
    p = sub.add_parser("train", help="train a meta-model on a build and compare it with the base model, like for like",
                       epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path, help="build folder, its master/ folder or Parquet files of a build's master/")
    p.add_argument("baseline_tsv", type=Path, nargs="?",
                   help="base-model performance per gene (default: the build's gene_performance.tsv)")
    p.add_argument("--model", default=d.model,
                   help='xgboost (default), lightgbm, sgd_logistic, or JSON (string or file) '
                        '{"model": "xgboost", "params": {"max_depth": 6}}')
    p.add_argument("--out-dir", type=Path, required=True, help="folder for the model, card, metrics, plots, report")
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
    p.add_argument("--predictions", type=Path, help="prediction store of the build (default: the one build.json names)")
    p.add_argument("--feature-ablation", action="store_true",
                   help="also fit score features + each context family of the build (partner, neighbourhood, "
                        "gene_peaks) and compare each with the score-only model, paired by gene (feature_ablation.md)")
    p.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from .report import metrics_table
    from .training import train

    res = train(dataset=args.dataset, out_dir=args.out_dir, baseline_tsv=args.baseline_tsv, model=args.model,
                prune=args.prune_features, corr_thr=args.corr_thr, group_col=args.group_col, split=args.split,
                test_chroms=args.test_chroms, test_fraction=args.test_fraction, valid_fraction=args.valid_fraction,
                seed=args.seed, floor=args.floor, max_memory=args.max_memory, bootstrap=args.bootstrap,
                predictions=args.predictions, feature_ablation=args.feature_ablation, progress=True)
    rows = metrics_table(res.metrics)
    con = _console()
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


# --------------------------------------------------------------------------- apply


def _apply_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apply", help="corrected scores and site calls of genes with a trained meta-model")
    p.add_argument("model", type=Path, help="the --out-dir of meta-spliceai train (or its model_card.json)")
    p.add_argument("--predictions", type=Path, required=True, help="base-model prediction store of the genes")
    _add_reference_args(p)
    p.add_argument("--genes", nargs="+", metavar="GENE", help="gene IDs or names (default: every gene of the GTF)")
    p.add_argument("--gene-ids-file", type=Path, help="file of gene IDs or names")
    p.add_argument("--out", type=Path, required=True, help="output folder: scores/, calls.tsv, calls.bed (resumable)")
    p.add_argument("--run-workflow", action="store_true", help="predict genes missing from --predictions first")
    p.add_argument("--device", choices=config.DEVICES, default=config.DEFAULT_PREDICT.device,
                   help="device of the base model for --run-workflow")
    p.add_argument("--evaluate", action="store_true",
                   help="also compare base, ablations and meta-model on every nucleotide of the genes against the "
                        "annotation (DIR/metrics.json, DIR/report.md)")
    p.add_argument("--bootstrap", type=int, default=config.DEFAULT_TRAIN.bootstrap,
                   help="gene-level bootstrap resamples of --evaluate")
    add_parallel_args(p, "genes")
    p.set_defaults(handler=_run_apply)


def _run_apply(args: argparse.Namespace) -> int:
    from .correction import apply

    res = apply(model=args.model, predictions=args.predictions, out=args.out, fasta=args.fasta, gtf=args.gtf,
                genes=args.genes, gene_ids_file=args.gene_ids_file, run_workflow=args.run_workflow,
                device=args.device, evaluate=args.evaluate, bootstrap=args.bootstrap, progress=True,
                **_parallel_kwargs(args))
    con = _console()
    for k, v in res.items():
        con.print(f"{k:>14}: {v}")
    return 0


# --------------------------------------------------------------------------- demo


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "demo", "the main job on the built-in demo reference: predict, build, train a meta-model, apply it")
    p.add_argument("output_dir", type=Path, help="folder for everything the demo makes")
    p.add_argument("--device", choices=config.DEVICES, default=config.DEFAULT_PREDICT.device,
                   help="auto: CUDA when present, else CPU")
    p.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import demo

    from .report import metrics_table

    res = demo(output_dir=args.output_dir, device=args.device)
    _print_build(res.build)
    con = _console()
    con.print(f"\n[bold]Meta-model vs base model: every nucleotide of {res.metrics['genes']} test genes[/]")
    for r in metrics_table(res.metrics):
        con.print(" | ".join(r), soft_wrap=True, highlight=False)
    con.print(f"site calls of the corrected scores: {res.calls:,}")
    con.print("\n[bold]Artifacts[/]")
    for what, path in res.artifacts.items():
        con.print(f"  {what:<28} {path}")
    return 0


# --------------------------------------------------------------------------- patch


def _patch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("patch", help="refresh gene-level columns from an annotation and upgrade old files",
                       description="Fill or refresh the gene-level columns (gene_name, gene_type, transcript and "
                                   "exon counts) from the build's annotation or --gtf, and bring files of an older "
                                   "schema_version up to the current one. Idempotent; reports genes whose type "
                                   "changed. Output: --inplace, --dst DIR, or DATASET_patched/.")
    p.add_argument("dataset", type=Path, help="dataset folder (a build's output folder)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--inplace", action="store_true", help="replace the dataset's files (crash-safe swap)")
    where.add_argument("--dst", type=Path, help="write the patched dataset here (default DATASET_patched)")
    p.add_argument("--gtf", type=Path, help="annotation to take gene types and structure from (default: the build's)")
    p.set_defaults(handler=_run_patch)


def _print_patch(res) -> None:
    con = _console()
    con.print(f"patch: {len(res.files_rewritten)} file(s) rewritten into {res.output} (annotation {res.annotation})")
    if res.upgraded:
        con.print(f"  upgraded from older schema versions: {len(res.upgraded)} file(s)")
    con.print(f"  genes whose type changed: {len(res.type_changes)}")
    for gid, old, new in res.type_changes[:20]:
        con.print(f"    {gid}: {old} -> {new}")
    if res.other_changes:
        con.print(f"  other gene-level values changed: {len(res.other_changes)}")
    for what, genes in (("not in the annotation (kept)", res.not_in_annotation),
                        ("with another span in the annotation (length kept)", res.span_differs)):
        if genes:
            con.print(f"[yellow]  {len(genes)} gene(s) {what}: {', '.join(genes[:10])}[/]")


def _run_patch(args: argparse.Namespace) -> int:
    from .patching import patch

    _print_patch(patch(dataset=args.dataset, dst=args.dst, inplace=args.inplace, gtf=args.gtf))
    return 0


# --------------------------------------------------------------------------- dedup


def _key_columns(text: str) -> tuple[str, ...]:
    return tuple(c for c in text.replace(",", " ").split() if c)


def _dedup_parser(sub: argparse._SubParsersAction) -> None:
    from .dedup import DEFAULT_KEY

    p = sub.add_parser("dedup", help="remove rows that describe the same genomic position twice",
                       description="Remove duplicate rows across files (overlapping genes on a strand, repeated "
                                   "genes from merged builds). Of the rows sharing a key, the one whose gene_id "
                                   "sorts first survives (then the first file, then the first row). Output: "
                                   "DATASET_dedup/ unless --dst or --inplace.")
    p.add_argument("dataset", type=Path, help="dataset folder (a build's output folder)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--inplace", action="store_true", help="replace the dataset's files (crash-safe swap)")
    where.add_argument("--dst", type=Path, help="write the deduplicated dataset here (default DATASET_dedup)")
    p.add_argument("--key", type=_key_columns, default=DEFAULT_KEY,
                   help=f"columns that identify a row (default {','.join(DEFAULT_KEY)})")
    p.set_defaults(handler=_run_dedup)


def _run_dedup(args: argparse.Namespace) -> int:
    from .dedup import CAUSES, dedup

    res = dedup(dataset=args.dataset, dst=args.dst, inplace=args.inplace, key=args.key)
    con = _console()
    con.print(f"dedup on ({', '.join(res.key)}): {res.rows_in:,} rows in, {res.rows_out:,} out, "
              f"{res.removed_total:,} removed")
    for cause in CAUSES:
        con.print(f"  {cause:<18} {res.removed[cause]:>10,}  ({100 * res.share(cause):.3f} % of rows)")
    con.print(f"{'written to' if res.changed or res.output != res.dataset else 'unchanged:'} {res.output}"
              f" ({len(res.files_rewritten)} file(s) rewritten)")
    return 0


# --------------------------------------------------------------------------- validate


def _validate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a dataset's integrity, labels and leakage (exit 0 only when all pass)",
                       description="Schema, checksums, row counts and files against the manifest; nulls; label "
                                   "domains; pred_type against splice_type and the scores; no gene in two files; "
                                   "every annotated site once; k-mer columns; a leakage audit of every feature. "
                                   "Exit 0 when every check passes, 1 when a problem was found.")
    p.add_argument("dataset", type=Path, help="dataset folder (a build's output folder)")
    p.add_argument("--json", action="store_true", help="print the full report (checks, problems, leakage) as JSON")
    p.add_argument("--gtf", type=Path, help="annotation for the site checks (default: the build's)")
    p.set_defaults(handler=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from .validation import validate

    rep = validate(dataset=args.dataset, gtf=args.gtf)
    if args.json:
        print(rep.to_json())
        return 0 if rep.ok else 1
    con = _console()
    con.print(f"{rep.dataset}: {rep.files} file(s), {rep.rows:,} rows")
    for check, n in rep.counts.items():
        con.print(f"  {check:<12} {'[green]ok[/]' if n == 0 else f'[red]{n} problem(s)[/]'}")
    for p in rep.problems:
        con.print(f"  {p}", markup=False, highlight=False)
    flagged = [r["feature"] for r in rep.leakage if r["flagged"]]
    con.print(f"leakage audit: {len(rep.leakage)} features, {len(flagged)} flagged")
    con.print("[green]all checks passed[/]" if rep.ok else "[red]validation failed[/]")
    return 0 if rep.ok else 1


# --------------------------------------------------------------------------- summary


def _summary_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="rows, genes, class balance, nulls, base-model performance; an HTML report",
                       description="Summarise a dataset; --report writes one self-contained HTML page with plots "
                                   "(class balance, score distributions by class, rows per batch and gene, the "
                                   "base model's per-gene F1).")
    p.add_argument("dataset", type=Path, help="dataset folder (a build's output folder)")
    p.add_argument("--report", type=Path, help="write the HTML report here (e.g. report.html)")
    p.set_defaults(handler=_run_summary)


def _run_summary(args: argparse.Namespace) -> int:
    from rich.table import Table

    from .schema import PRED_TYPES, SPLICE_TYPES
    from .summary import summary

    s = summary(dataset=args.dataset, report=args.report)
    con = _console()
    t = Table(title=f"Dataset {s.dataset}", show_header=False)
    for k, v in (("files", s.files), ("rows", s.rows), ("genes", s.genes), ("transcripts", s.transcripts),
                 ("columns", s.columns), ("features", s.features)):
        t.add_row(k, f"{v:,}")
    con.print(t)
    b = Table(title="Class balance (rows)")
    b.add_column("splice_type")
    for p in PRED_TYPES:
        b.add_column(p, justify="right")
    for st in SPLICE_TYPES:
        b.add_row(st, *(f"{s.class_balance.get((st, p), 0):,}" for p in PRED_TYPES))
    con.print(b)
    con.print("TN kinds: " + ", ".join(f"{k} {v:,}" for k, v in s.tn_kinds.items()))
    con.print("nulls: " + (", ".join(f"{k} {v:,}" for k, v in sorted(s.nulls.items())) or "none")
              + " (tn_kind is null on non-TN rows by design)")
    g = s.gene_stats()
    con.print(f"rows per gene: min {g['min']:,}, median {g['median']:,.0f}, mean {g['mean']:,.1f}, max {g['max']:,}")
    con.print("rows per file: " + ", ".join(f"{k} {v:,}" for k, v in s.rows_per_file.items()))
    pooled = s.pooled_performance()
    if pooled is not None:
        perf = Table(title="Base model (gene_performance.tsv)")
        for c in ("splice_type", "genes", "TP", "FP", "FN", "precision", "recall", "f1", "mean_gene_f1"):
            perf.add_column(c, justify="left" if c == "splice_type" else "right")
        for r in pooled.iter_rows(named=True):
            perf.add_row(r["splice_type"], *(f"{r[c]:,}" for c in ("genes", "TP", "FP", "FN")),
                         *("-" if r[c] is None else f"{r[c]:.4f}" for c in ("precision", "recall", "f1", "mean_gene_f1")))
        con.print(perf)
    for note in s.notes:
        con.print(f"[yellow]{note}[/]")
    if args.report:
        con.print(f"report: {args.report}")
    return 0


# --------------------------------------------------------------------------- merge


def _merge_parser(sub: argparse._SubParsersAction) -> None:
    from .merging import ON_OVERLAP

    p = sub.add_parser("merge", help="combine datasets built separately into one (hard links, one manifest)",
                       description="Merge the masters of builds on different gene sets. Datasets with other "
                                   "row-determining settings, inputs or schemas are refused with the differences "
                                   "listed. The result passes `meta-spliceai validate`.")
    p.add_argument("out", type=Path, help="new dataset folder to create")
    p.add_argument("datasets", type=Path, nargs="+", metavar="DATASET", help="dataset folders to merge, in order")
    p.add_argument("--on-overlap", choices=ON_OVERLAP, default="error",
                   help="a gene in two datasets: error (default), or dedup (keep it from the first dataset)")
    p.set_defaults(handler=_run_merge)


def _run_merge(args: argparse.Namespace) -> int:
    from .merging import merge

    res = merge(out=args.out, datasets=args.datasets, on_overlap=args.on_overlap)
    con = _console()
    con.print(f"merged {len(res.datasets)} dataset(s) into {res.output}: {res.files} file(s) ({res.linked} linked, "
              f"{res.rewritten} rewritten), {res.genes:,} genes, {res.rows:,} rows")
    if res.overlapping_genes:
        con.print(f"[yellow]{len(res.overlapping_genes)} gene(s) present twice were kept from the first dataset: "
                  f"{', '.join(res.overlapping_genes[:10])}[/]")
    return 0


# --------------------------------------------------------------------------- main

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _demo_parser, _reference_parser, _predict_parser, _build_parser, _gene_ids_parser, _train_parser,
    _apply_parser, _patch_parser, _dedup_parser, _validate_parser, _summary_parser, _merge_parser,
]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump, exit code 2) and :class:`HelpFormatter` everywhere."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs["formatter_class"] = HelpFormatter  # one formatter for every parser, whoever adds it
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _SubParser(_Parser):
    """A subcommand's parser: also takes ``-v``/``-vv`` after the subcommand (the original's command lines)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("conflict_handler", "resolve")  # a command may define its own -v
        super().__init__(*args, **kwargs)
        self.add_argument("-v", "--verbose", action="count", default=0, dest="sub_verbose",
                          help="-v info (each batch with its timing), -vv debug logging")


DESCRIPTION = """\
Build training datasets for splice-site meta-models on top of SpliceAI (or OpenSpliceAI) scores:
index a genome FASTA + GTF/GFF3, score gene bodies with the base model, build a labelled,
resumable Parquet dataset batch by batch (locally, on worker processes or on Ray), maintain it
(patch, dedup, validate, summary, merge), train a meta-model compared like for like with the base
model, and apply it for corrected scores and site calls."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meta-spliceai", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"meta-spliceai {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubParser)
    for add in SUBCOMMANDS:
        add(sub)
    for choice in sub._choices_actions:  # a one-line description for commands added without one
        p = sub.choices[choice.dest]
        if p.description is None and choice.help:
            p.description = choice.help[:1].upper() + choice.help[1:] + "."
    return parser


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


#: polars' allocator (jemalloc) keeps freed pages ~10 s by default; a 6-mer build frees ~100 MB a second, so
#: pages go back after 1 s (read when polars loads, i.e. after this is set; a user's own setting wins)
ALLOCATOR_ENV = {"_RJEM_MALLOC_CONF": "dirty_decay_ms:1000,muzzy_decay_ms:0"}


def main(argv: Sequence[str] | None = None) -> int:
    for var, value in ALLOCATOR_ENV.items():
        os.environ.setdefault(var, value)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `meta-spliceai`: what there is to run
        parser.print_help()
        return 0
    _setup_logging(args.verbose + getattr(args, "sub_verbose", 0))
    name = f"meta-spliceai {args.command}"
    try:
        return int(args.handler(args) or 0)
    except MetaSpliceAIError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # a file system refusal the checks did not foresee: still one line, exit 2
        where = f" ({err.filename})" if err.filename else ""
        print(f"{name}: error: {err.strerror or _one_line(err)}{where}; check that the path exists and is "
              "writable, then re-run (-vv for details)", file=sys.stderr)
        logging.getLogger(__name__).debug("details", exc_info=True)
        return 2
    except Exception as err:
        if not _is_data_error(err):
            raise
        print(f"{name}: error: cannot read a data file: {_one_line(err)[:300]}; the file is damaged or not what "
              "the command expects (re-create it, or -vv for details)", file=sys.stderr)
        logging.getLogger(__name__).debug("details", exc_info=True)
        return 2


def _is_data_error(err: BaseException) -> bool:
    """Errors of the Arrow/Parquet and polars readers: a damaged or foreign file, not a bug of ours."""
    try:
        import pyarrow as pa

        if isinstance(err, pa.ArrowException):
            return True
    except ImportError:  # pragma: no cover
        pass
    import polars as pl

    return isinstance(err, (pl.exceptions.ComputeError, pl.exceptions.SchemaError))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["main", "build_parser", "config"]
