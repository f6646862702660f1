from __future__ import annotations

import gzip
import shutil

import pytest

from meta_spliceai.errors import InputError
from meta_spliceai.reference.genome import (
    Genome,
    contig_aliases,
    match_contigs,
    reverse_complement,
)


def test_fetch_bgzf_and_padding(chr22):
    g = Genome(chr22 / "genome.fa.gz")
    assert g.contigs == {"22": 21_000_000}
    seq = g.fetch("22", 20_000_000, 20_000_010)
    assert len(seq) == 10 and set(seq) <= set("ACGT")
    # past the contig end: N padding; before 0: N padding
    tail = g.fetch("22", 21_000_000 - 3, 21_000_000 + 4)
    assert len(tail) == 7 and tail.endswith("NNNN")
    head = g.fetch("22", -5, 2)
    assert head == "N" * 7  # the bundle is N-padded up to the first sequenced base
    assert g.fetch("22", 5, 5) == ""


def test_plain_fasta_gets_indexed(tmp_path, chr22):
    plain = tmp_path / "g.fa"
    with gzip.open(chr22 / "genome.fa.gz", "rb") as src, open(plain, "wb") as dst:
        shutil.copyfileobj(src, dst)
    g = Genome(plain)
    assert (tmp_path / "g.fa.fai").is_file()
    assert g.fetch("22", 20_000_000, 20_000_050) == Genome(chr22 / "genome.fa.gz").fetch("22", 20_000_000, 20_000_050)


def test_missing_index_in_readonly_folder(tmp_path, monkeypatch):
    fa = tmp_path / "x.fa"
    fa.write_text(">x\nACGT\n")
    # root may write anywhere, so simulate the read-only folder
    monkeypatch.setattr("meta_spliceai.reference.genome._writable", lambda folder: False)
    with pytest.raises(InputError, match="no index.*read-only.*samtools faidx x.fa"):
        Genome(fa)
    assert not (tmp_path / "x.fa.fai").exists()


def test_plain_gzip_refused_with_fix(tmp_path):
    fa = tmp_path / "x.fa.gz"
    with gzip.open(fa, "wt") as fh:
        fh.write(">x\nACGT\n")
    with pytest.raises(InputError, match="bgzip"):
        Genome(fa)


def test_missing_fasta(tmp_path):
    with pytest.raises(InputError, match="FASTA not found"):
        Genome(tmp_path / "nope.fa")


def test_reverse_complement():
    assert reverse_complement("AACGTN") == "NACGTT"


def test_contig_aliasing():
    assert "22" in contig_aliases("chr22") and "chr2" in contig_aliases("2")
    assert "MT" in contig_aliases("chrM") and "chrM" in contig_aliases("MT")
    assert match_contigs(["chr2", "chrM"], ["2", "MT", "3"]) == {"chr2": "2", "chrM": "MT"}
    assert match_contigs(["2"], ["chr2"]) == {"2": "chr2"}


def test_contig_mismatch_lists_both_sides():
    with pytest.raises(InputError) as err:
        match_contigs(["chrUn_x", "chr1"], ["1", "2"], gtf="a.gtf", fasta="g.fa")
    msg = str(err.value)
    assert "chrUn_x" in msg and "FASTA has: 1, 2" in msg and "\n" not in msg
    assert match_contigs(["chrUn_x", "chr1"], ["1"], strict=False) == {"chr1": "1"}


def _truncated_bgzf(src, dst, keep: int = 3000):
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


def _flipped_bgzf(src, dst):
    raw = bytearray(src.read_bytes())
    for i in range(len(raw) // 2, len(raw) // 2 + 200):
        raw[i] ^= 0x55  # a BGZF block whose CRC32 no longer matches
    dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize(
    ("name", "make", "fragments"),
    [
        ("ragged.fa", lambda p, _: p.write_text(">22\nACGTACGTAC\nACGTAC\nACGTACGTAC\nACG\n"),
         ["different lengths", "line 4", "seqkit seq -w 60 ragged.fa"]),
        ("trunc.fa.gz", lambda p, chr22: _truncated_bgzf(chr22 / "genome.fa.gz", p),
         ["is truncated or corrupt", "BGZF", "copy or download it again"]),
        ("flipped.fa.gz", lambda p, chr22: _flipped_bgzf(chr22 / "genome.fa.gz", p),
         ["is truncated or corrupt gzip (BGZF)", "checksum", "re-compress it"]),
        ("empty.fa", lambda p, _: p.write_text(""), ["is empty"]),
        ("notes.fa", lambda p, _: p.write_text("hello\n"), ["does not start with a '>' header"]),
    ],
)
def test_bad_fasta_is_diagnosed_truthfully(tmp_path, chr22, name, make, fragments):
    """A FASTA htslib cannot index says why (htslib's message, one line, the fix), not 'read-only folder'."""
    fa = tmp_path / name
    make(fa, chr22)
    with pytest.raises(InputError) as err:
        Genome(fa)
    msg = str(err.value)
    assert "\n" not in msg and "read-only" not in msg and str(fa) in msg
    for f in fragments:
        assert f in msg, msg
    assert not list(tmp_path.glob("*.fai")) and not list(tmp_path.glob("*.gzi"))  # no partial index left behind
