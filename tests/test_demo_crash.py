"""``efl demo`` killed (SIGKILL) at random moments, five times into the same ``--out``, then run
again (issue 10, fault 8): the last run finishes and its ledger verifies, no lock is left held,
no party process outlives its killed parent, and a report is never half-written or left over
from another run.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time

import psutil
import pytest

from efl_toolkit.cli import out_dir_lock
from efl_toolkit.ledger import open_ledger

REPORT_KEYS = {"dataset", "institutions", "ensembles", "baselines", "ledger", "timings"}


def demo(out) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "efl_toolkit.cli", "demo", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def check_report_is_complete_or_absent(out) -> None:
    report = out / "report.json"
    if report.exists():  # only ever the whole file of a run that finished
        data = json.loads(report.read_text())
        assert set(data) >= REPORT_KEYS
        assert (out / "report.md").exists()
        assert data["ledger"]["head"] == open_ledger(out / "ledger.sqlite").head_hash


@pytest.mark.slow
def test_five_kills_then_a_clean_run(tmp_path):
    out = tmp_path / "out"
    rng = random.Random(10)
    moments = sorted(rng.uniform(1.0, 40.0) for _ in range(4))
    moments.insert(2, None)      # None: the moment the committee's processes are up (no luck)
    seen_parties = 0
    for moment in moments:
        proc = demo(out)
        parent = psutil.Process(proc.pid)
        children: dict[int, psutil.Process] = {}
        parties: set[int] = set()
        deadline = time.monotonic() + (300 if moment is None else moment)
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # remember every descendant (party processes come and go)
                for child in parent.children(recursive=True):
                    if child.pid not in children and _is_party(child):
                        parties.add(child.pid)
                    children.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                break
            if moment is None and len(parties) >= 3:
                break
            time.sleep(0.1)
        if moment is None and len(parties) < 3:
            ended = proc.poll()
            detail = proc.stderr.read()[-3000:] if ended is not None else "still running"
            pytest.fail(f"the committee never started (party processes seen: {len(parties)}, "
                        f"demo exit code {ended}): {detail}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        seen_parties += len(parties)
        _, alive = psutil.wait_procs(list(children.values()), timeout=20)
        assert not alive, f"orphans after a kill at {moment:.1f} s: {[c.pid for c in alive]}"
        check_report_is_complete_or_absent(out)
        with out_dir_lock(str(out)):  # never a stale lock: the kernel released it
            pass
    assert seen_parties > 0, "no kill landed while party processes were running"

    start = time.monotonic()
    final = demo(out)
    _, err = final.communicate(timeout=900)
    assert final.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    check_report_is_complete_or_absent(out)
    report = json.loads((out / "report.json").read_text())
    assert report["ledger"]["verified"] is True
    verify = subprocess.run([sys.executable, "-m", "efl_toolkit.cli", "ledger", "verify",
                             str(out / "ledger.sqlite"), "--genesis", report["ledger"]["genesis"]],
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "consistent with the checkpoint" in verify.stdout
    leftovers = [p.name for p in out.iterdir() if ".tmp" in p.name or p.name.endswith(
        ("-wal", "-shm", ".creating"))]
    assert not leftovers
    fd = os.open(out / ".efl-demo.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # not held by anyone
    finally:
        os.close(fd)
    print(f"final run {time.monotonic() - start:.1f} s after kills at "
          f"{', '.join('committee up' if m is None else f'{m:.1f}' for m in moments)} s; "
          f"{seen_parties} party processes seen")


def _is_party(proc: psutil.Process) -> bool:
    try:
        return "party" in proc.cmdline()
    except psutil.Error:
        return False


def test_prepare_out_dir_clears_what_a_killed_run_left(tmp_path):
    from efl_toolkit.pipeline import prepare_out_dir

    left = ["report.json", "report.md", ".report.json.tmp-123", "ledger.sqlite",
            "ledger.sqlite-wal", "ledger.sqlite-shm", "ledger.sqlite.creating",
            "ledger.sqlite.checkpoint", "ledger.sqlite.checkpoint.tmp-99"]
    for name in left:
        (tmp_path / name).write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    assert prepare_out_dir(tmp_path) == tmp_path / "ledger.sqlite"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_report_files_are_replaced_atomically(tmp_path, monkeypatch):
    from efl_toolkit import atomic, report

    target = tmp_path / "report.json"
    target.write_text('{"complete": "old run"}')

    def crash(*args):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(atomic.os, "replace", crash)
    with pytest.raises(OSError):
        report.write_text_atomic(target, '{"complete": "new run", "half": ')
    assert target.read_text() == '{"complete": "old run"}'  # never half of the new one
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left


def test_files_written_atomically_get_the_usual_permissions(tmp_path):
    from efl_toolkit.atomic import write_text_atomic

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = write_text_atomic(tmp_path / "report.json", "{}")
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_sigterm_during_the_groups_cleans_up_processes_and_shares(tmp_path, make_npz):
    """`kill PID` while the committee is up: exit 143, no compute party left, no share folder."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    npz = make_npz(sizes=(90, 24, 30))
    proc = subprocess.Popen([sys.executable, "-m", "efl_toolkit.cli", "demo", "--dataset",
                             str(npz), "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(temp)})
    deadline = time.monotonic() + 240
    while not list(temp.glob("efl-committee-*/inbox_0")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    parties = psutil.Process(proc.pid).children(recursive=True)
    assert parties, "the committee should be running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    proc.stderr.close()
    assert not list(temp.glob("efl-committee-*"))
    gone, alive = psutil.wait_procs(parties, timeout=10)
    assert not alive, alive
