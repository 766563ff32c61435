"""The ledger backend interface: what the pipeline, the registry queries, ``efl ledger`` and the
explorer need from a ledger, whichever engine keeps it.

Two engines implement it:

* :class:`EmbeddedBackend` (this module): the signed SQLite ledger of :mod:`efl_toolkit.ledger`
  on one machine (the explorer's read side is
  :class:`~efl_toolkit.explorer.ledger_backend.LedgerBackend`);
* :class:`~efl_toolkit.ledger.evm.EvmBackend`: a Vyper contract on any Ethereum-compatible chain
  (in-process py-evm for tests, Anvil, Besu/Geth proof-of-authority for a consortium).

:class:`LedgerWriter` is the write side (register, commit, rounds), :class:`LedgerReader` the
read side (head/height, blocks, verification, institutions, the version graph, search) and
:class:`LedgerBackend` both plus the registry queries (history, lineage). The records are frozen
dataclasses of plain values shared by both engines and the explorer
(:mod:`efl_toolkit.ledger.records`); model versions, rounds and members are
:mod:`efl_toolkit.ledger.state`'s ``ModelVersion``, ``Round``, ``Member``.

Example:
    >>> import tempfile, os
    >>> from efl_toolkit.ledger import Consortium, Ledger
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
    >>> backend = EmbeddedBackend(Ledger.create(path, Consortium.generate(["a", "b"], seed=0)))
    >>> v1 = backend.model_commit("a", "cnn", b"w1", None, "cnn", {"acc": 0.7}, {})
    >>> backend.height(), backend.verify().ok, backend.describe()["backend"]
    (1, True, 'embedded')
    >>> backend.close()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from efl_toolkit.ledger.artifacts import ArtifactStore
from efl_toolkit.ledger.audit import Audit
from efl_toolkit.ledger.errors import LedgerError, TransactionRejected
from efl_toolkit.ledger.records import (  # re-exported: the records belong to the interface
    ROUND_LANE,
    BlockRow,
    BlockView,
    CheckResult,
    Failure,
    InstitutionView,
    SearchHit,
    TamperOutcome,
    TxView,
    VerifyReport,
    VersionNode,
    report_from_problems,
    version_counts,
    version_graph,
)
from efl_toolkit.ledger.registry import Lineage, ModelRegistry
from efl_toolkit.ledger.state import Member, ModelVersion, Round

__all__ = ["ROUND_LANE", "BlockRow", "BlockView", "CheckResult", "EmbeddedBackend", "Failure",
           "InstitutionView", "LedgerBackend", "LedgerReader", "LedgerWriter", "SearchHit",
           "TamperOutcome", "TxView", "VerifyReport", "VersionNode", "as_backend",
           "create_backend", "report_from_problems", "version_counts", "version_graph"]


@runtime_checkable
class LedgerReader(Protocol):
    """The read side (what the explorer and ``efl ledger verify|log|show`` use).

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
        """Verifies the whole chain (and every version hash against the artifact store)."""
        ...

    def institutions(self) -> Sequence[InstitutionView]:
        """Registered institutions, in registration order."""
        ...

    def model_versions(self) -> Sequence[VersionNode]:
        """Model versions and rounds with their parents, in height order."""
        ...

    def find(self, prefix: str) -> Sequence[SearchHit]:
        """Blocks, transactions and model versions whose hash starts with ``prefix``."""
        ...


@runtime_checkable
class LedgerWriter(Protocol):
    """The write side (what the pipeline and :mod:`efl_toolkit.federation.record` use).

    Every rejection raises :class:`~efl_toolkit.ledger.errors.TransactionRejected` with the same
    ``check`` and message on every engine; nothing is recorded then.
    """

    def register_institution(self, institution: str, name: str = "",
                             approver: str | None = None) -> None:
        """Adds ``institution`` to the consortium (an engine may refuse: the embedded ledger's
        membership is fixed by its genesis block)."""
        ...

    def model_commit(self, institution: str, model_id: str, params_bytes: bytes,
                     parent: str | None, architecture: str, metrics: dict, data_summary: dict,
                     commit: bool = True) -> str:
        """Stores the parameters as an artifact, records the version; returns its SHA-256."""
        ...

    def seal(self) -> None:
        """Makes pending writes final (the embedded ledger seals its pool into a block)."""
        ...

    def start_round(self, coordinator: str, round_id: str, versions: list[str],
                    protocol: dict, commit: bool = True) -> None:
        """Records a round over known ``versions``."""
        ...

    def finish_round(self, sender: str, round_id: str, result_hash: str, metrics: dict,
                     commit: bool = True) -> None:
        """Closes an open round with its result hash and metrics."""
        ...

    def fail_round(self, sender: str, round_id: str, reason: str, commit: bool = True) -> None:
        """Closes an open round as failed."""
        ...


@runtime_checkable
class LedgerBackend(LedgerReader, LedgerWriter, Protocol):
    """Both sides plus the registry queries and a description for ``report.json``."""

    def get(self, version: str) -> ModelVersion:
        """The record of ``version`` (full hash or unique prefix); ``LedgerError`` if unknown."""
        ...

    def history(self, institution: str | None = None,
                model_id: str | None = None) -> list[ModelVersion]:
        """Model versions, newest first."""
        ...

    def lineage(self, round_id: str) -> Lineage:
        """Which versions of which institutions produced round ``round_id``."""
        ...

    def rounds(self) -> list[Round]:
        """Every round, in start order."""
        ...

    def audit(self) -> Audit:
        """Audit queries: activity, commits and rounds of an institution, dependencies."""
        ...

    def members(self) -> list[Member]:
        """The consortium's members, in registration order."""
        ...

    def describe(self) -> dict:
        """What ``report.json``'s ``ledger`` block says about the engine (``backend`` key)."""
        ...

    @property
    def artifacts(self) -> ArtifactStore:
        """The content-addressed store holding every version's parameters."""
        ...

    def close(self) -> None:
        """Releases connections (and stops a node the backend started)."""
        ...


class EmbeddedBackend(ModelRegistry):
    """The write side and registry queries over an embedded :class:`~efl_toolkit.ledger.Ledger`
    (the registry itself, plus what :class:`LedgerBackend` adds).

    Args:
        ledger: A writable ``Ledger`` (or a ``LedgerView`` for reads only).
    """

    kind = "embedded"

    def register_institution(self, institution: str, name: str = "",
                             approver: str | None = None) -> None:
        """Always refused: the embedded ledger's membership is fixed by its genesis block.

        Raises:
            TransactionRejected: (membership) naming the institution.
        """
        raise TransactionRejected(
            "membership", f"{institution!r} cannot join at height {self.height() + 1}: "
            "membership is fixed by the genesis block")

    @property
    def artifacts(self):
        """The content-addressed artifact store (``<ledger dir>/artifacts``)."""
        return self.ledger.artifacts

    def height(self) -> int:
        """The newest block's height."""
        return self.ledger.height

    def head(self) -> str:
        """The newest block's hash."""
        return self.ledger.head_hash or ""

    def verify(self) -> VerifyReport:
        """Re-reads and re-verifies the file (the seven checks, artifact hashes included)."""
        report = self.ledger.verify()
        problems = [] if report.ok else [(report.height, report.check, report.reason or "")]
        return report_from_problems(report.n_blocks, report.head_hash or "", problems)

    def rounds(self) -> list[Round]:
        """Every round, in start order."""
        return list(self.ledger.state.rounds.values())

    def audit(self) -> Audit:
        """Audit queries over the ledger."""
        return Audit(self.ledger)

    def members(self) -> list[Member]:
        """The consortium's members, in registration order."""
        return list(self.ledger.state.members.values())

    def describe(self) -> dict:
        """``{"backend": "embedded", "path": ...}``."""
        return {"backend": self.kind, "path": str(self.ledger.path)}

    def close(self) -> None:
        """Closes the ledger file (and the read adapter, if one was made)."""
        if self._reader is not None:
            self._reader.close()
        self.ledger.close()

    # ---- the read side, through the explorer's adapter over the same open ledger ----------
    _reader: Any = None

    def _read(self) -> Any:
        if self._reader is None:
            from efl_toolkit.explorer.ledger_backend import LedgerBackend as Reader
            self._reader = Reader(self.ledger)
        return self._reader

    def blocks(self, start: int, stop: int) -> list[BlockRow]:
        """Header rows of heights ``start <= h < stop``."""
        return self._read().blocks(start, stop)

    def block(self, height: int) -> BlockView:
        """One block with decoded transactions."""
        return self._read().block(height)

    def check_block(self, height: int) -> list[CheckResult]:
        """The seven checks on one block."""
        return self._read().check_block(height)

    def institutions(self) -> list[InstitutionView]:
        """Registered institutions with their number of versions."""
        return self._read().institutions()

    def model_versions(self) -> list[VersionNode]:
        """The version graph (model commits and rounds)."""
        return self._read().model_versions()

    def find(self, prefix: str) -> list[SearchHit]:
        """Blocks, transactions, versions and rounds whose key starts with ``prefix``."""
        return self._read().find(prefix)


def as_backend(source: Any) -> LedgerBackend:
    """``source`` if it already is a backend, else an :class:`EmbeddedBackend` over a
    ``Ledger`` / ``ModelRegistry``.

    Raises:
        LedgerError: ``source`` is none of these.
    """
    if hasattr(source, "kind") and hasattr(source, "seal"):  # EmbeddedBackend, EvmBackend
        return source
    if isinstance(source, ModelRegistry):
        return EmbeddedBackend(source.ledger)
    if hasattr(source, "commit_block"):
        return EmbeddedBackend(source)
    raise LedgerError(f"not a ledger backend: {type(source).__name__}")


def create_backend(spec: str, ledger_path: str | os.PathLike,
                   institutions: Sequence[str]) -> tuple[LedgerBackend, Path]:
    """A new ledger for ``institutions`` on the engine ``spec`` names.

    Args:
        spec: ``"embedded"`` (``ledger_path``, keys saved beside it), ``"evm"`` (an in-process
            EVM chain) or ``"evm:RPC_URL"`` (any Ethereum JSON-RPC node).
        ledger_path: The embedded ledger file; its folder holds the artifacts (and, for EVM,
            the descriptor ``ledger.evm.json`` and keystore).
        institutions: The consortium's institution ids.

    Returns:
        ``(backend, path)``: the path to pass to ``efl ledger verify`` (the ledger file or the
        EVM descriptor).

    Raises:
        LedgerError: unknown spec, unreachable node (named), missing ``evm`` extra.
    """
    from efl_toolkit.ledger.chain import Ledger
    from efl_toolkit.ledger.keys import Consortium

    path = Path(ledger_path)
    if spec == "embedded":
        ledger = Ledger.create(path, Consortium.generate(list(institutions)), save_keys=True)
        return EmbeddedBackend(ledger), path
    if spec == "evm" or spec.startswith("evm:"):
        from efl_toolkit.ledger.evm import DESCRIPTOR, EvmBackend

        url = spec.removeprefix("evm:") if spec != "evm" else None
        return EvmBackend.create(url, list(institutions), path.parent), path.parent / DESCRIPTOR
    raise LedgerError(f"unknown ledger {spec!r}: use embedded, evm or evm:RPC_URL")
