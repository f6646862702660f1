"""Command line: ``meta-spliceai <subcommand>``. Each subcommand calls one library function of the same name."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import config
from .errors import MetaSpliceAIError

Handler = Callable[[argparse.Namespace], int]


def _console():
    from rich.console import Console

    return Console()


def _setup_logging(verbose: int) -> None:
    from rich.logging import RichHandler

    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    from rich.console import Console

    handler = RichHandler(console=Console(stderr=True), show_path=verbose > 1)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)


def _add_reference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fasta", type=Path, help="genome FASTA (plain or BGZF); default: the built-in demo reference")
    p.add_argument("--gtf", type=Path, help="gene annotation, GTF or GFF3 (plain or gzip); default: the demo reference")


# --------------------------------------------------------------------------- reference


def _reference_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reference", help="index and inspect a FASTA + annotation pair before a long run")
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


# --------------------------------------------------------------------------- main

SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_reference_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meta-spliceai",
        description="Build training datasets for splice-site meta-models on top of SpliceAI, and train them.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except MetaSpliceAIError as err:
        print(f"meta-spliceai {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"meta-spliceai {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["main", "build_parser", "config"]
