"""What the explorer reads: a small read-only backend protocol and the plain values it returns.

The widget never touches a ledger directly. Anything that implements :class:`ExplorerBackend`
(the embedded SQLite ledger through :class:`~efl_toolkit.explorer.ledger_backend.LedgerBackend`,
an EVM chain, a JSON export...) can feed it. All values are frozen dataclasses of plain Python
types, so a backend can build them from any source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class BlockRow:
    """One line of the block list.

    Example:
        >>> BlockRow(height=0, hash="ab" * 32, proposer="hospital-a", n_transactions=2,
        ...          timestamp=1.7e9).short_hash
        'abababababab'
    """

    height: int
    hash: str
    proposer: str
    n_transactions: int
    timestamp: float

    @property
    def short_hash(self) -> str:
        """The first 12 hex digits of the block hash."""
        return self.hash[:12]


@dataclass(frozen=True)
class TxView:
    """One decoded transaction of a block (``signature_ok`` None: not checked)."""

    index: int
    tx_hash: str
    type: str
    sender: str
    payload: Mapping[str, Any]
    signature_ok: bool | None = None


@dataclass(frozen=True)
class BlockView:
    """A whole block: its header row, header fields and decoded transactions."""

    row: BlockRow
    prev_hash: str
    merkle_root: str
    transactions: tuple[TxView, ...]
    header: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one verification check on one block.

    ``ok`` is True (passed), False (failed) or None (not checked, e.g. an earlier check failed);
    ``reason`` explains a failure or a skip.
    """

    name: str
    ok: bool | None
    reason: str = ""


@dataclass(frozen=True)
class Failure:
    """One failed check somewhere in the chain."""

    height: int
    check: str
    reason: str


@dataclass(frozen=True)
class VerifyReport:
    """The result of verifying a whole chain; ``failures`` are in chain order.

    Example:
        >>> VerifyReport(ok=True, n_blocks=3, head="cd" * 32, failures=()).summary
        'verified: 3 blocks, height 2, head cdcdcdcdcdcd'
    """

    ok: bool
    n_blocks: int
    head: str
    failures: tuple[Failure, ...]

    @property
    def first_failure(self) -> Failure | None:
        """The failure that breaks the chain (the first one), or None when it verified."""
        return self.failures[0] if self.failures else None

    @property
    def summary(self) -> str:
        """One human line: ``verified: N blocks, height H, head ...`` or the first failure."""
        if self.ok:
            return (f"verified: {self.n_blocks} blocks, height {self.n_blocks - 1}, "
                    f"head {self.head[:12]}")
        first = self.first_failure
        where = f" at height {first.height}: {first.check} ({first.reason})" if first else ""
        return f"FAILED{where}"


@dataclass(frozen=True)
class InstitutionView:
    """One registered institution and what it has committed."""

    id: str
    public_key: str
    registered_height: int
    n_model_versions: int
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """A node of the model-version graph: a model commit or an ensemble round over versions.

    ``parents`` are the version ids this one derives from (a model's previous version, or every
    model version taking part in a round).
    """

    version: str
    kind: str
    institution: str
    label: str
    height: int
    parents: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchHit:
    """Something whose hash starts with the searched prefix."""

    kind: str
    height: int
    hash: str
    description: str


@dataclass(frozen=True)
class TamperOutcome:
    """What a tamper experiment on a scratch copy changed and what verification then reported.

    ``block_checks`` are every check on block ``checked_height`` of the copy (the first block
    that failed, or the tampered one if nothing failed).
    """

    scratch_path: str
    kind: str
    height: int
    description: str
    report: VerifyReport
    block_checks: tuple[CheckResult, ...]
    checked_height: int


@runtime_checkable
class ExplorerBackend(Protocol):
    """The read-only view of a ledger that the explorer needs.

    Heights run from 0 (genesis) to ``height()``; an empty ledger has height -1.
    """

    def height(self) -> int:
        """The height of the newest block (-1 when there is none)."""
        ...

    def head(self) -> str:
        """The hash of the newest block ('' when there is none)."""
        ...

    def blocks(self, start: int, stop: int) -> Sequence[BlockRow]:
        """Header rows of heights ``start <= h < stop``, in height order."""
        ...

    def block(self, height: int) -> BlockView:
        """One block with decoded transactions (raises ``KeyError`` naming a missing height)."""
        ...

    def check_block(self, height: int) -> Sequence[CheckResult]:
        """Every verification check on one block, passed or failed."""
        ...

    def verify(self) -> VerifyReport:
        """Verifies the whole chain."""
        ...

    def institutions(self) -> Sequence[InstitutionView]:
        """Registered institutions, in registration order."""
        ...

    def model_versions(self) -> Sequence[ModelVersion]:
        """Model versions and rounds with their parents, in height order."""
        ...

    def find(self, prefix: str) -> Sequence[SearchHit]:
        """Blocks, transactions and model versions whose hash starts with ``prefix``."""
        ...


@runtime_checkable
class TamperableBackend(ExplorerBackend, Protocol):
    """A backend that can run a tamper experiment on a scratch copy (never on the original)."""

    def tamper_kinds(self) -> Mapping[str, str]:
        """The tamper experiments on offer: name -> what it changes."""
        ...

    def tamper_copy(self, kind: str, height: int) -> TamperOutcome:
        """Copies the ledger, tampers with block ``height`` of the copy, verifies the copy."""
        ...
