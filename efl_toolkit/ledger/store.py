"""SQLite storage: one SQL transaction per block, so a crash leaves the old or the new chain.

Schema (all content columns are BLOBs holding exactly the bytes that were hashed and signed)::

    meta(key TEXT PRIMARY KEY, value TEXT)           format = efl-ledger, schema = 1
    blocks(height INTEGER PRIMARY KEY, hash BLOB, header BLOB, votes BLOB)
    txs(height INTEGER, idx INTEGER, tx_id BLOB, body BLOB, PRIMARY KEY (height, idx))

While a writer has it open the database runs in WAL mode with ``synchronous=FULL``;
:func:`write_block` inserts a block and its transactions between ``BEGIN IMMEDIATE`` and
``COMMIT``, after checking that the head did not move (each step is a named
:mod:`~efl_toolkit.ledger.faults` point, so tests stop a writer exactly there). SQLite's atomic
commit then guarantees that after a crash (even SIGKILL or power loss) the file holds either
the chain before or the chain after that block. Readers never crash on odd bytes: any column
value is handed to verification as ``bytes``.

A closed ledger is ONE self-contained file: :func:`close_store` switches a writer's connection
back to ``journal_mode=DELETE`` (checkpointing the WAL and removing ``-wal``/``-shm``). Read paths
never write: :func:`open_store` with ``readonly=True`` opens ``?mode=ro``, and a file whose
header still says WAL but has no ``-wal`` beside it (a ledger closed by an older version, or
copied without its ``-wal``) or that lies on read-only media is opened ``?mode=ro&immutable=1``,
so verifying a ledger on a read-only mount, or a copy, leaves no file behind.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "ledger.sqlite")
    >>> conn = create_store(path)
    >>> head_height(conn), read_blocks(conn)
    (-1, [])
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from efl_toolkit.ledger.block import StoredBlock, StoredTx
from efl_toolkit.ledger.errors import LedgerError
from efl_toolkit.ledger.faults import fault_point

FORMAT = "efl-ledger"
SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE blocks(height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL,
                    votes BLOB NOT NULL);
CREATE TABLE txs(height INTEGER NOT NULL, idx INTEGER NOT NULL, tx_id BLOB NOT NULL,
                 body BLOB NOT NULL, PRIMARY KEY (height, idx));
CREATE INDEX txs_by_id ON txs(tx_id);
"""


WAL_HEADER = b"\x02\x02"  # bytes 18-19 of a SQLite header: write/read format 2 = WAL


def _header_says_wal(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return len(head) == 20 and head.startswith(b"SQLite format 3\x00") and head[18:20] == WAL_HEADER


def _immutable_wanted(path: Path) -> bool:
    """True if a read-only open must not touch anything beside the file: its header says WAL
    but no ``-wal`` file exists (nothing is pending; a plain ``mode=ro`` open would create
    ``-wal``/``-shm``), or its folder cannot be written (read-only media)."""
    if _header_says_wal(path) and not Path(f"{path}-wal").exists():
        return True
    return not os.access(path.parent, os.W_OK)


class _Connection(sqlite3.Connection):
    """A connection that remembers whether it was opened ``immutable`` (:func:`is_immutable`)."""

    immutable = False


def is_immutable(conn: sqlite3.Connection) -> bool:
    """True if ``conn`` was opened ``?immutable=1``: it does not see later writes, so a reader
    that follows a live ledger reopens it (:func:`open_store` decides afresh each time)."""
    return bool(getattr(conn, "immutable", False))


def _connect(path: str | os.PathLike, readonly: bool, immutable: bool = False
             ) -> sqlite3.Connection:
    if readonly:
        uri = Path(path).resolve().as_uri() + ("?mode=ro&immutable=1" if immutable
                                               else "?mode=ro")
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                               factory=_Connection)
        conn.immutable = immutable
    else:
        conn = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    return conn


def close_store(conn: sqlite3.Connection, writer: bool = False) -> None:
    """Closes a connection; a writer's first leaves the file self-contained.

    ``PRAGMA journal_mode=DELETE`` checkpoints the WAL into the main file and removes
    ``-wal``/``-shm``, so the closed ledger is one file that opens anywhere, read-only media
    included. If another connection still reads the file the switch is skipped (it would wait
    for it); SQLite then keeps the WAL until a later writer closes.
    """
    if writer:
        try:
            conn.execute("PRAGMA busy_timeout = 200")
            conn.execute("PRAGMA journal_mode = DELETE").fetchone()
        except sqlite3.Error:
            pass
    conn.close()


def create_store(path: str | os.PathLike) -> sqlite3.Connection:
    """Creates an empty ledger database at ``path``; ``LedgerError`` if a file is there.

    Example:
        >>> import tempfile
        >>> create_store(tempfile.mkdtemp() + "/l.sqlite").execute(
        ...     "SELECT value FROM meta WHERE key='format'").fetchone()
        ('efl-ledger',)
    """
    p = Path(path)
    if p.exists() and p.stat().st_size > 0:
        raise LedgerError(f"{p}: a file already exists; open it instead of creating a ledger")
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = _connect(p, readonly=False)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                         [("format", FORMAT), ("schema", SCHEMA_VERSION)])
        conn.execute("COMMIT")
    except sqlite3.Error as err:
        conn.close()
        raise LedgerError(f"{p}: cannot create ledger: {err}") from None
    return conn


def open_store(path: str | os.PathLike, readonly: bool = True) -> sqlite3.Connection:
    """Opens an existing ledger database; ``LedgerError`` names the path and the reason.

    Rejects a missing file, a file that is not SQLite, a corrupt database (``quick_check``) and
    a SQLite database that is not an efl ledger (no ``meta`` format row or wrong schema).

    Example:
        >>> import tempfile
        >>> bad = tempfile.mkdtemp() + "/x.sqlite"
        >>> _ = open(bad, "wb").write(b"not a database at all" * 10)
        >>> open_store(bad)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        efl_toolkit.ledger.errors.LedgerError: ...: not a SQLite database or corrupt: ...
    """
    p = Path(path)
    if not p.is_file():
        raise LedgerError(f"{p}: no such ledger file")
    if not os.access(p, os.R_OK):
        raise LedgerError(f"{p}: cannot read the file (permission denied)")
    if not readonly and not (os.access(p.parent, os.W_OK) and os.access(p, os.W_OK)):
        raise LedgerError(f"{p}: cannot append: the file or its folder is not writable "
                          "(read-only media?); verification and reading work read-only")
    immutable = readonly and _immutable_wanted(p)
    try:
        conn = _connect(p, readonly, immutable)
    except sqlite3.Error as err:
        raise LedgerError(f"{p}: cannot open: {err}") from None
    if readonly and not immutable:
        try:
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError as err:  # e.g. cannot create -shm: read-only media
            conn.close()
            try:
                conn = _connect(p, readonly, immutable=True)
            except sqlite3.Error:
                raise LedgerError(f"{p}: cannot open: {err}") from None
        except sqlite3.DatabaseError:
            pass  # reported by the checks below
    try:
        status = conn.execute("PRAGMA quick_check").fetchone()[0]
        if status != "ok":
            raise LedgerError(f"{p}: corrupt SQLite database: {status}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"meta", "blocks", "txs"} - tables
        if missing:
            raise LedgerError(f"{p}: not an efl ledger (missing tables {sorted(missing)})")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta.get("format") != FORMAT:
            raise LedgerError(f"{p}: not an efl ledger (meta format is {meta.get('format')!r})")
        if meta.get("schema") != SCHEMA_VERSION:
            raise LedgerError(f"{p}: unsupported ledger schema {meta.get('schema')!r}")
    except sqlite3.DatabaseError as err:
        conn.close()
        raise LedgerError(f"{p}: not a SQLite database or corrupt: {err}") from None
    except LedgerError:
        conn.close()
        raise
    return conn


def _as_bytes(value: object) -> bytes:
    """Any stored value as bytes (a tampered row may hold TEXT, a number or NULL)."""
    if isinstance(value, bytes):
        return value
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return str(value).encode()


def read_blocks(conn: sqlite3.Connection, start: int = 0) -> list[StoredBlock]:
    """All blocks from height ``start`` on, with their transaction rows, in height order.

    Transaction rows whose height has no block row are returned as a block with empty header
    bytes, so verification reports them instead of silently skipping them.
    """
    conn.text_factory = bytes  # a tampered TEXT value must not fail UTF-8 decoding here
    try:
        blocks = conn.execute(
            "SELECT height, hash, header, votes FROM blocks WHERE height >= ? ORDER BY height",
            (start,)).fetchall()
        tx_rows = conn.execute(
            "SELECT height, idx, tx_id, body FROM txs WHERE height >= ? ORDER BY height, idx",
            (start,)).fetchall()
    except sqlite3.DatabaseError as err:
        raise LedgerError(f"cannot read blocks: {err}") from None
    finally:
        conn.text_factory = str
    by_height: dict[int, list[StoredTx]] = {}
    for height, idx, tx_id, body in tx_rows:
        if not isinstance(height, int) or not isinstance(idx, int):
            raise LedgerError(f"corrupt ledger: a transaction row has height {height!r:.20} and "
                              f"index {idx!r:.20}; both must be integers")
        by_height.setdefault(height, []).append(StoredTx(idx, _as_bytes(tx_id), _as_bytes(body)))
    out = []
    for height, hash_, header, votes in blocks:
        txs = tuple(by_height.pop(height, ()))
        out.append(StoredBlock(height, _as_bytes(hash_), _as_bytes(header), _as_bytes(votes), txs))
    for height, txs in sorted(by_height.items()):
        out.append(StoredBlock(height, b"", b"", b"", tuple(txs)))
    out.sort(key=lambda b: b.height)
    return out


def read_hashes(conn: sqlite3.Connection, start: int, stop: int) -> list[bytes]:
    """Stored hashes of heights ``start..stop - 1`` (the hash column only), in height order."""
    try:
        rows = conn.execute("SELECT hash FROM blocks WHERE height >= ? AND height < ? "
                            "ORDER BY height", (start, stop)).fetchall()
    except sqlite3.DatabaseError as err:
        raise LedgerError(f"cannot read block hashes: {err}") from None
    return [_as_bytes(h) for (h,) in rows]


def head_height(conn: sqlite3.Connection) -> int:
    """Height of the last stored block, or -1 for an empty store."""
    (height,) = conn.execute("SELECT COALESCE(MAX(height), -1) FROM blocks").fetchone()
    return height


def write_block(conn: sqlite3.Connection, block: StoredBlock) -> None:
    """Appends ``block`` and its transactions in ONE SQL transaction (all or nothing).

    Raises ``LedgerError`` if the head is no longer ``block.height - 1`` (another writer
    appended) or SQLite fails; the database is then unchanged.
    """
    write_blocks(conn, [block])


def write_blocks(conn: sqlite3.Connection, blocks: Sequence[StoredBlock]) -> None:
    """Appends consecutive ``blocks`` in ONE SQL transaction (all or nothing); see
    :func:`write_block`. Nothing is checked but the heights: verify what you write (bulk
    loading of already verified or benchmark chains)."""
    if not blocks:
        return
    first = blocks[0].height
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            fault_point("store.after_begin")
            head = head_height(conn)
            if head != first - 1:
                raise LedgerError(
                    f"ledger head is {head}, cannot append height {first}: another "
                    "writer changed the ledger; reopen it")
            for offset, block in enumerate(blocks):
                if block.height != first + offset:
                    raise LedgerError(f"block heights jump from {first + offset - 1} to "
                                      f"{block.height}")
                conn.execute("INSERT INTO blocks(height, hash, header, votes) "
                             "VALUES (?, ?, ?, ?)",
                             (block.height, block.hash, block.header, block.votes))
                fault_point("store.after_block_row")
                for tx in block.txs:
                    conn.execute("INSERT INTO txs(height, idx, tx_id, body) VALUES (?, ?, ?, ?)",
                                 (block.height, tx.index, tx.tx_id, tx.body))
                    fault_point("store.after_tx_row")
            fault_point("store.before_commit")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as err:
        raise LedgerError(f"cannot write block {first}: {err}") from None
    fault_point("store.after_commit")
