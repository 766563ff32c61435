"""The records every ledger engine hands to its readers (the explorer, ``efl ledger``, reports):
frozen dataclasses of plain values, so any engine can build them (embedded SQLite, an EVM chain,
a JSON export), plus the helpers that build the version graph and a verification report.

Example:
    >>> report_from_problems(3, "cd" * 32, []).summary
    'verified: 3 blocks, height 2, head cdcdcdcdcdcd'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from efl_toolkit.ledger.state import ModelVersion, Round


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
class VersionNode:
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


def report_from_problems(n_blocks: int, head: str,
                         problems: Sequence[tuple[int, str, str]]) -> VerifyReport:
    """A :class:`VerifyReport` from ``(height, check, reason)`` problems in chain order."""
    failures = tuple(Failure(h, c, r) for h, c, r in problems)
    return VerifyReport(ok=not failures, n_blocks=n_blocks, head=head, failures=failures)


ROUND_LANE = "ensemble rounds"


def version_graph(versions: Iterable[ModelVersion], rounds: Iterable[Round]) -> list[VersionNode]:
    """The version graph of any engine: one node per model version (label ``<model> vN``, parent
    its previous version) and per round (parents: its versions), in height order."""
    nodes, counts = [], {}
    for v in versions:
        key = (v.institution, v.model_id)
        counts[key] = counts.get(key, 0) + 1
        nodes.append(VersionNode(
            version=v.version, kind="model", institution=v.institution,
            label=f"{v.model_id} v{counts[key]}", height=v.where.height,
            parents=(v.parent,) if v.parent else (),
            details={"architecture": v.architecture, "metrics": v.metrics}))
    nodes += [VersionNode(version=r.round_id, kind="round", institution=ROUND_LANE,
                          label=f"{r.round_id} ({r.status})", height=r.started.height,
                          parents=tuple(r.versions),
                          details={"coordinator": r.coordinator, "metrics": r.metrics or {}})
              for r in rounds]
    return sorted(nodes, key=lambda node: node.height)


def version_counts(versions: Iterable[ModelVersion]) -> dict[str, int]:
    """``{institution: number of committed versions}``."""
    counts: dict[str, int] = {}
    for version in versions:
        counts[version.institution] = counts.get(version.institution, 0) + 1
    return counts
