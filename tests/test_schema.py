from __future__ import annotations

import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meta_spliceai.config import DEFAULT_BUILD, FEATURE_SETS
from meta_spliceai.dataset.schema import (
    FEATURE_SET_COLUMNS,
    METADATA_KEY,
    SCHEMA_VERSION,
    arrow_schema,
    columns_by_role,
    dataset_polars_schema,
    feature_columns,
    kmer_count_type,
    kmer_names,
    normalize_feature_sets,
    read_metadata,
    read_roles,
    role_of,
    to_arrow,
)
from meta_spliceai.errors import InputError


def test_kmer_names_and_count_type():
    assert kmer_names(1) == ["1mer_A", "1mer_C", "1mer_G", "1mer_T"]
    names = kmer_names(6)
    assert len(names) == 4096 and names[0] == "6mer_AAAAAA" and names[-1] == "6mer_TTTTTT"
    assert names == sorted(names)
    assert kmer_count_type(6, 500) == pa.uint16()  # 501-nt window: up to 496 of one 6-mer
    assert kmer_count_type(6, 200) == pa.uint8()  # 201 nt: up to 196
    assert kmer_count_type(1, 600) == pa.uint16()


def test_schema_layout_and_roles():
    schema = arrow_schema((6,), 500)
    names = schema.names
    assert names[:6] == ["gene_id", "gene_name", "chrom", "strand", "genomic_position", "position"]
    assert names[6:8] == ["splice_type", "pred_type"]
    assert len(names) == len(set(names))
    roles = read_roles(schema)
    assert list(roles) == names
    assert set(roles.values()) == {"id", "label", "metadata", "feature"}
    kmers = [n for n in names if n.startswith("6mer_")]
    assert len(kmers) == 4096 and {schema.field(n).type for n in kmers} == {pa.uint16()}
    assert schema.field("genomic_position").type == pa.int64()
    assert schema.field("transcript_ids").type == pa.large_list(pa.large_string())
    assert roles["transcript_count"] == "metadata" and roles["gene_transcript_count"] == "feature"
    assert roles["gene_type"] == "feature" and roles["tn_kind"] == "metadata"
    assert {"gc_content", "sequence_complexity"} <= set(feature_columns(schema))
    # no k-mers: no sequence columns at all
    plain = arrow_schema((), 500)
    assert not [n for n in plain.names if "mer_" in n or n in ("gc_content", "sequence_complexity")]
    assert arrow_schema([0]) == plain  # --kmer-sizes 0
    two = arrow_schema((2, 1))
    assert [n for n in two.names if "mer_" in n][:5] == ["1mer_A", "1mer_C", "1mer_G", "1mer_T", "2mer_AA"]


def test_no_leaky_columns_are_features():
    feats = set(feature_columns(arrow_schema((6,))))
    for leaky in ("splice_type", "pred_type", "transcript_ids", "transcript_count", "tn_kind", "position", "batch"):
        assert leaky not in feats


def test_metadata_round_trip_through_parquet(tmp_path):
    schema = arrow_schema((3,), 100)
    frame = pl.DataFrame(schema=dataset_polars_schema((3,), 100))
    table = to_arrow(frame, (3,), 100)
    path = tmp_path / "x.parquet"
    pq.write_table(table, path)
    back = pq.read_schema(path)
    meta = read_metadata(back)
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["kmer_sizes"] == [3] and meta["kmer_window"] == 100
    assert read_roles(back) == read_roles(schema)
    assert feature_columns(back) == feature_columns(schema)
    assert columns_by_role(back, "label") == ["splice_type", "pred_type"]
    assert back.remove_metadata() == schema.remove_metadata()
    # a polars round trip keeps column order and dtypes
    assert pl.read_parquet(path).schema == dataset_polars_schema((3,), 100)
    assert json.loads(back.metadata[METADATA_KEY])["roles"]["3mer_ACG"] == "feature"


def test_roles_by_name_and_errors():
    names = ["gene_id", "donor_score", "4mer_ACGT", "pred_type", "batch"]
    assert feature_columns(names) == ["donor_score", "4mer_ACGT"]
    assert columns_by_role(names, "id") == ["gene_id"]
    assert role_of("tn_kind") == "metadata"
    with pytest.raises(InputError, match="not part of"):
        role_of("distance_to_site")
    with pytest.raises(InputError, match="unknown column role"):
        columns_by_role(names, "target")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="no meta_spliceai schema metadata"):
        read_roles(pa.schema([("a", pa.int8())]))
    with pytest.raises(InputError, match="out of range"):
        arrow_schema((9,))


def test_feature_sets_select_columns_and_are_recorded():
    assert tuple(FEATURE_SET_COLUMNS) == FEATURE_SETS  # config's Literal and the schema's families agree
    every = [c for cols in FEATURE_SET_COLUMNS.values() for c in cols]
    assert len(every) == len(set(every))  # no column in two families
    base = arrow_schema((), 500, ["base"])
    full = arrow_schema((2,), 500, FEATURE_SETS)
    assert feature_columns(base) == list(FEATURE_SET_COLUMNS["base"])
    feats = feature_columns(full)
    assert feats[: len(every)] == every and feats[-1] == "2mer_TT"  # families in canonical order, then k-mers
    assert {role_of(c) for c in every} == {"feature"}
    assert read_metadata(full)["feature_sets"] == list(FEATURE_SETS)
    assert arrow_schema((), 500) == arrow_schema((), 500, DEFAULT_BUILD.feature_sets)  # None: the default
    assert normalize_feature_sets(["partner", "base", "partner"]) == ("base", "partner")
    assert full.field("acceptor_up_nearest10_dist").type == pa.int32()
    assert full.field("donor_nbhd100_is_max").type == pa.int8()
    with pytest.raises(InputError, match="unknown feature set 'exon'"):
        normalize_feature_sets(["base", "exon"])
    with pytest.raises(InputError, match="lack 'base'"):
        normalize_feature_sets(["partner"])
