"""Model version control (commit, checkout, history, diff, tags, lineage) and audit queries."""

from __future__ import annotations

import numpy as np
import pytest

from efl_toolkit.ledger import (
    ArtifactError,
    Audit,
    Consortium,
    Ledger,
    LedgerError,
    ModelRegistry,
    hash_array,
    open_ledger,
    pack_arrays,
    unpack_arrays,
)

MEMBERS = ["hospital-a", "hospital-b", "clinic-c"]


@pytest.fixture
def world(tmp_path):
    """Two institutions with model histories, a finished and a failed round."""
    ledger = Ledger.create(tmp_path / "ledger.sqlite", Consortium.generate(MEMBERS, seed=5))
    reg = ModelRegistry(ledger)
    params = {f"a{i}": pack_arrays({"w": np.full((3, 2), i, np.float32), "b": np.arange(2)})
              for i in range(3)}
    a0 = reg.model_commit("hospital-a", "cnn", params["a0"], None, "cnn",
                          {"accuracy": 0.70, "auc": 0.75}, {"n_train": 100, "labels": [50, 50]})
    a1 = reg.model_commit("hospital-a", "cnn", params["a1"], a0, "cnn",
                          {"accuracy": 0.74, "auc": 0.79, "loss": 0.4}, {"n_train": 100})
    a2 = reg.model_commit("hospital-a", "cnn", params["a2"], a0, "cnn",  # a branch from a0
                          {"accuracy": 0.69}, {"n_train": 100})
    b0 = reg.model_commit("hospital-b", "mlp", b"b-weights", None, "mlp", {"accuracy": 0.6},
                          {"n_train": 80})
    reg.tag(a1, "deployed")
    reg.start_round("clinic-c", "round-1", [a1, b0], {"parties": 3, "fixed_point_bits": 16})
    result = hash_array(np.array([0.1, 0.9]))
    reg.finish_round("clinic-c", "round-1", result, {"accuracy": 0.81, "auc": 0.88})
    reg.start_round("hospital-b", "round-2", [b0], {"parties": 3})
    reg.fail_round("hospital-b", "round-2", "party 1 timed out")
    yield ledger, reg, {"a0": a0, "a1": a1, "a2": a2, "b0": b0, "result": result,
                        "params": params}
    ledger.close()


def test_checkout_returns_exactly_the_committed_parameters(world):
    ledger, reg, v = world
    restored = unpack_arrays(reg.checkout(v["a1"]))
    assert restored["w"].dtype == np.float32 and np.all(restored["w"] == 1)
    assert reg.checkout(v["a1"][:10]) == v["params"]["a1"]  # unique prefix
    (ledger.artifacts.directory / v["a1"]).write_bytes(v["params"]["a2"])  # swap the file
    with pytest.raises(ArtifactError, match="refusing modified parameters"):
        reg.checkout(v["a1"])
    (ledger.artifacts.directory / v["a1"]).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        reg.checkout(v["a1"])
    with pytest.raises(LedgerError, match="not a committed version"):
        reg.checkout("ff" * 32)


def test_history_is_newest_first_and_filters(world):
    _, reg, v = world
    assert [m.version for m in reg.history()] == [v["b0"], v["a2"], v["a1"], v["a0"]]
    assert [m.version for m in reg.history("hospital-a")] == [v["a2"], v["a1"], v["a0"]]
    assert [m.version for m in reg.history(model_id="mlp")] == [v["b0"]]
    assert reg.history("clinic-c") == []
    assert [m.version for m in reg.ancestors(v["a2"])] == [v["a2"], v["a0"]]
    assert reg.get(v["a1"]).parent == v["a0"]


def test_diff_of_metrics(world):
    _, reg, v = world
    diff = {d.metric: d for d in reg.diff(v["a0"], v["a1"])}
    assert diff["accuracy"].delta == pytest.approx(0.04)
    assert diff["auc"].delta == pytest.approx(0.04)
    assert (diff["loss"].old, diff["loss"].new, diff["loss"].delta) == (None, 0.4, None)


def test_tags(world):
    ledger, reg, v = world
    assert reg.tags_of(v["a1"]) == ["deployed"]
    assert reg.tagged("deployed").version == v["a1"]
    reg.tag(v["a2"], "deployed")  # re-deploy another version: the latest tag wins
    assert reg.tagged("deployed", institution="hospital-a").version == v["a2"]
    assert reg.tagged("deployed", institution="hospital-b") is None
    from efl_toolkit.ledger import TransactionRejected, TxType

    with pytest.raises(TransactionRejected, match="only 'hospital-a' may tag"):
        ledger.transact("hospital-b", TxType.MODEL_TAG, {"version": v["a1"], "tag": "mine"})


def test_lineage_of_an_ensemble_round(world):
    _, reg, v = world
    lineage = reg.lineage("round-1")
    assert [m.version for m in lineage.versions] == [v["a1"], v["b0"]]
    assert lineage.institutions == ("hospital-a", "hospital-b")
    assert lineage.round.status == "done" and lineage.round.result_hash == v["result"]
    assert lineage.round.metrics == {"accuracy": 0.81, "auc": 0.88}
    assert reg.lineage("round-2").round.reason == "party 1 timed out"
    with pytest.raises(LedgerError, match="no round 'round-9'"):
        reg.lineage("round-9")


def test_audit_who_committed_what_and_when(world):
    ledger, _, v = world
    audit = Audit(ledger)
    commits = audit.commits_by("hospital-a")
    assert [c.version for c in commits] == [v["a0"], v["a1"], v["a2"]]
    times = [c.where.timestamp for c in commits]
    assert times == sorted(times) and all(t > 1_600_000_000_000 for t in times)
    activity = audit.activity("hospital-a")
    assert [a.type for a in activity] == ["REGISTER_INSTITUTION", "MODEL_COMMIT", "MODEL_COMMIT",
                                          "MODEL_COMMIT", "MODEL_TAG"]
    assert all(a.sender == "hospital-a" for a in activity)
    assert len(audit.activity()) == sum(h.n_txs for h in ledger.headers())


def test_audit_rounds_of_an_institution(world):
    ledger, _, _ = world
    audit = Audit(ledger)
    assert [r.round_id for r in audit.rounds_of("hospital-a")] == ["round-1"]
    assert [r.round_id for r in audit.rounds_of("hospital-b")] == ["round-1", "round-2"]
    assert [r.round_id for r in audit.rounds_of("clinic-c")] == ["round-1"]  # coordinator


def test_audit_dependencies_of_a_result(world):
    ledger, _, v = world
    deps = Audit(ledger).dependencies(v["result"])
    assert deps.round.round_id == "round-1"
    assert [m.version for m in deps.versions] == [v["a1"], v["b0"]]
    assert {m.version for m in deps.ancestors} == {v["a1"], v["a0"], v["b0"]}  # not a2
    assert deps.institutions == ("clinic-c", "hospital-a", "hospital-b")
    heights = [w.height for w in deps.transactions]
    assert heights == sorted(heights) and len(heights) == 5  # 3 commits, start, result
    assert Audit(ledger).dependencies("round-1") == deps
    with pytest.raises(LedgerError, match="no round or result"):
        Audit(ledger).dependencies("00" * 32)


def test_registry_reads_from_a_read_only_view(world):
    ledger, _, v = world
    view = open_ledger(ledger.path)
    reg = ModelRegistry(view)
    assert reg.checkout(v["b0"]) == b"b-weights"
    assert [m.version for m in view.model_versions("hospital-a")] == [v["a0"], v["a1"], v["a2"]]
    with pytest.raises(LedgerError, match="read-only"):
        reg.tag(v["b0"], "x")
    view.close()


def test_batched_commits_share_one_block(world):
    ledger, reg, v = world
    height = ledger.height
    reg.model_commit("hospital-b", "mlp", b"b1", v["b0"], "mlp", {"accuracy": 0.65}, {},
                     commit=False)
    reg.model_commit("hospital-a", "cnn", b"a3", v["a1"], "cnn", {"accuracy": 0.75}, {},
                     commit=False)
    assert len(ledger.pending) == 2 and ledger.height == height
    ledger.commit_block()
    assert ledger.height == height + 1 and ledger.header(height + 1).n_txs == 2
    assert ledger.verify().ok


def test_pack_arrays_is_deterministic_and_round_trips():
    arrays = {"layer/w": np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32),
              "layer/b": np.zeros(3, np.float64), "step": np.int64(7)}
    packed = pack_arrays(arrays)
    assert packed == pack_arrays(dict(reversed(list(arrays.items()))))
    restored = unpack_arrays(packed)
    for name, value in arrays.items():
        np.testing.assert_array_equal(restored[name], value)
        assert restored[name].dtype == np.asarray(value).dtype
    with pytest.raises(ValueError, match="bad magic"):
        unpack_arrays(b"PK\x03\x04 a zip file")
