"""FFT convolutions (overlap-save) compute what the direct ones compute; the split member equals the full graph."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
import pytest

from meta_spliceai.basemodel.ensemble import FFT_FIRST_UNIT, load_base_model, one_hot, random_weights
from meta_spliceai.basemodel.fftconv import SpectralConv, SpectralUnits, fft_length
from meta_spliceai.basemodel.onnx_graph import SKIP_AFTER, build_onnx, build_split
from meta_spliceai.basemodel.weights import CONTEXT
from meta_spliceai.errors import InputError


def _direct(x: np.ndarray, w: np.ndarray, b: np.ndarray, d: int) -> np.ndarray:
    """Valid cross-correlation in float64: out[t] = sum_j w[:, :, j] @ x[:, t + j d] + b."""
    k = w.shape[2]
    out = x.shape[2] - d * (k - 1)
    y = np.zeros((x.shape[0], w.shape[0], out))
    for j in range(k):
        y += np.einsum("oc,bct->bot", w[:, :, j].astype(np.float64), x[:, :, j * d: j * d + out].astype(np.float64))
    return y + b[None, :, None]


def test_fft_length_keeps_most_of_each_block_as_output() -> None:
    for span in (11, 41, 201, 1001, 5000):
        n = fft_length(span)
        assert n & (n - 1) == 0 and n >= 2048 and n >= 4 * span
    assert fft_length(1001) == 4096 and fft_length(201) == 2048


@pytest.mark.parametrize(("k", "d"), [(11, 1), (21, 10), (41, 25)])
def test_spectral_conv_equals_the_direct_convolution(k: int, d: int) -> None:
    rng = np.random.default_rng(k)
    w = (rng.standard_normal((6, 5, k)) / np.sqrt(5 * k)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    conv = SpectralConv(w, b, d)
    span, m = conv.span, conv.n - conv.span + 1
    # 1 output, one block exactly, one more than a block, several blocks with a ragged end
    for n_out in (1, m, m + 1, 3 * m + 7):
        x = rng.standard_normal((2, 5, n_out + span - 1)).astype(np.float32)
        got = conv(x)
        want = _direct(x, w, b, d)
        assert got.dtype == np.float32 and got.shape == want.shape == (2, 6, n_out)
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max()), (k, d, n_out)
        # batch items are independent: each alone gives the same bytes (serial, --workers and Ray stores agree)
        np.testing.assert_array_equal(conv(x[1:]), got[1:])
        np.testing.assert_array_equal(conv(x[:1]), got[:1])
    with pytest.raises(ValueError, match="needs more than"):
        conv(np.zeros((1, 5, span - 1), dtype=np.float32))


def test_spectrum_is_built_once_under_concurrent_first_use() -> None:
    rng = np.random.default_rng(1)
    conv = SpectralConv(rng.standard_normal((4, 4, 41)).astype(np.float32), np.zeros(4, np.float32), 25)
    x = rng.standard_normal((1, 4, 9_000)).astype(np.float32)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: conv(x), range(8)))
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
    assert conv.spectrum() is conv.spectrum()


@pytest.mark.parametrize("leaky", [0.0, 0.1])
def test_split_member_equals_the_full_graph(leaky: float) -> None:
    w = random_weights(1, seed=21)[0]
    w.leaky = leaky
    front, head = (ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                   for m in build_split(w, FFT_FIRST_UNIT))
    full = ort.InferenceSession(build_onnx(w).SerializeToString(), providers=["CPUExecutionProvider"])
    units = SpectralUnits(w, FFT_FIRST_UNIT, SKIP_AFTER)
    assert units.skip_after == (12,)
    rng = np.random.default_rng(2)
    for batch, n in ((1, 1), (2, 3_000)):
        x = np.stack([one_hot("".join(rng.choice(list("ACGTN"), n + CONTEXT))).T for _ in range(batch)])
        h, s = front.run(None, {"x": x})
        h, crops = units(h)
        got = head.run(None, {"s": s, **crops, "h16": h})[0]
        want = full.run(None, {"x": x})[0]
        assert got.shape == want.shape == (batch, 3, n)
        assert np.abs(got - want).max() <= 1e-5  # random weights amplify rounding (real ones: ~3e-7)


@pytest.mark.slow
def test_real_model_fft_matches_direct_and_is_chunk_invariant() -> None:
    rng = np.random.default_rng(4)
    seqs = ["".join(rng.choice(list("ACGT"), n + CONTEXT)) for n in (9_000, 8_800)]  # batched together
    direct = load_base_model("spliceai", device="cpu", conv="direct").predict(seqs)
    fft = load_base_model("spliceai", device="cpu", conv="fft")
    a = fft.predict(seqs)
    b = fft.predict(seqs, batch_size=1, chunk_size=2_500)
    for x, y, z in zip(direct, a, b):
        assert np.abs(x - y).max() <= 1e-6 and np.abs(y - z).max() <= 1e-6
    # batched or alone, an input gets the same bytes (serial and parallel runs write identical stores)
    np.testing.assert_array_equal(fft.predict(seqs[1:])[0], a[1])
    np.testing.assert_array_equal(fft.predict(seqs[:1])[0], a[0])


def test_unknown_convolution_is_refused() -> None:
    with pytest.raises(InputError, match="unknown convolution 'winograd'; choose fft or direct"):
        load_base_model("spliceai", device="cpu", conv="winograd")  # type: ignore[arg-type]
