from __future__ import annotations

import gzip
import os
from pathlib import Path

import polars as pl
import pytest

from meta_spliceai.errors import InputError
from meta_spliceai.reference.annotation import load_annotation, parse_annotation
from meta_spliceai.reference.genelists import (
    read_gene_list,
    resolve_gene_ids,
    strip_version,
)
from meta_spliceai.reference.genome import Genome, match_contigs, reverse_complement


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


def _damaged_gzips(src: bytes, folder):
    """A gzip of ``src`` damaged three ways: flipped bytes mid-stream (zlib.error), cut in half (EOFError),
    a wrong CRC (BadGzipFile)."""
    z = gzip.compress(src)
    flipped = bytearray(z)
    for i in range(len(z) // 2, len(z) // 2 + 64):
        flipped[i] ^= 0x55
    crc = bytearray(z)
    crc[-8] ^= 0xFF
    out = []
    for name, data in (("flipped", flipped), ("cut", z[: len(z) // 2]), ("crc", crc)):
        p = folder / f"{name}.gtf.gz"
        p.write_bytes(bytes(data))
        out.append(p)
    return out


def test_corrupt_gzip_annotation_is_one_line_naming_the_file(chr22, tmp_path):
    for gz in _damaged_gzips((chr22 / "annotation.gtf").read_bytes(), tmp_path):
        for read in (parse_annotation, lambda p: load_annotation(p, cache_dir=tmp_path / "cache")):
            with pytest.raises(InputError) as err:
                read(gz)
            msg = str(err.value)
            assert str(gz) in msg and "corrupt or truncated gzip" in msg and "download it again" in msg, msg
            assert "\n" not in msg


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
        parse_annotation(gtf, strict=True)
    assert str(gtf) in str(err.value) and "\n" not in str(err.value)


def test_real_gtf_cut_mid_attribute_names_file_and_line(tmp_path, chr22):
    """The chr22 GTF with its last line cut inside ``transcript_id "MED15-canonic``: an error, not a new transcript."""
    text = (chr22 / "annotation.gtf").read_text()
    last = text.rstrip("\n").rfind("\n") + 1
    cut = tmp_path / "cut.gtf"
    cut.write_text(text[: text.index('canonical"', text.index("transcript_id", last)) - 2])
    lines = cut.read_text().count("\n") + 1
    with pytest.raises(InputError, match=rf"cut\.gtf, line {lines}: unbalanced quotes") as err:
        parse_annotation(cut)
    assert "\n" not in str(err.value) and "truncated" in str(err.value)
    # the whole file: MED15's transcript keeps all 17 exons
    whole = parse_annotation(chr22 / "annotation.gtf")
    assert whole.exons.filter(pl.col("transcript_id") == "MED15-canonical").height == 17


GTF_ATTRS = '1\tx\texon\t30\t40\t.\t+\t.\t'


@pytest.mark.parametrize(
    ("attrs", "pattern"),
    [
        ('gene_id "G; transcript_id "T";', "unbalanced quotes"),
        ('gene_id "G"; transcript_id "T"; basic;', "attribute 'basic' is not a key \"value\" pair"),
        ('gene_id "G"; transcript_id "T"; note two words;', "attribute 'note two words' is not a key"),
        ('gene_id "G"; transcript_id "T"; exon_numb', "attribute 'exon_numb' is not a key"),
        ('gene_id="G"; transcript_id="T"', "attribute 'gene_id=\"G\"' is not a key \"value\" pair"),
    ],
)
def test_gtf_attributes_that_do_not_parse_completely(tmp_path, attrs, pattern):
    gtf = tmp_path / "a.gtf"
    gtf.write_text("# c\n" + GOOD + GTF_ATTRS + attrs + "\n" + GOOD)
    with pytest.raises(InputError, match=rf"a\.gtf, line 3: {pattern}"):
        parse_annotation(gtf)


def test_gtf_attribute_forms_that_do_parse(tmp_path):
    """Bare numbers, no final ``;``, ``;;``, no space after ``;`` and a ``;`` inside quotes are all valid GTF."""
    gtf = tmp_path / "ok.gtf"
    gtf.write_text(GOOD + GTF_ATTRS + 'gene_id "G";transcript_id "T";; level 2; note "a; b"\n')
    assert parse_annotation(gtf).exons.height == 2


def test_gff3_attribute_that_is_not_key_value(tmp_path):
    head = "##gff-version 3\n1\tx\tgene\t10\t40\t.\t+\t.\tID=G;\n1\tx\tmRNA\t10\t40\t.\t+\t.\tID=T;Parent=G\n"
    good, bad = tmp_path / "ok.gff3", tmp_path / "bad.gff3"
    good.write_text(head + "1\tx\texon\t10\t20\t.\t+\t.\tParent=T; Name=a b\n")
    assert parse_annotation(good).exons.height == 1
    bad.write_text(head + "1\tx\texon\t10\t20\t.\t+\t.\tParent=T;Nam\n")
    with pytest.raises(InputError, match=r"bad\.gff3, line 4: attribute 'Nam' is not a key=value pair"):
        parse_annotation(bad)


def test_missing_annotation(tmp_path):
    with pytest.raises(InputError, match="annotation not found"):
        parse_annotation(tmp_path / "nope.gtf")


# --------------------------------------------------------------------------- GFF3 of the three big sources

# three genes per file, each source with its own feature types, ID/Parent prefixes and name/biotype keys:
# a two-transcript protein-coding gene (with CDS/UTR lines), a lncRNA gene, a two-exon pseudogene
_ENSEMBL_GFF3 = """\
##gff-version 3
##sequence-region   22 1 51304566
#!genome-build GRCh38.p14
22\tensembl_havana\tgene\t1000\t5000\t.\t+\t.\tID=gene:ENSG00000099899;Name=TRMT2A;biotype=protein_coding;description=tRNA methyltransferase 2 homolog A;gene_id=ENSG00000099899;logic_name=ensembl_havana_gene_homo_sapiens;version=15
22\tensembl_havana\tmRNA\t1000\t5000\t.\t+\t.\tID=transcript:ENST00000252136;Parent=gene:ENSG00000099899;Name=TRMT2A-201;biotype=protein_coding;tag=basic;transcript_id=ENST00000252136;version=12
22\tensembl_havana\tfive_prime_UTR\t1000\t1050\t.\t+\t.\tParent=transcript:ENST00000252136
22\tensembl_havana\texon\t1000\t1200\t.\t+\t.\tParent=transcript:ENST00000252136;Name=ENSE00003556151;constitutive=1;ensembl_end_phase=0;ensembl_phase=-1;exon_id=ENSE00003556151;rank=1;version=1
22\tensembl_havana\tCDS\t1051\t1200\t.\t+\t0\tID=CDS:ENSP00000252136;Parent=transcript:ENST00000252136;protein_id=ENSP00000252136
22\tensembl_havana\texon\t2000\t2300\t.\t+\t.\tParent=transcript:ENST00000252136;Name=ENSE00001234567;constitutive=0;exon_id=ENSE00001234567;rank=2;version=1
22\tensembl_havana\texon\t4000\t5000\t.\t+\t.\tParent=transcript:ENST00000252136;Name=ENSE00007654321;constitutive=1;exon_id=ENSE00007654321;rank=3;version=1
22\tensembl_havana\tmRNA\t1000\t5000\t.\t+\t.\tID=transcript:ENST00000403707;Parent=gene:ENSG00000099899;Name=TRMT2A-202;biotype=protein_coding;transcript_id=ENST00000403707;version=5
22\tensembl_havana\texon\t1000\t1200\t.\t+\t.\tParent=transcript:ENST00000403707;Name=ENSE00003556151;exon_id=ENSE00003556151;rank=1;version=1
22\tensembl_havana\texon\t4000\t5000\t.\t+\t.\tParent=transcript:ENST00000403707;Name=ENSE00007654321;exon_id=ENSE00007654321;rank=2;version=1
###
22\thavana\tncRNA_gene\t8000\t9000\t.\t-\t.\tID=gene:ENSG00000237476;Name=LINC01637;biotype=lncRNA;gene_id=ENSG00000237476;logic_name=havana_homo_sapiens;version=1
22\thavana\tlnc_RNA\t8000\t9000\t.\t-\t.\tID=transcript:ENST00000424770;Parent=gene:ENSG00000237476;Name=LINC01637-201;biotype=lncRNA;transcript_id=ENST00000424770;version=1
22\thavana\texon\t8000\t8100\t.\t-\t.\tParent=transcript:ENST00000424770;Name=ENSE00001799933;exon_id=ENSE00001799933;rank=2;version=1
22\thavana\texon\t8900\t9000\t.\t-\t.\tParent=transcript:ENST00000424770;Name=ENSE00001616687;exon_id=ENSE00001616687;rank=1;version=1
###
22\thavana\tpseudogene\t12000\t13000\t.\t+\t.\tID=gene:ENSG00000225255;Name=PI4KAP3;biotype=unprocessed_pseudogene;gene_id=ENSG00000225255;logic_name=havana_homo_sapiens;version=2
22\thavana\tpseudogenic_transcript\t12000\t13000\t.\t+\t.\tID=transcript:ENST00000412319;Parent=gene:ENSG00000225255;Name=PI4KAP3-201;biotype=unprocessed_pseudogene;transcript_id=ENST00000412319;version=1
22\thavana\texon\t12000\t12100\t.\t+\t.\tParent=transcript:ENST00000412319;Name=ENSE00001640346;exon_id=ENSE00001640346;rank=1;version=1
22\thavana\texon\t12900\t13000\t.\t+\t.\tParent=transcript:ENST00000412319;Name=ENSE00001703485;exon_id=ENSE00001703485;rank=2;version=1
###
"""


def _gencode_line(feature, start, end, strand, attrs):
    return f"chr22\tHAVANA\t{feature}\t{start}\t{end}\t.\t{strand}\t.\t{attrs}\n"


def _gencode_gff3() -> str:
    lines = ["##gff-version 3\n", "#description: evidence-based annotation of the human genome (GRCh38)\n"]
    genes = [  # gene_id, name, type, strand, transcripts {id: exons}
        ("ENSG00000099899.15", "TRMT2A", "protein_coding", "+",
         {"ENST00000252136.12": [(1000, 1200), (2000, 2300), (4000, 5000)],
          "ENST00000403707.5": [(1000, 1200), (4000, 5000)]}),
        ("ENSG00000237476.1", "LINC01637", "lncRNA", "-", {"ENST00000424770.1": [(8000, 8100), (8900, 9000)]}),
        ("ENSG00000225255.2", "PI4KAP3", "unprocessed_pseudogene", "+",
         {"ENST00000412319.1": [(12000, 12100), (12900, 13000)]}),
    ]
    for gid, name, gtype, strand, txs in genes:
        lo = min(s for ex in txs.values() for s, _ in ex)
        hi = max(e for ex in txs.values() for _, e in ex)
        common = f"gene_id={gid};gene_type={gtype};gene_name={name};level=2"
        lines.append(_gencode_line("gene", lo, hi, strand, f"ID={gid};{common}"))
        for k, (tid, exons) in enumerate(txs.items(), start=1):
            tcommon = f"{common};transcript_id={tid};transcript_type={gtype};transcript_name={name}-20{k}"
            lines.append(_gencode_line("transcript", exons[0][0], exons[-1][1], strand, f"ID={tid};Parent={gid};{tcommon}"))
            for n, (s, e) in enumerate(exons, start=1):
                lines.append(_gencode_line("exon", s, e, strand,
                                           f"ID=exon:{tid}:{n};Parent={tid};{tcommon};exon_number={n};exon_id=ENSE0000{n}.1"))
            if gtype == "protein_coding":
                lines.append(_gencode_line("CDS", exons[0][0] + 50, exons[0][1], strand, f"ID=CDS:{tid};Parent={tid};{tcommon}"))
    return "".join(lines)


_REFSEQ_GFF3 = """\
##gff-version 3
#!gff-spec-version 1.21
#!processor NCBI annotwriter
##sequence-region NC_000022.11 1 50818468
NC_000022.11\tRefSeq\tregion\t1\t50818468\t.\t+\t.\tID=NC_000022.11:1..50818468;Dbxref=taxon:9606;Name=22;chromosome=22;gbkey=Src;genome=chromosome;mol_type=genomic DNA
NC_000022.11\tBestRefSeq\tgene\t1000\t5000\t.\t+\t.\tID=gene-TRMT2A;Dbxref=GeneID:27037,HGNC:HGNC:24974;Name=TRMT2A;description=tRNA methyltransferase 2 homolog A;gbkey=Gene;gene=TRMT2A;gene_biotype=protein_coding;gene_synonym=HTF9C
NC_000022.11\tBestRefSeq\tmRNA\t1000\t5000\t.\t+\t.\tID=rna-NM_022727.6;Parent=gene-TRMT2A;Dbxref=GeneID:27037,GenBank:NM_022727.6;Name=NM_022727.6;gbkey=mRNA;gene=TRMT2A;product=tRNA methyltransferase 2 homolog A, transcript variant 1;transcript_id=NM_022727.6
NC_000022.11\tBestRefSeq\texon\t1000\t1200\t.\t+\t.\tID=exon-NM_022727.6-1;Parent=rna-NM_022727.6;Dbxref=GeneID:27037;gbkey=mRNA;gene=TRMT2A;product=tRNA methyltransferase 2 homolog A;transcript_id=NM_022727.6
NC_000022.11\tBestRefSeq\texon\t2000\t2300\t.\t+\t.\tID=exon-NM_022727.6-2;Parent=rna-NM_022727.6;Dbxref=GeneID:27037;gbkey=mRNA;gene=TRMT2A;transcript_id=NM_022727.6
NC_000022.11\tBestRefSeq\texon\t4000\t5000\t.\t+\t.\tID=exon-NM_022727.6-3;Parent=rna-NM_022727.6;Dbxref=GeneID:27037;gbkey=mRNA;gene=TRMT2A;transcript_id=NM_022727.6
NC_000022.11\tBestRefSeq\tCDS\t1051\t1200\t.\t+\t0\tID=cds-NP_073564.4;Parent=rna-NM_022727.6;Dbxref=GeneID:27037;Name=NP_073564.4;gbkey=CDS;gene=TRMT2A;protein_id=NP_073564.4
NC_000022.11\tBestRefSeq\tmRNA\t1000\t5000\t.\t+\t.\tID=rna-NM_182984.5;Parent=gene-TRMT2A;Name=NM_182984.5;gbkey=mRNA;gene=TRMT2A;transcript_id=NM_182984.5
NC_000022.11\tBestRefSeq\texon\t1000\t1200\t.\t+\t.\tID=exon-NM_182984.5-1;Parent=rna-NM_182984.5;gbkey=mRNA;gene=TRMT2A;transcript_id=NM_182984.5
NC_000022.11\tBestRefSeq\texon\t4000\t5000\t.\t+\t.\tID=exon-NM_182984.5-2;Parent=rna-NM_182984.5;gbkey=mRNA;gene=TRMT2A;transcript_id=NM_182984.5
NC_000022.11\tBestRefSeq\tgene\t8000\t9000\t.\t-\t.\tID=gene-LINC01637;Dbxref=GeneID:105372934;Name=LINC01637;description=long intergenic non-protein coding RNA 1637;gbkey=Gene;gene=LINC01637;gene_biotype=lncRNA
NC_000022.11\tBestRefSeq\tlnc_RNA\t8000\t9000\t.\t-\t.\tID=rna-NR_146233.1;Parent=gene-LINC01637;Name=NR_146233.1;gbkey=ncRNA;gene=LINC01637;transcript_id=NR_146233.1
NC_000022.11\tBestRefSeq\texon\t8900\t9000\t.\t-\t.\tID=exon-NR_146233.1-1;Parent=rna-NR_146233.1;gbkey=ncRNA;gene=LINC01637;transcript_id=NR_146233.1
NC_000022.11\tBestRefSeq\texon\t8000\t8100\t.\t-\t.\tID=exon-NR_146233.1-2;Parent=rna-NR_146233.1;gbkey=ncRNA;gene=LINC01637;transcript_id=NR_146233.1
NC_000022.11\tCurated Genomic\tpseudogene\t12000\t13000\t.\t+\t.\tID=gene-PI4KAP3;Dbxref=GeneID:100421583;Name=PI4KAP3;gbkey=Gene;gene=PI4KAP3;gene_biotype=pseudogene;pseudo=true
NC_000022.11\tCurated Genomic\texon\t12000\t12100\t.\t+\t.\tID=id-PI4KAP3;Parent=gene-PI4KAP3;gbkey=exon;gene=PI4KAP3;pseudo=true
NC_000022.11\tCurated Genomic\texon\t12900\t13000\t.\t+\t.\tID=id-PI4KAP3-2;Parent=gene-PI4KAP3;gbkey=exon;gene=PI4KAP3;pseudo=true
"""

_GFF3_SOURCES = {
    "ensembl": (_ENSEMBL_GFF3, {"TRMT2A": ("ENSG00000099899", "protein_coding"),
                                "LINC01637": ("ENSG00000237476", "lncRNA"),
                                "PI4KAP3": ("ENSG00000225255", "unprocessed_pseudogene")}),
    "gencode": (_gencode_gff3(), {"TRMT2A": ("ENSG00000099899.15", "protein_coding"),
                                  "LINC01637": ("ENSG00000237476.1", "lncRNA"),
                                  "PI4KAP3": ("ENSG00000225255.2", "unprocessed_pseudogene")}),
    "refseq": (_REFSEQ_GFF3, {"TRMT2A": ("TRMT2A", "protein_coding"), "LINC01637": ("LINC01637", "lncRNA"),
                              "PI4KAP3": ("PI4KAP3", "pseudogene")}),
}


@pytest.mark.parametrize("source", sorted(_GFF3_SOURCES))
def test_gff3_sources_gene_level_attributes_from_the_gene_record(tmp_path, source):
    """Names and types come from gene records of any gene feature type; exon Names never rename a gene."""
    from meta_spliceai.dataset.selection import candidate_pool

    text, expected = _GFF3_SOURCES[source]
    gff = tmp_path / f"{source}.gff3"
    gff.write_text(text)
    ann = parse_annotation(gff)
    got = {n: (g, t) for g, n, t in ann.genes.select("gene_id", "gene_name", "gene_type").iter_rows()}
    assert got == expected
    assert not ann.genes["gene_name"].str.starts_with("ENSE").any()
    by_name = {n: c for n, c in ann.genes.select("gene_name", "transcript_count").iter_rows()}
    assert by_name == {"TRMT2A": 2, "LINC01637": 1, "PI4KAP3": 1}
    # TRMT2A: donors 1200, 2300; acceptors 2000, 4000. LINC01637 (-): donor 8900, acceptor 8100. PI4KAP3 one intron
    sites = ann.splice_sites.join(ann.genes.select("gene_id", "gene_name"), on="gene_id")
    assert sorted(sites.select("gene_name", "site_type", "genomic_position").rows()) == sorted([
        ("TRMT2A", "donor", 1200), ("TRMT2A", "donor", 2300), ("TRMT2A", "acceptor", 2000),
        ("TRMT2A", "acceptor", 4000), ("LINC01637", "donor", 8900), ("LINC01637", "acceptor", 8100),
        ("PI4KAP3", "donor", 12100), ("PI4KAP3", "acceptor", 12900),
    ])
    # --gene-types selects genes of every gene feature type
    contig = ann.genes["chrom"][0]
    for name, (gid, gtype) in expected.items():
        pool = candidate_pool(ann, {contig: contig}, {contig: 10**6}, [gtype])
        assert pool["gene_id"].to_list() == [gid], name
    assert resolve_gene_ids(ann.genes, ["LINC01637"]) == [expected["LINC01637"][0]]


@pytest.mark.parametrize("suffix", [".gtf", ".gff3"])
def test_overlapping_exons_in_a_transcript_name_file_line_transcript(tmp_path, suffix):
    if suffix == ".gtf":
        body = ('1\tx\texon\t10\t50\t.\t+\t.\tgene_id "G"; transcript_id "T1";\n'
                '1\tx\texon\t100\t200\t.\t+\t.\tgene_id "G"; transcript_id "T1";\n'
                '1\tx\texon\t150\t300\t.\t+\t.\tgene_id "G"; transcript_id "T1";\n')
    else:
        body = ("##gff-version 3\n1\tx\tgene\t10\t300\t.\t+\t.\tID=G;Name=G\n"
                "1\tx\tmRNA\t10\t300\t.\t+\t.\tID=T1;Parent=G\n"
                "1\tx\texon\t10\t50\t.\t+\t.\tParent=T1\n1\tx\texon\t100\t200\t.\t+\t.\tParent=T1\n"
                "1\tx\texon\t150\t300\t.\t+\t.\tParent=T1\n")
    f = tmp_path / f"overlap{suffix}"
    f.write_text(body)
    line = 3 if suffix == ".gtf" else 6
    with pytest.raises(InputError, match=rf"line {line}: exon 150-300 of transcript T1 overlaps its exon 100-200") as err:
        parse_annotation(f, strict=True)
    assert str(f) in str(err.value) and "\n" not in str(err.value)
    # the same exons split over two transcripts are fine
    ok = tmp_path / f"ok{suffix}"
    last = body.rstrip("\n").rsplit("\n", 1)
    ok.write_text(last[0] + "\n" + last[1].replace("T1", "T2") + "\n"
                  + ("1\tx\tmRNA\t150\t300\t.\t+\t.\tID=T2;Parent=G\n" if suffix == ".gff3" else ""))
    assert parse_annotation(ok).transcripts.height == 2


# --------------------------------------------------------------------------- gene lists from the real world


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bom.txt", "\ufeffgene_id\nTANK\nMARCH7\n".encode()),
        ("bom.csv", "\ufeff\"gene_id\",\"gene_name\"\r\n\"TANK\",\"x\"\r\n\"MARCH7\",\"y\"\r\n".encode()),
        ("quoted.csv", b'"gene_id","gene_name"\n"TANK","TANK"\n"MARCH7","MARCH7"\n'),
        ("excel.csv", b"gene_id;score\nTANK;1,5\nMARCH7;2,0\n"),
        ("list.txt.gz", gzip.compress(b"TANK\nMARCH7\n")),
        ("latin1.tsv", "gene_id\tnote\nTANK\tpr\u00e9f\u00e9r\u00e9\nMARCH7\tna\u00efve\n".encode("latin-1")),
        ("utf16.txt", "gene_id\r\nTANK\r\nMARCH7\r\n".encode("utf-16")),
        ("noheader.txt", b"TANK\nMARCH7\n"),
        ("r_quoted.txt", b'"TANK"\n"MARCH7"\n'),
        ("r_vector.csv", b'"x"\n"TANK"\n"MARCH7"\n'),
    ],
)
def test_gene_lists_from_spreadsheets_and_r(tmp_path, chr2, name, content):
    f = tmp_path / name
    f.write_bytes(content)
    ids = read_gene_list(f)
    assert ids == ["TANK", "MARCH7"]
    ann = parse_annotation(chr2 / "annotation.gtf")
    assert len(resolve_gene_ids(ann.genes, ids)) == 2


def test_duplicate_ids_in_a_gene_list_are_one_note(tmp_path, chr2, caplog):
    ann = parse_annotation(chr2 / "annotation.gtf")
    gid, name = ann.genes.filter(pl.col("gene_name") != pl.col("gene_id")).select("gene_id", "gene_name").row(0)
    f = tmp_path / "g.txt"
    f.write_text(f"{gid}\n{gid}\n{name}\n")
    with caplog.at_level("WARNING"):
        ids = resolve_gene_ids(ann.genes, read_gene_list(f) + [gid], source="--genes/--gene-ids-file")
    assert ids == [gid]
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 3, notes
    assert f"gene list {f} lists 1 gene(s) more than once: {gid} (2x); each is used once" == notes[0]
    assert notes[1] == f"--genes/--gene-ids-file lists 1 gene(s) more than once: {gid} (2x); each is used once"
    assert f"{gid} and {name} -> {gid}" in notes[2]


def test_gene_list_binary_or_corrupt_gzip_is_one_line(tmp_path):
    bad = tmp_path / "g.txt.gz"
    bad.write_bytes(gzip.compress(b"TANK\nMARCH7\n")[:15])
    with pytest.raises(InputError, match="gene list .* is a corrupt or truncated gzip file"):
        read_gene_list(bad)
    binary = tmp_path / "g.bin"
    binary.write_bytes(b"\x00\x01\x02TANK\x00")
    with pytest.raises(InputError, match="not a text file"):
        read_gene_list(binary)


def test_gene_name_shared_by_two_genes_names_both_ids(tmp_path):
    gtf = tmp_path / "dup.gtf"
    gtf.write_text(
        '1\tx\texon\t10\t20\t.\t+\t.\tgene_id "ENSG1.1"; transcript_id "T1"; gene_name "DUP";\n'
        '1\tx\texon\t500\t600\t.\t+\t.\tgene_id "ENSG2.3"; transcript_id "T2"; gene_name "DUP";\n'
    )
    genes = parse_annotation(gtf).genes
    with pytest.raises(InputError, match=r"gene name DUP .* shared by 2 genes .*ENSG1\.1, ENSG2\.3.*gene ID"):
        resolve_gene_ids(genes, ["DUP"])
    assert resolve_gene_ids(genes, ["ENSG2"]) == ["ENSG2.3"]


def test_versioned_id_of_another_version_is_used_with_a_note(chr2, caplog):
    ann = parse_annotation(chr2 / "annotation.gtf")
    with caplog.at_level("WARNING"):
        assert resolve_gene_ids(ann.genes, ["ENSG00000136560.4"], source="genes.txt") == ["ENSG00000136560.9"]
    assert "genes.txt names other versions" in caplog.text and "ENSG00000136560.4 -> ENSG00000136560.9" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        resolve_gene_ids(ann.genes, ["ENSG00000136560", "ENSG00000136560.9"])
    assert "other versions" not in caplog.text


def test_gff3_exon_only_names_come_from_explicit_gene_keys_only(tmp_path):
    """Without gene records: GENCODE's gene_name on exons names the gene; Ensembl's exon Name never does."""
    gencode = "".join(ln for ln in _gencode_gff3().splitlines(True) if "\texon\t" in ln)
    ensembl = "".join(ln for ln in _ENSEMBL_GFF3.splitlines(True) if "\texon\t" in ln)
    (tmp_path / "g.gff3").write_text("##gff-version 3\n" + gencode)
    (tmp_path / "e.gff3").write_text("##gff-version 3\n" + ensembl)
    g = parse_annotation(tmp_path / "g.gff3").genes
    assert sorted(g["gene_name"]) == ["LINC01637", "PI4KAP3", "TRMT2A"]
    assert sorted(g["gene_type"]) == ["lncRNA", "protein_coding", "unprocessed_pseudogene"]
    e = parse_annotation(tmp_path / "e.gff3").genes
    assert not e["gene_name"].str.starts_with("ENSE").any()


def test_gene_list_from_a_pipe_and_an_annotation_from_a_pipe_refused(tmp_path):
    """A gene list is read once: /dev/fd/N (what ``<(…)`` gives) works. An annotation is read more than
    once: a pipe is refused in one line saying so (rather than parsed from a half-consumed stream)."""
    import threading

    from meta_spliceai.reference.annotation import check_readable

    r, w = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(w, b"gene_id\nENSG1\nDGCR8\n"), os.close(w)))
    writer.start()
    try:
        assert read_gene_list(f"/dev/fd/{r}") == ["ENSG1", "DGCR8"]
    finally:
        writer.join()
        os.close(r)
    r, w = os.pipe()
    try:
        with pytest.raises(InputError, match=r"annotation /dev/fd/\d+ is a pipe or a device, not a file: it is read more"):
            check_readable(Path(f"/dev/fd/{r}"), "annotation", "--gtf")
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(InputError, match="is a folder, not a file"):
        read_gene_list(tmp_path)
