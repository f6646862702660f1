"""The base model: SpliceAI-10k (Keras weights of the ``spliceai`` package), OpenSpliceAI, CI-SpliceAI
(the frozen TensorFlow graph of the ``cispliceai`` package, read without TensorFlow) or Pangolin, on ONNX
Runtime (CPU) or PyTorch (CUDA, bfloat16; the optional ``[torch]`` extra).

The network is the published SpliceAI-10k: a 1x1 conv 4->32, four stacks of four
residual units (BN -> activation -> dilated conv, twice, plus identity), kernel/dilation
11/1, 11/4, 21/10, 41/25, a 1x1 "skip" conv after the stem and after every stack (summed),
5,000 nt cropped on each side, a 1x1 conv to 3 classes and a softmax. Outputs are
``[neither, acceptor, donor]``; an ensemble is the mean of its members' probabilities. Pangolin's 12
networks have the same trunk and 12 output channels (per tissue t: softmax pair 3t, 3t + 1 and sigmoid
3t + 2); its outputs are, per tissue, the mean of P(splice) (3t + 1) and of usage (3t + 2) over the three
replicates of that tissue's model: columns ``config.BASE_MODEL_OUTPUTS["pangolin"]``.

Why it is faster than the original while giving the same numbers: every convolution runs
*unpadded* ("valid") and the residual stream is cropped as it goes. The receptive field is
exactly 5,000 nt on each side, so the original's zero padding never reaches a kept output:
the result is identical up to float rounding, with ~10-40 % less work on gene-sized inputs.
The BatchNorm that follows each unit's first convolution is folded into that convolution.

Runtime (chosen by measurement, bench/RESULTS.md): on the CPU, float32 runs on ONNX Runtime (a core
dependency), each member's graph built once from its weights into a cache folder (never into the
repository) by :mod:`.onnx_graph`, without PyTorch; ``bfloat16`` and CUDA run on PyTorch. On the CPU the members run
concurrently, one thread each, rather than each layer split across threads: layers never wait on a
descheduled thread, which matters on shared machines. By default (``conv="fft"``) each member's stacks 3-4
(units 8-15) run as FFT convolutions between an ONNX front and head (:mod:`.fftconv`): 1.2-1.3x faster.

Sequences: :meth:`BaseModel.predict` takes ``flank + body + flank`` strings (flank = 5,000 nt,
transcription orientation) and returns one ``(len(body), C)`` float32 array per input (C: the model's
columns, :data:`config.BASE_MODEL_OUTPUTS`); row i
is body position i (0-based). Long bodies are cut into overlapping chunks, short ones are
batched; neither changes the result beyond float rounding (<= 1e-6).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..config import BASE_MODEL_OUTPUTS, DEFAULT_PREDICT, FLANK, BaseModelName, Convolution, Device, Precision, Runtime
from ..errors import InputError
from .weights import (
    CONTEXT,
    HEAD_CHANNELS,
    STACKS,
    UNITS_PER_STACK,
    WIDTH,
    Weights,
    bn_affine,
    folded_conv1,
    pangolin_files,
    pangolin_groups,
    read_cispliceai_pb,
    read_keras_h5,
    read_openspliceai,
    read_pangolin,
    unit_shapes,
)

log = logging.getLogger(__name__)

#: bump when the network's code changes: invalidates the ONNX graphs in the cache (3: built from the weights; 4: 2-D convs, NCHWc; 5: BN1 and crops as depthwise convs)
_EXPORT_VERSION = 5
#: with ``conv="fft"``, residual units from this one on (stacks 3-4: 21 taps dilated by 10, 41 by 25) run by FFT
FFT_FIRST_UNIT = 8
#: largest fraction of a batched pass that may be right-padding
PAD_WASTE = 0.05
#: an OpenSpliceAI checkpoint (state dict) or a Keras .h5 file holds one ensemble member
SPLICEAI_FILES = tuple(f"spliceai{i}.h5" for i in range(1, 6))
#: CI-SpliceAI's weights: one frozen TensorFlow graph holding its whole ensemble, in the package's data/
CISPLICEAI_FILES = ("CI-SpliceAI.pb",)

_LUT = np.zeros((256, 4), dtype=np.float32)
for _i, _c in enumerate("ACGT"):
    _LUT[ord(_c), _i] = 1.0
    _LUT[ord(_c.lower()), _i] = 1.0


def one_hot(seq: str) -> np.ndarray:
    """One-hot ``(len(seq), 4)`` float32 in A, C, G, T order; N and any other letter are all-zero."""
    return _LUT[np.frombuffer(seq.encode("ascii", "replace"), dtype=np.uint8)]


# ----------------------------------------------------------------------------------------------
# Weights in one canonical, framework-neutral form (numpy, PyTorch layouts: conv (out, in, k))
# ----------------------------------------------------------------------------------------------


def torch_net(w: Weights):  # -> torch.nn.Module
    """A PyTorch module computing one member's probabilities, ``(B, 4, L + 10000) -> (B, C, L)`` (C: 3, Pangolin 12)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def conv(weight: np.ndarray, bias: np.ndarray, dilation: int = 1) -> nn.Conv1d:
        m = nn.Conv1d(weight.shape[1], weight.shape[0], weight.shape[2], dilation=dilation)
        m.weight.data = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        m.bias.data = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
        return m

    slope = w.leaky

    def act(x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if slope == 0.0 else F.leaky_relu(x, slope)

    class Unit(nn.Module):
        def __init__(self, u: dict[str, tuple[np.ndarray, ...]], k: int, d: int) -> None:
            super().__init__()
            s1, b1 = bn_affine(u["bn1"], w.eps)
            self.register_buffer("s1", torch.from_numpy(s1.astype(np.float32)).view(1, -1, 1))
            self.register_buffer("b1", torch.from_numpy(b1.astype(np.float32)).view(1, -1, 1))
            self.conv1 = conv(*folded_conv1(u, w.eps), d)  # BN2 folded in
            self.conv2 = conv(*u["conv2"], d)  # type: ignore[misc]
            self.trim = d * (k - 1)  # nt lost on each side by the two unpadded convs

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv2(act(self.conv1(act(torch.addcmul(self.b1, x, self.s1)))))
            return x[:, :, self.trim : x.shape[2] - self.trim] + y

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = conv(*w.stem)
            self.skips = nn.ModuleList(conv(*s) for s in w.skips)
            self.units = nn.ModuleList(Unit(u, k, d) for u, (k, d) in zip(w.units, unit_shapes()))
            self.out = conv(*w.out)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.stem(x)
            n = h.shape[2] - CONTEXT  # outputs
            skip = self.skips[0](h[:, :, FLANK : FLANK + n])
            lost = 0
            for s in range(len(STACKS)):
                for u in range(UNITS_PER_STACK):
                    unit = self.units[s * UNITS_PER_STACK + u]
                    h = unit(h)
                    lost += unit.trim
                off = FLANK - lost
                skip = skip + self.skips[s + 1](h[:, :, off : off + n])
            z = self.out(skip).float()
            if w.head == "softmax":
                return torch.softmax(z, dim=1)
            t = z.view(z.shape[0], -1, 3, z.shape[2])  # Pangolin: per tissue (not a site, site, usage)
            return torch.cat([torch.softmax(t[:, :, :2], dim=2), torch.sigmoid(t[:, :, 2:])], dim=2).view(z.shape)

    return Net().eval()


class _Ensemble:
    """PyTorch members: ``fns[i](x, lengths)`` maps one-hot ``(B, 4, L + 10000)`` float32 to probabilities ``(B, C, L)``
    (``lengths``: each item's input length before right-padding; unused here)."""

    runtime = "torch"

    def __init__(self, members: list, device, precision: Precision, threads: int) -> None:  # noqa: ANN001
        import torch

        self.device = device
        self.precision = precision
        self.members = [m.to(device) for m in members]
        if precision == "bfloat16" and device.type == "cpu":
            # weights and activations in bfloat16 (oneDNN uses AVX512-BF16 where present);
            # softmax and the ensemble mean stay in float32
            self.members = [m.to(torch.bfloat16) for m in self.members]
        self.dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        if device.type == "cuda" and precision == "float32":
            # exact mode: no TF32 tensor-core rounding in the convolutions (on by default for cuDNN)
            torch.backends.cudnn.allow_tf32 = False
        self.workers = threads if device.type == "cpu" else 1
        self.fns = [self._fn(m) for m in self.members]

    def _fn(self, member):  # noqa: ANN001, ANN202
        import torch

        def run(x: np.ndarray, lengths: Sequence[int] = ()) -> np.ndarray:
            with torch.inference_mode():
                t = torch.from_numpy(x).to(self.device)
                if self.precision == "bfloat16" and self.device.type == "cuda":
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        p = member(t)
                else:
                    p = member(t.to(self.dtype))
                return p.float().cpu().numpy()

        return run

    @staticmethod
    def init_worker() -> None:
        import torch

        torch.set_num_threads(1)


class _OrtEnsemble:
    """The same members exported to ONNX (once, into a cache) and run by ONNX Runtime on the CPU.

    Measured faster than PyTorch eager for float32 on CPUs (see bench/RESULTS.md); same numbers
    up to float rounding (~5e-7).
    """

    runtime = "onnx"
    device_type = "cpu"

    def __init__(self, members: list[Weights], cache_stem: Path, threads: int, intra: int = 0,
                 conv: Convolution = DEFAULT_PREDICT.conv) -> None:
        """``threads`` sessions run in parallel (one intra-op thread each); one at a time uses ``intra``
        threads (0: ONNX Runtime's default, every core; a worker of a parallel run passes its share).
        ``conv="fft"``: each member is its ONNX front (stem, units 0-7), :class:`.fftconv.SpectralUnits`
        (units 8-15, numpy FFTs on the calling thread) and its ONNX head; ``direct``: one graph."""
        import onnxruntime as ort

        from .fftconv import SpectralUnits
        from .onnx_graph import SKIP_AFTER, build_onnx, build_split, save_model

        self.precision = "float32"
        self.workers = threads
        opts = ort_options(1 if threads > 1 else intra)  # parallel across members instead

        def session(path: Path, build: Callable[[], object]):  # noqa: ANN202
            if not path.is_file():
                log.info("building the ONNX graph of a base-model member: %s", path)
                save_model(build(), path)
            return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        self.fns: list[Callable[[np.ndarray, Sequence[int]], np.ndarray]] = []
        for i, m in enumerate(members):
            name = f"{cache_stem.name}-m{i}"
            if conv == "direct":
                s = session(cache_stem.with_name(f"{name}.onnx"), lambda m=m: build_onnx(m))
                self.fns.append(self._fn(s))
                continue
            split = functools.cache(lambda m=m: build_split(m, FFT_FIRST_UNIT))  # built once, if a file is missing
            front = session(cache_stem.with_name(f"{name}-front{FFT_FIRST_UNIT}.onnx"), lambda split=split: split()[0])
            head = session(cache_stem.with_name(f"{name}-head{FFT_FIRST_UNIT}.onnx"), lambda split=split: split()[1])
            self.fns.append(self._split_fn(front, SpectralUnits(m, FFT_FIRST_UNIT, SKIP_AFTER), head))

    @staticmethod
    def _fn(session):  # noqa: ANN001, ANN205
        return lambda x, lengths=(): session.run(None, {"x": x})[0]

    @staticmethod
    def _split_fn(front, units, head):  # noqa: ANN001, ANN205
        last = f"h{len(units.taps)}"

        def run(x: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
            """Each item of the batch goes through the FFT units alone, cut to its own length: its numbers then
            depend on it alone, not on what it was batched with (a product's rounding depends on its column
            count), so serial, --workers and Ray runs write the same bytes."""
            h, s = front.run(None, {"x": x})
            outs = x.shape[2] - CONTEXT
            feeds = {"s": s, last: np.zeros((x.shape[0], h.shape[1], outs), dtype=np.float32)}
            for j, n in enumerate(lengths):
                own = n - CONTEXT  # this item's outputs
                hj, crops = units(np.ascontiguousarray(h[j: j + 1, :, : own + 2 * (FLANK - units.lost_before)]))
                feeds[last][j, :, :own] = hj[0]
                for k, v in crops.items():
                    feeds.setdefault(k, np.zeros_like(feeds[last]))[j, :, :own] = v[0]
            return head.run(None, feeds)[0]

        return run

    @staticmethod
    def init_worker() -> None:
        return None


def ort_options(intra: int):  # -> onnxruntime.SessionOptions
    """Session options of every base-model session on the CPU: ``intra`` intra-op threads (0: all cores),
    one inter-op thread, no memory arena (an arena per session keeps that session's largest pass), quiet."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 3
    return opts


def _cache_dir() -> Path:
    """Where exported runtimes go: $META_SPLICEAI_CACHE, else $XDG_CACHE_HOME/meta-spliceai, else ~/.cache/meta-spliceai."""
    env = os.environ.get("META_SPLICEAI_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "meta-spliceai"


#: how to install the optional PyTorch runtime (CUDA GPUs, bfloat16)
TORCH_EXTRA = "pip install 'meta-spliceai[torch]' (a CPU-only build: pip install torch --index-url https://download.pytorch.org/whl/cpu)"


def torch_available() -> bool:
    """PyTorch importable (the CUDA and bfloat16 runtime; the CPU runs on ONNX Runtime without it)."""
    return importlib.util.find_spec("torch") is not None


def cpu_threads() -> int:
    """Threads this process may use: PyTorch's setting when it is loaded, else ``OMP_NUM_THREADS``
    (set for workers of a parallel run), else the usable cores."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    from ..parallel import usable_cores

    env = os.environ.get("OMP_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else usable_cores()


def cpu_bfloat16_native(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this CPU has bfloat16 instructions (x86 AVX512-BF16 or AMX-BF16, Arm BF16), read from
    ``cpuinfo``; ``None`` where that cannot be told (no such file or no flags line)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(value.split()))
    return None


def onnxruntime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


class BaseModel:
    """A loaded base-model ensemble: ``predict(seqs)`` gives per-nucleotide probabilities.

    Attributes: ``name`` (``spliceai``/``openspliceai``/``cispliceai``/``pangolin``), ``version``, ``digest``
    (SHA-256 over the weight files), ``device`` (``cpu``/``cuda``), ``precision``, ``n_members``, ``columns``
    (what ``predict`` returns, :data:`config.BASE_MODEL_OUTPUTS` of ``name``).

    ``groups`` says how the members combine: per block of output columns, in order, (member indices, the
    channels of those members' outputs averaged); default: every member, every channel (the plain mean).
    """

    def __init__(
        self,
        name: BaseModelName,
        version: str,
        digest: str,
        members: list[Weights],
        device: str,
        precision: Precision,
        chunk_size: int = DEFAULT_PREDICT.chunk_size,
        batch_size: int = DEFAULT_PREDICT.batch_size,
        runtime: str = "torch",
        conv: Convolution = DEFAULT_PREDICT.conv,
        groups: Sequence[tuple[Sequence[int], Sequence[int]]] | None = None,
    ) -> None:
        self.name = name
        self.columns: tuple[str, ...] = BASE_MODEL_OUTPUTS[name]
        self.groups = member_groups(members, groups)
        if sum(len(c) for _, c in self.groups) != len(self.columns):
            raise ValueError(f"base model {name}: the member groups give {sum(len(c) for _, c in self.groups)} columns, "
                             f"expected {len(self.columns)} ({', '.join(self.columns)})")
        self.version = version
        self.digest = digest
        self.device = device
        self.precision = precision
        self.n_members = len(members)
        self.members = list(members)  # the weights (the cone engine of variant scoring builds its pieces from them)
        self.chunk_size = int(chunk_size)
        self.batch_size = int(batch_size)
        cores = cpu_threads()
        threads = max(1, min(cores, len(members)))
        self._ens: _Ensemble | _OrtEnsemble | None = None
        if runtime in ("onnx", "auto-onnx"):
            stem = _cache_dir() / "onnx" / f"{name}-{digest}-v{_EXPORT_VERSION}"
            try:
                self._ens = _OrtEnsemble(members, stem, threads, intra=cores, conv=conv)
            except Exception as err:  # graph or session failure: PyTorch gives the same numbers
                if runtime == "onnx" or not torch_available():
                    raise InputError(f"ONNX Runtime could not run the base model ({err}); "
                                     f"use --runtime torch ({TORCH_EXTRA})") from None
                log.warning("ONNX Runtime unavailable (%s); running the base model with PyTorch", err)
        if self._ens is None:
            import torch

            self._ens = _Ensemble([torch_net(w) for w in members], torch.device(device), precision, threads)
        log.debug("base model %s: runtime %s, %d members on %d thread(s)", name, self._ens.runtime, len(members), threads)
        self.runtime = self._ens.runtime
        self._pool = None

    def __repr__(self) -> str:
        return f"BaseModel({self.name} {self.version}, {self.n_members} models, {self.device}, {self.precision}, {self.runtime})"

    def metadata(self) -> dict[str, str]:
        """What identifies this model's predictions (stored with them; a store refuses others)."""
        return {"base_model": self.name, "version": self.version, "digest": self.digest, "precision": self.precision}

    def predict(self, seqs: Sequence[str], *, batch_size: int | None = None, chunk_size: int | None = None,
                on_progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
        """Scores ``(len(body), C)`` float32 for each input, columns :attr:`columns` (SpliceAI: ``[neither,
        acceptor, donor]``; Pangolin: per tissue P(splice site) and usage).

        Each input is ``flank + body + flank`` (5,000 nt each side, ACGTN, transcription
        orientation); row i of the result is body position i (0-based). Bodies longer than
        ``chunk_size`` are scored in overlapping pieces, inputs of similar length are batched (up to
        ``batch_size`` per pass and ``chunk_size`` body nt per pass, at most 5 % padding) — same
        results either way. ``on_progress(nt)`` is called after each pass with the body nucleotides it
        scored (progress within a long gene: one call per chunk of at most ``chunk_size`` nt).
        """
        bs = max(1, batch_size or self.batch_size)
        cs = max(1, chunk_size or self.chunk_size)
        lengths = [len(s) - CONTEXT for s in seqs]
        for i, n in enumerate(lengths):
            if n < 1:
                raise InputError(
                    f"input sequence {i} has {len(seqs[i])} nt; the base model needs the body plus "
                    f"{FLANK} nt of flank on each side (> {CONTEXT} nt)"
                )
        # work items: (sequence index, body start, body end), long bodies cut into even pieces
        items: list[tuple[int, int, int]] = []
        for i, n in enumerate(lengths):
            pieces = -(-n // cs)
            step = -(-n // pieces)
            items += [(i, a, min(a + step, n)) for a in range(0, n, step)]
        items.sort(key=lambda it: it[2] - it[1], reverse=True)
        passes: list[list[tuple[int, int, int]]] = []
        k = 0
        while k < len(items):
            longest = items[k][2] - items[k][1]
            # batch while padding to the longest wastes <= PAD_WASTE of the pass (padding is pure extra work)
            take, real = 1, longest + CONTEXT
            while k + take < len(items) and take < bs and (take + 1) * longest <= cs:
                n = items[k + take][2] - items[k + take][1]
                if (take + 1) * (longest + CONTEXT) * (1 - PAD_WASTE) > real + n + CONTEXT:
                    break
                take, real = take + 1, real + n + CONTEXT
            passes.append(items[k : k + take])
            k += take
        out = [np.empty((n, len(self.columns)), dtype=np.float32) for n in lengths]
        window = 2 * self._ens.workers  # passes in flight: bounds memory, keeps every worker busy
        log.debug("base model: %d input(s), %d nt in %d pass(es) of <= %d nt", len(seqs), sum(lengths), len(passes), cs)
        for w in range(0, len(passes), window):
            chunk = passes[w : w + window]
            inputs = [(self._one_hot_batch([seqs[i][a : b + CONTEXT] for i, a, b in ps]), [b - a + CONTEXT for _, a, b in ps])
                      for ps in chunk]
            for ps, probs in zip(chunk, self._run(inputs)):
                for (i, a, b), p in zip(ps, probs):
                    out[i][a:b] = p[:, : b - a].T
                if on_progress is not None:
                    on_progress(sum(b - a for _, a, b in ps))
        return out

    @staticmethod
    def _one_hot_batch(parts: list[str]) -> np.ndarray:
        """``(B, 4, longest)`` float32, right-padded with N (no kept output sees padding: the convs are unpadded)."""
        x = np.zeros((len(parts), 4, max(len(s) for s in parts)), dtype=np.float32)
        for j, s in enumerate(parts):
            x[j, :, : len(s)] = one_hot(s).T
        return x

    def _run(self, inputs: list[tuple[np.ndarray, list[int]]]) -> Iterator[np.ndarray]:
        """Ensemble scores ``(B, C, L)`` for each input (:func:`combine_members`), in order, each as soon as it is done. On the CPU the
        (input, member) tasks run on ``workers`` threads of one intra-op thread each: no thread ever waits on
        another mid-layer, which keeps throughput on a busy (shared) machine; sums are in member order
        (deterministic)."""
        fns = self._ens.fns
        if self._ens.workers <= 1:
            rows: Iterator[list[np.ndarray]] = ([f(x, n) for f in fns] for x, n in inputs)
        else:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self._ens.workers, thread_name_prefix="basemodel", initializer=self._ens.init_worker)
            futures = [[self._pool.submit(f, x, n) for f in fns] for x, n in inputs]  # all in flight at once
            rows = ([fu.result() for fu in row] for row in futures)
        for row in rows:
            yield combine_members(row, self.groups)


Groups = list[tuple[list[int], list[int]]]


def member_groups(members: Sequence[Weights], groups: Sequence[tuple[Sequence[int], Sequence[int]]] | None) -> Groups:
    """How members combine into a model's columns: ``groups`` as lists, or by default one group of every member
    and every output channel."""
    channels = HEAD_CHANNELS[members[0].head]
    return [(list(m), list(c)) for m, c in (groups or [(range(len(members)), range(channels))])]


def combine_members(outs: Sequence[np.ndarray], groups: Groups) -> np.ndarray:
    """Members' outputs ``(..., channels, L)`` as the model's ``(..., C, L)``: per group the mean of its members'
    chosen channels, summed in member order (deterministic), the groups' blocks side by side."""
    parts = []
    for members, channels in groups:
        total = outs[members[0]][..., channels, :].astype(np.float32, copy=True)
        for m in members[1:]:
            total += outs[m][..., channels, :]
        parts.append(total / np.float32(len(members)))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-2)


def _package_files(package: str, folder: str, names: Sequence[str], hint: str) -> list[Path]:
    """Weight files installed with a Python package (never copied here), found without importing it
    (``cispliceai`` would import TensorFlow); ``hint`` is the alternative the error offers."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the {package} weights come from the '{package}' package, which is not installed: "
                         f"pip install {package} ({hint})")
    root = Path(next(iter(spec.submodule_search_locations))) / folder
    files = [root / f for f in names]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise InputError(f"the '{package}' package at {root.parent} lacks {', '.join(missing)}; reinstall it: pip install --force-reinstall {package}")
    return files


def _spliceai_files() -> list[Path]:
    """The five Keras model files installed with the ``spliceai`` package."""
    return _package_files("spliceai", "models", SPLICEAI_FILES, "or use --base-model openspliceai --weights DIR")


def _weight_files(weights: Path, suffixes: tuple[str, ...]) -> list[Path]:
    weights = Path(weights)
    if weights.is_dir():
        files = sorted(p for p in weights.iterdir() if p.suffix in suffixes and p.is_file())
        if not files:
            raise InputError(f"no {'/'.join(suffixes)} weight files in {weights} (give a folder of checkpoints with --weights)")
        return files
    if weights.is_file():
        return [weights]
    raise InputError(f"weights not found: {weights} (give an existing file or folder with --weights)")


def _digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def resolve_device(device: Device) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible (PyTorch installed), else ``cpu``; ``cuda`` without one is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if device == "cpu":
        return "cpu"
    if not torch_available():
        if device == "cuda":
            raise InputError(f"--device cuda runs the base model with PyTorch, which is not installed: {TORCH_EXTRA}")
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA GPU is visible to PyTorch (use --device cpu or auto, or install a CUDA build of torch)")
    if device not in ("cpu", "cuda"):
        raise InputError(f"unknown device {device!r}; choose auto, cpu or cuda")
    return device


def load_base_model(
    name: BaseModelName = "spliceai",
    *,
    weights: Path | None = None,
    device: Device = "auto",
    precision: Precision = "float32",
    chunk_size: int = DEFAULT_PREDICT.chunk_size,
    batch_size: int = DEFAULT_PREDICT.batch_size,
    runtime: Runtime = DEFAULT_PREDICT.runtime,
    conv: Convolution = DEFAULT_PREDICT.conv,
) -> BaseModel:
    """Load a base-model ensemble.

    ``spliceai``: the five Keras models of the installed ``spliceai`` package (or the ``.h5``
    file(s) at ``weights``). ``openspliceai``: the PyTorch checkpoints (``*.pt``) in the folder or
    file ``weights``. ``cispliceai``: the frozen graph ``CI-SpliceAI.pb`` of the installed ``cispliceai``
    package (or the ``.pb`` file(s) at ``weights``), five members in one graph. ``pangolin``: the folder
    ``weights`` of Pangolin's 12 networks, combined per tissue (:func:`.weights.pangolin_groups`).
    ``precision='bfloat16'`` runs the convolutions in bfloat16 (faster on CPUs with AVX512-BF16 and on GPUs;
    not exact). ``runtime``: ``auto`` runs float32 on the CPU with
    ONNX Runtime when it is installed (``pip install meta-spliceai[onnx]``; faster), else PyTorch.
    ``conv`` (ONNX Runtime only): ``fft`` computes the 21- and 41-tap stacks by FFT (faster, the same
    numbers to ~1e-7), ``direct`` as convolutions.
    """
    if conv not in ("fft", "direct"):
        raise InputError(f"unknown convolution {conv!r}; choose fft or direct")
    if runtime not in ("auto", "torch", "onnx"):
        raise InputError(f"unknown runtime {runtime!r}; choose auto, torch or onnx")
    if precision not in ("float32", "bfloat16"):
        raise InputError(f"unknown precision {precision!r}; choose float32 or bfloat16")
    dev = resolve_device(device)
    groups = None
    if name == "spliceai":
        if weights is None:
            files = _spliceai_files()
            version = importlib.metadata.version("spliceai")
        else:
            files = _weight_files(weights, (".h5",))
            version = f"custom:{Path(weights).name}"
        members = [read_keras_h5(f) for f in files]
    elif name == "openspliceai":
        if weights is None:
            raise InputError(
                "--base-model openspliceai needs --weights DIR: a folder of OpenSpliceAI 10,000-nt checkpoints "
                "(model_10000nt_rs*.pt, e.g. OpenSpliceAI's MANE models)"
            )
        files = _weight_files(weights, (".pt", ".pth"))
        version = Path(weights).name
        members = [read_openspliceai(f) for f in files]
    elif name == "cispliceai":
        if weights is None:
            files = _package_files("cispliceai", "data", CISPLICEAI_FILES, "or give a copy of CI-SpliceAI.pb with --weights")
            version = importlib.metadata.version("cispliceai")
        else:
            files = _weight_files(weights, (".pb",))
            version = f"custom:{Path(weights).name}"
        members = [w for f in files for w in read_cispliceai_pb(f)]  # each graph holds a whole ensemble
    elif name == "pangolin":
        files = pangolin_files(weights)
        version = Path(weights).resolve().name or "pangolin-v2"  # type: ignore[arg-type]
        members = [read_pangolin(f) for f in files]
        groups = pangolin_groups()
    else:
        raise InputError(f"unknown base model {name!r}; choose spliceai, openspliceai, cispliceai or pangolin")
    ort_ok = dev == "cpu" and precision == "float32"
    if runtime == "onnx" and not ort_ok:
        raise InputError("runtime onnx runs float32 on the CPU only; use --device cpu --precision float32, or runtime torch")
    if runtime == "onnx" and not onnxruntime_available():
        raise InputError("runtime onnx needs onnxruntime and onnx: pip install onnx onnxruntime")
    if runtime == "auto":
        runtime = "auto-onnx" if ort_ok and onnxruntime_available() else "torch"
    if runtime == "torch" and not torch_available():
        why = "bfloat16" if precision == "bfloat16" else "--runtime torch" if dev == "cpu" and ort_ok else "this run"
        raise InputError(f"{why} needs PyTorch, which is not installed: {TORCH_EXTRA}")
    if precision == "bfloat16" and dev == "cpu" and cpu_bfloat16_native() is False:
        # without the instructions PyTorch emulates bfloat16: 72x slower than float32 on an AVX2 CPU (2,000 nt)
        raise InputError("--precision bfloat16 needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX); this one "
                         "would emulate them, ~70x slower than float32: use --precision float32 (exact), or a GPU")
    model = BaseModel(name, version, _digest(files), members, dev, precision, chunk_size, batch_size, runtime, conv, groups)
    log.info("loaded %r from %s", model, os.path.commonpath([str(f) for f in files]))
    return model


def random_weights(n_members: int = 1, *, seed: int = 0) -> list[Weights]:
    """SpliceAI-10k-shaped members with random weights: for plumbing tests and benchmarks only."""
    rng = np.random.default_rng(seed)

    def conv(o: int, i: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.normal(0, (i * k) ** -0.5, (o, i, k)).astype(np.float32), rng.normal(0, 0.1, o).astype(np.float32)

    def bn() -> tuple[np.ndarray, ...]:
        return tuple(x.astype(np.float32) for x in (rng.uniform(0.5, 1.5, WIDTH), rng.normal(0, 0.1, WIDTH), rng.normal(0, 0.5, WIDTH), rng.uniform(0.5, 2.0, WIDTH)))

    return [
        Weights(
            stem=conv(WIDTH, 4, 1),
            skips=[conv(WIDTH, WIDTH, 1) for _ in range(len(STACKS) + 1)],
            units=[{"bn1": bn(), "conv1": conv(WIDTH, WIDTH, k), "bn2": bn(), "conv2": conv(WIDTH, WIDTH, k)} for k, _ in unit_shapes()],
            out=conv(3, WIDTH, 1),
            eps=1e-3,
            leaky=0.0,
        )
        for _ in range(n_members)
    ]


def random_model(n_members: int = 1, *, seed: int = 0, runtime: Runtime = "auto", **kw: object) -> BaseModel:
    """A SpliceAI-10k-shaped ensemble with random weights (:func:`random_weights`): plumbing tests only."""
    members = random_weights(n_members, seed=seed)
    if runtime == "auto":
        runtime = "auto-onnx" if onnxruntime_available() else "torch"  # type: ignore[assignment]
    digest = hashlib.sha256(f"random-{n_members}-{seed}".encode()).hexdigest()[:16]
    return BaseModel("spliceai", f"random-{seed}", digest, members, "cpu", "float32", runtime=runtime, **kw)  # type: ignore[arg-type]
