from __future__ import annotations

import gzip

import polars as pl
import pytest

from meta_spliceai.annotation import (
    load_annotation,
    parse_annotation,
    read_gene_list,
    resolve_gene_ids,
    strip_version,
)
from meta_spliceai.errors import InputError
from meta_spliceai.genome import Genome, match_contigs, reverse_complement


def _exon_only(src, dst):
    lines = [ln for ln in src.read_text().splitlines() if ln.split("\t")[2:3] == ["exon"]]
    dst.write_text("\n".join(lines) + "\n")
    return dst


def test_chr22_tables(chr22):
    ann = parse_annotation(chr22 / "annotation.gtf")
    assert ann.genes.height == 18 and ann.transcripts.height == 18
    assert ann.genes["gene_type"].unique().to_list() == ["unknown"]
    assert ann.splice_sites["gene_id"].n_unique() == 17  # one single-exon gene
    counts = dict(ann.splice_sites["site_type"].value_counts().iter_rows())
    assert counts == {"donor": 135, "acceptor": 135}


def test_chr2_exon_only_derives_transcripts_and_genes(chr2, tmp_path):
    ann = parse_annotation(_exon_only(chr2 / "annotation.gtf", tmp_path / "exons.gtf"))
    assert ann.transcripts.height == 83
    assert ann.genes.height == 16
    assert set(ann.transcripts["gene_id"]) == set(ann.genes["gene_id"])
    # exon-only input still carries types from the exon attributes
    assert "protein_coding" in ann.genes["gene_type"].to_list()
    full = parse_annotation(chr2 / "annotation.gtf")
    assert full.splice_sites.equals(ann.splice_sites)


def _dinucleotide(genome, chrom, strand, site_type, pos):
    """Intron-side dinucleotide next to a site (pos 1-based), in transcription orientation."""
    if strand == "+":
        s = genome.fetch(chrom, pos, pos + 2) if site_type == "donor" else genome.fetch(chrom, pos - 3, pos - 1)
    else:
        s = genome.fetch(chrom, pos - 3, pos - 1) if site_type == "donor" else genome.fetch(chrom, pos, pos + 2)
        s = reverse_complement(s)
    return s


def test_chr2_sites_are_canonical(chr2):
    ann = parse_annotation(chr2 / "annotation.gtf")
    genome = Genome(chr2 / "genome.fa.gz")
    good = 0
    sites = ann.splice_sites
    for chrom, strand, st, pos in sites.select("chrom", "strand", "site_type", "genomic_position").iter_rows():
        d = _dinucleotide(genome, chrom, strand, st, pos)
        good += d in ("GT", "GC") if st == "donor" else d == "AG"
    assert good / sites.height >= 0.99
    # the minus-strand genes on their own
    minus = sites.filter(pl.col("strand") == "-")
    assert minus.height > 50
    mgood = sum(
        (_dinucleotide(genome, c, s, t, p) in ("GT", "GC")) if t == "donor" else _dinucleotide(genome, c, s, t, p) == "AG"
        for c, s, t, p in minus.select("chrom", "strand", "site_type", "genomic_position").iter_rows()
    )
    assert mgood / minus.height >= 0.99


def test_minus_strand_site_positions(chr22):
    """CCDC188 (- strand): donor = lowest base of the upstream exon, acceptor = highest base of the next."""
    ann = parse_annotation(chr22 / "annotation.gtf")
    gene = ann.genes.filter(pl.col("gene_id") == "CCDC188").row(0, named=True)
    exons = ann.exons.filter(pl.col("gene_id") == "CCDC188").sort("exon_number")
    sites = ann.gene_sites("CCDC188")
    first, second = exons.row(0, named=True), exons.row(1, named=True)
    assert first["start"] > second["end"]  # transcription runs right to left
    donor = sites.filter((pl.col("site_type") == "donor") & (pl.col("genomic_position") == first["start"]))
    acc = sites.filter((pl.col("site_type") == "acceptor") & (pl.col("genomic_position") == second["end"]))
    assert donor.height == 1 and acc.height == 1
    assert donor["position"][0] == gene["end"] - first["start"]
    assert acc["position"][0] == gene["end"] - second["end"]


def test_transcripts_recorded_per_site(chr2):
    ann = parse_annotation(chr2 / "annotation.gtf")
    s = ann.splice_sites
    assert (s["transcript_count"] == s["transcript_ids"].list.len()).all()
    assert s.select("gene_id", "site_type", "genomic_position").is_unique().all()
    assert s["transcript_count"].max() > 1


def test_chr_prefix_mismatch_is_matched(chr22, tmp_path):
    text = (chr22 / "annotation.gtf").read_text()
    gtf = tmp_path / "chr.gtf"
    gtf.write_text("\n".join("chr" + ln if ln and not ln.startswith("#") else ln for ln in text.splitlines()))
    ann = parse_annotation(gtf)
    assert ann.genes["chrom"].unique().to_list() == ["chr22"]
    assert match_contigs(["chr22"], Genome(chr22 / "genome.fa.gz").contigs) == {"chr22": "22"}


def test_gzip_and_cache(chr22, tmp_path):
    gz = tmp_path / "a.gtf.gz"
    gz.write_bytes(gzip.compress((chr22 / "annotation.gtf").read_bytes()))
    a = load_annotation(gz, cache_dir=tmp_path / "cache")
    b = load_annotation(gz, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    for t in ("genes", "transcripts", "exons", "splice_sites"):
        assert getattr(a, t).equals(getattr(b, t))
    assert a.genes.equals(parse_annotation(chr22 / "annotation.gtf").genes)


def test_gff3(tmp_path):
    gff = tmp_path / "a.gff3"
    gff.write_text(
        "##gff-version 3\n"
        "1\tensembl\tgene\t100\t900\t.\t-\t.\tID=gene:G1;Name=ABC;biotype=protein_coding\n"
        "1\tensembl\tmRNA\t100\t900\t.\t-\t.\tID=transcript:T1;Parent=gene:G1;biotype=protein_coding\n"
        "1\tensembl\texon\t100\t200\t.\t-\t.\tParent=transcript:T1\n"
        "1\tensembl\texon\t400\t500\t.\t-\t.\tParent=transcript:T1\n"
        "1\tensembl\texon\t800\t900\t.\t-\t.\tParent=transcript:T1\n"
    )
    ann = parse_annotation(gff)
    g = ann.genes.row(0, named=True)
    assert (g["gene_id"], g["gene_name"], g["gene_type"], g["exon_count"]) == ("G1", "ABC", "protein_coding", 3)
    sites = ann.splice_sites.sort("genomic_position")
    # - strand: donors at exon starts (400, 800), acceptors at exon ends (200, 500)
    assert sites.select("site_type", "genomic_position", "position").rows() == [
        ("acceptor", 200, 700), ("donor", 400, 500), ("acceptor", 500, 400), ("donor", 800, 100)
    ]
    assert ann.exons.sort("start")["exon_number"].to_list() == [3, 2, 1]


def test_ensembl_style_and_versions(tmp_path):
    gtf = tmp_path / "e.gtf"
    gtf.write_text(
        "#!genome-build GRCh38\n"
        '1\tensembl\texon\t10\t20\t.\t+\t.\tgene_id "ENSG01.5"; transcript_id "ENST01.2"; gene_biotype "lncRNA";\n'
        '1\tensembl\texon\t30\t40\t.\t+\t.\tgene_id "ENSG01.5"; transcript_id "ENST01.2"; gene_biotype "lncRNA";\n'
    )
    ann = parse_annotation(gtf)
    assert ann.genes["gene_type"].to_list() == ["lncRNA"]
    assert ann.genes["gene_name"].to_list() == ["ENSG01.5"]  # no gene_name: falls back to the ID
    assert resolve_gene_ids(ann.genes, ["ENSG01"]) == ["ENSG01.5"]
    assert resolve_gene_ids(ann.genes, ["ENSG01.9"]) == ["ENSG01.5"]
    assert strip_version("ENSG01.5") == "ENSG01" and strip_version("AC009961.3") == "AC009961"


def test_resolve_by_name_and_unknown(chr2):
    ann = parse_annotation(chr2 / "annotation.gtf")
    assert resolve_gene_ids(ann.genes, ["TANK", "ENSG00000136536"]) == ["ENSG00000136560.9", "ENSG00000136536.10"]
    with pytest.raises(InputError, match="not found in the annotation: NOPE1, NOPE2"):
        resolve_gene_ids(ann.genes, ["TANK", "NOPE1", "NOPE2"])
    with pytest.raises(InputError, match="empty"):
        resolve_gene_ids(ann.genes, [])


def test_read_gene_list(tmp_path):
    f = tmp_path / "g.tsv"
    f.write_text("gene_id\tother\nA\t1\nB\t2\nA\t3\n")
    assert read_gene_list(f) == ["A", "B"]
    f2 = tmp_path / "g.txt"
    f2.write_text("X\nY\n")
    assert read_gene_list(f2) == ["X", "Y"]
    f3 = tmp_path / "g.csv"
    f3.write_text("name,score\nA,1\n")
    with pytest.raises(InputError, match="no column 'gene_id'.*name, score.*--gene-col"):
        read_gene_list(f3)
    assert read_gene_list(f3, "name") == ["A"]
    empty = tmp_path / "e.txt"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty"):
        read_gene_list(empty)


GOOD = '1\tx\texon\t10\t20\t.\t+\t.\tgene_id "G"; transcript_id "T";\n'


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (GOOD + "1\tx\texon\t10\t20\t.\t+\n", r"line 2: 7 tab-separated fields, a GTF/GFF line needs 9"),
        (GOOD + '1\tx\texon\tten\t20\t.\t+\t.\tgene_id "G"; transcript_id "T";\n', r"line 2: start coordinate 'ten'"),
        ("# header\n" + GOOD + '1\tx\texon\t50\t40\t.\t+\t.\tgene_id "G"; transcript_id "T";\n', r"line 3: .*start 50 > end 40"),
        (GOOD + '1\tx\texon\t50\t60\t.\t*\t.\tgene_id "G"; transcript_id "T";\n', r"line 2: .*unknown strand '\*'"),
        ('1\tx\tgene\t10\t20\t.\t+\t.\tgene_id "G";\n', r"no exon lines"),
        (GOOD + '2\tx\texon\t50\t60\t.\t+\t.\tgene_id "G"; transcript_id "T2";\n', r"gene G has exons on several contigs"),
        (GOOD + '1\tx\texon\t50\t60\t.\t-\t.\tgene_id "G"; transcript_id "T2";\n', r"gene G has exons on several"),
        ("", r"is empty"),
    ],
)
def test_bad_annotation(tmp_path, body, pattern):
    gtf = tmp_path / "bad.gtf"
    gtf.write_text(body)
    with pytest.raises(InputError, match=pattern) as err:
        parse_annotation(gtf)
    assert str(gtf) in str(err.value) and "\n" not in str(err.value)


def test_missing_annotation(tmp_path):
    with pytest.raises(InputError, match="annotation not found"):
        parse_annotation(tmp_path / "nope.gtf")
