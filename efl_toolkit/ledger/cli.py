"""``efl ledger verify|log|show|checkpoint``: check and read a ledger file from the shell.

* ``efl ledger verify PATH [--checkpoint FILE] [--trusted-keys FILE] [--genesis HASH]``: exit 0
  and a summary when every block passes every check and the ledger is consistent with its
  checkpoints (the one written next to it, ``PATH.checkpoint``, and ``--checkpoint FILE``, one
  kept by the verifier); exit 1 naming the first bad height and the failed check (hash link,
  merkle root, signature, quorum, artifact hash, ...), or the truncation / fork and its heights.
  ``--trusted-keys`` (C2SP verifier keys or JSON ``{"id": "hex key"}``) and ``--genesis`` are
  trust anchors obtained out of band: a ledger or checkpoint signed by other keys fails, naming
  the institution whose key differs.
* ``efl ledger log PATH [--institution ID]``: model version history, newest first.
* ``efl ledger show PATH HEIGHT``: one block, its check results and decoded transactions.
* ``efl ledger checkpoint PATH [--out FILE]``: the latest signed checkpoint (C2SP
  tlog-checkpoint note) on standard output, or written atomically to ``FILE``.

An EVM ledger (``efl demo --ledger evm:RPC_URL``) is named by its descriptor, the
``ledger.evm.json`` the demo writes (node URL, contract address, artifact folder), or by
``evm:RPC_URL#CONTRACT_ADDRESS``: ``verify``, ``log`` and ``show`` read it through the same backend
interface (``checkpoint`` is the embedded ledger's; a chain's anchor is its contract address).

Reading never writes: a ledger on read-only media verifies where it lies. Bad input (no such
file, not a ledger, a malformed checkpoint or key file, no such height or institution) is one
line ``efl ledger <command>: error: ...`` on standard error and exit code 2.

``efl_toolkit.cli`` parses the arguments and calls :func:`main` with ``args.ledger_command``,
``args.path`` and the subcommand's options.

Example:
    $ efl ledger verify efl_out/ledger.sqlite --checkpoint kept.checkpoint
    OK: 9 blocks (height 8), 14 transactions verified in 0.010 s; head 5e1c...
    checkpoint kept.checkpoint: consistent with the checkpoint at height 8 (same tree head)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from efl_toolkit.ledger.checkpoint import (
    Checkpoint,
    checkpoint_path,
    read_checkpoint,
    read_trusted_keys,
    write_checkpoint,
)
from efl_toolkit.ledger.crypto import is_hash_hex
from efl_toolkit.ledger.errors import LedgerError
from efl_toolkit.ledger.reader import LedgerView, open_ledger
from efl_toolkit.ledger.registry import ModelRegistry
from efl_toolkit.ledger.views import format_timestamp


class InputError(Exception):
    """Bad input for an ``efl ledger`` command (exit code 2)."""


def _verify(view: LedgerView, checkpoints: list[tuple[str, Checkpoint]], out: TextIO) -> int:
    report = view.report
    print(f"ledger {view.path}", file=out)
    print(f"  institutions: {', '.join(i.institution for i in view.institutions()) or '-'}",
          file=out)
    print(f"  model versions: {len(view.state.versions)}, rounds: {len(view.state.rounds)}",
          file=out)
    print(report.summary(), file=out)
    ok = report.ok
    for label, checkpoint in checkpoints:
        verdict = view.check_checkpoint(checkpoint)
        print(f"checkpoint {label}: {verdict.message}", file=out)
        ok = ok and verdict.ok
    return 0 if ok else 1


def _checkpoint(view: LedgerView, out_file: str | None, out: TextIO) -> int:
    stored = view.stored_checkpoint()
    if stored is None:
        raise InputError(f"{view.path}: no checkpoint next to it ({checkpoint_path(view.path)}); "
                         "a writer signs one after every block")
    verdict = view.check_checkpoint(stored)
    if out_file is None:
        out.write(stored.to_note())
    else:
        try:
            write_checkpoint(out_file, stored)
        except OSError as err:
            raise InputError(f"--out {out_file}: cannot write: {err.strerror or err}") from None
        print(f"wrote {out_file} (tree size {stored.size}, height {stored.height})", file=out)
    if not verdict.ok:
        print(f"warning: the ledger does not match this checkpoint: {verdict.message}",
              file=sys.stderr)
        return 1
    return 0


def _log(registry: ModelRegistry, members: list[str], institution: str | None,
         out: TextIO) -> int:
    if institution is not None and institution not in members:
        raise InputError(f"--institution: unknown institution {institution!r}; members are "
                         f"{members}")
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
    if not 0 <= height <= view.height:
        raise InputError(f"{view.path}: no block at height {height} (height is {view.height})")
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


def _trust_anchors(args: argparse.Namespace) -> tuple[dict | None, str | None]:
    keys_file = getattr(args, "trusted_keys", None)
    genesis = getattr(args, "genesis", None)
    keys = None
    if keys_file is not None:
        try:
            keys = read_trusted_keys(keys_file)
        except LedgerError as err:
            raise InputError(f"--trusted-keys: {err}") from None
    if genesis is not None:
        genesis = genesis.strip().lower()
        if not is_hash_hex(genesis):
            raise InputError(f"--genesis {args.genesis[:70]!r} is not a SHA-256 hex block hash "
                             "(64 hex digits)")
    return keys, genesis


def _checkpoints(view: LedgerView, args: argparse.Namespace) -> list[tuple[str, Checkpoint]]:
    found = []
    try:
        stored = view.stored_checkpoint()
    except LedgerError as err:
        raise InputError(str(err)) from None
    if stored is not None:
        found.append((checkpoint_path(view.path).name, stored))
    given = getattr(args, "checkpoint", None)
    if given is not None:
        try:
            found.append((given, read_checkpoint(given)))
        except LedgerError as err:
            raise InputError(f"--checkpoint: {err}") from None
    return found


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Runs one ``efl ledger`` subcommand; returns the exit code (0 ok, 1 the ledger fails a
    check, 2 bad input: then one line ``efl ledger <command>: error: ...`` on stderr).

    Example:
        >>> import argparse
        >>> main(argparse.Namespace(ledger_command="verify", path="/missing.sqlite"))
        2
    """
    out = out or sys.stdout
    command = args.ledger_command
    prog = f"efl ledger {command}"
    if str(args.path).endswith(".json") or str(args.path).startswith("evm:"):
        return _chain_main(args, prog, out)
    try:
        keys, genesis = _trust_anchors(args)
        try:
            view = open_ledger(args.path, genesis_hash=genesis, trusted_keys=keys)
        except LedgerError as err:
            raise InputError(str(err)) from None
    except InputError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    try:
        if command not in ("verify", "checkpoint") and not view.report.ok:
            print(f"warning: this ledger fails verification: {view.report.summary()}",
                  file=sys.stderr)
        if command == "verify":
            return _verify(view, _checkpoints(view, args), out)
        if command == "checkpoint":
            return _checkpoint(view, getattr(args, "out", None), out)
        if command == "log":
            return _log(ModelRegistry(view), list(view.state.members),
                        getattr(args, "institution", None), out)
        if command == "show":
            return _show(view, args.height, out)
        raise InputError(f"unknown ledger command {command!r}")
    except (InputError, LedgerError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    finally:
        view.close()


def _chain_main(args: argparse.Namespace, prog: str, out: TextIO) -> int:
    """``verify``, ``log`` and ``show`` of an EVM ledger, through the backend interface."""
    from efl_toolkit.ledger.evm.backend import open_chain

    try:
        if getattr(args, "checkpoint", None) or getattr(args, "trusted_keys", None) or \
                getattr(args, "genesis", None) or args.ledger_command == "checkpoint":
            raise InputError("checkpoints, --trusted-keys and --genesis are the embedded "
                             "ledger's; an EVM ledger is anchored by its contract address")
        chain = open_chain(str(args.path))
    except (InputError, LedgerError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    try:
        members = [m.institution for m in chain.members()]
        if args.ledger_command == "verify":
            report = chain.verify()
            print(f"ledger {chain.ledger.path}", file=out)
            print(f"  institutions: {', '.join(members) or '-'}", file=out)
            print(f"  model versions: {len(chain.index.versions)}, rounds: "
                  f"{len(chain.index.rounds)}", file=out)
            print(report.summary, file=out)
            for failure in report.failures[1:]:
                print(f"  also at height {failure.height}: {failure.check} ({failure.reason})",
                      file=out)
            return 0 if report.ok else 1
        if args.ledger_command == "log":
            return _log(chain, members, getattr(args, "institution", None), out)
        if args.ledger_command == "show":
            return _show_chain_block(chain, args.height, out)
        raise InputError(f"unknown ledger command {args.ledger_command!r}")
    except (InputError, LedgerError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    finally:
        chain.close()


def _show_chain_block(chain, height: int, out: TextIO) -> int:
    if not 0 <= height <= chain.height():
        raise InputError(f"no block at height {height} (height is {chain.height()})")
    block, checks = chain.block(height), chain.check_block(height)
    print(f"block {height}  {block.row.hash}", file=out)
    print(f"  prev hash:   {block.prev_hash}", file=out)
    print(f"  timestamp:   {format_timestamp(int(block.row.timestamp * 1000))}", file=out)
    print(f"  proposer:    {block.row.proposer}", file=out)
    print("  checks:", file=out)
    for r in checks:
        mark = {True: "ok", False: "FAILED", None: "not checked"}[r.ok]
        print(f"    {r.name:<14} {mark}{': ' + r.reason if r.reason else ''}", file=out)
    print(f"  registry events ({len(block.transactions)}):", file=out)
    for tx in block.transactions:
        print(f"  [{tx.index}] {tx.type} from {tx.sender}", file=out)
        print(f"      tx: {tx.tx_hash}", file=out)
        for line in json.dumps(tx.payload, indent=2, sort_keys=True).splitlines():
            print(f"      {line}", file=out)
    return 0 if all(r.ok is not False for r in checks) else 1
