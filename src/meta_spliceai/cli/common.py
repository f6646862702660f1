"""Shared parser helpers and output of the command line: one console, one help format, and the option
groups several commands take."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import config


def console(stderr: bool = False):
    """Console for results (stdout; ``stderr`` when stdout carries an output file, ``--out -``). Not a
    terminal: no hard wrapping, so paths stay whole in logs."""
    from rich.console import Console

    if (sys.stderr if stderr else sys.stdout).isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, soft_wrap=True, width=PLAIN_WIDTH)


#: line width of rich output when it goes to a file (no terminal to fit): never wrap paths
PLAIN_WIDTH = 1000


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


OUTPUT_DIR_FLAGS = ("-o", "--output-dir")


def add_output_dir(p: argparse.ArgumentParser | argparse._ActionsContainer, help: str, *aliases: str,
                   required: bool = True) -> None:
    """``-o/--output-dir DIR`` (dest ``output_dir``), the one spelling of every command's output folder;
    ``aliases`` are the command's older spellings (``--out``, ``--out-dir``, ``--dst``), kept working."""
    p.add_argument(*OUTPUT_DIR_FLAGS, *aliases, dest="output_dir", type=Path, required=required, metavar="DIR",
                   help=help)


def add_positional_output_dir(p: argparse.ArgumentParser, help: str) -> None:
    """A command whose output folder was a positional argument: it stays one, and ``-o/--output-dir``
    works too (read both with :func:`output_dir_of`)."""
    p.add_argument("output_dir_pos", type=Path, nargs="?", metavar="OUTPUT_DIR", help=f"{help} (or -o DIR)")
    add_output_dir(p, f"{help} (instead of the positional OUTPUT_DIR)", required=False)


def output_dir_of(args: argparse.Namespace) -> Path:
    """The output folder of :func:`add_positional_output_dir`: ``-o DIR`` or the positional one, not both."""
    from ..errors import InputError

    pos, opt = getattr(args, "output_dir_pos", None), args.output_dir
    if pos is not None and opt is not None:
        raise InputError(f"two output folders given ({pos} and -o {opt}): give one")
    if pos is None and opt is None:
        raise InputError("no output folder given: add -o DIR (or the folder as the first argument)")
    return opt if opt is not None else pos


def add_reference_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fasta", type=Path, help="genome FASTA (plain or BGZF); default: the built-in demo reference")
    p.add_argument("--gtf", type=Path, help="gene annotation, GTF or GFF3 (plain or gzip); default: the demo reference")


def base_models_list(text: str) -> tuple[str, ...]:
    """``--base-models spliceai,openspliceai`` (commas or spaces) -> names, checked against BASE_MODELS."""
    names = tuple(x for x in text.replace(",", " ").split() if x)
    bad = [x for x in names if x not in config.BASE_MODELS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"--base-models takes names among {', '.join(config.BASE_MODELS)}, "
                                         f"comma-separated, got {text!r}")
    return names


def add_model_args(p: argparse.ArgumentParser, stacked: bool = False) -> None:
    d = config.DEFAULT_PREDICT
    p.add_argument("--base-model", choices=config.BASE_MODELS, default=d.base_model,
                   help="spliceai (weights of the installed `spliceai` package, CC BY-NC 4.0) or openspliceai "
                        "(OpenSpliceAI MANE checkpoints given with --weights)")
    if stacked:
        p.add_argument("--base-models", type=base_models_list, metavar="A,B,...",
                       help="several base models, the first deciding TP/FP/FN and sampling: one store each (with "
                            "--predictions in the same order, or OUTPUT_DIR/predictions/<model> with --run-workflow)")
        p.add_argument("--weights", nargs="+", metavar="[MODEL=]DIR",
                       help="weights: openspliceai needs the folder of its .pt checkpoints; spliceai takes .h5 files "
                            "(default: those of the installed spliceai package); with several models MODEL=DIR each")
    else:
        p.add_argument("--weights", type=Path,
                       help="weights: openspliceai needs the folder of its .pt checkpoints; spliceai takes .h5 files "
                            "(default: those of the installed spliceai package)")
    p.add_argument("--device", choices=config.DEVICES, default=d.device, help="auto: CUDA when present, else CPU")
    p.add_argument("--precision", choices=config.PRECISIONS, default=d.precision,
                   help="float32 is exact; bfloat16 is faster on GPUs and CPUs with AVX512-BF16 or AMX (refused on CPUs "
                        "without bfloat16 instructions), not exact (site calls agree, |dp| <= 0.01)")
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


def parallel_kwargs(args: argparse.Namespace) -> dict[str, object]:
    return {"workers": args.workers, "threads_per_worker": args.threads_per_worker, "executor": args.executor,
            "ray_address": args.ray_address}


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
