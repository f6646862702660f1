from __future__ import annotations

import re

import pytest

from meta_spliceai.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _ref(bundle):
    return ["--fasta", bundle / "genome.fa.gz", "--gtf", bundle / "annotation.gtf"]


def test_help_lists_built_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "reference", "predict", "build", "gene-ids"):
        assert cmd in out


def _count(out: str, label: str) -> int:
    m = re.search(rf"│ {re.escape(label)}\s+│\s+([\d,]+)", out)
    assert m, f"{label} not in output"
    return int(m.group(1).replace(",", ""))


def test_reference_chr22(capsys, chr22):
    code, out, _ = run(capsys, "reference", *_ref(chr22))
    assert code == 0
    assert (_count(out, "genes"), _count(out, "transcripts")) == (18, 18)
    assert (_count(out, "donor sites"), _count(out, "acceptor sites")) == (135, 135)
    assert "contigs matched: 22" in out and "genes without sequence: none" in out


def test_reference_chr2(capsys, chr2):
    code, out, _ = run(capsys, "reference", *_ref(chr2))
    assert code == 0
    assert (_count(out, "genes"), _count(out, "transcripts")) == (16, 83)
    assert (_count(out, "donor sites"), _count(out, "acceptor sites")) == (196, 189)
    assert re.search(r"protein_coding\s+│\s+8", out)


def test_reference_demo_fallback_says_so(capsys):
    code, out, err = run(capsys, "reference")
    assert code == 0 and _count(out, "genes") == 18
    assert "built-in demo reference" in " ".join(err.split())


def test_reference_contig_names_differ(capsys, chr22, tmp_path):
    gtf = tmp_path / "chr.gtf"
    gtf.write_text("".join("chr" + ln for ln in (chr22 / "annotation.gtf").read_text().splitlines(True)))
    code, out, _ = run(capsys, "reference", "--fasta", chr22 / "genome.fa.gz", "--gtf", gtf)
    assert code == 0 and "chr22→22" in out


def _one_line_error(code, err, *fragments):
    assert code == 2
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if "error:" in ln]  # log lines (demo fallback) may precede it
    assert len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["reference", "--fasta", "/nonexistent/g.fa", "--gtf", "/nonexistent/a.gtf"], ["FASTA not found"]),
        (["reference", "--fasta", "/nonexistent/g.fa"], ["--gtf is missing"]),
        (["build", "-o", "{tmp}/o", "--subset-policy", "worst"], ["invalid choice: 'worst'"]),
        (["build", "-o", "{tmp}/o", "--n-genes", "0"], ["--n-genes must be a positive number, got 0"]),
        (["build", "-o", "{tmp}/o", "--n-genes", "-3"], ["--n-genes must be a positive number"]),
        (["build", "-o", "{tmp}/o", "--easy-ratio", "-1"], ["--easy-ratio must be >= 0"]),
        (["build", "-o", "{tmp}/o", "--subset-policy", "random", "--gene-ids-file", "{tmp}/g.tsv"],
         ["conflicts with --subset-policy random"]),
        (["build", "-o", "{tmp}/o", "--subset-policy", "custom"], ["needs --gene-ids-file"]),
        (["build", "-o", "{tmp}/o", "--subset-policy", "all", "--n-genes", "5"], ["--n-genes conflicts"]),
        (["build", "-o", "{tmp}/o", "--gene-ids-file", "{tmp}/g.tsv", "--gene-col", "symbol"],
         ["has no column 'symbol'", "gene_id, score"]),
        (["build", "-o", "{tmp}/o", "--gene-ids-file", "{tmp}/empty.txt"], ["is empty"]),
        (["build", "-o", "{tmp}/o", "--gene-ids-file", "{tmp}/unknown.txt"], ["not found in the annotation: NOPE"]),
        (["build", "-o", "{tmp}/o", "--kmer-sizes", "9"], ["--kmer-sizes must be between 1 and 8"]),
        (["build", "-o", "{tmp}/o", "--kmer-sizes", "x"], ["--kmer-sizes takes integers"]),
        (["predict", "--out", "{tmp}/s", "--genes", "NOPE"], ["not found in the annotation: NOPE"]),
        (["gene-ids", "--eval-dir", "{tmp}/none", "--out", "{tmp}/x.tsv"], ["is not a folder"]),
    ],
)
def test_bad_flags_are_one_line_errors(capsys, tmp_path, argv, fragments):
    (tmp_path / "g.tsv").write_text("gene_id\tscore\nTANGO2\t1\n")
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "unknown.txt").write_text("NOPE\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code, _, err = run(capsys, *argv)
    except SystemExit as e:  # argparse-level errors
        code, err = e.code, capsys.readouterr().err
    _one_line_error(code, err, *fragments)


def test_build_and_gene_ids_via_cli(capsys, tmp_path, chr22, keras_store):
    out = tmp_path / "b"
    code, text, _ = run(capsys, "build", *_ref(chr22), "-o", out, "--predictions", keras_store,
                        "--subset-policy", "random", "--n-genes", "3", "--kmer-sizes", "0", "--batch-size", "2")
    assert code == 0 and "master dataset" in text and _count(text, "genes") == 3
    code, text, _ = run(capsys, "gene-ids", "--eval-dir", keras_store, "--out", tmp_path / "ids.tsv",
                        "--gtf", chr22 / "annotation.gtf", "--n-genes", "5")
    assert code == 0
    rows = (tmp_path / "ids.tsv").read_text().splitlines()
    assert rows[0] == "gene_id\tgene_name\ttranscript_ids" and len(rows) == 6
    assert all(r.split("\t")[2].endswith("-canonical") for r in rows[1:])


_G = '1\tx\texon\t10\t20\t.\t+\t.\tgene_id "G"; transcript_id "T";\n'


@pytest.mark.parametrize(
    ("gtf_text", "fragment"),
    [
        (_G + "1\tx\texon\t10\t20\t.\t+\n", "line 2: 7 tab-separated fields"),
        (_G + '1\tx\texon\tten\t20\t.\t+\t.\tgene_id "G"; transcript_id "T";\n', "line 2: start coordinate 'ten'"),
        (_G + '1\tx\texon\t50\t40\t.\t+\t.\tgene_id "G"; transcript_id "T";\n', "start 50 > end 40"),
        (_G + '1\tx\texon\t50\t60\t.\t?\t.\tgene_id "G"; transcript_id "T";\n', "unknown strand '?'"),
        ('1\tx\tgene\t10\t20\t.\t+\t.\tgene_id "G";\n', "no exon lines"),
        (_G + '2\tx\texon\t50\t60\t.\t+\t.\tgene_id "G"; transcript_id "T2";\n', "gene G has exons on several contigs"),
    ],
)
def test_bad_annotation_exits_2_with_one_line(capsys, tmp_path, chr22, gtf_text, fragment):
    gtf = tmp_path / "bad.gtf"
    gtf.write_text(gtf_text)
    code, _, err = run(capsys, "reference", "--fasta", chr22 / "genome.fa.gz", "--gtf", gtf)
    _one_line_error(code, err, fragment, str(gtf))


def test_fasta_without_index_in_readonly_folder_exits_2(capsys, tmp_path, monkeypatch, chr22):
    fa = tmp_path / "g.fa"
    fa.write_text(">22\nACGT\n")
    monkeypatch.setattr("meta_spliceai.genome._writable", lambda folder: False)  # root may write anywhere
    code, _, err = run(capsys, "reference", "--fasta", fa, "--gtf", chr22 / "annotation.gtf")
    _one_line_error(code, err, "has no index", "samtools faidx g.fa")


def test_contig_mismatch_exits_2_listing_both_sides(capsys, tmp_path, chr2, chr22):
    code, _, err = run(capsys, "reference", "--fasta", chr22 / "genome.fa.gz", "--gtf", chr2 / "annotation.gtf")
    _one_line_error(code, err, "contigs of", "chr2", "FASTA has: 22")


def test_cuda_without_gpu_exits_2(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code, _, err = run(capsys, "predict", "--out", tmp_path / "s", "--genes", "TANGO2", "--device", "cuda")
    _one_line_error(code, err, "cuda")


@pytest.mark.parametrize("cmd,words", [("patch", "gene-level columns"), ("dedup", "duplicate rows"),
                                       ("validate", "Exit 0 when every check passes"),
                                       ("summary", "self-contained HTML"), ("merge", "Merge the masters")])
def test_dataset_commands_say_what_they_do(capsys, cmd, words):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert words in " ".join(capsys.readouterr().out.split())
