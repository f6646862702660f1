"""The base model: exact against the original Keras SpliceAI, invariant to batching/chunking, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import basemodel_gpu_present

from meta_spliceai.basemodel import ensemble as basemodel
from meta_spliceai.basemodel.ensemble import (
    CONTEXT,
    load_base_model,
    one_hot,
    random_model,
)
from meta_spliceai.config import FLANK
from meta_spliceai.errors import InputError
from meta_spliceai.reference.genome import Genome, oriented_sequence

SHARED = Path(__file__).resolve().parents[2] / "shared"
CHR22 = SHARED / "data" / "grch37_chr22_20-21Mb"
OPENSPLICEAI = SHARED / "models" / "openspliceai-mane-10000nt"




@pytest.fixture(scope="module")
def keras_genes() -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """(gene names, model inputs, Keras outputs) for the 18 genes of the chr22 bundle."""
    info = json.loads((CHR22 / "reference" / "keras_spliceai_genes.json").read_text())["genes"]
    genome = Genome(CHR22 / "genome.fa.gz")
    names = sorted(info)
    seqs = [oriented_sequence(genome, g["chrom"], g["start"], g["end"], g["strand"], FLANK) for g in map(info.get, names)]
    ref = dict(np.load(CHR22 / "reference" / "keras_spliceai_outputs.npz"))
    return names, seqs, ref


@pytest.fixture(scope="module")
def spliceai_outputs(keras_genes) -> list[np.ndarray]:  # noqa: ANN001
    model = load_base_model("spliceai", device="cpu")
    return model.predict(keras_genes[1])


def test_one_hot() -> None:
    x = one_hot("ACGTNacgtx")
    assert x.dtype == np.float32 and x.shape == (10, 4)
    assert np.array_equal(x[:4], np.eye(4)) and np.array_equal(x[5:9], np.eye(4))
    assert not x[4].any() and not x[9].any()


@pytest.mark.slow
def test_exact_against_keras_spliceai(keras_genes, spliceai_outputs) -> None:  # noqa: ANN001
    names, _, ref = keras_genes
    assert len(names) == 18
    for name, out in zip(names, spliceai_outputs):
        assert out.dtype == np.float32 and out.shape == ref[name].shape, name
        dp = float(np.abs(out - ref[name]).max())
        assert dp <= 1e-4, f"{name}: max |dp| {dp}"


@pytest.mark.slow
def test_bfloat16_on_a_cpu_without_its_instructions_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyTorch emulates bfloat16 on such CPUs (an AVX2 one ran 2,000 nt in 86 s vs 1.2 s): refused, not hours of work."""
    pytest.importorskip("torch")
    monkeypatch.setattr(basemodel, "cpu_bfloat16_native", lambda: False)
    with pytest.raises(InputError, match=r"bfloat16 instructions .*--precision float32"):
        load_base_model("spliceai", device="cpu", precision="bfloat16")
    # float32, and a CPU whose flags cannot be read, load as before
    assert load_base_model("spliceai", device="cpu", precision="float32").precision == "float32"
    monkeypatch.setattr(basemodel, "cpu_bfloat16_native", lambda: None)
    assert load_base_model("spliceai", device="cpu", precision="bfloat16").precision == "bfloat16"


def test_cpu_bfloat16_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cases = {"flags\t\t: fpu avx2 avx512f\n": False, "flags\t\t: avx2 avx512_bf16\n": True,
             "flags\t: amx_tile amx_bf16\n": True, "Features\t: fp asimd bf16\n": True, "processor: 0\n": None}
    cpuinfo = tmp_path / "cpuinfo"
    for text, want in cases.items():
        cpuinfo.write_text(text)
        assert basemodel.cpu_bfloat16_native(cpuinfo) is want, text
    assert basemodel.cpu_bfloat16_native(tmp_path / "absent") is None


@pytest.mark.skipif(basemodel.cpu_bfloat16_native() is False, reason="this CPU has no bfloat16 instructions (refused)")
def test_bfloat16_agrees_on_site_calls(keras_genes, spliceai_outputs) -> None:  # noqa: ANN001
    pytest.importorskip("torch")
    model = load_base_model("spliceai", device="cpu", precision="bfloat16")
    assert model.precision == "bfloat16" and model.runtime == "torch"
    fast = model.predict(keras_genes[1])
    both = either = 0
    worst = 0.0
    for a, b in zip(spliceai_outputs, fast):
        worst = max(worst, float(np.abs(a - b).max()))
        ca, cb = a[:, 1:] >= 0.5, b[:, 1:] >= 0.5
        both += int((ca & cb).sum())
        either += int((ca | cb).sum())
    assert either > 200
    assert both / either >= 0.999, f"site calls agree on {both}/{either}"
    assert worst < 0.05, worst  # reported in bench/RESULTS.md


@pytest.mark.slow
@pytest.mark.parametrize("conv", ["direct", "fft"])
def test_batch_and_chunk_invariance(conv: str) -> None:
    # random weights amplify rounding: the FFT's block boundaries move with the chunks (real weights: <= 3e-7)
    tol = 1e-6 if conv == "direct" else 1e-5
    model = random_model(1, seed=1, conv=conv)
    rng = np.random.default_rng(7)
    seqs = ["".join(rng.choice(list("ACGTN"), n + CONTEXT, p=[0.24, 0.24, 0.24, 0.24, 0.04])) for n in (300, 1_500, 20)]
    base = model.predict(seqs, batch_size=1, chunk_size=10**6)
    for bs, cs in ((8, 10**6), (2, 600)):
        got = model.predict(seqs, batch_size=bs, chunk_size=cs)
        for a, b in zip(base, got):
            assert a.shape == b.shape
            assert np.abs(a - b).max() <= tol, (bs, cs)
    # order of the inputs does not matter either
    rev = model.predict(seqs[::-1], batch_size=4)
    for a, b in zip(base, rev[::-1]):
        assert np.abs(a - b).max() <= tol
    for p in base:
        assert p.dtype == np.float32 and np.allclose(p.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_onnx_runtime_matches_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not basemodel.onnxruntime_available():
        pytest.skip("onnxruntime not installed (optional extra [onnx])")
    monkeypatch.setenv("META_SPLICEAI_CACHE", str(tmp_path))
    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGT"), n + CONTEXT)) for n in (500, 2_000)]
    pytest.importorskip("torch")
    a = random_model(2, seed=2, runtime="torch").predict(seqs)
    ort_model = random_model(2, seed=2, runtime="onnx", conv="direct")
    assert ort_model.runtime == "onnx" and list((tmp_path / "onnx").glob("*.onnx"))
    b = ort_model.predict(seqs, batch_size=1)
    c = ort_model.predict(seqs, batch_size=2, chunk_size=700)
    d = random_model(2, seed=2, runtime="onnx").predict(seqs)  # the default: stacks 3-4 by FFT
    assert {p.name.split("-m")[-1] for p in (tmp_path / "onnx").glob("*.onnx")} == {
        "0.onnx", "1.onnx", "0-front8.onnx", "1-front8.onnx", "0-head8.onnx", "1-head8.onnx"}
    for x, y, z, f in zip(a, b, c, d):
        assert np.abs(y - z).max() <= 1e-6  # batch/chunk invariant
        assert np.abs(x - y).max() <= 1e-5  # same network (random weights amplify rounding; real ones ~5e-7)
        assert np.abs(x - f).max() <= 1e-5


def test_short_input_is_an_error() -> None:
    with pytest.raises(InputError, match="flank"):
        random_model().predict(["A" * CONTEXT])


def test_missing_spliceai_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = basemodel.importlib.util.find_spec
    monkeypatch.setattr(basemodel.importlib.util, "find_spec", lambda n, *a: None if n == "spliceai" else real(n, *a))
    with pytest.raises(InputError, match="pip install spliceai"):
        load_base_model("spliceai", device="cpu")


def test_wrong_shape_weights(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    sd = torch.load(sorted(OPENSPLICEAI.glob("*.pt"))[0], map_location="cpu", weights_only=True)
    sd["residual_units.12.conv1.weight"] = torch.zeros(32, 32, 11)  # stack 4 has kernel 41
    bad = tmp_path / "bad.pt"
    torch.save(sd, bad)
    with pytest.raises(InputError, match=r"residual|shape"):
        load_base_model("openspliceai", weights=bad, device="cpu", runtime="torch")


def test_openspliceai_needs_weights() -> None:
    with pytest.raises(InputError, match="--weights"):
        load_base_model("openspliceai", device="cpu")


def test_keras_file_of_other_model(tmp_path: Path) -> None:
    import h5py

    f = tmp_path / "other.h5"
    with h5py.File(f, "w") as h:
        h.attrs["model_config"] = json.dumps({"config": {"layers": []}})
        h.create_group("model_weights")
    with pytest.raises(InputError, match="not a SpliceAI-10k"):
        load_base_model("spliceai", weights=f, device="cpu", runtime="torch")


def test_cuda_without_gpu() -> None:
    if basemodel_gpu_present():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match="--device cuda"):
        load_base_model("spliceai", device="cuda")


def test_identity_fields() -> None:
    model = load_base_model("openspliceai", weights=OPENSPLICEAI, device="cpu")
    assert model.name == "openspliceai" and model.n_members == 5 and model.device == "cpu"
    assert model.version == OPENSPLICEAI.name and len(model.digest) == 16
    assert set(model.metadata()) == {"base_model", "version", "digest", "precision"}


@pytest.mark.slow
def test_cpu_path_needs_no_torch(tmp_path: Path) -> None:
    """With PyTorch absent (import blocked), SpliceAI and OpenSpliceAI run exactly on ONNX Runtime; CUDA
    and bfloat16 say which extra to install."""
    code = f"""
import sys, json
sys.modules["torch"] = None  # import torch now fails, as in an install without the [torch] extra
import numpy as np
from meta_spliceai.basemodel.ensemble import load_base_model
from meta_spliceai.errors import InputError
seq = "ACGT" * 2600 + "A" * 5
out = {{}}
for name, kw in (("spliceai", {{}}), ("openspliceai", {{"weights": {str(OPENSPLICEAI)!r}}})):
    m = load_base_model(name, device="auto", **kw)
    out[name] = [m.runtime, m.device, float(m.predict([seq])[0].sum())]
for kw in ({{"device": "cuda"}}, {{"precision": "bfloat16"}}):
    try:
        load_base_model("spliceai", **kw)
    except InputError as err:
        out[str(kw)] = str(err)
print(json.dumps(out))
"""
    import subprocess
    import sys

    env = {**__import__("os").environ, "META_SPLICEAI_CACHE": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout)
    assert out["spliceai"][:2] == ["onnx", "cpu"] and out["openspliceai"][:2] == ["onnx", "cpu"]
    assert "meta-spliceai[torch]" in out["{'device': 'cuda'}"] and "meta-spliceai[torch]" in out["{'precision': 'bfloat16'}"]
    if basemodel.torch_available():  # the same numbers as the PyTorch runtime
        for name, kw in (("spliceai", {}), ("openspliceai", {"weights": OPENSPLICEAI})):
            m = load_base_model(name, device="cpu", runtime="torch", **kw)
            assert abs(float(m.predict(["ACGT" * 2600 + "A" * 5])[0].sum()) - out[name][2]) < 1e-3


def test_progress_within_a_real_gene_per_chunk() -> None:
    """``on_progress`` is called once per chunk of the model's input, as each is scored, so a bar moves within a
    gene (not once when the whole gene is done); the scores are the same with or without it."""
    info = json.loads((CHR22 / "reference" / "keras_spliceai_genes.json").read_text())["genes"]
    g = min(info.values(), key=lambda v: abs(v["end"] - v["start"] - 12_000))  # a gene of about 12 kb
    seq = oriented_sequence(Genome(CHR22 / "genome.fa.gz"), g["chrom"], g["start"], g["end"], g["strand"], FLANK)
    body = len(seq) - CONTEXT
    model = random_model(1, seed=3)
    seen: list[int] = []
    got = model.predict([seq], chunk_size=3_000, on_progress=seen.append)
    assert len(seen) == -(-body // 3_000) and all(0 < n <= 3_000 for n in seen) and sum(seen) == body
    done = np.cumsum(seen)
    assert (np.diff(done) > 0).all() and done[0] < body  # counts grow from the first chunk on
    np.testing.assert_array_equal(got[0], model.predict([seq], chunk_size=3_000)[0])
