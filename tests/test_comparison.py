"""Summaries of trained institutions and the plaintext ensemble comparison, on real (small)
training runs: every number is checked against a direct computation."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from efl_toolkit.config import TrainConfig
from efl_toolkit.course.comparison import (
    best_row,
    ensemble_rows,
    evaluation_row,
    level1_rows,
    level2_weights,
    member_probabilities,
    primary_models,
    validation_accuracies,
    verdict,
)
from efl_toolkit.course.summaries import (
    architecture_rows,
    capacity_rows,
    institution_rows,
    majority_class_accuracy,
    model_rows,
    training_histories,
)
from efl_toolkit.data import load_dataset, make_institutions
from efl_toolkit.ensemble import weighted_mean
from efl_toolkit.federation.fedavg import affordability, common_architecture, parameter_summary
from efl_toolkit.federation.level1 import train_each_alone
from efl_toolkit.models import architecture_names
from efl_toolkit.training import evaluate, predict_proba
from efl_toolkit.training.serialize import version_hash

CONFIG = TrainConfig(epochs=2, batch_size=32, augment=False)


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    """Three institutions of a small learnable dataset; two of them train two models."""
    from conftest import write_medmnist_npz

    path = write_medmnist_npz(tmp_path_factory.mktemp("cmp") / "blobs.npz",
                              sizes=(150, 30, 60), side=16, seed=5)
    dataset = load_dataset(path)
    institutions = make_institutions(dataset, 3, alpha=0.5, device_skew=False, seed=2)
    archs = [("logistic", "mlp"), ("logistic",), ("mlp", "logistic")]
    institutions = [dataclasses.replace(inst, architectures=a)
                    for inst, a in zip(institutions, archs, strict=True)]
    results = train_each_alone(institutions, dataset, CONFIG, jax.random.key(0))
    return dataset, institutions, results


def test_model_rows_match_the_trained_models(federation):
    dataset, institutions, results = federation
    rows = model_rows(results)
    assert [(r["institution"], r["arch"]) for r in rows] == [
        ("hospital-a", "logistic"), ("hospital-a", "mlp"), ("hospital-b", "logistic"),
        ("hospital-c", "mlp"), ("hospital-c", "logistic")]
    trained = results["hospital-c"].trained[0]
    row = rows[3]
    assert row["version"] == version_hash(trained.model)
    assert row["epochs_run"] == len(trained.history) and row["best_epoch"] == trained.best_epoch
    probs = predict_proba(trained.model, dataset.test.images)
    assert row["test_accuracy"] == evaluate(probs, dataset.test.labels, 2).accuracy
    assert len({r["version"] for r in rows}) == len(rows)  # every model is its own version
    histories = training_histories(results)
    assert list(histories) == [f"{r['institution']}/{r['arch']}" for r in rows]
    assert histories["hospital-b/logistic"] == results["hospital-b"].trained[0].history


def test_institution_rows_are_the_local_ensembles(federation):
    dataset, _, results = federation
    rows = {r["name"]: r for r in institution_rows(results)}
    a = results["hospital-a"]
    mean = np.mean([predict_proba(t.model, dataset.test.images) for t in a.trained], axis=0)
    assert rows["hospital-a"]["auc"] == pytest.approx(evaluate(mean, dataset.test.labels, 2).auc)
    assert rows["hospital-a"]["architectures"] == ["logistic", "mlp"]


def test_capacity_and_architecture_rows(federation):
    dataset, institutions, _ = federation
    rows = capacity_rows(institutions, dataset)
    assert [r["architectures"] for r in rows] == [["logistic", "mlp"], ["logistic"],
                                                  ["mlp", "logistic"]]
    zoo = {r["arch"]: r for r in architecture_rows(dataset.image_shape, 2)}
    assert zoo["logistic"]["params"] == 16 * 16 * 2 + 2
    assert rows[0]["params"] == [zoo["logistic"]["params"], zoo["mlp"]["params"]]
    expected = (zoo["logistic"]["gflops_per_epoch_200"] + zoo["mlp"]["gflops_per_epoch_200"]) \
        * institutions[0].n_train / 200
    assert rows[0]["gflops_per_epoch"] == pytest.approx(expected)
    assert majority_class_accuracy([0, 0, 1], 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no labels"):
        majority_class_accuracy([], 2)


def test_level1_rows_list_models_then_their_mean(federation):
    _, _, results = federation
    rows = level1_rows(results)
    assert [(r["institution"], r["member"]) for r in rows[:3]] == [
        ("hospital-a", "logistic"), ("hospital-a", "mlp"),
        ("hospital-a", "local ensemble (mean)")]
    assert rows[2]["auc"] == results["hospital-a"].test.auc
    assert len(rows) == 5 + 3


def test_level2_weights_from_sizes_and_own_validation(federation):
    _, institutions, results = federation
    weights = level2_weights(results, institutions)
    sizes = np.array([inst.n_train for inst in institutions], float)
    np.testing.assert_allclose([w["weight_by_size"] for w in weights], sizes / sizes.sum())
    own = validation_accuracies(results, institutions)
    inst = institutions[2]
    mean = np.mean([predict_proba(t.model, inst.val.images)
                    for t in results[inst.id].trained], axis=0)
    assert own[inst.id] == evaluate(mean, inst.val.labels, 2).accuracy
    scores = np.array([own[i.id] for i in institutions])
    np.testing.assert_allclose([w["weight_by_validation"] for w in weights],
                               scores / scores.sum())


def test_ensemble_rows_agree_with_direct_computation(federation):
    dataset, institutions, results = federation
    rows = {r["name"]: r for r in ensemble_rows(results, institutions, dataset)}
    labels = dataset.test.labels
    members = member_probabilities(results, dataset.test.images)
    flat = [p for models in members.values() for p in models.values()]
    assert len(flat) == 5
    assert rows["flat mean"]["auc"] == pytest.approx(
        evaluate(np.mean(flat, axis=0), labels, 2).auc)
    votes = np.mean([np.eye(2)[p.argmax(axis=1)] for p in flat], axis=0)
    assert rows["flat vote"]["accuracy"] == pytest.approx(
        np.mean(votes.argmax(axis=1) == labels))
    level1 = [np.mean(list(models.values()), axis=0) for models in members.values()]
    sizes = [inst.n_train for inst in institutions]
    sized = weighted_mean(level1, sizes)
    assert rows["hierarchical weighted by size"]["auc"] == pytest.approx(
        evaluate(sized, labels, 2).auc)
    assert rows["hierarchical mean"]["balanced_accuracy"] == pytest.approx(
        evaluate(np.mean(level1, axis=0), labels, 2).balanced_accuracy)
    kinds = [r["kind"] for r in rows.values()]
    assert kinds == ["institution alone"] * 3 + ["ensemble"] * 6
    # the blobs are learnable: averaging institutions must not destroy that
    assert rows["hierarchical mean"]["auc"] > 0.9


def test_best_row_and_verdict_come_from_the_numbers():
    rows = [evaluation_row("hospital-a", "institution alone",
                           evaluate(np.array([[0.8, 0.2], [0.6, 0.4]]), np.array([0, 1]), 2)),
            {"name": "flat mean", "kind": "ensemble", "auc": 0.9, "balanced_accuracy": 0.7},
            {"name": "flat vote", "kind": "ensemble", "auc": float("nan"),
             "balanced_accuracy": 0.8}]
    assert rows[0]["auc"] == 1.0 and rows[0]["balanced_accuracy"] == 0.5
    assert best_row(rows, "ensemble", "auc")["name"] == "flat mean"
    assert best_row(rows, "ensemble")["name"] == "flat vote"  # balanced accuracy by default
    assert verdict(rows, "auc").endswith("lower by 0.100")
    assert verdict(rows, "balanced_accuracy").endswith("higher by 0.300")
    with pytest.raises(ValueError, match="no row of kind 'baseline'"):
        best_row(rows, "baseline")


def test_mismatched_results_and_institutions_are_named(federation):
    dataset, institutions, results = federation
    with pytest.raises(ValueError, match=r"results are for institutions \['hospital-a'"):
        ensemble_rows(results, institutions[:2], dataset)
    with pytest.raises(ValueError, match="no training results"):
        model_rows({})


def test_fedavg_helpers_on_real_models(federation):
    dataset, institutions, results = federation
    models = primary_models(results)
    rows = parameter_summary(models)
    assert [r["model"] for r in rows] == ["LogisticRegression", "LogisticRegression", "MLP"]
    assert rows[0]["params"] == 16 * 16 * 2 + 2 and rows[2]["arrays"] == 6
    afford = affordability(institutions, dataset.image_shape, 2, "resnet")
    assert [r["affords"] for r in afford] == [False, True, True]  # small, medium, large
    common = common_architecture(institutions, dataset.image_shape, 2)
    names = architecture_names()
    assert all(r["affords"] for r in affordability(institutions, dataset.image_shape, 2, common))
    for stronger in names[names.index(common) + 1:]:  # nothing more capable fits everyone
        assert not all(r["affords"] for r in affordability(institutions, dataset.image_shape, 2,
                                                           stronger))
