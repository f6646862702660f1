"""Corrected scores of whole genes (the meta-model over the base model) and the ``apply`` command.

A gene's corrected track: every position with max(donor, acceptor) >= the model card's floor (a
stacked model: any site model's top score >= the floor; Pangolin adds features, not positions) gets the meta-model's probabilities; every
other position keeps the (labelling) base model's scores. A stacked model reads one prediction store
per base model, in the card's order (``--predictions S1 S2 ...``); another count, order or identity
is refused. Features come
from :func:`meta_spliceai.rows.position_features`, the builder's own code, with the settings the
model card records.

Outputs of ``apply`` in DIR:

- ``scores/``: a prediction store of corrected scores (gene_id, position, neither, acceptor, donor);
- ``calls.tsv``: called sites, one row per (position, type) whose corrected score reaches the
  card's threshold for that type: gene_id, gene_name, chrom, strand, position (1-based on the
  chromosome, contig named as in the annotation), type, base_score, meta_score;
- ``calls.parquet``: the same table, typed (``gene_id``/``chrom``/... ``large_string`` as in the
  prediction stores and ``master/``, so pyarrow joins them; ``chrom`` stays a string however it reads);
- ``calls.bed``: the same calls, BED6 (0-based half-open: start = position - 1), score = meta x 1000,
  contigs named as in the FASTA (the annotation's name where the FASTA has no match), so
  ``bedtools getfasta -fi FASTA`` and ``bedtools slop -g FASTA.fai`` find them.

A TSV carries no types: readers that infer them (polars, pandas, DuckDB) read a ``chrom`` of digits
(``22``) as an integer; read ``calls.parquet``, or give the type (``schema_overrides={"chrom": pl.String}``,
``dtype={"chrom": str}``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..config import DEFAULT_PARALLEL, Executor
from ..dataset.evaluation import ACCEPTOR, DONOR, check_probs
from ..errors import InputError
from ..parallel import ParallelOptions
from ..storage import arrow_position, arrow_string, commit, tmp_path_for, write_text_atomic
from .card import Corrector, LoadedModel, card_base_models, check_stores, corrected_track, load_card

log = logging.getLogger(__name__)

#: most genes in one unit of a parallel apply
APPLY_GROUP = 50


# --------------------------------------------------------------------------- model card


# --------------------------------------------------------------------------- apply


def apply(
    *,
    model: str | os.PathLike[str],
    predictions: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    fasta: str | os.PathLike[str] | None = None,
    gtf: str | os.PathLike[str] | None = None,
    genes: Sequence[str] | None = None,
    gene_ids_file: str | os.PathLike[str] | None = None,
    run_workflow: bool = False,
    device: str = "auto",
    evaluate: bool = False,
    bootstrap: int = 1000,
    seed: int = 42,
    progress: bool = True,
    weights: Mapping[str, str | os.PathLike[str]] | Sequence[str] | str | os.PathLike[str] | None = None,
    workers: int = DEFAULT_PARALLEL.workers,
    executor: Executor = DEFAULT_PARALLEL.executor,
    ray_address: str | None = None,
    threads_per_worker: int | None = None,
) -> dict[str, object]:
    """``meta-spliceai apply``: corrected scores and site calls for genes (resumable gene by gene).

    ``evaluate``: also compare base model, the card's ablations and the meta-model on every nucleotide
    of these genes against their annotation (DIR/metrics.json, DIR/report.md), as ``train`` does on
    its test genes. ``workers`` > 1 (or ``executor="ray"``) corrects groups of genes, and predicts the
    missing ones with ``run_workflow``, in parallel processes; the files are the same as a serial run's.
    ``predictions``: one store per base model of the card, in its order; ``weights`` (model -> folder, or
    ``MODEL=DIR`` strings) for the models ``run_workflow`` runs that need them.
    """
    from ..basemodel.ensemble import resolve_device
    from ..basemodel.predict import predict_genes
    from ..basemodel.store import PredictionStore
    from ..parallel import parallel_options
    from ..reference.genelists import requested_genes
    from ..reference.report import open_reference
    from ..storage import folder_lock

    loaded = load_card(model)
    card = loaded.card
    out_dir = Path(out)
    genome, ann, contig_map, _ = open_reference(fasta, gtf)
    chosen = requested_genes(ann.genes, gene_list=genes, gene_ids_file=Path(gene_ids_file) if gene_ids_file else None)
    from ..dataset.stores import StoreSet, as_paths, weights_map

    names = tuple(m["base_model"] for m in card_base_models(card))
    paths = as_paths(predictions)
    stores = [PredictionStore(p) for p in paths]
    stores[0].require_sites("--predictions: give first the store of the base model the meta-model was trained on")
    check_stores(card, [s.stored_identity() for s in stores], paths)
    missing = {s.path: [g for g in chosen["gene_id"].to_list() if not s.has(g)] for s in stores}
    if any(missing.values()) and not run_workflow:
        p, gs = next((p, gs) for p, gs in missing.items() if gs)
        raise InputError(f"no predictions in {p} for {len(gs)} gene(s) ({', '.join(gs[:5])}); "
                         "add --run-workflow to compute them or pass the store that has them")
    wmap = weights_map(weights, names)
    base = stores[0]
    par, notes = parallel_options(workers=workers, executor=executor, ray_address=ray_address,
                                  threads_per_worker=threads_per_worker, device=resolve_device(device),  # type: ignore[arg-type]
                                  n_units=chosen.height, what="genes")
    for note in notes:
        log.warning("%s", note)
    with folder_lock(out_dir, "apply"):
        for i, (name, st) in enumerate(zip(names, list(stores))):
            if not missing[st.path]:
                continue
            from ..basemodel.ensemble import load_base_model

            model_args: dict[str, object] = {"name": name, "device": device,
                                             **({"weights": Path(wmap[name]).resolve()} if name in wmap else {})}
            bm = load_base_model(**model_args)  # type: ignore[arg-type]
            stores[i] = PredictionStore(st.path, bm)
            predict_genes(genome, chosen.filter(pl.col("gene_id").is_in(missing[st.path])), bm, stores[i],
                          contig_map=contig_map, progress=progress, parallel=par, model_args=model_args)
        check_stores(card, [s.stored_identity() for s in stores], paths)
        base = stores[0]
        stack = StoreSet(names, tuple(s.path for s in stores))
        corr = Corrector(loaded.cfg, float(card["floor"]), genome, contig_map)
        identity = {"base_model": f"{card['base_model'].get('base_model')}+meta", "version": card["model"]["kind"],
                    "digest": card["card_digest"], "precision": "float32"}
        scores = PredictionStore(out_dir / "scores", identity)
        scores.remove_stale_tmp()  # what a killed run left (we hold the folder's lock: no writer is running)
        todo = [g for g in chosen.iter_rows(named=True) if not scores.has(g["gene_id"])]
        log.info("apply: %d gene(s) to correct, %d already in %s", len(todo), chosen.height - len(todo), scores.path)
        spec = _ApplySpec(loaded.folder.resolve(), Path(genome.path).resolve() if genome is not None else None,
                          dict(contig_map or {}), base.path.resolve(), scores.path.resolve(), identity,
                          str(gtf or "the annotation"), tuple(s.path.resolve() for s in stores[1:]))
        if par.serial or not todo:
            from ..progress import count_progress

            with count_progress(progress) as bar:
                task = bar.add_task("apply: genes", total=len(todo), rate="") if bar else None
                for gene in todo:
                    _correct_gene(spec, loaded, corr, stack, scores, gene)
                    if bar:
                        bar.update(task, advance=1)
        else:
            _correct_parallel(spec, todo, par, progress)
        scores.remove_stale_tmp()  # the sibling .scores.tmp/ is only needed while writing: none is left behind
        calls = write_calls(out_dir, chosen, base, scores, card["thresholds"], contig_map=contig_map)
        result: dict[str, object] = {}
        if evaluate:
            from ..storage import write_json_atomic
            from .comparison import compare_with_base
            from .report import metrics_table
            from .scoring import evaluate_genes

            metrics, _ = evaluate_genes(loaded, stack, ann, chosen, corr, n_boot=bootstrap, seed=seed, progress=progress)
            comparison = compare_with_base(metrics)
            if comparison["worse"]:
                log.warning("%s", comparison["verdict"])
            metrics["verdict"] = comparison["verdict"]
            write_json_atomic(out_dir / "metrics.json", metrics)
            table = metrics_table(metrics)
            md = [f"# apply: {metrics['genes']} genes, {metrics['positions']:,} nucleotides", "",
                  "| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
            md += ["| " + " | ".join(r) + " |" for r in table[1:]]
            md += ["", f"**Verdict:** {comparison['verdict']}"]
            write_text_atomic(out_dir / "report.md", "\n".join(md) + "\n")
            result = {"metrics": str(out_dir / "metrics.json"), "report": str(out_dir / "report.md"),
                      "comparison": comparison}
    return {**result, "genes": chosen.height, "corrected_now": len(todo), "calls": calls, "scores": str(scores.path),
            "calls_tsv": str(out_dir / "calls.tsv"), "calls_parquet": str(out_dir / "calls.parquet"),
            "calls_bed": str(out_dir / "calls.bed")}


@dataclass(frozen=True)
class _ApplySpec:
    """What a worker needs to correct genes (picklable; the model card is loaded once per process)."""

    model: Path
    fasta: Path | None
    contig_map: dict[str, str]
    base: Path
    scores: Path
    identity: dict[str, str]
    annotation: str
    stack: tuple[Path, ...] = ()  # the other base models' stores, in the card's order


def _correct_gene(spec: _ApplySpec, loaded: LoadedModel, corr: Corrector, stores, scores, gene: Mapping[str, object]) -> None:  # noqa: ANN001
    """Corrected track of one gene into the scores store (atomic per gene); ``stores``: a StoreSet."""
    gid = str(gene["gene_id"])
    tracks = stores.read(gid)
    probs = check_probs(tracks[0], f"gene {gid}")
    if probs.shape[0] != int(gene["end"]) - int(gene["start"]) + 1:  # type: ignore[call-overload]
        raise InputError(f"predictions of gene {gid} do not match its span in {spec.annotation}; "
                         "the store was made with another annotation")
    scores.write(gid, corrected_track(loaded, corr, gene, (probs, *tracks[1:])))


def _apply_unit(unit: tuple[_ApplySpec, list[dict[str, object]]]) -> int:
    """Correct one group of genes in a worker; returns the genes written."""
    from ..basemodel.store import PredictionStore
    from ..parallel import worker_cache
    from ..reference.genome import Genome

    spec, genes = unit
    loaded: LoadedModel = worker_cache(("card", spec.model), lambda: load_card(spec.model))
    genome = worker_cache(("genome", spec.fasta), lambda: Genome(spec.fasta)) if spec.fasta else None
    from ..dataset.stores import StoreSet

    corr = Corrector(loaded.cfg, float(loaded.card["floor"]), genome, spec.contig_map)
    stores = StoreSet(loaded.cfg.base_models, (spec.base, *spec.stack))
    scores = PredictionStore(spec.scores, spec.identity)
    for gene in genes:
        _correct_gene(spec, loaded, corr, stores, scores, gene)
    return len(genes)


def _correct_parallel(spec: _ApplySpec, todo: list[dict[str, object]], par: ParallelOptions, progress: bool) -> None:
    """Groups of genes as units of :func:`parallel.run_units` (about four per worker, for balance)."""
    from ..parallel import run_progress, run_units

    size = max(1, min(APPLY_GROUP, -(-len(todo) // (4 * par.workers))))
    groups = [todo[i:i + size] for i in range(0, len(todo), size)]
    display, start = run_progress(progress, f"apply ({par.workers if par.executor == 'local' else 'ray'} workers, "
                                  f"{len(todo)} genes)", total=len(todo), unit="genes")
    with display as bar:
        tracker = start(bar)
        run_units(_apply_unit, [(spec, g) for g in groups], par, what="gene group",
                  on_result=lambda i, n, worker: tracker.done(worker, n, advance=n))


CALL_COLUMNS = ("gene_id", "gene_name", "chrom", "strand", "position", "type", "base_score", "meta_score")


def calls_schema():  # -> pyarrow.Schema
    """Arrow types of ``calls.parquet``: strings as everywhere (:func:`meta_spliceai.storage.arrow_string`),
    position int64 (1-based on the chromosome), scores float64."""
    import pyarrow as pa

    s = arrow_string()
    return pa.schema([("gene_id", s), ("gene_name", s), ("chrom", s), ("strand", s), ("position", arrow_position()),
                      ("type", s), ("base_score", pa.float64()), ("meta_score", pa.float64())])


def write_calls(out_dir: Path, genes: pl.DataFrame, base, scores, thresholds: Mapping[str, float],  # noqa: ANN001
                contig_map: Mapping[str, str] | None = None) -> int:
    """calls.tsv, calls.parquet and calls.bed from the two stores (so a resumed run writes the same files).

    ``contig_map`` (annotation contig -> FASTA contig) names the BED's contigs as the FASTA does;
    calls.tsv and calls.parquet keep the annotation's names (module docstring).
    """
    import pyarrow.parquet as pq

    rows = []
    for g in genes.iter_rows(named=True):
        b = base.read(g["gene_id"])
        m = scores.read(g["gene_id"])
        for name, col in (("donor", DONOR), ("acceptor", ACCEPTOR)):
            idx = np.flatnonzero(m[:, col] >= float(thresholds[name]))
            genomic = g["start"] + idx if g["strand"] == "+" else g["end"] - idx
            for i, pos in zip(idx, genomic):
                rows.append((g["gene_id"], g.get("gene_name") or g["gene_id"], g["chrom"], g["strand"], int(pos), name,
                             float(b[i, col]), float(m[i, col])))
    df = pl.DataFrame(rows, schema=list(CALL_COLUMNS), orient="row") if rows else pl.DataFrame(
        schema={"gene_id": pl.String, "gene_name": pl.String, "chrom": pl.String, "strand": pl.String,
                "position": pl.Int64, "type": pl.String, "base_score": pl.Float64, "meta_score": pl.Float64})
    df = df.sort("chrom", "position", "type")
    write_text_atomic(out_dir / "calls.tsv", df.write_csv(separator="\t", float_precision=6))
    final = out_dir / "calls.parquet"
    tmp = tmp_path_for(final)
    pq.write_table(df.to_arrow().cast(calls_schema()), tmp, compression="zstd")
    commit(tmp, final)
    contigs = dict(contig_map or {})
    bed = df.select(
        pl.col("chrom").replace_strict(contigs, default=pl.col("chrom"), return_dtype=pl.String),
        (pl.col("position") - 1).alias("start"), pl.col("position").alias("end"),
        (pl.col("gene_id") + ":" + pl.col("type")).alias("name"),
        (pl.col("meta_score") * 1000).round().cast(pl.Int64).alias("score"), pl.col("strand"),
    )
    write_text_atomic(out_dir / "calls.bed", bed.write_csv(separator="\t", include_header=False))
    return df.height
