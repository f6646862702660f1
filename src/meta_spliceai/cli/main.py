"""Command line: ``meta-spliceai <subcommand>``. Each subcommand calls one library function of the same name."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence

from .. import __version__
from ..errors import MetaSpliceAIError
from ..storage import is_disk_full
from . import build, demo, inputs, maintain, metamodel, tracks, variants
from .common import HelpFormatter, one_line

#: the package's own loggers (``meta_spliceai.*``): -v / -vv show their info / debug lines
OWN_LOGGER = "meta_spliceai"


class _OwnRecords(logging.Filter):
    """Below WARNING, only records of our own loggers: -vv is our debug lines, not h5py's, numba's,
    matplotlib's or urllib3's (those need -vvv)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name == OWN_LOGGER or record.name.startswith(OWN_LOGGER + ".")


def _setup_logging(verbose: int) -> None:
    """Logs to stderr: rich on a terminal, plain timestamped unwrapped lines when redirected.

    -v: info of ours; -vv: debug of ours; -vvv: also the libraries' info and debug lines."""
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
    if verbose < 3:  # the libraries stay at WARNING: their debug records are not even made
        handler.addFilter(_OwnRecords())
        logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
        logging.getLogger(OWN_LOGGER).setLevel(level)
    else:
        logging.basicConfig(level=level, handlers=[handler], force=True)
        logging.getLogger(OWN_LOGGER).setLevel(logging.NOTSET)


# --------------------------------------------------------------------------- reference


# --------------------------------------------------------------------------- predict


# --------------------------------------------------------------------------- build


# --------------------------------------------------------------------------- gene-ids


# --------------------------------------------------------------------------- train


# --------------------------------------------------------------------------- apply


# --------------------------------------------------------------------------- demo


# --------------------------------------------------------------------------- patch


# --------------------------------------------------------------------------- dedup


# --------------------------------------------------------------------------- validate


# --------------------------------------------------------------------------- summary


# --------------------------------------------------------------------------- merge


# --------------------------------------------------------------------------- main

#: the table of commands, in the order ``meta-spliceai --help`` lists them: each adds its parser
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    demo.add_demo, inputs.add_reference, inputs.add_predict, build.add_build, inputs.add_gene_ids,
    metamodel.add_train, metamodel.add_apply, maintain.add_patch, maintain.add_dedup, maintain.add_validate,
    maintain.add_summary, maintain.add_merge, variants.add_variants, tracks.add_tracks,
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
                          help="-v info (each batch with its timing), -vv debug logging (-vvv: also of the "
                               "libraries)")


DESCRIPTION = """\
Build training datasets for splice-site meta-models on top of SpliceAI (or OpenSpliceAI) scores:
index a genome FASTA + GTF/GFF3, score gene bodies with the base model, build a labelled,
resumable Parquet dataset batch by batch (locally, on worker processes or on Ray), maintain it
(patch, dedup, validate, summary, merge), train a meta-model compared like for like with the base
model, and apply it for corrected scores and site calls."""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meta-spliceai", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"meta-spliceai {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v info, -vv debug logging (-vvv: also of the libraries)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubParser)
    for add in SUBCOMMANDS:
        add(sub)
    for choice in sub._choices_actions:  # a one-line description for commands added without one
        p = sub.choices[choice.dest]
        if p.description is None and choice.help:
            p.description = choice.help[:1].upper() + choice.help[1:] + "."
    return parser


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
        with _strict_annotation(getattr(args, "strict_annotation", False)):
            return int(args.handler(args) or 0)
    except MetaSpliceAIError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        log = logging.getLogger(__name__)
        if is_disk_full(err):  # from any writer: name its file (the OS's, or the one being written) and the fix
            from ..storage import being_written, disk_full_message

            path = getattr(err, "filename", None) or being_written() or _output_of(args)
            print(f"{name}: error: {disk_full_message(err, path)}", file=sys.stderr)
        elif isinstance(err, OSError):  # a file system refusal the checks did not foresee: still one line, exit 2
            where = f" ({err.filename})" if err.filename else ""
            print(f"{name}: error: {err.strerror or one_line(err)}{where}; check that the path exists and is "
                  "writable, then re-run (-vv for details)", file=sys.stderr)
        elif _is_data_error(err):
            print(f"{name}: error: cannot read a data file: {one_line(err)[:300]}; the file is damaged or not what "
                  "the command expects (re-create it, or -vv for details)", file=sys.stderr)
        else:
            raise
        log.debug("details", exc_info=True)
        return 2


@contextlib.contextmanager
def _strict_annotation(strict: bool) -> Iterator[None]:
    """``--strict-annotation`` for every annotation reader of the command, in this process and its workers
    (an environment variable they inherit), restored afterwards."""
    from ..reference.annotation import STRICT_ENV

    before = os.environ.get(STRICT_ENV)
    if strict:
        os.environ[STRICT_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(STRICT_ENV, None)
        else:
            os.environ[STRICT_ENV] = before


def _output_of(args: argparse.Namespace) -> str | None:
    """The output file or folder a command was given (whichever spelling it takes)."""
    for key in ("output_dir", "out", "out_dir", "dst", "output"):
        value = getattr(args, key, None)
        if value is not None and str(value) != "-":
            return str(value)
    return None


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


__all__ = ["main", "build_parser"]
