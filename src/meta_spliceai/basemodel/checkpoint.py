"""PyTorch state-dict checkpoints (``torch.save`` zip format) read into numpy arrays, without PyTorch.

Only what a plain state dict holds is understood: an (Ordered)dict of tensors (and, optionally, a
``{"state_dict": ...}`` wrapper and scalar/str metadata). The unpickler resolves a short allow-list
of globals, like ``torch.load(weights_only=True)``; anything else is refused, so a malicious pickle
can run no code.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

_STORAGES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):  # noqa: ANN001, ANN202
    arr: np.ndarray = storage  # resolved by persistent_load
    itemsize = arr.dtype.itemsize
    if len(size) == 0:
        return np.array(arr[offset])  # a 0-d array
    view = np.lib.stride_tricks.as_strided(arr[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return np.ascontiguousarray(view)


class _Unpickler(pickle.Unpickler):
    """Unpickles a state dict only: tensors come from the zip's storages, any other global is refused."""

    def __init__(self, fh, zf: zipfile.ZipFile, prefix: str, byteorder: str) -> None:  # noqa: ANN001
        super().__init__(fh)
        self._zf, self._prefix, self._bo = zf, prefix, byteorder

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGES:
            return _STORAGES[name]
        raise pickle.UnpicklingError(f"checkpoint refers to {module}.{name}, which a state dict does not need")

    def persistent_load(self, pid):  # noqa: ANN001, ANN201
        kind, dtype, key, _location, numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        raw = self._zf.read(f"{self._prefix}data/{key}")
        dt = np.dtype(dtype).newbyteorder("<" if self._bo == "little" else ">")
        arr = np.frombuffer(raw, dtype=dt, count=int(numel))
        return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """``{name: array}`` of a ``torch.save``'d state dict (zip format, torch >= 1.6)."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.endswith("data.pkl") and n.count("/") == 1), None)
        if pkl is None:
            raise ValueError(f"{path} is not a torch.save zip checkpoint (no */data.pkl)")
        prefix = pkl[: -len("data.pkl")]
        bo = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        with zf.open(pkl) as fh:
            obj = _Unpickler(fh, zf, prefix, bo).load()
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
