"""Delta scores of the meta-model's corrected tracks (the ``MetaSpliceAI`` INFO key of ``variants --model``).

For a scored (variant, gene) and each base model of the card (card order; the first is the labelling
model), the gene's whole track comes from that model's prediction store (``--predictions``, one store
per model, as ``apply`` reads them); its +-D window is replaced by that model's reference (resp. aligned
alternate) outputs by SpliceAI's rules (each model's own cone engine), and the meta-model corrects, in
both alleles, the positions of the window whose score reaches the card's floor in either allele (so the
two alleles of a position are scored by one function: no delta from crossing the floor alone; features by the builder's own code, with
the whole-track context the features need). Every feature of the alternate track comes from the
alternate: its scores from the alternate outputs, its sequence features (k-mers, GC content,
complexity) from the gene's sequence with the allele applied (transcription orientation; right of an
indel, a position reads the alternate sequence at its own shifted place). The deltas are then taken
exactly as SpliceAI's, on the corrected tracks; positions of the window outside the gene body keep the
base model's values. All feature rows of a chunk of records go through the meta-model in one call.
A base model with per-tissue outputs (Pangolin) runs on the same cone engine, its members combined per
tissue as ``predict`` combines them; its columns are aligned as the others'. No large variant truth set was available: ``bench/bench_truthset.py`` measures these deltas against
the base models' on the labelled chr20 variants.

Coordinates: ``pos`` is 1-based genomic; gene positions are 0-based body indices in transcription
orientation (``+``: ``q - start``, ``-``: ``end - q``); window tracks are ``(2D + 1, C)`` (the model's columns) in genome orientation.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..basemodel.store import PredictionStore
from ..config import PACKAGED_WEIGHTS
from ..errors import ConfigMismatchError, InputError
from ..dataset.stacking import stack_top
from ..dataset.stores import as_paths, weights_map
from ..metamodel.card import TO_STORE, Corrector, LoadedModel, card_base_models, check_stores, load_card
from ..metamodel.trainset import frame_matrix
from ..reference.genome import Genome, match_contigs, reverse_complement
from .deltas import Job, Plan, Record, compute_tracks, cone_engine, cone_tracks
from .transcripts import TranscriptTable

log = logging.getLogger(__name__)

INFO_KEY = "MetaSpliceAI"
HEADER_LINE = ('##INFO=<ID=MetaSpliceAI,Number=.,Type=String,Description="meta-spliceai: the SpliceAI delta scores '
               'recomputed on the meta-model\'s corrected tracks (every base model of the card: reference and alternate '
               'outputs within +-D spliced into each gene\'s whole-gene track from its prediction store; the alternate\'s '
               'sequence features from the alternate sequence). Not validated for variant interpretation. Format: '
               'ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|DP_DG|DP_DL">')
#: genes whose whole-gene tracks and sequence a scorer keeps (VCFs are sorted: a gene's records come together)
GENE_CACHE = 4


def allele_sequences(seq: str, offset: int, a: int, ref_len: int, allele: str) -> tuple[str, str, int]:
    """The sequence features' reads of an alternate allele: ``(left, right, split)``.

    ``seq`` is transcription-oriented with ``seq[offset + p]`` = gene position ``p``; the reference allele
    occupies gene positions ``[a, a + ref_len)`` and ``allele`` (transcription-oriented) replaces it.
    Positions ``p < split`` read ``left[offset + p]`` (the alternate sequence, unshifted: upstream
    positions and the allele's own), positions ``p >= split = a + ref_len`` read ``right[offset + p]``,
    which is the alternate sequence at ``offset + p + len(allele) - ref_len``.
    """
    alt = seq[: offset + a] + allele + seq[offset + a + ref_len:]
    shift = len(allele) - ref_len
    right = alt[shift:] if shift >= 0 else "N" * -shift + alt
    return alt, right, a + ref_len


def _same_model(want: Mapping[str, str], have: Mapping[str, str]) -> bool:
    """Whether ``have``'s tracks serve a card model: the same identity, or both SpliceAI (this package's port
    computes the Keras original's outputs to ~1e-6: the card's stores were already checked against the card)."""
    return all(have.get(k) == v for k, v in want.items()) or want.get("base_model") == have.get("base_model") == "spliceai"


class _Layout:
    """Where each feature of the model's matrix comes from: the frame of the features without sequence (one
    small polars frame per window) or the sequence features' numpy arrays (thousands of k-mer columns: a
    frame of them per window would cost ~0.3 s). The matrix equals ``frame_matrix(position_features(...))``."""

    def __init__(self, loaded: LoadedModel) -> None:
        from dataclasses import replace

        from ..dataset.schema import SEQUENCE_FEATURES, kmer_names

        self.features = list(loaded.model.features)
        self.categories = loaded.model.categories
        cfg = loaded.cfg
        self.plain_cfg = replace(cfg, kmer_sizes=())
        seq_cols = {n: ("seq", n) for n in SEQUENCE_FEATURES} if cfg.kmer_sizes else {}
        for k in cfg.kmer_sizes:
            seq_cols.update({n: ("kmer", k, i) for i, n in enumerate(kmer_names(k))})
        self.plain = [i for i, f in enumerate(self.features) if f not in seq_cols]
        self.plain_names = [self.features[i] for i in self.plain]
        self.seq = [(i, seq_cols[f][1]) for i, f in enumerate(self.features) if f in seq_cols and seq_cols[f][0] == "seq"]
        self.kmers = {k: (np.array([i for i, f in enumerate(self.features) if seq_cols.get(f, ("",))[0] == "kmer"
                                    and seq_cols[f][1] == k], dtype=np.int64),
                          np.array([seq_cols[f][2] for f in self.features if seq_cols.get(f, ("",))[0] == "kmer"
                                    and seq_cols[f][1] == k], dtype=np.int64)) for k in cfg.kmer_sizes}
        self.cfg = cfg

    def matrix(self, gene: Mapping[str, object], tracks: Sequence[np.ndarray], positions: np.ndarray,
               sequence: tuple[str, int] | None) -> np.ndarray:
        """``(len(positions), n_features)`` float32 rows in the model's feature order."""
        from ..dataset.features import sequence_features
        from ..dataset.rows import position_features

        X = np.empty((positions.size, len(self.features)), dtype=np.float32)
        frame = position_features(gene, tracks[0], positions, None, 0, self.plain_cfg, tracks[1:])
        X[:, self.plain] = frame_matrix(frame, self.plain_names, self.categories)
        if self.cfg.kmer_sizes:
            seq, off = sequence  # type: ignore[misc]
            cols, mats = sequence_features(positions, seq=seq, seq_offset=off, kmer_sizes=self.cfg.kmer_sizes,
                                           kmer_window=self.cfg.kmer_window)
            for i, name in self.seq:
                X[:, i] = cols[name]
            for k, (at, rows) in self.kmers.items():
                X[:, at] = mats[k][rows].T
        return X


@dataclass
class _Gene:
    tracks: list[np.ndarray]  # per card model, (L, C) transcription orientation
    seq: str | None
    offset: int


@dataclass
class _Item:
    """One corrected window (reference or alternate of a job): its rows in the batch, where they go."""

    job: int
    kind: int  # 0 reference, 1 alternate
    window: np.ndarray  # (cov, 3) genome orientation, the labelling model's values (overwritten at ``at``)
    at: np.ndarray  # window indices of the corrected positions, in row order
    rows: tuple[int, int] = (0, 0)


@dataclass
class MetaScorer:
    """Corrects the +-D windows of variants' tracks with a trained (possibly stacked) meta-model."""

    loaded: LoadedModel
    corrector: Corrector
    stores: list[PredictionStore]
    identities: list[dict[str, str]]
    genes: dict[str, dict]
    weights: dict[str, Path] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    _cache: OrderedDict = field(default_factory=OrderedDict)
    _models: dict[int, object] = field(default_factory=dict)
    _layout: _Layout | None = None

    @classmethod
    def open(cls, model: str | os.PathLike[str], predictions: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
             genome: Genome, table: TranscriptTable, annotation: str | os.PathLike[str],
             weights: Mapping[str, str | os.PathLike[str]] | Sequence[str] | None = None) -> MetaScorer:
        """``predictions``: one store per base model of the card, in card order; ``weights``: checkpoint
        folders by base-model name, for the card's models that need them (OpenSpliceAI)."""
        from ..reference.annotation import load_annotation

        if table.gene_ids is None:
            raise InputError("--model needs -A as the GTF/GFF3 the prediction store was made with "
                             "(its gene IDs key the store), not a SpliceAI table")
        loaded = load_card(model)
        identities = card_base_models(loaded.card)
        paths = as_paths(predictions)
        stores = [PredictionStore(p) for p in paths]
        for store in stores:
            if not store.path.is_dir():
                raise InputError(f"prediction store not found: {store.path} (make it with meta-spliceai predict)")
        stores[0].require_sites("--predictions: give first the store of the base model the meta-model was trained on")
        check_stores(loaded.card, [s.stored_identity() for s in stores], list(paths))
        wmap = weights_map(weights, [m["base_model"] for m in identities])
        ann = load_annotation(annotation)
        contig_map = match_contigs(ann.genes["chrom"].unique().to_list(), genome.contigs, strict=False)
        corr = Corrector(loaded.cfg, float(loaded.card["floor"]), genome, contig_map)
        genes = {g["gene_id"]: g for g in ann.genes.iter_rows(named=True)}
        return cls(loaded, corr, stores, identities, genes, wmap)

    @property
    def names(self) -> list[str]:
        """The card's base models in card order."""
        return [m["base_model"] for m in self.identities]

    # -- base models ----------------------------------------------------------------------------

    def base_model(self, i: int):  # noqa: ANN201 - a BaseModel
        """The card's base model ``i``, loaded once and checked against the card's identity."""
        from ..basemodel.ensemble import load_base_model

        if i not in self._models:
            want = self.identities[i]
            name = want.get("base_model", "spliceai")
            w = self.weights.get(name)
            if name not in PACKAGED_WEIGHTS and w is None:
                raise InputError(f"the model card's base model {i + 1} is {name}: give its checkpoints with "
                                 f"--weights {name}=DIR")
            m = load_base_model(name, weights=w, device="cpu")  # type: ignore[arg-type]
            diff = [f"{k} {m.metadata().get(k)!r} vs {v!r}" for k, v in want.items() if m.metadata().get(k) != v]
            if diff:
                raise ConfigMismatchError(f"--weights {name}={w} is not the card's base model {i + 1} ({'; '.join(diff)})")
            self._models[i] = m
        return self._models[i]

    def model_tracks(self, plan: Plan, records: Sequence[Record], windows: list[str], table: TranscriptTable,
                     genome: Genome, base_identity: Mapping[str, str], *, distance: int, cone: bool,
                     share_reference: bool) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        """Per job of ``plan``, per card model: its (reference, alternate) window tracks (genome orientation,
        the alternate not yet aligned). The plan's jobs carry ``base_identity``'s tracks (reused for a card model
        of that identity); every other model's are computed here, all jobs at once (its cone engine on ONNX
        Runtime, else its windows)."""
        per_model = []
        for i, want in enumerate(self.identities):
            if _same_model(want, base_identity):
                per_model.append([(j.ref_track, j.alt_track) for j in plan.jobs])
                continue
            m = self.base_model(i)
            own = Plan(entries=plan.entries, jobs=[Job(record=j.record, allele=j.allele, gene=j.gene) for j in plan.jobs])
            engine = cone_engine(m, "onnx") if cone else None
            if engine is not None:
                cone_tracks(own, records, table, genome, engine, distance=distance)
            else:
                compute_tracks(own, records, windows, table, genome, m, distance=distance, share_reference=share_reference)
            per_model.append([(j.ref_track, j.alt_track) for j in own.jobs])
        return [list(t) for t in zip(*per_model)]

    # -- correction -----------------------------------------------------------------------------

    def _gene(self, gid: str) -> _Gene | None:
        if gid in self._cache:
            self._cache.move_to_end(gid)
            return self._cache[gid]
        if not all(s.has(gid) for s in self.stores):
            self.missing.add(gid)
            return None
        gene = self.genes[gid]
        tracks = [s.read(gid) for s in self.stores]
        if any(t.shape[0] != tracks[0].shape[0] for t in tracks):
            raise InputError(f"the prediction stores hold different lengths for gene {gid} "
                             f"({', '.join(str(t.shape[0]) for t in tracks)}): predict every model over the same annotation")
        seq, offset = self.corrector.sequence(gene)
        self._cache[gid] = _Gene(tracks, seq, offset)
        if len(self._cache) > GENE_CACHE:
            self._cache.popitem(last=False)
        return self._cache[gid]

    def _local(self, g: _Gene, lo: int, hi: int) -> tuple[str, int]:
        """The gene sequence around gene positions ``[lo, hi]`` with what the sequence features read, and its offset."""
        cfg = self.corrector.cfg
        margin = cfg.kmer_window + max(cfg.kmer_sizes) + 1
        c0 = max(0, g.offset + lo - margin)
        return g.seq[c0: g.offset + hi + margin + 1], g.offset - c0  # type: ignore[index]

    def correct_jobs(self, table: TranscriptTable, jobs: Sequence[tuple], distance: int) -> list[tuple | None]:
        """Corrected (reference, alternate) windows of each job, or None where a store lacks the gene.

        ``jobs``: ``(gene row, pos, REF, ALT, per-model [(reference, aligned alternate)])``, windows ``(cov, C)``
        in genome orientation; one meta-model call for all of them."""
        cov = 2 * distance + 1
        items: list[_Item] = []
        frames = []
        n = 0
        out: list[tuple | None] = [None] * len(jobs)
        for j, (g_row, pos, ref, alt, windows) in enumerate(jobs):
            gid = str(table.gene_ids[g_row])  # type: ignore[index]
            g = self._gene(gid)
            if g is None:
                continue
            gene = self.genes[gid]
            length, minus = g.tracks[0].shape[0], gene["strand"] == "-"
            q = np.arange(pos - distance, pos + distance + 1)
            idx = int(gene["end"]) - q if minus else q - int(gene["start"])
            inside = np.flatnonzero((idx >= 0) & (idx < length))
            a = int(gene["end"]) - (pos + len(ref) - 1) if minus else pos - int(gene["start"])
            allele = reverse_complement(alt) if minus else alt
            # one set of corrected positions for both alleles: where either allele reaches the floor, so a
            # position is scored by the same function in the reference and the alternate (a position that
            # crossed the floor would otherwise jump from the base score to the meta-model's: a false delta)
            top = np.maximum(*(stack_top([w[kind][inside] for w in windows], self.names) for kind in (0, 1)))
            keep = inside[top >= self.corrector.floor]
            keep = keep[np.argsort(idx[keep], kind="stable")]
            positions = idx[keep]
            for kind in (0, 1):
                ys = [w[kind] for w in windows]
                saved = [t[idx[inside]].copy() for t in g.tracks]
                for t, y in zip(g.tracks, ys):
                    t[idx[inside]] = y[inside]
                item = _Item(j, kind, np.asarray(ys[0], dtype=np.float32).copy(), keep)
                if positions.size:
                    parts = self._features(gene, g, positions, kind, a, ref, allele)
                    frames += parts
                    rows = sum(p.shape[0] for p in parts)
                    item.rows = (n, n + rows)
                    n += rows
                for t, s in zip(g.tracks, saved):
                    t[idx[inside]] = s
                items.append(item)
            out[j] = ()
        if frames:
            probs = self.loaded.model.predict(np.concatenate(frames) if len(frames) > 1 else frames[0])
        for it in items:
            if it.rows[1] > it.rows[0]:
                it.window[it.at] = probs[it.rows[0]: it.rows[1]][:, TO_STORE]
            assert it.window.shape[0] == cov
            out[it.job] = (*out[it.job], it.window)  # type: ignore[misc]
        return out

    def _features(self, gene: Mapping[str, object], g: _Gene, positions: np.ndarray, kind: int, a: int, ref: str,
                  allele: str) -> list[np.ndarray]:
        """Feature matrices of sorted ``positions`` (the gene's tracks hold the window's values now): one, or
        for an alternate two (positions upstream of the allele's end, then downstream, which read the
        alternate sequence shifted by the indel)."""
        if self._layout is None:
            self._layout = _Layout(self.loaded)
        track = g.tracks
        if g.seq is None:
            return [self._layout.matrix(gene, track, positions, None)]
        lo, hi = min(int(positions[0]), a), max(int(positions[-1]), a + len(ref))
        local, off = self._local(g, lo, hi)
        if kind == 0:
            return [self._layout.matrix(gene, track, positions, (local, off))]
        left, right, split = allele_sequences(local, off, a, len(ref), allele)
        cut = int(np.searchsorted(positions, split))
        parts = []
        if cut:
            parts.append(self._layout.matrix(gene, track, positions[:cut], (left, off)))
        if cut < positions.size:
            parts.append(self._layout.matrix(gene, track, positions[cut:], (right, off)))
        return parts
