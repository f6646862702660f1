"""A validation report of a dataset: integrity, labels, completeness and a leakage audit, streamed.

Checks (each problem names the file, and the row group, column and row where there is one):

- ``layout``: every manifest file present in ``master/``, nothing else there;
- ``manifest``: manifest readable; per file the checksum, row count, genes and pred_type counts match;
- ``schema``: every file's schema (columns, types, roles, k-mer settings) equals the dataset's
  (``build.json``'s settings, else the first file's) and its ``schema_version`` the manifest's;
- ``nulls``: no null in a column the schema marks complete (all but ``tn_kind``);
- ``labels``: ``splice_type``, ``pred_type``, ``tn_kind`` and ``strand`` in their domains;
  ``tn_kind`` set exactly on TN rows; positions in the gene;
- ``consistency``: ``pred_type`` agrees with ``splice_type`` (sites TP/FN, other rows FP/TN) and with
  the row's own scores at the build's threshold and consensus window (TP iff the site type's score
  reaches the threshold within the window, exact for windows ≤ 2; FP needs a score at the
  threshold with no annotated site of that type within the window; a TN scoring at the threshold
  needs such a site);
- ``genes``: no gene in two files;
- ``sites``: every annotated site of a built gene present exactly once (in a deduplicated dataset a
  site may sit in an overlapping gene's row) and no site row that the annotation lacks;
- ``kmers``: every 4^k k-mer column present and complete, counts within the window's k-mers;
- ``leakage``: per feature and ``splice_type`` class, the share of rows that are missing (null,
  NaN) or hold a sentinel (±inf, -1, -999, -9999, 999, 9999, 99999, empty string); a feature whose
  missing or sentinel share differs by ≥ :data:`LEAKAGE_GAP` between two classes is flagged: it
  separates classes through how it was filled, not through what it measures. Means per class are
  reported for every non-k-mer feature.

Memory: one row group plus small per-gene and per-site tables.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..dataset.folder import (
    BUILD_JSON,
    JOURNAL,
    STAGING,
    Dataset,
    dataset_root,
    manifest_path,
    read_manifest,
    recover,
)
from ..dataset.schema import (
    METADATA_KEY,
    PRED_TYPES,
    SCHEMA_VERSION,
    SPLICE_TYPES,
    TN_KINDS,
    feature_columns,
    kmer_names,
    kmer_span,
    read_metadata,
    schema_of,
)
from ..errors import InputError
from ..storage import checksum, folder_lock
from .publish import dataset_annotation

log = logging.getLogger(__name__)

CHECKS: tuple[str, ...] = ("layout", "manifest", "schema", "nulls", "labels", "consistency", "genes", "sites",
                           "kmers", "leakage")
#: a feature whose missing/sentinel share differs by at least this much between two classes is flagged
LEAKAGE_GAP = 0.5
SENTINELS = np.array([-1, -999, -9999, 999, 9999, 99999], dtype=np.float64)
#: problems listed per check before the rest are only counted
MAX_LISTED = 50


@dataclass
class Problem:
    check: str
    message: str
    file: str | None = None
    row_group: int | None = None
    column: str | None = None
    row: int | None = None

    def __str__(self) -> str:
        where = [w for w in (self.file, None if self.row_group is None else f"row group {self.row_group}",
                             None if self.row is None else f"row {self.row}",
                             None if self.column is None else f"column {self.column}") if w]
        return f"[{self.check}] {', '.join(where)}: {self.message}" if where else f"[{self.check}] {self.message}"


@dataclass
class ValidationReport:
    dataset: str
    files: int = 0
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    leakage: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def add(self, check: str, message: str, **where: object) -> None:
        self.counts[check] += 1
        if self.counts[check] <= MAX_LISTED:
            self.problems.append(Problem(check, message, **where))  # type: ignore[arg-type]

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "ok": self.ok, "files": self.files, "rows": self.rows,
                "checks": {c: {"passed": n == 0, "problems": n} for c, n in self.counts.items()},
                "problems": [asdict(p) for p in self.problems], "leakage": self.leakage}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


class _Audit:
    """Per feature and splice_type class: rows, missing, sentinel, sum (for means)."""

    def __init__(self, features: list[str], kmer: set[str]) -> None:
        self.features, self.kmer = features, kmer
        n = len(features)
        self.rows = np.zeros(len(SPLICE_TYPES), dtype=np.int64)
        self.missing = np.zeros((n, len(SPLICE_TYPES)), dtype=np.int64)
        self.sentinel = np.zeros((n, len(SPLICE_TYPES)), dtype=np.int64)
        self.sums = np.zeros((n, len(SPLICE_TYPES)), dtype=np.float64)
        self.counted = np.zeros((n, len(SPLICE_TYPES)), dtype=np.int64)

    def add(self, t: pa.Table, cls: np.ndarray) -> None:
        masks = [cls == c for c in range(len(SPLICE_TYPES))]
        self.rows += [m.sum() for m in masks]
        present = set(t.column_names)
        for i, name in enumerate(self.features):
            if name not in present:
                continue
            col = t.column(name)
            nulls = col.null_count
            if name in self.kmer and not nulls:
                continue
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                missing = col.is_null().to_numpy(zero_copy_only=False)
                sentinel = pc.equal(col, "").fill_null(False).to_numpy(zero_copy_only=False)
                values = None
            else:
                values = col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False) if not nulls else \
                    col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
                missing = np.isnan(values)
                if nulls:
                    missing |= col.is_null().to_numpy(zero_copy_only=False)
                sentinel = np.isinf(values) | np.isin(values, SENTINELS)
            for c, m in enumerate(masks):
                self.missing[i, c] += np.count_nonzero(missing & m)
                self.sentinel[i, c] += np.count_nonzero(sentinel & m)
                if values is not None and name not in self.kmer:
                    ok = m & ~missing & ~sentinel
                    self.sums[i, c] += values[ok].sum()
                    self.counted[i, c] += np.count_nonzero(ok)

    def results(self) -> list[dict]:
        out = []
        seen = self.rows > 0
        for i, name in enumerate(self.features):
            with np.errstate(invalid="ignore", divide="ignore"):
                miss = self.missing[i] / self.rows
                sent = self.sentinel[i] / self.rows
                mean = self.sums[i] / self.counted[i]
            gaps = [float(np.ptp(x[seen])) if seen.any() else 0.0 for x in (miss, sent)]
            out.append({
                "feature": name,
                "missing_share": {SPLICE_TYPES[c]: round(float(miss[c]), 6) for c in range(len(SPLICE_TYPES)) if seen[c]},
                "sentinel_share": {SPLICE_TYPES[c]: round(float(sent[c]), 6) for c in range(len(SPLICE_TYPES)) if seen[c]},
                "mean": None if name in self.kmer else {SPLICE_TYPES[c]: (None if not np.isfinite(mean[c]) else
                                                                         round(float(mean[c]), 6))
                                                        for c in range(len(SPLICE_TYPES)) if seen[c]},
                "flagged": max(gaps) >= LEAKAGE_GAP,
            })
        return out


def _expected_schema(ds_build: dict, first: pa.Schema | None) -> pa.Schema | None:
    cfg = ds_build.get("config") or {}
    if "kmer_sizes" in cfg:
        return schema_of(cfg)
    if first is not None and METADATA_KEY in (first.metadata or {}):
        meta = read_metadata(first)
        return schema_of(meta)
    return None


def _schema_diff(have: pa.Schema, want: pa.Schema) -> list[tuple[str | None, str]]:
    out: list[tuple[str | None, str]] = []
    have_names, want_names = set(have.names), set(want.names)
    missing = [n for n in want.names if n not in have_names]
    extra = [n for n in have.names if n not in want_names]
    if missing:
        out.append((missing[0], f"{len(missing)} column(s) missing: {', '.join(missing[:5])}"))
    if extra:
        out.append((extra[0], f"{len(extra)} unexpected column(s): {', '.join(extra[:5])}"))
    for f in want:
        if f.name in have_names:
            g = have.field(f.name)
            if g.type != f.type:
                out.append((f.name, f"type {g.type}, expected {f.type}"))
            elif g.nullable != f.nullable:
                out.append((f.name, f"declared {'nullable' if g.nullable else 'complete'}, expected "
                                    f"{'nullable' if f.nullable else 'complete'}"))
    if not missing and not extra and have.names != want.names:
        out.append((None, "columns are out of order"))
    hm, wm = (have.metadata or {}).get(METADATA_KEY), (want.metadata or {}).get(METADATA_KEY)
    if hm is None:
        out.append((None, "no meta_spliceai schema metadata (roles, version)"))
    elif hm != wm:
        h, w = json.loads(hm), json.loads(wm)
        keys = [k for k in w if h.get(k) != w.get(k)]
        out.append((None, f"schema metadata differs in {', '.join(keys) or 'extra keys'}"))
    return out


def validate(*, dataset: str | os.PathLike[str], gtf: str | os.PathLike[str] | None = None) -> ValidationReport:
    """Run every check (module doc) over a dataset folder; ``gtf`` overrides the build's annotation."""
    root = dataset_root(dataset)
    if (root / JOURNAL).exists() or (root / STAGING).exists():
        with folder_lock(root, "meta-spliceai command"):
            recover(root)
    rep = ValidationReport(dataset=str(root))
    try:
        manifest = read_manifest(root, strict=True)
    except InputError as err:
        rep.add("manifest", str(err), file=manifest_path(root).name)
        manifest = {"batches": {}}
    build = {}
    if (root / BUILD_JSON).is_file():
        try:
            build = json.loads((root / BUILD_JSON).read_text())
        except json.JSONDecodeError as err:
            rep.add("manifest", f"not valid JSON ({err})", file=BUILD_JSON)
    ds = Dataset(root=root, manifest=manifest, build=build)
    entries = ds.entries()
    listed = {e["file"] for _, e in entries}
    for p in sorted(ds.master.iterdir()):
        if p.name not in listed:
            what = "a Parquet file" if p.suffix == ".parquet" else "not a dataset file"
            rep.add("layout", f"extra file in master/ ({what}, not in the manifest): remove it or rebuild the manifest",
                    file=f"master/{p.name}")
    ctx = _Scan(ds, rep)
    for key, entry in entries:
        ctx.scan_file(key, entry)
    ctx.finish(gtf)
    return rep


class _Scan:
    """State of one validation pass."""

    def __init__(self, ds: Dataset, rep: ValidationReport) -> None:
        self.ds, self.rep = ds, rep
        cfg = ds.config
        self.threshold = float(cfg.get("threshold", 0.5))
        self.window = int(cfg.get("consensus_window", 2))
        self.expected: pa.Schema | None = None
        self.audit: _Audit | None = None
        self.gene_files: dict[str, list[str]] = {}
        self.sites: list[pl.DataFrame] = []
        self.high_neither: list[pl.DataFrame] = []  # FP rows and TN rows with a score at the threshold

    def scan_file(self, key: str, entry: dict) -> None:
        rep, name = self.rep, f"master/{entry.get('file')}"
        path = self.ds.master / str(entry.get("file"))
        if not path.is_file():
            rep.add("layout", "file listed in the manifest is missing", file=name)
            return
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as err:
            rep.add("layout", f"not a readable Parquet file (truncated or corrupt: {err})", file=name)
            return
        rep.files += 1
        if entry.get("checksum") != checksum(path):
            rep.add("manifest", "checksum differs from the manifest (file changed after the build, or manifest edited)",
                    file=name)
        n = pf.metadata.num_rows
        rep.rows += n
        if entry.get("rows") != n:
            rep.add("manifest", f"{n} rows, the manifest says {entry.get('rows')}", file=name)
        schema = pf.schema_arrow
        if self.expected is None:
            self.expected = _expected_schema(self.ds.build, schema)
            if self.expected is not None:
                kmer = {c for k in read_metadata(self.expected)["kmer_sizes"] for c in kmer_names(int(k))}
                self.audit = _Audit(feature_columns(self.expected), kmer)
        if self.expected is not None:
            for col, msg in _schema_diff(schema, self.expected):
                rep.add("schema", msg, file=name, column=col)
        if METADATA_KEY in (schema.metadata or {}):
            v = read_metadata(schema).get("schema_version")
            mv = self.ds.manifest.get("schema_version", SCHEMA_VERSION)
            if v != mv:
                rep.add("schema", f"schema_version {v}, the manifest says {mv}", file=name)
            if v != SCHEMA_VERSION:
                rep.add("schema", f"schema_version {v}, current is {SCHEMA_VERSION}: run meta-spliceai patch", file=name)
        genes: dict[str, None] = {}
        pred_counts: dict[str, int] = {}
        nulls: dict[str, list[int]] = {}
        offset = 0
        try:
            for g in range(pf.num_row_groups):
                t = pf.read_row_group(g)
                self._row_group(t, g, offset, name, genes, pred_counts, nulls, schema)
                offset += t.num_rows
        except (pa.ArrowInvalid, OSError) as err:
            rep.add("layout", f"row group unreadable (corrupt: {err})", file=name, row_group=g)
        for col, (count, *groups) in nulls.items():
            rep.add("nulls", f"{count} null value(s) in a column that must be complete (row groups "
                             f"{', '.join(map(str, groups[:10]))})", file=name, column=col, row_group=groups[0])
        for gid in genes:
            self.gene_files.setdefault(gid, []).append(name)
        # genes the build recorded as without rows (no sites, no confident scores) are not in the file
        listed = [g for g in entry.get("genes") or [] if g not in (entry.get("genes_without_rows") or {})]
        if sorted(listed) != sorted(genes):
            extra = sorted(set(genes) - set(listed))
            lacking = sorted(set(listed) - set(genes))
            rep.add("manifest", f"genes differ from the manifest (in the file only: {extra[:5]}; in the manifest only: "
                                f"{lacking[:5]})", file=name)
        if "pred_types" in entry and dict(sorted(entry["pred_types"].items())) != dict(sorted(pred_counts.items())):
            rep.add("manifest", f"pred_type counts {dict(sorted(pred_counts.items()))}, the manifest says "
                                f"{entry['pred_types']}", file=name)

    def _row_group(self, t: pa.Table, g: int, offset: int, name: str, genes: dict, pred_counts: dict,
                   nulls: dict, schema: pa.Schema) -> None:
        rep = self.rep
        expected = self.expected or schema
        present = set(t.column_names)
        for f in expected:
            if not f.nullable and f.name in present and t.column(f.name).null_count:
                entry = nulls.setdefault(f.name, [0])
                entry[0] += t.column(f.name).null_count
                entry.append(g)
        for gid in pc.unique(t.column("gene_id")).to_pylist() if "gene_id" in present else []:
            genes.setdefault(gid, None)
        need = ["gene_id", "chrom", "strand", "genomic_position", "position", "splice_type", "pred_type", "tn_kind",
                "gene_length", "donor_score", "acceptor_score",
                *(f"{tr}_score_{o}" for tr in ("donor", "acceptor") for o in ("m2", "m1", "p1", "p2"))]
        if any(c not in present for c in need):
            return  # the schema check reported it
        df = pl.from_arrow(t.select(need)).with_row_index("_row", offset)
        for k, v in df["pred_type"].value_counts().iter_rows():
            if k is not None:
                pred_counts[k] = pred_counts.get(k, 0) + int(v)

        def first_bad(mask: pl.Expr, check: str, column: str, what: str) -> None:
            bad = df.filter(mask.fill_null(False))
            if bad.height:
                r = bad.row(0, named=True)
                rep.add(check, f"{bad.height} row(s) {what} (first: gene {r['gene_id']}, genomic_position "
                               f"{r['genomic_position']}, {column}={r[column]!r})", file=name, row_group=g,
                        column=column, row=r["_row"])

        first_bad(~pl.col("splice_type").is_in(SPLICE_TYPES), "labels", "splice_type", f"outside {SPLICE_TYPES}")
        first_bad(~pl.col("pred_type").is_in(PRED_TYPES), "labels", "pred_type", f"outside {PRED_TYPES}")
        first_bad(pl.col("tn_kind").is_not_null() & ~pl.col("tn_kind").is_in(TN_KINDS), "labels", "tn_kind",
                  f"outside {TN_KINDS}")
        first_bad((pl.col("pred_type") == "TN") != pl.col("tn_kind").is_not_null(), "labels", "tn_kind",
                  "with tn_kind set on a non-TN row or missing on a TN row")
        first_bad(~pl.col("strand").is_in(["+", "-"]), "labels", "strand", "with a strand other than + or -")
        first_bad((pl.col("position") < 0) | (pl.col("position") >= pl.col("gene_length")) |
                  (pl.col("genomic_position") < 1), "labels", "position", "outside their gene")
        site = pl.col("splice_type").is_in(["donor", "acceptor"])
        first_bad(site & ~pl.col("pred_type").is_in(["TP", "FN"]), "consistency", "pred_type",
                  "with a site splice_type but pred_type not TP/FN")
        first_bad(~site & ~pl.col("pred_type").is_in(["FP", "TN"]), "consistency", "pred_type",
                  "with splice_type neither but pred_type not FP/TN")
        w, t_ = self.window, self.threshold
        offs = [o for o, d in (("m2", 2), ("m1", 1), ("p1", 1), ("p2", 2)) if d <= w]
        for tr in ("donor", "acceptor"):
            peak = pl.max_horizontal([pl.col(f"{tr}_score"), *(pl.col(f"{tr}_score_{o}") for o in offs)])
            is_t = pl.col("splice_type") == tr
            first_bad(is_t & (pl.col("pred_type") == "FN") & (peak >= t_), "consistency", "pred_type",
                      f"FN although the {tr} score reaches {t_} within ±{min(w, 2)}")
            if w <= 2:
                first_bad(is_t & (pl.col("pred_type") == "TP") & (peak < t_), "consistency", "pred_type",
                          f"TP although no {tr} score reaches {t_} within ±{w}")
        top = pl.max_horizontal("donor_score", "acceptor_score")
        first_bad(~site & (pl.col("pred_type") == "FP") & (top < t_), "consistency", "pred_type",
                  f"FP although neither score reaches {t_}")
        high = df.filter(~site & (top >= t_) & pl.col("pred_type").is_in(["FP", "TN"]))
        if high.height:
            self.high_neither.append(high.select("_row", "gene_id", "strand", "genomic_position", "pred_type",
                                                 "donor_score", "acceptor_score").with_columns(
                pl.lit(name).alias("file"), pl.lit(g).alias("row_group")))
        self.sites.append(df.filter(site).select("gene_id", "chrom", "strand", "genomic_position", "splice_type"))
        self._kmers(t, g, name)
        if self.audit is not None and "splice_type" in present:
            codes = pc.index_in(t.column("splice_type"), value_set=pa.array(SPLICE_TYPES)).fill_null(-1)
            self.audit.add(t, codes.to_numpy(zero_copy_only=False))

    def _kmers(self, t: pa.Table, g: int, name: str) -> None:
        if self.expected is None:
            return
        meta = read_metadata(self.expected)
        for k in meta["kmer_sizes"]:
            names = kmer_names(int(k))
            have = set(t.column_names)
            present = [c for c in names if c in have]
            if len(present) != len(names):
                self.rep.add("kmers", f"{len(names) - len(present)} of the {len(names)} {k}-mer columns missing",
                             file=name, row_group=g, column=next(c for c in names if c not in have))
                continue
            total = np.zeros(t.num_rows, dtype=np.int64)
            for c in present:
                col = t.column(c)
                total += (col.fill_null(0) if col.null_count else col).to_numpy(zero_copy_only=False)
            most = kmer_span(int(meta["kmer_window"])) - int(k) + 1
            bad = np.flatnonzero(total > most)
            if bad.size:
                self.rep.add("kmers", f"{bad.size} row(s) count more {k}-mers than the window holds ({most})",
                             file=name, row_group=g, row=int(bad[0]))

    def finish(self, gtf: str | os.PathLike[str] | None) -> None:
        rep = self.rep
        for gid, files in self.gene_files.items():
            if len(files) > 1:
                rep.add("genes", f"gene {gid} is in {len(files)} files: {', '.join(files)} (a duplicated batch, or "
                                 "overlapping merged builds: run meta-spliceai dedup)", file=files[1])
        if self.audit is not None:
            rep.leakage = self.audit.results()
            for r in rep.leakage:
                if r["flagged"]:
                    rep.add("leakage", f"missing/sentinel share differs between classes (missing {r['missing_share']}, "
                                       f"sentinel {r['sentinel_share']}): the feature can separate classes by how it "
                                       "was filled", column=r["feature"])
        if not self.gene_files:
            return
        try:
            ann = dataset_annotation(self.ds, gtf)
        except InputError as err:
            rep.add("sites", f"cannot check annotated sites: {err}")
            return
        self._sites(ann)

    def _sites(self, ann) -> None:
        rep = self.rep
        built = list(self.gene_files)
        want = ann.splice_sites.filter(pl.col("gene_id").is_in(built)).select(
            "gene_id", "chrom", "strand", pl.col("genomic_position").cast(pl.Int64), pl.col("site_type").alias("splice_type"))
        have = pl.concat(self.sites) if self.sites else want.clear()
        have = have.with_columns(pl.col("chrom").cast(pl.String))
        per_gene = have.group_by("gene_id", "splice_type", "genomic_position").len()
        j = want.join(per_gene, on=["gene_id", "splice_type", "genomic_position"], how="left")
        twice = j.filter(pl.col("len") > 1)
        for r in twice.head(MAX_LISTED).iter_rows(named=True):
            rep.add("sites", f"annotated {r['splice_type']} site {r['chrom']}:{r['genomic_position']} of gene "
                             f"{r['gene_id']} present {r['len']} times", file=self._file_of(r["gene_id"]))
        absent = j.filter(pl.col("len").is_null()).drop("len")
        if absent.height:  # a deduplicated dataset keeps the site in one overlapping gene's row
            elsewhere = have.select("chrom", "strand", "genomic_position", "splice_type").unique()
            absent = absent.join(elsewhere, on=["chrom", "strand", "genomic_position", "splice_type"], how="anti")
        for r in absent.head(MAX_LISTED).iter_rows(named=True):
            rep.add("sites", f"annotated {r['splice_type']} site {r['chrom']}:{r['genomic_position']} of gene "
                             f"{r['gene_id']} has no row", file=self._file_of(r["gene_id"]))
        if absent.height > MAX_LISTED:
            rep.counts["sites"] += absent.height - MAX_LISTED
        extra = have.join(want, on=["gene_id", "splice_type", "genomic_position"], how="anti")
        for r in extra.head(MAX_LISTED).iter_rows(named=True):
            rep.add("sites", f"row labelled {r['splice_type']} at {r['chrom']}:{r['genomic_position']} is no annotated "
                             f"site of gene {r['gene_id']}", file=self._file_of(r["gene_id"]), column="splice_type")
        # FP/TN rows that score at the threshold: FP needs no site of that type within the window, TN one
        if not self.high_neither:
            return
        high = pl.concat(self.high_neither)
        sites = want.select("gene_id", "splice_type", pl.col("genomic_position").alias("site_pos"))
        w, t_ = self.window, self.threshold
        near = {}
        for tr in ("donor", "acceptor"):
            cand = high.filter(pl.col(f"{tr}_score") >= t_).join(
                sites.filter(pl.col("splice_type") == tr), on="gene_id", how="left").with_columns(
                ((pl.col("site_pos") - pl.col("genomic_position")).abs() <= w).fill_null(False).alias("_near"))
            near[tr] = cand.group_by("file", "_row").agg(pl.col("_near").any(), pl.first("pred_type", "gene_id",
                                                                                  "genomic_position", "row_group"))
        both = pl.concat([near["donor"].with_columns(pl.lit("donor").alias("track")),
                          near["acceptor"].with_columns(pl.lit("acceptor").alias("track"))])
        per_row = both.group_by("file", "_row").agg(
            pl.first("pred_type", "gene_id", "genomic_position", "row_group"),
            (~pl.col("_near")).any().alias("unexplained"))
        bad = per_row.filter(((pl.col("pred_type") == "FP") & ~pl.col("unexplained")) |
                             ((pl.col("pred_type") == "TN") & pl.col("unexplained"))).sort("file", "_row")
        for r in bad.head(MAX_LISTED).iter_rows(named=True):
            why = ("every score at the threshold has an annotated site of its type within the window" if r["pred_type"]
                   == "FP" else "a score reaches the threshold with no annotated site of its type within the window")
            rep.add("consistency", f"pred_type {r['pred_type']} but {why} (gene {r['gene_id']}, genomic_position "
                                   f"{r['genomic_position']})", file=r["file"], row_group=r["row_group"],
                    column="pred_type", row=r["_row"])

    def _file_of(self, gene_id: str) -> str | None:
        files = self.gene_files.get(gene_id)
        return files[0] if files else None


__all__ = ["validate", "ValidationReport", "Problem", "CHECKS", "LEAKAGE_GAP"]
