"""Incremental verification: check only the blocks appended since a verified scan.

A verifier that fully verified a ledger once (:func:`~efl_toolkit.ledger.verify.verify_chain`)
keeps the :class:`~efl_toolkit.ledger.verify.ChainScan` (the replayed state) and the checkpoint
of the blocks it covered (:func:`~efl_toolkit.ledger.checkpoint.checkpoint_of`). Later,
:func:`verify_since` reads and checks only the new blocks, with all seven checks, after
confirming that the verified chain is still the prefix on disk. Its cost is the new blocks'
(``benchmarks/ledger_scale.py``: the last 100 of 10,000 blocks).

Example:
    >>> import tempfile, os
    >>> from efl_toolkit.ledger import store
    >>> from efl_toolkit.ledger.chain import Ledger
    >>> from efl_toolkit.ledger.checkpoint import checkpoint_of
    >>> from efl_toolkit.ledger.keys import Consortium
    >>> from efl_toolkit.ledger.verify import verify_chain
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
    >>> ledger = Ledger.create(path, Consortium.generate(["h1", "h2", "h3"], seed=0))
    >>> conn = store.open_store(path)
    >>> blocks = store.read_blocks(conn)
    >>> scan = verify_chain(blocks, None)
    >>> checkpoint = checkpoint_of([b.hash for b in blocks], scan.state.genesis_hash)
    >>> _ = ledger.commit_block(), ledger.commit_block()
    >>> result = verify_since(conn, scan, checkpoint, None)
    >>> result.report.ok, result.blocks_checked, result.report.n_blocks
    (True, 2, 3)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from efl_toolkit.ledger import store
from efl_toolkit.ledger.artifacts import ArtifactStore
from efl_toolkit.ledger.block import Block, StoredBlock
from efl_toolkit.ledger.checkpoint import Checkpoint, compare
from efl_toolkit.ledger.crypto import verified_in_batch
from efl_toolkit.ledger.verify import (
    ChainScan,
    CheckResult,
    VerificationReport,
    _decode,
    _signatures,
    advance,
    check_block,
)


@dataclass(frozen=True)
class IncrementalResult:
    """What :func:`verify_since` did.

    Attributes:
        report: Verdict on the whole chain (the earlier scan's, extended by the new blocks).
        blocks_checked: New blocks read and put through the seven checks.
        rows_read: Block and transaction rows read (only the new blocks').
        hashes_read: Stored hashes of old blocks read (``checkpoint.size`` with a checkpoint,
            else 1: the boundary block's).
    """

    report: VerificationReport
    blocks_checked: int
    rows_read: int
    hashes_read: int


def verify_since(conn, scan: ChainScan, checkpoint: Checkpoint | None,
                 artifacts: ArtifactStore | None) -> IncrementalResult:
    """Verifies only the blocks appended since ``scan`` (extended in place), from its state.

    A verifier that kept the :class:`ChainScan` of its last full verification (in memory, or
    a long-running explorer) checks the new blocks with all seven checks against the replayed
    state, after checking that the chain it verified is still the prefix on disk: the stored
    hash of its last block must be its head hash and, given ``checkpoint`` (the tree head of
    that prefix, :func:`~efl_toolkit.ledger.checkpoint.checkpoint_of`), the stored hashes of
    heights ``0..checkpoint.size - 1`` must hash to its root (RFC 9162; hash column only).
    Old blocks' other columns are not re-read: a rewrite that keeps the hash column is for a
    full :func:`verify_chain` to find. Cost: the new blocks' rows and checks (plus one hash
    column read with a checkpoint).

    Args:
        conn: The ledger's SQLite connection (:func:`store.open_store`).
        scan: A full scan that passed (``scan.report.ok``).
        checkpoint: Optional checkpoint of exactly the scanned blocks.
        artifacts: Artifact store, or ``None`` to skip artifact checks.

    Raises:
        ValueError: ``scan`` did not pass, or ``checkpoint`` covers another number of blocks.
    """
    start = time.perf_counter()
    old = scan.report
    if not old.ok:
        raise ValueError(f"the earlier scan failed ({old.summary()}); verify in full instead")
    if checkpoint is not None and checkpoint.size != old.n_blocks:
        raise ValueError(f"the checkpoint covers {checkpoint.size} blocks, the scan "
                         f"{old.n_blocks}")
    n = old.n_blocks

    def done(report: VerificationReport, checked=0, rows=0, hashes=1) -> IncrementalResult:
        scan.report = replace(report, seconds=time.perf_counter() - start)
        return IncrementalResult(scan.report, checked, rows, hashes)

    hashes = store.read_hashes(conn, 0 if checkpoint is not None else n - 1, n)
    if not hashes or hashes[-1] != (old.head_hash or "").encode():
        return done(replace(old, ok=False, height=n - 1, check="hash link", reason=(
            f"block {n - 1}'s stored hash is no longer the verified {str(old.head_hash)[:16]}: "
            "history was rewritten or truncated; verify in full")), hashes=len(hashes))
    if checkpoint is not None:
        verdict = compare(checkpoint, hashes, hashes[0].decode("ascii", "replace"))
        if not verdict.ok:
            return done(replace(old, ok=False, height=n - 1, check="hash link",
                                reason=verdict.message), hashes=len(hashes))
    new = store.read_blocks(conn, start=n)
    decoded = [_decode(stored, position) for position, stored in enumerate(new, start=n)]
    keys = {m: r.public_key for m, r in scan.state.members.items()}
    with verified_in_batch(_signatures(new, decoded, keys)):
        first = _extend(scan, new, decoded, artifacts)
    rows = len(new) + sum(len(b.txs) for b in new)
    head = new[-1].hash.decode("ascii", "replace") if new else old.head_hash
    total = replace(old, n_blocks=n + len(new), n_txs=old.n_txs + rows - len(new),
                    head_hash=head)
    if first is not None:
        total = replace(total, ok=False, height=first[0], check=first[1].check,
                        reason=first[1].reason)
    return done(total, len(new), rows, len(hashes))


def _extend(scan: ChainScan, new: Sequence[StoredBlock], decoded: Sequence[Block | ValueError],
            artifacts: ArtifactStore | None) -> tuple[int, CheckResult] | None:
    """Checks ``new`` blocks after ``scan`` (extending it); returns the first failure."""
    n = scan.report.n_blocks
    state, prev_hash, first, state_known = scan.state, scan.report.head_hash, None, True
    for position, stored in enumerate(new, start=n):
        outcome = check_block(stored, state, prev_hash, artifacts, position, state_known,
                              decoded=decoded[position - n])
        scan.checks.append(outcome.checks)
        scan.blocks.append(outcome.block)
        prev_hash, state_known = advance(state, outcome, stored, position, state_known)
        if first is None and outcome.checks.first_failure is not None:
            first = (outcome.checks.height, outcome.checks.first_failure)
    return first
