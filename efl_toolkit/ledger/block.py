"""Blocks: a header that commits to its transactions, plus the institutions' votes.

The header is ``{"version", "height", "prev_hash", "merkle_root", "timestamp", "proposer",
"n_txs"}``; the block hash is the SHA-256 of its canonical JSON. ``merkle_root`` is the RFC 9162
root over the stored transaction bytes, so changing any transaction changes the root, the header,
the hash, and breaks the next block's ``prev_hash`` link.

Proof of authority: the proposer of height ``h`` is ``members[h % n]`` (members in genesis
order), and a block is final only when more than 2/3 of the ``n`` members have signed its hash
(3 of 3, 3 of 4, 4 of 5, 5 of 6...), the proposer among them.

A block is stored as a :class:`StoredBlock`: the exact bytes written to SQLite. Verification
works on those bytes, so what is checked is what is on disk.

Example:
    >>> quorum_size(3), quorum_size(4), quorum_size(5)
    (3, 3, 4)
    >>> proposer_for(4, ["a", "b", "c"])
    'b'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from efl_toolkit.ledger.crypto import (
    VOTE_DOMAIN,
    canonical_json,
    loads_json,
    sha256_hex,
    verify,
)
from efl_toolkit.ledger.merkle import merkle_root
from efl_toolkit.ledger.transactions import Transaction

HEADER_VERSION = 1
SIGNATURE_HEX = re.compile(r"[0-9a-f]{128}")
GENESIS_PREV_HASH = "0" * 64


def quorum_size(n_members: int) -> int:
    """Smallest number of signers that is more than 2/3 of ``n_members``.

    Example:
        >>> [quorum_size(n) for n in range(1, 7)]
        [1, 2, 3, 3, 4, 5]
    """
    return 2 * n_members // 3 + 1


def proposer_for(height: int, members: Sequence[str]) -> str:
    """The institution whose turn it is to propose block ``height`` (round robin).

    Example:
        >>> proposer_for(0, ["a", "b"])
        'a'
    """
    return members[height % len(members)]


@dataclass(frozen=True)
class BlockHeader:
    """The hashed part of a block.

    Attributes:
        height: 0 for genesis, then 1, 2, ...
        prev_hash: Hash of the previous block (64 zeros for genesis).
        merkle_root: RFC 9162 root (hex) over the transactions' stored bytes.
        timestamp: Milliseconds since the Unix epoch (UTC), never decreasing.
        proposer: Institution that proposed the block.
        n_txs: Number of transactions.
    """

    height: int
    prev_hash: str
    merkle_root: str
    timestamp: int
    proposer: str
    n_txs: int

    def to_bytes(self) -> bytes:
        """Canonical JSON of the header (what the block hash is taken over)."""
        return canonical_json({
            "version": HEADER_VERSION, "height": self.height, "prev_hash": self.prev_hash,
            "merkle_root": self.merkle_root, "timestamp": self.timestamp,
            "proposer": self.proposer, "n_txs": self.n_txs,
        })

    @property
    def hash(self) -> str:
        """SHA-256 (hex) of the canonical header."""
        return sha256_hex(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockHeader:
        """Decodes a stored header; raises ``ValueError`` naming what is malformed."""
        obj = _json_object(data, "block header")
        expected = {"version", "height", "prev_hash", "merkle_root", "timestamp", "proposer",
                    "n_txs"}
        if set(obj) != expected:
            raise ValueError(f"block header fields are {sorted(obj)}, expected {sorted(expected)}")
        if obj["version"] != HEADER_VERSION:
            raise ValueError(f"unsupported block header version {obj['version']!r}")
        for name in ("height", "timestamp", "n_txs"):
            if not isinstance(obj[name], int) or isinstance(obj[name], bool) or obj[name] < 0:
                raise ValueError(f"block header {name} must be a non-negative integer")
        for name in ("prev_hash", "merkle_root", "proposer"):
            if not isinstance(obj[name], str):
                raise ValueError(f"block header {name} must be a string")
        return cls(obj["height"], obj["prev_hash"], obj["merkle_root"], obj["timestamp"],
                   obj["proposer"], obj["n_txs"])


@dataclass(frozen=True)
class Vote:
    """An institution's signature over a block hash.

    Attributes:
        signer: Institution id.
        signature: Ed25519 signature (hex) of ``VOTE_DOMAIN + bytes.fromhex(block_hash)``.
    """

    signer: str
    signature: str

    def ok(self, public_key: str, block_hash: str) -> bool:
        """True if this vote is ``public_key``'s valid signature of ``block_hash``."""
        try:
            message = bytes.fromhex(block_hash)
        except ValueError:
            return False
        return verify(public_key, self.signature, VOTE_DOMAIN, message)


def encode_votes(votes: Sequence[Vote]) -> bytes:
    """Canonical JSON list of votes, sorted by signer."""
    ordered = sorted(votes, key=lambda v: v.signer)
    return canonical_json([{"signer": v.signer, "signature": v.signature} for v in ordered])


def decode_votes(data: bytes) -> tuple[Vote, ...]:
    """Decodes stored votes; raises ``ValueError`` if malformed."""
    try:
        items = loads_json(data)
    except ValueError as err:
        raise ValueError(f"votes are not valid JSON: {err}") from None
    if not isinstance(items, list):
        raise ValueError("votes must be a JSON list")
    votes = []
    for item in items:
        if (not isinstance(item, dict) or set(item) != {"signer", "signature"}
                or not all(isinstance(x, str) for x in item.values())):
            raise ValueError(f"malformed vote {item!r:.80}")
        if not SIGNATURE_HEX.fullmatch(item["signature"]):
            raise ValueError(f"vote signature of {item['signer']!r} is not 128 lowercase hex")
        votes.append(Vote(item["signer"], item["signature"]))
    if encode_votes(votes) != data:
        raise ValueError("votes are not in canonical form (sorted by signer, canonical JSON)")
    return tuple(votes)


@dataclass(frozen=True)
class Block:
    """A header, its transactions and the votes over its hash."""

    header: BlockHeader
    transactions: tuple[Transaction, ...]
    votes: tuple[Vote, ...]

    @property
    def hash(self) -> str:
        """The block hash (hash of the header)."""
        return self.header.hash

    @property
    def height(self) -> int:
        """The block height."""
        return self.header.height


def make_header(
    height: int, prev_hash: str, txs: Sequence[Transaction], timestamp: int, proposer: str
) -> BlockHeader:
    """The header of a new block over ``txs`` (computes the Merkle root).

    Example:
        >>> make_header(0, GENESIS_PREV_HASH, [], 0, "a").merkle_root[:8]
        'e3b0c442'
    """
    root = merkle_root([tx.to_bytes() for tx in txs]).hex()
    return BlockHeader(height, prev_hash, root, timestamp, proposer, len(txs))


@dataclass(frozen=True)
class StoredTx:
    """A transaction row exactly as stored: position, id column and body bytes."""

    index: int
    tx_id: bytes
    body: bytes


@dataclass(frozen=True)
class StoredBlock:
    """A block row exactly as stored: the bytes that verification checks."""

    height: int
    hash: bytes
    header: bytes
    votes: bytes
    txs: tuple[StoredTx, ...]


def to_stored(block: Block) -> StoredBlock:
    """The stored form of ``block`` (hash and tx ids as ASCII hex bytes).

    Example:
        >>> header = make_header(0, GENESIS_PREV_HASH, [], 0, "a")
        >>> to_stored(Block(header, (), ())).hash == header.hash.encode()
        True
    """
    txs = tuple(StoredTx(i, tx.tx_id.encode(), tx.to_bytes())
                for i, tx in enumerate(block.transactions))
    return StoredBlock(block.height, block.hash.encode(), block.header.to_bytes(),
                       encode_votes(block.votes), txs)


def _json_object(data: bytes, what: str) -> dict:
    try:
        obj = loads_json(data)
    except ValueError as err:
        raise ValueError(f"{what} is not valid JSON: {err}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object")
    return obj
