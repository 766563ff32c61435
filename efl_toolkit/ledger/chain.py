"""The writer: a pending pool, proof-of-authority block production, and crash-safe appends.

Flow of one block::

    submit(tx)      check payload, membership, signature, nonce/replay, rules, artifact
                    against the chain + the pool; keep it in the pool
    commit_block()  the proposer whose turn it is (height % n) builds the header over the pool;
                    the consortium signs the block hash (votes); check_block() re-runs ALL
                    seven checks on the exact bytes to be stored; one SQL transaction writes
                    block + transactions; only then does the in-memory state move.

A rejected transaction or block raises (:class:`TransactionRejected`, :class:`BlockRejected`) and
leaves the file, the state and the pool as they were. Opening a ledger for writing verifies it
and refuses a chain that fails verification.

Example:
    >>> import tempfile, os
    >>> from efl_toolkit.ledger.keys import Consortium
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
    >>> ledger = Ledger.create(path, Consortium.generate(["h1", "h2", "h3"], seed=0))
    >>> ledger.transact("h1", "ROUND_FAILED", {"round_id": "r0", "reason": "demo"}).type
    Traceback (most recent call last):
    ...
    efl_toolkit.ledger.errors.TransactionRejected: transaction rejected (round): \
round 'r0' was never started
    >>> ledger.commit_block().height   # an empty block, proposed by h2
    1
    >>> ledger.close()
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from efl_toolkit.atomic import fsync_directory, remove_stale_temporaries
from efl_toolkit.ledger import store
from efl_toolkit.ledger.artifacts import ArtifactStore
from efl_toolkit.ledger.block import (
    GENESIS_PREV_HASH,
    Block,
    make_header,
    proposer_for,
    quorum_size,
    to_stored,
)
from efl_toolkit.ledger.checkpoint import (
    Checkpoint,
    checkpoint_of,
    checkpoint_path,
    origin_of,
    sign_checkpoint,
    write_checkpoint,
)
from efl_toolkit.ledger.errors import (
    ArtifactError,
    BlockRejected,
    LedgerError,
    TransactionRejected,
)
from efl_toolkit.ledger.keys import Consortium, keystore_path
from efl_toolkit.ledger.merkle import Frontier
from efl_toolkit.ledger.reader import LedgerView, artifacts_dir
from efl_toolkit.ledger.state import ChainState, Staged
from efl_toolkit.ledger.transactions import Transaction, TxType, validate_payload
from efl_toolkit.ledger.verify import check_block
from efl_toolkit.ledger.views import HeaderInfo


def now_ms() -> int:
    """Current time in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class Ledger(LedgerView):
    """A ledger open for appending, with the consortium's keys (see :mod:`keys` note).

    Use :meth:`create` for a new ledger and :meth:`open` for an existing one. Everything in
    :class:`LedgerView` (the read API) works here too and stays current after each append.
    """

    def __init__(self, path, conn, artifacts: ArtifactStore, consortium: Consortium,
                 clock: Callable[[], int] = now_ms) -> None:
        self.consortium = consortium
        self.clock = clock
        super().__init__(path, conn, artifacts)
        self._reset_pool()

    # ----------------------------------------------------------------- open / create
    @classmethod
    def create(cls, path: str | os.PathLike, consortium: Consortium,
               names: dict[str, str] | None = None, clock: Callable[[], int] = now_ms,
               save_keys: bool = False) -> Ledger:
        """Creates a ledger whose genesis block registers every institution of ``consortium``.

        The file appears atomically: it is built under a temporary name and renamed, so a crash
        never leaves a ledger without a genesis block.

        Args:
            path: New SQLite file (must not exist).
            consortium: Members, in proposer-rotation order, with their keys.
            names: Optional display names per institution.
            clock: Milliseconds-since-epoch source (tests pass a fake clock).
            save_keys: Also write the keystore ``<path>.keys/`` (simulation only).

        Example:
            >>> import tempfile
            >>> c = Consortium.generate(["h1", "h2"], seed=0)
            >>> Ledger.create(tempfile.mkdtemp() + "/l.sqlite", c).height
            0
        """
        target = Path(path)
        if target.exists() and target.stat().st_size > 0:
            raise LedgerError(f"{target}: a file already exists; open it instead")
        tmp = target.with_name(target.name + ".creating")
        for suffix in ("", "-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
        names = names or {}
        txs = [consortium.sign(inst, TxType.REGISTER_INSTITUTION, 0, {
            "institution": inst, "public_key": key,
            **({"name": names[inst]} if inst in names else {})})
            for inst, key in consortium.public_keys().items()]
        header = make_header(0, GENESIS_PREV_HASH, txs, clock(), consortium.ids[0])
        votes = tuple(consortium.vote(inst, header.hash) for inst in consortium.ids)
        stored = to_stored(Block(header, tuple(txs), votes))
        outcome = check_block(stored, ChainState(), GENESIS_PREV_HASH, None)
        failure = outcome.checks.first_failure
        if failure is not None:
            raise BlockRejected(0, failure.check, failure.reason)
        conn = store.create_store(tmp)
        try:
            store.write_block(conn, stored)
        finally:
            store.close_store(conn, writer=True)
        os.replace(tmp, target)
        fsync_directory(target.parent)
        genesis = checkpoint_of([stored.hash], header.hash)
        write_checkpoint(checkpoint_path(target), sign_checkpoint(genesis, consortium))
        if save_keys:
            consortium.save(keystore_path(target))
        return cls.open(target, consortium, clock)

    @classmethod
    def open(cls, path: str | os.PathLike, consortium: Consortium | None = None,
             clock: Callable[[], int] = now_ms) -> Ledger:
        """Opens an existing ledger for appending; verifies it first.

        Temporary files that a writer killed mid-write left beside the ledger or among the
        artifacts are deleted first (:func:`~efl_toolkit.atomic.remove_stale_temporaries`).

        Args:
            path: The SQLite file.
            consortium: Keys to sign with (default: the keystore ``<path>.keys/``).
            clock: Milliseconds-since-epoch source.

        Raises:
            LedgerError: not a ledger, fails verification, or the keys do not match genesis.
        """
        conn = store.open_store(path, readonly=False)
        for folder in (Path(path).parent, artifacts_dir(path)):  # a killed writer's leftovers
            remove_stale_temporaries(folder)
        try:
            if consortium is None:
                consortium = Consortium.load(keystore_path(path))
            ledger = cls(path, conn, ArtifactStore(artifacts_dir(path)), consortium, clock)
        except BaseException:
            conn.close()
            raise
        if not ledger.report.ok:
            ledger.close()
            raise LedgerError(f"{path}: refusing to append to a ledger that fails verification: "
                              f"{ledger.report.summary()}")
        members = ledger.state.members
        for inst, key in consortium.public_keys().items():
            if inst in members and members[inst].public_key != key:
                ledger.close()
                raise LedgerError(f"{path}: the key given for {inst!r} is not the one "
                                  "registered in genesis")
        held = [m for m in members if m in consortium.keys]
        if len(held) < quorum_size(len(members)):
            ledger.close()
            raise LedgerError(f"{path}: keys for {held} cannot reach a quorum of "
                              f"{quorum_size(len(members))} of {len(members)} institutions")
        try:
            stored_checkpoint = ledger.stored_checkpoint()
        except LedgerError as err:
            ledger.close()
            raise LedgerError(f"{path}: refusing to append: {err}") from None
        if stored_checkpoint is not None:
            verdict = ledger.check_checkpoint(stored_checkpoint)
            if not verdict.ok:
                ledger.close()
                raise LedgerError(f"{path}: refusing to append to a ledger inconsistent with "
                                  f"its checkpoint {checkpoint_path(path).name}: "
                                  f"{verdict.message}")
        return ledger

    # ----------------------------------------------------------------- checkpoints & close
    def refresh(self):
        """Re-reads and re-verifies the whole file (see :meth:`LedgerView.refresh`)."""
        self._tree = Frontier()
        return super().refresh()

    def checkpoint(self) -> Checkpoint:
        """The (unsigned) checkpoint of the chain now, from a tree over the block hashes that
        grows with each append (O(log n) per block instead of re-hashing every block)."""
        if not self._stored:
            return super().checkpoint()  # names the problem
        for stored in self._stored[self._tree.size:]:
            self._tree.append(stored.hash)
        return Checkpoint(origin_of(self._stored[0].hash.decode("ascii", "replace")),
                          self._tree.size, self._tree.root())

    def signed_checkpoint(self) -> Checkpoint:
        """The checkpoint of the chain now, co-signed by every institution whose key is held
        (the writer keeps them all in this simulation; each would sign at its own site)."""
        signers = [m for m in self.state.member_ids if m in self.consortium.keys]
        return sign_checkpoint(self.checkpoint(), self.consortium, signers)

    def write_checkpoint(self) -> Path:
        """Writes the signed checkpoint next to the ledger (atomically); returns its path."""
        return write_checkpoint(checkpoint_path(self.path), self.signed_checkpoint())

    def close(self) -> None:
        """Closes the ledger, leaving ONE self-contained file (no ``-wal``/``-shm``)."""
        store.close_store(self._conn, writer=True)

    # ----------------------------------------------------------------- the pool
    def _reset_pool(self) -> None:
        self._pool: list[Transaction] = []
        self._pool_verified: set[bytes] = set()  # stored bytes of pool txs, signature checked
        self._pool_staged = Staged(self.state, self.height + 1, self.state.timestamp)

    @property
    def pending(self) -> tuple[Transaction, ...]:
        """Transactions accepted into the pool, not yet in a block."""
        return tuple(self._pool)

    def discard_pending(self) -> None:
        """Drops every pending transaction."""
        self._reset_pool()

    def next_nonce(self, sender: str) -> int:
        """The nonce ``sender``'s next transaction must carry (chain + pool)."""
        return self._pool_staged.next_nonce(sender)

    def _artifact_intact(self, tx: Transaction) -> None:
        if tx.type == TxType.MODEL_COMMIT:
            problem = self.artifacts.problem(tx.payload["version"])
            if problem:
                raise TransactionRejected("artifact hash", problem)

    def submit(self, tx: Transaction, artifact: bytes | None = None) -> Transaction:
        """Validates ``tx`` against the chain and the pool, then adds it to the pool.

        Args:
            tx: A signed transaction.
            artifact: For a MODEL_COMMIT, the serialized parameters: once every rule has
                passed they are stored (atomically) under their hash, which must be the
                committed version. Without it the artifact must already be in the store.

        Raises:
            TransactionRejected: its ``check`` says which rule failed (``payload``,
                ``membership``, ``signature``, ``replay``, ``parent version``, ``round``,
                ``model version``, ``artifact hash``). The pool is unchanged.
        """
        validate_payload(tx)

        def artifact_check(checked: Transaction) -> None:
            if artifact is not None and checked.type == TxType.MODEL_COMMIT:
                try:
                    self.artifacts.put(artifact, expected=checked.payload["version"])
                except ArtifactError as err:
                    raise TransactionRejected("artifact hash", str(err)) from None
            self._artifact_intact(checked)

        self._pool_staged.add(tx, extra_check=artifact_check)
        self._pool.append(tx)
        self._pool_verified.add(tx.to_bytes())
        return tx

    def transact(self, sender: str, tx_type: str, payload: dict,
                 artifact: bytes | None = None) -> Transaction:
        """Signs a transaction as ``sender`` (next nonce) and submits it to the pool."""
        if sender not in self.state.members:
            raise TransactionRejected(
                "membership", f"unknown institution {sender!r}: members are "
                f"{list(self.state.members)}")
        tx = self.consortium.sign(sender, tx_type, self.next_nonce(sender), payload,
                                  self.state.genesis_hash)
        return self.submit(tx, artifact)

    # ----------------------------------------------------------------- blocks
    def propose(self, signers: Sequence[str] | None = None, timestamp: int | None = None,
                txs: Sequence[Transaction] | None = None) -> Block:
        """Builds and signs the next block (not written): the pool (or ``txs``), proposed by
        the institution whose turn it is, voted by ``signers`` (default: every key held)."""
        height = self.height + 1
        members = self.state.member_ids
        proposer = proposer_for(height, members)
        ts = max(self.clock(), self.state.timestamp) if timestamp is None else timestamp
        body = tuple(self._pool if txs is None else txs)
        header = make_header(height, self.head_hash, body, ts, proposer)
        if signers is None:
            signers = [m for m in members if m in self.consortium.keys]
        votes = tuple(self.consortium.vote(s, header.hash) for s in signers)
        return Block(header, body, votes)

    def append_block(self, block: Block) -> HeaderInfo:
        """Checks ``block`` with all seven checks and writes it in one SQL transaction.

        Raises:
            BlockRejected: the first failed check (e.g. ``quorum``); nothing was written.
        """
        stored = to_stored(block)
        outcome = check_block(stored, self.state, self.head_hash, self.artifacts,
                              verified=self._pool_verified)
        failure = outcome.checks.first_failure
        if failure is not None:
            raise BlockRejected(block.height, failure.check, failure.reason)
        store.write_block(self._conn, stored)
        outcome.staged.commit()
        self.state.head_hash = block.hash
        self._stored.append(stored)
        self._scan.checks.append(outcome.checks)
        self._scan.blocks.append(block)
        report = self._scan.report
        self._scan.report = replace(report, n_blocks=report.n_blocks + 1,
                                    n_txs=report.n_txs + len(stored.txs), head_hash=block.hash)
        # the block is durable; a crash before this line leaves an older, still consistent
        # checkpoint (never one ahead of the chain)
        self.write_checkpoint()
        included = {tx.tx_id for tx in block.transactions}
        remaining = [tx for tx in self._pool if tx.tx_id not in included]
        self._reset_pool()
        for tx in remaining:  # re-validate what is left against the new head
            with contextlib.suppress(TransactionRejected):
                self.submit(tx)
        return self.header(block.height)

    def commit_block(self, signers: Sequence[str] | None = None,
                     timestamp: int | None = None) -> HeaderInfo:
        """Proposes, signs and appends a block holding the whole pool; returns its header."""
        return self.append_block(self.propose(signers, timestamp))
