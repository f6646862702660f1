"""A frozen TensorFlow graph (``GraphDef``, a ``.pb`` file) read without TensorFlow: a minimal
protobuf wire-format reader and the few messages of TensorFlow's ``graph.proto`` / ``node_def.proto`` /
``attr_value.proto`` / ``tensor.proto`` that a frozen graph's nodes and constants need.

Wire format (protobuf encoding): each field is a varint key ``(field_number << 3) | wire_type``, then
wire type 0 a varint, 1 eight bytes, 2 a varint length and that many bytes (strings, sub-messages,
packed repeated scalars), 5 four bytes. Field numbers used here (TensorFlow's public .proto files):

- ``GraphDef``: node = 1 (repeated NodeDef);
- ``NodeDef``: name = 1, op = 2, input = 3 (repeated), attr = 5 (map<string, AttrValue>: entries key = 1, value = 2);
- ``AttrValue``: list = 1, s = 2, i = 3, f = 4, b = 5, type = 6, shape = 7, tensor = 8;
  ``AttrValue.ListValue``: s = 2, i = 3 (packed), f = 4 (packed);
- ``TensorProto``: dtype = 1, tensor_shape = 2, tensor_content = 4, float_val = 5, double_val = 6,
  int_val = 7, int64_val = 10, bool_val = 11 (all packed);
- ``TensorShapeProto``: dim = 2 (``Dim``: size = 1), unknown_rank = 3.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

#: TensorFlow DataType enum -> numpy dtype (the types a frozen graph's constants use)
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 4: np.dtype("u1"), 5: np.dtype("<i2"),
    6: np.dtype("i1"), 9: np.dtype("<i8"), 10: np.dtype("bool"),
}


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """The unsigned varint at byte offset ``pos`` (0-based) and the offset after it."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """``(field_number, wire_type, value)`` of every field of one message, in order: wire type 0 gives an
    int, 1 and 5 the raw 8 / 4 bytes, 2 the bytes (zero-copy views of ``buf``)."""
    buf = memoryview(buf)
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = varint(buf, pos)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise WireError(f"field number 0 at byte {pos}")
        if wt == 0:
            value, pos = varint(buf, pos)
            yield num, wt, value
            continue
        if wt == 2:
            n, pos = varint(buf, pos)
        elif wt in (1, 5):
            n = 8 if wt == 1 else 4
        else:
            raise WireError(f"unsupported wire type {wt} (field {num})")
        if pos + n > end:
            raise WireError(f"field {num} runs past the end of its message")
        yield num, wt, buf[pos : pos + n]
        pos += n


def _packed(wt: int, value: Any, fmt: str) -> list:
    """A repeated scalar field's values, packed (wire type 2) or one per field (0: varint, 1 / 5: fixed);
    ``fmt`` is ``f`` (float32), ``d`` (float64) or empty (varints)."""
    if wt == 0 and not fmt:
        return [value]
    if wt in (1, 5) and fmt == ("d" if wt == 1 else "f"):
        return list(struct.unpack("<" + fmt, bytes(value)))
    if wt != 2:
        raise WireError(f"wire type {wt} for a repeated {'float' if fmt else 'integer'} field")
    raw = bytes(value)
    if fmt:
        if len(raw) % struct.calcsize(fmt):
            raise WireError("packed floats of a length that is not a multiple of their size")
        return list(np.frombuffer(raw, dtype="<" + fmt))
    out, pos = [], 0
    while pos < len(raw):
        v, pos = varint(raw, pos)
        out.append(v)
    return out


def _signed(v: int) -> int:
    """A varint read as a two's-complement int64 (protobuf int32/int64 fields)."""
    return v - (1 << 64) if v >= 1 << 63 else v


def parse_shape(buf: memoryview) -> tuple[int, ...] | None:
    """A ``TensorShapeProto`` as a tuple (-1 for an unknown dim), None for an unknown rank."""
    dims: list[int] = []
    for num, _, value in fields(buf):
        if num == 3 and value:
            return None
        if num == 2:
            size = 0
            for n2, _, v2 in fields(value):
                if n2 == 1:
                    size = _signed(v2)
            dims.append(size)
    return tuple(dims)


def parse_tensor(buf: memoryview) -> np.ndarray | None:
    """A ``TensorProto`` as a numpy array (``tensor_content`` bytes, or the typed value lists; a single
    value with a non-scalar shape is broadcast, no values are zeros, as in TensorFlow); None for a
    DataType outside :data:`DTYPES` (strings, half floats, resources: no weights are stored that way)."""
    dtype_id, shape, content = 0, (), None
    values: list = []
    for num, wt, value in fields(buf):
        if num == 1:
            dtype_id = value
        elif num == 2:
            shape = parse_shape(value) or ()
        elif num == 4:
            content = bytes(value)
        elif num == 5:
            values += _packed(wt, value, "f")
        elif num == 6:
            values += _packed(wt, value, "d")
        elif num in (7, 10, 11):
            values += [_signed(v) for v in _packed(wt, value, "")]
    if dtype_id not in DTYPES:
        return None
    dtype = DTYPES[dtype_id]
    size = int(np.prod(shape, dtype=np.int64))
    if content is not None:
        if len(content) % dtype.itemsize:
            raise WireError(f"tensor_content of {len(content)} bytes for {dtype} values")
        arr = np.frombuffer(content, dtype=dtype).copy()
    elif len(values) == size:
        arr = np.asarray(values, dtype=dtype)
    elif len(values) == 1:
        arr = np.full(size, values[0], dtype=dtype)
    elif not values:
        arr = np.zeros(size, dtype=dtype)
    else:
        raise WireError(f"tensor of shape {shape} has {len(values)} values")
    if arr.size != size:
        raise WireError(f"tensor of shape {shape} has {arr.size} values")
    return arr.reshape(shape)


def parse_attr(buf: memoryview) -> object:
    """An ``AttrValue``: a str (s), int (i, type), float (f), bool (b), shape tuple, numpy array (tensor),
    or a list (ListValue of s / i / f)."""
    for num, wt, value in fields(buf):
        if num == 1:
            items: list = []
            for n2, w2, v2 in fields(value):
                if n2 == 2:
                    items.append(bytes(v2).decode("utf-8", "replace"))
                elif n2 == 3:
                    items += [_signed(v) for v in _packed(w2, v2, "")]
                elif n2 == 4:
                    items += [float(v) for v in _packed(w2, v2, "f")]
            return items
        if num == 2:
            return bytes(value).decode("utf-8", "replace")
        if num in (3, 6):
            return _signed(value)
        if num == 4:
            return struct.unpack("<f", bytes(value))[0]
        if num == 5:
            return bool(value)
        if num == 7:
            return parse_shape(value)
        if num == 8:
            return parse_tensor(value)
    return None


@dataclass
class Node:
    """One ``NodeDef``: ``inputs`` as written (``name``, ``name:k``, ``^control``)."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, object] = field(default_factory=dict)


def _text(value: Any) -> str:
    """A string field (UTF-8)."""
    if isinstance(value, int):
        raise WireError("a varint where a string was expected")
    try:
        return bytes(value).decode()
    except UnicodeDecodeError as err:
        raise WireError(f"a string field that is not UTF-8 ({err.reason})") from None


def parse_node(buf: memoryview) -> Node:
    """A ``NodeDef``."""
    node = Node("", "")
    for num, _, value in fields(buf):
        if num == 1:
            node.name = _text(value)
        elif num == 2:
            node.op = _text(value)
        elif num == 3:
            node.inputs.append(_text(value))
        elif num == 5:
            key, val = "", None
            for n2, _, v2 in fields(value):
                if n2 == 1:
                    key = _text(v2)
                elif n2 == 2:
                    val = parse_attr(v2)
            node.attrs[key] = val
    return node


def parse_graph(data: bytes) -> list[Node]:
    """The nodes of a serialized ``GraphDef``, in file order (other GraphDef fields are skipped)."""
    return [parse_node(value) for num, wt, value in fields(data) if num == 1 and wt == 2]


def read_graph(path: Path) -> list[Node]:
    """The nodes of the ``GraphDef`` file at ``path``; raises WireError when it is not one."""
    try:
        nodes = parse_graph(Path(path).read_bytes())
    except (TypeError, struct.error) as err:  # a varint where a message or a fixed-size value belongs
        raise WireError(f"a field of the wrong wire type ({err})") from None
    if not nodes or any(not n.name or not n.op for n in nodes):
        raise WireError("no named nodes with ops (not a GraphDef)")
    return nodes
