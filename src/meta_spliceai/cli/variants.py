"""``variants``: SpliceAI delta scores of a VCF, with SpliceAI's own flags (``-I -O -R -A -D -M``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import config
from ..storage import writes_through
from .common import add_parallel_args, add_subcommand, console, parallel_kwargs

EPILOG = """\
Same output as SpliceAI 1.3.1's `spliceai -I in.vcf -O out.vcf -R genome.fa -A grch37`: the same
header line and INFO field (SpliceAI=ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL),
the same genes, scores and skip rules, computed with the exact base model, batched.
  meta-spliceai variants -I in.vcf -O out.vcf.gz -R genome.fa -A grch37
  meta-spliceai variants -I in.vcf.gz -O out.vcf -R genome.fa -A genes.gtf -D 500 -M 1 --workers 2
  meta-spliceai variants -I in.vcf -O out.vcf -R genome.fa -A grch37 --precomputed spliceai_scores.raw.snv.hg19.vcf.gz
  meta-spliceai variants -I in.vcf -O out.vcf -R genome.fa -A genes.gtf --model MODEL_DIR \
      --predictions spliceai_store openspliceai_store --weights openspliceai=CHECKPOINTS_DIR
"""


def add_variants(sub: argparse._SubParsersAction) -> None:
    d = config.DEFAULT_VARIANTS
    p = add_subcommand(sub, "variants", "SpliceAI delta scores of a VCF (SpliceAI's flags, same output, faster)",
                       epilog=EPILOG)
    p.add_argument("-I", dest="input", type=Path, default=Path("-"), metavar="VCF",
                   help="input VCF (plain or bgzipped; default -, standard input, as SpliceAI's)")
    p.add_argument("-O", dest="output", type=Path, default=Path("-"), metavar="VCF",
                   help="output VCF; .vcf.gz is bgzipped and tabix-indexed (default -, standard output, as SpliceAI's)")
    p.add_argument("-R", dest="reference", type=Path, required=True, metavar="FASTA", help="genome FASTA (plain or BGZF)")
    p.add_argument("-A", dest="annotation", required=True, metavar="ANNOTATION",
                   help="grch37 or grch38 (the tables of the installed spliceai package), a SpliceAI-format table, "
                        "or a GTF/GFF3")
    p.add_argument("-D", dest="distance", type=int, default=d.distance, metavar="DISTANCE",
                   help=f"maximum distance between the variant and a gained/lost site (0-{d.max_distance})")
    p.add_argument("-M", dest="mask", type=int, default=d.mask, choices=(0, 1), metavar="MASK",
                   help="1: mask gains of annotated sites and losses of unannotated ones")
    p.add_argument("--chunk-records", type=int, default=d.chunk_records,
                   help="records per resumable chunk (and per unit of --workers)")
    p.add_argument("--runtime", choices=config.RUNTIMES, default=config.DEFAULT_PREDICT.runtime,
                   help="base-model runtime (auto: ONNX Runtime on the CPU)")
    p.add_argument("--model", type=Path, metavar="MODEL_DIR",
                   help="a trained meta-model (train -o/--output-dir): also a MetaSpliceAI INFO key from its corrected "
                        "tracks (needs --predictions and -A as the store's GTF/GFF3)")
    p.add_argument("--predictions", type=Path, nargs="+", metavar="STORE",
                   help="base-model prediction store(s) of the genes (meta-spliceai predict), read with --model: one "
                        "per base model of the model card, in card order")
    p.add_argument("--weights", nargs="+", metavar="[MODEL=]DIR",
                   help="with --model: checkpoints of the card's base models that need them (openspliceai=DIR ...)")
    p.add_argument("--no-shared-reference", action="store_true",
                   help="score each variant's reference window on its own instead of one pass per gene "
                        "(a benchmark lever: the same numbers, slower on dense VCFs)")
    p.add_argument("--no-cone", action="store_true",
                   help="run every alternate allele's whole window through the model instead of only its cone of "
                        "influence (a benchmark lever: the same numbers, ~2-3x slower)")
    p.add_argument("--precomputed", nargs="+", type=Path, default=[], metavar="FILE.vcf.gz",
                   help="bgzipped, tabix-indexed VCFs with SpliceAI entries (Illumina's spliceai_scores.*.vcf.gz, or a "
                        "spliceai / variants output) that supply the records they hold; the others are computed. Each "
                        "file is trusted only if a seeded random sample of the records it would supply "
                        "(min(all, max(30, 1 %%))) recomputes identically; the output is the same bytes")
    p.add_argument("--raw-scores", type=Path, metavar="OUT.parquet",
                   help="also write the reference and alternate acceptor and donor scores behind every delta: one row "
                        "per scored (record, allele, gene) and position (1-based genome) of its +-D window; with "
                        "--model the corrected ones beside them")
    add_parallel_args(p, "chunks of records")
    p.set_defaults(handler=run_variants)


def run_variants(args: argparse.Namespace) -> int:
    from ..variants.deltas import SKIP_REASONS
    from ..variants.vcf import variants

    s = variants(input=args.input, output=args.output, reference=args.reference, annotation=args.annotation,
                 distance=args.distance, mask=args.mask, chunk_records=args.chunk_records, runtime=args.runtime,
                 share_reference=not args.no_shared_reference, cone=not args.no_cone, model=args.model,
                 predictions=args.predictions, weights=args.weights, precomputed=args.precomputed,
                 raw_scores=args.raw_scores, progress=True, **parallel_kwargs(args))
    con = console(stderr=writes_through(args.output))  # stdout may carry the VCF
    skipped = sum(s.skipped.values())
    con.print(f"{s.records:,} records, {s.scored:,} scored ({s.entries:,} SpliceAI entries), {skipped:,} skipped "
              f"as SpliceAI skips them, in {s.seconds:,.1f} s ({s.records / max(s.seconds, 1e-9):,.1f} records/s)")
    for reason, n in s.skipped.items():
        con.print(f"  skipped ({reason}: {SKIP_REASONS[reason]}): {n:,}")
    for source, n in s.sources.items():
        con.print(f"  from {'computation' if source == 'computed' else source}: {n:,} records")
    if s.sources:
        con.print(f"  precomputed entries checked: {s.verified:,} sampled records recomputed, identical")
    if s.chunks_resumed:
        con.print(f"  resumed: {s.chunks_resumed} chunk(s) were already done")
    con.print(f"annotated VCF: {s.output}")
    if args.raw_scores is not None:
        con.print(f"raw scores: {args.raw_scores}")
    return 0
