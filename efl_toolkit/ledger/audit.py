"""Audit queries: who did what and when, who took part in which round, what a result rests on.

All answers come from the verified chain (a :class:`LedgerView` or a :class:`Ledger`); times are
block timestamps (milliseconds since the epoch, see ``views.format_timestamp``).

Example:
    >>> import tempfile, os
    >>> from efl_toolkit.ledger.chain import Ledger
    >>> from efl_toolkit.ledger.keys import Consortium
    >>> from efl_toolkit.ledger.registry import ModelRegistry
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
    >>> ledger = Ledger.create(path, Consortium.generate(["a", "b", "c"], seed=0))
    >>> reg = ModelRegistry(ledger)
    >>> va = reg.model_commit("a", "cnn", b"wa", None, "cnn", {"acc": 0.7}, {})
    >>> vb = reg.model_commit("b", "mlp", b"wb", None, "mlp", {"acc": 0.6}, {})
    >>> reg.start_round("a", "round-1", [va, vb], {"parties": 3})
    >>> reg.finish_round("a", "round-1", "ab" * 32, {"acc": 0.8})
    >>> audit = Audit(ledger)
    >>> [r.round_id for r in audit.rounds_of("b")]
    ['round-1']
    >>> audit.dependencies("ab" * 32).institutions
    ('a', 'b')
"""

from __future__ import annotations

from dataclasses import dataclass

from efl_toolkit.ledger.errors import LedgerError
from efl_toolkit.ledger.reader import LedgerView
from efl_toolkit.ledger.state import ModelVersion, Round, Where
from efl_toolkit.ledger.transactions import TxType


@dataclass(frozen=True)
class Activity:
    """One transaction seen from an auditor's chair.

    Attributes:
        sender: Institution that signed it.
        type: Transaction type.
        subject: What it is about (model version, round id, tag...).
        where: Height, index, transaction id, block timestamp.
    """

    sender: str
    type: str
    subject: str
    where: Where


@dataclass(frozen=True)
class Dependencies:
    """Everything one ensemble result depends on.

    Attributes:
        round: The round that produced it.
        versions: The model versions that took part directly.
        ancestors: Those versions and every version they descend from, newest first.
        institutions: Every institution involved (owners of those versions, coordinator).
        transactions: Positions of all transactions involved (commits, round start / end).
    """

    round: Round
    versions: tuple[ModelVersion, ...]
    ancestors: tuple[ModelVersion, ...]
    institutions: tuple[str, ...]
    transactions: tuple[Where, ...]


def _subject(tx_type: str, payload: dict) -> str:
    if tx_type == TxType.MODEL_COMMIT:
        return f"{payload.get('model_id')} {str(payload.get('version'))[:12]}"
    if tx_type == TxType.MODEL_TAG:
        return f"{payload.get('tag')} -> {str(payload.get('version'))[:12]}"
    if tx_type == TxType.REGISTER_INSTITUTION:
        return str(payload.get("institution"))
    return str(payload.get("round_id"))


class Audit:
    """Audit queries over a verified ledger view."""

    def __init__(self, ledger: LedgerView) -> None:
        self.ledger = ledger

    def activity(self, institution: str | None = None) -> list[Activity]:
        """Every transaction (of ``institution``, if given) in chain order: who, what, when."""
        out = []
        for h in range(self.ledger.height + 1):
            for tx in self.ledger.block(h).transactions:
                if institution is None or tx.sender == institution:
                    where = self.ledger.state.tx_index.get(tx.tx_id)
                    if where is not None:
                        out.append(Activity(tx.sender, tx.type, _subject(tx.type, tx.payload),
                                            where))
        return out

    def commits_by(self, institution: str) -> list[ModelVersion]:
        """Model versions ``institution`` committed, oldest first (``where.timestamp``: when)."""
        return self.ledger.model_versions(institution)

    def rounds_of(self, institution: str) -> list[Round]:
        """Rounds ``institution`` took part in (one of its versions joined, or it coordinated)."""
        versions = self.ledger.state.versions
        return [r for r in self.ledger.state.rounds.values()
                if r.coordinator == institution
                or any(versions[v].institution == institution for v in r.versions)]

    def dependencies(self, result: str) -> Dependencies:
        """Everything a result depends on; ``result`` is a round id or a ROUND_RESULT hash."""
        rounds = self.ledger.state.rounds
        record = rounds.get(result) or next(
            (r for r in rounds.values() if r.result_hash == result), None)
        if record is None:
            raise LedgerError(f"{self.ledger.path}: no round or result {result!r}")
        versions = self.ledger.state.versions
        direct = tuple(versions[v] for v in record.versions)
        seen: dict[str, ModelVersion] = {}
        for v in direct:
            current: ModelVersion | None = v
            while current is not None and current.version not in seen:
                seen[current.version] = current
                current = versions.get(current.parent) if current.parent else None
        ancestors = tuple(sorted(seen.values(), key=lambda m: m.where.height, reverse=True))
        institutions = tuple(sorted({m.institution for m in ancestors} | {record.coordinator}))
        positions = [m.where for m in ancestors] + [record.started]
        if record.ended is not None:
            positions.append(record.ended)
        return Dependencies(record, direct, ancestors, institutions,
                            tuple(sorted(positions, key=lambda w: (w.height, w.index))))
