"""The chain state and the rules every transaction must follow.

:class:`ChainState` is what the chain *means* after replaying blocks ``0..height``: the members
and their keys, each sender's last nonce, every transaction id, the model versions (a DAG per
institution and model), tags and rounds. It is mutable on purpose: replaying 1,000 blocks must
not copy growing dictionaries 1,000 times. Changes go through :class:`Staged`, an overlay that
validates a block's transactions one by one and touches the state only in :meth:`Staged.commit`,
so a rejected block leaves the state exactly as it was.

Rules (a failure raises :class:`TransactionRejected` whose ``check`` names the rule):

* ``membership``: the sender is a registered institution; institutions register only in the
  genesis block (membership is fixed there), each self-signed, with a distinct public key.
* ``signature``: the transaction verifies under the sender's registered key.
* ``replay``: the transaction names this ledger's genesis hash, its nonce is the sender's
  previous nonce + 1 and its id is not on the chain.
* ``parent version``: a MODEL_COMMIT's parent is null or an earlier version of the same
  institution and model; a version hash is committed once.
* ``round``: ROUND_START names a new round id and known versions; ROUND_RESULT / ROUND_FAILED
  close an open round; MODEL_TAG tags a known version and only its owner may tag it.

Example:
    >>> state = ChainState()
    >>> state.height, len(state.members)
    (-1, 0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from efl_toolkit.ledger.block import GENESIS_PREV_HASH
from efl_toolkit.ledger.errors import TransactionRejected
from efl_toolkit.ledger.transactions import NO_CHAIN, Transaction, TxType, validate_payload


@dataclass(frozen=True)
class Member:
    """A registered institution.

    Attributes:
        institution: Its id.
        public_key: Ed25519 public key (hex).
        name: Display name (may be empty).
        height: Block where it registered (0: genesis).
    """

    institution: str
    public_key: str
    name: str
    height: int


@dataclass(frozen=True)
class Where:
    """Where a transaction sits: block height, index in the block, its id, block timestamp."""

    height: int
    index: int
    tx_id: str
    timestamp: int


@dataclass(frozen=True)
class ModelVersion:
    """A committed model version (one MODEL_COMMIT).

    Attributes:
        version: SHA-256 (hex) of the serialized parameters; the artifact's name.
        institution: Owner.
        model_id: The model's name at that institution.
        parent: Parent version or ``None`` for a first version.
        architecture: Architecture name.
        metrics: Metrics as committed.
        data_summary: Summary of the training data as committed.
        where: The commit's transaction position and block timestamp.
    """

    version: str
    institution: str
    model_id: str
    parent: str | None
    architecture: str
    metrics: dict
    data_summary: dict
    where: Where


@dataclass(frozen=True)
class Tag:
    """A MODEL_TAG: ``tag`` put on ``version`` by its owner."""

    version: str
    tag: str
    sender: str
    where: Where


@dataclass(frozen=True)
class Round:
    """An ensemble round, from ROUND_START to ROUND_RESULT or ROUND_FAILED.

    Attributes:
        round_id: The round's id.
        coordinator: Institution that started it.
        versions: Participating model versions.
        protocol: Protocol parameters as committed.
        started: Position of ROUND_START.
        status: ``"open"``, ``"done"`` or ``"failed"``.
        result_hash: Hash of the opened result (done rounds).
        metrics: Result metrics (done rounds).
        reason: Why it failed (failed rounds).
        ended: Position of ROUND_RESULT / ROUND_FAILED.
    """

    round_id: str
    coordinator: str
    versions: tuple[str, ...]
    protocol: dict
    started: Where
    status: str = "open"
    result_hash: str | None = None
    metrics: dict | None = None
    reason: str | None = None
    ended: Where | None = None


@dataclass
class ChainState:
    """Everything the replayed chain says (see the module docstring). Mutated only by commit."""

    height: int = -1
    head_hash: str = GENESIS_PREV_HASH
    genesis_hash: str | None = None
    timestamp: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    nonces: dict[str, int] = field(default_factory=dict)
    tx_index: dict[str, Where] = field(default_factory=dict)
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    rounds: dict[str, Round] = field(default_factory=dict)
    tags: list[Tag] = field(default_factory=list)

    @property
    def member_ids(self) -> list[str]:
        """Member ids in registration order (the proposer rotation order)."""
        return list(self.members)


def signature_problem(tx: Transaction, members: dict[str, Member]) -> str | None:
    """Why ``tx``'s signature does not verify, or ``None`` if it does.

    A genesis registration is verified under the key it registers (self-signed).

    Example:
        >>> signature_problem(Transaction("ROUND_FAILED", "x", 1, {}, ""), {})
        "sender 'x' is not a registered institution"
    """
    if tx.type == TxType.REGISTER_INSTITUTION and tx.sender not in members:
        key = tx.payload.get("public_key")
        if not isinstance(key, str):
            return "registration has no public key"
    elif tx.sender in members:
        key = members[tx.sender].public_key
    else:
        return f"sender {tx.sender!r} is not a registered institution"
    if len(tx.signature) != 128 or tx.signature != tx.signature.lower():
        return f"signature of transaction {tx.tx_id[:12]} is not 128 lowercase hex characters"
    if not tx.signature_ok(key):
        return f"bad signature on transaction {tx.tx_id[:12]} from {tx.sender!r}"
    return None


class Staged:
    """Changes to a :class:`ChainState` that are validated but not yet committed.

    Example:
        >>> staged = Staged(ChainState(), height=0, timestamp=0)
        >>> staged.next_nonce("hospital-a")
        0
    """

    def __init__(self, state: ChainState, height: int, timestamp: int) -> None:
        self.state = state
        self.height = height
        self.timestamp = timestamp
        self.members: dict[str, Member] = {}
        self.nonces: dict[str, int] = {}
        self.tx_index: dict[str, Where] = {}
        self.versions: dict[str, ModelVersion] = {}
        self.rounds: dict[str, Round] = {}
        self.tags: list[Tag] = []
        self.count = 0

    def member(self, institution: str) -> Member | None:
        """A member, committed or staged."""
        return self.members.get(institution) or self.state.members.get(institution)

    def all_members(self) -> dict[str, Member]:
        """Committed and staged members, in registration order."""
        return {**self.state.members, **self.members}

    def next_nonce(self, sender: str) -> int:
        """The nonce ``sender``'s next transaction must carry."""
        last = self.nonces.get(sender, self.state.nonces.get(sender, -1))
        return last + 1

    def version(self, version: str) -> ModelVersion | None:
        """A model version, committed or staged."""
        return self.versions.get(version) or self.state.versions.get(version)

    def round(self, round_id: str) -> Round | None:
        """A round, committed or staged (latest status)."""
        return self.rounds.get(round_id) or self.state.rounds.get(round_id)

    def add(
        self,
        tx: Transaction,
        check_signature: bool = True,
        extra_check: Callable[[Transaction], None] | None = None,
    ) -> Where:
        """Validates ``tx`` against everything so far and stages it; raises on a broken rule.

        ``extra_check`` (e.g. "its artifact is intact") runs after the rules, before anything
        is staged, so a rejection leaves this overlay unchanged.
        """
        validate_payload(tx)
        self._check_membership(tx)
        if check_signature:
            problem = signature_problem(tx, self.all_members())
            if problem:
                raise TransactionRejected("signature", problem)
        expected_chain = NO_CHAIN if self.height == 0 else self.state.genesis_hash
        if tx.chain != expected_chain:
            raise TransactionRejected(
                "replay", f"transaction is bound to the ledger with genesis {tx.chain[:16]}, "
                f"not this one ({str(expected_chain)[:16]})")
        tx_id = tx.tx_id
        if tx_id in self.tx_index or tx_id in self.state.tx_index:
            raise TransactionRejected("replay", f"transaction {tx_id[:12]} is already on the chain")
        expected = self.next_nonce(tx.sender)
        if tx.nonce != expected:
            raise TransactionRejected(
                "replay", f"{tx.sender!r} nonce {tx.nonce}, expected {expected} "
                "(replayed or out of order)")
        where = Where(self.height, self.count, tx_id, self.timestamp)
        stage = _RULES[tx.type](self, tx, where)  # validates; returns the change to stage
        if extra_check is not None:
            extra_check(tx)
        stage()
        self.nonces[tx.sender] = tx.nonce
        self.tx_index[tx_id] = where
        self.count += 1
        return where

    def _check_membership(self, tx: Transaction) -> None:
        if tx.type == TxType.REGISTER_INSTITUTION:
            if self.height != 0:
                raise TransactionRejected(
                    "membership", f"{tx.sender!r} cannot join at height {self.height}: "
                    "membership is fixed by the genesis block")
            return
        if self.height == 0:
            raise TransactionRejected(
                "membership", f"genesis holds only registrations, not {tx.type}")
        if self.member(tx.sender) is None:
            raise TransactionRejected(
                "membership", f"unknown institution {tx.sender!r}: members are "
                f"{list(self.all_members())}")

    def commit(self) -> None:
        """Writes the staged changes into the state (call once, after the block is stored)."""
        s = self.state
        s.members.update(self.members)
        s.nonces.update(self.nonces)
        s.tx_index.update(self.tx_index)
        s.versions.update(self.versions)
        s.rounds.update(self.rounds)
        s.tags.extend(self.tags)
        s.height = self.height
        s.timestamp = self.timestamp


Stage = Callable[[], None]


def _register(staged: Staged, tx: Transaction, where: Where) -> Stage:
    p = tx.payload
    if p["institution"] != tx.sender:
        raise TransactionRejected("membership", "an institution registers itself only")
    if staged.member(tx.sender) is not None:
        raise TransactionRejected("membership", f"{tx.sender!r} is already registered")
    if any(m.public_key == p["public_key"] for m in staged.all_members().values()):
        raise TransactionRejected("membership", f"public key of {tx.sender!r} is already in use")
    member = Member(tx.sender, p["public_key"], p.get("name", ""), where.height)
    return lambda: staged.members.__setitem__(tx.sender, member)


def _model_commit(staged: Staged, tx: Transaction, where: Where) -> Stage:
    p = tx.payload
    if staged.version(p["version"]) is not None:
        raise TransactionRejected("parent version", f"version {p['version'][:12]} is already "
                                  "committed")
    parent = p["parent"]
    if parent is not None:
        record = staged.version(parent)
        if record is None:
            raise TransactionRejected("parent version", f"parent {parent[:12]} is not a "
                                      "committed version")
        if (record.institution, record.model_id) != (p["institution"], p["model_id"]):
            raise TransactionRejected(
                "parent version", f"parent {parent[:12]} belongs to {record.institution}/"
                f"{record.model_id}, not {p['institution']}/{p['model_id']}")
    record = ModelVersion(p["version"], p["institution"], p["model_id"], parent,
                          p["architecture"], p["metrics"], p["data_summary"], where)
    return lambda: staged.versions.__setitem__(record.version, record)


def _tag(staged: Staged, tx: Transaction, where: Where) -> Stage:
    record = staged.version(tx.payload["version"])
    if record is None:
        raise TransactionRejected("model version", f"cannot tag unknown version "
                                  f"{tx.payload['version'][:12]}")
    if record.institution != tx.sender:
        raise TransactionRejected("membership", f"only {record.institution!r} may tag its "
                                  f"version, not {tx.sender!r}")
    tag = Tag(record.version, tx.payload["tag"], tx.sender, where)
    return lambda: staged.tags.append(tag)


def _round_start(staged: Staged, tx: Transaction, where: Where) -> Stage:
    p = tx.payload
    if staged.round(p["round_id"]) is not None:
        raise TransactionRejected("round", f"round {p['round_id']!r} already exists")
    for version in p["versions"]:
        if staged.version(version) is None:
            raise TransactionRejected("round", f"round {p['round_id']!r} names unknown version "
                                      f"{version[:12]}")
    started = Round(p["round_id"], tx.sender, tuple(p["versions"]), p["protocol"], where)
    return lambda: staged.rounds.__setitem__(started.round_id, started)


def _round_end(staged: Staged, tx: Transaction, where: Where) -> Stage:
    p = tx.payload
    current = staged.round(p["round_id"])
    if current is None:
        raise TransactionRejected("round", f"round {p['round_id']!r} was never started")
    if current.status != "open":
        raise TransactionRejected("round", f"round {p['round_id']!r} is already {current.status}")
    if tx.type == TxType.ROUND_RESULT:
        ended = replace(current, status="done", result_hash=p["result_hash"],
                        metrics=p["metrics"], ended=where)
    else:
        ended = replace(current, status="failed", reason=p["reason"], ended=where)
    return lambda: staged.rounds.__setitem__(ended.round_id, ended)


_RULES: dict[str, Callable[[Staged, Transaction, Where], Stage]] = {
    TxType.REGISTER_INSTITUTION: _register,
    TxType.MODEL_COMMIT: _model_commit,
    TxType.MODEL_TAG: _tag,
    TxType.ROUND_START: _round_start,
    TxType.ROUND_RESULT: _round_end,
    TxType.ROUND_FAILED: _round_end,
}
