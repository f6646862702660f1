from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import copy_dataset

from meta_spliceai.cli.main import main
from meta_spliceai.dataset.schema import feature_columns
from meta_spliceai.maintenance.publish import pred_type_counts
from meta_spliceai.maintenance.validation import CHECKS, validate
from meta_spliceai.storage import checksum


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def _manifest(root):
    return json.loads((root / "manifest.json").read_text())


def _save_manifest(root, m):
    (root / "manifest.json").write_text(json.dumps(m, indent=1))


def _rewrite(root, name: str, change, schema: pa.Schema | None = None) -> None:
    """Rewrite master/<name> with ``change(table)``, keeping row groups; the manifest is updated to match."""
    path = root / "master" / name
    pf = pq.ParquetFile(path)
    size = pf.metadata.row_group(0).num_rows
    table = change(pf.read())
    path.unlink()  # the copy may share its inode with another file
    pq.write_table(table.replace_schema_metadata(pf.schema_arrow.metadata) if schema is None else table, path,
                   row_group_size=size)
    m = _manifest(root)
    entry = next(e for e in m["batches"].values() if e["file"] == name)
    entry.update(checksum=checksum(path), pred_types=pred_type_counts(path))
    _save_manifest(root, m)


@pytest.fixture
def copy(tmp_path, chr22_dataset):
    return copy_dataset(chr22_dataset, tmp_path / "ds")


def test_clean_build_passes_every_check(capsys, chr22_dataset):
    rep = validate(dataset=chr22_dataset)
    assert rep.ok and rep.files == 4 and rep.rows > 30_000
    assert set(rep.counts) == set(CHECKS)
    n_features = len(feature_columns(pq.read_schema(next((chr22_dataset / "master").glob("*.parquet")))))
    assert len(rep.leakage) == n_features and not any(r["flagged"] for r in rep.leakage)  # one audit row per feature
    code, out = _cli(capsys, "validate", chr22_dataset, "--json")
    assert code == 0
    js = json.loads(out)
    assert js["ok"] and all(c["passed"] for c in js["checks"].values())


def _problems(capsys, root, check: str) -> list[str]:
    code, out = _cli(capsys, "validate", root)
    assert code == 1, out
    assert "validation failed" in out
    rep = validate(dataset=root)
    assert rep.counts[check] > 0, rep.counts
    return [str(p) for p in rep.problems if p.check == check]


def test_truncated_parquet(capsys, copy):
    f = copy / "master" / "batch_00001.parquet"
    data = f.read_bytes()
    f.unlink()
    f.write_bytes(data[: len(data) // 2])
    msgs = _problems(capsys, copy, "layout")
    assert any("master/batch_00001.parquet" in m and "not a readable Parquet file" in m for m in msgs)


def test_missing_file(capsys, copy):
    (copy / "master" / "batch_00002.parquet").unlink()
    msgs = _problems(capsys, copy, "layout")
    assert any("master/batch_00002.parquet" in m and "missing" in m for m in msgs)


def test_extra_file(capsys, copy):
    (copy / "master" / "batch_00009.parquet").write_bytes((copy / "master" / "batch_00000.parquet").read_bytes())
    (copy / "master" / "notes.txt").write_text("x")
    msgs = _problems(capsys, copy, "layout")
    assert any("master/batch_00009.parquet" in m and "extra file" in m for m in msgs)
    assert any("master/notes.txt" in m and "not a dataset file" in m for m in msgs)


def test_manifest_edited_by_hand(capsys, copy):
    m = _manifest(copy)
    m["batches"]["00000"]["rows"] += 1
    m["batches"]["00003"]["genes"] = m["batches"]["00003"]["genes"][1:]
    _save_manifest(copy, m)
    msgs = _problems(capsys, copy, "manifest")
    assert any("master/batch_00000.parquet" in m and "the manifest says" in m for m in msgs)
    assert any("master/batch_00003.parquet" in m and "genes differ" in m for m in msgs)
    (copy / "manifest.json").write_text("{ not json")
    msgs = _problems(capsys, copy, "manifest")
    assert any("manifest.json" in m and "not valid JSON" in m for m in msgs)


def test_genes_the_build_recorded_without_rows_are_expected_absent(capsys, copy):
    """A gene in a batch's ``genes_without_rows`` (the build had no row for it) is not looked for in the file;
    any other gene of the manifest missing from the file still is."""
    m = _manifest(copy)
    m["batches"]["00001"]["genes"] = [*m["batches"]["00001"]["genes"], "RIMBP3-LIKE"]
    _save_manifest(copy, m)
    msgs = _problems(capsys, copy, "manifest")
    assert any("batch_00001.parquet" in x and "in the manifest only: ['RIMBP3-LIKE']" in x for x in msgs)
    m["batches"]["00001"]["genes_without_rows"] = {"RIMBP3-LIKE": "no annotated splice site"}
    _save_manifest(copy, m)
    assert validate(dataset=copy).ok


def test_injected_nulls(capsys, copy):
    def inject(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("donor_score")
        col = t.column(i).to_numpy().astype(object)
        col[5:10] = None
        return t.set_column(i, pa.field("donor_score", pa.float32()), pa.array(list(col), pa.float32()))

    _rewrite(copy, "batch_00000.parquet", inject)
    msgs = _problems(capsys, copy, "nulls")
    assert any("master/batch_00000.parquet" in m and "row group 0" in m and "column donor_score" in m
               and "5 null" in m for m in msgs), msgs
    # the schema change (declared nullable) is reported too
    assert any("donor_score" in str(p) for p in validate(dataset=copy).problems if p.check == "schema")


def test_duplicated_batch(capsys, copy):
    src = copy / "master" / "batch_00001.parquet"
    (copy / "master" / "batch_00004.parquet").write_bytes(src.read_bytes())
    m = _manifest(copy)
    m["batches"]["00004"] = {**m["batches"]["00001"], "file": "batch_00004.parquet"}
    _save_manifest(copy, m)
    msgs = _problems(capsys, copy, "genes")
    gene = m["batches"]["00001"]["genes"][0]
    assert any(f"gene {gene} is in 2 files" in m and "batch_00004" in m for m in msgs)
    assert any("present 2 times" in str(p) for p in validate(dataset=copy).problems if p.check == "sites")


def test_flipped_label(capsys, copy):
    flipped = {}

    def flip(t: pa.Table) -> pa.Table:
        pt = t.column("pred_type").to_pylist()
        st = t.column("splice_type").to_pylist()
        i = next(k for k, (s, p) in enumerate(zip(st, pt)) if s == "donor" and p == "TP")
        flipped["row"] = i
        pt[i] = "FN"
        return t.set_column(t.schema.get_field_index("pred_type"), t.schema.field("pred_type"),
                            pa.array(pt, t.schema.field("pred_type").type))

    _rewrite(copy, "batch_00001.parquet", flip)
    msgs = _problems(capsys, copy, "consistency")
    assert any("master/batch_00001.parquet" in m and f"row {flipped['row']}" in m and "column pred_type" in m
               and "FN although the donor score reaches 0.5" in m for m in msgs), msgs
    rep = validate(dataset=copy)
    assert [c for c, n in rep.counts.items() if n] == ["consistency"]  # nothing else is wrong


def test_tn_scoring_at_threshold_needs_a_site(capsys, copy):
    """An FP turned into TN is inconsistent: no annotated site explains its high score."""
    def flip(t: pa.Table) -> pa.Table:
        pt = t.column("pred_type").to_pylist()
        kinds = t.column("tn_kind").to_pylist()
        i = pt.index("FP")
        pt[i], kinds[i] = "TN", "hard"
        t = t.set_column(t.schema.get_field_index("pred_type"), t.schema.field("pred_type"),
                         pa.array(pt, t.schema.field("pred_type").type))
        return t.set_column(t.schema.get_field_index("tn_kind"), t.schema.field("tn_kind"),
                            pa.array(kinds, t.schema.field("tn_kind").type))

    name = next(e["file"] for e in _manifest(copy)["batches"].values() if e["pred_types"].get("FP"))
    _rewrite(copy, name, flip)
    msgs = _problems(capsys, copy, "consistency")
    assert any(name in m and "pred_type TN but a score reaches the threshold" in m for m in msgs), msgs


def test_leakage_audit_flags_a_sentinel_filled_feature(capsys, copy):
    """A feature filled with -999 on non-site rows only separates the classes by its fill."""
    def leak(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("gc_content")
        neither = pc.equal(t.column("splice_type"), "neither")
        col = pc.if_else(neither, pa.scalar(-999.0, pa.float32()), t.column(i))
        return t.set_column(i, t.schema.field(i), col)

    for e in _manifest(copy)["batches"].values():
        _rewrite(copy, e["file"], leak)
    msgs = _problems(capsys, copy, "leakage")
    assert any("column gc_content" in m for m in msgs) and len(msgs) == 1
    flagged = [r for r in validate(dataset=copy).leakage if r["flagged"]]
    assert [r["feature"] for r in flagged] == ["gc_content"]
    assert flagged[0]["sentinel_share"]["neither"] == 1.0 and flagged[0]["sentinel_share"]["donor"] == 0.0
    assert np.isfinite(flagged[0]["mean"]["donor"])


def test_not_a_dataset_is_one_line_exit_2(capsys, tmp_path):
    code, out = _cli(capsys, "validate", tmp_path)
    assert code == 2 and "no master/ folder" in out and "Traceback" not in out
