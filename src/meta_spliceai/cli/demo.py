"""``demo``: the main job on the built-in demo reference."""

from __future__ import annotations

import argparse

from .. import config
from .build import print_build
from .common import add_positional_output_dir, add_subcommand, console, output_dir_of


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = add_subcommand(sub, "demo", "the main job on the built-in demo reference: predict, build, train a meta-model, apply it")
    add_positional_output_dir(p, "folder for everything the demo makes")
    p.add_argument("--device", choices=config.DEVICES, default=config.DEFAULT_PREDICT.device,
                   help="auto: CUDA when present, else CPU")
    p.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from ..demo import demo
    from ..metamodel.report import metrics_table

    res = demo(output_dir=output_dir_of(args), device=args.device)
    con = console()
    con.print(f"reference: {res.reference}", highlight=False)
    print_build(res.build)
    con.print(f"\n[bold]Meta-model vs base model: every nucleotide of {res.metrics['genes']} test genes[/]")
    for r in metrics_table(res.metrics):
        con.print(" | ".join(r), soft_wrap=True, highlight=False)
    con.print(f"site calls of the corrected scores: {res.calls:,}")
    con.print("\n[bold]Artifacts[/]")
    width = max(map(len, res.artifacts), default=0)
    for what, path in res.artifacts.items():
        con.print(f"  {what:<{width}} {path}")
    return 0
