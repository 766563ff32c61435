"""The read API: open any ledger file read-only, verify it, and look at everything in it.

:func:`open_ledger` never raises because a chain fails verification (the explorer must be able
to SHOW a tampered ledger); it raises :class:`LedgerError` only for a file that is not a usable
ledger at all (missing, not SQLite, corrupt SQLite, not an efl ledger). The verdict is in
:attr:`LedgerView.report` and per block in :meth:`LedgerView.checks`.

Example:
    >>> import tempfile, os
    >>> from efl_toolkit.ledger.chain import Ledger
    >>> from efl_toolkit.ledger.keys import Consortium
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
    >>> Ledger.create(path, Consortium.generate(["h1", "h2", "h3"], seed=0)).close()
    >>> view = open_ledger(path)
    >>> view.height, view.report.ok, [i.institution for i in view.institutions()]
    (0, True, ['h1', 'h2', 'h3'])
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from efl_toolkit.ledger import store
from efl_toolkit.ledger.artifacts import ArtifactStore
from efl_toolkit.ledger.block import Block, StoredBlock
from efl_toolkit.ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    Comparison,
    checkpoint_of,
    checkpoint_path,
    compare,
    origin_of,
    read_checkpoint,
    verify_signatures,
)
from efl_toolkit.ledger.crypto import fingerprint
from efl_toolkit.ledger.errors import LedgerError
from efl_toolkit.ledger.merkle import (
    ConsistencyProof,
    consistency_proof,
    inclusion_proof,
    merkle_root,
)
from efl_toolkit.ledger.state import ChainState, ModelVersion, Round, Tag
from efl_toolkit.ledger.verify import BlockChecks, ChainScan, VerificationReport, verify_chain
from efl_toolkit.ledger.views import (
    BlockInfo,
    HeaderInfo,
    InstitutionInfo,
    Match,
    TxInfo,
    TxProof,
    VoteInfo,
)


def artifacts_dir(ledger_path: str | os.PathLike) -> Path:
    """The artifact store of a ledger: ``<ledger_dir>/artifacts``.

    Example:
        >>> artifacts_dir("out/ledger.sqlite").as_posix()
        'out/artifacts'
    """
    return Path(ledger_path).parent / "artifacts"


class LedgerView:
    """A verified, read-only snapshot of a ledger file (call :meth:`refresh` to re-read).

    Attributes:
        path: The SQLite file.
        artifacts: The artifact store beside it.
        report: Verification report of the snapshot.
        state: Chain state replayed from the snapshot (members, versions, rounds, tags).
    """

    def __init__(self, path: str | os.PathLike, conn, artifacts: ArtifactStore,
                 genesis_hash: str | None = None,
                 trusted_keys: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self.artifacts = artifacts
        self.genesis_hash = genesis_hash
        self.trusted_keys = dict(trusted_keys) if trusted_keys is not None else None
        self._conn = conn
        self.refresh()

    # ----------------------------------------------------------------- lifecycle
    def refresh(self) -> VerificationReport:
        """Re-reads every block from disk and re-verifies everything; returns the report."""
        if store.is_immutable(self._conn):  # it would not see new blocks: open afresh
            self._conn.close()
            self._conn = store.open_store(self.path, readonly=True)
        try:
            self._stored: list[StoredBlock] = store.read_blocks(self._conn)
        except LedgerError as err:
            raise LedgerError(f"{self.path}: {err}") from None
        self._scan: ChainScan = verify_chain(self._stored, self.artifacts, self.genesis_hash,
                                             self.trusted_keys)
        return self._scan.report

    def verify(self) -> VerificationReport:
        """Verifies the whole chain as it is on disk now (hash links, Merkle roots, signatures,
        quorum, rules, artifact hashes); same as :meth:`refresh`."""
        return self.refresh()

    def close(self) -> None:
        """Closes the database connection (a reader never wrote anything)."""
        self._conn.close()

    def __enter__(self) -> LedgerView:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- chain facts
    @property
    def report(self) -> VerificationReport:
        """The verification report of the current snapshot."""
        return self._scan.report

    @property
    def state(self) -> ChainState:
        """The replayed chain state (up to the first block that broke the rules)."""
        return self._scan.state

    @property
    def height(self) -> int:
        """Height of the last stored block (-1 if there is none)."""
        return len(self._stored) - 1

    @property
    def head_hash(self) -> str | None:
        """Stored hash of the last block."""
        return self._stored[-1].hash.decode("ascii", "replace") if self._stored else None

    def _index(self, height: int) -> int:
        if not 0 <= height < len(self._stored):
            raise LedgerError(f"{self.path}: no block at height {height} (height is {self.height})")
        return height

    def checks(self, height: int) -> BlockChecks:
        """The seven check results of block ``height`` (see ``verify.CHECKS``)."""
        return self._scan.checks[self._index(height)]

    def header(self, height: int) -> HeaderInfo:
        """The header record of block ``height``."""
        i = self._index(height)
        stored, block, checks = self._stored[i], self._scan.blocks[i], self._scan.checks[i]
        failure = checks.first_failure
        problem = f"{failure.check}: {failure.reason}" if failure else None
        h = block.header if block else None
        return HeaderInfo(
            height=stored.height, hash=stored.hash.decode("ascii", "replace"),
            prev_hash=h.prev_hash if h else None, merkle_root=h.merkle_root if h else None,
            timestamp=h.timestamp if h else None, proposer=h.proposer if h else None,
            n_txs=len(stored.txs), signers=tuple(v.signer for v in block.votes) if block else (),
            ok=checks.ok, problem=problem)

    def headers(self, start: int = 0, stop: int | None = None) -> list[HeaderInfo]:
        """Header records of heights ``start`` .. ``stop - 1`` (default: all)."""
        stop = len(self._stored) if stop is None else min(stop, len(self._stored))
        return [self.header(h) for h in range(max(start, 0), stop)]

    def _tx_info(self, height: int, index: int, block: Block, checks: BlockChecks) -> TxInfo:
        tx = block.transactions[index]
        sig = checks.tx_signatures[index] if index < len(checks.tx_signatures) else None
        return TxInfo(height, index, tx.tx_id, tx.type, tx.sender, tx.nonce, tx.payload,
                      tx.signature, sig, len(self._stored[height].txs[index].body))

    def block(self, height: int) -> BlockInfo:
        """Block ``height`` with decoded transactions, vote verdicts and check results."""
        i = self._index(height)
        block, checks = self._scan.blocks[i], self._scan.checks[i]
        if block is None:
            return BlockInfo(self.header(i), (), (), checks)
        txs = tuple(self._tx_info(i, k, block, checks) for k in range(len(block.transactions)))
        votes = tuple(VoteInfo(v.signer, v.signature, checks.vote_signatures.get(v.signer))
                      for v in block.votes)
        return BlockInfo(self.header(i), txs, votes, checks)

    def transaction(self, tx_id: str) -> TxInfo:
        """The transaction with id ``tx_id`` (full hex); ``LedgerError`` if absent."""
        where = self.state.tx_index.get(tx_id)
        if where is None:
            for match in self.find(tx_id):
                if match.kind == "tx" and match.key == tx_id:
                    where = match
                    break
        if where is None:
            raise LedgerError(f"{self.path}: no transaction {tx_id[:16]}")
        i = where.height
        return self._tx_info(i, where.index, self._scan.blocks[i], self._scan.checks[i])

    # ----------------------------------------------------------------- consortium & models
    def institutions(self) -> list[InstitutionInfo]:
        """Members in registration order, with key fingerprints."""
        return [InstitutionInfo(m.institution, m.name, m.public_key, fingerprint(m.public_key),
                                m.height) for m in self.state.members.values()]

    def model_versions(self, institution: str | None = None,
                       model_id: str | None = None) -> list[ModelVersion]:
        """Committed model versions in commit order (``parent`` links draw the DAG)."""
        return [v for v in self.state.versions.values()
                if (institution is None or v.institution == institution)
                and (model_id is None or v.model_id == model_id)]

    def rounds(self) -> list[Round]:
        """Ensemble rounds in start order, with their latest status."""
        return list(self.state.rounds.values())

    def tags(self) -> list[Tag]:
        """All MODEL_TAG records in chain order."""
        return list(self.state.tags)

    def find(self, prefix: str) -> list[Match]:
        """Blocks, transactions, model versions and rounds whose hash (or id) starts with
        ``prefix`` (case-insensitive for hashes)."""
        p = prefix.strip().lower()
        if not p:
            return []
        hits: list[Match] = []
        for i, (stored, block) in enumerate(zip(self._stored, self._scan.blocks, strict=True)):
            if stored.hash.decode("ascii", "replace").startswith(p):
                hits.append(Match("block", stored.hash.decode("ascii", "replace"), i, None))
            if block is not None:
                for k, tx in enumerate(block.transactions):
                    if tx.tx_id.startswith(p):
                        hits.append(Match("tx", tx.tx_id, i, k))
        for v in self.state.versions.values():
            if v.version.startswith(p):
                hits.append(Match("version", v.version, v.where.height, v.where.index))
        for r in self.state.rounds.values():
            if r.round_id.lower().startswith(p):
                hits.append(Match("round", r.round_id, r.started.height, r.started.index))
        return hits

    # ----------------------------------------------------------------- proofs
    def inclusion_proof(self, tx_id: str) -> TxProof:
        """Proof that transaction ``tx_id`` is committed by its block's Merkle root."""
        info = self.transaction(tx_id)
        stored, block = self._stored[info.height], self._scan.blocks[info.height]
        leaves = [row.body for row in stored.txs]
        return TxProof(info.height, tx_id, leaves[info.index],
                       inclusion_proof(leaves, info.index), bytes.fromhex(block.header.merkle_root),
                       block.header.n_txs)

    def chain_root(self, height: int) -> bytes:
        """RFC 9162 root over the stored block hashes of heights 0..``height``."""
        self._index(height)
        return merkle_root([b.hash for b in self._stored[:height + 1]])

    def consistency_proof(self, old_height: int, new_height: int) -> ConsistencyProof:
        """Proof that the chain up to ``old_height`` is a prefix of the chain up to
        ``new_height``: check it with ``merkle.verify_consistency(proof, chain_root(old),
        chain_root(new), old + 1, new + 1)``."""
        self._index(old_height)
        self._index(new_height)
        if old_height > new_height:
            raise LedgerError(f"old height {old_height} is above new height {new_height}")
        leaves = [b.hash for b in self._stored[:new_height + 1]]
        return consistency_proof(leaves, old_height + 1)

    # ----------------------------------------------------------------- checkpoints
    def block_hashes(self) -> list[bytes]:
        """Stored hashes of every block, in height order (the checkpoint tree's leaves)."""
        return [b.hash for b in self._stored]

    @property
    def origin(self) -> str | None:
        """The checkpoint origin of this ledger (``efl-ledger/<genesis hash>``)."""
        return origin_of(self._stored[0].hash.decode("ascii", "replace")) if self._stored \
            else None

    def checkpoint(self) -> Checkpoint:
        """The (unsigned) checkpoint of the chain as stored now.

        Example:
            >>> from efl_toolkit.ledger.chain import Ledger
            >>> from efl_toolkit.ledger.keys import Consortium
            >>> import tempfile
            >>> led = Ledger.create(tempfile.mkdtemp() + "/l.sqlite",
            ...                     Consortium.generate(["h1", "h2", "h3"], seed=0))
            >>> led.checkpoint().size
            1
        """
        if not self._stored:
            raise LedgerError(f"{self.path}: the ledger has no genesis block")
        return checkpoint_of(self.block_hashes(), self._stored[0].hash.decode("ascii",
                                                                                  "replace"))

    def stored_checkpoint(self) -> Checkpoint | None:
        """The checkpoint written next to the ledger (``<ledger>.checkpoint``), or ``None``.

        Raises:
            CheckpointError: the file is there but is not a checkpoint note.
        """
        path = checkpoint_path(self.path)
        if not path.exists():
            return None
        return read_checkpoint(path)

    def member_keys(self) -> dict[str, str]:
        """Institution -> public key (hex) as registered in genesis."""
        return {m.institution: m.public_key for m in self.state.members.values()}

    def check_checkpoint(self, checkpoint: Checkpoint,
                         trusted_keys: Mapping[str, str] | None = None) -> Comparison:
        """Checks ``checkpoint``'s signatures (a quorum of ``trusted_keys``, default: this
        view's trusted keys, else the keys registered in genesis) and whether this ledger is
        consistent with it (truncation and forks are reported with their heights)."""
        keys = trusted_keys if trusted_keys is not None else self.trusted_keys
        if keys is None:
            keys = self.member_keys()
        try:
            verify_signatures(checkpoint, keys)
        except CheckpointError as err:
            return Comparison("bad signatures", str(err), checkpoint.height, self.height)
        genesis = self._stored[0].hash.decode("ascii", "replace") if self._stored else None
        return compare(checkpoint, self.block_hashes(), genesis)


def open_ledger(path: str | os.PathLike, genesis_hash: str | None = None,
                artifacts: str | os.PathLike | None = None,
                trusted_keys: Mapping[str, str] | None = None) -> LedgerView:
    """Opens a ledger read-only and verifies it (the verdict is in ``view.report``).

    Args:
        path: The SQLite ledger file.
        genesis_hash: Optional pinned genesis hash (trust anchor obtained out of band).
        artifacts: Artifact directory (default ``<ledger_dir>/artifacts``).
        trusted_keys: Optional institution -> public key (hex) obtained out of band; genesis
            must register exactly these keys.

    Raises:
        LedgerError: the file is missing, not SQLite, corrupt or not an efl ledger.

    Example:
        >>> open_ledger("/nonexistent/ledger.sqlite")
        Traceback (most recent call last):
        ...
        efl_toolkit.ledger.errors.LedgerError: /nonexistent/ledger.sqlite: no such ledger file
    """
    conn = store.open_store(path, readonly=True)
    directory = artifacts if artifacts is not None else artifacts_dir(path)
    try:
        return LedgerView(path, conn, ArtifactStore(directory), genesis_hash, trusted_keys)
    except BaseException:
        conn.close()
        raise
