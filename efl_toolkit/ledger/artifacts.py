"""A content-addressed store of model artifacts beside the ledger.

An artifact is a byte string (serialized parameters) stored as ``<dir>/<sha256 hex>``. A name
IS the hash of the content, so reading verifies itself: :meth:`ArtifactStore.get` returns bytes
only if they hash to the name asked for. Writes are atomic (temporary file, fsync, rename, fsync
of the directory): a crash leaves either no file or the complete one, never a half-written file
under a valid name. Artifacts are written BEFORE the block that references them.

:func:`pack_arrays` / :func:`unpack_arrays` give a deterministic serialization of named numpy
arrays (same arrays, same bytes, same version hash), unlike ``np.savez`` whose zip metadata can
vary.

Example:
    >>> import tempfile, numpy as np
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> version = store.put(pack_arrays({"w": np.ones((2, 2), np.float32)}))
    >>> unpack_arrays(store.get(version))["w"].shape
    (2, 2)
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from efl_toolkit.atomic import write_bytes_atomic
from efl_toolkit.ledger.crypto import is_hash_hex, loads_json, sha256_hex
from efl_toolkit.ledger.errors import ArtifactError

PACK_MAGIC = b"EFLARR1\n"


class ArtifactStore:
    """Content-addressed files ``<directory>/<sha256>``.

    Args:
        directory: Where the artifacts live (created on the first write).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def path(self, digest: str) -> Path:
        """The file of artifact ``digest`` (it may not exist)."""
        if not is_hash_hex(digest):
            raise ArtifactError(f"{digest!r} is not a SHA-256 hex digest")
        return self.directory / digest

    def has(self, digest: str) -> bool:
        """True if a file named ``digest`` exists (its content is not checked)."""
        return self.path(digest).is_file()

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Stores ``data`` atomically and returns its SHA-256; checks ``expected`` if given.

        Example:
            >>> import tempfile
            >>> store = ArtifactStore(tempfile.mkdtemp())
            >>> store.put(b"abc", expected="00" * 32)
            Traceback (most recent call last):
            ...
            efl_toolkit.ledger.errors.ArtifactError: artifact bytes hash to ba7816bf8f01..., \
not to the expected 000000000000...
        """
        digest = sha256_hex(data)
        if expected is not None and expected != digest:
            raise ArtifactError(
                f"artifact bytes hash to {digest[:12]}..., not to the expected {expected[:12]}...")
        target = self.path(digest)
        if target.is_file() and self.problem(digest) is None:
            return digest
        self.directory.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, data)
        return digest

    def problem(self, digest: str) -> str | None:
        """Why artifact ``digest`` is not intact (missing, or bytes hash elsewhere), or ``None``."""
        path = self.path(digest)
        h = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except FileNotFoundError:
            return f"artifact {digest[:12]} is missing from {self.directory}"
        except OSError as err:
            return f"artifact {digest[:12]} cannot be read: {err}"
        if h.hexdigest() != digest:
            return f"artifact {digest[:12]} bytes hash to {h.hexdigest()[:12]}: it was modified"
        return None

    def get(self, digest: str) -> bytes:
        """The bytes of artifact ``digest``, verified; ``ArtifactError`` if missing or altered."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(
                f"artifact {digest[:12]} is missing from {self.directory}") from None
        actual = sha256_hex(data)
        if actual != digest:
            raise ArtifactError(
                f"artifact {digest[:12]} bytes hash to {actual[:12]}: refusing modified parameters")
        return data


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Deterministic bytes for named arrays: a canonical JSON index, then raw C-order data.

    Example:
        >>> a = pack_arrays({"b": np.zeros(3), "a": np.arange(2)})
        >>> a == pack_arrays({"a": np.arange(2), "b": np.zeros(3)})
        True
    """
    index, chunks, offset = [], [], 0
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        if arr.dtype.hasobject:
            raise ValueError(f"array {name!r} has dtype object: cannot serialize")
        raw = arr.tobytes()
        index.append({"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape),
                      "offset": offset, "nbytes": len(raw)})
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(index, sort_keys=True, separators=(",", ":")).encode()
    return PACK_MAGIC + struct.pack("<Q", len(head)) + head + b"".join(chunks)


def unpack_arrays(data: bytes) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_arrays`; ``ValueError`` if ``data`` is not such a pack.

    Example:
        >>> unpack_arrays(pack_arrays({"x": np.arange(3)}))["x"].tolist()
        [0, 1, 2]
    """
    if not data.startswith(PACK_MAGIC) or len(data) < len(PACK_MAGIC) + 8:
        raise ValueError("not a packed array artifact (bad magic)")
    start = len(PACK_MAGIC) + 8
    (head_len,) = struct.unpack("<Q", data[len(PACK_MAGIC):start])
    index = loads_json(data[start:start + head_len])
    body = start + head_len
    out = {}
    for item in index:
        lo = body + item["offset"]
        raw = data[lo:lo + item["nbytes"]]
        out[item["name"]] = np.frombuffer(raw, dtype=np.dtype(item["dtype"])).reshape(item["shape"])
    return out


def hash_array(array: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and C-order bytes (e.g. an opened ensemble result).

    Example:
        >>> hash_array(np.zeros(2)) == hash_array(np.zeros(2)), len(hash_array(np.zeros(2)))
        (True, 64)
    """
    arr = np.ascontiguousarray(array)
    head = json.dumps({"dtype": arr.dtype.str, "shape": list(arr.shape)}).encode()
    return sha256_hex(head + b"\n" + arr.tobytes())
