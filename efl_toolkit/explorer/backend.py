"""What the explorer reads: a small read-only backend protocol and the plain values it returns.

The widget never touches a ledger directly. Anything that implements :class:`ExplorerBackend`
(the embedded SQLite ledger through :class:`~efl_toolkit.explorer.ledger_backend.LedgerBackend`,
an EVM chain, a JSON export...) can feed it. All values are frozen dataclasses of plain Python
types, so a backend can build them from any source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from efl_toolkit.ledger.backend import (  # the records are the ledger's own (shared by engines)
    BlockRow,
    BlockView,
    CheckResult,
    Failure,
    InstitutionView,
    LedgerReader,
    SearchHit,
    TamperOutcome,
    TxView,
    VerifyReport,
)
from efl_toolkit.ledger.backend import VersionNode as ModelVersion

__all__ = ["BlockRow", "BlockView", "CheckResult", "ExplorerBackend", "Failure",
           "InstitutionView", "ModelVersion", "SearchHit", "TamperOutcome", "TamperableBackend",
           "TxView", "VerifyReport"]

#: The read-only view of a ledger that the explorer needs: the ledger's own read interface.
ExplorerBackend = LedgerReader


@runtime_checkable
class TamperableBackend(ExplorerBackend, Protocol):
    """A backend that can run a tamper experiment on a scratch copy (never on the original)."""

    def tamper_kinds(self) -> Mapping[str, str]:
        """The tamper experiments on offer: name -> what it changes."""
        ...

    def tamper_copy(self, kind: str, height: int) -> TamperOutcome:
        """Copies the ledger, tampers with block ``height`` of the copy, verifies the copy."""
        ...
