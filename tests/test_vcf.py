"""``variants``: the same VCF as the real SpliceAI 1.3.1 CLI (fixtures it wrote: tests/data/vcf/), chunked,
resumed, bgzipped and parallel runs equal to one serial run, and SpliceAI's skip rules."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pysam
import pytest

from meta_spliceai.cli.main import main
from meta_spliceai.errors import InputError
from meta_spliceai.variants.vcf import variants

DATA = Path(__file__).resolve().parent / "data" / "vcf"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BUNDLES = {"chr22": (SHARED / "grch37_chr22_20-21Mb", "grch37"), "chr2": (SHARED / "grch37_chr2_160-162Mb", str(DATA / "chr2_table.txt"))}
EXPECTED = sorted(DATA.glob("*.expected.vcf"))


def _entries(path: Path) -> list[tuple[str, str]]:
    out = []
    for rec in pysam.VariantFile(str(path)):
        out.append((f"{rec.chrom}:{rec.pos} {rec.ref}>{','.join(rec.alts or ['.'])}",
                    ",".join(rec.info["SpliceAI"]) if "SpliceAI" in rec.info else ""))
    return out


#: runs (bundle, -D, -M) whose records are thinned to every k-th (each record is scored on its own, so any
#: subset of SpliceAI's output is still its output): the widest window costs the most, and 1 in 3 keeps every kind
EVERY = {("chr22", 500, 1): 3, ("chr22", 50, 1): 2}


def _thin(text: str, every: int) -> str:
    """A VCF's header lines and every ``every``-th record (records counted from 0)."""
    lines = text.splitlines(keepends=True)
    return "".join([x for x in lines if x.startswith("#")] + [x for x in lines if not x.startswith("#")][::every])


def _subset(src: Path, dst: Path, every: int) -> Path:
    """``src`` thinned to every ``every``-th record, written to ``dst``."""
    dst.write_text(_thin(src.read_text(), every))
    return dst


def _run(name: str, out: Path, d: int, m: int, source: Path | None = None, **kw) -> Path:
    bundle, ann = BUNDLES[name]
    variants(input=source or DATA / f"{name}.vcf", output=out, reference=bundle / "genome.fa.gz", annotation=ann,
             distance=d, mask=m, progress=False, **kw)
    return out


@pytest.fixture(scope="module")
def chr22_default(tmp_path_factory):
    """The chr22 VCF at SpliceAI's defaults (-D 50 -M 0): its output and summary, shared by two tests."""
    bundle, ann = BUNDLES["chr22"]
    out = tmp_path_factory.mktemp("chr22") / "out.vcf"
    summary = variants(input=DATA / "chr22.vcf", output=out, reference=bundle / "genome.fa.gz", annotation=ann,
                       chunk_records=37, progress=False)
    return out, summary


@pytest.fixture(scope="module")
def chr2_default(tmp_path_factory) -> str:
    """The chr2 VCF's output at the defaults, one serial run: what the other ways of running it must equal."""
    return _run("chr2", tmp_path_factory.mktemp("chr2") / "out.vcf", 50, 0).read_text()


@pytest.mark.slow
@pytest.mark.parametrize("expected", EXPECTED, ids=[p.name for p in EXPECTED])
def test_same_info_as_the_spliceai_cli(expected, tmp_path, request):
    name, d, m = re.match(r"(\w+)\.D(\d+)\.M(\d)\.expected\.vcf", expected.name).groups()
    every = EVERY.get((name, int(d), int(m)), 1)
    source = _subset(DATA / f"{name}.vcf", tmp_path / "in.vcf", every) if every > 1 else None
    if (name, d, m) == ("chr22", "50", "0"):
        got = request.getfixturevalue("chr22_default")[0]
    elif (name, d, m) == ("chr2", "50", "0"):
        got = tmp_path / "out.vcf"
        got.write_text(request.getfixturevalue("chr2_default"))
    else:
        got = _run(name, tmp_path / "out.vcf", int(d), int(m), source=source, chunk_records=37)
    want, have = _entries(expected)[::every], _entries(got)
    assert len(want) >= 50, len(want)
    assert [k for k, _ in want] == [k for k, _ in have]  # every record, in order
    fields = off = 0
    bad = []
    for (key, a), (_, b) in zip(want, have):
        ea, eb = a.split(","), b.split(",")
        assert len(ea) == len(eb), (key, a, b)
        for x, y in zip(ea, eb):
            fx, fy = x.split("|"), y.split("|")
            assert fx[:2] == fy[:2], (key, x, y)
            for u, v in zip(fx[2:], fy[2:]):
                fields += 1
                if u == v:
                    continue
                if "." not in (u, v) and u.count(".") == 1 and abs(float(u) - float(v)) <= 0.01 + 1e-9:
                    off += 1  # a float summation order flipping a rounding
                    continue
                bad.append((key, x, y))
    assert not bad, bad[:5]
    assert off <= max(1, fields // 1000), off
    # the header: SpliceAI's INFO line verbatim
    head = [line for line in expected.read_text().splitlines() if line.startswith("##INFO=<ID=SpliceAI")]
    assert head and head == [line for line in got.read_text().splitlines() if line.startswith("##INFO=<ID=SpliceAI")]


@pytest.mark.slow
def test_chunks_resume_bgzip_and_workers_equal_one_serial_run(tmp_path, chr2_default):
    src, want = _subset(DATA / "chr2.vcf", tmp_path / "in.vcf", 2), _thin(chr2_default, 2)  # 25 records
    gz = _run("chr2", tmp_path / "b.vcf.gz", 50, 0, source=src, chunk_records=4)
    with gzip.open(gz, "rt") as fh:
        assert fh.read() == want
    assert (tmp_path / "b.vcf.gz.tbi").is_file()
    assert pysam.TabixFile(str(gz)).fetch("chr2", 160_000_000, 162_000_000)  # the index works
    # a run killed after some chunks: the finished ones are kept and reused, the result is the same
    parts = tmp_path / ".c.vcf.parts"
    _run("chr2", tmp_path / "c.vcf", 50, 0, source=src, chunk_records=4, workers=2)
    assert (tmp_path / "c.vcf").read_text() == want and not parts.exists()


@pytest.mark.slow
def test_cone_engine_off_gives_the_same_file(tmp_path, chr2_default):
    """The lever off (every alternate window a full pass, reference shared per gene or not): same bytes.
    Every 4th record (13, several to a gene): the full passes are the slow path the cone engine replaces."""
    src, cone = _subset(DATA / "chr2.vcf", tmp_path / "in.vcf", 4), _thin(chr2_default, 4)
    assert _run("chr2", tmp_path / "win.vcf", 50, 0, source=src, cone=False).read_text() == cone
    assert _run("chr2", tmp_path / "own.vcf", 50, 0, source=src, cone=False, share_reference=False).read_text() == cone


@pytest.mark.slow
def test_standard_input_to_standard_output_as_spliceai(tmp_path, chr2_default):
    """``-I``/``-O`` default to stdin/stdout as SpliceAI's do (``spliceai -R … -A … < in.vcf > out.vcf``): the
    same bytes as a file run, the summary on stderr; a symlinked output stays a symlink."""
    import subprocess
    import sys

    bundle, ann = BUNDLES["chr2"]
    src, want = _subset(DATA / "chr2.vcf", tmp_path / "in.vcf", 3), _thin(chr2_default, 3)  # 17 records
    with open(src, "rb") as fh:
        done = subprocess.run([sys.executable, "-m", "meta_spliceai", "variants", "-R", str(bundle / "genome.fa.gz"),
                               "-A", ann], stdin=fh, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout.decode() == want
    assert "records" in done.stderr.decode()
    target = tmp_path / "elsewhere.vcf"
    target.write_text("old\n")
    (tmp_path / "link.vcf").symlink_to(target)
    _run("chr2", tmp_path / "link.vcf", 50, 0, source=src)
    assert (tmp_path / "link.vcf").is_symlink() and target.read_text() == want


def test_resume_reuses_finished_chunks(tmp_path, monkeypatch, chr2_default):
    import meta_spliceai.variants.vcf as mod

    calls = []
    real = mod.score_records

    def counting(records, *a, **k):
        calls.append(len(records))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while scoring the second chunk
        return real(records, *a, **k)

    monkeypatch.setattr(mod, "score_records", counting)
    with pytest.raises(KeyboardInterrupt):
        _run("chr2", tmp_path / "r.vcf", 50, 0, chunk_records=20)
    assert len(list((tmp_path / ".r.vcf.parts").glob("chunk_*.vcf"))) == 1
    calls.clear()
    monkeypatch.setattr(mod, "score_records", real)
    bundle, ann = BUNDLES["chr2"]
    summary = variants(input=DATA / "chr2.vcf", output=tmp_path / "r.vcf", reference=bundle / "genome.fa.gz",
                       annotation=ann, chunk_records=20, progress=False)
    assert summary.chunks_resumed == 1
    assert (tmp_path / "r.vcf").read_text() == chr2_default


@pytest.mark.slow
def test_skip_rules_are_counted(chr22_default):
    out, s = chr22_default
    assert s.skipped.get("ref issue", 0) >= 2  # a mismatching and a lowercase REF
    assert s.skipped.get("ref too long", 0) == 1 and s.skipped.get("bad input", 0) == 1
    notes = {k: v for k, v in _entries(out)}
    assert any(v.endswith("|.|.|.|.|.|.|.|.") for v in notes.values())  # REF and ALT both longer than 1
    multi = [v for k, v in notes.items() if "," in k.split(">")[1] and "*" not in k]
    assert multi and all(v.count(",") >= 1 for v in multi)  # one entry per allele (and gene)


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    bundle, _ = BUNDLES["chr22"]
    with pytest.raises(InputError, match="-D must be"):
        variants(input=DATA / "chr22.vcf", output=tmp_path / "o.vcf", reference=bundle / "genome.fa.gz",
                 annotation="grch37", distance=5000)
    bad = tmp_path / "bad.vcf"
    bad.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n22\tnotanumber\t.\tA\tC\t.\t.\t.\n")
    code = main(["variants", "-I", str(bad), "-O", str(tmp_path / "o.vcf"), "-R", str(bundle / "genome.fa.gz"), "-A", "grch37"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err and "bad.vcf" in last and "record 1" in last


def _bgzip(text: str, path: Path) -> Path:
    """``text`` (a VCF) bgzipped and tabix-indexed with pysam, as a precomputed file is."""
    path.write_text(text)
    return Path(pysam.tabix_index(str(path), preset="vcf", force=True))


@pytest.mark.slow
def test_precomputed_supplies_the_records_it_holds_and_changes_no_byte(tmp_path, chr2_default, monkeypatch):
    """A precomputed file made from a real run (our output VCF of the fixture, every 4th record) supplies those
    records of an input of every 2nd: only the others and the file's sample are computed; same bytes."""
    import meta_spliceai.variants.precomputed as pre_mod
    import meta_spliceai.variants.vcf as mod

    pre = _bgzip(_thin(chr2_default, 4), tmp_path / "pre.vcf")
    src = _subset(DATA / "chr2.vcf", tmp_path / "in.vcf", 2)  # 25 records, 13 of them in the file
    monkeypatch.setattr(pre_mod, "sample_size", lambda n: min(n, 4))
    scored = []
    real = mod.score_records
    monkeypatch.setattr(mod, "score_records", lambda recs, *a, **k: (scored.append(len(recs)), real(recs, *a, **k))[1])
    bundle, ann = BUNDLES["chr2"]
    s = variants(input=src, output=tmp_path / "out.vcf", reference=bundle / "genome.fa.gz", annotation=ann,
                 precomputed=[pre], progress=False)
    assert (tmp_path / "out.vcf").read_text() == _thin(chr2_default, 2)
    held = sum("SpliceAI=" in x for x in _thin(chr2_default, 4).splitlines() if not x.startswith("#"))
    assert held >= 10 and s.sources == {"computed": 25 - held, str(pre): held} and s.verified == 4
    assert sum(scored) == 25 - held + 4  # the sample, then the records the file lacks (or holds without an entry)


def _nameless_gtf(path: Path) -> Path:
    """The chr2 bundle's GTF without gene names: another annotation, whose genes are named by their Ensembl IDs."""
    text = (BUNDLES["chr2"][0] / "annotation.gtf").read_text()
    path.write_text(re.sub(r' gene_name "[^"]*";', "", text))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("made_with", "cause"), [
    ({"annotation": "nameless"}, "another annotation"),
    ({"distance": 200}, "a larger -D"),
    ({"mask": 1}, "the other masking"),
], ids=["annotation", "D", "M"])
def test_precomputed_made_otherwise_is_refused(tmp_path, made_with, cause):
    """Copies made with another annotation, another -D and the other -M: the sample check refuses each, naming
    the cause, and writes nothing."""
    src = _subset(DATA / "chr2.vcf", tmp_path / "in.vcf", 10)  # 5 records
    kw = {**made_with}
    if kw.get("annotation") == "nameless":
        kw["annotation"] = str(_nameless_gtf(tmp_path / "nameless.gtf"))
    bundle, ann = BUNDLES["chr2"]
    other = tmp_path / "other.vcf.gz"
    variants(input=src, output=other, reference=bundle / "genome.fa.gz", **{"annotation": ann, **kw}, progress=False)
    with pytest.raises(InputError, match=rf"--precomputed .*other.vcf.gz: a sampled record differs .*likely "
                                         rf"cause: the file was made with {cause}"):
        variants(input=src, output=tmp_path / "out.vcf", reference=bundle / "genome.fa.gz", annotation=ann,
                 precomputed=[other], progress=False)
    assert not (tmp_path / "out.vcf").exists()


@pytest.mark.slow
def test_raw_scores_are_the_tracks_behind_every_delta(tmp_path, chr2_default):
    """``--raw-scores``: per scored (record, allele, gene) its ±D window of reference and alternate scores at genome
    positions pos-D..pos+D; the SpliceAI entries (checked against the SpliceAI CLI elsewhere) are these tracks'
    deltas, field for field; the VCF is the same bytes as without the option."""
    import numpy as np
    import polars as pl

    src = _subset(DATA / "chr2.vcf", tmp_path / "in.vcf", 5)  # 10 records: SNVs, insertions, deletions
    raw = tmp_path / "raw.parquet"
    _run("chr2", tmp_path / "out.vcf", 50, 0, source=src, chunk_records=4, raw_scores=raw)
    assert (tmp_path / "out.vcf").read_text() == _thin(chr2_default, 5)
    df = pl.read_parquet(raw)
    assert df.columns == ["record", "chrom", "pos", "ref", "alt", "gene", "position", "ref_acceptor", "ref_donor",
                          "alt_acceptor", "alt_donor"]
    infos = [rec.info.get("SpliceAI") for rec in pysam.VariantFile(str(tmp_path / "out.vcf"))]
    entries = [(k + 1, e) for k, v in enumerate(infos) for e in (v or ())]
    groups = df.group_by(["record", "alt", "gene"], maintain_order=True)
    assert groups.len().height == len(entries) >= 10
    for (k, entry), ((rec, alt, gene), g) in zip(entries, groups):
        f = entry.split("|")
        assert (rec, alt, gene) == (k, f[0], f[1])
        assert g["position"].to_list() == list(range(g["pos"][0] - 50, g["pos"][0] + 51))
        ra, rd, aa, ad = (g[c].to_numpy() for c in ("ref_acceptor", "ref_donor", "alt_acceptor", "alt_donor"))
        deltas = [aa - ra, ra - aa, ad - rd, rd - ad]
        assert [f"{d.max():.2f}" for d in deltas] == f[2:6], entry
        assert [str(int(np.argmax(d)) - 50) for d in deltas] == f[6:10], entry


@pytest.mark.slow
def test_raw_scores_under_model_hold_the_corrected_tracks_beside(tmp_path, chr22, chr22_model, keras_store):
    """With ``--model``: the corrected reference and alternate tracks beside the base ones, and each MetaSpliceAI
    entry is their deltas (a few records of chr22 genes the store holds)."""
    import polars as pl

    rows = [x for x in (DATA / "chr22.vcf").read_text().splitlines() if not x.startswith("#") and "NOTE=site" in x][:3]
    head = [x for x in (DATA / "chr22.vcf").read_text().splitlines() if x.startswith("#")]
    src = tmp_path / "in.vcf"
    src.write_text("\n".join(head + rows) + "\n")
    raw = tmp_path / "raw.parquet"
    variants(input=src, output=tmp_path / "out.vcf", reference=chr22 / "genome.fa.gz", annotation=str(chr22 / "annotation.gtf"),
             model=chr22_model[0], predictions=keras_store, raw_scores=raw, progress=False)
    df = pl.read_parquet(raw)
    meta = [f"meta_{c}" for c in ("ref_acceptor", "ref_donor", "alt_acceptor", "alt_donor")]
    assert df.columns[-4:] == meta and df.height >= 101 and df.select(meta).null_count().sum_horizontal().item() == 0
    infos = [rec.info.get("MetaSpliceAI") for rec in pysam.VariantFile(str(tmp_path / "out.vcf"))]
    entries = [e for v in infos for e in (v or ())]
    groups = list(df.group_by(["record", "alt", "gene"], maintain_order=True))
    assert len(groups) == len(entries) >= 1
    for entry, (_, g) in zip(entries, groups):
        ra, rd, aa, ad = (g[c].to_numpy() for c in meta)
        assert [f"{d.max():.2f}" for d in (aa - ra, ra - aa, ad - rd, rd - ad)] == entry.split("|")[2:6], entry
