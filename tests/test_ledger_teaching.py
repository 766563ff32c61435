"""Ledger teaching helpers (efl_toolkit.ledger.teaching): attacks on scratch copies of a real
SQLite ledger, the ``efl`` command in a subprocess, and the figures. (Committing real models:
tests/test_record.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from efl_toolkit.ledger import (
    Consortium,
    Ledger,
    LedgerError,
    ModelRegistry,
    Transaction,
    TransactionRejected,
    open_ledger,
)
from efl_toolkit.ledger.tamper import TAMPER_KINDS
from efl_toolkit.ledger.teaching import (
    edited,
    efl_command,
    plot_chain,
    plot_tamper_grid,
    run_efl,
    tamper_demo,
    tamper_rows,
)

MEMBERS = ["hospital-a", "hospital-b", "clinic-c"]

#: Which check must catch each attack (on a block holding a model commit).
EXPECTED_CHECK = {"edit_payload": "merkle root", "rewrite_history": "signature",
                  "edit_header": "hash link", "drop_votes": "quorum",
                  "corrupt_artifact": "artifact hash", "delete_block": "encoding"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A ledger with two versions of a model at hospital-a (blocks 1 and 2) and a round."""
    path = tmp_path_factory.mktemp("chain") / "ledger.sqlite"
    ledger = Ledger.create(path, Consortium.generate(MEMBERS, seed=1))
    registry = ModelRegistry(ledger)
    v1 = registry.model_commit("hospital-a", "line-a", b"weights-1", None, "logistic",
                               {"val_accuracy": 0.6}, {"n_train": 30})
    v2 = registry.model_commit("hospital-a", "line-a", b"weights-2", v1, "logistic",
                               {"val_accuracy": 0.7}, {"n_train": 30})
    registry.start_round("hospital-b", "r1", [v2], {"parties": 3})
    ledger.close()
    return {"path": path, "versions": (v1, v2)}


def test_edited_keeps_the_old_signature_and_the_ledger_refuses_it(chain, tmp_path):
    path = tmp_path / "copy" / "ledger.sqlite"
    path.parent.mkdir()
    shutil.copy(chain["path"], path)
    shutil.copytree(chain["path"].parent / "artifacts", path.parent / "artifacts")
    ledger = Ledger.open(path, Consortium.generate(MEMBERS, seed=1))
    tx = Transaction.from_bytes(ledger.inclusion_proof(
        ledger.block(3).transactions[0].tx_id).leaf)
    key = ledger.state.members[tx.sender].public_key
    assert tx.signature_ok(key)
    forged = edited(tx, protocol={"parties": 5})
    assert forged.payload["protocol"] == {"parties": 5} and forged.signature == tx.signature
    assert not forged.signature_ok(key)
    with pytest.raises(ValueError, match=r"has no field\(s\) \['nonsense'\]"):
        edited(tx, nonsense=1)
    with pytest.raises(TransactionRejected):
        ledger.submit(forged)
    ledger.close()


def test_efl_command_is_this_environment_and_run_efl_verifies(chain):
    command = efl_command()
    assert Path(command[0]).parent == Path(__import__("sys").executable).parent
    good = run_efl("ledger", "verify", chain["path"])
    assert good.returncode == 0 and "OK: 4 blocks" in good.stdout
    missing = run_efl("ledger", "verify", chain["path"].parent / "nope.sqlite")
    assert missing.returncode == 2 and "no such ledger file" in missing.stderr


def test_tamper_demo_catches_every_attack_and_keeps_the_original(chain, tmp_path):
    attacks = [(kind, 2) for kind in TAMPER_KINDS]
    demos = tamper_demo(chain["path"], attacks, tmp_path / "scratch")
    assert [d.kind for d in demos] == list(TAMPER_KINDS)
    for demo in demos:
        assert demo.first_failure == (2, EXPECTED_CHECK[demo.kind]), demo.report.summary()
        assert demo.original_ok and demo.description
        assert demo.scratch_path.exists() and demo.scratch_path.parent.parent == \
            tmp_path / "scratch"
        problems = dict(demo.blocks)
        assert problems[0] is None and problems[1] is None
        if demo.kind == "delete_block":
            assert 2 not in problems and problems[3].startswith("encoding")
        else:
            assert problems[2].startswith(EXPECTED_CHECK[demo.kind])
    rewritten = next(d for d in demos if d.kind == "rewrite_history")
    assert dict(rewritten.blocks)[3].startswith("hash link")  # the next block's link broke
    assert len({d.scratch_path for d in demos}) == len(demos)
    with open_ledger(chain["path"]) as view:
        assert view.report.ok and view.height == 3
    # the command line sees the same
    failed = run_efl("ledger", "verify", rewritten.scratch_path)
    assert failed.returncode == 1 and "FAILED at height 2: signature" in failed.stdout
    rows = tamper_rows(demos)
    assert rows[0] == {"attack": "edit_payload", "block": 2, "detected at": 2,
                       "check": "merkle root", "original ok": True}


def test_tamper_demo_refuses_bad_requests(chain, tmp_path):
    with pytest.raises(ValueError, match="unknown attack 'melt'"):
        tamper_demo(chain["path"], [("melt", 1)], tmp_path)
    with pytest.raises(LedgerError, match="no block at height 9"):
        tamper_demo(chain["path"], [("edit_payload", 9)], tmp_path / "s")
    tamper_demo(chain["path"], [("edit_payload", 1)], tmp_path / "again")
    with pytest.raises(LedgerError, match="already exists"):   # never overwrites a copy
        tamper_demo(chain["path"], [("edit_payload", 1)], tmp_path / "again")


def test_figures_show_verdicts(chain, tmp_path):
    demos = tamper_demo(chain["path"], [("drop_votes", 1), ("delete_block", 3)], tmp_path)
    fig = plot_tamper_grid(demos)
    ax = fig.axes[0]
    assert len(ax.patches) == 2 * 4                   # attacks x blocks 0..3
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("quorum") == 1 and texts.count("gone") == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == ["drop_votes", "delete_block"]
    with open_ledger(chain["path"]) as view:
        chain_fig = plot_chain(view, per_row=2)
    boxes = [p for p in chain_fig.axes[0].patches if p.__class__.__name__ == "Rectangle"]
    assert len(boxes) == 4
    assert not any("FAILED" in t.get_text() for t in chain_fig.axes[0].texts)
    with open_ledger(demos[0].scratch_path) as view:
        bad = plot_chain(view)
    assert sum("FAILED" in t.get_text() for t in bad.axes[0].texts) == 1
    with pytest.raises(ValueError, match="no tamper results"):
        plot_tamper_grid([])
