"""What ``variants`` says: every unscored record counted under its reason, errors in its own flags' names,
malformed records described by line and field, htslib's own lines kept off the terminal, progress within a chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from meta_spliceai.cli.main import main
from meta_spliceai.errors import InputError
from meta_spliceai.variants.vcf import variants

DATA = Path(__file__).resolve().parent / "data" / "vcf"
CHR2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "grch37_chr2_160-162Mb"
TABLE = str(DATA / "chr2_table.txt")
HEAD = ("##fileformat=VCFv4.2\n##contig=<ID=chr2,length=162100000>\n"
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="depth">\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n')


def _vcf(path: Path, rows: list[str]) -> Path:
    path.write_text(HEAD + "".join(r + "\n" for r in rows))
    return path


def test_every_unscored_record_is_counted_under_its_reason(tmp_path, capsys):
    """chr5 is in neither FASTA nor table, chr2:170 Mb is past the bundle's contig, chr2:100 is in no gene, a
    symbolic-only ALT inside a gene has nothing to score: each counted, records = scored + skipped."""
    src = _vcf(tmp_path / "in.vcf", [
        "chr2\t100\t.\tN\tA\t.\t.\t.",
        "chr2\t160604214\t.\tT\tA\t.\t.\t.",
        "chr2\t160605379\t.\tA\t<DEL>\t.\t.\t.",
        "chr2\t160605379\t.\tA\t.\t.\t.\t.",
        "chr2\t170000000\t.\tA\tC\t.\t.\t.",
        "chr5\t1000\t.\tA\tC\t.\t.\t.",
    ])
    code = main(["variants", "-I", str(src), "-O", str(tmp_path / "o.vcf"), "-R", str(CHR2 / "genome.fa.gz"), "-A", TABLE])
    out = capsys.readouterr().out
    assert code == 0
    assert "6 records, 1 scored" in out and "5 skipped" in out
    for reason in ("not in any gene", "no scorable allele", "bad input", "past contig end", "contig not in FASTA"):
        assert f"skipped ({reason}: " in out and out.split(f"skipped ({reason}: ")[1].split("\n")[0].endswith(": 1"), reason


def test_errors_name_the_variants_flags(tmp_path):
    src = _vcf(tmp_path / "in.vcf", ["chr2\t160604214\t.\tT\tA\t.\t.\t."])
    with pytest.raises(InputError, match=r"with -R\b") as err:
        variants(input=src, output=tmp_path / "o.vcf", reference=tmp_path / "nope.fa", annotation=TABLE, progress=False)
    assert "--fasta" not in str(err.value)
    with pytest.raises(InputError, match=r"-A") as err:
        variants(input=src, output=tmp_path / "o.vcf", reference=CHR2 / "genome.fa.gz", annotation=str(tmp_path / "x.gtf"),
                 progress=False)
    assert "--gtf" not in str(err.value)


@pytest.mark.parametrize(("row", "says"), [
    ("chr2\tnotanumber\t.\tA\tC\t.\t.\t.", "POS 'notanumber' is not a positive integer"),
    ("chr2 160604214 . T A . . .", "1 tab-separated field(s), a VCF record needs 8"),
    ("chr2\t160604214\t.\tT\tA\t.\t.", "7 tab-separated field(s), a VCF record needs 8"),
])
def test_a_malformed_record_says_its_line_and_field_and_htslib_stays_quiet(tmp_path, capfd, row, says):
    src = _vcf(tmp_path / "bad.vcf", ["chr2\t160604214\t.\tT\tA\t.\t.\t.", row])
    code = main(["variants", "-I", str(src), "-O", str(tmp_path / "o.vcf"), "-R", str(CHR2 / "genome.fa.gz"), "-A", TABLE])
    err = capfd.readouterr().err
    assert code == 2 and "Traceback" not in err and "[E::" not in err and "[W::" not in err, err
    last = err.strip().splitlines()[-1]
    assert "bad.vcf, line 6 (record 2)" in last and says in last and "truncated" not in last, last


def test_htslib_warnings_do_not_reach_the_terminal(tmp_path, capfd):
    """A record on a contig the header does not declare: htslib warns on stderr; our run does not show it."""
    src = tmp_path / "nocontig.vcf"
    src.write_text(HEAD.replace("##contig=<ID=chr2,length=162100000>\n", "") + "chr2\t100\t.\tN\tA\t.\t.\t.\n")
    code = main(["variants", "-I", str(src), "-O", str(tmp_path / "o.vcf"), "-R", str(CHR2 / "genome.fa.gz"), "-A", TABLE])
    err = capfd.readouterr().err
    assert code == 0 and "[W::" not in err and "[E::" not in err, err


def test_progress_moves_within_a_chunk(tmp_path, monkeypatch):
    """The display is updated while a chunk is scored (per gene), not only when a whole chunk is done."""
    import meta_spliceai.variants.vcf as mod

    seen: list[float] = []
    real = mod.score_records

    def spy(records, *a, progress=None, **k):
        assert progress is not None
        return real(records, *a, progress=lambda f: (seen.append(f), progress(f)), **k)

    monkeypatch.setattr(mod, "score_records", spy)
    rows = [x for x in (DATA / "chr2.vcf").read_text().splitlines() if not x.startswith("#")][:50:10]
    variants(input=_vcf(tmp_path / "in.vcf", rows), output=tmp_path / "o.vcf", reference=CHR2 / "genome.fa.gz",
             annotation=TABLE, progress=True)
    assert len(seen) >= 2 and 0 < seen[0] < 1 and seen[-1] == 1.0, seen
