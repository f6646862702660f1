"""The residual units of the wide-kernel stacks by FFT convolution (overlap-save), the rest on ONNX Runtime.

Why: SpliceAI-10k's last two stacks (21 taps dilated by 10, 41 taps dilated by 25) hold ~70 % of its
multiplications. A direct convolution costs ``k * 32 * 32`` multiply-adds per output; by FFT, a kernel of
span ``S = d (k - 1) + 1`` costs one forward and one inverse transform per channel and a 32x32 complex
product per frequency, per block of ``N - S + 1`` outputs: ~4x fewer operations for the 41-tap kernel,
~2x for the 21-tap one. Measured on 2 cores (bench/RESULTS.md): the ensemble 1.23x faster than direct on an
AVX-512 Zen 4, 1.34x on an AVX2 EPYC (that one before the forward transforms moved to scipy's pocketfft, ~3x
numpy's on these shapes; the inverse stays numpy's).

Exact in the sense the project uses: the same valid cross-correlation, rounded differently (float32 FFTs:
~1e-7 relative per convolution, ~1e-7 on the probabilities; the Keras comparison stays <= 1e-4).

Coordinates: tensors are ``(batch, channels, length)``; a valid convolution maps input positions
``[t, t + S)`` to output position ``t`` (0-based), so ``L`` inputs give ``L - S + 1`` outputs.
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.fft

from ..config import FLANK
from .weights import Weights, bn_affine, folded_conv1, unit_shapes, unit_trim


def fft_length(span: int) -> int:
    """Block length of the overlap-save FFT for a kernel of ``span`` nt: a power of two >= 4 spans (>= 75 % of
    each block is output) and >= 2,048 (fewer, larger transforms; measured faster for the 201-nt span)."""
    n = 2048
    while n < 4 * span:
        n *= 2
    return n


class SpectralConv:
    """A valid, dilated 1-D convolution (cross-correlation, as in Keras and PyTorch) computed by FFT.

    ``weight`` ``(out, in, k)``, ``bias`` ``(out,)``; called on ``(B, in, L)`` float32 it returns
    ``(B, out, L - span + 1)`` float32. The kernel's spectrum is computed on first use (thread-safe) and kept:
    ``(N/2 + 1) * out * in`` complex64 values (16.8 MB for a 41-tap, dilation-25, 32-channel kernel).
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray, dilation: int) -> None:
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)
        self.k = int(self.weight.shape[2])
        self.dilation = int(dilation)
        self.span = self.dilation * (self.k - 1) + 1
        self.n = fft_length(self.span)
        self._spectrum: np.ndarray | None = None
        self._lock = threading.Lock()

    def spectrum(self) -> np.ndarray:
        """``(N/2 + 1, out, in)`` complex64: the FFT of the kernel, reversed and dilated, per frequency."""
        if self._spectrum is None:
            with self._lock:
                if self._spectrum is None:
                    co, ci, k = self.weight.shape
                    taps = np.zeros((co, ci, self.n), dtype=np.float32)
                    # correlation = convolution with the reversed kernel: tap j reads input t + j*d, so it sits at
                    # span - 1 - j*d, and output t is then circular index t + span - 1 of its block
                    taps[:, :, (self.span - 1) - np.arange(k) * self.dilation] = self.weight
                    spec = np.fft.rfft(taps, axis=-1)
                    self._spectrum = np.ascontiguousarray(spec.transpose(2, 0, 1), dtype=np.complex64)
        return self._spectrum

    def __call__(self, x: np.ndarray) -> np.ndarray:
        b, ci, length = x.shape
        out = length - self.span + 1
        if out < 1:
            raise ValueError(f"a convolution of span {self.span} needs more than {length} inputs")
        h = self.spectrum()
        co = h.shape[1]
        n, s = self.n, self.span
        m = n - s + 1  # outputs per block
        nb = -(-out // m)
        whole = (nb - 1) * m
        y = np.empty((b, co, out), dtype=np.float32)
        for i in range(b):  # one item at a time: its numbers depend on it alone
            padded = np.empty((ci, nb * m + s - 1), dtype=np.float32)
            padded[:, :length] = x[i]
            padded[:, length:] = 0  # the last block's tail: only it is zeroed, the rest is written once
            st = padded.strides
            # (channel, sample in block, block): the transform runs down axis 1, so the spectra come out as
            # (channel, frequency, block) and each frequency's (channel, block) matrix is a BLAS-ready view
            blocks = np.lib.stride_tricks.as_strided(padded, (ci, n, nb), (st[0], st[1], m * st[1]), writeable=False)
            spec = scipy.fft.rfft(blocks, axis=1)  # scipy's pocketfft: ~3x numpy's on these shapes, GIL released
            prod = np.matmul(h, spec.transpose(1, 0, 2))  # (frequency, out channel, block)
            full = np.empty((co, nb, n), dtype=np.float32)
            np.fft.irfft(prod, n=n, axis=0, out=full.transpose(2, 0, 1))  # numpy's inverse is the faster one here
            kept = full[:, :, s - 1:]  # (co, nb, m): each block's valid outputs
            np.add(kept[:, : nb - 1], self.bias[:, None, None], out=y[i, :, :whole].reshape(co, nb - 1, m))
            np.add(kept[:, nb - 1, : out - whole], self.bias[:, None], out=y[i, :, whole:])
        return y


class SpectralUnits:
    """Residual units ``first`` … 15 of one member, each ``h[trim:-trim] + conv2(act(conv1'(act(h * s1 + b1))))``
    as in :mod:`.onnx_graph` (BN2 folded into conv1 the same way), with :class:`SpectralConv` convolutions.

    Called on the stream after unit ``first - 1`` (``(B, 32, L)`` float32), it returns the stream after
    unit 15 and, for each stack end after ``first`` but before 16, that stack's output cropped to the
    member's outputs (what the head's skip convs read), keyed ``h{u}``.
    """

    def __init__(self, w: Weights, first: int, skip_after: tuple[int, ...]) -> None:
        self.first = first
        self.slope = np.float32(w.leaky)
        self.taps = [unit_shapes()[i] for i in range(len(w.units))]
        self.lost_before = sum(unit_trim(i) for i in range(first))
        self.skip_after = tuple(u for u in skip_after if first < u < len(w.units))
        self.units = []
        for i in range(first, len(w.units)):
            d = self.taps[i][1]
            u = w.units[i]
            s1, b1 = bn_affine(u["bn1"], w.eps)
            self.units.append((s1.astype(np.float32)[:, None], b1.astype(np.float32)[:, None],
                               SpectralConv(*folded_conv1(u, w.eps), d), SpectralConv(*u["conv2"], d), unit_trim(i)))

    def _act(self, y: np.ndarray) -> np.ndarray:
        if self.slope == 0:
            return np.maximum(y, 0, out=y)
        return np.where(y > 0, y, y * self.slope).astype(np.float32, copy=False)

    def __call__(self, h: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        lost = self.lost_before
        crops: dict[str, np.ndarray] = {}
        for j, (s1, b1, conv1, conv2, trim) in enumerate(self.units):
            y = h * s1
            y += b1
            y = self._act(conv1(self._act(y)))
            y = conv2(y)
            y += h[:, :, trim: h.shape[2] - trim]
            h, lost = y, lost + trim
            u = self.first + j + 1
            if u in self.skip_after:
                c = FLANK - lost
                crops[f"h{u}"] = np.ascontiguousarray(h[:, :, c: h.shape[2] - c])
        return h, crops
