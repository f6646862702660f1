"""CI-SpliceAI as a base model: its frozen TensorFlow graph read without TensorFlow (the protobuf wire
format), exact against the original package's own outputs, one-line errors, and ``predict`` end to end."""

from __future__ import annotations

import importlib.metadata
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from meta_spliceai.basemodel import ensemble as basemodel
from meta_spliceai.basemodel.ensemble import load_base_model
from meta_spliceai.basemodel.store import PredictionStore
from meta_spliceai.basemodel.tfgraph import WireError, parse_graph, varint
from meta_spliceai.cli.main import main
from meta_spliceai.config import FLANK
from meta_spliceai.errors import InputError
from meta_spliceai.reference.genome import Genome, oriented_sequence

CHR22 = Path(__file__).resolve().parents[2] / "shared" / "data" / "grch37_chr22_20-21Mb"
#: the smallest genes of the chr22 bundle: the exactness tests stay a few seconds
SMALL = ("GGTLC3", "CCDC188", "TMEM191B")


# --------------------------------------------------------------------------- a protobuf encoder, by hand


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(num: int, value: int | bytes) -> bytes:
    """One field: an int as a varint (wire type 0), bytes length-delimited (wire type 2)."""
    if isinstance(value, int):
        return _varint(num << 3) + _varint(value)
    return _varint(num << 3 | 2) + _varint(len(value)) + value


def _attr(key: str, value: bytes) -> bytes:
    return _field(5, _field(1, key.encode()) + _field(2, value))


def _shape(*dims: int) -> bytes:
    return b"".join(_field(2, _field(1, d)) for d in dims)


def _node(name: str, op: str, *inputs: str, attrs: bytes = b"") -> bytes:
    return _field(1, _field(1, name.encode()) + _field(2, op.encode()) + b"".join(_field(3, i.encode()) for i in inputs) + attrs)


def _tiny_graph() -> bytes:
    w = np.arange(6, dtype="<f4").reshape(2, 3)
    content = _field(1, 1) + _field(2, _shape(2, 3)) + _field(4, w.tobytes())  # DT_FLOAT, tensor_content
    packed = _field(1, 1) + _field(2, _shape(2)) + _field(5, struct.pack("<2f", 0.5, -1.5))  # packed float_val
    scalar = _field(1, 3) + _field(2, b"") + _field(7, _varint((1 << 64) - 3))  # DT_INT32 -3 (int_val)
    lst = _field(1, _field(3, _varint(1) + _varint(4) + _varint(1)) + _field(2, b"SAME"))  # list: i packed, s
    return (_node("x", "Placeholder", attrs=_attr("dtype", _field(6, 1)) + _attr("shape", _field(7, _shape((1 << 64) - 1, 4))))
            + _node("w", "Const", attrs=_attr("value", _field(8, content)))
            + _node("b", "Const", attrs=_attr("value", _field(8, packed)))
            + _node("k", "Const", attrs=_attr("value", _field(8, scalar)))
            + _node("y", "Conv2D", "x", "w:0", "^b", attrs=_attr("padding", _field(2, b"VALID")) + _attr("l", lst)
                    + _attr("eps", _varint(4 << 3 | 5) + struct.pack("<f", 1e-3))))  # f: a fixed32 float


def test_wire_format_reader_on_a_hand_built_graph() -> None:
    assert varint(b"\xac\x02", 0) == (300, 2)
    nodes = parse_graph(_tiny_graph())
    assert [(n.name, n.op) for n in nodes] == [("x", "Placeholder"), ("w", "Const"), ("b", "Const"), ("k", "Const"), ("y", "Conv2D")]
    x, w, b, k, y = nodes
    assert x.attrs == {"dtype": 1, "shape": (-1, 4)}
    assert w.attrs["value"].dtype == np.float32 and np.array_equal(w.attrs["value"], np.arange(6).reshape(2, 3))
    assert np.array_equal(b.attrs["value"], np.array([0.5, -1.5], dtype=np.float32))
    assert k.attrs["value"].shape == () and int(k.attrs["value"]) == -3
    assert y.inputs == ["x", "w:0", "^b"]
    assert y.attrs["padding"] == "VALID" and y.attrs["l"] == [1, 4, 1, "SAME"]
    assert y.attrs["eps"] == pytest.approx(1e-3)


@pytest.mark.parametrize("cut", [3, 40, -5])
def test_wire_format_reader_refuses_a_truncated_message(cut: int) -> None:
    with pytest.raises(WireError):
        parse_graph(_tiny_graph()[:cut])


# --------------------------------------------------------------------------- exact against the original


@pytest.fixture(scope="module")
def small_genes() -> tuple[list[str], dict[str, np.ndarray]]:
    """(model inputs, CI-SpliceAI's own outputs) for the three smallest chr22 genes."""
    info = json.loads((CHR22 / "reference" / "keras_spliceai_genes.json").read_text())["genes"]
    genome = Genome(CHR22 / "genome.fa.gz")
    seqs = [oriented_sequence(genome, g["chrom"], g["start"], g["end"], g["strand"], FLANK) for g in map(info.get, SMALL)]
    return seqs, dict(np.load(CHR22 / "reference" / "cispliceai_outputs.npz"))


@pytest.mark.slow
def test_exact_against_the_original_cispliceai(small_genes) -> None:  # noqa: ANN001
    seqs, ref = small_genes
    model = load_base_model("cispliceai", device="cpu")
    assert model.name == "cispliceai" and model.n_members == 5 and model.runtime == "onnx"
    assert model.version == importlib.metadata.version("cispliceai") and len(model.digest) == 16
    for name, out in zip(SMALL, model.predict(seqs)):
        assert out.dtype == np.float32 and out.shape == ref[name].shape, name
        dp = float(np.abs(out - ref[name]).max())
        assert dp <= 1e-4, f"{name}: max |dp| {dp}"


def test_weights_option_takes_another_copy(tmp_path: Path) -> None:
    pb = basemodel._package_files("cispliceai", "data", basemodel.CISPLICEAI_FILES, "")[0]
    copy = tmp_path / "copy.pb"
    copy.write_bytes(pb.read_bytes())
    a, b = load_base_model("cispliceai", device="cpu"), load_base_model("cispliceai", weights=copy, device="cpu")
    assert b.version == "custom:copy.pb" and b.n_members == a.n_members == 5
    for wa, wb in zip(a.members, b.members):
        assert np.array_equal(wa.units[15]["conv2"][0], wb.units[15]["conv2"][0]) and wa.eps == wb.eps


# --------------------------------------------------------------------------- one-line errors


def test_missing_cispliceai_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real = basemodel.importlib.util.find_spec
    monkeypatch.setattr(basemodel.importlib.util, "find_spec", lambda n, *a: None if n == "cispliceai" else real(n, *a))
    with pytest.raises(InputError, match="pip install cispliceai"):
        load_base_model("cispliceai", device="cpu")


def test_pb_that_is_not_a_graphdef(tmp_path: Path) -> None:
    pb = basemodel._package_files("cispliceai", "data", basemodel.CISPLICEAI_FILES, "")[0]
    cut = tmp_path / "cut.pb"
    cut.write_bytes(pb.read_bytes()[: 1 << 20])  # a download cut short
    text = tmp_path / "text.pb"
    text.write_text("this is not a graph\n")
    for bad in (cut, text):
        with pytest.raises(InputError, match="not a TensorFlow GraphDef"):
            load_base_model("cispliceai", weights=bad, device="cpu")


def test_graph_without_the_expected_nodes(tmp_path: Path) -> None:
    other = tmp_path / "other.pb"
    other.write_bytes(_tiny_graph())
    with pytest.raises(InputError, match="not CI-SpliceAI's"):
        load_base_model("cispliceai", weights=other, device="cpu")


# --------------------------------------------------------------------------- predict end to end


@pytest.mark.slow
def test_predict_cli_with_cispliceai(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``predict --base-model cispliceai`` on two chr22 genes: the store holds the original's numbers and
    refuses SpliceAI's genes afterwards (a store never mixes base models)."""
    ref = np.load(CHR22 / "reference" / "cispliceai_outputs.npz")
    args = ["predict", "--fasta", CHR22 / "genome.fa.gz", "--gtf", CHR22 / "annotation.gtf", "--out", tmp_path / "s",
            "--device", "cpu"]
    code = main([str(a) for a in [*args, "--base-model", "cispliceai", "--genes", "GGTLC3", "CCDC188"]])
    assert code == 0, capsys.readouterr().err
    store = PredictionStore(tmp_path / "s")
    assert store.finished_genes() == {"GGTLC3", "CCDC188"}
    for g in ("GGTLC3", "CCDC188"):
        assert np.abs(store.read(g) - ref[g]).max() <= 1e-4, g
    assert (store.stored_identity() or {}).get("base_model") == "cispliceai"
    capsys.readouterr()
    code = main([str(a) for a in [*args, "--base-model", "spliceai", "--genes", "TMEM191B"]])
    err = capsys.readouterr().err
    assert code == 2 and "cispliceai" in err and "Traceback" not in err
