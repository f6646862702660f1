"""Genome-wide annotations as they really are (issue 31): small fixtures in each real layout, made here from the
chr22 bundle (its contig sliced and renamed, genes copied onto a second contig, a GFF3 with RefSeq accessions),
each going through reference -> build -> validate, with the rows of the untouched genes equal to those built
from the original annotation; ``--strict-annotation`` refuses the odd ones with today's messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from meta_spliceai.cli.main import main
from meta_spliceai.errors import InputError

from conftest import write_store

#: the slice of the chr22 bundle every layout uses (0-based start; +/- 5 kb of real sequence around both genes)
LO, HI = 20_355_000, 20_392_000
GENES = ("GGTLC3", "TMEM191B")  # 1.8 kb on -, 2.7 kb on +
SMALL = {"subset_policy": "all", "batch_size": 5, "kmer_sizes": (2,), "progress": False}


def _gene_lines(chr22: Path) -> dict[str, list[list[str]]]:
    """The bundle's gene/transcript/exon lines of GENES, coordinates shifted into the slice."""
    out: dict[str, list[list[str]]] = {g: [] for g in GENES}
    for line in (chr22 / "annotation.gtf").read_text().splitlines():
        f = line.split("\t")
        for g in GENES:
            if f'gene_id "{g}"' in f[8]:
                f[3], f[4] = str(int(f[3]) - LO), str(int(f[4]) - LO)
                out[g].append(f)
    return out


def _gtf(lines: list[list[str]], contig: str, rename: dict[str, str] | None = None) -> str:
    text = "".join("\t".join([contig, *f[1:]]) + "\n" for f in lines)
    for a, b in (rename or {}).items():
        text = text.replace(f'"{a}"', f'"{b}"').replace(f'"{a}-canonical"', f'"{b.replace("ENSG", "ENST")}-t"')
    return text


def _fasta(path: Path, chr22: Path, contigs: list[str]) -> Path:
    """A BGZF FASTA whose contigs are each the slice (written with pysam)."""
    import pysam

    with pysam.FastaFile(str(chr22 / "genome.fa.gz")) as fa:
        seq = fa.fetch(fa.references[0], LO, HI)
    plain = path.with_suffix("")
    plain.write_text("".join(f">{c}\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n"
                             for c in contigs))
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    return path


def _gff3(lines: list[list[str]], contig: str) -> str:
    """RefSeq-style GFF3 (gene-/rna- prefixed IDs, Parent links) from GTF lines."""
    out = ["##gff-version 3"]
    for f in lines:
        gid = f[8].split('gene_id "')[1].split('"')[0]
        if f[2] == "gene":
            attrs = f"ID=gene-{gid};Name={gid};gene_biotype=protein_coding"
        elif f[2] == "transcript":
            f = [*f[:2], "mRNA", *f[3:]]
            attrs = f"ID=rna-{gid}.1;Parent=gene-{gid}"
        else:
            attrs = f"Parent=rna-{gid}.1"
        out.append("\t".join([contig, *f[1:8], attrs]))
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, chr22) -> dict[str, tuple[Path, Path, dict[str, str]]]:
    """name -> (FASTA, annotation, {gene ID there: bundle gene ID})."""
    root = tmp_path_factory.mktemp("layouts")
    lines = _gene_lines(chr22)
    g, t = lines["GGTLC3"], lines["TMEM191B"]
    xy = _fasta(root / "xy.fa.gz", chr22, ["chrX", "chrY"])
    out: dict[str, tuple[Path, Path, dict[str, str]]] = {}

    def add(name: str, fasta: Path, text: str, ids: dict[str, str], suffix: str = ".gtf") -> None:
        (root / f"{name}{suffix}").write_text(text)
        out[name] = (fasta, root / f"{name}{suffix}", ids)

    # the original genes in the slice, as the bundle names them (the labels to compare with)
    add("original", _fasta(root / "22.fa.gz", chr22, ["22"]), _gtf(g + t, "22"), {x: x for x in GENES})
    # UCSC: GGTLC3 on chrX and chrY (PAR: same gene_id and transcript_id), TMEM191B also on an alt contig
    add("ucsc", xy, _gtf(g + t, "chrX") + _gtf(g, "chrY") + _gtf(t, "chr22_KI270731v1_random"),
        {"GGTLC3": "GGTLC3", "GGTLC3@chrY-": "GGTLC3", "TMEM191B": "TMEM191B"})
    # the same where the FASTA has the random contig too: that copy is used
    add("ucsc_alt", _fasta(root / "xyr.fa.gz", chr22, ["chrX", "chrY", "chr22_KI270731v1_random"]),
        out["ucsc"][1].read_text(), {**out["ucsc"][2], "TMEM191B@chr22_KI270731v1_random+": "TMEM191B"})
    # GENCODE v19: the chrY copy is ENSGR/ENSTR; v44: ..._PAR_Y
    v19 = {"GGTLC3": "ENSG00000001.1", "TMEM191B": "ENSG00000002.1"}
    add("gencode_v19", xy, _gtf(g + t, "chrX", v19) + _gtf(g, "chrY", {"GGTLC3": "ENSGR0000001.1"}),
        {"ENSG00000001.1": "GGTLC3", "ENSGR0000001.1": "GGTLC3", "ENSG00000002.1": "TMEM191B"})
    add("gencode_v44", xy, _gtf(g + t, "chrX", v19) + _gtf(g, "chrY", {"GGTLC3": "ENSG00000001.1_PAR_Y"}),
        {"ENSG00000001.1": "GGTLC3", "ENSG00000001.1_PAR_Y": "GGTLC3", "ENSG00000002.1": "TMEM191B"})
    # RefSeq GFF3 (hg19 chr22 = NC_000022.10) against a chr-named and a 1-named FASTA
    for name, contig in (("refseq_chr", "chr22"), ("refseq_1", "22")):
        add(name, _fasta(root / f"{name}.fa.gz", chr22, [contig]), _gff3(g + t, "NC_000022.10"),
            {x: x for x in GENES}, ".gff3")
    # Ensembl: contig 1-style names against a chr-named FASTA
    add("ensembl", _fasta(root / "chr22.fa.gz", chr22, ["chr22"]), _gtf(g + t, "22"), {x: x for x in GENES})
    # a transcript with overlapping exons added to TMEM191B; a gene whose only transcript has a duplicated exon
    ex = [f for f in t if f[2] == "exon"]
    bad = [[*f[:8], f[8].replace("TMEM191B-canonical", "TMEM191B-bad")] for f in (ex[0], ex[0], ex[1])]
    bad[1][4] = str(int(ex[0][4]) + 20)  # overlaps the first exon
    dup = [[*f[:8], f[8].replace("TMEM191B", "DUPEXON")] for f in (ex[0], ex[0], ex[1])]
    add("overlap", out["original"][0], _gtf(g + t + bad + dup, "22"), {x: x for x in GENES})
    # one gene name on two genes
    add("names", out["original"][0], _gtf(g + t, "22").replace('gene_name "TMEM191B"', 'gene_name "SHARED"')
        .replace('gene_name "GGTLC3"', 'gene_name "SHARED"'), {x: x for x in GENES})
    return out


@pytest.fixture(scope="module")
def store_for(tmp_path_factory, chr22):
    """A Keras-output store holding each layout's genes under its IDs (the same sequence, so the same scores)."""
    z = np.load(chr22 / "reference" / "keras_spliceai_outputs.npz")
    root = tmp_path_factory.mktemp("stores")
    return lambda name, ids: write_store(root / name, {new: z[orig] for new, orig in ids.items()})


def _sites(build: Path) -> pl.DataFrame:
    """Rows whose label does not depend on the seeded TN draw (every TP/FP/FN row)."""
    return (pl.read_parquet(build / "master").filter(pl.col("pred_type") != "TN")
            .select("gene_id", "position", "splice_type", "pred_type").sort("gene_id", "position"))


@pytest.fixture(scope="module")
def original_sites(layouts, store_for, tmp_path_factory) -> pl.DataFrame:
    from meta_spliceai.dataset.builder import build

    fasta, gtf, ids = layouts["original"]
    out = tmp_path_factory.mktemp("orig") / "b"
    build(output_dir=out, fasta=fasta, gtf=gtf, predictions=store_for("original", ids), **SMALL)
    return _sites(out)


@pytest.mark.parametrize("name", ["ucsc", "ucsc_alt", "gencode_v19", "gencode_v44", "refseq_chr", "refseq_1",
                                  "ensembl", "overlap", "names"])
def test_layout_reference_build_validate(name, layouts, store_for, original_sites, tmp_path, capsys):
    from meta_spliceai.maintenance.validation import validate

    fasta, gtf, ids = layouts[name]
    assert main(["reference", "--fasta", str(fasta), "--gtf", str(gtf), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert sorted(g for g in ids if g not in rep["missing_sequence"]) == sorted(ids)
    out = tmp_path / "b"
    assert main(["build", "-o", str(out), "--fasta", str(fasta), "--gtf", str(gtf), "--subset-policy", "all",
                 "--kmer-sizes", "2", "--predictions", str(store_for(name, ids))]) == 0
    assert validate(dataset=out).ok
    got = _sites(out)
    assert sorted(got["gene_id"].unique()) == sorted(ids)
    for new, orig in ids.items():  # every copy's labelled sites are the original gene's
        a = got.filter(pl.col("gene_id") == new).drop("gene_id")
        assert a.equals(original_sites.filter(pl.col("gene_id") == orig).drop("gene_id")), (name, new)
    manifest = json.loads((out / "manifest.json").read_text())
    build_json = json.loads((out / "build.json").read_text())
    assert manifest["annotation"] == build_json["inputs"]["annotation"]
    assert manifest["annotation"]["counts"] == rep["annotation_issues"]


def test_ucsc_split_and_alt_contig_counted(layouts, capsys):
    fasta, gtf, _ = layouts["ucsc"]
    assert main(["reference", "--fasta", str(fasta), "--gtf", str(gtf), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["annotation_issues"]["split_gene"] == 2 and rep["annotation_issues"]["split_transcript"] == 2
    renamed = {r["new_id"] for r in rep["issue_records"] if r["new_id"] != r["id"]}
    assert renamed == {"GGTLC3@chrY-", "GGTLC3-canonical@chrY-", "TMEM191B@chr22_KI270731v1_random+",
                       "TMEM191B-canonical@chr22_KI270731v1_random+"}
    assert rep["skipped_contigs"] == {"chr22_KI270731v1_random": 1}
    assert main(["reference", "--fasta", str(fasta), "--gtf", str(gtf)]) == 0
    assert "split on reading: 2 gene ID(s)" in capsys.readouterr().out


def test_overlapping_transcript_dropped_and_listed(layouts, capsys):
    fasta, gtf, _ = layouts["overlap"]
    assert main(["reference", "--fasta", str(fasta), "--gtf", str(gtf), "--json"]) == 0
    cap = capsys.readouterr()
    rep = json.loads(cap.out)
    dropped = {(r["kind"], r["id"]) for r in rep["issue_records"]}
    assert dropped == {("dropped_transcript", "TMEM191B-bad"), ("dropped_transcript", "DUPEXON-canonical"),
                       ("dropped_gene", "DUPEXON")}
    assert rep["n_genes"] == 2
    assert "2 transcript(s) with overlapping or duplicated exons dropped (TMEM191B-bad, DUPEXON-canonical)" \
        in cap.err and "1 gene(s) left without transcripts" in cap.err


@pytest.mark.parametrize(("name", "message"), [
    ("ucsc", "gene GGTLC3 has exons on several contigs/strands (chrX, chrY / -); fix or drop that gene (2 such gene(s))"),
    ("overlap", "of transcript TMEM191B-bad overlaps its exon"),
])
def test_strict_annotation_refuses_with_todays_message(name, message, layouts, capsys, tmp_path):
    fasta, gtf, _ = layouts[name]
    for cmd in (["reference"], ["build", "-o", str(tmp_path / "b"), "--subset-policy", "all"],
                ["predict", "-o", str(tmp_path / "p")]):
        code = main([*cmd, "--fasta", str(fasta), "--gtf", str(gtf), "--strict-annotation"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and "\n" not in err, (cmd, err)
    assert not (tmp_path / "b").exists()


def test_one_name_on_two_genes_is_an_error_only_when_asked_for(layouts, capsys, tmp_path):
    fasta, gtf, _ = layouts["names"]
    code = main(["predict", "-o", str(tmp_path / "p"), "--fasta", str(fasta), "--gtf", str(gtf), "--genes", "SHARED"])
    err = capsys.readouterr().err
    assert code == 2 and "GGTLC3" in err and "TMEM191B" in err


def test_mitochondria_of_different_lengths_are_named_and_left_out():
    from meta_spliceai.reference.genome import match_contig_names

    m = match_contig_names(["MT", "chr1"], {"chrM": 16_571, "chr1": 249_250_621})  # hg19 FASTA, rCRS annotation
    assert m.mapping == {"chr1": "chr1"} and m.mito_conflicts == {"MT": ("chrM", 16_569, 16_571)}
    assert "16,569 nt" in m.conflict_notes()[0] and "16,571 nt" in m.conflict_notes()[0]
    ok = match_contig_names(["MT", "NC_000001.11"], {"chrM": 16_569, "chr1": 248_956_422})  # hg38: the same rCRS
    assert ok.mapping == {"MT": "chrM", "NC_000001.11": "chr1"} and not ok.mito_conflicts
    assert match_contig_names(["NC_000001.10", "1"], {"chr1": 5}).mapping == {"NC_000001.10": "chr1", "1": "chr1"}


def test_alias_table_is_package_data():
    from meta_spliceai.reference.contigs import _table_path, assembly_table

    for asm in ("hg19", "hg38"):
        assert _table_path(asm) is not None and len(assembly_table(asm)) > 80


def test_spliceai_table_as_gtf(chr22, tmp_path):
    """``--gtf grch37``: the spliceai package's table gives the bundle's canonical genes with the same exons."""
    from meta_spliceai.reference.annotation import load_annotation

    ann = load_annotation("grch37")
    bundle = load_annotation(chr22 / "annotation.gtf")
    mine = ann.exons.filter(pl.col("gene_id").is_in(bundle.genes["gene_id"].implode()))
    key = ["gene_id", "transcript_id", "start", "end", "exon_number"]
    assert mine.select(key).sort(key).equals(bundle.exons.select(key).sort(key))
    one = tmp_path / "t.txt"
    one.write_text("#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END\n"
                   "G\t1\t+\t99\t400\t99,299,\t200,400,\n")
    t = load_annotation(one)
    assert t.exons["start"].to_list() == [100, 300] and t.splice_sites["genomic_position"].sort().to_list() == [200, 300]
    one.write_text("#NAME\tCHROM\tSTRAND\tTX_START\tTX_END\tEXON_START\tEXON_END\nG\t1\t+\t99\t400\t99,299,\t200,\n")
    with pytest.raises(InputError, match="line 2: EXON_START and EXON_END list different numbers"):
        load_annotation(one)


@pytest.fixture(scope="module")
def real_original(layouts, tmp_path_factory):
    """The original genes predicted by the real SpliceAI, and the non-TN rows built from them."""
    fasta, gtf, _ = layouts["original"]
    root = tmp_path_factory.mktemp("real")
    ref = ["--fasta", str(fasta), "--gtf", str(gtf)]
    assert main(["predict", "-o", str(root / "store"), *ref]) == 0
    assert main(["build", "-o", str(root / "b"), *ref, "--subset-policy", "all", "--kmer-sizes", "2",
                 "--predictions", str(root / "store")]) == 0
    return root / "store", _sites(root / "b")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ucsc", "gencode_v19", "gencode_v44", "refseq_chr", "refseq_1", "ensembl",
                                  "overlap", "names"])
def test_layout_reference_predict_build_validate_with_the_real_model(name, layouts, real_original, tmp_path,
                                                                      capsys):
    """reference -> predict (real SpliceAI) -> build -> validate: every gene (a PAR copy too) is scored and
    labelled like the original gene."""
    from meta_spliceai.basemodel.store import PredictionStore
    from meta_spliceai.maintenance.validation import validate

    fasta, gtf, ids = layouts[name]
    ref = ["--fasta", str(fasta), "--gtf", str(gtf)]
    assert main(["reference", *ref]) == 0
    store = tmp_path / "store"
    assert main(["predict", "-o", str(store), *ref]) == 0
    out = tmp_path / "b"
    assert main(["build", "-o", str(out), *ref, "--subset-policy", "all", "--kmer-sizes", "2",
                 "--predictions", str(store)]) == 0
    capsys.readouterr()
    assert validate(dataset=out).ok
    mine, orig = PredictionStore(store), PredictionStore(real_original[0])
    got = _sites(out)
    for new, old in ids.items():
        np.testing.assert_allclose(mine.read(new), orig.read(old), atol=1e-6)
        a = got.filter(pl.col("gene_id") == new).drop("gene_id")
        assert a.height and a.equals(real_original[1].filter(pl.col("gene_id") == old).drop("gene_id")), (name, new)


def test_build_on_spliceai_grch37_table_equals_the_bundle_build(chr22, keras_store, tmp_path, capsys):
    """``build --gtf grch37``: the canonical genes ``variants -A grch37`` scores, labelled as the bundle's GTF."""
    genes = tmp_path / "genes.txt"
    genes.write_text("\n".join(np.load(chr22 / "reference" / "keras_spliceai_outputs.npz").files) + "\n")
    built = {}
    for name, gtf in (("table", "grch37"), ("gtf", str(chr22 / "annotation.gtf"))):
        out = tmp_path / name
        assert main(["build", "-o", str(out), "--fasta", str(chr22 / "genome.fa.gz"), "--gtf", gtf, "--gene-ids-file",
                     str(genes), "--kmer-sizes", "2", "--predictions", str(keras_store)]) == 0
        built[name] = pl.read_parquet(out / "master").select("gene_id", "position", "splice_type", "pred_type").sort(
            "gene_id", "position")
    capsys.readouterr()
    assert built["table"].height > 1000 and built["table"].equals(built["gtf"])
