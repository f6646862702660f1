"""Dataset maintenance commands: ``patch``, ``dedup``, ``validate``, ``summary`` (and its HTML report), ``merge``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_output_dir, add_strict_annotation, add_subcommand, console


def add_patch(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "patch", help="refresh gene-level columns from an annotation and upgrade old files",
                       description="Fill or refresh the gene-level columns (gene_name, gene_type, transcript and "
                                   "exon counts) from the build's annotation or --gtf, and bring files of an older "
                                   "schema_version up to the current one. Idempotent; reports genes whose type "
                                   "changed. Output: --inplace, -o/--output-dir DIR, or DATASET_patched/.")
    p.add_argument("dataset", type=Path, help="dataset folder (a build's output folder)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--inplace", action="store_true", help="replace the dataset's files (crash-safe swap)")
    add_output_dir(where, "write the patched dataset here (default DATASET_patched)", "--dst", required=False)
    p.add_argument("--gtf", type=Path, help="annotation to take gene types and structure from (default: the build's)")
    add_strict_annotation(p)
    p.set_defaults(handler=_run_patch)


def print_patch(res) -> None:
    con = console()
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
    from ..maintenance.patching import patch

    print_patch(patch(dataset=args.dataset, dst=args.output_dir, inplace=args.inplace, gtf=args.gtf))
    return 0


def _key_columns(text: str) -> tuple[str, ...]:
    return tuple(c for c in text.replace(",", " ").split() if c)


def add_dedup(sub: argparse._SubParsersAction) -> None:
    from ..maintenance.dedup import DEFAULT_KEY

    p = add_subcommand(sub, "dedup", help="remove rows that describe the same genomic position twice",
                       description="Remove duplicate rows across files (overlapping genes on a strand, repeated "
                                   "genes from merged builds). Of the rows sharing a key, the one whose gene_id "
                                   "sorts first survives (then the first file, then the first row). Output: "
                                   "DATASET_dedup/ unless -o/--output-dir or --inplace.")
    p.add_argument("dataset", type=Path, help="dataset folder (a build's output folder)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--inplace", action="store_true", help="replace the dataset's files (crash-safe swap)")
    add_output_dir(where, "write the deduplicated dataset here (default DATASET_dedup)", "--dst", required=False)
    p.add_argument("--key", type=_key_columns, default=DEFAULT_KEY,
                   help=f"columns that identify a row (default {','.join(DEFAULT_KEY)})")
    p.set_defaults(handler=_run_dedup)


def _run_dedup(args: argparse.Namespace) -> int:
    from ..maintenance.dedup import CAUSES, dedup

    res = dedup(dataset=args.dataset, dst=args.output_dir, inplace=args.inplace, key=args.key)
    con = console()
    con.print(f"dedup on ({', '.join(res.key)}): {res.rows_in:,} rows in, {res.rows_out:,} out, "
              f"{res.removed_total:,} removed")
    for cause in CAUSES:
        con.print(f"  {cause:<18} {res.removed[cause]:>10,}  ({100 * res.share(cause):.3f} % of rows)")
    con.print(f"{'written to' if res.changed or res.output != res.dataset else 'unchanged:'} {res.output}"
              f" ({len(res.files_rewritten)} file(s) rewritten)")
    return 0


def add_validate(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "validate", help="check a dataset's integrity, labels and leakage (exit 0 only when all pass)",
                       description="Schema, checksums, row counts and files against the manifest; nulls; label "
                                   "domains; pred_type against splice_type and the scores; no gene in two files; "
                                   "every annotated site once; k-mer columns; a leakage audit of every feature. "
                                   "Exit 0 when every check passes, 1 when a problem was found.")
    p.add_argument("dataset", type=Path, help="dataset folder (a build's output folder)")
    p.add_argument("--json", action="store_true", help="print the full report (checks, problems, leakage) as JSON")
    p.add_argument("--gtf", type=Path, help="annotation for the site checks (default: the build's)")
    add_strict_annotation(p)
    p.set_defaults(handler=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    from ..maintenance.validation import validate

    rep = validate(dataset=args.dataset, gtf=args.gtf)
    if args.json:
        print(rep.to_json())
        return 0 if rep.ok else 1
    con = console()
    con.print(f"{rep.dataset}: {rep.files} file(s), {rep.rows:,} rows")
    for check, n in rep.counts.items():
        con.print(f"  {check:<12} {'[green]ok[/]' if n == 0 else f'[red]{n} problem(s)[/]'}")
    for p in rep.problems:
        con.print(f"  {p}", markup=False, highlight=False)
    flagged = [r["feature"] for r in rep.leakage if r["flagged"]]
    con.print(f"leakage audit: {len(rep.leakage)} features, {len(flagged)} flagged")
    con.print("[green]all checks passed[/]" if rep.ok else "[red]validation failed[/]")
    return 0 if rep.ok else 1


def add_summary(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "summary", help="rows, genes, class balance, nulls, base-model performance; an HTML report",
                       description="Summarise a dataset; --report writes one self-contained HTML page with plots "
                                   "(class balance, score distributions by class, rows per batch and gene, the "
                                   "base model's per-gene F1).")
    p.add_argument("dataset", type=Path, help="dataset folder (a build's output folder)")
    p.add_argument("--report", type=Path, help="write the HTML report here (e.g. report.html; - for standard output)")
    p.set_defaults(handler=_run_summary)


def _run_summary(args: argparse.Namespace) -> int:
    from rich.table import Table

    from ..dataset.schema import PRED_TYPES, SPLICE_TYPES
    from ..maintenance.summary import summary

    s = summary(dataset=args.dataset)
    if args.report is not None:
        from ..maintenance.summary_report import write_report

        write_report(s, Path(args.report))
    from ..storage import is_stdio

    con = console(stderr=args.report is not None and is_stdio(args.report))  # stdout carries the page
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


def add_merge(sub: argparse._SubParsersAction) -> None:
    from ..maintenance.merging import ON_OVERLAP

    p = add_subcommand(sub, "merge", help="combine datasets built separately into one (hard links, one manifest)",
                       description="Merge the masters of builds on different gene sets. Datasets with other "
                                   "row-determining settings, inputs or schemas are refused with the differences "
                                   "listed. The result passes `meta-spliceai validate`.")
    p.add_argument("paths", type=Path, nargs="+", metavar="DATASET",
                   help="the new dataset folder to create (unless -o gives it), then the dataset folders to merge, "
                        "in order")
    add_output_dir(p, "new dataset folder to create (then every positional path is a dataset to merge)",
                   required=False)
    p.add_argument("--on-overlap", choices=ON_OVERLAP, default="error",
                   help="a gene in two datasets: error (default), or dedup (keep it from the first dataset)")
    p.set_defaults(handler=_run_merge)


def _run_merge(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..maintenance.merging import merge

    out, datasets = (args.output_dir, args.paths) if args.output_dir is not None else (args.paths[0], args.paths[1:])
    if not datasets:
        raise InputError(f"merge into {out}: name the dataset folders to merge after it")
    res = merge(out=out, datasets=datasets, on_overlap=args.on_overlap)
    con = console()
    con.print(f"merged {len(res.datasets)} dataset(s) into {res.output}: {res.files} file(s) ({res.linked} linked, "
              f"{res.rewritten} rewritten), {res.genes:,} genes, {res.rows:,} rows")
    if res.overlapping_genes:
        con.print(f"[yellow]{len(res.overlapping_genes)} gene(s) present twice were kept from the first dataset: "
                  f"{', '.join(res.overlapping_genes[:10])}[/]")
    return 0
