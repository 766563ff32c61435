"""HTML fragments for the explorer: pure functions from backend values to markup strings.

Kept apart from the widget so the markup can be checked without a kernel or a browser.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from html import escape

from efl_toolkit.explorer.backend import (
    BlockRow,
    BlockView,
    CheckResult,
    InstitutionView,
    SearchHit,
    TamperOutcome,
    VerifyReport,
)

STYLE = """<style>
.efl-explorer { font-family: var(--jp-ui-font-family, sans-serif); }
.efl-block-list select, .efl-block-header pre { font-family: var(--jp-code-font-family,
  monospace); font-size: 12px; white-space: pre; margin: 0; }
.efl-txs td:nth-child(-n+5) { white-space: nowrap; }
.efl-table { border-collapse: collapse; font-size: 12px; }
.efl-table td, .efl-table th { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left;
  vertical-align: top; }
.efl-table th { white-space: nowrap; }
.efl-mono { font-family: var(--jp-code-font-family, monospace); word-break: break-all; }
.efl-badge { display: inline-block; border-radius: 4px; padding: 1px 7px; margin: 2px 4px 2px 0;
  font-size: 12px; color: white; }
.efl-badge-ok { background: #2e7d32; }
.efl-badge-fail { background: #c62828; }
.efl-badge-idle { background: #757575; }
.efl-payload { margin: 0; font-size: 11px; max-height: 14em; overflow: auto; }
</style>"""

SIGNATURE_MARK = {True: "\u2714 valid", False: "\u2718 INVALID", None: "not checked"}
BLOCK_HEADER = f"{'height':>6}  {'hash':<12}  {'proposer':<16}  {'txs':>4}  time (UTC)"


def format_time(timestamp: float) -> str:
    """Seconds since the epoch as ``YYYY-MM-DD HH:MM:SS`` in UTC.

    Example:
        >>> format_time(0)
        '1970-01-01 00:00:00'
    """
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(timestamp))


def block_label(row: BlockRow) -> str:
    """One fixed-width line of the block list (aligned with ``BLOCK_HEADER``).

    Example:
        >>> block_label(BlockRow(7, "ab" * 32, "hospital-a", 3, 0.0))
        '     7  abababababab  hospital-a           3  1970-01-01 00:00:00'
    """
    return (f"{row.height:>6}  {row.short_hash:<12}  {row.proposer[:16]:<16}  "
            f"{row.n_transactions:>4}  {format_time(row.timestamp)}")


def badge(text: str, ok: bool | None) -> str:
    """A coloured badge: green when ``ok``, red when not, grey when unknown (None).

    Example:
        >>> 'efl-badge-fail' in badge("merkle root", False)
        True
    """
    kind = "idle" if ok is None else ("ok" if ok else "fail")
    mark = {"idle": "", "ok": "\u2714 ", "fail": "\u2718 "}[kind]
    return f'<span class="efl-badge efl-badge-{kind}">{mark}{escape(text)}</span>'


def check_badges(checks: Sequence[CheckResult]) -> str:
    """One badge per check; a failed check carries its reason as tooltip and text.

    Example:
        >>> check_badges([CheckResult("hash link", True)]).count("efl-badge-ok")
        1
    """
    parts = []
    for check in checks:
        if check.ok:
            text = check.name
        elif check.ok is None:
            text = f"{check.name}: {check.reason or 'not checked'}"
        else:
            text = f"{check.name}: {check.reason}"
        parts.append(badge(text, check.ok))
    return '<div class="efl-checks">' + "".join(parts) + "</div>"


def verify_status(report: VerifyReport) -> str:
    """The status line after *Verify chain*.

    Example:
        >>> r = VerifyReport(ok=True, n_blocks=2, head="ef" * 32, failures=())
        >>> "verified: 2 blocks, height 1" in verify_status(r)
        True
    """
    if report.ok:
        return badge(report.summary, True)
    extra = len(report.failures) - 1
    more = f" (+{extra} more failed check{'s' if extra > 1 else ''})" if extra > 0 else ""
    return badge(report.summary + more, False)


def _payload(payload: object) -> str:
    text = json.dumps(payload, indent=1, sort_keys=True, default=str)
    return f'<pre class="efl-payload">{escape(text)}</pre>'


def block_detail(view: BlockView, checks: Sequence[CheckResult]) -> str:
    """The block pane: header fields, a badge per check, and decoded transactions.

    Example:
        >>> v = BlockView(BlockRow(0, "ab" * 32, "h-a", 0, 0.0), "00" * 32, "11" * 32, ())
        >>> "block 0" in block_detail(v, [CheckResult("hash link", True)])
        True
    """
    row = view.row
    fields = [("hash", row.hash), ("previous hash", view.prev_hash),
              ("Merkle root", view.merkle_root), ("proposer", row.proposer),
              ("time (UTC)", format_time(row.timestamp))]
    fields += [(str(k), str(v)) for k, v in view.header.items()]
    header = "".join(f"<tr><th>{escape(k)}</th><td class='efl-mono'>{escape(v)}</td></tr>"
                     for k, v in fields)
    txs = "".join(
        f"<tr><td>{tx.index}</td><td>{escape(tx.type)}</td><td>{escape(tx.sender)}</td>"
        f"<td class='efl-mono' title='{escape(tx.tx_hash)}'>{escape(tx.tx_hash[:12])}</td>"
        f"<td>{SIGNATURE_MARK[tx.signature_ok]}</td><td>{_payload(tx.payload)}</td></tr>"
        for tx in view.transactions)
    tx_table = (f"<table class='efl-table efl-txs'><tr><th>#</th><th>type</th><th>sender</th>"
                f"<th>tx hash</th><th>signature</th><th>payload</th></tr>{txs}</table>" if txs
                else "<p>no transactions</p>")
    return (f"<h4>block {row.height}</h4>{check_badges(checks)}"
            f"<table class='efl-table'>{header}</table>"
            f"<h4>{len(view.transactions)} transaction(s)</h4>{tx_table}")


def institutions_table(institutions: Sequence[InstitutionView]) -> str:
    """The institution view as an HTML table.

    Example:
        >>> "hospital-a" in institutions_table([InstitutionView("hospital-a", "ab", 0, 2)])
        True
    """
    if not institutions:
        return "<p>no institutions registered yet</p>"
    rows = "".join(
        f"<tr><td>{escape(i.id)}</td><td>{i.registered_height}</td><td>{i.n_model_versions}</td>"
        f"<td class='efl-mono' title='{escape(i.public_key)}'>{escape(i.public_key[:16])}</td>"
        f"<td>{escape(', '.join(f'{k}={v}' for k, v in i.details.items()))}</td></tr>"
        for i in institutions)
    return ("<table class='efl-table efl-institution-table'><tr><th>institution</th>"
            "<th>registered at block</th><th>model versions</th><th>public key</th>"
            f"<th>details</th></tr>{rows}</table>")


def search_results(prefix: str, hits: Sequence[SearchHit]) -> str:
    """The search result list.

    Example:
        >>> search_results("ab", [])
        '<p>nothing on the ledger starts with <code>ab</code></p>'
    """
    if not hits:
        return f"<p>nothing on the ledger starts with <code>{escape(prefix)}</code></p>"
    rows = "".join(
        f"<tr><td>{escape(h.kind)}</td><td>{h.height}</td><td class='efl-mono'>"
        f"{escape(h.hash[:16])}</td><td>{escape(h.description)}</td></tr>" for h in hits)
    return ("<table class='efl-table efl-search-table'><tr><th>kind</th><th>block</th>"
            f"<th>hash</th><th>what</th></tr>{rows}</table>")


def tamper_report(outcome: TamperOutcome, original: VerifyReport) -> str:
    """What the tamper experiment did, which check broke where, and that the original is intact.

    Example:
        >>> from efl_toolkit.explorer.backend import Failure
        >>> bad = VerifyReport(False, 3, "", (Failure(1, "merkle root", "mismatch"),))
        >>> good = VerifyReport(True, 3, "ab" * 32, ())
        >>> o = TamperOutcome("/tmp/x", "payload", 1, "edited a tx", bad, (), 1)
        >>> "merkle root" in tamper_report(o, good)
        True
    """
    first = outcome.report.first_failure
    if first is None:
        verdict = badge("verification did not notice the change", False)
    else:
        verdict = badge(f"broken check: {first.check} at height {first.height}", False)
    failures = "".join(
        f"<tr><td>{f.height}</td><td>{escape(f.check)}</td><td>{escape(f.reason)}</td></tr>"
        for f in sorted(outcome.report.failures, key=lambda f: (f.height, f.check)))
    return (f"<p>Tampered a scratch copy (<code>{escape(outcome.scratch_path)}</code>): "
            f"{escape(outcome.description)}</p>{verdict}"
            f"<table class='efl-table efl-tamper-failures'><tr><th>height</th><th>check</th>"
            f"<th>reason</th></tr>{failures}</table>"
            f"<p>Checks on block {outcome.checked_height} of the copy:</p>"
            f"{check_badges(outcome.block_checks)}"
            f"<p>Original ledger: {badge(original.summary, original.ok)}</p>")
