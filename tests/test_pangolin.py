"""Pangolin as a base model: each of its 12 networks and the per-tissue ensemble exact against the original
(PyTorch) code's outputs, its 8-column prediction store, and clear refusals where donor/acceptor scores are needed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import CHR22, SHARED

from meta_spliceai.basemodel.ensemble import load_base_model, one_hot, torch_available
from meta_spliceai.basemodel.store import COLUMNS, PredictionStore, columns_of
from meta_spliceai.basemodel.weights import PANGOLIN_FILES, pangolin_groups, read_pangolin
from meta_spliceai.cli.main import main
from meta_spliceai.config import BASE_MODEL_OUTPUTS, FLANK
from meta_spliceai.errors import ConfigMismatchError, InputError
from meta_spliceai.reference.genome import Genome, oriented_sequence

PANGOLIN = SHARED / "models" / "pangolin-v2"
IDENTITY = {"base_model": "pangolin", "version": "pangolin-v2", "digest": "test", "precision": "float32"}
#: two small genes of the reference outputs, one per strand
GENES = ("CCDC188", "TMEM191B")


def _inputs(names: tuple[str, ...]) -> list[str]:
    """Model inputs (body +- 5,000 nt, reverse-complemented on -) of chr22 bundle genes, as for the reference."""
    info = json.loads((CHR22 / "reference" / "keras_spliceai_genes.json").read_text())["genes"]
    genome = Genome(CHR22 / "genome.fa.gz")
    return [oriented_sequence(genome, g["chrom"], g["start"], g["end"], g["strand"], FLANK) for g in map(info.get, names)]


def _reference() -> dict[str, np.ndarray]:
    return dict(np.load(PANGOLIN / "reference_outputs.npz"))


def test_columns_declared_once() -> None:
    assert BASE_MODEL_OUTPUTS["pangolin"] == ("heart_p", "heart_usage", "liver_p", "liver_usage", "brain_p",
                                              "brain_usage", "testis_p", "testis_usage")
    for name in ("spliceai", "openspliceai", "cispliceai"):
        assert BASE_MODEL_OUTPUTS[name] == COLUMNS == columns_of(name)
    assert columns_of("spliceai+meta") == COLUMNS  # apply's corrected stores
    # per tissue t: networks of model 2t (replicates 1-3), channels 3t+1 (P(splice)) and 3t+2 (usage)
    assert pangolin_groups()[1] == ([3, 4, 5], [4, 5])
    assert [f for f, t in PANGOLIN_FILES if t == 1] == ["final.1.2.3.v2", "final.2.2.3.v2", "final.3.2.3.v2"]


@pytest.mark.slow
def test_each_network_alone_exact() -> None:
    """Every network's 12 output channels (softmax pairs and usage sigmoids) on CCDC188 against the original's."""
    import onnxruntime as ort

    from meta_spliceai.basemodel.ensemble import ort_options
    from meta_spliceai.basemodel.onnx_graph import build_onnx

    ref = np.load(PANGOLIN / "reference_members_CCDC188.npz")["CCDC188"]
    x = one_hot(_inputs(("CCDC188",))[0]).T[None].copy()
    worst = []
    for i, (name, _) in enumerate(PANGOLIN_FILES):
        w = read_pangolin(PANGOLIN / name)
        session = ort.InferenceSession(build_onnx(w).SerializeToString(), ort_options(0), providers=["CPUExecutionProvider"])
        p = session.run(None, {"x": x})[0][0]
        assert p.shape == ref[i].shape == (12, 2639), name
        worst.append(float(np.abs(p - ref[i]).max()))
        np.testing.assert_allclose(p[0::3] + p[1::3], 1.0, atol=1e-6)  # each tissue's pair is a softmax
    assert max(worst) <= 1e-4, dict(zip((f for f, _ in PANGOLIN_FILES), worst))


@pytest.mark.slow
def test_predict_cli_exact_against_pangolin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``predict --base-model pangolin`` end to end (ONNX Runtime, FFT stacks): the store's per-tissue means against
    the original's outputs, its identity and columns."""
    out = tmp_path / "store"
    code = main([str(a) for a in ("predict", "--fasta", CHR22 / "genome.fa.gz", "--gtf", CHR22 / "annotation.gtf",
                                  "--genes", *GENES, "--base-model", "pangolin", "--weights", PANGOLIN, "-o", out)])
    assert code == 0, capsys.readouterr().err
    store = PredictionStore(out)
    identity = store.stored_identity()
    assert identity is not None and identity["base_model"] == "pangolin" and identity["version"] == "pangolin-v2"
    assert len(identity["digest"]) == 16 and store.columns == BASE_MODEL_OUTPUTS["pangolin"]
    ref = _reference()
    for name in GENES:
        got = store.read(name)
        assert got.dtype == np.float32 and got.shape == ref[name].shape == (ref[name].shape[0], 8), name
        dp = float(np.abs(got - ref[name]).max())
        assert dp <= 1e-4, f"{name}: max |dp| {dp}"


@pytest.mark.slow
def test_torch_runtime_exact_against_pangolin() -> None:
    """The PyTorch module of each network (the CUDA path's) gives the same per-tissue means."""
    if not torch_available():
        pytest.skip("PyTorch not installed")
    model = load_base_model("pangolin", weights=PANGOLIN, device="cpu", runtime="torch")
    assert model.columns == BASE_MODEL_OUTPUTS["pangolin"] and model.n_members == 12 and model.runtime == "torch"
    assert model.metadata() == {"base_model": "pangolin", "version": "pangolin-v2", "digest": model.digest,
                                "precision": "float32"}
    out = model.predict(_inputs(GENES[:1]))[0]
    ref = _reference()[GENES[0]]
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert float(np.abs(out - ref).max()) <= 1e-4


def test_identity_and_missing_networks(tmp_path: Path) -> None:
    folder = tmp_path / "pangolin-v2"
    folder.mkdir()
    for name, _ in PANGOLIN_FILES[:-2]:
        (folder / name).symlink_to(PANGOLIN / name)
    with pytest.raises(InputError, match=r"lacks 2 of its 12 networks: final\.2\.6\.3\.v2, final\.3\.6\.3\.v2"):
        load_base_model("pangolin", weights=folder, device="cpu")
    with pytest.raises(InputError, match=r"--base-model pangolin needs --weights DIR"):
        load_base_model("pangolin", device="cpu")
    with pytest.raises(InputError, match=r"not a folder"):
        load_base_model("pangolin", weights=PANGOLIN / "README.md", device="cpu")
    (folder / PANGOLIN_FILES[-2][0]).write_bytes(b"not a checkpoint")
    shutil.copy(PANGOLIN / PANGOLIN_FILES[-1][0], folder / PANGOLIN_FILES[-1][0])
    with pytest.raises(InputError, match=r"cannot read Pangolin checkpoint .*final\.2\.6\.3\.v2"):
        load_base_model("pangolin", weights=folder, device="cpu")


def _pangolin_store(path: Path, lengths: dict[str, int]) -> PredictionStore:
    rng = np.random.default_rng(5)
    store = PredictionStore(path, IDENTITY)
    for gene, n in lengths.items():
        store.write(gene, rng.random((n, 8), dtype=np.float32))
    return store


def test_store_holds_the_models_own_columns(tmp_path: Path, keras_store: Path) -> None:
    import pyarrow.parquet as pq

    store = _pangolin_store(tmp_path / "pg", {"G1": 50})
    assert store.columns == BASE_MODEL_OUTPUTS["pangolin"] == PredictionStore(store.path).columns
    got = PredictionStore(store.path).read("G1")
    assert got.shape == (50, 8) and got.dtype == np.float32
    assert pq.read_schema(store.file_of("G1")).names == ["gene_id", "position", *BASE_MODEL_OUTPUTS["pangolin"]]
    assert store.scan().collect().columns == ["gene_id", "position", *BASE_MODEL_OUTPUTS["pangolin"]]
    with pytest.raises(InputError, match=r"shape \(50, 3\); expected \(length, 8\) \[heart_p"):
        store.write("G2", np.zeros((50, 3), np.float32))
    # SpliceAI stores keep their three columns
    ks = PredictionStore(keras_store)
    assert ks.columns == COLUMNS and ks.read("CCDC188").shape == (2639, 3)
    assert pq.read_schema(ks.files()[0]).names == ["gene_id", "position", *COLUMNS]
    # a store never mixes models: a Pangolin file among SpliceAI ones is named, not read as unreadable
    mixed = tmp_path / "mixed"
    shutil.copytree(keras_store, mixed)
    shutil.copy(store.file_of("G1"), mixed / "G1.parquet")
    with pytest.raises(ConfigMismatchError, match=r"G1\.parquet was written by another base model .*pangolin"):
        PredictionStore(mixed).read("G1")
    with pytest.raises(ConfigMismatchError, match="another base model"):
        PredictionStore(keras_store, IDENTITY)


def test_consumers_refuse_a_pangolin_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from meta_spliceai.reference.annotation import parse_annotation

    genes = parse_annotation(CHR22 / "annotation.gtf").genes
    store = _pangolin_store(tmp_path / "pg", dict(genes.select("gene_id", "length").head(3).iter_rows()))
    ref = ["--fasta", CHR22 / "genome.fa.gz", "--gtf", CHR22 / "annotation.gtf"]
    for argv in (["build", "-o", tmp_path / "b1", *ref, "--predictions", store.path],
                 ["build", "-o", tmp_path / "b2", *ref, "--base-model", "pangolin", "--weights", PANGOLIN, "--run-workflow"],
                 ["build", "-o", tmp_path / "b3", *ref, "--predictions", store.path, "--dry-run"],
                 ["tracks", store.path, "--gtf", CHR22 / "annotation.gtf", "-o", tmp_path / "tracks"]):
        code = main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err, err
        lines = [ln for ln in err.splitlines() if "error:" in ln]
        assert len(lines) == 1 and "Pangolin does not tell donor from acceptor" in lines[0], err
        if argv[0] == "build":
            assert "give it after a store that does" in lines[0]
    assert not any((tmp_path / b).exists() for b in ("b1", "b2", "b3"))
