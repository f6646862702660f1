"""Base-model weights in one framework-neutral form (numpy arrays in PyTorch layouts: conv
``(out, in, k)``), read from SpliceAI's Keras ``.h5`` files, OpenSpliceAI's ``.pt`` checkpoints or
CI-SpliceAI's frozen TensorFlow graph (``.pb``) — no reader needs TensorFlow, Keras or PyTorch.

The network they fill is SpliceAI-10k: a 1x1 conv 4->32, four stacks of four residual units
(BN -> activation -> dilated conv, twice, plus identity), kernel/dilation 11/1, 11/4, 21/10, 41/25,
a 1x1 "skip" conv after the stem and after every stack (summed), a 1x1 conv to 3 classes, softmax.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import FLANK
from ..errors import InputError
from .checkpoint import read_state_dict
from .tfgraph import read_graph

#: channels of every hidden layer
WIDTH = 32
#: (kernel, dilation) of the four stacks; each stack has four residual units
STACKS: tuple[tuple[int, int], ...] = ((11, 1), (11, 4), (21, 10), (41, 25))
UNITS_PER_STACK = 4
#: total context the network reads (FLANK on each side of every output)
CONTEXT = 2 * FLANK


@dataclass
class Weights:
    """One ensemble member. ``bn*`` are (gamma, beta, mean, var); convs are (weight, bias)."""

    stem: tuple[np.ndarray, np.ndarray]
    skips: list[tuple[np.ndarray, np.ndarray]]  # 5: after the stem, then after each stack
    units: list[dict[str, tuple[np.ndarray, ...]]]  # 16: bn1, conv1, bn2, conv2
    out: tuple[np.ndarray, np.ndarray]
    eps: float
    leaky: float  # slope of the activation for x < 0 (0 = ReLU)


def unit_shapes() -> list[tuple[int, int]]:
    """(kernel, dilation) of each of the 16 residual units, in order."""
    return [kd for kd in STACKS for _ in range(UNITS_PER_STACK)]


def unit_trim(i: int) -> int:
    """Nucleotides residual unit ``i`` loses on each side (its two unpadded convs): ``d (k - 1)``."""
    k, d = unit_shapes()[i]
    return d * (k - 1)


def bn_affine(p: tuple[np.ndarray, ...], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """A BatchNorm (gamma, beta, mean, var) as a per-channel ``x * scale + shift``, in float64."""
    gamma, beta, mean, var = (np.asarray(x).astype(np.float64) for x in p)
    scale = gamma / np.sqrt(var + eps)
    return scale, beta - mean * scale


def folded_conv1(unit: dict[str, tuple[np.ndarray, ...]], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """A residual unit's first conv with the BatchNorm that directly follows it folded in (weight * scale,
    bias * scale + shift), in float64: what every runtime computes as that unit's conv1."""
    s2, b2 = bn_affine(unit["bn2"], eps)
    w1, c1 = unit["conv1"]
    return np.asarray(w1).astype(np.float64) * s2[:, None, None], np.asarray(c1).astype(np.float64) * s2 + b2


def check_shapes(w: Weights, source: Path) -> None:
    """Raise InputError naming the first tensor whose shape is not SpliceAI-10k's."""
    expected: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = [
        ("stem.weight", (WIDTH, 4, 1), w.stem[0].shape),
        ("stem.bias", (WIDTH,), w.stem[1].shape),
        ("out.weight", (3, WIDTH, 1), w.out[0].shape),
        ("out.bias", (3,), w.out[1].shape),
    ]
    if len(w.skips) != len(STACKS) + 1 or len(w.units) != len(STACKS) * UNITS_PER_STACK:
        raise InputError(
            f"weights {source} have {len(w.units)} residual units and {len(w.skips)} skip convs, "
            f"expected {len(STACKS) * UNITS_PER_STACK} and {len(STACKS) + 1} (a SpliceAI-10k / 10,000-nt model)"
        )
    for i, (sw, sb) in enumerate(w.skips):
        expected += [(f"skip{i}.weight", (WIDTH, WIDTH, 1), sw.shape), (f"skip{i}.bias", (WIDTH,), sb.shape)]
    for i, (u, (k, _)) in enumerate(zip(w.units, unit_shapes())):
        for conv in ("conv1", "conv2"):
            expected += [
                (f"unit{i}.{conv}.weight", (WIDTH, WIDTH, k), u[conv][0].shape),
                (f"unit{i}.{conv}.bias", (WIDTH,), u[conv][1].shape),
            ]
        for bn in ("bn1", "bn2"):
            expected += [(f"unit{i}.{bn}", (WIDTH,), p.shape) for p in u[bn]]
    for name, want, got in expected:
        if tuple(got) != want:
            raise InputError(
                f"weights {source}: {name} has shape {tuple(got)}, expected {want}; "
                "these are not SpliceAI-10k (10,000-nt context) weights — give the right file with --weights"
            )


def read_keras_h5(path: Path) -> Weights:
    """Read one SpliceAI Keras model file (the ``spliceai`` package's ``spliceai{1..5}.h5``).

    Keras names layers by creation order (``conv1d_N``, ``batch_normalization_N``): sorted by N they are
    the layers :func:`spliceai_from_layers` expects; kernel sizes and dilations come from the config.
    """
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"cannot read Keras weights {path}: {err} (reinstall with: pip install spliceai)") from None
    with fh:
        try:
            cfg = json.loads(fh.attrs["model_config"])
            layers = {layer["name"]: layer for layer in cfg["config"]["layers"]}
            mw = fh["model_weights"]

            def numbered(prefix: str) -> list[str]:
                names = [n for n in layers if n.startswith(prefix + "_") and n[len(prefix) + 1 :].isdigit()]
                return sorted(names, key=lambda n: int(n[len(prefix) + 1 :]))

            def arr(layer: str, var: str) -> np.ndarray:
                group = mw[layer]
                key = next(k for k in _walk(group) if k.rsplit("/", 1)[-1].startswith(var + ":"))
                return np.asarray(group[key], dtype=np.float32)

            def conv(layer: str) -> tuple[np.ndarray, np.ndarray]:
                return np.ascontiguousarray(arr(layer, "kernel").transpose(2, 1, 0)), arr(layer, "bias")

            def bn(layer: str) -> tuple[np.ndarray, ...]:
                return tuple(arr(layer, v) for v in ("gamma", "beta", "moving_mean", "moving_variance"))

            convs, bns = numbered("conv1d"), numbered("batch_normalization")
            eps = {layers[b]["config"]["epsilon"] for b in bns}
            layer_convs = [(*conv(c), layers[c]["config"]["kernel_size"][0], layers[c]["config"]["dilation_rate"][0]) for c in convs]
            layer_bns = [bn(b) for b in bns]
        except (KeyError, StopIteration, ValueError, TypeError, IndexError) as err:
            raise InputError(f"{path} is not a SpliceAI Keras model file ({err!r}); reinstall: pip install spliceai") from None
    if len(eps) > 1:
        raise InputError(f"weights {path}: BatchNorm layers with different epsilons {sorted(eps)}; not a SpliceAI-10k model")
    return spliceai_from_layers(path, layer_convs, layer_bns, eps=float(min(eps, default=0.0)), leaky=0.0)


def spliceai_from_layers(path: Path, convs: list[tuple[np.ndarray, np.ndarray, int, int]], bns: list[tuple[np.ndarray, ...]],
                         *, eps: float, leaky: float) -> Weights:
    """One member from its conv layers ``(weight (out, in, k), bias, kernel, dilation)`` and BatchNorms
    ``(gamma, beta, mean, var)`` in Keras creation order, as SpliceAI's model code makes them: stem conv,
    first skip conv, then per stack four units (conv, conv; a BN before each) and the stack's skip conv,
    then the output conv. Kernel sizes and dilations are checked against that plan."""
    n_units = len(STACKS) * UNITS_PER_STACK
    if len(convs) != 2 * n_units + len(STACKS) + 3 or len(bns) != 2 * n_units:
        raise InputError(
            f"weights {path}: {len(convs)} conv and {len(bns)} BatchNorm layers, expected "
            f"{2 * n_units + len(STACKS) + 3} and {2 * n_units}; not a SpliceAI-10k model"
        )
    it = iter(enumerate(convs[2:-1], start=2))
    units, skips = [], [convs[1][:2]]
    for s, (k, d) in enumerate(STACKS):
        for u in range(UNITS_PER_STACK):
            idx = s * UNITS_PER_STACK + u
            c1, c2 = next(it), next(it)
            for i, (_, _, kc, dc) in (c1, c2):
                if (kc, dc) != (k, d):
                    raise InputError(
                        f"weights {path}: conv layer {i + 1} has kernel {kc} dilation {dc}, "
                        f"expected {k}/{d}; not a SpliceAI-10k model"
                    )
            units.append({"bn1": bns[2 * idx], "conv1": c1[1][:2], "bn2": bns[2 * idx + 1], "conv2": c2[1][:2]})
        skips.append(next(it)[1][:2])
    w = Weights(stem=convs[0][:2], skips=skips, units=units, out=convs[-1][:2], eps=eps, leaky=leaky)
    check_shapes(w, path)
    return w


def _walk(group: object) -> list[str]:
    """Dataset paths under an h5py group."""
    import h5py

    out: list[str] = []
    group.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)  # type: ignore[attr-defined]
    return out


def read_openspliceai(path: Path) -> Weights:
    """Read one OpenSpliceAI 10,000-nt checkpoint (a PyTorch state dict; LeakyReLU(0.1), BN eps 1e-5),
    without PyTorch (:func:`checkpoint.read_state_dict`)."""
    try:
        sd = read_state_dict(path)
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise InputError(f"cannot read OpenSpliceAI checkpoint {path}: {err}") from None
    sd = {k.removeprefix("module."): v for k, v in sd.items()}

    def t(key: str) -> np.ndarray:
        if key not in sd:
            raise InputError(f"checkpoint {path} has no tensor {key!r}; not an OpenSpliceAI 10,000-nt model")
        return np.array(sd[key], dtype=np.float32)  # a writable copy (the reader maps the file read-only)

    def conv(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        return t(prefix + ".weight"), t(prefix + ".bias")

    def bn(prefix: str) -> tuple[np.ndarray, ...]:
        return tuple(t(f"{prefix}.{v}") for v in ("weight", "bias", "running_mean", "running_var"))

    units, skips = [], [conv("initial_skip.conv")]
    i = 0
    for _ in STACKS:
        for _ in range(UNITS_PER_STACK):
            p = f"residual_units.{i}"
            units.append({"bn1": bn(p + ".batchnorm1"), "conv1": conv(p + ".conv1"), "bn2": bn(p + ".batchnorm2"), "conv2": conv(p + ".conv2")})
            i += 1
        skips.append(conv(f"residual_units.{i}.conv"))
        i += 1
    w = Weights(stem=conv("initial_conv"), skips=skips, units=units, out=conv("final_conv"), eps=1e-5, leaky=0.1)
    check_shapes(w, path)
    return w


def read_cispliceai_pb(path: Path) -> list[Weights]:
    """Read CI-SpliceAI's frozen TensorFlow graph (the ``cispliceai`` package's ``data/CI-SpliceAI.pb``),
    without TensorFlow (:mod:`.tfgraph`): one Weights per ensemble member.

    The graph holds several Keras SpliceAI-10k models side by side, all on the input ``x`` (batch, length, 4),
    their softmaxes stacked and averaged (``Mean`` over a ``Pack``): the layers of member m are the ops of the
    Keras layer scopes ``conv1d_N`` / ``batch_normalization_N`` whose op name carries the suffix ``_m`` (none for
    member 0). Each layer's constants are found by the op structure: a conv is ``Conv2D(ExpandDims(x),
    ExpandDims(W (k, in, out)))``, its dilation the block shape of a ``SpaceToBatchND`` before it, its bias
    the ``BiasAdd`` after it; a BatchNorm is ``x * (rsqrt(var + eps) * gamma) + (beta - mean * (rsqrt(var + eps) * gamma))``.
    Activations are ReLU; the final crop keeps the middle (FLANK nt cut each side, checked).
    """
    try:
        nodes = read_graph(path)
    except (OSError, ValueError) as err:  # WireError is a ValueError
        raise InputError(f"{path} is not a TensorFlow GraphDef (.pb) file ({err}); give CI-SpliceAI.pb "
                         "(pip install --force-reinstall cispliceai)") from None
    by = {n.name: n for n in nodes}
    users: dict[str, list] = {}
    for n in nodes:
        for i in n.inputs:
            users.setdefault(i.split(":")[0], []).append(n)

    def bad(what: str) -> InputError:
        return InputError(f"{path} is a TensorFlow graph but not CI-SpliceAI's ({what}); give CI-SpliceAI.pb "
                          "(pip install --force-reinstall cispliceai)")

    def node(name: str):  # noqa: ANN202
        if name.split(":")[0] not in by:
            raise bad(f"node {name!r} is missing")
        return by[name.split(":")[0]]

    def const(name: str) -> np.ndarray:
        n = node(name)
        while n.op == "Identity":
            n = node(n.inputs[0])
        if n.op != "Const" or not isinstance(n.attrs.get("value"), np.ndarray):
            raise bad(f"{name} is not a constant")
        return n.attrs["value"]  # type: ignore[return-value]

    def user(name: str, op: str):  # noqa: ANN202
        found = [u for u in users.get(name, []) if u.op == op]
        if len(found) != 1:
            raise bad(f"{name} has {len(found)} {op} consumers, expected 1")
        return found[0]

    def conv(c) -> tuple[np.ndarray, np.ndarray, int, int]:  # noqa: ANN001
        k_in_out = const(node(c.inputs[1]).inputs[0]).astype(np.float32)
        src = node(node(c.inputs[0]).inputs[0])
        dilation = int(const(src.inputs[1])[0]) if src.op == "SpaceToBatchND" else max(c.attrs.get("dilations", [1]))  # type: ignore[arg-type]
        n = user(c.name, "Squeeze")
        if not any(u.op == "BiasAdd" for u in users.get(n.name, [])):  # a dilated conv: back from the batch
            n = user(n.name, "BatchToSpaceND")
        bias = const(user(n.name, "BiasAdd").inputs[1]).astype(np.float32)
        return np.ascontiguousarray(k_in_out.transpose(2, 1, 0)), bias, int(k_in_out.shape[0]), dilation

    def bn(rsqrt) -> tuple[tuple[np.ndarray, ...], float]:  # noqa: ANN001
        add = node(rsqrt.inputs[0])
        var, eps = sorted((const(i) for i in add.inputs), key=np.ndim, reverse=True)
        mul = user(rsqrt.name, "Mul")
        gamma = const(next(i for i in mul.inputs if i != rsqrt.name))
        mul2 = next((u for u in users.get(mul.name, []) if u.op == "Mul" and any(x.op == "Sub" for x in users.get(u.name, []))), None)
        if mul2 is None:
            raise bad(f"BatchNorm {rsqrt.name} has no mean * scale term")
        mean = const(next(i for i in mul2.inputs if i != mul.name))
        beta = const(user(mul2.name, "Sub").inputs[0])
        return tuple(np.asarray(a, dtype=np.float32) for a in (gamma, beta, mean, var)), float(eps)

    layer_op = re.compile(r"(?:.*/)?(conv1d|batch_normalization)_(\d+)/(?:conv1d|batchnorm)(?:_(\d+))?(?:/Rsqrt)?")
    members: dict[int, dict[str, dict[int, object]]] = {}
    for n in nodes:
        m = layer_op.fullmatch(n.name)
        if m and n.op == ("Conv2D" if m[1] == "conv1d" else "Rsqrt"):
            members.setdefault(int(m[3] or 0), {"conv1d": {}, "batch_normalization": {}})[m[1]][int(m[2])] = n
    if not members:
        raise bad("no Keras conv1d_N / batch_normalization_N layers")
    relu = sum(n.op == "Relu" for n in nodes)
    others = sorted({n.op for n in nodes if n.op in ("LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "Relu6")})
    if others or relu != 2 * len(STACKS) * UNITS_PER_STACK * len(members):
        raise bad(f"{relu} ReLU activations and {others or 'no other'} activations for {len(members)} members")
    crops = [const(n.inputs[1]) for n in nodes if n.op == "StridedSlice" and "cropping1d" in n.name]
    if len(crops) != len(members) or any(list(c) != [0, FLANK, 0] for c in crops):
        raise bad(f"the output crops are {[list(c) for c in crops]}, expected [0, {FLANK}, 0] per member")
    out = []
    for m in sorted(members):
        layers = members[m]
        convs = [conv(layers["conv1d"][i]) for i in sorted(layers["conv1d"])]
        bns = [bn(layers["batch_normalization"][i]) for i in sorted(layers["batch_normalization"])]
        eps = {e for _, e in bns}
        if len(eps) > 1:
            raise bad(f"member {m} has BatchNorms with different epsilons {sorted(eps)}")
        out.append(spliceai_from_layers(path, convs, [p for p, _ in bns], eps=min(eps, default=0.0), leaky=0.0))
    return out
