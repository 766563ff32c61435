"""Writing a file so that a crash leaves the old file or the new one, never half of one.

Every writer in the toolkit that must survive a crash goes through :func:`write_bytes_atomic`: a
temporary file in the same folder, ``fsync``, ``os.replace`` (atomic on POSIX), then an
``fsync`` of the folder so the rename itself is durable. Status files that are rewritten many
times a second skip the fsyncs (``durable=False``) but stay atomic.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> path = write_json_atomic(Path(tempfile.mkdtemp()) / "status.json", {"stage": "done"})
    >>> json.loads(path.read_text())
    {'stage': 'done'}
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path


def _default_file_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


#: Permissions of a new file under this process's umask (read at import).
_FILE_MODE = _default_file_mode()


def fsync_directory(directory: str | os.PathLike) -> None:
    """Makes a rename or a new file in ``directory`` durable (fsync of the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Replaces ``path`` by ``data`` atomically; with ``durable`` also crash-safe on disk.

    Raises:
        OSError: The folder is missing or not writable (the old file is untouched and no
            temporary file is left behind).
    """
    from efl_toolkit.ledger.faults import fault_point  # here: the ledger package imports us

    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)          # as open() would create it, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            fault_point("atomic.after_temp_write")
            if durable:
                f.flush()
                os.fsync(f.fileno())
        fault_point("atomic.before_rename")
        os.replace(tmp, path)
        fault_point("atomic.after_rename")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)
    return path


def _temp_prefix(name: str, pid: int | None = None) -> str:
    """``.<name>.tmp-<pid>-``: the writer's pid tells a live writer's file from a dead one's."""
    return f".{name}.tmp-{os.getpid() if pid is None else pid}-"


_TEMP = re.compile(r"^\..+\.tmp-(\d+)-[^/]*$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Deletes the temporary files that writers killed mid-write left in ``directory``.

    A crash between :func:`write_bytes_atomic`'s temporary file and its rename leaves
    ``.<name>.tmp-<pid>-XXXX`` behind (never a half file under ``name``). Files of a process
    that is still running are kept (it may be about to rename them); so are files of the old
    naming without a pid. Returns the deleted paths (none if ``directory`` does not exist).
    """
    folder = Path(directory)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = _TEMP.match(entry.name)
        if match and entry.is_file() and not _alive(int(match.group(1))):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def write_text_atomic(path: str | os.PathLike, text: str, *, durable: bool = True) -> Path:
    """:func:`write_bytes_atomic` of UTF-8 text (newlines written as given)."""
    return write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_json_atomic(path: str | os.PathLike, payload: dict, *, durable: bool = False) -> Path:
    """:func:`write_bytes_atomic` of one JSON document (status and result files)."""
    return write_bytes_atomic(path, json.dumps(payload).encode("utf-8"), durable=durable)
