"""Hashing, canonical JSON and Ed25519 signatures: the few primitives the ledger is built on.

Canonical JSON is what gets hashed and signed, so the same value must always give the same
bytes: keys sorted, no whitespace, UTF-8, no NaN or infinity (they have no JSON spelling). Python
writes a float as its shortest round-trip repr, which is deterministic; numpy scalars are
converted, anything else (sets, bytes, objects) is refused with the path of the bad field.

Signatures use Ed25519 (the ``cryptography`` package). Each signed message starts with a domain
tag (``b"efl-ledger/tx/v1\\n"`` or ``b"efl-ledger/vote/v1\\n"``) so a transaction signature can
never be replayed as a block vote or the other way round.

Example:
    >>> canonical_json({"b": 1, "a": [1.5, "é"]})
    b'{"a":[1.5,"\\xc3\\xa9"],"b":1}'
    >>> sha256_hex(b"")[:16]
    'e3b0c44298fc1c14'
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

TX_DOMAIN = b"efl-ledger/tx/v1\n"
VOTE_DOMAIN = b"efl-ledger/vote/v1\n"
HASH_HEX_LEN = 64
_HASH_HEX = re.compile(f"[0-9a-f]{{{HASH_HEX_LEN}}}")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 lowercase hex characters.

    Example:
        >>> sha256_hex(b"abc")[:8]
        'ba7816bf'
    """
    return hashlib.sha256(data).hexdigest()


def is_hash_hex(value: object) -> bool:
    """True if ``value`` is a 64-character lowercase hex string (a SHA-256 digest).

    Example:
        >>> is_hash_hex("ab" * 32), is_hash_hex("AB" * 32), is_hash_hex("xyz")
        (True, False, False)
    """
    return isinstance(value, str) and _HASH_HEX.fullmatch(value) is not None


def normalize_json(value: Any, where: str = "value") -> Any:
    """Returns ``value`` as plain JSON types, or raises ``ValueError`` naming the bad field.

    Tuples become lists, numpy scalars become Python numbers; NaN, infinity, non-string keys and
    non-JSON objects are refused.

    Example:
        >>> normalize_json({"acc": (0.5, 1)})
        {'acc': [0.5, 1]}
        >>> normalize_json({"auc": float("nan")})
        Traceback (most recent call last):
        ...
        ValueError: value.auc: NaN and infinity are not allowed in the ledger
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: NaN and infinity are not allowed in the ledger")
        return float(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string")
            out[key] = normalize_json(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [normalize_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    item = getattr(value, "item", None)  # numpy scalar (np.float32, np.int64, np.bool_ ...)
    if callable(item) and getattr(value, "shape", None) == ():
        return normalize_json(item(), where)
    raise ValueError(f"{where}: {type(value).__name__} is not a JSON value")


#: Deepest nesting of stored JSON the ledger decodes. Its own records nest a few levels; the
#: bound keeps a hostile row from overflowing the C stack of ``json.loads`` when a library in
#: the same process has raised the recursion limit (py_ecc, imported by web3, sets 100,000).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def loads_json(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of stored bytes, refusing nesting deeper than ``max_depth`` first.

    Raises:
        ValueError: not UTF-8, not JSON (``json.JSONDecodeError``), or nested too deep.

    Example:
        >>> loads_json(b'{"a": [1, [2]]}')
        {'a': [1, [2]]}
        >>> loads_json(b"[" * 100 + b"]" * 100)
        Traceback (most recent call last):
        ValueError: JSON nested deeper than 64 levels
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") > max_depth:
        bare = _JSON_STRING.sub(b"", raw)
        depth = 0
        for bracket in re.findall(rb"[\[{\]}]", bare):
            depth += 1 if bracket in (b"[", b"{") else -1
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8: {err}") from None
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None


def canonical_json(value: Any) -> bytes:
    """The canonical bytes of a JSON value: sorted keys, no whitespace, UTF-8, finite numbers.

    Example:
        >>> canonical_json({"z": None, "a": True})
        b'{"a":true,"z":null}'
    """
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def private_key_from_seed(seed: bytes) -> Ed25519PrivateKey:
    """An Ed25519 private key from 32 seed bytes (deterministic: same seed, same key).

    Example:
        >>> key = private_key_from_seed(bytes(32))
        >>> len(public_key_hex(key))
        64
    """
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_hex(private_key: Ed25519PrivateKey) -> str:
    """The raw 32-byte public key of ``private_key`` as hex.

    Example:
        >>> public_key_hex(private_key_from_seed(bytes(32)))[:8]
        '3b6a27bc'
    """
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return raw.hex()


def fingerprint(public_key: str) -> str:
    """A short, readable fingerprint of a hex public key: the first 16 hex of its SHA-256.

    Example:
        >>> len(fingerprint("00" * 32))
        16
    """
    return sha256_hex(bytes.fromhex(public_key))[:16]


def sign(private_key: Ed25519PrivateKey, domain: bytes, message: bytes) -> str:
    """Signs ``domain + message``; returns the 64-byte signature as hex.

    Example:
        >>> key = private_key_from_seed(bytes(32))
        >>> sig = sign(key, TX_DOMAIN, b"hello")
        >>> verify(public_key_hex(key), sig, TX_DOMAIN, b"hello")
        True
    """
    return private_key.sign(domain + message).hex()


@lru_cache(maxsize=256)
def _public_key(public_key: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))


def _verify(public_key: str, signature: str, signed: bytes) -> bool:
    try:
        _public_key(public_key).verify(bytes.fromhex(signature), signed)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


#: Outcomes computed by :func:`verified_in_batch`, keyed by (key, signature, signed bytes).
_batch: dict[tuple[str, str, bytes], bool] = {}


def verify(public_key: str, signature: str, domain: bytes, message: bytes) -> bool:
    """True if ``signature`` (hex) is a valid signature of ``domain + message``; never raises.

    Inside :func:`verified_in_batch` the outcome of exactly these inputs, if it was computed
    there, is returned instead of verifying again.

    Example:
        >>> key = private_key_from_seed(bytes(32))
        >>> verify(public_key_hex(key), "00" * 64, TX_DOMAIN, b"hello")
        False
    """
    signed = domain + message
    known = _batch.get((public_key, signature, signed)) if _batch else None
    return _verify(public_key, signature, signed) if known is None else known


def _verify_chunk(items: Sequence[tuple[str, str, bytes]]) -> list[bool]:
    return [_verify(*item) for item in items]


@contextmanager
def verified_in_batch(items: Iterable[tuple[str, str, bytes, bytes]],
                      threads: int | None = None) -> Iterator[int]:
    """Verifies many signatures up front, in parallel threads, for :func:`verify` to reuse.

    Ed25519 verification in ``cryptography`` (OpenSSL) releases the GIL, so ``threads`` (default:
    the CPU count) verify side by side; nothing is weakened: each outcome is exactly
    :func:`verify`'s for the same (public key, signature, domain, message), and inputs not in
    ``items`` are verified as usual. The results are dropped when the block exits. Yields the
    number of signatures verified.

    Example:
        >>> key = private_key_from_seed(bytes(32))
        >>> item = (public_key_hex(key), sign(key, TX_DOMAIN, b"m"), TX_DOMAIN, b"m")
        >>> with verified_in_batch([item]) as n:
        ...     n, verify(*item)
        (1, True)
    """
    unique = list(dict.fromkeys((k, s, d + m) for k, s, d, m in items))
    workers = max(1, min(threads or os.cpu_count() or 1, len(unique) // 256 or 1))
    chunks = [unique[i::workers] for i in range(workers)]
    if workers == 1:
        outcomes = [_verify_chunk(unique)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            outcomes = list(pool.map(_verify_chunk, chunks))
    added = {item: ok for chunk, oks in zip(chunks if workers > 1 else [unique], outcomes,
                                            strict=True) for item, ok in zip(chunk, oks,
                                                                            strict=True)}
    _batch.update(added)
    try:
        yield len(added)
    finally:
        for item in added:
            _batch.pop(item, None)
