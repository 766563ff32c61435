"""Tampering, on a scratch copy only: show that every change to a ledger is detected.

:func:`copy_for_tamper` copies a ledger (SQLite backup, safe while it is being written) and its
artifacts into another directory and marks the copy as a scratch copy; every function that
modifies refuses a file without that mark, so an original ledger is never touched.

Two levels:

* :func:`tamper_byte` XORs one byte of one stored value (:func:`tamper_targets` lists them all:
  block hash / header / votes, transaction id / body, artifact files). Property tests flip random
  bytes and check that verification names the right height.
* :func:`tamper` performs a named, meaningful attack on block ``height`` (``TAMPER_KINDS``), e.g.
  editing a metric, or editing it AND recomputing the Merkle root and block hash like an attacker
  without the institutions' keys would.

Example:
    >>> import tempfile, os
    >>> from efl_toolkit.ledger.chain import Ledger
    >>> from efl_toolkit.ledger.keys import Consortium
    >>> from efl_toolkit.ledger.reader import open_ledger
    >>> from efl_toolkit.ledger.registry import ModelRegistry
    >>> d = tempfile.mkdtemp()
    >>> ledger = Ledger.create(f"{d}/ledger.sqlite", Consortium.generate(["a", "b", "c"], seed=0))
    >>> _ = ModelRegistry(ledger).model_commit("a", "cnn", b"w", None, "cnn", {"acc": 0.7}, {})
    >>> ledger.close()
    >>> scratch = copy_for_tamper(f"{d}/ledger.sqlite", f"{d}/scratch/ledger.sqlite")
    >>> print(tamper(scratch, "edit_payload", 1))
    block 1, transaction 0 (MODEL_COMMIT): metrics -> {'acc': 0.95}
    >>> open_ledger(scratch).report.check
    'merkle root'
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

from efl_toolkit.ledger import store
from efl_toolkit.ledger.block import BlockHeader, decode_votes, encode_votes, quorum_size
from efl_toolkit.ledger.errors import LedgerError
from efl_toolkit.ledger.merkle import merkle_root
from efl_toolkit.ledger.reader import artifacts_dir
from efl_toolkit.ledger.transactions import Transaction, TxType

SCRATCH_KEY = "scratch_copy_of"

TAMPER_KINDS = {
    "edit_payload": "change a value in a transaction (and its id column): the Merkle root no "
                    "longer matches",
    "rewrite_history": "change a value, then recompute the Merkle root and block hash as an "
                       "attacker without keys would: the transaction signature and the votes "
                       "no longer verify",
    "edit_header": "change the block timestamp: the block hash no longer matches the header",
    "drop_votes": "delete votes until fewer than 2/3 of the institutions signed: no quorum",
    "corrupt_artifact": "flip one byte of a model artifact committed in the block: its hash no "
                        "longer matches",
    "delete_block": "delete the block and its transactions: the chain has a hole",
}


def copy_for_tamper(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copies ledger ``src`` and its artifacts to ``dst`` (in another directory), marked scratch.

    Example:
        >>> copy_for_tamper("a/ledger.sqlite", "a/copy.sqlite")
        Traceback (most recent call last):
        ...
        efl_toolkit.ledger.errors.LedgerError: the scratch copy must be in another directory \
than a/ledger.sqlite (artifacts are shared per directory)
    """
    src, dst = Path(src), Path(dst)
    if dst.resolve().parent == src.resolve().parent:
        raise LedgerError(f"the scratch copy must be in another directory than {src} "
                          "(artifacts are shared per directory)")
    if dst.exists():
        raise LedgerError(f"{dst}: already exists; choose a new scratch path")
    source = store.open_store(src, readonly=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
        target.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                       (SCRATCH_KEY, str(src.resolve())))
        target.commit()
        target.execute("PRAGMA journal_mode = DELETE")  # the copy is one self-contained file
    finally:
        target.close()
        source.close()
    if artifacts_dir(src).is_dir():
        shutil.copytree(artifacts_dir(src), artifacts_dir(dst), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".*.tmp-*"))
    return dst


def _scratch(path: str | os.PathLike) -> sqlite3.Connection:
    conn = store.open_store(path, readonly=False)
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (SCRATCH_KEY,)).fetchone()
    if row is None:
        conn.close()
        raise LedgerError(f"{path}: not a scratch copy; refusing to tamper (use copy_for_tamper)")
    return conn


@dataclass(frozen=True)
class TamperTarget:
    """One stored value that can be tampered with.

    Attributes:
        kind: ``"block"``, ``"tx"`` or ``"artifact"``.
        height: Block height it belongs to (for an artifact: the committing block).
        index: Transaction index (``tx``), else ``None``.
        column: ``hash``/``header``/``votes`` (block), ``tx_id``/``body`` (tx), or the artifact
            hash.
        length: Number of bytes.
    """

    kind: str
    height: int
    index: int | None
    column: str
    length: int


def tamper_targets(path: str | os.PathLike) -> list[TamperTarget]:
    """Every tamperable stored value of ledger ``path`` (blocks, transactions, artifacts)."""
    conn = store.open_store(path, readonly=True)
    try:
        targets = []
        for b in store.read_blocks(conn):
            for column in ("hash", "header", "votes"):
                targets.append(TamperTarget("block", b.height, None, column,
                                            len(getattr(b, column))))
            for tx in b.txs:
                targets.append(TamperTarget("tx", b.height, tx.index, "tx_id", len(tx.tx_id)))
                targets.append(TamperTarget("tx", b.height, tx.index, "body", len(tx.body)))
                decoded = Transaction.from_bytes(tx.body)
                if decoded.type == TxType.MODEL_COMMIT:
                    version = decoded.payload["version"]
                    size = (artifacts_dir(path) / version).stat().st_size
                    targets.append(TamperTarget("artifact", b.height, None, version, size))
        return targets
    finally:
        conn.close()


def _xor(data: bytes, offset: int, mask: int) -> bytes:
    if not data:
        raise LedgerError("cannot flip a byte of an empty value")
    i = offset % len(data)
    return data[:i] + bytes([data[i] ^ (mask or 1)]) + data[i + 1:]


def tamper_byte(path: str | os.PathLike, target: TamperTarget, offset: int,
                mask: int = 0x01) -> None:
    """XORs byte ``offset`` (modulo the length) of ``target`` with ``mask`` in a scratch copy."""
    conn = _scratch(path)
    try:
        if target.kind == "artifact":
            file = artifacts_dir(path) / target.column
            file.write_bytes(_xor(file.read_bytes(), offset, mask))
            return
        if target.kind == "block":
            where, key = "height = ?", (target.height,)
            table = "blocks"
        else:
            where, key = "height = ? AND idx = ?", (target.height, target.index)
            table = "txs"
        conn.text_factory = bytes
        (value,) = conn.execute(f"SELECT {target.column} FROM {table} WHERE {where}",
                                key).fetchone()
        conn.execute(f"UPDATE {table} SET {target.column} = ? WHERE {where}",
                     (_xor(bytes(value), offset, mask), *key))
    finally:
        store.close_store(conn, writer=True)


def _edit_value(payload: dict) -> tuple[str, object]:
    """Picks a field of ``payload`` and returns (name, new value), staying valid JSON."""
    for name in ("metrics", "reason", "name", "protocol", "data_summary"):
        if name in payload:
            value = payload[name]
            if isinstance(value, dict):
                if value and all(isinstance(v, int | float) for v in value.values()):
                    first = sorted(value)[0]
                    return name, {**value, first: value[first] + 0.25}
                return name, {**value, "tampered": 1}
            return name, f"{value} (tampered)"
    name = sorted(payload)[0]
    value = payload[name]
    return name, (value[:-1] + ("0" if value[-1] != "0" else "1")) if isinstance(value, str) \
        else value


def tamper(path: str | os.PathLike, kind: str, height: int) -> str:
    """Applies attack ``kind`` (one of ``TAMPER_KINDS``) to block ``height`` of a scratch copy.

    Returns:
        A one-line description of what was changed.
    """
    if kind not in TAMPER_KINDS:
        raise LedgerError(f"unknown tamper kind {kind!r}; choose from {sorted(TAMPER_KINDS)}")
    conn = _scratch(path)
    conn.text_factory = bytes
    try:
        row = conn.execute("SELECT hash, header, votes FROM blocks WHERE height = ?",
                           (height,)).fetchone()
        if row is None:
            raise LedgerError(f"{path}: no block at height {height}")
        header = BlockHeader.from_bytes(row[1])
        txs = [(i, Transaction.from_bytes(b)) for i, b in conn.execute(
            "SELECT idx, body FROM txs WHERE height = ? ORDER BY idx", (height,))]
        return _ATTACKS[kind](conn, path, height, header, bytes(row[2]), txs)
    finally:
        store.close_store(conn, writer=True)


def _edit_first_tx(conn, height: int, txs) -> tuple[str, Transaction, Transaction]:
    if not txs:
        raise LedgerError(f"block {height} has no transaction to edit")
    index, tx = txs[0]
    name, value = _edit_value(tx.payload)
    edited = replace(tx, payload={**tx.payload, name: value})
    conn.execute("UPDATE txs SET body = ?, tx_id = ? WHERE height = ? AND idx = ?",
                 (edited.to_bytes(), edited.tx_id.encode(), height, index))
    return f"block {height}, transaction {index} ({tx.type}): {name} -> {value!r:.60}", tx, edited


def _attack_edit_payload(conn, path, height, header, votes, txs) -> str:
    return _edit_first_tx(conn, height, txs)[0]


def _attack_rewrite(conn, path, height, header, votes, txs) -> str:
    what, _, _ = _edit_first_tx(conn, height, txs)
    bodies = [bytes(b) for (b,) in conn.execute(
        "SELECT body FROM txs WHERE height = ? ORDER BY idx", (height,))]
    forged = BlockHeader(header.height, header.prev_hash, merkle_root(bodies).hex(),
                         header.timestamp, header.proposer, header.n_txs)
    conn.execute("UPDATE blocks SET header = ?, hash = ? WHERE height = ?",
                 (forged.to_bytes(), forged.hash.encode(), height))
    return f"{what}; Merkle root and block hash recomputed"


def _attack_edit_header(conn, path, height, header, votes, txs) -> str:
    edited = BlockHeader(header.height, header.prev_hash, header.merkle_root,
                         header.timestamp + 1, header.proposer, header.n_txs)
    conn.execute("UPDATE blocks SET header = ? WHERE height = ?", (edited.to_bytes(), height))
    return f"block {height}: timestamp {header.timestamp} -> {header.timestamp + 1}"


def _attack_drop_votes(conn, path, height, header, votes, txs) -> str:
    members = conn.execute("SELECT COUNT(*) FROM txs WHERE height = 0").fetchone()[0]
    kept = [v for v in decode_votes(votes) if v.signer == header.proposer]
    kept = kept[:max(quorum_size(members) - 1, 0)]
    conn.execute("UPDATE blocks SET votes = ? WHERE height = ?", (encode_votes(kept), height))
    return f"block {height}: votes reduced to {[v.signer for v in kept]} of {members} members"


def _attack_artifact(conn, path, height, header, votes, txs) -> str:
    for index, tx in txs:
        if tx.type == TxType.MODEL_COMMIT:
            file = artifacts_dir(path) / tx.payload["version"]
            data = file.read_bytes()
            file.write_bytes(_xor(data, len(data) // 2, 0x01))
            return f"block {height}, transaction {index}: one byte of artifact " \
                   f"{tx.payload['version'][:12]} flipped"
    raise LedgerError(f"block {height} commits no model artifact")


def _attack_delete(conn, path, height, header, votes, txs) -> str:
    conn.execute("BEGIN")
    conn.execute("DELETE FROM txs WHERE height = ?", (height,))
    conn.execute("DELETE FROM blocks WHERE height = ?", (height,))
    conn.execute("COMMIT")
    return f"block {height} and its {len(txs)} transactions deleted"


_ATTACKS = {
    "edit_payload": _attack_edit_payload,
    "rewrite_history": _attack_rewrite,
    "edit_header": _attack_edit_header,
    "drop_votes": _attack_drop_votes,
    "corrupt_artifact": _attack_artifact,
    "delete_block": _attack_delete,
}


def describe(kind: str) -> str:
    """What attack ``kind`` does and what should catch it."""
    return TAMPER_KINDS[kind]

