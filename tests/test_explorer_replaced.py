"""The explorer over a file that is replaced, deleted, or falls behind its checkpoint.

Issue 10, fault 2: with the widget open on ``out/ledger.sqlite``, re-running the experiment into
``out`` (delete and recreate the ledger) left the widget on the old chain, and *Verify chain*
reported "FAILED at height 1: artifact ... missing", a false tamper alarm. The widget must notice
that its path holds another ledger (or none) and reopen or say so plainly, also when it only
refreshes in the background. It also shows whether the ledger matches its last checkpoint.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from efl_toolkit.explorer import ExplorerWidget
from efl_toolkit.explorer.ledger_backend import LedgerBackend
from efl_toolkit.ledger import Consortium, Ledger, LedgerError, ModelRegistry, open_ledger

IDS = ["hospital-a", "hospital-b", "clinic-c"]


def run_experiment_into(out: Path, seed: int, n_commits: int) -> str:
    """What a re-run does to ``out``: delete the ledger and artifacts, create a new ledger."""
    path = out / "ledger.sqlite"
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)
    shutil.rmtree(out / "artifacts", ignore_errors=True)
    ledger = Ledger.create(path, Consortium.generate(IDS, seed=seed))
    reg = ModelRegistry(ledger)
    for i in range(n_commits):
        reg.model_commit("hospital-b", f"m{i}", f"{seed}-{i}".encode(), None, "mlp",
                         {"accuracy": 0.6}, {})
    head = ledger.head_hash
    ledger.close()
    return head


@pytest.fixture
def out(tmp_path):
    out = tmp_path / "out"
    run_experiment_into(out, seed=1, n_commits=4)
    return out


@pytest.fixture
def widget(out):
    w = ExplorerWidget(out / "ledger.sqlite", refresh_seconds=None)
    yield w
    w.close()


@pytest.mark.parametrize("n_commits", [2, 4, 6])  # shorter, as tall, taller than the old chain
def test_verify_after_a_rerun_reopens_the_new_ledger(widget, out, n_commits):
    assert widget.verify().ok and len(widget.rows) == 5
    head = run_experiment_into(out, seed=2, n_commits=n_commits)
    report = widget.verify()
    assert report.ok, report.summary  # no false tamper alarm
    assert report.n_blocks == n_commits + 1 and report.head == head
    assert [r.hash for r in widget.rows][-1] == head and len(widget.rows) == n_commits + 1
    assert "now holds another ledger" in widget.summary.value
    assert "verified" in widget.verify_status.value and "FAILED" not in widget.verify_status.value


def test_refresh_notices_a_replaced_file(widget, out):
    assert widget.verify().ok
    head = run_experiment_into(out, seed=3, n_commits=4)
    assert widget.refresh()
    assert widget.rows[-1].hash == head
    assert "now holds another ledger" in widget.summary.value
    assert widget.last_report is None  # the old verdict was about another ledger
    assert "not verified yet" in widget.verify_status.value


def test_live_refresh_notices_a_replaced_file(out):
    w = ExplorerWidget(out / "ledger.sqlite", refresh_seconds=0.1)
    try:
        head = run_experiment_into(out, seed=4, n_commits=3)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (not w.rows or w.rows[-1].hash != head):
            time.sleep(0.05)
        assert w.rows[-1].hash == head and len(w.rows) == 4
        assert "now holds another ledger" in w.summary.value
        assert w.error is None
    finally:
        w.close()


def test_a_deleted_ledger_is_said_plainly(widget, out):
    rows = list(widget.rows)
    (out / "ledger.sqlite").unlink()
    shutil.rmtree(out / "artifacts")
    widget.refresh()
    assert widget.rows == rows  # the last snapshot stays on screen
    assert "no longer exists" in widget.summary.value
    with pytest.raises(LedgerError, match="cannot verify: .* no longer exists"):
        widget.verify()
    assert widget.last_report is None
    assert "FAILED" not in widget.verify_status.value
    assert "no longer exists" in widget.verify_status.value
    # the experiment writes a ledger there again: the widget comes back to it
    head = run_experiment_into(out, seed=5, n_commits=1)
    assert widget.verify().ok and widget.rows[-1].hash == head


def test_a_ledger_replaced_by_a_non_ledger_file(widget, out):
    path = out / "ledger.sqlite"
    path.unlink()
    path.write_text("not a ledger")
    widget.refresh()
    assert "not a ledger" in widget.summary.value
    with pytest.raises(LedgerError, match="not a ledger"):
        widget.verify()


def test_the_explorer_shows_the_checkpoint_verdict(widget, out, tmp_path):
    assert "consistent with the checkpoint at height 4" in widget.summary.value
    assert widget.checkpoint_ok is True
    conn = sqlite3.connect(out / "ledger.sqlite")  # someone deletes the newest block
    conn.execute("DELETE FROM txs WHERE height = 4")
    conn.execute("DELETE FROM blocks WHERE height = 4")
    conn.commit()
    conn.close()
    widget.refresh()
    assert widget.checkpoint_ok is False
    assert "TRUNCATED" in widget.summary.value and "blocks 4..4 are missing" in \
        widget.summary.value
    assert widget.verify().ok  # the chain alone still verifies: only the checkpoint tells


def test_backend_without_checkpoint(out):
    (out / "ledger.sqlite.checkpoint").unlink()
    backend = LedgerBackend(out / "ledger.sqlite")
    try:
        assert backend.checkpoint_status() == (None, "no checkpoint next to the ledger")
    finally:
        backend.close()
    assert open_ledger(out / "ledger.sqlite").stored_checkpoint() is None
