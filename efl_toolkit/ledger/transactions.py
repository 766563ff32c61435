"""Signed transactions: the typed, canonical-JSON records the ledger is made of.

A transaction is ``{"type", "sender", "nonce", "chain", "payload"}`` signed by the sender
institution's Ed25519 key. Its id is the SHA-256 of that canonical body; the stored bytes (and
the Merkle leaf) are the canonical JSON of the body plus ``"signature"``.

Replay protection, three ways: ``nonce`` counts the sender's transactions (0 for its
registration, then 1, 2, ...), so a replayed transaction has a stale nonce; its id is already on
the chain; and ``chain`` is the genesis hash of the ledger it is meant for (64 zeros for the
genesis registrations themselves), so a transaction signed for one ledger cannot be replayed
into another ledger of the same members.

Transaction types and payloads (docs/design.md contracts; ``MODEL_TAG`` is an extra)::

    REGISTER_INSTITUTION  institution, public_key[, name]            (genesis only, self-signed)
    MODEL_COMMIT          institution, model_id, version, parent, architecture, metrics,
                          data_summary           (version = SHA-256 of the serialized parameters)
    MODEL_TAG             version, tag                               (by the version's owner)
    ROUND_START           round_id, versions, protocol
    ROUND_RESULT          round_id, result_hash, metrics
    ROUND_FAILED          round_id, reason

Example:
    >>> from efl_toolkit.ledger.crypto import private_key_from_seed, public_key_hex
    >>> key = private_key_from_seed(bytes(32))
    >>> tx = sign_transaction(key, "ROUND_FAILED", "hospital-a", 3,
    ...                       {"round_id": "r1", "reason": "party timeout"}, chain="ab" * 32)
    >>> Transaction.from_bytes(tx.to_bytes()) == tx, tx.signature_ok(public_key_hex(key))
    (True, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from efl_toolkit.ledger.crypto import (
    TX_DOMAIN,
    canonical_json,
    is_hash_hex,
    loads_json,
    normalize_json,
    sha256_hex,
    sign,
    verify,
)
from efl_toolkit.ledger.errors import TransactionRejected

NO_CHAIN = "0" * 64
INSTITUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TxType(StrEnum):
    """The transaction types the ledger accepts."""

    REGISTER_INSTITUTION = "REGISTER_INSTITUTION"
    MODEL_COMMIT = "MODEL_COMMIT"
    MODEL_TAG = "MODEL_TAG"
    ROUND_START = "ROUND_START"
    ROUND_RESULT = "ROUND_RESULT"
    ROUND_FAILED = "ROUND_FAILED"


@dataclass(frozen=True)
class Transaction:
    """One signed transaction.

    Attributes:
        type: A :class:`TxType` value.
        sender: Id of the institution that signed it.
        nonce: The sender's transaction counter (0, 1, 2, ...).
        payload: The type's fields (plain JSON values).
        signature: Ed25519 signature (hex) of ``TX_DOMAIN + canonical_json(body)``.
        chain: Genesis hash of the ledger it is meant for (``NO_CHAIN`` in genesis itself).
    """

    type: str
    sender: str
    nonce: int
    payload: dict
    signature: str
    chain: str = NO_CHAIN

    def body(self) -> dict:
        """The signed part: type, sender, nonce, chain and payload."""
        return {"type": self.type, "sender": self.sender, "nonce": self.nonce,
                "chain": self.chain, "payload": self.payload}

    def signing_bytes(self) -> bytes:
        """The canonical bytes that are signed and hashed into the transaction id."""
        return self._signing

    @cached_property
    def _signing(self) -> bytes:
        return canonical_json(self.body())

    @cached_property
    def tx_id(self) -> str:
        """SHA-256 (hex) of the signed body: the transaction's unique id."""
        return sha256_hex(self.signing_bytes())

    def to_bytes(self) -> bytes:
        """The stored form and Merkle leaf: canonical JSON of the body plus the signature."""
        return canonical_json({**self.body(), "signature": self.signature})

    def signature_ok(self, public_key: str) -> bool:
        """True if the signature verifies under ``public_key`` (hex)."""
        return verify(public_key, self.signature, TX_DOMAIN, self.signing_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> Transaction:
        """Decodes a stored transaction; raises ``ValueError`` naming what is malformed."""
        try:
            obj = loads_json(data)
        except ValueError as err:
            raise ValueError(f"transaction is not valid JSON: {err}") from None
        return cls.from_dict(obj)

    @classmethod
    def from_dict(cls, obj: Any) -> Transaction:
        """Builds a transaction from its JSON object; raises ``ValueError`` if malformed."""
        fields = {"type", "sender", "nonce", "chain", "payload", "signature"}
        if not isinstance(obj, dict) or set(obj) != fields:
            got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise ValueError(f"transaction must have exactly the fields {sorted(fields)}: {got}")
        if not isinstance(obj["type"], str) or not isinstance(obj["sender"], str):
            raise ValueError("transaction type and sender must be strings")
        nonce = obj["nonce"]
        if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce < 0:
            raise ValueError(f"transaction nonce must be a non-negative integer: {nonce!r}")
        if not isinstance(obj["payload"], dict) or not isinstance(obj["signature"], str):
            raise ValueError("transaction payload must be an object and signature a string")
        if not isinstance(obj["chain"], str):
            raise ValueError("transaction chain must be a string")
        tx = cls(obj["type"], obj["sender"], nonce, obj["payload"], obj["signature"],
                 obj["chain"])
        try:
            tx.signing_bytes()
        except (ValueError, RecursionError) as err:  # e.g. NaN, which canonical JSON refuses
            raise ValueError(f"transaction has no canonical form: {err}") from None
        return tx


def sign_transaction(
    private_key: Any, tx_type: str, sender: str, nonce: int, payload: dict,
    chain: str = NO_CHAIN,
) -> Transaction:
    """Builds and signs a transaction (the payload is normalized to plain JSON first).

    Args:
        private_key: The sender's Ed25519 private key.
        tx_type: A :class:`TxType` value.
        sender: The sender institution id.
        nonce: The sender's next nonce (``Ledger.next_nonce``).
        payload: The type's fields.
        chain: Genesis hash of the target ledger (``NO_CHAIN`` only for genesis registrations).

    Example:
        >>> from efl_toolkit.ledger.crypto import private_key_from_seed
        >>> tx = sign_transaction(private_key_from_seed(bytes(32)), "ROUND_FAILED", "h1", 1,
        ...                       {"round_id": "r", "reason": "x"}, chain="ab" * 32)
        >>> len(tx.signature)
        128
    """
    try:
        payload = normalize_json(payload, "payload")
    except ValueError as err:
        raise TransactionRejected("payload", str(err)) from None
    unsigned = Transaction(str(TxType(tx_type)), sender, nonce, payload, "", chain)
    return Transaction(unsigned.type, sender, nonce, payload,
                       sign(private_key, TX_DOMAIN, unsigned.signing_bytes()), chain)


# ---------------------------------------------------------------- payload schemas

def _institution(v: Any) -> bool:
    return isinstance(v, str) and bool(INSTITUTION_ID.match(v))


def _text(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 200


def _optional_hash(v: Any) -> bool:
    return v is None or is_hash_hex(v)


def _metrics(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in v.values()
    )


def _hash_list(v: Any) -> bool:
    return (isinstance(v, list) and len(v) > 0 and all(is_hash_hex(x) for x in v)
            and len(set(v)) == len(v))


def _any_object(v: Any) -> bool:
    return isinstance(v, dict)


_CHECKS = {
    "institution": (_institution, "an institution id (letters, digits, . _ -; 1-64 chars)"),
    "public_key": (is_hash_hex, "a 64-hex Ed25519 public key"),
    "name": (_text, "a non-empty string"),
    "model_id": (_text, "a non-empty string of at most 200 characters"),
    "version": (is_hash_hex, "a 64-hex SHA-256 of the serialized parameters"),
    "parent": (_optional_hash, "null or a 64-hex version hash"),
    "architecture": (_text, "a non-empty string"),
    "metrics": (_metrics, "an object of numbers"),
    "data_summary": (_any_object, "an object"),
    "tag": (_text, "a non-empty string"),
    "round_id": (_text, "a non-empty string"),
    "versions": (_hash_list, "a non-empty list of distinct 64-hex version hashes"),
    "protocol": (_any_object, "an object"),
    "result_hash": (is_hash_hex, "a 64-hex SHA-256"),
    "reason": (_text, "a non-empty string"),
}

SCHEMAS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    TxType.REGISTER_INSTITUTION: (("institution", "public_key"), ("name",)),
    TxType.MODEL_COMMIT: (("institution", "model_id", "version", "parent", "architecture",
                           "metrics", "data_summary"), ()),
    TxType.MODEL_TAG: (("version", "tag"), ()),
    TxType.ROUND_START: (("round_id", "versions", "protocol"), ()),
    TxType.ROUND_RESULT: (("round_id", "result_hash", "metrics"), ()),
    TxType.ROUND_FAILED: (("round_id", "reason"), ()),
}


def validate_payload(tx: Transaction) -> None:
    """Checks the transaction's type and payload fields; raises ``TransactionRejected``.

    Example:
        >>> tx = Transaction("ROUND_FAILED", "h1", 1, {"round_id": "r"}, "")
        >>> validate_payload(tx)
        Traceback (most recent call last):
        ...
        efl_toolkit.ledger.errors.TransactionRejected: transaction rejected (payload): \
ROUND_FAILED payload misses field 'reason'
    """
    if tx.type not in SCHEMAS:
        raise TransactionRejected("payload", f"unknown transaction type {tx.type!r}")
    required, optional = SCHEMAS[tx.type]
    for name in required:
        if name not in tx.payload:
            raise TransactionRejected("payload", f"{tx.type} payload misses field {name!r}")
    extra = set(tx.payload) - set(required) - set(optional)
    if extra:
        raise TransactionRejected(
            "payload", f"{tx.type} payload has unknown fields {sorted(extra)}")
    for name, value in tx.payload.items():
        check, meaning = _CHECKS[name]
        if not check(value):
            raise TransactionRejected(
                "payload", f"{tx.type} field {name!r} must be {meaning}, got {value!r:.80}"
            )
    if not _institution(tx.sender):
        raise TransactionRejected("payload", f"sender {tx.sender!r} is not an institution id")
    owner = tx.payload.get("institution")
    if owner is not None and owner != tx.sender:
        raise TransactionRejected(
            "signature", f"{tx.type} for institution {owner!r} must be signed by it, "
            f"not by {tx.sender!r}")
