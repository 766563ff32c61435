"""The exceptions of the ledger: every rejection names what was wrong.

* :class:`LedgerError`: the file cannot be used as a ledger (missing, not SQLite, not a ledger,
  corrupt, fails verification on open) or an operation is impossible.
* :class:`TransactionRejected`: a transaction broke a rule (unknown institution, bad signature,
  replay, wrong parent version, malformed payload...). Nothing was written.
* :class:`BlockRejected`: a block failed a check (too few signatures, bad proposer...). Nothing
  was written.
* :class:`ArtifactError`: an artifact's bytes do not match its hash, or it is missing.

Example:
    >>> err = BlockRejected(7, "quorum", "2 of 4 institutions signed; more than 2/3 needed")
    >>> str(err)
    'block 7 rejected (quorum): 2 of 4 institutions signed; more than 2/3 needed'
"""

from __future__ import annotations


class LedgerError(Exception):
    """A ledger file or operation problem; the message names the path and the reason."""


class TransactionRejected(LedgerError):
    """A transaction failed a check; ``check`` names which one (e.g. ``"signature"``)."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"transaction rejected ({check}): {reason}")
        self.check = check
        self.reason = reason


class BlockRejected(LedgerError):
    """A block failed a check; ``height``, ``check`` and ``reason`` say where and why."""

    def __init__(self, height: int, check: str, reason: str) -> None:
        super().__init__(f"block {height} rejected ({check}): {reason}")
        self.height = height
        self.check = check
        self.reason = reason


class ArtifactError(LedgerError):
    """An artifact is missing or its bytes do not hash to its name."""
