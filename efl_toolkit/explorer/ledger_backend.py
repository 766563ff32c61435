"""The explorer backend over the embedded SQLite ledger (:mod:`efl_toolkit.ledger`).

It reads through the ledger's read API (:func:`efl_toolkit.ledger.open_ledger`) only; the
original file is never written. A cheap look at the stored head height tells it when another
process (or a writer in the same kernel) appended blocks; only then is the chain re-read and
re-verified.

A path can come to hold ANOTHER ledger (an experiment re-run into the same folder deletes and
recreates it) or none at all. Every sync compares the file at the path with the one opened (device
and inode: the open connection keeps the old inode alive, so a new file never reuses its number):
a new ledger is reopened and :attr:`LedgerBackend.notice` says so; a vanished file keeps the last
snapshot on screen, :attr:`notice` says the file is gone, and :meth:`verify` refuses plainly
instead of reporting missing artifacts as tampering.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from efl_toolkit.explorer.backend import (
    BlockRow,
    BlockView,
    CheckResult,
    Failure,
    InstitutionView,
    ModelVersion,
    SearchHit,
    TamperOutcome,
    TxView,
    VerifyReport,
)
from efl_toolkit.ledger import LedgerError, LedgerView, open_ledger, store, tamper
from efl_toolkit.ledger.records import version_counts, version_graph
from efl_toolkit.ledger.views import BlockInfo, HeaderInfo


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path``, or ``None`` if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _seconds(ms: int | None) -> float:
    return 0.0 if ms is None else ms / 1000.0


def header_row(header: HeaderInfo) -> BlockRow:
    """A ledger header as a block-list row (timestamps in seconds, '?' for undecodable fields).

    Example:
        >>> from efl_toolkit.ledger.views import HeaderInfo
        >>> h = HeaderInfo(3, "ab" * 32, None, None, 1500, "h1", 2, (), True, None)
        >>> header_row(h).timestamp, header_row(h).proposer
        (1.5, 'h1')
    """
    return BlockRow(height=header.height, hash=header.hash, proposer=header.proposer or "?",
                    n_transactions=header.n_txs, timestamp=_seconds(header.timestamp))


def block_view(info: BlockInfo) -> BlockView:
    """A decoded ledger block as the explorer's block view."""
    header = info.header
    txs = tuple(TxView(index=tx.index, tx_hash=tx.tx_id, type=tx.type, sender=tx.sender,
                       payload=tx.payload, signature_ok=tx.signature_ok)
                for tx in info.transactions)
    votes = ", ".join(f"{v.signer} {'ok' if v.ok else 'BAD' if v.ok is False else '?'}"
                      for v in info.votes)
    extra = {"votes": votes or "none", "verdict": "ok" if header.ok else header.problem or "?"}
    return BlockView(row=header_row(header), prev_hash=header.prev_hash or "?",
                     merkle_root=header.merkle_root or "?", transactions=txs, header=extra)


class LedgerBackend:
    """:class:`~efl_toolkit.explorer.backend.ExplorerBackend` over an embedded ledger.

    Args:
        source: the ledger file, or an open :class:`~efl_toolkit.ledger.LedgerView` /
            ``Ledger`` (e.g. the one a running experiment writes to).
        artifacts: artifact folder (default: ``<ledger_dir>/artifacts``).
        scratch_dir: where tamper experiments make their scratch folders (default: the system
            temporary folder); they are deleted by :meth:`close`.

    Raises:
        LedgerError: the file is missing, not SQLite or not an efl ledger.

    Example:
        >>> backend = LedgerBackend("efl_out/ledger.sqlite")  # doctest: +SKIP
        >>> backend.verify().summary                          # doctest: +SKIP
        'verified: 12 blocks, height 11, head 3f2a...'
    """

    def __init__(self, source: str | os.PathLike | LedgerView, *,
                 artifacts: str | os.PathLike | None = None,
                 scratch_dir: str | os.PathLike | None = None) -> None:
        self._lock = threading.RLock()
        self.scratch_dir = scratch_dir
        self._scratch_folders: list[Path] = []
        if isinstance(source, LedgerView):
            self.view, self._owns_view = source, False
        else:
            self.view, self._owns_view = open_ledger(source, artifacts=artifacts), True
        self.path = Path(self.view.path)
        self.artifacts = artifacts
        self._probe = store.open_store(self.path, readonly=True)
        self._identity = _identity(self.path)
        #: ``None`` while the path holds the ledger that was opened; otherwise one line saying
        #: what happened (reopened another ledger, or the file is gone).
        self.notice: str | None = None
        #: Incremented every time the path turned out to hold another ledger and was reopened.
        self.generation = 0
        self._gone = False

    def close(self) -> None:
        """Closes the connections this backend opened (not a view it was handed) and deletes
        its tamper scratch copies."""
        with self._lock:
            self.remove_scratch_copies()
            self._probe.close()
            if self._owns_view:
                self.view.close()

    def _sync(self) -> None:
        """Reopens when the path holds another file; re-reads the chain when the stored head
        height differs from the snapshot."""
        identity = _identity(self.path)
        if identity != self._identity:
            self._reopen(identity)
            return
        if self._gone:
            return
        if store.is_immutable(self._probe):  # opened immutable: it would miss new blocks
            self._probe.close()
            self._probe = store.open_store(self.path, readonly=True)
        if store.head_height(self._probe) != self.view.height:
            self.view.refresh()

    def _reopen(self, identity) -> None:
        old_genesis = self._genesis()
        if identity is None:
            if not self._gone:
                self.notice = (f"{self.path} no longer exists (deleted or moved): showing the "
                               "last snapshot read; nothing can be verified until a ledger is "
                               "there again")
            self._gone = True
            return
        try:
            view = open_ledger(self.path, artifacts=self.artifacts)
        except LedgerError as err:
            self._gone = True
            self.notice = f"{self.path} was replaced by a file that is not a ledger: {err}"
            return
        try:
            probe = store.open_store(self.path, readonly=True)
        except LedgerError as err:
            view.close()
            self._gone = True
            self.notice = f"{self.path} was replaced by a file that is not a ledger: {err}"
            return
        self._probe.close()
        if self._owns_view:
            self.view.close()
        self.view, self._owns_view, self._probe = view, True, probe
        self._identity, self._gone = identity, False
        self.generation += 1
        new_genesis = self._genesis()
        if new_genesis == old_genesis:
            self.notice = (f"{self.path} was rewritten in place (same genesis "
                           f"{str(new_genesis)[:12]}): reopened and re-verified")
        else:
            self.notice = (f"{self.path} now holds another ledger (genesis "
                           f"{str(new_genesis)[:12]}, was {str(old_genesis)[:12]}): reopened")

    def _genesis(self) -> str | None:
        return self.view.headers(0, 1)[0].hash if self.view.height >= 0 else None

    @property
    def gone(self) -> bool:
        """True when the path no longer holds a ledger (the last snapshot is still shown)."""
        return self._gone

    def checkpoint_status(self) -> tuple[bool | None, str]:
        """Whether the ledger matches the last checkpoint written next to it:
        ``(True, ...)`` consistent, ``(False, ...)`` truncated / forked / badly signed,
        ``(None, ...)`` no checkpoint there."""
        with self._lock:
            self._sync()
            if self._gone:
                return None, "no ledger at this path"
            try:
                checkpoint = self.view.stored_checkpoint()
            except LedgerError as err:
                return False, str(err)
            if checkpoint is None:
                return None, "no checkpoint next to the ledger"
            verdict = self.view.check_checkpoint(checkpoint)
            return verdict.ok, verdict.message

    # ---- ExplorerBackend ---------------------------------------------------------------------
    def height(self) -> int:
        with self._lock:
            self._sync()
            return self.view.height

    def head(self) -> str:
        with self._lock:
            return self.view.head_hash or ""

    def blocks(self, start: int, stop: int) -> list[BlockRow]:
        with self._lock:
            return [header_row(h) for h in self.view.headers(start, stop)]

    def block(self, height: int) -> BlockView:
        with self._lock:
            return block_view(self.view.block(height))

    def check_block(self, height: int) -> list[CheckResult]:
        with self._lock:
            return [CheckResult(r.check, r.ok, r.reason)
                    for r in self.view.checks(height).results]

    def verify(self) -> VerifyReport:
        """Verifies the chain now at the path (reopening first if the file was replaced).

        Raises:
            LedgerError: the path no longer holds a ledger (said plainly, not as tampering).
        """
        with self._lock:
            self._sync()
            if self._gone:
                raise LedgerError(f"cannot verify: {self.notice}")
            return self._report(self.view.verify())

    def _report(self, report) -> VerifyReport:
        failures: list[Failure] = []
        if not report.ok:
            failures.append(Failure(report.height, report.check, report.reason or ""))
        for height in range(self.view.height + 1):
            for result in self.view.checks(height).results:
                failure = Failure(height, result.check, result.reason)
                if result.ok is False and all((f.height, f.check) != (height, result.check)
                                              for f in failures):
                    failures.append(failure)
        return VerifyReport(ok=report.ok, n_blocks=report.n_blocks,
                            head=report.head_hash or "", failures=tuple(failures))

    def institutions(self) -> list[InstitutionView]:
        with self._lock:
            counts = version_counts(self.view.model_versions())
            return [InstitutionView(id=i.institution, public_key=i.public_key,
                                    registered_height=i.height,
                                    n_model_versions=counts.get(i.institution, 0),
                                    details={"name": i.name or i.institution,
                                             "fingerprint": i.fingerprint})
                    for i in self.view.institutions()]

    def model_versions(self) -> list[ModelVersion]:
        with self._lock:
            return version_graph(self.view.model_versions(), self.view.rounds())

    def find(self, prefix: str) -> list[SearchHit]:
        with self._lock:
            hits = []
            for match in self.view.find(prefix):
                hits.append(SearchHit(kind=match.kind, height=match.height, hash=match.key,
                                      description=self._describe(match)))
            return hits

    def _describe(self, match) -> str:
        if match.kind == "block":
            return f"block {match.height}"
        if match.kind == "version":
            version = self.view.state.versions[match.key]
            return f"{version.institution} {version.model_id} ({version.architecture})"
        if match.kind == "round":
            return f"round {match.key}, started in block {match.height}"
        tx = self.view.block(match.height).transactions[match.index]
        return f"{tx.type} from {tx.sender}, block {match.height} #{match.index}"

    # ---- tamper experiments (TamperableBackend) ----------------------------------------------
    def tamper_kinds(self) -> dict[str, str]:
        """The ledger's named attacks, each with what it changes and what should catch it."""
        return dict(tamper.TAMPER_KINDS)

    def tamper_copy(self, kind: str, height: int) -> TamperOutcome:
        """Copies the ledger into a new scratch folder, applies attack ``kind`` to block
        ``height`` of the copy, and verifies the copy. The original file is only read.

        Raises:
            LedgerError: unknown kind, no such block, or the block has nothing to attack
                (e.g. ``corrupt_artifact`` on a block without a model commit).
        """
        with self._lock:
            folder = Path(tempfile.mkdtemp(prefix="efl-tamper-", dir=self.scratch_dir))
            self._scratch_folders.append(folder)
            scratch = tamper.copy_for_tamper(self.path, folder / self.path.name)
            description = tamper.tamper(scratch, kind, height)
            copy = LedgerBackend(scratch)
            try:
                report = copy.verify()
                first = report.first_failure
                checked = first.height if first else height
                try:
                    checks = tuple(copy.check_block(checked))
                except LedgerError:  # e.g. the block was deleted and nothing follows it
                    checks = ()
            finally:
                copy.close()
            return TamperOutcome(scratch_path=str(scratch), kind=kind, height=height,
                                 description=description, report=report, block_checks=checks,
                                 checked_height=checked)

    def remove_scratch_copies(self) -> None:
        """Deletes every scratch folder this backend made (also done by :meth:`close`)."""
        for folder in self._scratch_folders:
            shutil.rmtree(folder, ignore_errors=True)
        self._scratch_folders.clear()
