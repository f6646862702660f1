"""The transcript table of variant scoring: SpliceAI's tables, SpliceAI-format files and GTF/GFF3."""

from __future__ import annotations

import numpy as np
import pytest

from meta_spliceai.errors import InputError
from meta_spliceai.variants.transcripts import (
    load_transcripts,
    match_prefix,
    read_spliceai_table,
)


def test_builtin_grch37_table_is_read_1_based(chr22):
    t = load_transcripts("grch37")
    assert len(t) > 15_000 and t.chroms[0] in ("1", "chr1")
    i = int(np.flatnonzero(t.names == "TANGO2")[0])
    # the chr22 bundle's GTF holds SpliceAI's canonical transcripts in 1-based coordinates
    gtf = load_transcripts(chr22 / "annotation.gtf")
    j = int(np.flatnonzero(gtf.names == "TANGO2")[0])
    assert (t.tx_starts[i], t.tx_ends[i]) == (gtf.tx_starts[j], gtf.tx_ends[j])
    assert np.array_equal(t.boundaries[i], gtf.boundaries[j])


def test_genes_at_and_contig_prefix(chr22):
    t = load_transcripts(chr22 / "annotation.gtf")
    i = int(np.flatnonzero(t.names == "TANGO2")[0])
    s, e = int(t.tx_starts[i]), int(t.tx_ends[i])
    assert i in t.genes_at("22", s) and i in t.genes_at("chr22", e) and i not in t.genes_at("22", s - 1)
    assert match_prefix("chr22", "1") == "22" and match_prefix("22", "chr1") == "chr22" and match_prefix("22", "1") == "22"


def test_gtf_genes_take_every_transcripts_exon_ends(chr2):
    t = load_transcripts(chr2 / "annotation.gtf")
    import polars as pl

    from meta_spliceai.reference.annotation import load_annotation

    ann = load_annotation(chr2 / "annotation.gtf")
    g = ann.genes.sort("transcript_count", descending=True).row(0, named=True)
    i = int(np.flatnonzero(t.names == (g["gene_name"] or g["gene_id"]))[0])
    ex = ann.exons.filter(pl.col("gene_id") == g["gene_id"])
    assert np.array_equal(t.boundaries[i], np.unique(np.concatenate([ex["start"].to_numpy(), ex["end"].to_numpy()])))
    assert (t.tx_starts[i], t.tx_ends[i]) == (g["start"], g["end"])


def test_nearest_boundary_ties_take_the_upstream_one(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END\nG\t1\t+\t99\t200\t99,149,\t110,200,\n")
    t = read_spliceai_table(p)
    assert (t.tx_starts[0], t.tx_ends[0]) == (100, 200) and t.boundaries[0].tolist() == [100, 110, 150, 200]
    assert t.nearest_boundary(0, 130) == -20 and t.nearest_boundary(0, 112) == -2


def test_bad_tables_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="annotation not found"):
        load_transcripts(tmp_path / "nope.txt")
    p = tmp_path / "t.txt"
    p.write_text("#NAME\tCHROM\tSTRAND\n")
    with pytest.raises(InputError, match="lacks column"):
        load_transcripts(p)
    p.write_text("#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END\nG\t1\t+\t99\t200\t9x,\t110,\n")
    with pytest.raises(InputError, match="line 2"):
        load_transcripts(p)
