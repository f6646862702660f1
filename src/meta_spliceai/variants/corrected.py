"""Delta scores of the meta-model's corrected tracks (the ``MetaSpliceAI`` INFO key of ``variants --model``).

For a scored (variant, gene), the gene's whole base-model track comes from the prediction store (as
``apply`` reads it); its +-D window around the variant is replaced by the reference (resp. aligned
alternate) outputs SpliceAI's rules give, and the meta-model corrects the positions of that window
(features by the builder's own code, with the whole-track context the features need). The deltas
are then taken exactly as SpliceAI's, on the corrected tracks. Positions of the window outside the
gene body keep the base model's values. Limitation: k-mer features read the reference sequence.
No variant truth set was available to us: nothing says these deltas beat SpliceAI's for variant
interpretation.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from ..basemodel.store import PredictionStore
from ..errors import InputError
from ..metamodel.card import Corrector, LoadedModel, check_store, load_card
from ..metamodel.trainset import frame_matrix
from ..reference.genome import Genome, match_contigs
from .transcripts import TranscriptTable

log = logging.getLogger(__name__)

INFO_KEY = "MetaSpliceAI"
HEADER_LINE = ('##INFO=<ID=MetaSpliceAI,Number=.,Type=String,Description="meta-spliceai: the SpliceAI delta scores '
               'recomputed on the meta-model\'s corrected tracks (base model: SpliceAI; reference and alternate '
               'outputs within +-D spliced into the gene\'s whole-gene track from the prediction store). Not '
               'validated for variant interpretation. Format: ALLELE|SYMBOL|DS_AG|DS_AL|DS_DG|DS_DL|DP_AG|DP_AL|'
               'DP_DG|DP_DL">')


@dataclass
class MetaScorer:
    """Corrects the +-D window of a variant's tracks with a trained meta-model."""

    loaded: LoadedModel
    corrector: Corrector
    store: PredictionStore
    genes: dict[str, dict]
    missing: set[str]

    @classmethod
    def open(cls, model: str | os.PathLike[str], predictions: str | os.PathLike[str], genome: Genome,
             table: TranscriptTable, annotation: str | os.PathLike[str]) -> MetaScorer:
        from ..reference.annotation import load_annotation

        if table.gene_ids is None:
            raise InputError("--model needs -A as the GTF/GFF3 the prediction store was made with "
                             "(its gene IDs key the store), not a SpliceAI table")
        loaded = load_card(model)
        store = PredictionStore(predictions)
        if not store.path.is_dir():
            raise InputError(f"prediction store not found: {store.path} (make it with meta-spliceai predict)")
        store.require_sites("--predictions: give the store of the base model the meta-model was trained on")
        check_store(loaded.card, store.stored_identity(), store.path)
        ann = load_annotation(annotation)
        contig_map = match_contigs(ann.genes["chrom"].unique().to_list(), genome.contigs, strict=False)
        corr = Corrector(loaded.cfg, float(loaded.card["floor"]), genome, contig_map)
        genes = {g["gene_id"]: g for g in ann.genes.iter_rows(named=True)}
        return cls(loaded, corr, store, genes, set())

    def corrected(self, table: TranscriptTable, g: int, pos: int, distance: int, ref: np.ndarray,
                  alt: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Corrected (ref, alt) tracks over the cov window (genome orientation), or None without a stored track."""
        gid = str(table.gene_ids[g])  # type: ignore[index]
        if not self.store.has(gid):
            self.missing.add(gid)
            return None
        gene = self.genes[gid]
        track = self.store.read(gid)  # (L, 3) [neither, acceptor, donor], transcription orientation
        n, cov = track.shape[0], 2 * distance + 1
        q = np.arange(pos - distance, pos + distance + 1)  # genome positions of the window, 1-based
        idx = q - int(gene["start"]) if gene["strand"] == "+" else int(gene["end"]) - q
        inside = (idx >= 0) & (idx < n)
        out = []
        for y in (ref, alt):
            t = track.copy()
            t[idx[inside]] = y[inside]
            positions = np.sort(idx[inside])
            positions = positions[np.maximum(t[positions, 1], t[positions, 2]) >= self.corrector.floor]
            if positions.size:
                feats = self.corrector.features(gene, t, positions)
                X = frame_matrix(feats, self.loaded.model.features, self.loaded.model.categories)
                t = self.corrector.correct(t, positions, self.loaded.model.predict(X))
            w = np.asarray(y, dtype=np.float32).copy()
            w[inside] = t[idx[inside]]
            out.append(w)
        assert out[0].shape[0] == cov
        return out[0], out[1]


