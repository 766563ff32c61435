"""A ledger is readable anywhere, and reading never writes (issue 10, fault 1).

A finished ledger copied to read-only media (a read-only bind mount, or a folder without write
permission) without its ``-wal``/``-shm`` files must verify with ``efl ledger verify`` and open
in the explorer; verifying a writable copy must leave no file behind; a closed ledger is one
self-contained file.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from efl_toolkit.explorer.ledger_backend import LedgerBackend
from efl_toolkit.ledger import Consortium, Ledger, LedgerError, ModelRegistry, open_ledger
from efl_toolkit.ledger.checkpoint import checkpoint_path

IDS = ["hospital-a", "hospital-b", "clinic-c"]


def make_ledger(path: Path) -> Consortium:
    consortium = Consortium.generate(IDS, seed=5)
    ledger = Ledger.create(path, consortium)
    reg = ModelRegistry(ledger)
    v = reg.model_commit("hospital-a", "cnn", b"w1", None, "cnn", {"accuracy": 0.7}, {})
    reg.model_commit("hospital-a", "cnn", b"w2", v, "cnn", {"accuracy": 0.8}, {})
    ledger.close()
    return consortium


def legacy_wal(path: Path) -> None:
    """Leaves a file in WAL mode at rest, as ledgers closed by older versions were."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    assert path.read_bytes()[18:20] == b"\x02\x02"


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def efl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "efl_toolkit.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(params=["delete-mode", "legacy-wal"])
def read_only_copy(request, tmp_path):
    """A finished ledger + artifacts copied (without -wal/-shm) to a read-only location."""
    src = tmp_path / "src"
    make_ledger(src / "ledger.sqlite")
    if request.param == "legacy-wal":
        legacy_wal(src / "ledger.sqlite")
    folder = Path(f"/tmp/efl-ro-{uuid.uuid4().hex[:8]}")
    staging = tmp_path / "staging"
    shutil.copytree(src, staging)
    for stale in staging.glob("*-wal"):
        stale.unlink()
    mounted = False
    if os.geteuid() == 0:
        folder.mkdir()
        ok = subprocess.run(["mount", "--bind", str(staging), str(folder)],
                            capture_output=True).returncode == 0
        ok = ok and subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)],
                                   capture_output=True).returncode == 0
        if not ok:
            subprocess.run(["umount", str(folder)], capture_output=True)
            folder.rmdir()
            pytest.skip("running as root without mount: cannot make read-only media")
        mounted = True
    else:
        shutil.copytree(staging, folder)
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
    assert not os.access(folder, os.W_OK)
    before = listing(folder)
    yield folder / "ledger.sqlite", before
    if mounted:
        subprocess.run(["umount", str(folder)], check=True)
        folder.rmdir()
    else:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(folder)


def test_efl_ledger_verify_works_on_read_only_media(read_only_copy):
    path, before = read_only_copy
    run = efl("ledger", "verify", str(path))
    assert run.returncode == 0, run.stderr
    assert "OK: 3 blocks (height 2)" in run.stdout
    assert "consistent with the checkpoint at height 2" in run.stdout
    assert run.stderr == ""
    for command in (["log", str(path)], ["show", str(path), "2"], ["checkpoint", str(path)]):
        run = efl("ledger", *command)
        assert run.returncode == 0, (command, run.stderr)
    assert listing(path.parent) == before


def test_the_explorer_opens_a_ledger_on_read_only_media(read_only_copy):
    path, before = read_only_copy
    backend = LedgerBackend(path)
    try:
        assert backend.height() == 2 and backend.verify().ok
        assert [i.id for i in backend.institutions()] == IDS
    finally:
        backend.close()
    assert listing(path.parent) == before


def test_a_writer_refuses_read_only_media_with_a_clear_message(read_only_copy):
    path, _ = read_only_copy
    with pytest.raises(LedgerError, match="cannot append: the file or its folder is not "
                                          "writable"):
        Ledger.open(path, Consortium.generate(IDS, seed=5))


@pytest.mark.parametrize("mode", ["delete-mode", "legacy-wal"])
def test_verifying_a_writable_copy_leaves_nothing_behind(tmp_path, mode):
    path = tmp_path / "copy" / "ledger.sqlite"
    make_ledger(path)
    if mode == "legacy-wal":
        legacy_wal(path)
    before = listing(path.parent)
    data = path.read_bytes()
    run = efl("ledger", "verify", str(path))
    assert run.returncode == 0, run.stderr
    view = open_ledger(path)
    assert view.report.ok
    view.close()
    backend = LedgerBackend(path)
    backend.verify()
    backend.close()
    assert listing(path.parent) == before
    assert path.read_bytes() == data


def test_a_closed_ledger_is_one_self_contained_file(tmp_path):
    path = tmp_path / "ledger.sqlite"
    consortium = make_ledger(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "artifacts", "ledger.sqlite", checkpoint_path(path).name]
    assert path.read_bytes()[18:20] == b"\x01\x01"  # rollback journal, not WAL
    ledger = Ledger.open(path, consortium)
    assert Path(f"{path}-wal").exists()  # WAL while a writer has it open
    ModelRegistry(ledger).tag(ledger.model_versions()[-1].version, "deployed")
    ledger.close()
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()
    assert path.read_bytes()[18:20] == b"\x01\x01"
