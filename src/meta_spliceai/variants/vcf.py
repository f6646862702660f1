"""``meta-spliceai variants``: a VCF annotated with SpliceAI's delta scores, as SpliceAI 1.3.1's
``spliceai -I IN -O OUT -R FASTA -A ANNOTATION -D 50 -M 0`` writes it (same header line, INFO key
and field order, records in input order, unscored records written unchanged).

Records are read and written with pysam (as SpliceAI does, so the bytes match); plain or bgzipped
input, and ``.vcf.gz`` output bgzipped with a tabix index. Work goes in chunks of records, each
written to ``.OUT.parts/`` under a temporary name then renamed: a killed run resumes at the first
missing chunk (same inputs and flags), and ``--workers`` / ``--executor ray`` score chunks in other
processes with output identical to a serial run. Positions are VCF's, 1-based.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..basemodel.ensemble import load_base_model
from ..config import (
    DEFAULT_PARALLEL,
    DEFAULT_PREDICT,
    DEFAULT_VARIANTS,
    Executor,
    Runtime,
)
from ..dataset.stores import weights_map
from ..errors import InputError
from ..parallel import parallel_options, run_units, worker_cache
from ..progress import count_progress
from ..reference.genome import Genome
from ..storage import checksum, is_stdio, publish_file, read_once, write_text_atomic, writes_through
from .corrected import HEADER_LINE as META_HEADER
from .corrected import INFO_KEY as META_KEY
from .corrected import MetaScorer
from .deltas import SKIP_REASONS, RawTracks, Record, cone_engine, score_records
from .precomputed import Precomputed, check_record, pick_sample
from .raw import assemble as assemble_raw
from .raw import raw_table
from .raw import write_part as write_raw_part
from .transcripts import load_transcripts
from .vcfio import malformed, own_flags, quiet_htslib

log = logging.getLogger(__name__)

INFO_KEY = "SpliceAI"
#: SpliceAI 1.3.1's header line, verbatim
HEADER_LINE = ('##INFO=<ID=SpliceAI,Number=.,Type=String,Description="SpliceAIv1.3.1 variant annotation. These '
               'include delta scores (DS) and delta positions (DP) for acceptor gain (AG), acceptor loss (AL), '
               'donor gain (DG), and donor loss (DL). Format: ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|'
               'DP_DG|DP_DL">')


@dataclass
class VariantsSummary:
    """What a ``variants`` run did; the CLI prints it."""

    output: str
    records: int = 0
    scored: int = 0
    entries: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    chunks_resumed: int = 0
    seconds: float = 0.0
    #: records by where their entries came from: "computed", or a --precomputed file's path
    sources: dict[str, int] = field(default_factory=dict)
    #: records of the --precomputed files recomputed (their sample) and found identical
    verified: int = 0


@dataclass(frozen=True)
class _Spec:
    """What a worker needs to score a chunk (picklable)."""

    fasta: str
    annotation: str
    distance: int
    mask: int
    runtime: str
    share_reference: bool
    cone: bool = True
    model: str | None = None
    predictions: tuple[str, ...] = ()
    weights: tuple[tuple[str, str], ...] = ()
    raw: bool = False


def _score_chunk(unit: tuple[_Spec, list[Record]]) -> tuple[list[list[str]], list[list[str]], dict[str, int], list]:
    spec, records = unit
    genome = worker_cache(("genome", spec.fasta), lambda: Genome(spec.fasta))
    table = worker_cache(("transcripts", spec.annotation), lambda: load_transcripts(spec.annotation))
    model = worker_cache(("variant-model", spec.runtime),
                         lambda: load_base_model("spliceai", device="cpu", runtime=spec.runtime))  # type: ignore[arg-type]
    meta = None
    if spec.model:
        meta = worker_cache(("meta", spec.model, spec.predictions, spec.weights),
                            lambda: MetaScorer.open(spec.model, spec.predictions, genome, table, spec.annotation,
                                                    dict(spec.weights)))
    raw: list[RawTracks] | None = [] if spec.raw else None
    entries, corrected, skipped = score_records(records, table, genome, model, distance=spec.distance, mask=spec.mask,
                                                share_reference=spec.share_reference,
                                                cone=cone_engine(model, spec.runtime) if spec.cone else None,
                                                correct=meta, raw=raw)
    return entries, corrected, dict(skipped), raw or []


def variants(
    *,
    input: str | os.PathLike[str],  # noqa: A002 - SpliceAI's -I
    output: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    annotation: str,
    distance: int = DEFAULT_VARIANTS.distance,
    mask: int = DEFAULT_VARIANTS.mask,
    chunk_records: int = DEFAULT_VARIANTS.chunk_records,
    runtime: Runtime = DEFAULT_PREDICT.runtime,
    share_reference: bool = True,
    cone: bool = DEFAULT_VARIANTS.cone,
    model: str | os.PathLike[str] | None = None,
    predictions: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    weights: Mapping[str, str | os.PathLike[str]] | Sequence[str] | None = None,
    workers: int = DEFAULT_PARALLEL.workers,
    executor: Executor = DEFAULT_PARALLEL.executor,
    ray_address: str | None = None,
    threads_per_worker: int | None = None,
    precomputed: Sequence[str | os.PathLike[str]] = (),
    raw_scores: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> VariantsSummary:
    """Annotate ``input`` (VCF, plain or bgzipped) into ``output`` with SpliceAI delta scores.

    ``distance`` (-D, 0-4999) and ``mask`` (-M, 0/1) as SpliceAI's; ``annotation``: ``grch37``,
    ``grch38``, a SpliceAI-format table or a GTF/GFF3 (:mod:`.transcripts`). ``model`` (a ``train``
    output folder) with ``predictions`` (the genes' base-model store, one per base model of the card, in
    card order) and ``weights`` (checkpoint folders by base-model name, for the card's models that need them):
    also a ``MetaSpliceAI`` INFO key with the same fields from the corrected tracks (:mod:`.corrected`). ``cone``: alternate alleles
    computed only inside their cone of influence (:mod:`~meta_spliceai.basemodel.cone`; same numbers);
    off, every allele's window is a full pass (``share_reference`` then shares reference passes per gene).
    ``input`` may be ``-`` (standard input) or a pipe; ``output`` ``-`` (standard output), a FIFO, a device
    or a symlink is written through (chunks then go to a scratch folder: such a run does not resume).
    ``precomputed``: tabix-indexed VCFs with SpliceAI entries, which supply the records they hold once a
    sample of them recomputes identically (:mod:`.precomputed`); the output is the same bytes.
    ``raw_scores``: a Parquet file of the reference and alternate scores behind every delta (:mod:`.raw`).
    """
    import pysam

    t0 = time.perf_counter()
    if not 0 <= distance <= DEFAULT_VARIANTS.max_distance:
        raise InputError(f"-D must be between 0 and {DEFAULT_VARIANTS.max_distance}, got {distance}")
    if mask not in (0, 1):
        raise InputError(f"-M must be 0 or 1, got {mask}")
    if chunk_records < 1:
        raise InputError(f"--chunk-records must be a positive number, got {chunk_records}")
    src, out = Path(input), Path(output)
    if not is_stdio(src) and not src.exists():
        raise InputError(f"VCF not found: {src} (give an existing VCF with -I, or - for standard input)")
    if src.is_dir():
        raise InputError(f"-I {src} is a folder; give a VCF file (plain or bgzipped)")
    if not is_stdio(out) and not writes_through(out) and out.exists() and out.resolve() == src.resolve():
        raise InputError(f"-O {out} is the input VCF; choose another output path")
    with _local_files(src, out) as (src, shown, scratch), contextlib.ExitStack() as quiet:
        with own_flags():
            genome = Genome(reference)  # (its index errors quote htslib, so htslib is quieted after it)
            table = load_transcripts(annotation)  # errors now, before any work
        quiet.enter_context(quiet_htslib())
        meta = None
        if precomputed and model is not None:
            raise InputError("--precomputed supplies SpliceAI entries only; --model needs every record's tracks: "
                             "give one of them")
        if raw_scores is not None and (is_stdio(raw_scores) or Path(raw_scores).is_dir()):
            raise InputError(f"--raw-scores {raw_scores}: give the Parquet file to write")
        if precomputed and raw_scores is not None:
            raise InputError("--raw-scores writes the tracks of every scored record, which --precomputed does not "
                             "compute: give one of them")
        pre = Precomputed.open(precomputed) if precomputed else None
        stores = () if predictions is None else (
            (str(predictions),) if isinstance(predictions, (str, os.PathLike)) else tuple(str(p) for p in predictions))
        if model is not None:
            if not stores:
                raise InputError("--model needs --predictions STORE: the base-model predictions of the genes "
                                 "(meta-spliceai predict --gtf ANNOTATION), whose whole-gene tracks the features read")
            meta = MetaScorer.open(model, stores, genome, table, annotation, weights)
        par, notes = parallel_options(workers=workers, executor=executor, ray_address=ray_address,
                                      threads_per_worker=threads_per_worker)
        for note in notes:
            log.warning("%s", note)
        spec = _Spec(fasta=str(genome.path), annotation=str(annotation), distance=distance, mask=mask,
                     runtime=runtime, share_reference=share_reference, cone=cone,
                     model=str(model) if model else None, predictions=stores,
                     weights=tuple(sorted((k, str(v)) for k, v in weights_map(
                         weights, [m["base_model"] for m in meta.identities]).items())) if meta else (),
                     raw=raw_scores is not None)
        try:
            vcf = pysam.VariantFile(str(src))
        except (OSError, ValueError) as err:
            raise InputError(f"{shown}: not a readable VCF ({err})") from None
        header = vcf.header
        if INFO_KEY in header.info:
            log.warning("%s already has a SpliceAI INFO field; its values are replaced where a record is scored", shown)
        else:
            header.add_line(HEADER_LINE)
        if meta is not None and META_KEY not in header.info:
            header.add_line(META_HEADER)
        parts = scratch / "parts" if scratch is not None else out.parent / f".{out.name}.parts"
        _prepare_parts(parts, {"input": checksum(src), "reference": str(genome.path), "annotation": str(annotation),
                               "distance": distance, "mask": mask, "chunk_records": chunk_records,
                               "annotation_rows": len(table),
                               "model": str(model), "predictions": list(stores),
                               "precomputed": pre.fingerprint() if pre else [], "raw_scores": raw_scores is not None})
        summary = VariantsSummary(output=str(out))
        skipped: Counter = Counter()

        def base_model():  # noqa: ANN202 - loaded once per process (a library caller scoring several VCFs reuses it)
            return worker_cache(("variant-model", runtime),
                                lambda: load_base_model("spliceai", device="cpu", runtime=runtime))

        supplied: dict[int, tuple[int, tuple[str, ...]]] = {}  # record index -> (file, entries)
        sampled: set[int] = set()  # supplied records recomputed (in the main passes) to check their file
        if pre is not None:
            supplied = _held_records(pre, src, shown, chunk_records)
            sampled = pick_sample(pre, supplied)
            pre.close()
        with count_progress(progress) as bar:
            task = bar.add_task("variants: records", total=None, rate="") if bar else None
            window = max(1, par.workers * 2) if not par.serial else 1
            pending: list[tuple[int, list]] = []

            def flush() -> None:
                todo = [(i, recs) for i, recs in pending if not _part(parts, i).is_file()]
                summary.chunks_resumed += len(pending) - len(todo)
                needs = [[k for k in range(len(recs)) if i * chunk_records + k not in supplied
                          or i * chunk_records + k in sampled] for i, recs in todo]
                units = [(spec, [_record(recs[k], shown) for k in need]) for (_, recs), need in zip(todo, needs)]
                if par.serial and any(u[1] for u in units):
                    base = base_model()
                    engine = cone_engine(base, runtime) if cone else None
                    before = {i: summary.records - sum(len(r) for _, r in pending[k:]) for k, (i, _) in enumerate(pending)}
                    results = []
                    for (i, _), u in zip(todo, units):  # the display moves within a chunk too (minutes under --model)
                        tick = ((lambda f, a=before[i], n=len(u[1]): bar.update(task, completed=a + int(f * n)))
                                if bar else None)
                        raw: list[RawTracks] = []
                        got = score_records(u[1], table, genome, base, distance=distance, mask=mask,
                                            share_reference=share_reference, cone=engine,
                                            correct=meta, progress=tick,
                                            raw=raw if spec.raw else None)
                        results.append((*got, raw))
                elif not par.serial and any(u[1] for u in units):
                    results = run_units(_score_chunk, units, par, what="chunk")
                else:
                    results = [([], [], {}, []) for _ in units]
                for (i, recs), need, unit, (entries, corrected, skip, raw) in zip(todo, needs, units, results):
                    for j, k in enumerate(need):
                        g = i * chunk_records + k
                        if g in sampled:
                            check_record(pre.paths[supplied[g][0]], unit[1][j], supplied[g][1], entries[j], distance)
                            summary.verified += 1
                    skipped.update(skip)
                    if spec.raw:  # before the chunk's VCF part, which marks the chunk done
                        rows = [(i * chunk_records + need[t.record] + 1, unit[1][t.record], t) for t in raw]
                        write_raw_part(_part(parts, i).with_suffix(".raw.parquet"), raw_table(rows, distance, meta is not None))
                    entries, corrected = _merge(len(recs), need, entries, corrected, supplied, i * chunk_records)
                    lines = []
                    for k, (rec, ent) in enumerate(zip(recs, entries)):
                        if ent:
                            rec.info[INFO_KEY] = ent
                            summary.scored += 1
                            summary.entries += len(ent)
                        if meta is not None and corrected[k]:
                            rec.info[META_KEY] = corrected[k]
                        lines.append(str(rec))
                    write_text_atomic(_part(parts, i), "".join(lines))
                pending.clear()

            for i, recs in enumerate(_chunks(vcf, chunk_records, src, shown)):
                summary.records += len(recs)
                pending.append((i, recs))
                if len(pending) >= window:
                    flush()
                if bar:
                    bar.update(task, completed=summary.records,
                               rate=f"{summary.records / max(time.perf_counter() - t0, 1e-9):,.1f} records/s")
            flush()
            n_chunks = i + 1 if summary.records else 0
        if raw_scores is not None:
            assemble_raw(Path(raw_scores), [_part(parts, i).with_suffix(".raw.parquet") for i in range(n_chunks)],
                         meta is not None)
        _assemble(out, str(header), parts, n_chunks)
        vcf.close()
        shutil.rmtree(parts, ignore_errors=True)
        summary.skipped = {r: skipped[r] for r in SKIP_REASONS if skipped.get(r)}
        by_file = Counter(k for k, _ in supplied.values())
        summary.sources = {"computed": summary.records - len(supplied),
                           **{str(p): by_file[k] for k, p in enumerate(pre.paths) if by_file[k]}} if pre else {}
        if meta is not None and meta.missing:
            log.warning("%d gene(s) have no track in %s, so no MetaSpliceAI entry: %s (predict them first)",
                        len(meta.missing), ", ".join(stores), ", ".join(sorted(meta.missing)[:10]))
        for reason, n in summary.skipped.items():
            log.log(logging.INFO if reason == "not in any gene" else logging.WARNING,
                    "skipped %d record(s) (%s: %s), as SpliceAI does: written without a SpliceAI entry",
                    n, reason, SKIP_REASONS[reason])
        summary.seconds = time.perf_counter() - t0
        return summary


@contextlib.contextmanager
def _local_files(src: Path, out: Path) -> Iterator[tuple[Path, str, Path | None]]:
    """(a VCF file to read, its name in messages, a scratch folder for the chunks or None).

    Standard input, a pipe or a FIFO is read once into a spool file; an output written through (stdout,
    a FIFO, a device, a symlink) keeps its chunks in a scratch folder (such a run does not resume).
    Both are removed on exit."""
    with contextlib.ExitStack() as stack:
        def temp() -> Path:
            return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="meta-spliceai-variants-")))

        if is_stdio(src) or not src.is_file():
            spool = temp() / "input.vcf"
            with open(spool, "wb") as fh:
                fh.write(read_once(src))
            yield spool, "standard input" if is_stdio(src) else str(src), temp() if writes_through(out) else None
        else:
            yield src, str(src), temp() if writes_through(out) else None


def _record(rec, src: str) -> Record:  # noqa: ANN001 - pysam VariantRecord
    """The fields scoring needs; a record pysam cannot give them for is an error naming the file and position."""
    try:
        alts = tuple(rec.alts) if rec.alts is not None else None
        return Record(chrom=str(rec.chrom), pos=int(rec.pos), ref=str(rec.ref), alts=alts)
    except (TypeError, ValueError) as err:
        raise InputError(f"{src}: malformed record at {rec.chrom}:{rec.pos} ({err})") from None


def _chunks(vcf, n: int, path: Path, src: str) -> Iterator[list]:  # noqa: ANN001
    """Records in chunks of ``n``; a record htslib cannot parse is an error naming the file, line and field."""
    chunk: list = []
    it = iter(vcf)
    k = 0
    while True:
        try:
            rec = next(it)
        except StopIteration:
            break
        except (OSError, ValueError) as err:
            raise malformed(path, src, k + 1, str(vcf.header), err) from None
        k += 1
        chunk.append(rec)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _held_records(pre: Precomputed, src: Path, shown: str, n: int) -> dict[int, tuple[int, tuple[str, ...]]]:
    """Record index (0-based, in input order) -> (file, entries) of every input record a precomputed file holds."""
    import pysam

    held = {}
    with pysam.VariantFile(str(src)) as vcf:
        g = 0
        for recs in _chunks(vcf, n, src, shown):
            for rec in recs:
                hit = pre.lookup(_record(rec, shown))
                if hit is not None:
                    held[g] = hit
                g += 1
    log.info("--precomputed: %d record(s) held by the files", len(held))
    return held


def _merge(n: int, need: list[int], entries: list[list[str]], corrected: list[list[str]],
           supplied: dict[int, tuple[int, tuple[str, ...]]], offset: int) -> tuple[list[list[str]], list[list[str]]]:
    """A chunk's entries (and corrected entries) per record: the computed ones at ``need``, the supplied ones
    (record index ``offset + k``) elsewhere."""
    full: list[list[str]] = [list(supplied[offset + k][1]) if offset + k in supplied else [] for k in range(n)]
    meta: list[list[str]] = [[] for _ in range(n)]
    for j, k in enumerate(need):
        full[k] = entries[j]
        if corrected:
            meta[k] = corrected[j]
    return full, meta


def _part(parts: Path, i: int) -> Path:
    return parts / f"chunk_{i:06d}.vcf"


def _prepare_parts(parts: Path, fingerprint: dict) -> None:
    """The chunk folder of a run with these inputs and flags: kept to resume, replaced when they differ."""
    meta = parts / "run.json"
    want = json.dumps(fingerprint, sort_keys=True)
    if parts.is_dir() and meta.is_file() and meta.read_text() == want:
        log.info("resuming from the finished chunks in %s", parts)
        return
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    write_text_atomic(meta, want)


def _assemble(out: Path, header: str, parts: Path, n_chunks: int) -> None:
    """Header + every chunk into ``out``: a regular file under a temporary name, then renamed (bgzipped and
    tabix-indexed for ``.gz``); ``-``, a FIFO, a device or a symlink written through (no index there)."""
    import pysam

    through = writes_through(out)
    if not through:
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = (parts / "assembled.tmp") if through else out.with_name(f".{out.name}.{os.getpid()}.tmp")
    if out.suffix == ".gz":
        plain = tmp.with_suffix(".vcf")
        _concat(plain, header, parts, n_chunks)
        pysam.tabix_compress(str(plain), str(tmp), force=True)
        plain.unlink()
    else:
        _concat(tmp, header, parts, n_chunks)
    publish_file(tmp, out)
    if out.suffix == ".gz":
        if through:
            log.info("%s is not a regular file: bgzipped, not tabix-indexed", out)
        else:
            pysam.tabix_index(str(out), preset="vcf", force=True, keep_original=True)


def _concat(path: Path, header: str, parts: Path, n_chunks: int) -> None:
    with open(path, "w") as fh:
        fh.write(header)
        for i in range(n_chunks):
            with open(_part(parts, i)) as part:
                shutil.copyfileobj(part, fh)

