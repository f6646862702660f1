"""Genome-browser tracks (bigWig, bedGraph) of prediction stores, on real SpliceAI predictions of chr22 genes
and on small synthetic references for the edge cases (contig ends, overlaps, deltas, bad input)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pyBigWig
import pytest
from conftest import write_store

import meta_spliceai as ms
from meta_spliceai.basemodel.store import PredictionStore
from meta_spliceai.basemodel.tracks import TRACKS, tracks
from meta_spliceai.cli.main import main
from meta_spliceai.errors import InputError

REAL = {"GGTLC3": "-", "TMEM191B": "+"}  # two short genes, one on each strand
FILES = sorted(f"{stem}.bw" for stem in TRACKS.values())


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, chr22) -> Path:
    """GGTLC3 (-) and TMEM191B (+) predicted with the real SpliceAI weights (CPU, float32)."""
    out = tmp_path_factory.mktemp("tracks") / "preds"
    ms.predict(fasta=chr22 / "genome.fa.gz", gtf=chr22 / "annotation.gtf", out=out, genes=list(REAL), device="cpu",
               progress=False)
    return out


def _values(path: Path, chrom: str, start: int, end: int) -> np.ndarray:
    """bigWig values of 1-based positions start..end (NaN where nothing is written)."""
    bw = pyBigWig.open(str(path))
    try:
        return np.asarray(bw.values(chrom, start - 1, end, numpy=True), dtype=np.float32)
    finally:
        bw.close()


def _genes(ann: Path) -> dict[str, dict]:
    return {g["gene_id"]: g for g in ms.load_annotation(ann).genes.iter_rows(named=True)}


def test_real_store_values_read_back_at_genomic_positions(real_store, chr22, tmp_path):
    res = tracks(store=real_store, gtf=chr22 / "annotation.gtf", fasta=chr22 / "genome.fa.gz", out=tmp_path / "t",
                 progress=False)
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == FILES  # no temp or lock files left
    assert res["genes"] == 2 and res["dropped_nt"] == 0
    bw = pyBigWig.open(str(tmp_path / "t" / "donor.plus.bw"))
    assert bw.chroms() == {"22": 21_000_000}  # the FASTA's contig and size
    bw.close()
    store, genes = PredictionStore(real_store), _genes(chr22 / "annotation.gtf")
    for gid, strand in REAL.items():
        g, probs = genes[gid], store.read(gid)
        assert g["strand"] == strand and probs[:, 2].max() > 0.5  # real predictions: a confident donor
        other = "minus" if strand == "+" else "plus"
        for col, score in ((1, "acceptor"), (2, "donor")):
            got = _values(tmp_path / "t" / f"{score}.{'plus' if strand == '+' else 'minus'}.bw", "22", g["start"], g["end"])
            want = probs[:, col] if strand == "+" else probs[::-1, col]  # '-': position 0 is the gene END
            np.testing.assert_array_equal(got, want)
            assert np.isnan(_values(tmp_path / "t" / f"{score}.{other}.bw", "22", g["start"], g["end"])).all()
        # the site the model is surest of, by hand
        i = int(probs[:, 2].argmax())
        pos = g["start"] + i if strand == "+" else g["end"] - i
        assert _values(tmp_path / "t" / f"donor.{'plus' if strand == '+' else 'minus'}.bw", "22", pos, pos)[0] == probs[i, 2]
    assert np.isnan(_values(tmp_path / "t" / "donor.plus.bw", "22", 1, 1000)).all()  # no gene, no value


def test_scores_in_genome_on_real_store(real_store, chr22):
    df = ms.scores_in_genome(real_store, chr22 / "annotation.gtf")
    assert df.columns == ["chrom", "genomic_position", "strand", "gene_id", "acceptor", "donor"]
    assert df.schema["genomic_position"] == pl.Int64
    genes, store = _genes(chr22 / "annotation.gtf"), PredictionStore(real_store)
    assert df.height == sum(genes[g]["end"] - genes[g]["start"] + 1 for g in REAL)
    assert df["genomic_position"].is_sorted()
    for gid in REAL:
        g, probs = genes[gid], store.read(gid)
        sub = df.filter(pl.col("gene_id") == gid)
        assert sub["chrom"].unique().to_list() == ["22"] and sub["strand"].unique().to_list() == [g["strand"]]
        first = sub.filter(pl.col("genomic_position") == (g["start"] if g["strand"] == "+" else g["end"]))
        assert (first["acceptor"][0], first["donor"][0]) == (probs[0, 1], probs[0, 2])  # store position 0
        order = sub.sort("genomic_position", descending=g["strand"] == "-")
        np.testing.assert_array_equal(order["donor"].to_numpy(), probs[:, 2])
        np.testing.assert_array_equal(order["acceptor"].to_numpy(), probs[:, 1])
    one = ms.scores_in_genome(real_store, ms.load_annotation(chr22 / "annotation.gtf"), genes=["GGTLC3"],
                              contig_names={"22": "chr22"})
    assert one["gene_id"].unique().to_list() == ["GGTLC3"] and one["chrom"].unique().to_list() == ["chr22"]


def test_overlapping_real_genes_take_the_maximum(keras_store, chr22, tmp_path):
    """SCARF2, XXbac-B562F10.12 and KLHL22 overlap on '-' (the original Keras SpliceAI's outputs)."""
    tracks(store=keras_store, gtf=chr22 / "annotation.gtf", fasta=chr22 / "genome.fa.gz", out=tmp_path, progress=False)
    df = ms.scores_in_genome(keras_store, chr22 / "annotation.gtf").filter(
        pl.col("gene_id").is_in(["SCARF2", "XXbac-B562F10.12", "KLHL22"]))
    best = df.group_by("genomic_position").agg(pl.col("donor").max(), pl.col("acceptor").max(), pl.len()).sort(
        "genomic_position")
    assert best["len"].max() == 2 and (best["len"] == 2).sum() > 5000  # really overlapping
    lo, hi = int(best["genomic_position"][0]), int(best["genomic_position"][-1])
    assert best.height == hi - lo + 1
    for score in ("donor", "acceptor"):
        np.testing.assert_array_equal(_values(tmp_path / f"{score}.minus.bw", "22", lo, hi), best[score].to_numpy())
    # the base model scores the genome's sequence, so overlapping genes agree here (one value, not two);
    # genes that disagree (corrected stores, deltas) are in test_synthetic_overlaps_and_contig_end
    both = df.filter(pl.col("genomic_position").is_in(best.filter(pl.col("len") == 2)["genomic_position"].implode()))
    spread = both.group_by("genomic_position").agg(pl.col("donor").min().alias("lo"), pl.col("donor").max().alias("hi"))
    assert spread.height > 5000 and (spread["hi"] == spread["lo"]).all()


# --------------------------------------------------------------------------- synthetic references

SIZE = 1000  # the synthetic contig's length


def _reference(tmp: Path, genes: list[tuple[str, str, int, int]]) -> tuple[Path, Path]:
    """A FASTA with contig chrT (SIZE nt) and chrU, and a GTF naming it ``T`` (alias matching, as elsewhere)."""
    tmp.mkdir(parents=True, exist_ok=True)
    fa = tmp / "genome.fa"
    rng = np.random.default_rng(1)
    seq = "".join(rng.choice(list("ACGT"), SIZE))
    fa.write_text(">chrT\n" + "\n".join(seq[i:i + 60] for i in range(0, SIZE, 60)) + "\n>chrU\nACGTACGTAC\n")
    lines = []
    for gid, strand, start, end in genes:
        attrs = f'gene_id "{gid}"; transcript_id "{gid}.1";'
        lines += [f"T\tt\tgene\t{start}\t{end}\t.\t{strand}\t.\t{attrs}", f"T\tt\ttranscript\t{start}\t{end}\t.\t{strand}\t.\t{attrs}",
                  f"T\tt\texon\t{start}\t{end}\t.\t{strand}\t.\t{attrs}"]
    gtf = tmp / "genes.gtf"
    gtf.write_text("\n".join(lines) + "\n")
    return fa, gtf


def _probs(n: int, seed: int) -> np.ndarray:
    p = np.random.default_rng(seed).dirichlet([5.0, 1.0, 1.0], size=n).astype(np.float32)
    return p


SYN = [("A", "+", 100, 199), ("B", "+", 150, 299), ("M", "-", 120, 160), ("OFF", "+", 950, 1049),
       ("OFFM", "-", 990, 1010)]


@pytest.fixture
def synthetic(tmp_path) -> tuple[Path, Path, Path, dict[str, np.ndarray]]:
    fa, gtf = _reference(tmp_path, SYN)
    arrays = {gid: _probs(end - start + 1, i) for i, (gid, _, start, end) in enumerate(SYN)}
    return fa, gtf, write_store(tmp_path / "store", arrays), arrays


def _expected(arrays: dict[str, np.ndarray], strand: str, col: int, size: int = SIZE) -> np.ndarray:
    """Per-nucleotide maximum over the genes of a strand, positions 1..size (NaN where no gene)."""
    out = np.full(size + 1, np.nan, dtype=np.float32)
    for gid, s, start, end in SYN:
        if s != strand:
            continue
        v = arrays[gid][:, col] if s == "+" else arrays[gid][::-1, col]
        for i, pos in enumerate(range(start, end + 1)):
            if pos <= size:
                out[pos] = v[i] if np.isnan(out[pos]) else max(out[pos], v[i])
    return out[1:]


def test_synthetic_overlaps_and_contig_end(synthetic, tmp_path, caplog):
    fa, gtf, store, arrays = synthetic
    with caplog.at_level(logging.WARNING):
        res = tracks(store=store, gtf=gtf, fasta=fa, out=tmp_path / "t", progress=False)
    dropped = (1049 - SIZE) + (1010 - SIZE)
    assert res["dropped_nt"] == dropped
    warned = [r.getMessage() for r in caplog.records if "past their contig" in r.getMessage()]
    assert len(warned) == 1 and f"{dropped} nucleotide(s) of 2 gene(s)" in warned[0]
    bw = pyBigWig.open(str(tmp_path / "t" / "acceptor.minus.bw"))
    assert bw.chroms() == {"chrT": SIZE, "chrU": 10}  # FASTA names (GTF says T) and sizes
    bw.close()
    for strand, name in (("+", "plus"), ("-", "minus")):
        for col, score in ((1, "acceptor"), (2, "donor")):
            got = _values(tmp_path / "t" / f"{score}.{name}.bw", "chrT", 1, SIZE)
            np.testing.assert_array_equal(got, _expected(arrays, strand, col))
    # the overlap of A and B is the maximum; OFFM's position 0 (its END, 1010) is past the contig end
    got = _values(tmp_path / "t" / "donor.plus.bw", "chrT", 150, 199)
    np.testing.assert_array_equal(got, np.maximum(arrays["A"][50:, 2], arrays["B"][:50, 2]))
    assert _values(tmp_path / "t" / "donor.minus.bw", "chrT", SIZE, SIZE)[0] == arrays["OFFM"][1010 - SIZE, 2]


def test_without_fasta_contigs_come_from_the_annotation(synthetic, tmp_path):
    _, gtf, store, arrays = synthetic
    res = tracks(store=store, gtf=gtf, out=tmp_path / "t", progress=False)
    assert res["dropped_nt"] == 0  # sized by the largest gene end: nothing is off the contig
    bw = pyBigWig.open(str(tmp_path / "t" / "donor.plus.bw"))
    assert bw.chroms() == {"T": 1049}
    bw.close()
    got = _values(tmp_path / "t" / "donor.minus.bw", "T", 990, 1010)
    np.testing.assert_array_equal(got, arrays["OFFM"][::-1, 2])


def test_delta_from(synthetic, tmp_path):
    fa, gtf, store, arrays = synthetic
    meta = {g: np.roll(a, 3, axis=0) for g, a in arrays.items()}
    write_store(tmp_path / "meta", meta)
    tracks(store=tmp_path / "meta", delta_from=store, gtf=gtf, fasta=fa, out=tmp_path / "d", progress=False)
    got = _values(tmp_path / "d" / "acceptor.minus.bw", "chrT", 120, 160)
    np.testing.assert_array_equal(got, (meta["M"][:, 1] - arrays["M"][:, 1])[::-1])
    a, b = meta["A"][50:, 2] - arrays["A"][50:, 2], meta["B"][:50, 2] - arrays["B"][:50, 2]
    np.testing.assert_array_equal(_values(tmp_path / "d" / "donor.plus.bw", "chrT", 150, 199), np.maximum(a, b))
    assert (got < 0).any() and (got > 0).any()
    # the library reader gives the same differences
    df = ms.scores_in_genome(tmp_path / "meta", gtf, delta_from=store).filter(pl.col("gene_id") == "M")
    np.testing.assert_array_equal(df["acceptor"].to_numpy(), (meta["M"][:, 1] - arrays["M"][:, 1])[::-1])
    # different genes, or one gene of another length: refused in one line
    write_store(tmp_path / "fewer", {g: a for g, a in arrays.items() if g != "B"})
    with pytest.raises(InputError, match=r"different genes \(1 only in the first: B"):
        tracks(store=store, delta_from=tmp_path / "fewer", gtf=gtf, out=tmp_path / "x", progress=False)
    write_store(tmp_path / "longer", {**arrays, "A": _probs(101, 9)})
    with pytest.raises(InputError, match="gene A has 100 positions .* but 101"):
        tracks(store=store, delta_from=tmp_path / "longer", gtf=gtf, out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_bedgraph_is_the_same_tracks_as_text(synthetic, tmp_path):
    fa, gtf, store, arrays = synthetic
    arrays["A"][10:20] = arrays["A"][10]  # a run of equal values: one interval
    write_store(store, {"A": arrays["A"]})
    tracks(store=store, gtf=gtf, fasta=fa, out=tmp_path / "t", bedgraph=True, progress=False)
    for stem in TRACKS.values():
        bg = pl.read_csv(tmp_path / "t" / f"{stem}.bedGraph", separator="\t", has_header=False,
                         schema={"chrom": pl.String, "start": pl.Int64, "end": pl.Int64, "value": pl.Float32})
        assert bg.equals(bg.sort("chrom", "start")) and (bg["start"] < bg["end"]).all()
        assert (bg["start"].shift(-1) >= bg["end"]).fill_null(True).all()  # no overlapping intervals
        dense = np.full(SIZE, np.nan, dtype=np.float32)
        for _, s, e, v in bg.iter_rows():
            dense[s:e] = v
        np.testing.assert_array_equal(dense, _values(tmp_path / "t" / f"{stem}.bw", "chrT", 1, SIZE))  # exact
    plus = pl.read_csv(tmp_path / "t" / "acceptor.plus.bedGraph", separator="\t", has_header=False,
                       new_columns=["chrom", "start", "end", "value"])
    assert plus.filter(pl.col("start") == 109)["end"].to_list() == [119]  # positions 110..119 merged


def test_apply_folder_and_existing_outputs_replaced(synthetic, tmp_path, monkeypatch):
    fa, gtf, store, arrays = synthetic
    identity = {"base_model": "spliceai+meta", "version": "xgboost", "digest": "card", "precision": "float32"}
    corrected = PredictionStore(tmp_path / "applied" / "scores", identity)  # what `apply` writes
    for g, a in arrays.items():
        corrected.write(g, a[::-1].copy())
    tracks(store=tmp_path / "applied", gtf=gtf, fasta=fa, out=tmp_path / "t", progress=False)
    np.testing.assert_array_equal(_values(tmp_path / "t" / "donor.minus.bw", "chrT", 120, 160), arrays["M"][:, 2])
    before = {p.name: p.read_bytes() for p in (tmp_path / "t").iterdir()}
    import meta_spliceai.basemodel.tracks as mod

    def boom(*a, **k):
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(mod._Writers, "write", boom)
    with pytest.raises(RuntimeError):
        tracks(store=store, gtf=gtf, fasta=fa, out=tmp_path / "t", progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "t").iterdir()} == before  # old tracks intact, no temp files


def test_bad_inputs_are_one_line_errors(synthetic, tmp_path, chr22):
    _, gtf, store, _ = synthetic
    with pytest.raises(InputError, match="prediction store not found"):
        tracks(store=tmp_path / "nope", gtf=gtf, out=tmp_path / "o", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no predictions"):
        tracks(store=tmp_path / "empty", gtf=gtf, out=tmp_path / "o", progress=False)
    with pytest.raises(InputError, match=r"1 gene\(s\) of prediction store .* are not in .*genes2.gtf: OFFM"):
        tracks(store=store, gtf=_reference(tmp_path / "two", SYN[:4])[1].rename(tmp_path / "genes2.gtf"),
               out=tmp_path / "o", progress=False)
    with pytest.raises(InputError, match=r"contigs of .* not found in .*genome.fa.gz: T; FASTA has: 22"):
        tracks(store=store, gtf=gtf, fasta=chr22 / "genome.fa.gz", out=tmp_path / "o", progress=False)
    with pytest.raises(InputError, match="gene A: prediction store .* holds 100 positions but its span"):
        ms.scores_in_genome(store, _reference(tmp_path / "wide", [("A", "+", 100, 300)])[1], genes=["A"])
    with pytest.raises(InputError, match="not in prediction store .*: ZZZ"):
        ms.scores_in_genome(store, gtf, genes=["ZZZ"])
    assert not (tmp_path / "o").exists()


def test_cli(synthetic, tmp_path, capsys):
    fa, gtf, store, arrays = synthetic
    code = main(["tracks", str(store), "--gtf", str(gtf), "--fasta", str(fa), "-o", str(tmp_path / "t"), "--bedgraph"])
    out = capsys.readouterr().out
    assert code == 0 and "5 genes" in out and f"dropped past contig ends: {49 + 10} nt" in out
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == sorted(
        FILES + [f"{s}.bedGraph" for s in TRACKS.values()])
    np.testing.assert_array_equal(_values(tmp_path / "t" / "acceptor.plus.bw", "chrT", 100, 149), arrays["A"][:50, 1])
    code = main(["tracks", str(store), "--gtf", str(gtf), "--output-dir", str(tmp_path / "u"), "--delta-from", str(store)])
    assert code == 0 and "(meta - base)" in capsys.readouterr().out
    assert (_values(tmp_path / "u" / "donor.plus.bw", "T", 100, 299) == 0).all()
    code = main(["tracks", str(tmp_path / "missing"), "--gtf", str(gtf), "--out", str(tmp_path / "v")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "prediction store not found" in err


def test_readme_and_help_forms_run_as_written(synthetic, tmp_path, monkeypatch, capsys):
    """Every ``meta-spliceai tracks …`` line of the README and of ``tracks --help`` runs as written, in a folder
    holding what they name: ``preds`` (a predict store), ``applied`` (an apply --out: ``scores/`` beside
    ``calls.parquet``, which is no store file), ``genes.gtf`` and ``genome.fa``."""
    import shlex

    import pyarrow as pa
    import pyarrow.parquet as pq

    from meta_spliceai.cli.tracks import EPILOG

    fa, gtf, store, arrays = synthetic
    work = tmp_path / "work"
    work.mkdir()
    store.rename(work / "preds")
    fa.rename(work / "genome.fa")
    gtf.rename(work / "genes.gtf")
    corrected = PredictionStore(work / "applied" / "scores", {"base_model": "spliceai+meta", "version": "xgboost",
                                                               "digest": "card", "precision": "float32"})
    for g, a in arrays.items():
        corrected.write(g, np.roll(a, 1, axis=0))
    pq.write_table(pa.table({"gene_id": ["A"], "position": [3]}), work / "applied" / "calls.parquet")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = [x.split("#")[0].strip() for x in readme.splitlines() + EPILOG.splitlines()
             if x.strip().startswith("meta-spliceai tracks ")]
    assert len(lines) >= 4, lines
    monkeypatch.chdir(work)
    for line in lines:
        assert main(shlex.split(line)[1:]) == 0, line
        assert "track:" in capsys.readouterr().out, line
