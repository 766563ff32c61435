"""Model version control over the ledger, in the spirit of git.

Each MODEL_COMMIT names its parent version, so the versions of one model at one institution form
a DAG (a tree of commits, like git history). The version IS the SHA-256 of the serialized
parameters, and the bytes live in the content-addressed artifact store beside the ledger:
:meth:`ModelRegistry.checkout` returns parameters only if they still hash to the version.
Tags (e.g. ``deployed``) are signed MODEL_TAG transactions; rounds record which versions of
which institutions produced an ensemble result (:meth:`ModelRegistry.lineage`).

Writes (``model_commit``, ``tag``, ``start_round``, ``finish_round``, ``fail_round``) need a
:class:`~efl_toolkit.ledger.chain.Ledger`; by default each one is committed in its own block
(``commit=False`` leaves it in the pool, to batch several into one block).

Example:
    >>> import tempfile, os
    >>> from efl_toolkit.ledger.chain import Ledger
    >>> from efl_toolkit.ledger.keys import Consortium
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
    >>> reg = ModelRegistry(Ledger.create(path, Consortium.generate(["a", "b", "c"], seed=0)))
    >>> v1 = reg.model_commit("a", "cnn", b"weights-1", None, "cnn", {"acc": 0.70}, {})
    >>> v2 = reg.model_commit("a", "cnn", b"weights-2", v1, "cnn", {"acc": 0.75}, {})
    >>> [d.delta for d in reg.diff(v1, v2)]
    [0.05]
    >>> reg.checkout(v2)
    b'weights-2'
    >>> [m.version for m in reg.history("a")] == [v2, v1]
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from efl_toolkit.ledger.crypto import sha256_hex
from efl_toolkit.ledger.errors import LedgerError
from efl_toolkit.ledger.reader import LedgerView
from efl_toolkit.ledger.state import ModelVersion, Round
from efl_toolkit.ledger.transactions import TxType


@dataclass(frozen=True)
class MetricDiff:
    """One metric compared between two versions.

    Attributes:
        metric: Metric name.
        old: Value in the first version (``None`` if absent).
        new: Value in the second version (``None`` if absent).
    """

    metric: str
    old: float | None
    new: float | None

    @property
    def delta(self) -> float | None:
        """``new - old`` rounded to 12 digits, or ``None`` if either is missing."""
        if self.old is None or self.new is None:
            return None
        return round(self.new - self.old, 12)


@dataclass(frozen=True)
class Lineage:
    """Which versions of which institutions an ensemble round used, and what came out.

    Attributes:
        round: The round record (status, result hash, metrics, positions).
        versions: The participating model versions.
        institutions: Their owners, sorted.
    """

    round: Round
    versions: tuple[ModelVersion, ...]
    institutions: tuple[str, ...]


class ModelRegistry:
    """Model versions, artifacts, tags and rounds of one ledger.

    Args:
        ledger: A :class:`Ledger` (read and write) or a :class:`LedgerView` (read only).
    """

    def __init__(self, ledger: LedgerView) -> None:
        self.ledger = ledger

    # ----------------------------------------------------------------- writes
    def _writer(self):
        if not hasattr(self.ledger, "transact"):
            raise LedgerError(f"{self.ledger.path}: opened read-only; open a Ledger to write")
        return self.ledger

    def _send(self, sender: str, tx_type: str, payload: dict, commit: bool,
              artifact: bytes | None = None) -> None:
        ledger = self._writer()
        ledger.transact(sender, tx_type, payload, artifact=artifact)
        if commit:
            ledger.commit_block()

    def model_commit(self, institution: str, model_id: str, params_bytes: bytes,
                     parent: str | None, architecture: str, metrics: dict, data_summary: dict,
                     commit: bool = True) -> str:
        """Stores the parameters as an artifact and records a MODEL_COMMIT; returns the version.

        The artifact is written (atomically) only after every rule passed, and before the block.

        Raises:
            TransactionRejected: unknown institution, wrong parent, duplicate version, NaN
                metrics...; nothing is recorded.
        """
        version = sha256_hex(params_bytes)
        payload = {"institution": institution, "model_id": model_id, "version": version,
                   "parent": parent, "architecture": architecture, "metrics": metrics,
                   "data_summary": data_summary}
        self._send(institution, TxType.MODEL_COMMIT, payload, commit, artifact=params_bytes)
        return version

    def tag(self, version: str, name: str, commit: bool = True) -> None:
        """Tags ``version`` with ``name`` (e.g. ``"deployed"``), signed by the version's owner."""
        owner = self.get(version).institution
        self._send(owner, TxType.MODEL_TAG, {"version": version, "tag": name}, commit)

    def start_round(self, coordinator: str, round_id: str, versions: list[str],
                    protocol: dict, commit: bool = True) -> None:
        """Records ROUND_START: which model versions take part, with which protocol."""
        payload = {"round_id": round_id, "versions": list(versions), "protocol": protocol}
        self._send(coordinator, TxType.ROUND_START, payload, commit)

    def finish_round(self, sender: str, round_id: str, result_hash: str, metrics: dict,
                     commit: bool = True) -> None:
        """Records ROUND_RESULT: the hash of the opened result and its metrics."""
        payload = {"round_id": round_id, "result_hash": result_hash, "metrics": metrics}
        self._send(sender, TxType.ROUND_RESULT, payload, commit)

    def fail_round(self, sender: str, round_id: str, reason: str, commit: bool = True) -> None:
        """Records ROUND_FAILED with its reason."""
        self._send(sender, TxType.ROUND_FAILED, {"round_id": round_id, "reason": reason}, commit)

    def seal(self) -> None:
        """Commits the pending transactions (if any) into one block."""
        if self._writer().pending:
            self.ledger.commit_block()

    # ----------------------------------------------------------------- reads
    def get(self, version: str) -> ModelVersion:
        """The record of ``version`` (full hash or unique prefix); ``LedgerError`` if unknown."""
        versions = self.ledger.state.versions
        if version in versions:
            return versions[version]
        hits = [v for v in versions if v.startswith(version.lower())] if version else []
        if len(hits) == 1:
            return versions[hits[0]]
        what = "is ambiguous" if hits else "is not a committed version"
        raise LedgerError(f"{self.ledger.path}: model version {version!r} {what}")

    def checkout(self, version: str) -> bytes:
        """The parameters of ``version``, verified against the hash (``ArtifactError`` if the
        file is missing or altered)."""
        record = self.get(version)
        return self.ledger.artifacts.get(record.version)

    def history(self, institution: str | None = None,
                model_id: str | None = None) -> list[ModelVersion]:
        """Model versions, newest first, optionally of one institution and/or model."""
        found = self.ledger.model_versions(institution, model_id)
        return sorted(found, key=lambda v: (v.where.height, v.where.index), reverse=True)

    def ancestors(self, version: str) -> list[ModelVersion]:
        """``version`` then its parent, grandparent... (its path to the root of the DAG)."""
        chain, current = [], self.get(version)
        while True:
            chain.append(current)
            if current.parent is None:
                return chain
            current = self.get(current.parent)

    def diff(self, old: str, new: str) -> list[MetricDiff]:
        """Metric-by-metric comparison of two versions (sorted by metric name)."""
        a, b = self.get(old).metrics, self.get(new).metrics
        return [MetricDiff(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b))]

    def tags_of(self, version: str) -> list[str]:
        """Tag names put on ``version``, oldest first."""
        full = self.get(version).version
        return [t.tag for t in self.ledger.state.tags if t.version == full]

    def tagged(self, name: str, institution: str | None = None,
               model_id: str | None = None) -> ModelVersion | None:
        """The version most recently tagged ``name`` (optionally of one institution / model)."""
        for tag in reversed(self.ledger.state.tags):
            record = self.get(tag.version)
            if tag.tag == name and institution in (None, record.institution) and \
                    model_id in (None, record.model_id):
                return record
        return None

    def lineage(self, round_id: str) -> Lineage:
        """Which versions of which institutions produced round ``round_id``'s result."""
        rounds = self.ledger.state.rounds
        if round_id not in rounds:
            raise LedgerError(f"{self.ledger.path}: no round {round_id!r}")
        record = rounds[round_id]
        versions = tuple(self.get(v) for v in record.versions)
        return Lineage(record, versions, tuple(sorted({v.institution for v in versions})))
