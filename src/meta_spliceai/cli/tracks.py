"""``tracks``: per-nucleotide genome-browser tracks (bigWig, bedGraph) of a prediction store."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_output_dir, add_strict_annotation, add_subcommand, console

EPILOG = """\
Four stranded tracks in OUT: donor.plus.bw, donor.minus.bw, acceptor.plus.bw, acceptor.minus.bw, in the
FASTA's contig names and sizes (without --fasta: the annotation's names, sized by the largest gene end).
Overlapping genes on a strand: the maximum at each nucleotide; nucleotides past a contig end are dropped.
  meta-spliceai tracks preds/ --gtf genes.gtf --fasta genome.fa -o tracks/
  meta-spliceai tracks applied/scores --gtf genes.gtf --fasta genome.fa -o delta/ --delta-from preds/ --bedgraph
"""


def add_tracks(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "tracks", "per-nucleotide bigWig tracks of a prediction store (base or corrected)",
                       epilog=EPILOG)
    p.add_argument("store", type=Path, metavar="STORE",
                   help="prediction store (meta-spliceai predict), or apply's --out folder / its scores/ store")
    p.add_argument("--gtf", type=Path, required=True, help="the GTF/GFF3 the store was predicted with")
    add_strict_annotation(p)
    p.add_argument("--fasta", type=Path,
                   help="genome FASTA: contig names and sizes of the tracks (default: the annotation's names, "
                        "each sized by its largest gene end)")
    add_output_dir(p, "output folder for the four tracks", "--out")
    p.add_argument("--delta-from", type=Path, metavar="STORE2",
                   help="write STORE - STORE2 at each gene and position (e.g. corrected minus base scores)")
    p.add_argument("--bedgraph", action="store_true", help="also write the four tracks as .bedGraph text")
    p.set_defaults(handler=run_tracks)


def run_tracks(args: argparse.Namespace) -> int:
    from ..basemodel.tracks import tracks

    res = tracks(store=args.store, gtf=args.gtf, out=args.output_dir, fasta=args.fasta, delta_from=args.delta_from,
                 bedgraph=args.bedgraph, progress=True)
    con = console()
    nt = res["nucleotides"]
    con.print(f"{res['genes']:,} genes, {nt['+']:,} nt on + and {nt['-']:,} nt on -"
              f"{' (meta - base)' if res['delta'] else ''} over {res['contigs']:,} contig(s)")
    if res["dropped_nt"]:
        con.print(f"dropped past contig ends: {res['dropped_nt']:,} nt")
    for f in res["files"]:
        con.print(f"track: {f}")
    return 0
