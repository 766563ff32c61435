"""Ledger teaching helpers (efl_toolkit.ledger.teaching): real models committed to a real SQLite
ledger, attacks on scratch copies, the ``efl`` command in a subprocess, and the figures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from flax import nnx

from efl_toolkit.data.institution import CapacityProfile, Institution
from efl_toolkit.data.medmnist import Split
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
    commit_model,
    edited,
    efl_command,
    plot_chain,
    plot_tamper_grid,
    run_efl,
    tamper_demo,
    tamper_rows,
)
from efl_toolkit.models import build_model
from efl_toolkit.training import evaluate, predict_proba
from efl_toolkit.training.serialize import params_from_bytes, version_hash

MEMBERS = ["hospital-a", "hospital-b", "clinic-c"]
SHAPE = (8, 8, 1)

#: Which check must catch each attack (on a block holding a model commit).
EXPECTED_CHECK = {"edit_payload": "merkle root", "rewrite_history": "signature",
                  "edit_header": "hash link", "drop_votes": "quorum",
                  "corrupt_artifact": "artifact hash", "delete_block": "encoding"}


def _institution(inst_id: str, seed: int, one_class_val: bool = False) -> Institution:
    rng = np.random.default_rng(seed)
    train = Split(rng.random((30, *SHAPE), dtype=np.float32), rng.integers(0, 2, 30))
    val_labels = np.zeros(12, dtype=np.int64) if one_class_val else np.arange(12) % 2
    val = Split(rng.random((12, *SHAPE), dtype=np.float32), val_labels)
    return Institution(inst_id, train, val, CapacityProfile.preset("small"))


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A ledger with two versions of a real model at hospital-a (blocks 1 and 2) and a round."""
    path = tmp_path_factory.mktemp("chain") / "ledger.sqlite"
    ledger = Ledger.create(path, Consortium.generate(MEMBERS, seed=1))
    registry = ModelRegistry(ledger)
    inst = _institution("hospital-a", 0)
    m1 = build_model("logistic", SHAPE, 2, nnx.Rngs(0))
    m2 = build_model("logistic", SHAPE, 2, nnx.Rngs(1))
    v1 = commit_model(registry, inst, m1, architecture="logistic", n_classes=2,
                      model_id="line-a")
    v2 = commit_model(registry, inst, m2, architecture="logistic", n_classes=2, parent=v1,
                      model_id="line-a")
    registry.start_round("hospital-b", "r1", [v2], {"parties": 3})
    ledger.close()
    return {"path": path, "inst": inst, "models": (m1, m2), "versions": (v1, v2)}


def test_commit_model_records_the_real_parameters_and_validation_scores(chain):
    m1, m2 = chain["models"]
    v1, v2 = chain["versions"]
    inst = chain["inst"]
    assert (v1, v2) == (version_hash(m1), version_hash(m2))
    with open_ledger(chain["path"]) as view:
        assert view.report.ok
        registry = ModelRegistry(view)
        record = registry.get(v2)
        scores = evaluate(predict_proba(m2, inst.val.images), inst.val.labels, 2)
        assert record.metrics == {"val_accuracy": round(scores.accuracy, 6),
                                  "val_auc": round(scores.auc, 6)}
        assert record.data_summary == {"n_train": 30, "n_val": 12,
                                       "class_counts": inst.train.class_counts(2).tolist()}
        assert (record.parent, record.architecture, record.model_id) == (v1, "logistic",
                                                                          "line-a")
        assert registry.get(v1).parent is None
        restored = params_from_bytes(build_model("logistic", SHAPE, 2, nnx.Rngs(7)),
                                     registry.checkout(v2))
        assert version_hash(restored) == v2


def test_commit_model_leaves_out_an_undefined_auc_and_can_batch(tmp_path):
    ledger = Ledger.create(tmp_path / "l.sqlite", Consortium.generate(MEMBERS, seed=2))
    registry = ModelRegistry(ledger)
    single_class = _institution("clinic-c", 3, one_class_val=True)
    model = build_model("mlp", SHAPE, 2, nnx.Rngs(0))
    version = commit_model(registry, single_class, model, architecture="mlp", n_classes=2,
                           commit=False)
    assert ledger.height == 0 and len(ledger.pending) == 1
    ledger.commit_block()
    assert set(registry.get(version).metrics) == {"val_accuracy"}
    with pytest.raises(TransactionRejected, match="membership"):
        commit_model(registry, _institution("intruder", 4), model, architecture="mlp",
                     n_classes=2)
    ledger.close()


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
    assert missing.returncode == 1 and "no such ledger file" in missing.stderr


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
