"""Alternate-allele tracks computed only inside a variant's cone of influence.

A variant changes the base model's activations only where their receptive field reaches it: after
residual unit ``u`` (radius ``R_u`` nt, 5,000 after the last), the alternate sequence's residual
stream differs from the reference's only within ``R_u`` nt of the changed bases. So each member is
run piece by piece (stem, 16 residual units, head: :func:`.onnx_graph.build_pieces`) over the
reference once per cluster of nearby variants, keeping the residual stream at every unit boundary,
and each alternate allele is computed only on the positions that are both inside its cone and
needed for its outputs, with the reference's stream spliced in outside the cone. Same numbers as a
full pass over each window (the arithmetic per position is the same; measured in tests/test_cone.py),
at about a third of the multiply-adds for D = 50.

Coordinates: everything here is in *model orientation* (the strings fed to the model, reverse
complemented on ``-`` by the caller), 0-based indices into the gene input ``G``. The alternate
sequence is ``A = G[:v] + alt + G[v + len(ref):]``: equal to ``G`` left of ``v`` and shifted by
``len(alt) - len(ref)`` right of the allele.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from ..config import FLANK
from .ensemble import combine_members, cpu_threads, member_groups, one_hot, ort_options
from .onnx_graph import SKIP_AFTER, build_pieces
from .weights import Weights, unit_trim

log = logging.getLogger(__name__)

#: the most G nucleotides one cluster's reference pass covers beyond its windows (bounds the kept
#: residual streams: 17 boundaries x 32 channels x 4 bytes = 2.2 kB per nucleotide and member)
MAX_CLUSTER = 40_000


@dataclass(frozen=True)
class ConeVariant:
    """One allele to score: its window starts at ``start`` in ``G`` (length ``10,000 + cov``), the
    reference allele occupies ``G[at : at + ref_len]``, ``alt`` replaces it (model orientation)."""

    start: int
    at: int
    ref_len: int
    alt: str
    cov: int


class ConeEngine:
    """The members of a base model as ONNX Runtime pieces; :meth:`score` gives the reference and
    alternate tracks of variant windows of one gene input, combined as ``BaseModel.predict`` combines
    them: per group (member indices, output channels; default: every member, every channel) the mean of
    the members' chosen channels, summed in member order, the groups' columns side by side (Pangolin:
    per tissue P(splice) and usage)."""

    def __init__(self, members: Sequence[Weights], threads: int | None = None,
                 groups: Sequence[tuple[Sequence[int], Sequence[int]]] | None = None) -> None:
        import onnxruntime as ort

        self.groups = member_groups(members, groups)

        self.workers = max(1, min(threads or cpu_threads(), len(members)))
        self.members = []
        for w in members:
            pieces = {}
            for name, model in build_pieces(w).items():
                opts = ort_options(1 if self.workers > 1 else cpu_threads())  # no arenas: 90 sessions would keep ~2 GiB
                pieces[name] = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            self.members.append(pieces)
        trims = [unit_trim(i) for i in range(len(members[0].units))]
        self.trims = trims
        self.radius = [0, *accumulate(trims)]  # R_u: receptive radius after u units (R_0: the stem's, 0)
        if self.radius[-1] != FLANK:
            raise ValueError(f"the units reach {self.radius[-1]} nt, expected {FLANK}")
        self._pool: ThreadPoolExecutor | None = None

    def score(self, gene: str, variants: Sequence[ConeVariant]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(reference ``(cov, C)``, alternate ``(cov + len(alt) - ref_len, C)``) float32 tracks of each
        variant: the model's outputs at the central positions of its reference and alternate windows."""
        order = sorted(range(len(variants)), key=lambda j: variants[j].start)
        clusters: list[list[int]] = []
        for j in order:
            v = variants[j]
            if clusters and v.start - variants[clusters[-1][0]].start <= MAX_CLUSTER:
                clusters[-1].append(j)
            else:
                clusters.append([j])
        tasks = [(c, m) for c in range(len(clusters)) for m in range(len(self.members))]
        if self.workers > 1 and len(tasks) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cone")
            futures = [self._pool.submit(self._member, self.members[m], gene, [variants[j] for j in clusters[c]])
                       for c, m in tasks]
            results = [f.result() for f in futures]
        else:
            results = [self._member(self.members[m], gene, [variants[j] for j in clusters[c]]) for c, m in tasks]
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(variants)  # type: ignore[list-item]
        per = len(self.members)
        for c, js in enumerate(clusters):
            rows = results[c * per: (c + 1) * per]
            for k, j in enumerate(js):
                out[j] = (combine_members([r[k][0] for r in rows], self.groups).T,
                          combine_members([r[k][1] for r in rows], self.groups).T)
        return out

    def _member(self, pieces: dict, gene: str, variants: list[ConeVariant]) -> list[tuple[np.ndarray, np.ndarray]]:
        """One member's (reference, alternate) ``(3, L)`` outputs for variants of one cluster."""
        a = min(v.start for v in variants)
        b = max(v.start + 2 * FLANK + v.cov for v in variants)
        x = np.ascontiguousarray(one_hot(gene[a:b]).T[None])
        states = [pieces["stem"].run(None, {"x": x})[0][0]]  # boundary u at G index a + R_u + i
        for u in range(len(self.trims)):
            states.append(pieces[f"unit{u}"].run(None, {"h": states[-1][None]})[0][0])
        head_in = ["h0"] + [f"h{u}" for u in SKIP_AFTER]
        lo, hi = a + FLANK, b - FLANK  # every reference output of the cluster, one head pass
        ref_all = pieces["head"].run(None, {k: np.ascontiguousarray(self._ref(states, int(k[1:]), a, lo, hi)[None])
                                            for k in head_in})[0][0]
        out = []
        for v in variants:
            o0 = v.start + FLANK
            ref = ref_all[:, o0 - lo: o0 - lo + v.cov]
            out.append((ref, self._alt(pieces, states, a, v, head_in)))
        return out

    def _ref(self, states: list[np.ndarray], u: int, a: int, lo: int, hi: int) -> np.ndarray:
        """The reference stream at boundary ``u`` over G positions ``[lo, hi)``."""
        off = a + self.radius[u]
        return states[u][:, lo - off: hi - off]

    def _alt(self, pieces: dict, states: list[np.ndarray], a: int, v: ConeVariant, head_in: list[str]) -> np.ndarray:
        """The alternate allele's ``(3, cov + shift)`` outputs, unit by unit inside its cone."""
        shift = len(v.alt) - v.ref_len
        o0, o1 = v.start + FLANK, v.start + FLANK + v.cov + shift  # outputs: A positions [o0, o1)
        la = len(v.alt)
        alt_states: dict[int, tuple[int, np.ndarray]] = {}  # boundary -> (first A position, stream)

        def assemble(u: int, lo: int, hi: int) -> np.ndarray:
            """The alternate stream at boundary ``u`` over A positions ``[lo, hi)``."""
            c_lo, c_hi = v.at - self.radius[u], v.at + la + self.radius[u]  # cone [c_lo, c_hi)
            parts = []
            if lo < c_lo:
                parts.append(self._ref(states, u, a, lo, min(hi, c_lo)))
            first, own = alt_states[u]
            s, e = max(lo, c_lo), min(hi, c_hi)
            if s < e:
                parts.append(own[:, s - first: e - first])
            if hi > c_hi:
                parts.append(self._ref(states, u, a, max(lo, c_hi) - shift, hi - shift))
            return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

        x = np.ascontiguousarray(one_hot(v.alt).T[None])
        alt_states[0] = (v.at, pieces["stem"].run(None, {"x": x})[0][0])
        for u, t in enumerate(self.trims, start=1):
            rad = self.radius[u]
            lo = max(v.at - rad, o0 - (FLANK - rad))
            hi = min(v.at + la + rad, o1 + (FLANK - rad))
            h = assemble(u - 1, lo - t, hi + t)
            alt_states[u] = (lo, pieces[f"unit{u - 1}"].run(None, {"h": np.ascontiguousarray(h[None])})[0][0])
        feeds = {k: np.ascontiguousarray(assemble(int(k[1:]), o0, o1)[None]) for k in head_in}
        return pieces["head"].run(None, feeds)[0][0]
