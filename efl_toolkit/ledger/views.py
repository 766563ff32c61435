"""Plain, frozen records that the read API hands out (what the explorer draws).

Nothing here touches SQLite: these are values built from a verified scan of the chain.

Example:
    >>> format_timestamp(0)
    '1970-01-01T00:00:00.000Z'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from efl_toolkit.ledger.merkle import InclusionProof, verify_inclusion
from efl_toolkit.ledger.verify import BlockChecks


def format_timestamp(ms: int | None) -> str:
    """A block timestamp (milliseconds since the epoch) as ISO-8601 UTC text.

    Example:
        >>> format_timestamp(1_700_000_000_123)
        '2023-11-14T22:13:20.123Z'
    """
    if ms is None:
        return "?"
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(frozen=True)
class HeaderInfo:
    """One block header as stored, with its verdict.

    Attributes:
        height: Block height.
        hash: Stored block hash (hex).
        prev_hash: Previous block hash from the header (``None`` if undecodable).
        merkle_root: Merkle root from the header (``None`` if undecodable).
        timestamp: Milliseconds since the epoch (``None`` if undecodable).
        proposer: Proposing institution (``None`` if undecodable).
        n_txs: Number of stored transactions.
        signers: Institutions whose votes are stored.
        ok: True if every check on the block passed.
        problem: ``"check: reason"`` of the first failure, or ``None``.
    """

    height: int
    hash: str
    prev_hash: str | None
    merkle_root: str | None
    timestamp: int | None
    proposer: str | None
    n_txs: int
    signers: tuple[str, ...]
    ok: bool
    problem: str | None


@dataclass(frozen=True)
class TxInfo:
    """One decoded transaction.

    Attributes:
        height: Block height.
        index: Position in the block.
        tx_id: Transaction id (hex).
        type: Transaction type.
        sender: Signing institution.
        nonce: Sender's counter.
        payload: Decoded payload.
        signature: Signature (hex).
        signature_ok: Signature verified under the sender's registered key.
        size: Stored size in bytes.
    """

    height: int
    index: int
    tx_id: str
    type: str
    sender: str
    nonce: int
    payload: dict
    signature: str
    signature_ok: bool | None
    size: int


@dataclass(frozen=True)
class VoteInfo:
    """One stored vote: signer, signature, and whether it verifies."""

    signer: str
    signature: str
    ok: bool | None


@dataclass(frozen=True)
class BlockInfo:
    """A block with decoded transactions, votes and check results.

    Attributes:
        header: The header record.
        transactions: Decoded transactions (empty if the block is undecodable).
        votes: Votes with their verdicts.
        checks: Per-check results (``checks.results``, one per name in ``CHECKS``).
    """

    header: HeaderInfo
    transactions: tuple[TxInfo, ...]
    votes: tuple[VoteInfo, ...]
    checks: BlockChecks


@dataclass(frozen=True)
class InstitutionInfo:
    """A consortium member as registered in genesis.

    Attributes:
        institution: Id.
        name: Display name.
        public_key: Ed25519 public key (hex).
        fingerprint: First 16 hex of SHA-256(public key).
        height: Registration height (0).
    """

    institution: str
    name: str
    public_key: str
    fingerprint: str
    height: int


@dataclass(frozen=True)
class Match:
    """A search hit of :meth:`LedgerView.find`.

    Attributes:
        kind: ``"block"``, ``"tx"``, ``"version"`` or ``"round"``.
        key: The full hash (or round id) that matched.
        height: Block where it is (for a round: where it started).
        index: Transaction index in that block (``None`` for a block).
    """

    kind: str
    key: str
    height: int
    index: int | None


@dataclass(frozen=True)
class TxProof:
    """An inclusion proof of a transaction in its block's Merkle tree.

    Attributes:
        height: Block height.
        tx_id: Transaction id.
        leaf: Stored transaction bytes (the Merkle leaf).
        proof: RFC 9162 inclusion proof.
        root: The block header's Merkle root (32 bytes).
        size: The block header's transaction count (the tree size).
    """

    height: int
    tx_id: str
    leaf: bytes
    proof: InclusionProof
    root: bytes
    size: int

    def verify(self) -> bool:
        """True if the proof checks out against the header's tree head (size, root)."""
        return verify_inclusion(self.leaf, self.proof, self.root, self.size)
