"""``build``: the incremental dataset builder (and ``--patch-dataset``, composed here: build, then patch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import config
from .common import (
    add_model_args,
    add_output_dir,
    add_parallel_args,
    add_reference_args,
    add_subcommand,
    console,
    parallel_kwargs,
)
from .maintain import print_patch

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


def add_build(sub: argparse._SubParsersAction) -> None:
    d = config.DEFAULT_BUILD
    p = add_subcommand(sub, "build", "build (or resume) a meta-model training dataset batch by batch",
                       epilog=BUILD_EPILOG)
    add_reference_args(p)
    add_output_dir(p, "build folder (resumable)")
    p.add_argument("--n-genes", type=int, help=f"genes to build (default {d.n_genes}; not with custom/all)")
    p.add_argument("--subset-policy", choices=config.SUBSET_POLICIES,
                   help=f"how genes are chosen (default {d.subset_policy}; custom with --gene-ids-file)")
    p.add_argument("--gene-ids-file", type=Path, help="genes to build (IDs with/without version, or names; - for standard input)")
    p.add_argument("--gene-col", help="column of --gene-ids-file holding the genes (default gene_id)")
    p.add_argument("--gene-types", nargs="+", metavar="TYPE", help="only genes of these types (e.g. protein_coding)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="genes per batch")
    p.add_argument("--batch-rows", type=int, default=d.batch_rows, help="rows per Parquet row group (bounds memory)")
    p.add_argument("--run-workflow", action="store_true", help="compute missing base-model predictions")
    p.add_argument("--predictions", type=Path, nargs="+", metavar="STORE",
                   help="prediction store(s) to read/extend (default OUTPUT_DIR/predictions); several: one per base "
                        "model, the first deciding TP/FP/FN and the TN sampling (a stacked build)")
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
    add_model_args(p, stacked=True)
    add_parallel_args(p, "batches")
    p.set_defaults(handler=_run_build)


def print_build(summary) -> None:
    from rich.table import Table

    con = console()
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
    from ..dataset.builder import build

    summary = build(
        output_dir=args.output_dir, fasta=args.fasta, gtf=args.gtf, subset_policy=args.subset_policy,
        n_genes=args.n_genes, gene_ids_file=args.gene_ids_file, gene_col=args.gene_col, gene_types=args.gene_types,
        batch_size=args.batch_size, batch_rows=args.batch_rows, threshold=args.threshold,
        consensus_window=args.consensus_window, hard_prob=args.hard_prob, window=args.window,
        easy_ratio=args.easy_ratio, kmer_sizes=args.kmer_sizes, feature_sets=args.feature_sets, seed=args.seed,
        run_workflow=args.run_workflow,
        overwrite=args.overwrite, predictions=args.predictions, device=args.device, base_model=args.base_model,
        base_models=args.base_models, weights=args.weights, precision=args.precision, runtime=args.runtime, progress=True,
        **parallel_kwargs(args),
    )
    print_build(summary)
    if args.patch_dataset:  # composed here, once the build is complete (patch takes the folder's lock itself)
        from ..maintenance.patching import patch

        print_patch(patch(dataset=summary.output_dir, inplace=True))
    return 0
