"""``efl ledger verify|log|show`` through the real ``efl`` entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

from efl_toolkit.cli import main as efl
from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry
from efl_toolkit.ledger.tamper import copy_for_tamper, tamper


@pytest.fixture
def ledger_path(tmp_path):
    path = tmp_path / "out" / "ledger.sqlite"
    ledger = Ledger.create(path, Consortium.generate(["hospital-a", "hospital-b", "clinic-c"],
                                                     seed=2))
    reg = ModelRegistry(ledger)
    v1 = reg.model_commit("hospital-a", "cnn", b"a1", None, "cnn", {"accuracy": 0.7}, {})
    v2 = reg.model_commit("hospital-a", "cnn", b"a2", v1, "cnn", {"accuracy": 0.8}, {})
    vb = reg.model_commit("hospital-b", "mlp", b"b1", None, "mlp", {"accuracy": 0.6}, {})
    reg.tag(v2, "deployed")
    reg.start_round("clinic-c", "round-1", [v2, vb], {"parties": 3})
    ledger.close()
    return path, (v1, v2, vb)


def test_verify_ok(ledger_path, capsys):
    path, _ = ledger_path
    assert efl(["ledger", "verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK: 6 blocks (height 5), 8 transactions verified" in out
    assert "hospital-a, hospital-b, clinic-c" in out


@pytest.mark.parametrize(("kind", "check"), [("edit_payload", "merkle root"),
                                             ("edit_header", "hash link"),
                                             ("rewrite_history", "signature"),
                                             ("drop_votes", "quorum"),
                                             ("corrupt_artifact", "artifact hash")])
def test_verify_names_the_first_bad_height_and_check(ledger_path, tmp_path, capsys, kind, check):
    path, _ = ledger_path
    scratch = copy_for_tamper(path, tmp_path / "scratch" / "ledger.sqlite")
    tamper(scratch, kind, 2)
    assert efl(["ledger", "verify", str(scratch)]) == 1
    assert f"FAILED at height 2: {check}:" in capsys.readouterr().out


def test_verify_rejects_a_non_ledger_file(tmp_path, capsys):
    junk = tmp_path / "notes.sqlite"
    junk.write_text("hello")
    assert efl(["ledger", "verify", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("efl ledger verify: error: ") and "notes.sqlite" in err


def test_log_is_newest_first_and_filters(ledger_path, capsys):
    path, (v1, v2, vb) = ledger_path
    assert efl(["ledger", "log", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.index(vb) < out.index(v2) < out.index(f"version {v1}")
    assert f"version {v2} (deployed)" in out and f"parent:      {v1}" in out
    assert efl(["ledger", "log", str(path), "--institution", "hospital-b"]) == 0
    out = capsys.readouterr().out
    assert vb in out and v1 not in out
    assert efl(["ledger", "log", str(path), "--institution", "nobody"]) == 2
    assert "unknown institution 'nobody'" in capsys.readouterr().err


def test_show_decodes_a_block(ledger_path, capsys):
    path, (_, _, vb) = ledger_path
    assert efl(["ledger", "show", str(path), "3"]) == 0
    out = capsys.readouterr().out
    assert "block 3" in out and "MODEL_COMMIT from hospital-b" in out and vb in out
    assert "signature ok" in out and "merkle root    ok" in out
    assert efl(["ledger", "show", str(path), "42"]) == 2
    assert "no block at height 42" in capsys.readouterr().err


def test_console_script_exit_codes(ledger_path):
    path, _ = ledger_path
    run = subprocess.run([sys.executable, "-m", "efl_toolkit.cli", "ledger", "verify", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "OK:" in run.stdout
