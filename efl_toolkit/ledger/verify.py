"""Verification: re-check every stored byte and report failures as values, never as crashes.

Each block goes through seven checks, in this order (``CHECKS``):

1. ``encoding``: the row decodes (header, votes, transactions are well-formed JSON of the right
   shape, votes in canonical form) and heights are contiguous;
2. ``hash link``: the stored hash is the SHA-256 of the stored header, and ``prev_hash`` is the
   stored hash of the block before;
3. ``merkle root``: the RFC 9162 root over the stored transaction bytes equals the header's
   (and each stored transaction id column matches its body);
4. ``signature``: every transaction verifies under its sender's registered Ed25519 key;
5. ``quorum``: the proposer is the one whose turn it was, every vote is a valid signature of the
   block hash by a distinct member, and more than 2/3 of the members voted;
6. ``rules``: the chain rules (membership, nonces / replay, parent versions, rounds, timestamps;
   see :mod:`efl_toolkit.ledger.state`) hold;
7. ``artifact hash``: every committed model version's artifact exists and hashes to its name.

Trust anchors obtained out of band make a re-forged ledger (same institution names, new keys,
another genesis) fail instead of verifying like the real one: a pinned ``genesis_hash`` is
checked under ``hash link`` of block 0, and ``trusted_keys`` (institution -> public key) under
``signature`` of block 0, naming the institution whose registered key differs.

:func:`check_block` returns a :class:`BlockChecks` (one :class:`CheckResult` per check, ``ok``
``None`` when it could not be checked) and :func:`verify_chain` a :class:`ChainScan` whose
:class:`VerificationReport` names the first failing height and check.

Example:
    >>> report = VerificationReport(False, 3, "merkle root", "root differs", 10, 12, None, 0.01)
    >>> report.summary()
    'FAILED at height 3: merkle root: root differs'
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from efl_toolkit.ledger.artifacts import ArtifactStore
from efl_toolkit.ledger.block import (
    GENESIS_PREV_HASH,
    Block,
    BlockHeader,
    StoredBlock,
    decode_votes,
    proposer_for,
    quorum_size,
)
from efl_toolkit.ledger.crypto import (
    TX_DOMAIN,
    VOTE_DOMAIN,
    fingerprint,
    sha256_hex,
    verified_in_batch,
)
from efl_toolkit.ledger.errors import TransactionRejected
from efl_toolkit.ledger.merkle import merkle_root
from efl_toolkit.ledger.state import ChainState, Staged, signature_problem
from efl_toolkit.ledger.transactions import Transaction, TxType

CHECKS = ("encoding", "hash link", "merkle root", "signature", "quorum", "rules", "artifact hash")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one block.

    Attributes:
        check: One of ``CHECKS``.
        ok: ``True`` passed, ``False`` failed, ``None`` not checked (an earlier failure made it
            meaningless, or no artifact store was given).
        reason: Why it failed or was not checked (empty when it passed).
    """

    check: str
    ok: bool | None
    reason: str = ""


@dataclass(frozen=True)
class BlockChecks:
    """All check results of one block, plus per-transaction signature and vote outcomes.

    Attributes:
        height: The block's height.
        results: One :class:`CheckResult` per entry of ``CHECKS``, in that order.
        tx_signatures: ``True``/``False`` per transaction (empty if undecodable).
        vote_signatures: Signer -> ``True``/``False`` per vote.
    """

    height: int
    results: tuple[CheckResult, ...]
    tx_signatures: tuple[bool, ...] = ()
    vote_signatures: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if every check passed (an artifact check that was skipped counts as passed)."""
        return all(r.ok or (r.ok is None and r.check == "artifact hash") for r in self.results)

    @property
    def first_failure(self) -> CheckResult | None:
        """The first failed (or unchecked, if nothing failed) result, or ``None``."""
        for r in self.results:
            if r.ok is False:
                return r
        for r in self.results:
            if r.ok is None and r.check != "artifact hash":
                return r
        return None

    def get(self, check: str) -> CheckResult:
        """The result of ``check`` (one of ``CHECKS``)."""
        return self.results[CHECKS.index(check)]


@dataclass(frozen=True)
class VerificationReport:
    """Verdict on a whole chain.

    Attributes:
        ok: True if every block passed every check.
        height: First bad height (``None`` if ok).
        check: Name of the failed check (one of ``CHECKS``), ``None`` if ok.
        reason: What exactly was wrong, ``None`` if ok.
        n_blocks: Blocks read.
        n_txs: Transactions read.
        head_hash: Stored hash of the last block (``None`` if there is none).
        seconds: Time the verification took.
    """

    ok: bool
    height: int | None
    check: str | None
    reason: str | None
    n_blocks: int
    n_txs: int
    head_hash: str | None
    seconds: float

    def summary(self) -> str:
        """One line: ``OK: ...`` or ``FAILED at height H: check: reason``."""
        if self.ok:
            return (f"OK: {self.n_blocks} blocks (height {self.n_blocks - 1}), {self.n_txs} "
                    f"transactions verified in {self.seconds:.3f} s; head {self.head_hash}")
        return f"FAILED at height {self.height}: {self.check}: {self.reason}"


@dataclass
class BlockOutcome:
    """What :func:`check_block` learnt: checks, the decoded block, and staged state changes."""

    checks: BlockChecks
    block: Block | None
    staged: Staged | None


def decode_block(stored: StoredBlock, expected_height: int) -> Block:
    """Decodes a stored block; ``ValueError`` names the first malformed part."""
    if stored.height != expected_height:
        raise ValueError(f"block rows jump from height {expected_height - 1} to {stored.height}")
    if not stored.header:
        raise ValueError(f"transaction rows at height {stored.height} have no block row")
    header = BlockHeader.from_bytes(stored.header)
    if header.height != stored.height:
        raise ValueError(f"row {stored.height} holds a header of height {header.height}")
    votes = decode_votes(stored.votes)
    txs = []
    for position, row in enumerate(stored.txs):
        if row.index != position:
            raise ValueError(f"transaction rows skip from index {position - 1} to {row.index}")
        try:
            tx = Transaction.from_bytes(row.body)
        except ValueError as err:
            raise ValueError(f"transaction {position}: {err}") from None
        txs.append(tx)
    if header.n_txs != len(txs):
        raise ValueError(f"header says {header.n_txs} transactions, {len(txs)} stored")
    return Block(header, tuple(txs), votes)


def _genesis_members(block: Block) -> dict[str, str]:
    return {tx.sender: tx.payload.get("public_key") for tx in block.transactions
            if tx.type == TxType.REGISTER_INSTITUTION and isinstance(tx.payload.get("public_key"),
                                                                     str)}


def _quorum(block: Block, block_hash: str, members: dict[str, str]) -> tuple[CheckResult, dict]:
    outcomes: dict[str, bool] = {}
    if not members:
        return CheckResult("quorum", False, "no registered institutions"), outcomes
    ids = list(members)
    expected = proposer_for(block.height, ids)
    problem = None
    if block.header.proposer != expected:
        problem = (f"proposer is {block.header.proposer!r}, but height {block.height} is "
                   f"{expected!r}'s turn")
    for vote in block.votes:
        if vote.signer in outcomes:
            problem = problem or f"{vote.signer!r} voted twice"
            continue
        if vote.signer not in members:
            outcomes[vote.signer] = False
            problem = problem or f"vote from unknown institution {vote.signer!r}"
            continue
        outcomes[vote.signer] = vote.ok(members[vote.signer], block_hash)
        if not outcomes[vote.signer]:
            problem = problem or f"bad vote signature from {vote.signer!r}"
    n_ok = sum(outcomes.values())
    if problem is None and block.header.proposer not in outcomes:
        problem = f"the proposer {block.header.proposer!r} did not sign"
    if problem is None and n_ok < quorum_size(len(ids)):
        problem = (f"{n_ok} of {len(ids)} institutions signed; more than 2/3 "
                   f"({quorum_size(len(ids))}) needed")
    return CheckResult("quorum", problem is None, problem or ""), outcomes


def check_block(
    stored: StoredBlock,
    state: ChainState,
    prev_hash: str,
    artifacts: ArtifactStore | None,
    expected_height: int | None = None,
    state_known: bool = True,
    verified: frozenset[bytes] | set[bytes] = frozenset(),
    decoded: Block | ValueError | None = None,
) -> BlockOutcome:
    """Runs the seven checks on one stored block, given the chain state before it.

    Args:
        stored: The block's stored bytes.
        state: Chain state after the previous block (not modified).
        prev_hash: Stored hash of the previous block (``GENESIS_PREV_HASH`` for genesis).
        artifacts: Store to check artifacts against, or ``None`` to skip that check.
        expected_height: Height this row must have (default ``state.height + 1``).
        state_known: False if an earlier block broke the rules (rules are then not checked).
        verified: Stored transaction bytes whose signature the caller has just verified under
            the same registered keys (the writer's pool), so they are not verified twice.
            Verification of a stored chain never passes this.
        decoded: ``decode_block(stored, expected_height)``'s result (or its ``ValueError``)
            if the caller already computed it (:func:`verify_chain` decodes in a first pass).

    Returns:
        A :class:`BlockOutcome`; its ``staged`` changes are set only if the rules passed.
    """
    height = state.height + 1 if expected_height is None else expected_height
    results: dict[str, CheckResult] = {}

    def finish(block=None, staged=None, sigs=(), votes=None) -> BlockOutcome:
        filled = tuple(results.get(c, CheckResult(c, None, "not checked")) for c in CHECKS)
        return BlockOutcome(BlockChecks(height, filled, tuple(sigs), votes or {}), block, staged)

    try:
        if isinstance(decoded, ValueError):
            raise decoded
        block = decoded if decoded is not None else decode_block(stored, height)
    except ValueError as err:
        results["encoding"] = CheckResult("encoding", False, str(err))
        return finish()
    results["encoding"] = CheckResult("encoding", True)

    computed = sha256_hex(stored.header)
    stored_hash = stored.hash.decode("ascii", "replace")
    if stored_hash != computed:
        results["hash link"] = CheckResult("hash link", False, f"stored hash {stored_hash[:16]} is "
                                           f"not the header's hash {computed[:16]}")
    elif block.header.prev_hash != prev_hash:
        results["hash link"] = CheckResult("hash link", False, f"prev_hash "
                                           f"{block.header.prev_hash[:16]} does not match block "
                                           f"{height - 1}'s hash {prev_hash[:16]}")
    else:
        results["hash link"] = CheckResult("hash link", True)

    root = merkle_root([row.body for row in stored.txs]).hex()
    bad_ids = [i for i, (row, tx) in enumerate(zip(stored.txs, block.transactions, strict=True))
               if row.tx_id != tx.tx_id.encode()]
    if root != block.header.merkle_root:
        results["merkle root"] = CheckResult("merkle root", False, f"transactions hash to "
                                             f"{root[:16]}, header says "
                                             f"{block.header.merkle_root[:16]}")
    elif bad_ids:
        results["merkle root"] = CheckResult("merkle root", False, f"stored id of transaction "
                                             f"{bad_ids[0]} does not match its body")
    else:
        results["merkle root"] = CheckResult("merkle root", True)

    members = state.members if height > 0 else {}
    sigs, sig_problem = [], None
    for i, (row, tx) in enumerate(zip(stored.txs, block.transactions, strict=True)):
        problem = None if row.body in verified else signature_problem(tx, members)
        sigs.append(problem is None)
        if problem and sig_problem is None:
            sig_problem = f"transaction {i}: {problem}"
    results["signature"] = CheckResult("signature", sig_problem is None, sig_problem or "")

    keys = ({m: r.public_key for m, r in state.members.items()} if height > 0
            else _genesis_members(block))
    results["quorum"], vote_outcomes = _quorum(block, computed, keys)

    staged = None
    if not state_known:
        results["rules"] = CheckResult("rules", None, "not checked: an earlier block broke them")
    else:
        staged, problem = _rules(block, state)
        results["rules"] = CheckResult("rules", problem is None, problem or "")

    if artifacts is None:
        results["artifact hash"] = CheckResult("artifact hash", None, "no artifact store")
    else:
        problem = None
        for tx in block.transactions:
            version = tx.payload.get("version") if tx.type == TxType.MODEL_COMMIT else None
            if isinstance(version, str):
                try:
                    problem = artifacts.problem(version)
                except Exception as err:  # a malformed name is a failure, never a crash
                    problem = f"artifact {version[:12]!r}: {err}"
                if problem:
                    break
        results["artifact hash"] = CheckResult("artifact hash", problem is None, problem or "")
    return finish(block, staged, sigs, vote_outcomes)


def _rules(block: Block, state: ChainState) -> tuple[Staged | None, str | None]:
    if block.height > 0 and block.header.timestamp < state.timestamp:
        return None, (f"timestamp {block.header.timestamp} is earlier than the previous block's "
                      f"{state.timestamp}")
    if block.height == 0 and not block.transactions:
        return None, "the genesis block registers no institution"
    staged = Staged(state, block.height, block.header.timestamp)
    for i, tx in enumerate(block.transactions):
        try:
            staged.add(tx, check_signature=False)
        except TransactionRejected as err:
            return None, (f"transaction {i} ({tx.type} from {tx.sender!r}): "
                          f"{err.check}: {err.reason}")
    return staged, None


@dataclass
class ChainScan:
    """Result of replaying a whole chain: the report, per-block checks, state, decoded blocks."""

    report: VerificationReport
    checks: list[BlockChecks]
    state: ChainState
    blocks: list[Block | None]


def trusted_key_problem(block: Block | None, trusted_keys: Mapping[str, str]) -> str | None:
    """Why genesis ``block`` does not register exactly ``trusted_keys``, or ``None``.

    Example:
        >>> trusted_key_problem(None, {"h1": "00" * 32})
        'genesis cannot be decoded, so its keys cannot be matched to the trusted keys'
    """
    if block is None:
        return "genesis cannot be decoded, so its keys cannot be matched to the trusted keys"
    registered = _genesis_members(block)
    for name, key in trusted_keys.items():
        if name not in registered:
            return f"trusted institution {name!r} is not registered in genesis"
        if registered[name].lower() != key.lower():
            return (f"{name!r} registered another key than its trusted one (registered "
                    f"fingerprint {_fp(registered[name])}, trusted {_fp(key)}): a re-forged "
                    "ledger or another consortium")
    extra = [name for name in registered if name not in trusted_keys]
    if extra:
        return f"genesis registers {extra[0]!r}, which is not among the trusted institutions"
    return None


def _fp(key: str) -> str:
    try:
        return fingerprint(key)
    except ValueError:
        return "?"


def advance(state: ChainState, outcome: BlockOutcome, stored: StoredBlock, position: int,
            state_known: bool) -> tuple[str, bool]:
    """Moves the running ``state`` past a checked block: its staged state changes are applied
    (or the state is no longer known, after a block that failed its rules); returns the
    block's hash (the next block's ``prev``) and whether the state is still known."""
    if outcome.staged is not None:
        outcome.staged.commit()
    else:
        state_known = False
    state.height = position
    state.head_hash = stored.hash.decode("ascii", "replace")
    return state.head_hash, state_known


def verify_chain(
    stored_blocks: Sequence[StoredBlock],
    artifacts: ArtifactStore | None,
    genesis_hash: str | None = None,
    trusted_keys: Mapping[str, str] | None = None,
) -> ChainScan:
    """Checks every block in order; keeps going after a failure to fill in per-block results.

    Args:
        stored_blocks: All stored blocks in height order (from :func:`store.read_blocks`).
        artifacts: Artifact store, or ``None`` to skip artifact checks.
        genesis_hash: If given, block 0's hash must equal it (a pinned trust anchor).
        trusted_keys: If given, genesis must register exactly these institutions with exactly
            these public keys (hex), e.g. from :func:`checkpoint.read_trusted_keys`.

    Returns:
        A :class:`ChainScan`; ``scan.report`` names the first failing height and check.
    """
    start = time.perf_counter()
    decoded = [_decode(stored, position) for position, stored in enumerate(stored_blocks)]
    keys = _genesis_members(decoded[0]) if decoded and isinstance(decoded[0], Block) else {}
    with verified_in_batch(_signatures(stored_blocks[1:], decoded[1:], keys)):
        scan = _scan(stored_blocks, decoded, artifacts, genesis_hash, trusted_keys)
    scan.report = replace(scan.report, seconds=time.perf_counter() - start)
    return scan


def _decode(stored: StoredBlock, height: int) -> Block | ValueError:
    try:
        return decode_block(stored, height)
    except ValueError as err:
        return err


def _signatures(stored_blocks: Sequence[StoredBlock], decoded: Sequence[Block | ValueError],
                keys: Mapping[str, str]) -> list[tuple[str, str, bytes, bytes]]:
    """Every (key, signature, domain, message) that checking these (non-genesis) blocks will
    verify, with the registered ``keys`` (membership is fixed by genesis); a guess that misses
    costs nothing, it is verified again."""
    items = []
    for stored, block in zip(stored_blocks, decoded, strict=True):
        if not isinstance(block, Block):
            continue
        items += [(keys[tx.sender], tx.signature, TX_DOMAIN, tx.signing_bytes())
                  for tx in block.transactions if tx.sender in keys]
        try:
            message = bytes.fromhex(sha256_hex(stored.header))
        except ValueError:
            continue
        items += [(keys[v.signer], v.signature, VOTE_DOMAIN, message) for v in block.votes
                  if v.signer in keys]
    return items


def _scan(stored_blocks: Sequence[StoredBlock], decoded: Sequence[Block | ValueError],
          artifacts: ArtifactStore | None, genesis_hash: str | None,
          trusted_keys: Mapping[str, str] | None) -> ChainScan:
    start = time.perf_counter()
    state = ChainState()
    checks, blocks = [], []
    prev_hash, state_known, first = GENESIS_PREV_HASH, True, None
    for position, stored in enumerate(stored_blocks):
        try:
            outcome = check_block(stored, state, prev_hash, artifacts, position, state_known,
                                  decoded=decoded[position])
        except Exception as err:  # a safety net: verification reports, it never crashes
            failed = CheckResult("encoding", False, f"unexpected {type(err).__name__}: {err}")
            outcome = BlockOutcome(BlockChecks(position, (failed,) + tuple(
                CheckResult(c, None, "not checked") for c in CHECKS[1:])), None, None)
        block_checks = outcome.checks
        if position == 0 and genesis_hash is not None and stored.hash != genesis_hash.encode():
            fixed = list(block_checks.results)
            fixed[CHECKS.index("hash link")] = CheckResult(
                "hash link", False, f"genesis hash is not the pinned {genesis_hash[:16]}")
            block_checks = BlockChecks(0, tuple(fixed), block_checks.tx_signatures,
                                       block_checks.vote_signatures)
        if position == 0 and trusted_keys is not None:
            problem = trusted_key_problem(outcome.block, trusted_keys)
            if problem is not None:
                fixed = list(block_checks.results)
                fixed[CHECKS.index("signature")] = CheckResult("signature", False, problem)
                block_checks = BlockChecks(0, tuple(fixed), block_checks.tx_signatures,
                                           block_checks.vote_signatures)
        checks.append(block_checks)
        blocks.append(outcome.block)
        prev_hash, state_known = advance(state, outcome, stored, position, state_known)
        if position == 0:
            state.genesis_hash = prev_hash
        if first is None and block_checks.first_failure is not None:
            first = (position, block_checks.first_failure)
    n_txs = sum(len(b.txs) for b in stored_blocks)
    head = stored_blocks[-1].hash.decode("ascii", "replace") if stored_blocks else None
    seconds = time.perf_counter() - start
    if not stored_blocks:
        report = VerificationReport(False, 0, "encoding", "the ledger has no genesis block", 0, 0,
                                    None, seconds)
    elif first is None:
        report = VerificationReport(True, None, None, None, len(stored_blocks), n_txs, head,
                                    seconds)
    else:
        height, failed = first
        report = VerificationReport(False, height, failed.check, failed.reason,
                                    len(stored_blocks), n_txs, head, seconds)
    return ChainScan(report, checks, state, blocks)
