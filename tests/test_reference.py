from __future__ import annotations

import pytest

from meta_spliceai.errors import InputError
from meta_spliceai.reference.report import demo_reference, reference, resolve_reference


def test_demo_reference_is_packaged():
    fasta, gtf = demo_reference()
    assert fasta.is_file() and gtf.is_file() and (fasta.parent / "PROVENANCE.md").is_file()
    assert fasta.with_name(fasta.name + ".fai").is_file() and fasta.with_name(fasta.name + ".gzi").is_file()


def test_resolve_reference():
    f, g, demo = resolve_reference(None, None)
    assert demo and (f, g) == demo_reference()
    assert resolve_reference("a.fa", "b.gtf") == (__import__("pathlib").Path("a.fa"),
                                                  __import__("pathlib").Path("b.gtf"), False)
    with pytest.raises(InputError, match="--fasta is missing"):
        resolve_reference(None, "b.gtf")


def test_report_counts_both_bundles(chr22, chr2):
    r22 = reference(fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf")
    assert (r22.n_genes, r22.n_multi_exon_genes, r22.n_transcripts, r22.n_donors, r22.n_acceptors) == (18, 17, 18, 135, 135)
    assert r22.genes_by_type == {"unknown": 18} and r22.contig_map == {"22": "22"}
    r2 = reference(fasta=chr2 / "genome.fa.gz", gtf=chr2 / "annotation.gtf")
    assert (r2.n_genes, r2.n_transcripts, r2.n_donors, r2.n_acceptors) == (16, 83, 196, 189)
    assert r2.genes_by_type["protein_coding"] == 8
    assert not r2.missing_sequence and not r2.mostly_n


def test_report_flags_missing_and_n_genes(chr22, tmp_path):
    lines = (chr22 / "annotation.gtf").read_text().splitlines()
    extra = [
        # a gene in the N-padded start of the contig, one past its end, one on a contig the FASTA lacks
        '22\tx\texon\t1000\t3000\t.\t+\t.\tgene_id "NGENE"; transcript_id "NT";',
        '22\tx\texon\t20999000\t21000500\t.\t+\t.\tgene_id "PASTEND"; transcript_id "PT";',
        '7\tx\texon\t100\t200\t.\t+\t.\tgene_id "OTHER"; transcript_id "OT";',
    ]
    gtf = tmp_path / "a.gtf"
    gtf.write_text("\n".join(lines + extra) + "\n")
    r = reference(fasta=chr22 / "genome.fa.gz", gtf=gtf)
    assert r.mostly_n == ["NGENE"]
    assert sorted(r.missing_sequence) == ["OTHER", "PASTEND"]
    assert r.unmatched_contigs == ["7"]
