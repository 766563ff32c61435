"""The course session: one run folder cleaned up at exit, use_preset, and check cells."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from efl_toolkit.course import session
from efl_toolkit.course.session import CheckFailed, check, sweep_stale_runs, use_preset


def _run(code: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    environment.pop("EFL_WORKDIR", None)
    environment.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=environment, timeout=120)


def test_run_folder_is_one_per_session_and_gone_at_exit(tmp_path):
    done = _run("""
        from efl_toolkit.course import workdir
        run = workdir()
        assert workdir() == run and workdir("ledger").parent == run
        (workdir("ledger") / "ledger.sqlite").write_text("x")
        (run / "keys").mkdir()
        print(run)
        """, tmp_path)
    assert done.returncode == 0, done.stderr
    run = Path(done.stdout.strip())
    assert run.parent == tmp_path and run.name.startswith("efl-run-")
    assert not run.exists() and os.listdir(tmp_path) == []


def test_run_folder_under_efl_workdir_is_kept(tmp_path):
    chosen = tmp_path / "mine"
    done = _run("from efl_toolkit.course import workdir; print(workdir('demo'))", tmp_path,
                EFL_WORKDIR=str(chosen))
    assert done.returncode == 0, done.stderr
    demo = Path(done.stdout.strip())
    assert demo.is_dir() and demo.parent.parent == chosen


def test_a_killed_kernels_folder_is_swept_by_the_next_session(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f"efl-run-{dead}-abc"
    (stale / "ledger").mkdir(parents=True)
    alive = tmp_path / f"efl-run-{os.getpid()}-def"
    alive.mkdir()
    assert sweep_stale_runs(tmp_path) == [stale]
    assert not stale.exists() and alive.exists()


def test_workdir_names_are_plain_folder_names():
    for bad in ("../x", "a/b", "..", ""):
        with pytest.raises(ValueError, match="plain folder name"):
            session.workdir(bad)


def test_use_preset_sets_the_environment(monkeypatch):
    monkeypatch.delenv("EFL_PRESET", raising=False)
    assert use_preset("paper").name == "paper"
    assert os.environ["EFL_PRESET"] == "paper"
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        use_preset("huge")
    assert os.environ["EFL_PRESET"] == "paper"


def test_check_passes_quietly_and_fails_naming_the_claim(capsys):
    check(True, "the ledger verifies")
    assert capsys.readouterr().out == "check passed: the ledger verifies\n"
    with pytest.raises(CheckFailed, match=r"^check failed: the ledger verifies \(block 3\)$"):
        check(False, "the ledger verifies", "block 3")
    assert issubclass(CheckFailed, AssertionError)
