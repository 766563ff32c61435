"""``efl ledger verify|log|show``: check and read a ledger file from the shell.

* ``efl ledger verify PATH``: exit 0 and a summary when every block passes every check; exit 1
  naming the first bad height and the failed check (hash link, merkle root, signature, quorum,
  artifact hash, ...), or why the file is not a ledger at all.
* ``efl ledger log PATH [--institution ID]``: model version history, newest first.
* ``efl ledger show PATH HEIGHT``: one block, its check results and decoded transactions.

``efl_toolkit.cli`` parses the arguments and calls :func:`main` with ``args.ledger_command``,
``args.path``, ``args.institution`` and ``args.height``.

Example:
    $ efl ledger verify efl_out/ledger.sqlite
    OK: 9 blocks (height 8), 14 transactions verified in 0.010 s; head 5e1c...
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from efl_toolkit.ledger.errors import LedgerError
from efl_toolkit.ledger.reader import LedgerView, open_ledger
from efl_toolkit.ledger.registry import ModelRegistry
from efl_toolkit.ledger.views import format_timestamp


def _verify(view: LedgerView, out: TextIO) -> int:
    report = view.report
    print(f"ledger {view.path}", file=out)
    print(f"  institutions: {', '.join(i.institution for i in view.institutions()) or '-'}",
          file=out)
    print(f"  model versions: {len(view.state.versions)}, rounds: {len(view.state.rounds)}",
          file=out)
    print(report.summary(), file=out)
    return 0 if report.ok else 1


def _log(view: LedgerView, institution: str | None, out: TextIO) -> int:
    registry = ModelRegistry(view)
    if institution is not None and institution not in view.state.members:
        print(f"error: unknown institution {institution!r}; members are "
              f"{list(view.state.members)}", file=sys.stderr)
        return 1
    history = registry.history(institution)
    if not history:
        print("no model versions", file=out)
    for v in history:
        tags = registry.tags_of(v.version)
        label = f" ({', '.join(tags)})" if tags else ""
        print(f"version {v.version}{label}", file=out)
        print(f"  institution: {v.institution}   model: {v.model_id}   architecture: "
              f"{v.architecture}", file=out)
        print(f"  parent:      {v.parent or '-'}", file=out)
        print(f"  committed:   {format_timestamp(v.where.timestamp)} at height {v.where.height} "
              f"(tx {v.where.tx_id[:16]})", file=out)
        metrics = "  ".join(f"{k}={val:g}" for k, val in sorted(v.metrics.items()))
        print(f"  metrics:     {metrics or '-'}", file=out)
        print(file=out)
    return 0


def _show(view: LedgerView, height: int, out: TextIO) -> int:
    info = view.block(height)
    h = info.header
    print(f"block {h.height}  {h.hash}", file=out)
    print(f"  prev hash:   {h.prev_hash}", file=out)
    print(f"  merkle root: {h.merkle_root}", file=out)
    print(f"  timestamp:   {format_timestamp(h.timestamp)}", file=out)
    print(f"  proposer:    {h.proposer}", file=out)
    votes = ", ".join(f"{v.signer}{'' if v.ok else ' (INVALID)'}" for v in info.votes)
    print(f"  signed by:   {votes or '-'}", file=out)
    print("  checks:", file=out)
    for r in info.checks.results:
        mark = {True: "ok", False: "FAILED", None: "not checked"}[r.ok]
        print(f"    {r.check:<14} {mark}{': ' + r.reason if r.reason else ''}", file=out)
    print(f"  transactions ({len(info.transactions)}):", file=out)
    for tx in info.transactions:
        sig = "signature ok" if tx.signature_ok else "SIGNATURE INVALID"
        print(f"  [{tx.index}] {tx.type} from {tx.sender} (nonce {tx.nonce}, {sig})", file=out)
        print(f"      id: {tx.tx_id}", file=out)
        for line in json.dumps(tx.payload, indent=2, sort_keys=True).splitlines():
            print(f"      {line}", file=out)
    return 0 if info.checks.ok else 1


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Runs one ``efl ledger`` subcommand; returns the exit code (0 ok, 1 failure).

    Example:
        >>> import argparse
        >>> main(argparse.Namespace(ledger_command="verify", path="/missing.sqlite"))
        1
    """
    out = out or sys.stdout
    try:
        view = open_ledger(args.path)
    except LedgerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        command = args.ledger_command
        if command != "verify" and not view.report.ok:
            print(f"warning: this ledger fails verification: {view.report.summary()}",
                  file=sys.stderr)
        if command == "verify":
            return _verify(view, out)
        if command == "log":
            return _log(view, getattr(args, "institution", None), out)
        if command == "show":
            return _show(view, args.height, out)
        print(f"error: unknown ledger command {command!r}", file=sys.stderr)
        return 2
    except LedgerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        view.close()
