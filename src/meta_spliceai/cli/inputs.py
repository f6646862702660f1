"""Commands on the inputs: ``reference`` (inspect a FASTA + annotation), ``predict`` (base-model scores
into a store), ``gene-ids`` (genes of a store or build)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import config
from .common import (
    add_strict_annotation,
    add_model_args,
    add_output_dir,
    add_parallel_args,
    add_reference_args,
    add_subcommand,
    console,
    parallel_kwargs,
)


def add_reference(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "reference", "index and inspect a FASTA + annotation pair before a long run")
    add_reference_args(p)
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON object (every split and dropped annotation record included)")
    p.set_defaults(handler=_run_reference)


def _run_reference(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..reference.report import reference

    rep = reference(fasta=args.fasta, gtf=args.gtf, strict_annotation=args.strict_annotation)
    if args.json:
        import json
        import sys

        sys.stdout.write(json.dumps(rep.to_dict(), default=str) + "\n")
        return 0
    con = console()
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
    print_annotation_issues(con, rep)
    for what, ids in (("without sequence", rep.missing_sequence), ("mostly N", rep.mostly_n)):
        if ids:
            more = f" … ({len(ids)} in all)" if len(ids) > 10 else ""
            con.print(f"[red]genes {what}: {', '.join(ids[:10])}{more}[/]")
        else:
            con.print(f"genes {what}: none")
    return 0


def print_annotation_issues(con, rep) -> None:  # noqa: ANN001
    """The records split or dropped on reading, and the contigs skipped or not trusted."""
    n = rep.annotation_issues
    con.print(f"split on reading: {n.get('split_gene', 0):,} gene ID(s) and {n.get('split_transcript', 0):,} "
              "transcript ID(s) at several contigs/strands (one per place: the others renamed ID@CONTIG+/-)")
    dropped = f"dropped on reading: {n.get('dropped_transcript', 0):,} transcript(s) with overlapping or duplicated exons"
    con.print(dropped + f", {n.get('dropped_gene', 0):,} gene(s) left without transcripts (--json lists them)")
    if rep.skipped_contigs:
        parts = [f"{c} ({g:,} genes)" for c, g in list(rep.skipped_contigs.items())[:10]]
        more = f" … ({len(rep.skipped_contigs)} contigs)" if len(rep.skipped_contigs) > 10 else ""
        con.print(f"[yellow]contigs skipped (not in the FASTA): {sum(rep.skipped_contigs.values()):,} genes on "
                  f"{', '.join(parts)}{more}[/]")
    for contig, c in rep.contig_conflicts.items():
        con.print(f"[red]contig {contig} ({c['annotation_length']:,} nt) is not FASTA's {c['fasta']} "
                  f"({c['fasta_length']:,} nt): different mitochondria, its {c['genes']:,} genes are left out[/]")


def add_predict(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "predict", "score gene bodies with the base model into a prediction store")
    add_reference_args(p)
    add_output_dir(p, "prediction store folder (resumable, one file per gene); with --sequences the Parquet file to write "
                      "(- for TSV on standard output)", "--out")
    p.add_argument("--genes", nargs="+", metavar="GENE", help="gene IDs or names")
    p.add_argument("--gene-ids-file", type=Path,
                   help="file of gene IDs or names (one per line, or a TSV/CSV column; - for standard input)")
    p.add_argument("--gene-col", help="column of --gene-ids-file holding the genes (default gene_id)")
    p.add_argument("--n-genes", type=int, help="only the first N selected genes (in chrom, start order)")
    p.add_argument("--batch-size", type=int, default=config.DEFAULT_PREDICT.batch_size,
                   help="sequences per forward pass for short genes")
    p.add_argument("--chunk-size", type=int, default=config.DEFAULT_PREDICT.chunk_size,
                   help="nucleotides per forward pass for long genes (results do not depend on it)")
    p.add_argument("--overwrite", action="store_true",
                   help="recompute the chosen genes even if the store has them (e.g. after an annotation change)")
    p.add_argument("--sequences", metavar="SEQS.fa",
                   help="score every nucleotide of each record of this FASTA (plain or gzip; - for standard input) "
                        "instead of genes, each padded with --flank N on each side as SpliceAI's README does, into "
                        "-o OUT: a Parquet table sequence, position (1-based), neither, acceptor, donor (-o - : TSV "
                        "on standard output)")
    p.add_argument("--flank", type=int, default=config.FLANK, metavar="N",
                   help=f"with --sequences: N added on each side of each record (default {config.FLANK}, as SpliceAI's "
                        f"README: every nucleotide is scored; with less, the record's own first and last "
                        f"{config.FLANK} - N nt are context only, e.g. 0 for records that carry their own context)")
    add_model_args(p)
    add_parallel_args(p, "genes")
    p.set_defaults(handler=_run_predict)


def _run_predict_sequences(args: argparse.Namespace) -> int:
    from ..basemodel.sequences import predict_sequences
    from ..errors import InputError
    from ..storage import writes_through

    given = [flag for flag, v in (("--genes", args.genes), ("--gene-ids-file", args.gene_ids_file), ("--gtf", args.gtf),
                                  ("--fasta", args.fasta), ("--n-genes", args.n_genes), ("--overwrite", args.overwrite),
                                  ("--workers", args.workers != config.DEFAULT_PARALLEL.workers)) if v]
    if given:
        raise InputError(f"--sequences scores the records of its FASTA, not genes: drop {', '.join(given)}")
    res = predict_sequences(sequences=args.sequences, out=args.output_dir, flank=args.flank, base_model=args.base_model,
                            weights=args.weights, device=args.device, precision=args.precision,
                            chunk_size=args.chunk_size, batch_size=args.batch_size, runtime=args.runtime, progress=True)
    con = console(stderr=writes_through(args.output_dir))  # stdout may carry the table
    short = res.pop("too_short")
    for k, v in res.items():
        con.print(f"{k:>18}: {v:,.1f}" if isinstance(v, float) else f"{k:>18}: {v}")
    if short:
        con.print(f"{'too short':>18}: {len(short)} record(s) without a score: {', '.join(short[:10])}")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from ..basemodel.predict import predict

    if args.sequences is not None:
        return _run_predict_sequences(args)

    res = predict(fasta=args.fasta, gtf=args.gtf, out=args.output_dir, genes=args.genes, gene_ids_file=args.gene_ids_file,
                  gene_col=args.gene_col, n_genes=args.n_genes, batch_size=args.batch_size, device=args.device,
                  base_model=args.base_model, weights=args.weights, precision=args.precision,
                  chunk_size=args.chunk_size, runtime=args.runtime, progress=True, overwrite=args.overwrite,
                  **parallel_kwargs(args))
    con = console()
    for k, v in res.items():
        con.print(f"{k:>18}: {v:,.1f}" if isinstance(v, float) else f"{k:>18}: {v}")
    con.print(f"prediction store: {args.output_dir}  (polars.scan_parquet('{args.output_dir}'))")
    return 0


def add_gene_ids(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "gene-ids", "list the genes (and transcript IDs) present in a prediction store")
    p.add_argument("--eval-dir", type=Path, required=True, help="prediction store, or a build output folder")
    p.add_argument("--out", type=Path, required=True,
                   help="TSV to write (gene_id, gene_name, transcript_ids); - for standard output")
    p.add_argument("--gtf", type=Path, help="annotation for names and transcript IDs (a build folder has its own)")
    add_strict_annotation(p)
    p.add_argument("--n-genes", type=int, help="a seeded random sample of N genes")
    p.add_argument("--seed", type=int, default=config.DEFAULT_BUILD.seed, help="seed of the sample")
    p.set_defaults(handler=_run_gene_ids)


def _run_gene_ids(args: argparse.Namespace) -> int:
    from ..dataset.selection import gene_ids

    table = gene_ids(eval_dir=args.eval_dir, out=args.out, gtf=args.gtf, n_genes=args.n_genes, seed=args.seed)
    from ..storage import writes_through

    # stdout (or a FIFO/device) carries the table: the note goes to stderr
    console(stderr=writes_through(args.out)).print(f"{table.height:,} genes written to {args.out}")
    return 0
