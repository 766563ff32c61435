"""Deterministic model serialization and the model version hash.

A model's variables (parameters and BatchNorm statistics; RNG state is left out) are written in
a small, fixed binary format, so that equal values give equal bytes in any process, on any
machine, whatever order the module created its layers in::

    b"EFL-PARAMS\\x00v1\\n"                        magic and version (14 bytes)
    uint32 count                                 number of arrays
    per array, sorted by path:
        uint32 len, path (UTF-8, '/'-joined)     e.g. "blocks/0/bn1/mean"
        uint8 len, dtype (NumPy str, ASCII)      e.g. "<f4" (always little-endian)
        uint8 ndim, ndim x uint64 dims
        raw C-order little-endian bytes

All integers are little-endian. The SHA-256 hex digest of these bytes is the model's *version
hash*: the ledger records it in ``MODEL_COMMIT`` transactions.

Example:
    >>> from flax import nnx
    >>> from efl_toolkit.models.zoo import build_model
    >>> from efl_toolkit.training.serialize import params_from_bytes, params_to_bytes
    >>> from efl_toolkit.training.serialize import version_hash
    >>> model = build_model("logistic", (8, 8, 1), 2, nnx.Rngs(0))
    >>> data = params_to_bytes(model)
    >>> copy = params_from_bytes(build_model("logistic", (8, 8, 1), 2, nnx.Rngs(1)), data)
    >>> version_hash(copy) == version_hash(model) == sha256_hex(data)
    True
"""

from __future__ import annotations

import hashlib
import struct

import jax.numpy as jnp
import numpy as np
from flax import nnx

MAGIC = b"EFL-PARAMS\x00v1\n"
_STATE_FILTER = nnx.Not(nnx.RngState)


class SerializationError(ValueError):
    """Bytes that are not a serialized model, or that do not fit the template model."""


def _path_text(path: tuple) -> str:
    return "/".join(str(part) for part in path)


def model_arrays(model: nnx.Module) -> dict[str, np.ndarray]:
    """The model's serialized variables as ``{path: array}``, sorted by path.

    Example:
        >>> from efl_toolkit.models.zoo import build_model
        >>> sorted(model_arrays(build_model("logistic", (4, 4, 1), 2, nnx.Rngs(0))))
        ['linear/bias', 'linear/kernel']
    """
    flat = nnx.to_flat_state(nnx.state(model, _STATE_FILTER))
    arrays = {_path_text(path): np.asarray(variable.get_value()) for path, variable in flat}
    return dict(sorted(arrays.items()))


def arrays_to_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Encodes ``{path: array}`` in the format above (sorted by path)."""
    chunks = [MAGIC, struct.pack("<I", len(arrays))]
    for path in sorted(arrays):
        array = np.asarray(arrays[path])
        if array.dtype.kind not in "biuf":
            raise SerializationError(f"{path}: unsupported dtype {array.dtype}")
        array = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
        name, dtype = path.encode("utf-8"), array.dtype.str.encode("ascii")
        chunks += [struct.pack("<I", len(name)), name, struct.pack("<B", len(dtype)), dtype,
                   struct.pack("<B", array.ndim), struct.pack(f"<{array.ndim}Q", *array.shape),
                   array.tobytes(order="C")]
    return b"".join(chunks)


def bytes_to_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Decodes bytes written by :func:`arrays_to_bytes`.

    Raises:
        SerializationError: Wrong magic, truncated or trailing data.
    """
    view = memoryview(bytes(data))
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise SerializationError("not serialized model parameters (bad magic header)")
    offset = len(MAGIC)

    def take(size: int) -> memoryview:
        nonlocal offset
        if offset + size > len(view):
            raise SerializationError(f"truncated data at byte {offset} (needs {size} more)")
        chunk = view[offset: offset + size]
        offset += size
        return chunk

    (count,) = struct.unpack("<I", take(4))
    arrays: dict[str, np.ndarray] = {}
    for _ in range(count):
        (name_len,) = struct.unpack("<I", take(4))
        path = bytes(take(name_len)).decode("utf-8")
        (dtype_len,) = struct.unpack("<B", take(1))
        dtype = np.dtype(bytes(take(dtype_len)).decode("ascii"))
        (ndim,) = struct.unpack("<B", take(1))
        shape = struct.unpack(f"<{ndim}Q", take(8 * ndim))
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        arrays[path] = np.frombuffer(take(size), dtype=dtype).reshape(shape).copy()
    if offset != len(view):
        raise SerializationError(f"{len(view) - offset} unexpected trailing bytes")
    return arrays


def params_to_bytes(model: nnx.Module) -> bytes:
    """Serializes a model's variables deterministically (see the module docstring).

    Example:
        >>> from efl_toolkit.models.zoo import build_model
        >>> m = build_model("mlp", (8, 8, 1), 2, nnx.Rngs(0))
        >>> params_to_bytes(m) == params_to_bytes(m)
        True
    """
    return arrays_to_bytes(model_arrays(model))


def params_from_bytes(model_template: nnx.Module, data: bytes) -> nnx.Module:
    """A copy of ``model_template`` holding the variables stored in ``data``.

    The template (same architecture, image shape and class count) is not modified.

    Raises:
        SerializationError: Bad bytes, or paths, shapes or dtypes that differ from the
            template's (the message names them).

    Example:
        >>> from efl_toolkit.models.zoo import build_model
        >>> a = build_model("cnn", (8, 8, 1), 2, nnx.Rngs(0))
        >>> b = params_from_bytes(build_model("cnn", (8, 8, 1), 2, nnx.Rngs(5)), params_to_bytes(a))
        >>> version_hash(a) == version_hash(b)
        True
    """
    arrays = bytes_to_arrays(data)
    graphdef, kept, rest = nnx.split(model_template, _STATE_FILTER, ...)
    flat = list(nnx.to_flat_state(kept))
    expected = {_path_text(path): variable for path, variable in flat}
    missing, unexpected = sorted(set(expected) - set(arrays)), sorted(set(arrays) - set(expected))
    if missing or unexpected:
        raise SerializationError(f"parameters do not fit the template model: missing {missing}, "
                                 f"unexpected {unexpected}")
    loaded = []
    for path, variable in flat:
        key = _path_text(path)
        value, template = arrays[key], np.asarray(variable.get_value())
        if value.shape != template.shape or value.dtype != template.dtype:
            raise SerializationError(f"{key}: stored {value.dtype}{list(value.shape)} but the "
                                     f"template has {template.dtype}{list(template.shape)}")
        loaded.append((path, variable.replace(jnp.asarray(value))))
    return nnx.merge(graphdef, nnx.from_flat_state(loaded), rest)


def sha256_hex(data: bytes) -> str:
    """SHA-256 hex digest of bytes."""
    return hashlib.sha256(data).hexdigest()


def version_hash(model: nnx.Module) -> str:
    """The model's version hash: SHA-256 hex of :func:`params_to_bytes`.

    Example:
        >>> from efl_toolkit.models.zoo import build_model
        >>> len(version_hash(build_model("logistic", (4, 4, 1), 2, nnx.Rngs(0))))
        64
    """
    return sha256_hex(params_to_bytes(model))
