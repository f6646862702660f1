from __future__ import annotations

import json
import re

import polars as pl
import pytest
from conftest import basemodel_gpu_present

from meta_spliceai.cli.main import main
from meta_spliceai.config import FEATURE_SETS


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
    for cmd in ("demo", "reference", "predict", "build", "gene-ids", "train", "apply"):
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
        (["build", "-o", "{tmp}/o", "--feature-sets", "base,exons"], ["unknown feature set 'exons'", "--feature-sets"]),
        (["build", "-o", "{tmp}/o", "--feature-sets", "partner"], ["lack 'base'", "--feature-sets"]),
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
                        "--subset-policy", "random", "--n-genes", "3", "--kmer-sizes", "0", "--batch-size", "2",
                        "--feature-sets", "all")
    assert code == 0 and "master dataset" in text and _count(text, "genes") == 3
    assert json.loads((out / "build.json").read_text())["config"]["feature_sets"] == list(FEATURE_SETS)
    assert "donor_nbhd10_rank" in pl.read_parquet_schema(next((out / "master").iterdir()))
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
    code, _, err = run(capsys, "reference", "--fasta", chr22 / "genome.fa.gz", "--gtf", gtf, "--strict-annotation")
    _one_line_error(code, err, fragment, str(gtf))


def test_corrupt_gzip_gtf_is_one_line_in_reference_and_build(capsys, tmp_path, chr22, keras_store):
    import gzip

    z = bytearray(gzip.compress((chr22 / "annotation.gtf").read_bytes()))
    for i in range(len(z) // 2, len(z) // 2 + 64):
        z[i] ^= 0x55  # zlib.error: invalid distance / block type
    gz = tmp_path / "annotation.gtf.gz"
    gz.write_bytes(bytes(z))
    ref = ["--fasta", chr22 / "genome.fa.gz", "--gtf", gz]
    for argv in (["reference", *ref], ["build", "-o", tmp_path / "b", *ref, "--predictions", keras_store]):
        code, _, err = run(capsys, *argv)
        _one_line_error(code, err, str(gz), "corrupt or truncated gzip", "download it again or re-compress")


def test_fasta_without_index_in_readonly_folder_exits_2(capsys, tmp_path, monkeypatch, chr22):
    fa = tmp_path / "g.fa"
    fa.write_text(">22\nACGT\n")
    monkeypatch.setattr("meta_spliceai.reference.genome._writable", lambda folder: False)  # root may write anywhere
    code, _, err = run(capsys, "reference", "--fasta", fa, "--gtf", chr22 / "annotation.gtf")
    _one_line_error(code, err, "has no index", "samtools faidx g.fa")


def test_contig_mismatch_exits_2_listing_both_sides(capsys, tmp_path, chr2, chr22):
    code, _, err = run(capsys, "reference", "--fasta", chr22 / "genome.fa.gz", "--gtf", chr2 / "annotation.gtf")
    _one_line_error(code, err, "contigs of", "chr2", "FASTA has: 22")


def test_cuda_without_gpu_exits_2(capsys, tmp_path):
    if basemodel_gpu_present():
        pytest.skip("a GPU is present")
    code, _, err = run(capsys, "predict", "--out", tmp_path / "s", "--genes", "TANGO2", "--device", "cuda")
    _one_line_error(code, err, "cuda")


# --------------------------------------------------------------------------- the original's command lines


def _subparsers():
    import argparse

    from meta_spliceai.cli.main import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action


def test_every_help_has_a_description_and_shows_defaults():
    parser, sub = _subparsers()
    assert sub.choices, "no subcommands"
    for name, p in sub.choices.items():
        text = " ".join(p.format_help().split())
        assert p.description and "\n" not in p.description.strip(), name
        assert p.description.rstrip(".").lower() in text.lower(), name
        for action in p._actions:
            if action.option_strings and action.default not in (None, False, "==SUPPRESS==") and action.help:
                assert "default" in (action.help or "") or "(default: " in text, (name, action.dest)
        assert "-v, --verbose" in text, name
    build_help = " ".join(sub.choices["build"].format_help().split())
    for shown in ("genes per batch (default: 1000)", "(default: 20000)", "(default: 6)", "(default: 42)",
                  "(default: 0.5)", "(default: spliceai)"):
        assert shown in build_help, shown
    assert "TN sampling" in build_help  # the epilog keeps its layout
    # the top-level description promises only commands that exist
    top = parser.description.lower()
    if re.search(r"\btrains?\b|train (?:them|meta-models|models)", top):
        assert "train" in sub.choices


def test_version_bare_command_and_python_m(capsys):
    from meta_spliceai import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and __version__ in capsys.readouterr().out
    code, out, _ = run(capsys)
    assert code == 0
    for cmd in ("demo", "reference", "predict", "build", "gene-ids"):
        assert cmd in out
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "meta_spliceai", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"meta-spliceai {__version__}"


@pytest.mark.parametrize(("argv", "level"), [
    (["reference", "-v"], "INFO"), (["reference", "-vv"], "DEBUG"), (["-v", "reference", "-v"], "DEBUG"),
    (["-v", "reference"], "INFO"), (["reference"], "WARNING"),
])
def test_verbose_after_the_subcommand(capsys, argv, level):
    import logging

    code, _, _ = run(capsys, *argv)
    assert code == 0 and logging.getLevelName(logging.getLogger("meta_spliceai").getEffectiveLevel()) == level
    assert logging.getLogger("h5py").getEffectiveLevel() == logging.WARNING  # the libraries' lines need -vvv


def test_vv_shows_our_debug_lines_and_not_the_libraries(capsys, monkeypatch, chr22):
    """-vv: debug lines of meta_spliceai modules; a library's debug line (h5py, numba, matplotlib ...) only with
    -vvv."""
    import logging

    import meta_spliceai.reference.report as reference

    real = reference.reference

    def chatty(*a, **k):
        logging.getLogger("h5py._conv").debug("Creating converter from 7 to 5")  # what h5py says at import
        return real(*a, **k)

    monkeypatch.setattr(reference, "reference", chatty)
    code, _, err = run(capsys, "reference", *_ref(chr22), "-vv")
    assert code == 0
    ours = [ln for ln in err.splitlines() if "DEBUG meta_spliceai." in ln]
    assert any("annotation" in ln for ln in ours) and any("FASTA" in ln for ln in ours), err
    assert "Creating converter" not in err
    code, _, err = run(capsys, "-vv", "reference", *_ref(chr22), "-v")
    assert code == 0 and "DEBUG h5py._conv: Creating converter" in err


@pytest.mark.parametrize("sizes", [["4", "6"], ["4,6"], ["4 6"], ["6", "4"]])
def test_kmer_sizes_spellings(sizes):
    from meta_spliceai.cli.main import build_parser

    args = build_parser().parse_args(["build", "-o", "x", "--kmer-sizes", *sizes, "--overwrite", "-v"])
    assert sorted(args.kmer_sizes) == [4, 6] and args.overwrite and args.sub_verbose == 1
    assert build_parser().parse_args(["build", "-o", "x"]).kmer_sizes == (6,)


# --------------------------------------------------------------------------- one-line errors for every subcommand


def _corrupt_store(src, dst, gene):
    import shutil

    shutil.copytree(src, dst)
    f = dst / f"{gene}.parquet"
    f.write_bytes(f.read_bytes()[:200])  # truncated: the Parquet footer is gone
    return f


_WALK = [
    # (case, argv, fragments)
    ("out is a file", ["demo", "{file}"], ["--output-dir", "is a file"]),
    ("out is a file", ["predict", "--out", "{file}", "--genes", "TANGO2"], ["--out", "is a file"]),
    ("out is a file", ["build", "-o", "{file}", "--predictions", "{store}", "--subset-policy", "random"],
     ["--output-dir", "is a file"]),
    ("out under a file", ["build", "-o", "{file}/sub", "--predictions", "{store}"], ["is a file"]),
    ("out is a folder", ["gene-ids", "--eval-dir", "{store}", "--out", "{dir}"], ["--out", "is a folder"]),
    ("out under a file", ["gene-ids", "--eval-dir", "{store}", "--out", "{file}/g.tsv"], ["is a file"]),
    ("read-only", ["demo", "{ro}/demo"], ["read-only"]),
    ("read-only", ["predict", "--out", "{ro}/store", "--genes", "TANGO2"], ["--out", "read-only"]),
    ("read-only", ["build", "-o", "{ro}/b", "--predictions", "{store}"], ["--output-dir", "read-only"]),
    ("read-only", ["build", "-o", "{ro}", "--predictions", "{store}"], ["--output-dir", "is read-only"]),
    ("read-only", ["gene-ids", "--eval-dir", "{store}", "--out", "{ro}/g.tsv"], ["--out", "read-only"]),
    ("corrupt store", ["build", "-o", "{tmp}/b", "--predictions", "{bad}", "--gene-ids-file", "{genes}",
                       "--kmer-sizes", "0"], ["unreadable file in prediction store", "TANGO2.parquet", "delete it"]),
    ("corrupt store", ["gene-ids", "--eval-dir", "{bad}", "--out", "{tmp}/g.tsv"],
     ["unreadable file in prediction store", "TANGO2.parquet", "delete it"]),
    ("corrupt store", ["demo", "{tmp}/demo"], ["unreadable file in prediction store", "TANGO2.parquet"]),
    ("negative seed", ["build", "-o", "{tmp}/b", "--predictions", "{store}", "--seed", "-1"], ["--seed must be >= 0"]),
    ("negative seed", ["gene-ids", "--eval-dir", "{store}", "--out", "{tmp}/g.tsv", "--seed", "-5"],
     ["--seed must be >= 0"]),
    ("bad gene list", ["build", "-o", "{tmp}/b", "--predictions", "{store}", "--gene-ids-file", "{tmp}/nope.txt"],
     ["not found in the annotation: NOPE"]),
    ("bad number", ["predict", "--out", "{tmp}/s", "--genes", "TANGO2", "--batch-size", "0"], ["--batch-size must be"]),
]


@pytest.mark.parametrize(("case", "argv", "fragments"), _WALK, ids=[f"{a[1][0]}: {a[0]}" for a in _WALK])
def test_every_subcommand_user_errors_are_one_line_and_leave_nothing(capsys, tmp_path, monkeypatch, keras_store,
                                                                     case, argv, fragments):
    import meta_spliceai.storage as storage

    (tmp_path / "file.txt").write_text("not a folder\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "ro").mkdir()
    (tmp_path / "nope.txt").write_text("NOPE\n")
    (tmp_path / "genes.txt").write_text("TANGO2\n")
    bad = tmp_path / "bad_store"
    _corrupt_store(keras_store, bad, "TANGO2")
    if argv[0] == "demo" and case == "corrupt store":
        _corrupt_store(keras_store, tmp_path / "demo" / "predictions", "TANGO2")
    real = storage.writable
    monkeypatch.setattr(storage, "writable", lambda p: False if tmp_path / "ro" in (p, *p.parents) else real(p))
    subs = {"{file}": tmp_path / "file.txt", "{dir}": tmp_path / "adir", "{ro}": tmp_path / "ro",
            "{store}": keras_store, "{bad}": bad, "{genes}": tmp_path / "genes.txt", "{tmp}": tmp_path}
    args = []
    for a in argv:
        for k, v in subs.items():
            a = a.replace(k, str(v))
        args.append(a)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, _, err = run(capsys, *args)
    _one_line_error(code, err, *fragments)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    left = sorted(set(after) - set(before))
    assert not [p for p in after if p.name == ".lock" or ".tmp" in p.name], left
    if not (argv[0] == "demo" and case == "corrupt store"):  # that one fails in a folder it resumes, after its plan
        assert not left, f"left behind: {left}"


def test_unforeseen_os_error_is_one_line(capsys, tmp_path, monkeypatch):
    import meta_spliceai.reference.report as reference

    def boom(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x"))

    monkeypatch.setattr(reference, "reference", boom)
    code, _, err = run(capsys, "reference")
    _one_line_error(code, err, "Permission denied", str(tmp_path / "x"))


def test_a_full_disk_names_the_file_and_the_rerun_resumes(capsys, tmp_path, monkeypatch, chr22, keras_store):
    """ENOSPC inside a Parquet writer (no file name in the error) and inside a text writer: one line naming the file
    being written, its file system and the fix; the same command then finishes."""
    import errno

    import pyarrow.parquet as pq

    from meta_spliceai.storage import mount_point

    real = pq.ParquetWriter.write_table
    calls = {"n": 0}

    def fills_up(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    out = tmp_path / "b"
    argv = ["build", "-o", out, *_ref(chr22), "--predictions", keras_store, "--subset-policy", "all",
            "--batch-size", "6", "--kmer-sizes", "2"]
    monkeypatch.setattr(pq.ParquetWriter, "write_table", fills_up)
    code, _, err = run(capsys, *argv)
    _one_line_error(code, err, f"no space left on {mount_point(tmp_path)} (", f"while writing {out}",
                    ".parquet: free space, then re-run the same command (it resumes)")
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real)
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    import pathlib

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pathlib.Path, "write_text", full)
    code, _, err = run(capsys, "gene-ids", "--eval-dir", keras_store, "--out", tmp_path / "genes.tsv")
    _one_line_error(code, err, f"while writing {tmp_path / 'genes.tsv'}: free space, then re-run")
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


# --------------------------------------------------------------------------- logs and progress in files


def test_build_redirected_to_a_file_shows_progress_lines_and_whole_paths(tmp_path, chr22, keras_store):
    """`meta-spliceai build ... > log 2>&1`: periodic plain progress lines while it runs, logs in the same file,
    long paths never wrapped."""
    import os
    import subprocess
    import sys
    import time

    out = tmp_path / ("a_rather_long_folder_name_" * 4) / "build_output_with_a_long_name"
    log = tmp_path / "log"
    env = {**os.environ, "META_SPLICEAI_PROGRESS_INTERVAL": "0.2", "COLUMNS": "80"}
    cmd = [sys.executable, "-m", "meta_spliceai", "build", *_ref(chr22), "-o", str(out), "--predictions",
           str(keras_store), "--subset-policy", "random", "--n-genes", "6", "--batch-size", "2", "--kmer-sizes", "2",
           "-v"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        seen_while_running = False
        while proc.poll() is None:
            if "progress:" in log.read_text():
                seen_while_running = True
            time.sleep(0.05)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert seen_while_running, text[-3000:]
    lines = [ln for ln in text.splitlines() if "progress:" in ln]
    assert len(lines) >= 3
    assert any(re.search(r"batches \d+/3.*batch \d+: genes \d+/\d+.*rows/s", ln) for ln in lines), lines
    assert any("ETA" in ln for ln in lines)
    assert re.search(r"INFO .*batch 0 \(1 of 3\): 2 genes: started", text)
    assert re.search(r"INFO .*batch 2 \(3 of 3\): done in [\d.]+ s", text)
    assert f"master dataset: {out / 'master'}" in text  # whole path on one line
    assert "\x1b[" not in text  # no terminal control codes in a file


def test_unforeseen_arrow_error_is_one_line(capsys, monkeypatch):
    import pyarrow as pa

    import meta_spliceai.reference.report as reference

    def boom(*a, **k):
        raise pa.ArrowInvalid("Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file.")

    monkeypatch.setattr(reference, "reference", boom)
    code, _, err = run(capsys, "reference")
    _one_line_error(code, err, "cannot read a data file", "magic bytes")


def test_a_command_added_later_gets_defaults_description_and_v(monkeypatch):
    import meta_spliceai.cli.main as cli

    def extra(sub):
        p = sub.add_parser("extra", help="do extra things")  # plain argparse, no helper
        p.add_argument("--n", type=int, default=3, help="how many")
        p.add_argument("-v", action="store_true", help="its own -v wins")

    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, extra])
    parser, sub = _subparsers()
    p = sub.choices["extra"]
    text = " ".join(p.format_help().split())
    assert "Do extra things." in text and "how many (default: 3)" in text
    assert cli.build_parser().parse_args(["extra", "-v"]).v is True


@pytest.fixture(scope="module")
def bad_train_inputs(tmp_path_factory, chr22_build, chr22, keras_store):
    import shutil

    import polars as pl
    import pyarrow.parquet as pq

    from meta_spliceai.dataset.builder import build

    tmp = tmp_path_factory.mktemp("badtrain")
    noroles = tmp / "noroles"
    (noroles / "master").mkdir(parents=True)
    shutil.copy(chr22_build / "build.json", noroles / "build.json")
    pl.DataFrame({"gene_id": ["A"], "x": [1.0]}).write_parquet(noroles / "master" / "b.parquet")
    (noroles / "manifest.json").write_text('{"batches": {"00000": {"file": "b.parquet", "checksum": "x"}}}')
    nolabels = tmp / "nolabels"
    shutil.copytree(chr22_build, nolabels, ignore=shutil.ignore_patterns(".lock"))
    for f in (nolabels / "master").glob("*.parquet"):
        t = pq.read_table(f)
        f.unlink()
        pq.write_table(t.drop_columns(["splice_type"]), f)
    other = tmp / "other.tsv"
    other.write_text("gene_id\tsplice_type\tTP\tFP\tFN\nNOPE\tdonor\t1\t0\t0\n")
    genes = tmp / "two.txt"
    genes.write_text("TANGO2\nMED15\n")
    build(output_dir=tmp / "two", fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf",
          gene_ids_file=genes, kmer_sizes=(), predictions=keras_store, progress=False)
    return {"build": chr22_build, "noroles": noroles, "nolabels": nolabels, "other": other, "two": tmp / "two",
            "tmp": tmp}


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["train", "{noroles}", "--out-dir", "{tmp}/m"], ["has no column roles", "rebuild"]),
        (["train", "{nolabels}", "--out-dir", "{tmp}/m"], ["lacks the splice_type column"]),
        (["train", "{build}", "--out-dir", "{tmp}/m", "--model", '{"model": "svm"}'], ["unknown model 'svm'", "xgboost"]),
        (["train", "{build}", "--out-dir", "{tmp}/m", "--model", '{"model": "xgboost", "params": {"depth": 2}}'],
         ["unknown xgboost parameter(s) depth", "max_depth"]),
        (["train", "{build}", "{other}", "--out-dir", "{tmp}/m"], ["is for other genes"]),
        (["train", "{build}", "--out-dir", "{tmp}/m", "--group-col", "family"], ["--group-col 'family' does not exist"]),
        (["train", "{build}", "--out-dir", "{tmp}/m", "--split", "chromosome", "--test-chroms", "7"],
         ["test chromosome(s) 7 absent from the data"]),
        (["train", "{build}", "--out-dir", "{tmp}/m", "--split", "chromosome"], ["absent from the data"]),
        (["train", "{two}", "--out-dir", "{tmp}/m"], ["too few genes to split"]),
        (["apply", "{tmp}/nomodel", "--predictions", "{tmp}", "--out", "{tmp}/a"], ["no model card"]),
    ],
)
def test_bad_train_inputs_are_one_line_errors(capsys, bad_train_inputs, argv, fragments):
    for key, value in bad_train_inputs.items():
        argv = [a.replace("{" + key + "}", str(value)) for a in argv]
    code, _, err = run(capsys, *argv)
    _one_line_error(code, err, *fragments)


def _damage_model(folder, case):
    if case == "truncated model.ubj":
        f = folder / "model.ubj"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif case == "card without its model file":
        (folder / "model.ubj").unlink()
    elif case == "garbage card":
        (folder / "model_card.json").write_text('{"model": {"kind": "xgboost", "file": "model.ubj"}, "feat')
    elif case == "no card":
        (folder / "model_card.json").unlink()
    elif case == "png as MODEL":
        return folder / "pr_curves.png"
    return folder


@pytest.mark.parametrize(("case", "fragments"), [
    ("truncated model.ubj", ["model.ubj is truncated or damaged", "re-run meta-spliceai train"]),
    ("card without its model file", ["model.ubj named by the model card is missing", "incomplete",
                                     "re-run meta-spliceai train"]),
    ("garbage card", ["model_card.json is not valid JSON", "line 1", "re-run train"]),
    ("no card", ["is incomplete: it has no model_card.json", "re-run meta-spliceai train"]),
    ("png as MODEL", ["pr_curves.png is not a model card", "--out-dir of meta-spliceai train"]),
])
def test_apply_with_a_damaged_model_is_one_line(capsys, tmp_path, chr22, chr22_model, keras_store, case, fragments):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(chr22_model[0], folder)
    model = _damage_model(folder, case)
    code, _, err = run(capsys, "apply", model, "--predictions", keras_store, *_ref(chr22), "--genes", "TANGO2",
                       "--out", tmp_path / "a")
    _one_line_error(code, err, *fragments)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize(("hidden", "argv", "fragments"), [
    ("xgboost", ["demo", "{tmp}/demo"], ["demo (it trains an xgboost meta-model) needs xgboost"]),
    ("sklearn", ["demo", "{tmp}/demo"], ["needs scikit-learn"]),
    ("xgboost", ["train", "{build}", "--out-dir", "{tmp}/m"], ["train --model xgboost needs xgboost"]),
    ("lightgbm", ["train", "{build}", "--out-dir", "{tmp}/m", "--model", "lightgbm"], ["needs lightgbm"]),
    ("sklearn", ["train", "{build}", "--out-dir", "{tmp}/m", "--model", "sgd_logistic"], ["needs scikit-learn"]),
    ("xgboost", ["apply", "{model}", "--predictions", "{store}", "--out", "{tmp}/a"], ["a xgboost meta-model needs"]),
    ("ray", ["build", "-o", "{tmp}/b", "--predictions", "{store}", "--executor", "ray"], ["needs Ray"]),
])
def test_a_missing_extra_is_named_before_any_work(capsys, tmp_path, monkeypatch, chr22_build, chr22_model,
                                                  keras_store, hidden, argv, fragments):
    """A core-only install (`pip install .`): the command names the extra to install, in one line, before it
    creates anything (the modules are hidden the way a missing package is: `import xgboost` fails)."""
    import sys
    import time

    monkeypatch.setitem(sys.modules, hidden, None)
    subs = {"{tmp}": tmp_path, "{build}": chr22_build, "{model}": chr22_model[0], "{store}": keras_store}
    args = []
    for a in argv:
        for k, v in subs.items():
            a = a.replace(k, str(v))
        args.append(a)
    t = time.perf_counter()
    code, _, err = run(capsys, *args)
    extra = "[ray]" if hidden == "ray" else "[train]"
    _one_line_error(code, err, *fragments, f"pip install 'meta-spliceai{extra}'")
    assert time.perf_counter() - t < 10 and not list(tmp_path.iterdir())  # nothing made, no minute of work first


@pytest.mark.parametrize("cmd,words", [("patch", "gene-level columns"), ("dedup", "duplicate rows"),
                                       ("validate", "Exit 0 when every check passes"),
                                       ("summary", "self-contained HTML"), ("merge", "Merge the masters")])
def test_dataset_commands_say_what_they_do(capsys, cmd, words):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert words in " ".join(capsys.readouterr().out.split())


def test_apply_evaluate_prints_the_comparison_and_a_verdict(capsys, tmp_path, chr22, chr22_model, keras_store):
    out, res = chr22_model
    test = pl.read_csv(out / "split.tsv", separator="\t").filter(pl.col("part") == "test")["gene_id"].to_list()
    code, stdout, _ = run(capsys, "apply", out, "--predictions", keras_store, "--out", tmp_path / "o",
                          "--genes", *test, "--evaluate", "--bootstrap", "0", *_ref(chr22))
    assert code == 0
    assert f"meta-model vs base model on {len(test)} genes" in stdout
    lines = stdout.splitlines()
    for t in ("donor", "acceptor"):
        for m, key, at in (("base", "at_0.5", "fixed"), ("base", "at_valid", "validated"), ("meta", "at_valid", "validated")):
            f1 = res.metrics["site_types"][t]["methods"][m][key]["f1"]
            assert any(re.search(rf"\b{t}\b.*\b{m}\b.*\({at}\).*{f1:.3f}", ln) for ln in lines), (t, m, at)
    verdict = [ln for ln in lines if ln.startswith("verdict: ")]
    assert len(verdict) == 1 and f"on these {len(test)} genes" in verdict[0]
    assert "comparison" not in stdout.split("meta-model vs base model")[0]  # the dict itself is not printed


class _Called(Exception):
    """Raised by a stand-in library function: the keyword arguments the command passed it."""


#: every command that writes a folder: (library function, its folder keyword, arguments it needs, old spellings)
FOLDER_COMMANDS = {
    "predict": ("meta_spliceai.basemodel.predict.predict", "out", [], ["--out"]),
    "build": ("meta_spliceai.dataset.builder.build", "output_dir", [], []),
    "train": ("meta_spliceai.metamodel.training.train", "out_dir", ["DS"], ["--out-dir"]),
    "apply": ("meta_spliceai.metamodel.correction.apply", "out", ["M", "--predictions", "S"], ["--out"]),
    "demo": ("meta_spliceai.demo.demo", "output_dir", [], [None]),
    "patch": ("meta_spliceai.maintenance.patching.patch", "dst", ["DS"], ["--dst"]),
    "dedup": ("meta_spliceai.maintenance.dedup.dedup", "dst", ["DS"], ["--dst"]),
    "merge": ("meta_spliceai.maintenance.merging.merge", "out", ["A", "B"], [None]),
    "tracks": ("meta_spliceai.basemodel.tracks.tracks", "out", ["S", "--gtf", "G"], ["--out"]),
}


@pytest.mark.parametrize("cmd", sorted(FOLDER_COMMANDS))
def test_every_folder_output_takes_o_and_its_old_spelling(cmd, monkeypatch):
    """-o DIR, --output-dir DIR and the command's earlier spelling (an option, or the positional folder)
    reach the library as the same folder; the other arguments stay where they were."""
    import importlib
    from pathlib import Path

    target, kw, needed, old = FOLDER_COMMANDS[cmd]
    module, name = target.rsplit(".", 1)
    seen: list[dict] = []

    def stand_in(**kwargs):
        seen.append(kwargs)
        raise _Called

    monkeypatch.setattr(importlib.import_module(module), name, stand_in)
    spellings = [["-o", "D", *needed], [*needed, "--output-dir", "D"]]
    spellings += [[*needed, o, "D"] if o else ["D", *needed] for o in old]
    for argv in spellings:
        with pytest.raises(_Called):
            main([cmd, *argv])
    assert len(seen) == len(spellings)
    assert all(Path(k[kw]) == Path("D") for k in seen), [k[kw] for k in seen]
    if cmd == "merge":
        assert all([Path(d) for d in k["datasets"]] == [Path("A"), Path("B")] for k in seen)


def test_the_output_folder_vocabulary_is_complete():
    """Every subcommand with an output folder (dest output_dir) is in FOLDER_COMMANDS and spells it -o/--output-dir;
    giving two folders, or none, to a command that had a positional one is a one-line error."""
    _, sub = _subparsers()
    with_folder = {}
    for name, p in sub.choices.items():
        flags = [a.option_strings for a in p._actions if a.dest == "output_dir"]
        if flags:
            with_folder[name] = flags[0]
    assert set(with_folder) == set(FOLDER_COMMANDS)
    for name, flags in with_folder.items():
        assert flags[:2] == ["-o", "--output-dir"] and set(flags[2:]) == {o for o in FOLDER_COMMANDS[name][3] if o}


def test_two_or_no_output_folders_are_one_line_errors(capsys):
    code, _, err = run(capsys, "demo", "A", "-o", "B")
    assert code == 2 and "two output folders" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "demo")
    assert code == 2 and "-o DIR" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "merge", "OUT")
    assert code == 2 and "name the dataset folders" in err and len(err.strip().splitlines()) == 1


def test_gene_ids_to_stdout_and_a_gene_list_from_stdin(capsys, tmp_path, chr22, keras_store):
    """``gene-ids --out -`` writes the very TSV ``--out FILE`` writes to stdout (its note to stderr); a
    build takes ``--gene-ids-file -`` from stdin, read in a real pipe by a child process."""
    import os
    import subprocess
    import sys

    args = ["gene-ids", "--eval-dir", keras_store, "--gtf", chr22 / "annotation.gtf", "--n-genes", "4"]
    assert run(capsys, *args, "--out", tmp_path / "ids.tsv")[0] == 0
    code, out, err = run(capsys, *args, "--out", "-")
    assert code == 0 and out == (tmp_path / "ids.tsv").read_text() and "4 genes written to -" in err
    assert not (tmp_path / "-").exists()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(_SRC), os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "meta_spliceai", "build", *map(str, _ref(chr22)), "-o", str(tmp_path / "b"),
           "--predictions", str(keras_store), "--kmer-sizes", "0", "--gene-ids-file", "-"]
    r = subprocess.run(cmd, input="gene_name\nDGCR8\nCCDC188\n", capture_output=True, text=True, env=env, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    from meta_spliceai.reference.annotation import parse_annotation

    cfg = json.loads((tmp_path / "b" / "build.json").read_text())["config"]
    genes = parse_annotation(chr22 / "annotation.gtf").genes.filter(pl.col("gene_id").is_in(cfg["gene_ids"]))
    assert cfg["subset_policy"] == "custom" and sorted(genes["gene_name"]) == ["CCDC188", "DGCR8"]


_SRC = __import__("pathlib").Path(__file__).resolve().parents[1] / "src"
