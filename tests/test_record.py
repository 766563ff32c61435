"""The one path that commits model versions (efl_toolkit.federation.record): real models on a
real SQLite ledger, their parameters, metrics, data summaries, parents and blocks."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from efl_toolkit.config import TrainConfig
from efl_toolkit.data import load_dataset
from efl_toolkit.data.institution import CapacityProfile, Institution
from efl_toolkit.data.medmnist import Split
from efl_toolkit.federation.level1 import train_institution
from efl_toolkit.federation.record import (
    NewVersion,
    commit_model,
    commit_versions,
    data_summary,
    model_metrics,
    record_local_results,
)
from efl_toolkit.ledger import (
    Consortium,
    Ledger,
    ModelRegistry,
    TransactionRejected,
    open_ledger,
)
from efl_toolkit.models import build_model
from efl_toolkit.training import evaluate, predict_proba
from efl_toolkit.training.serialize import params_from_bytes, version_hash

MEMBERS = ["hospital-a", "hospital-b", "clinic-c"]
SHAPE = (8, 8, 1)


def _institution(inst_id: str, seed: int, one_class_val: bool = False) -> Institution:
    rng = np.random.default_rng(seed)
    train = Split(rng.random((30, *SHAPE), dtype=np.float32), rng.integers(0, 2, 30))
    val_labels = np.zeros(12, dtype=np.int64) if one_class_val else np.arange(12) % 2
    val = Split(rng.random((12, *SHAPE), dtype=np.float32), val_labels)
    return Institution(inst_id, train, val, CapacityProfile.preset("small"))


def test_commit_model_records_the_real_parameters_and_validation_scores(tmp_path):
    ledger = Ledger.create(tmp_path / "l.sqlite", Consortium.generate(MEMBERS, seed=1))
    registry = ModelRegistry(ledger)
    inst = _institution("hospital-a", 0)
    m1 = build_model("logistic", SHAPE, 2, nnx.Rngs(0))
    m2 = build_model("logistic", SHAPE, 2, nnx.Rngs(1))
    v1 = commit_model(registry, inst, m1, architecture="logistic", n_classes=2,
                      model_id="line-a")
    v2 = commit_model(registry, inst, m2, architecture="logistic", n_classes=2, parent=v1,
                      model_id="line-a")
    ledger.close()
    assert (v1, v2) == (version_hash(m1), version_hash(m2))
    with open_ledger(tmp_path / "l.sqlite") as view:
        assert view.report.ok and view.height == 2  # one block per commit
        registry = ModelRegistry(view)
        record = registry.get(v2)
        scores = evaluate(predict_proba(m2, inst.val.images), inst.val.labels, 2)
        assert record.metrics == {"val_accuracy": round(scores.accuracy, 6),
                                  "val_auc": round(scores.auc, 6)}
        assert record.data_summary == {"n_train": 30, "n_val": 12,
                                       "class_counts": inst.train.class_counts(2).tolist(),
                                       "device": inst.device.name, "capacity": "small"}
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


def test_commit_versions_puts_an_institutions_models_in_one_block(tmp_path):
    ledger = Ledger.create(tmp_path / "l.sqlite", Consortium.generate(MEMBERS, seed=3))
    registry = ModelRegistry(ledger)
    first = commit_versions(registry, "hospital-b", {
        "cnn": NewVersion(b"c1", "cnn", {"acc": 0.8}, {"n_train": 5}),
        "mlp": (b"m1", "mlp", {"acc": 0.7}, {"n_train": 5}, None),  # a plain tuple works too
    })
    assert list(first) == ["cnn", "mlp"] and ledger.height == 1
    assert [tx.payload["model_id"] for tx in ledger.block(1).transactions] == ["cnn", "mlp"]
    second = commit_versions(registry, "hospital-b", {
        "cnn": NewVersion(b"c2", "cnn", {"acc": 0.9}, {"n_train": 5}, first["cnn"])},
        commit=False)
    assert ledger.height == 1 and len(ledger.pending) == 1
    ledger.commit_block()
    assert registry.get(second["cnn"]).parent == first["cnn"]
    assert commit_versions(registry, "hospital-b", {}) == {} and ledger.height == 2
    ledger.close()


def test_record_local_results_commits_every_level1_model_in_one_block(tmp_path, make_npz):
    dataset = load_dataset(make_npz(sizes=(60, 20, 24), side=8))
    institutions = [
        Institution(f"hospital-{c}", dataset.train.subset(np.arange(k * 30, k * 30 + 24)),
                    dataset.train.subset(np.arange(k * 30 + 24, k * 30 + 30)),
                    CapacityProfile.preset("small"), architectures=("logistic", "mlp"))
        for k, c in enumerate("ab")]
    results = {inst.id: train_institution(inst, dataset, TrainConfig(epochs=1), jax.random.key(k))
               for k, inst in enumerate(institutions)}
    ledger = Ledger.create(tmp_path / "l.sqlite",
                           Consortium.generate([i.id for i in institutions], seed=0))
    versions = record_local_results(ModelRegistry(ledger), institutions, results, dataset)
    assert ledger.height == 1 and len(ledger.block(1).transactions) == 4
    registry = ModelRegistry(ledger)
    for inst in institutions:
        result = results[inst.id]
        assert list(versions[inst.id]) == ["logistic", "mlp"]
        for trained, (arch, test) in zip(result.trained, result.per_model.items(), strict=True):
            record = registry.get(versions[inst.id][arch])
            assert record.version == version_hash(trained.model)
            assert record.metrics == model_metrics(trained, test)
            assert record.data_summary == data_summary(inst, dataset.n_classes, dataset)
            assert record.data_summary["dataset"] == dataset.name
    ledger.close()
