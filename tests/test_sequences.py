"""``predict --sequences``: every nucleotide of arbitrary FASTA records, exact to the ORIGINAL Keras SpliceAI
ensemble on the same N-padded input (fixtures made by tests/data/sequences/make_fixtures.py with the Keras models)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from meta_spliceai.basemodel.sequences import predict_sequences, read_fasta
from meta_spliceai.cli.main import main
from meta_spliceai.errors import InputError

DATA = Path(__file__).resolve().parent / "data" / "sequences"
OPENSPLICEAI = Path(__file__).resolve().parents[2] / "shared" / "models" / "openspliceai-mane-10000nt"


@pytest.fixture(scope="module")
def keras() -> dict[str, np.ndarray]:
    z = np.load(DATA / "keras.npz")
    return {k: z[k] for k in z.files}


@pytest.mark.slow
def test_every_nucleotide_equals_the_keras_ensemble(tmp_path, keras):
    """Three records (300 nt; 12,000 nt cut into pieces by a 5,000-nt chunk; N runs and soft-masked bases), from a
    gzipped FASTA: the table has every position 1..L of each, in file order, within 1e-4 of Keras."""
    gz = tmp_path / "seqs.fa.gz"
    gz.write_bytes(gzip.compress((DATA / "seqs.fa").read_bytes()))
    res = predict_sequences(sequences=gz, out=tmp_path / "s.parquet", chunk_size=5_000, device="cpu", progress=False)
    t = pq.read_table(tmp_path / "s.parquet")
    assert t.schema.names == ["sequence", "position", "neither", "acceptor", "donor"]
    df = pl.from_arrow(t)
    assert df["sequence"].unique(maintain_order=True).to_list() == ["short", "long", "nruns"]
    assert res["sequences"] == 3 and res["nt_scored"] == sum(len(v) for v in keras.values()) == df.height
    for name, want in keras.items():
        got = df.filter(pl.col("sequence") == name)
        assert got["position"].to_list() == list(range(1, len(want) + 1))
        np.testing.assert_allclose(got.select("neither", "acceptor", "donor").to_numpy(), want, atol=1e-4, rtol=0)
    assert keras["short"][:, 1].max() > 0.5  # the fixture holds a real site, not only near-zero scores


@pytest.mark.slow
def test_tsv_on_stdout_and_a_smaller_flank(tmp_path, keras, capsys):
    """``-o -``: TSV on standard output, the same numbers; ``--flank 4900`` scores the record's positions 101..L-100,
    equal to the default run's there only approximately (the context differs), with their own 1-based positions."""
    fa = tmp_path / "one.fa"
    fa.write_text(">short\n" + "".join(r.seq for r in read_fasta(DATA / "seqs.fa") if r.name == "short") + "\n")
    assert main(["predict", "--sequences", str(fa), "-o", "-", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "sequence\tposition\tneither\tacceptor\tdonor" and len(lines) == 301
    vals = np.array([[float(x) for x in line.split("\t")[2:]] for line in lines[1:]], dtype=np.float32)
    np.testing.assert_allclose(vals, keras["short"], atol=1e-4, rtol=0)
    predict_sequences(sequences=fa, out=tmp_path / "f.parquet", flank=4_900, device="cpu", progress=False)
    df = pl.read_parquet(tmp_path / "f.parquet")
    assert df["position"].to_list() == list(range(101, 201))


@pytest.mark.slow
def test_openspliceai_weights_run_there_too(tmp_path, keras):
    """``--base-model openspliceai --weights DIR`` (the shared MANE checkpoints): the same table, and the acceptor
    the Keras ensemble finds in the short record is OpenSpliceAI's strongest too."""
    fa = tmp_path / "one.fa"
    fa.write_text(">short\n" + "".join(r.seq for r in read_fasta(DATA / "seqs.fa") if r.name == "short") + "\n")
    res = predict_sequences(sequences=fa, out=tmp_path / "o.parquet", base_model="openspliceai", weights=OPENSPLICEAI,
                            device="cpu", progress=False)
    df = pl.read_parquet(tmp_path / "o.parquet")
    assert res["base_model"] == "openspliceai" and df["position"].to_list() == list(range(1, 301))
    assert int(df["acceptor"].arg_max()) == int(np.argmax(keras["short"][:, 1]))


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    fa = tmp_path / "dup.fa"
    fa.write_text(">a\nACGT\n>a\nACGT\n")
    with pytest.raises(InputError, match=r"line 3: a second record named 'a' \(the first is on line 1\)"):
        predict_sequences(sequences=fa, out=tmp_path / "o.parquet", progress=False)
    (tmp_path / "plain.txt").write_text("ACGT\n")
    with pytest.raises(InputError, match="line 1: sequence before any '>' header"):
        predict_sequences(sequences=tmp_path / "plain.txt", out=tmp_path / "o.parquet", progress=False)
    with pytest.raises(InputError, match="--flank must be between 0 and 5000"):
        predict_sequences(sequences=fa, out=tmp_path / "o.parquet", flank=6000, progress=False)
    code = main(["predict", "--sequences", str(fa), "-o", str(tmp_path / "o.parquet"), "--genes", "TP53"])
    err = capsys.readouterr().err
    assert code == 2 and "drop --genes" in err and err.count("\n") == 1
    assert not (tmp_path / "o.parquet").exists()
