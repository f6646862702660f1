"""The prediction store: base-model scores of every gene-body nucleotide, one Parquet file per gene.

Store layout: a folder holding only finished Parquet files, one per gene (``<gene>.parquet``), that
``polars.scan_parquet(STORE)`` reads as one table with columns

- ``gene_id`` (Arrow ``large_string``, :func:`meta_spliceai.storage.arrow_string`, as in ``master/``), ``position`` (int64,
  :func:`~meta_spliceai.storage.arrow_position`, as in ``master/``; stores written with int32 are cast on read; 0-based
  index into the gene body in transcription direction: 0 = gene start on ``+``, gene end on ``-``), then the model's
  score columns (float32), :data:`meta_spliceai.config.BASE_MODEL_OUTPUTS` of the store's base model: ``neither``,
  ``acceptor``, ``donor`` for SpliceAI, OpenSpliceAI, CI-SpliceAI and corrected (``+meta``) stores; Pangolin's
  ``heart_p``, ``heart_usage``, … ``testis_usage`` (per tissue P(splice site) and usage: no donor/acceptor).

Each file carries the store metadata (schema version, base model name, version, weight digest,
precision) in its Parquet key-value metadata; a store written by one model refuses another's genes.
Every file read is checked against the store's identity (the opening model's, else the one its files
share): a file another model wrote is an error naming it, never silently mixed in.
Files are written in a hidden sibling folder ``.<store>.tmp/`` and renamed in, because a reader of
the folder reads every file it finds: a crash never leaves a partial file in the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import zlib
from pathlib import Path

import numpy as np
import polars as pl

from ..config import BASE_MODEL_OUTPUTS
from ..errors import ConfigMismatchError, InputError
from ..storage import arrow_position, arrow_string, fault_point, guarded_write
from .ensemble import BaseModel

log = logging.getLogger(__name__)


STORE_SCHEMA_VERSION = "1"


META_KEY = b"meta_spliceai.prediction_store"


#: the class-probability columns donor/acceptor consumers read (evaluation, features, tracks, apply): SpliceAI's
COLUMNS: tuple[str, ...] = BASE_MODEL_OUTPUTS["spliceai"]


def columns_of(base_model: str) -> tuple[str, ...]:
    """Score columns of a store whose identity names ``base_model``: its :data:`config.BASE_MODEL_OUTPUTS`;
    any other name (a corrected ``<model>+meta`` store, a test identity) holds :data:`COLUMNS`."""
    return BASE_MODEL_OUTPUTS.get(base_model, COLUMNS)


#: the model's identity fields that must agree across a store
_IDENTITY = ("schema_version", "base_model", "version", "digest", "precision")


_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,150}")


def _unreadable(file: Path, err: Exception) -> str:
    return (f"unreadable file in prediction store: {file} ({' '.join(str(err).split())[:200]}); it is truncated or "
            "corrupt: delete it and re-run (build --run-workflow or predict recompute that gene)")


def _identity_of(meta: dict[str, str]) -> dict[str, str]:
    return {k: str(meta.get(k, "?")) for k in _IDENTITY}


def gene_file_name(gene_id: str) -> str:
    """File name of a gene in the store: the ID itself when filesystem-safe, else a sanitized name + CRC."""
    if _SAFE.fullmatch(gene_id) and not gene_id.endswith(".tmp"):
        return f"{gene_id}.parquet"
    clean = re.sub(r"[^A-Za-z0-9._+-]", "_", gene_id)[:120].lstrip(".") or "gene"
    return f"{clean}~{zlib.crc32(gene_id.encode()):08x}.parquet"


class PredictionStore:
    """A folder of per-gene Parquet files of base-model probabilities (see the module docstring).

    ``model`` (optional) binds the store to a base model: opening a store that holds another
    model's predictions raises ConfigMismatchError, and :meth:`write` stamps the model's identity.
    """

    def __init__(self, path: str | os.PathLike[str], model: BaseModel | dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.tmp = self.path.parent / f".{self.path.name}.tmp"
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"prediction store {self.path} is a file, not a folder (give a folder with --out)")
        self.identity: dict[str, str] | None = None
        self._expected: dict[str, str] | None = None  # what every file read must carry (see _check_file)
        if model is not None:
            meta = model.metadata() if isinstance(model, BaseModel) else dict(model)
            self.identity = {"schema_version": STORE_SCHEMA_VERSION, **{k: meta[k] for k in _IDENTITY[1:]}}
            self._check_identity()

    def __repr__(self) -> str:
        return f"PredictionStore({str(self.path)!r})"

    # -- reading ---------------------------------------------------------------------------

    def files(self) -> list[Path]:
        return sorted(self.path.glob("*.parquet")) if self.path.is_dir() else []

    def file_of(self, gene_id: str) -> Path:
        return self.path / gene_file_name(gene_id)

    def has(self, gene_id: str) -> bool:
        return self.file_of(gene_id).is_file()

    def metadata_of(self, file: Path) -> dict[str, str]:
        """The store metadata stamped in one file (InputError when it has none)."""
        import pyarrow.parquet as pq

        try:
            kv = pq.read_schema(file).metadata or {}
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise InputError(_unreadable(file, err)) from None
        if META_KEY not in kv:
            raise InputError(f"{file} is not a meta-spliceai prediction file; the store {self.path} must hold only its own files")
        return json.loads(kv[META_KEY])

    def length_of(self, gene_id: str) -> int | None:
        """Number of scored positions stored for a gene (None when it is not in the store)."""
        f = self.file_of(gene_id)
        if not f.is_file():
            return None
        meta = self.metadata_of(f)
        if "length" in meta:
            return int(meta["length"])
        import pyarrow.parquet as pq

        return pq.ParquetFile(f).metadata.num_rows

    def remove(self, gene_id: str) -> None:
        """Drop a gene's predictions (stale ones, before they are recomputed)."""
        self.file_of(gene_id).unlink(missing_ok=True)

    def finished_genes(self) -> set[str]:
        """IDs of the genes whose predictions are in the store (read from the files' metadata)."""
        return {self.metadata_of(f)["gene_id"] for f in self.files()}

    @property
    def columns(self) -> tuple[str, ...]:
        """The score columns this store holds, in order (:func:`columns_of` its identity's base model; an empty
        store opened without a model: :data:`COLUMNS`)."""
        have = self.identity or self._expected or self.stored_identity()
        return columns_of(have["base_model"]) if have else COLUMNS

    def require_sites(self, hint: str) -> None:
        """InputError unless the store holds donor/acceptor probabilities (:data:`COLUMNS`); ``hint`` says what to
        do instead (Pangolin's per-tissue scores do not tell donor from acceptor)."""
        cols = self.columns
        if cols != COLUMNS:
            name = str((self.identity or self.stored_identity() or {}).get("base_model", "?")).capitalize()
            raise InputError(f"prediction store {self.path} holds {name} scores ({', '.join(cols)}), not donor/acceptor "
                             f"probabilities: {name} does not tell donor from acceptor; {hint}")

    def read(self, gene_id: str) -> np.ndarray:
        """Scores ``(L, C)`` float32, columns :attr:`columns` in order (SpliceAI: ``[neither, acceptor, donor]``),
        row i = body position i (0-based)."""
        import pyarrow.parquet as pq

        f = self.file_of(gene_id)
        if not f.is_file():
            raise InputError(f"gene {gene_id} is not in prediction store {self.path} (run meta-spliceai predict for it)")
        cols = list(self.columns)
        try:
            t = pq.read_table(f, columns=cols)
        except Exception as err:  # pyarrow raises several types for a damaged file
            self._check_file(f, self.metadata_of(f), gene_id)  # another model's file (other columns) is named as such
            raise InputError(_unreadable(f, err)) from None
        kv = t.schema.metadata or {}
        if META_KEY not in kv:
            raise InputError(f"{f} is not a meta-spliceai prediction file; the store {self.path} must hold only its own files")
        self._check_file(f, json.loads(kv[META_KEY]), gene_id)
        return np.column_stack([t.column(c).to_numpy() for c in cols]).astype(np.float32, copy=False)

    def scan(self) -> pl.LazyFrame:
        """All predictions as one lazy table (gene_id, position, then :attr:`columns`); ``position`` Int64
        whatever the files hold (stores written before int64 hold int32)."""
        files = self.files()
        if not files:
            return pl.scan_parquet(self.path)
        schema = {**pl.read_parquet_schema(files[0]), "position": pl.Int64}
        return pl.scan_parquet(files, schema=schema, cast_options=pl.ScanCastOptions(integer_cast="upcast"))

    def stored_identity(self) -> dict[str, str] | None:
        """Identity (model, version, digest, precision, schema) of the store's predictions; None when empty.

        Read from the first and last file; where they differ, the identity most files share.
        """
        files = self.files()
        if not files:
            return None
        first, last = (_identity_of(self.metadata_of(f)) for f in (files[0], files[-1]))
        if first == last:
            return first
        return dict(max(self._census().items(), key=lambda kv: len(kv[1]))[0])

    def _census(self) -> dict[tuple, list[Path]]:
        """Every file by its identity (reads every footer: only on the error path)."""
        out: dict[tuple, list[Path]] = {}
        for f in self.files():
            out.setdefault(tuple(_identity_of(self.metadata_of(f)).items()), []).append(f)
        return out

    def _check_file(self, file: Path, meta: dict[str, str], gene_id: str) -> None:
        """A file whose own metadata names another model (or another gene) than the store's is an error naming it."""
        if meta.get("gene_id", gene_id) != gene_id:
            raise InputError(f"{file} holds the predictions of gene {meta.get('gene_id')!r}, not {gene_id!r} (a file "
                             f"copied or renamed into {self.path}?); delete it and re-run (build --run-workflow or "
                             "predict recompute that gene)")
        if self._expected is None:
            self._expected = self.identity or self.stored_identity()
        have = _identity_of(meta)
        if self._expected is None or have == self._expected:
            return
        want = self._expected
        if self.identity is None:  # no model given: the store's identity is the one most of its files share
            census = self._census()
            want = dict(max(census.items(), key=lambda kv: len(kv[1]))[0])
            if have == want:  # the file read is of the majority: name the odd ones instead
                odd = sorted(f for key, fs in census.items() if dict(key) != want for f in fs)
                file, have = odd[0], _identity_of(self.metadata_of(odd[0]))
        diff = ", ".join(f"{k} {have[k]!r} vs {want[k]!r}" for k in _IDENTITY if have[k] != want[k])
        raise ConfigMismatchError(
            f"{file} was written by another base model than the rest of prediction store {self.path} ({diff}); "
            "a store holds one model's predictions: delete that file (or move it to a store of its own) and re-run "
            "(build --run-workflow or predict recompute that gene)"
        )

    def _check_identity(self) -> None:
        have = self.stored_identity()
        if have is None or self.identity is None or have == self.identity:
            return
        diff = ", ".join(f"{k} {have[k]!r} vs {self.identity[k]!r}" for k in _IDENTITY if have[k] != self.identity[k])
        raise ConfigMismatchError(
            f"prediction store {self.path} holds predictions of another base model ({diff}); "
            "use another --out folder (stores never mix models)"
        )

    # -- writing ---------------------------------------------------------------------------

    def remove_stale_tmp(self) -> None:
        """Delete temporary files killed writers left in the sibling temp folder (no writer may be running)."""
        if self.tmp.is_dir():
            for f in self.tmp.iterdir():
                with contextlib.suppress(OSError):
                    f.unlink()
            with contextlib.suppress(OSError):
                self.tmp.rmdir()

    def write(self, gene_id: str, probs: np.ndarray, extra: dict[str, str] | None = None) -> Path:
        """Write one gene atomically (temp file in the sibling ``.tmp`` folder, then rename into the store).

        ``probs`` is ``(L, C)``, columns :attr:`columns` (SpliceAI: ``[neither, acceptor, donor]``), in gene
        order (row i = position i, 0-based).
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.identity is None:
            raise InputError("PredictionStore.write needs the store opened with its base model (PredictionStore(path, model))")
        probs = np.asarray(probs, dtype=np.float32)
        cols = self.columns
        if probs.ndim != 2 or probs.shape[1] != len(cols):
            raise InputError(f"predictions of gene {gene_id} have shape {probs.shape}; expected (length, {len(cols)}) "
                             f"[{', '.join(cols)}]")
        n = probs.shape[0]
        meta = {**self.identity, "gene_id": gene_id, "length": str(n), **(extra or {})}
        table = pa.table(
            {
                "gene_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([gene_id])).cast(arrow_string()),
                "position": pa.array(np.arange(n, dtype=np.int64), arrow_position()),
                **{c: pa.array(np.ascontiguousarray(probs[:, i])) for i, c in enumerate(cols)},
            }
        ).replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True)})
        self.path.mkdir(parents=True, exist_ok=True)
        final = self.file_of(gene_id)
        tmp = self.tmp / f"{final.name}.{os.getpid()}"
        for attempt in range(3):  # a parallel writer that finished may remove the empty temp folder meanwhile
            self.tmp.mkdir(parents=True, exist_ok=True)
            try:
                guarded_write(tmp, final, lambda: pq.write_table(table, tmp, compression="zstd",
                                                                 row_group_size=max(n, 1)))
                os.replace(tmp, final)
                break
            except (FileNotFoundError, OSError):
                if attempt == 2 or self.tmp.is_dir():
                    raise
        fault_point("predict_gene")
        return final
