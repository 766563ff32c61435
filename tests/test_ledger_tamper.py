"""Tamper evidence: any single flipped byte of any stored block, transaction or artifact is
detected at the right height; each named attack is caught by the check that should catch it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from efl_toolkit.ledger import Consortium, Ledger, LedgerError, ModelRegistry, open_ledger
from efl_toolkit.ledger.tamper import (
    TAMPER_KINDS,
    copy_for_tamper,
    tamper,
    tamper_byte,
    tamper_targets,
)

MEMBERS = ["hospital-a", "hospital-b", "clinic-c"]


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """A small ledger with every transaction type, artifacts and an empty block."""
    path = tmp_path_factory.mktemp("original") / "ledger.sqlite"
    ledger = Ledger.create(path, Consortium.generate(MEMBERS, seed=3), names={
        "hospital-a": "Hôpital A"})
    reg = ModelRegistry(ledger)
    v1 = reg.model_commit("hospital-a", "cnn", b"\x00weights-a1" * 20, None, "cnn",
                          {"accuracy": 0.71, "auc": 0.8}, {"n_train": 120, "classes": [60, 60]})
    v2 = reg.model_commit("hospital-a", "cnn", b"\x00weights-a2" * 20, v1, "cnn",
                          {"accuracy": 0.74, "auc": 0.82}, {"n_train": 120})
    vb = reg.model_commit("hospital-b", "mlp", b"weights-b", None, "mlp", {"accuracy": 0.6},
                          {"n_train": 90}, commit=False)
    reg.tag(v2, "deployed", commit=False)
    ledger.commit_block()
    ledger.commit_block()  # an empty block
    reg.start_round("clinic-c", "round-1", [v2, vb], {"parties": 3, "fixed_point_bits": 16})
    reg.finish_round("clinic-c", "round-1", "ef" * 32, {"accuracy": 0.8})
    ledger.close()
    assert open_ledger(path).report.ok
    return path


@pytest.fixture(scope="module")
def targets(original):
    return tamper_targets(original)


def test_targets_cover_blocks_transactions_and_artifacts(targets, original):
    kinds = {(t.kind, t.column if t.kind != "artifact" else "file") for t in targets}
    assert kinds == {("block", "hash"), ("block", "header"), ("block", "votes"),
                     ("tx", "tx_id"), ("tx", "body"), ("artifact", "file")}
    assert {t.height for t in targets} == set(range(open_ledger(original).height + 1))


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_flipped_byte_is_detected_at_its_height(original, targets, tmp_path_factory, data):
    target = data.draw(st.sampled_from(targets), label="target")
    offset = data.draw(st.integers(0, target.length - 1), label="offset")
    # 0x20 flips letter case: 'a' -> 'A' is still valid hex and must be caught too
    mask = data.draw(st.one_of(st.sampled_from([0x01, 0x20, 0x80]), st.integers(1, 255)),
                     label="xor mask")
    scratch = copy_for_tamper(original, tmp_path_factory.mktemp("flip") / "ledger.sqlite")
    tamper_byte(scratch, target, offset, mask)
    with open_ledger(scratch) as view:
        report = view.report
        assert not report.ok, (target, offset, mask)
        assert report.height == target.height, (target, report)
        assert not view.checks(target.height).ok
    shutil.rmtree(scratch.parent)


EXPECTED_CHECK = {
    "edit_payload": "merkle root",
    "rewrite_history": "signature",
    "edit_header": "hash link",
    "drop_votes": "quorum",
    "corrupt_artifact": "artifact hash",
    "delete_block": "encoding",
}


@pytest.mark.parametrize("kind", sorted(TAMPER_KINDS))
def test_each_attack_is_caught_by_the_right_check(original, tmp_path, kind):
    scratch = copy_for_tamper(original, tmp_path / "scratch" / "ledger.sqlite")
    description = tamper(scratch, kind, 1)
    assert "block 1" in description
    report = open_ledger(scratch).report
    assert (report.height, report.check) == (1, EXPECTED_CHECK[kind]), report.summary()
    assert open_ledger(original).report.ok  # the original is untouched


def test_rewrite_history_also_breaks_the_votes_and_the_next_link(original, tmp_path):
    scratch = copy_for_tamper(original, tmp_path / "s" / "ledger.sqlite")
    tamper(scratch, "rewrite_history", 2)
    view = open_ledger(scratch)
    checks = view.checks(2)
    assert [c.check for c in checks.results if c.ok is False] == ["signature", "quorum"]
    assert checks.get("merkle root").ok and checks.get("hash link").ok
    assert view.checks(3).get("hash link").ok is False
    assert view.block(2).transactions[0].signature_ok is False


def test_tampering_refuses_anything_but_a_scratch_copy(original, tmp_path):
    with pytest.raises(LedgerError, match="not a scratch copy"):
        tamper(original, "edit_header", 1)
    with pytest.raises(LedgerError, match="another directory"):
        copy_for_tamper(original, original.with_name("copy.sqlite"))
    scratch = copy_for_tamper(original, tmp_path / "s" / "ledger.sqlite")
    with pytest.raises(LedgerError, match="already exists"):
        copy_for_tamper(original, scratch)
    with pytest.raises(LedgerError, match="unknown tamper kind"):
        tamper(scratch, "bribe", 1)
    with pytest.raises(LedgerError, match="no transaction to edit"):
        tamper(scratch, "edit_payload", 4)  # the empty block
    assert open_ledger(original).report.ok and open_ledger(scratch).report.ok
