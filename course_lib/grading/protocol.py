"""What the grader and a sandboxed worker say to each other: plain data, bounded, never pickled.

A message is one JSON header line, ``{"op": ..., "bytes": N, ...}``, then N bytes of payload. A payload is an
``.npz``: the arrays of a tree of values (arrays, tensors, numbers, strings, tuples, lists, dicts) plus a JSON
description of the tree. The grader reads what comes back with caps checked *before* anything is unpacked: the
header's length, the payload's length, the zip's member count and declared sizes, each array's header (no object
dtype, a shape that fits the bytes), the JSON's size and depth. An answer that breaks a cap is refused whole.
"""
from __future__ import annotations

import io
import json
import os
import select
import sys
import time
import zipfile
from typing import Any

import numpy as np

MAX_HEADER_BYTES = 64 * 1024
MAX_PAYLOAD_BYTES = 256 * 2 ** 20  # one answer file, all its arrays together
MAX_MEMBERS = 4096
MAX_DESCRIPTION_BYTES = 4 * 2 ** 20  # the JSON description of an answer's tree
MAX_DEPTH = 64
_META = "__meta__"


class ProtocolError(ValueError):
    """What came back is not a well-formed, bounded message."""


class Returned:
    """Stands in, on the grader's side, for a returned object that is not plain data (only its description)."""

    def __init__(self, description: str):
        self.description = description

    def __repr__(self) -> str:
        return f"<{self.description}>"


# ----------------------------------------------------------------------------------------------------------
# Plain data
# ----------------------------------------------------------------------------------------------------------

def _torch():
    """torch when it has been imported, else None (importing it just for this would cost seconds). The import
    statement waits while another thread is still importing torch; ``sys.modules`` alone would hand out the
    half-made module."""
    if "torch" not in sys.modules:
        return None
    import torch

    return torch


def _describe(value) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__module__.split('.')[0]}.{type(value).__name__} of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def encode(tree, arrays: dict[str, np.ndarray], max_array_bytes: int = 64 * 2 ** 20):
    """A JSON-able description of ``tree``; its arrays and tensors go into ``arrays`` (identity preserved)."""
    seen: dict[int, str] = {}

    def walk(value, depth):
        if depth > MAX_DEPTH:
            return {"type": "object", "description": "a structure nested too deeply"}
        if value is None or isinstance(value, (bool, str)) and type(value) in (bool, str):
            return {"type": "value", "value": value}
        if type(value) in (int, float):
            if isinstance(value, float) and not np.isfinite(value):
                return {"type": "float", "value": repr(value)}
            return {"type": "value", "value": value}
        if type(value) in (tuple, list):
            return {"type": type(value).__name__, "items": [walk(item, depth + 1) for item in value]}
        if type(value) is dict and all(type(key) is str for key in value):
            return {"type": "dict", "items": {key: walk(item, depth + 1) for key, item in value.items()}}
        if id(value) in seen:
            return {"type": "same", "key": seen[id(value)]}
        torch = _torch()
        if torch is not None and isinstance(value, torch.Tensor):
            dtype = str(value.dtype)
            plain = value.detach().cpu()
            if plain.dtype in (torch.bfloat16, torch.float16):
                plain = plain.float()
            data = plain.resolve_conj().resolve_neg().numpy()
            kind = {"type": "torch", "dtype": dtype, "requires_grad": bool(value.requires_grad)}
        elif isinstance(value, (np.ndarray, np.generic)):
            data, kind = value, {"type": "numpy" if isinstance(value, np.ndarray) else "numpy-scalar"}
        else:
            return {"type": "object", "description": _describe(value)}
        data = np.array(data, copy=True, subok=False)  # a plain ndarray, whatever subclass came in
        if data.dtype.hasobject or data.nbytes > max_array_bytes:
            return {"type": "object", "description": _describe(value)}
        key = f"a{len(arrays)}"
        arrays[key] = np.array(data, order="C", subok=False)  # (ascontiguousarray would make 0-d arrays 1-d)
        seen[id(value)] = key
        return {**kind, "key": key}

    return walk(tree, 0)


_TORCH_DTYPES = {"torch.float32", "torch.float64", "torch.float16", "torch.bfloat16", "torch.int64", "torch.int32",
                 "torch.int16", "torch.int8", "torch.uint8", "torch.bool", "torch.complex64", "torch.complex128"}


def decode(node, arrays, made: dict[str, Any] | None = None, depth: int = 0):
    """The value that :func:`encode` described (tensors as torch tensors, other objects as :class:`Returned`)."""
    made = {} if made is None else made
    if depth > MAX_DEPTH or not isinstance(node, dict):
        raise ProtocolError("malformed description")
    kind = node.get("type")
    if kind == "value":
        value = node.get("value")
        if value is not None and type(value) not in (bool, str, int, float):
            raise ProtocolError("malformed value")
        return value
    if kind == "float":
        return float(str(node["value"]))
    if kind in ("tuple", "list"):
        items = [decode(item, arrays, made, depth + 1) for item in node["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {str(key): decode(item, arrays, made, depth + 1) for key, item in dict(node["items"]).items()}
    if kind == "same":
        if node.get("key") not in made:
            raise ProtocolError("reference to an unknown array")
        return made[node["key"]]
    if kind == "object":
        return Returned(str(node.get("description", "an object"))[:200])
    if node.get("key") not in arrays:
        raise ProtocolError("reference to a missing array")
    data = np.array(arrays[node["key"]], copy=True)
    if kind == "numpy":
        value = data
    elif kind == "numpy-scalar":
        value = data[()]
    elif kind == "torch" and node.get("dtype") in _TORCH_DTYPES:
        import torch

        value = torch.from_numpy(data).to(getattr(torch, node["dtype"].replace("torch.", "")))
        if node.get("requires_grad") is True and value.is_floating_point():
            value.requires_grad_()
    else:
        raise ProtocolError(f"unknown kind {kind!r}")
    made[node["key"]] = value
    return value


def dumps(tree) -> bytes:
    """``tree`` as the bytes of an ``.npz``: its arrays, and a JSON description stored as bytes (no pickle)."""
    arrays: dict[str, np.ndarray] = {}
    meta = encode(tree, arrays)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def save(path, tree) -> None:
    with open(path, "wb") as file:
        file.write(dumps(tree))


def loads(payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES):
    """Read what :func:`dumps` wrote, checking every size before it is unpacked and refusing anything pickled."""
    if len(payload) > max_bytes:
        raise ProtocolError(f"the answer is {len(payload)} bytes, over the cap of {max_bytes}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise ProtocolError(f"the answer holds {len(members)} arrays, over the cap of {MAX_MEMBERS}")
        if sum(member.file_size for member in members) > max_bytes:
            raise ProtocolError("the answer unpacks to more than the cap (a zip bomb?)")
        arrays = {}
        for member in members:
            if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ProtocolError("unsupported compression")
            with archive.open(member) as stream:
                data = stream.read(member.file_size + 1)
            if len(data) != member.file_size:
                raise ProtocolError("a member's size is not what the zip declares")
            arrays[member.filename.removesuffix(".npy")] = _read_npy(data)
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, RuntimeError) as error:
        raise ProtocolError(f"unreadable answer: {error}") from None
    if _META not in arrays:
        raise ProtocolError("the answer has no description")
    meta_bytes = arrays.pop(_META)
    if meta_bytes.dtype != np.uint8 or meta_bytes.ndim != 1 or meta_bytes.size > MAX_DESCRIPTION_BYTES:
        raise ProtocolError("malformed description")
    try:
        meta = json.loads(meta_bytes.tobytes().decode())
        return decode(meta, arrays)
    except (ValueError, TypeError, KeyError, RecursionError, AttributeError) as error:
        raise ProtocolError(f"malformed description: {type(error).__name__}") from None


def load(path, max_bytes: int = MAX_PAYLOAD_BYTES):
    """:func:`loads` on a file, reading no more than the cap (only a regular file)."""
    if os.path.islink(path) or not os.path.isfile(path):  # before opening: a FIFO would block the open
        raise ProtocolError(f"{path} is not a regular file")
    with open(path, "rb") as file:
        data = file.read(max_bytes + 1)
    return loads(data, max_bytes)


def _read_npy(data: bytes) -> np.ndarray:
    """One ``.npy`` member: the header is read and checked (no pickle, no object dtype, a shape that fits)."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if reader is None:
        raise ProtocolError("unsupported array format")
    try:
        shape, fortran, dtype = reader(stream)
    except ValueError as error:
        raise ProtocolError(f"malformed array header: {error}") from None
    if dtype.hasobject or dtype.kind not in "biufcU":
        raise ProtocolError(f"an array of dtype {dtype} is not plain data")
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    body = data[stream.tell():]
    if count * dtype.itemsize != len(body):
        raise ProtocolError("an array's shape does not match its bytes")
    array = np.frombuffer(body, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C")


# ----------------------------------------------------------------------------------------------------------
# Messages over pipes
# ----------------------------------------------------------------------------------------------------------

def write_message(fd: int, header: dict, payload: bytes = b"") -> None:
    """Send one message: a JSON header line, then the payload."""
    line = json.dumps({**header, "bytes": len(payload)}).encode() + b"\n"
    data = line + payload
    while data:
        written = os.write(fd, data)
        data = data[written:]


class Reader:
    """Reads messages from a pipe with a deadline for each, and caps on every length."""

    def __init__(self, fd: int, max_payload: int = MAX_PAYLOAD_BYTES):
        self.fd, self.max_payload, self.buffer = fd, max_payload, b""

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError()
        ready, _, _ = select.select([self.fd], [], [], remaining)
        if not ready:
            raise TimeoutError()
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            raise EOFError("the worker closed its end")
        self.buffer += chunk

    def read(self, deadline: float) -> tuple[dict, bytes]:
        """The next message, or TimeoutError at the deadline, EOFError when the worker is gone,
        ProtocolError when what came is not a message."""
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_HEADER_BYTES:
                raise ProtocolError("a header line over the cap")
            self._fill(deadline)
        line, self.buffer = self.buffer.split(b"\n", 1)
        if len(line) > MAX_HEADER_BYTES:
            raise ProtocolError("a header line over the cap")
        try:
            header = json.loads(line)
            size = int(header["bytes"])
        except (ValueError, KeyError, TypeError, OverflowError):  # int(Infinity) overflows
            raise ProtocolError("a malformed header line") from None
        if not isinstance(header, dict) or not 0 <= size <= self.max_payload:
            raise ProtocolError(f"a payload of {size} bytes, over the cap of {self.max_payload}")
        while len(self.buffer) < size:
            self._fill(deadline)
        payload, self.buffer = self.buffer[:size], self.buffer[size:]
        return header, payload
