"""The ledger explorer widget and the small read-only backend interface that feeds it.

Example:
    >>> from efl_toolkit.explorer import ExplorerWidget
    >>> explorer = ExplorerWidget("efl_out/ledger.sqlite")  # doctest: +SKIP
    >>> explorer                                            # doctest: +SKIP
"""

from efl_toolkit.explorer.backend import (
    BlockRow,
    BlockView,
    CheckResult,
    ExplorerBackend,
    Failure,
    InstitutionView,
    ModelVersion,
    SearchHit,
    TamperableBackend,
    TamperOutcome,
    TxView,
    VerifyReport,
)
from efl_toolkit.explorer.dag import dag_svg
from efl_toolkit.explorer.ledger_backend import LedgerBackend
from efl_toolkit.explorer.widget import ExplorerWidget, open_backend

__all__ = [
    "BlockRow", "BlockView", "CheckResult", "ExplorerBackend", "ExplorerWidget", "Failure",
    "InstitutionView", "LedgerBackend", "ModelVersion", "SearchHit", "TamperOutcome",
    "TamperableBackend", "TxView", "VerifyReport", "dag_svg", "open_backend",
]
