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
.efl-explorer .widget-html-content { white-space: normal; }
.efl-block-list select, .efl-block-header pre { font-family: var(--jp-code-font-family,
  monospace); font-size: 12px; white-space: pre; margin: 0; }
.efl-block-detail { min-width: 0; }
.efl-block-detail .widget-html-content { overflow: visible; }
.efl-table { border-collapse: collapse; font-size: 12px; }
.efl-table td, .efl-table th { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left;
  vertical-align: top; }
.efl-table th { white-space: nowrap; }
.efl-fields { table-layout: fixed; width: 100%; }
.efl-fields th { width: 8.5em; }
.efl-mono { font-family: var(--jp-code-font-family, monospace); overflow-wrap: anywhere; }
.efl-checks { display: flex; flex-wrap: wrap; gap: 4px; margin: 4px 0; }
.efl-badge { display: inline-block; box-sizing: border-box; max-width: 100%; border-radius: 4px;
  padding: 1px 7px; margin: 2px 4px 2px 0; font-size: 12px; color: white; white-space: normal;
  overflow-wrap: anywhere; }
.efl-checks .efl-badge { margin: 0; }
.efl-badge-ok { background: #2e7d32; }
.efl-badge-fail { background: #c62828; }
.efl-badge-idle { background: #757575; }
.efl-tx { border-top: 1px solid #ddd; padding: 4px 0; font-size: 12px; }
.efl-tx-head { display: flex; flex-wrap: wrap; gap: 2px 12px; align-items: baseline; }
.efl-payload { margin: 4px 0 0 0; padding: 4px 6px; font-size: 12px; line-height: 1.35;
  white-space: pre; max-width: 100%; max-height: 20em; overflow: auto; box-sizing: border-box;
  background: var(--jp-layout-color2, #f5f5f5); border-radius: 3px; }
.efl-explorer .efl-block-detail pre.efl-payload { white-space: pre !important; }
/* JupyterLab's output CSS (.jp-OutputArea-output pre) would wrap the payload mid-word */
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


def wrap_hash(value: str, every: int = 16) -> str:
    """``value`` HTML-escaped with a line-break opportunity (``<wbr>``) every ``every``
    characters, so a 64-hex-digit hash wraps in four readable groups in a narrow panel.

    Example:
        >>> wrap_hash("ab" * 10, every=8)
        'abababab<wbr>abababab<wbr>abab'
    """
    return "<wbr>".join(escape(value[i:i + every]) for i in range(0, len(value), every))


def _field(value: str) -> str:
    """A header value: hashes break every 16 hex digits, anything else where it can."""
    is_hash = len(value) > 16 and set(value.lower()) <= set("0123456789abcdef")
    return wrap_hash(value) if is_hash else escape(value)


def _payload(payload: object) -> str:
    """The payload pretty-printed (JSON, indent 2) in a scrollable block."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    return f'<pre class="efl-payload">{escape(text)}</pre>'


def _transaction(tx) -> str:
    """One transaction: a wrapping summary line, then its payload at the panel's full width."""
    return (f"<div class='efl-tx'><div class='efl-tx-head'><b>#{tx.index} {escape(tx.type)}</b>"
            f"<span>from {escape(tx.sender)}</span>"
            f"<span>tx <span class='efl-mono' title='{escape(tx.tx_hash)}'>"
            f"{escape(tx.tx_hash[:16])}</span></span>"
            f"<span>signature {SIGNATURE_MARK[tx.signature_ok]}</span></div>"
            f"{_payload(tx.payload)}</div>")


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
    header = "".join(f"<tr><th>{escape(k)}</th><td class='efl-mono'>{_field(v)}</td></tr>"
                     for k, v in fields)
    txs = "".join(_transaction(tx) for tx in view.transactions)
    return (f"<h4>block {row.height}</h4>{check_badges(checks)}"
            f"<table class='efl-table efl-fields'>{header}</table>"
            f"<h4>{len(view.transactions)} transaction(s)</h4>"
            f"<div class='efl-txs'>{txs or '<p>no transactions</p>'}</div>")


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
