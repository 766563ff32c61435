"""Crash safety by fault injection, not luck: a real writer subprocess is stopped (``os._exit``)
at every named fault point of a block write, an atomic file write (artifacts, checkpoints) and
the model registry's multi-block operations, at its 1st, 2nd and 3rd hit. Each time the ledger
must reopen and verify at the height the writer last reported or one more, agree with its
checkpoint, keep every artifact the chain references intact, and leave no temporary file once a
writer reopened it. The points are read from ``faults.POINTS``: a new point is covered here
automatically, and a ``fault_point("...")`` call that is not registered fails
``test_every_fault_point_in_the_sources_is_registered``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from efl_toolkit.atomic import _temp_prefix, remove_stale_temporaries
from efl_toolkit.ledger import Consortium, Ledger, artifacts_dir, faults, open_ledger

MEMBERS = ["hospital-a", "hospital-b", "clinic-c"]
ROOT = Path(__file__).resolve().parents[1]

# The registry's multi-block operations: an artifact + block, a block of three transactions
# (two artifacts and a tag), then a round started and finished in two more blocks. The writer
# prints the height after every block it saw committed.
CHILD = r"""
import sys
from efl_toolkit.ledger import Ledger, ModelRegistry

ledger = Ledger.open(sys.argv[1])
reg = ModelRegistry(ledger)
print(ledger.height, flush=True)
v1 = reg.model_commit("hospital-a", "net", b"a1" * 100, None, "mlp", {"acc": 0.5}, {})
print(ledger.height, flush=True)
vb = reg.model_commit("hospital-b", "net", b"b1" * 3000, None, "mlp", {"acc": 0.6}, {},
                      commit=False)
reg.model_commit("clinic-c", "net", b"c1" * 3000, None, "mlp", {"acc": 0.7}, {}, commit=False)
reg.tag(v1, "deployed", commit=False)
ledger.commit_block()
print(ledger.height, flush=True)
reg.start_round("clinic-c", "round-1", [v1, vb], {"parties": 3})
print(ledger.height, flush=True)
reg.finish_round("clinic-c", "round-1", "ef" * 32, {"acc": 0.8})
print(ledger.height, flush=True)
"""

CASES = [f"{point}@{hit}" for point in sorted(faults.POINTS) for hit in (1, 2, 3)]


def _temporaries(path: Path) -> list[str]:
    return sorted(p.name for folder in (path.parent, artifacts_dir(path)) if folder.is_dir()
                  for p in folder.iterdir() if ".tmp-" in p.name or p.name.endswith(".creating"))


@pytest.mark.parametrize("fault", CASES)
def test_a_writer_stopped_at_a_fault_point_leaves_a_verifiable_ledger(tmp_path, fault):
    path = tmp_path / "ledger.sqlite"
    consortium = Consortium.generate(MEMBERS, seed=5)
    Ledger.create(path, consortium, save_keys=True).close()
    env = {**os.environ, faults.ENV: fault, "PYTHONDONTWRITEBYTECODE": "1"}
    child = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True,
                           text=True, env=env, timeout=120)
    assert child.returncode == faults.FAULT_EXIT, (fault, child.returncode, child.stderr[-2000:])
    assert f"efl fault point {fault.split('@')[0]}" in child.stderr
    committed = int(child.stdout.split()[-1])
    with open_ledger(path) as view:
        assert view.report.ok, (fault, view.report.summary())
        assert committed <= view.height <= committed + 1, (fault, committed, view.height)
        assert [h.height for h in view.headers()] == list(range(view.height + 1))
        for version in view.state.versions:  # every artifact the chain references is intact
            assert view.artifacts.problem(version) is None, (fault, version)
        for file in artifacts_dir(path).glob("[0-9a-f]*"):  # and no file is half of one
            assert view.artifacts.problem(file.name) is None, (fault, file.name)
        verdict = view.check_checkpoint(view.stored_checkpoint())
        assert verdict.ok, (fault, verdict.message)
        assert verdict.checkpoint_height in (view.height, view.height - 1), fault
    writer = Ledger.open(path, consortium)  # a writer carries on and sweeps the leftovers
    assert _temporaries(path) == [], fault
    writer.commit_block()
    writer.close()
    with open_ledger(path) as view:
        assert view.report.ok and view.check_checkpoint(view.stored_checkpoint()).ok


def test_every_fault_point_in_the_sources_is_registered():
    used: set[str] = set()
    for source in (ROOT / "efl_toolkit").rglob("*.py"):
        if source.name == "faults.py":  # its docstring explains the call
            continue
        used |= set(re.findall(r"fault_point\(\"([^\"]+)\"\)", source.read_text()))
    assert used == set(faults.POINTS)


def test_a_bad_fault_setting_is_one_clear_line():
    with pytest.raises(ValueError, match="unknown fault point 'store.nowhere'"):
        faults._parse("store.nowhere")
    with pytest.raises(ValueError, match="integer >= 1"):
        faults._parse("store.after_commit@0")
    assert faults._parse("") == (None, 0)
    assert faults._parse("atomic.before_rename@2") == ("atomic.before_rename", 2)


def test_only_a_dead_writers_temporaries_are_swept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / (_temp_prefix("ledger.sqlite.checkpoint", int(dead.stdout)) + "x1")
    live = tmp_path / (_temp_prefix("artifact") + "x2")
    other = tmp_path / "notes.tmp-1-x"  # not a hidden temporary of write_bytes_atomic
    for file in (stale, live, other):
        file.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
    assert remove_stale_temporaries(tmp_path / "missing") == []
