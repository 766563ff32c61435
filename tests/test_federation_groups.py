"""Federated groups under secure aggregation, the consortium-wide scores, and their lineage.

Real parts: a committee of three compute-party processes, Flax models trained on a small
MedMNIST-format file, a real ledger. Secure results are checked against the plaintext
reference (`plaintext_aggregation`) and against independent ones (numpy, scikit-learn).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from efl_toolkit.config import TrainConfig
from efl_toolkit.data import load_dataset, make_institutions
from efl_toolkit.data.institution import CapacityProfile, Institution
from efl_toolkit.ensemble import prior_corrected
from efl_toolkit.federation.aggregation import (
    auc_from_histograms,
    auc_histograms,
    plaintext_aggregation,
    pooled_auc,
    secure_aggregation,
    youden_threshold,
)
from efl_toolkit.federation.fedavg import fedavg_model
from efl_toolkit.federation.groups import Group, flatten, form_groups, train_group
from efl_toolkit.federation.level2 import consortium_class_prior, consortium_weights
from efl_toolkit.federation.record import group_round_recorder
from efl_toolkit.ledger import Consortium, Ledger, ModelRegistry, TransactionRejected
from efl_toolkit.secure import Committee
from efl_toolkit.training import predict_proba
from efl_toolkit.training.serialize import params_to_bytes

CONFIG = TrainConfig(epochs=2, batch_size=16, learning_rate=1e-2, augment=False)


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    from conftest import write_medmnist_npz

    npz = write_medmnist_npz(tmp_path_factory.mktemp("groups") / "tiny.npz",
                             sizes=(150, 30, 40), side=12)
    dataset = load_dataset(str(npz))
    insts = make_institutions(dataset, 3, capacities=["small"] * 3, seed=0)
    return dataset, {i.id: i for i in insts}


@pytest.fixture(scope="module")
def committee():
    with Committee(3) as running:
        yield running


def logistic_group(institutions) -> Group:
    return Group("logistic", tuple(institutions), tuple(institutions)[:1])


def test_groups_join_everyone_who_affords_an_architecture():
    ds = load_dataset("breastmnist")
    insts = make_institutions(ds, 3, seed=0)              # small, medium, large
    groups = {g.architecture: g for g in form_groups(insts, ds)}
    assert groups["cnn"].members == ("hospital-b", "hospital-c")
    assert groups["logistic"].members == ("hospital-a", "hospital-b", "hospital-c")
    assert groups["logistic"].keepers == ("hospital-a",)
    assert groups["resnet"].alone and not groups["cnn"].alone
    poor = Institution("hospital-z", insts[0].train, insts[0].val,
                       CapacityProfile("none", 0.0, 0.0))
    with pytest.raises(ValueError, match="hospital-z: its capacity .* affords no architecture"):
        form_groups([*insts, poor], ds)


def test_a_round_under_secure_aggregation_equals_plaintext_fedavg(setting, committee):
    dataset, insts = setting
    group, key = logistic_group(insts), jax.random.key(3)
    secure = train_group(group, insts, dataset, CONFIG, key, secure_aggregation(committee),
                         rounds=1)
    plain = train_group(group, insts, dataset, CONFIG, key, plaintext_aggregation, rounds=1)
    a, b = flatten(secure.state.params)[0], flatten(plain.state.params)[0]
    assert np.max(np.abs(a - b)) <= 3 * 2.0 ** -17               # N * 2^-(f+1), f = 16
    assert np.max(np.abs(a - b)) > 0                             # it did go through shares
    (rnd,) = secure.rounds
    assert rnd.participants == tuple(insts) and rnd.dropped == () and rnd.excluded == {}
    # the plaintext reference itself is FedAvg: the n_train-weighted mean of the local models
    sizes = np.array([i.n_train for i in insts.values()], dtype=float)
    assert plain.state.weights == pytest.approx(tuple(sizes / sizes.sum()))


def test_dropout_and_broken_updates_are_left_out_and_recorded(setting, committee):
    dataset, insts = setting
    group, key = logistic_group(insts), jax.random.key(5)
    faults = {1: {"hospital-b": "drop"}, 2: {"hospital-c": "nan", "hospital-b": "shape"}}
    result = train_group(group, insts, dataset, CONFIG, key, secure_aggregation(committee),
                         rounds=2, patience=5, faults=faults)
    first, second = result.rounds
    assert first.participants == ("hospital-a", "hospital-c") and first.dropped == ("hospital-b",)
    assert second.participants == ("hospital-a",)
    assert "NaN" in second.excluded["hospital-c"]
    assert second.excluded["hospital-b"].startswith("wrong shapes")
    assert np.all(np.isfinite(flatten(result.state.params)[0]))
    # the dropped round equals plaintext FedAvg over the two who stayed
    plain = train_group(group, insts, dataset, CONFIG, key, plaintext_aggregation, rounds=1,
                        faults={1: {"hospital-b": "drop"}})
    a = flatten(train_group(group, insts, dataset, CONFIG, key, secure_aggregation(committee),
                            rounds=1, faults={1: {"hospital-b": "drop"}}).state.params)[0]
    assert np.max(np.abs(a - flatten(plain.state.params)[0])) <= 2 * 2.0 ** -17
    summary = result.summary()
    assert summary["dropped"] == {"1": ["hospital-b"]} and set(summary["excluded"]["2"]) == {
        "hospital-b", "hospital-c"}


def test_every_round_is_a_commit_whose_parent_is_the_previous_round(setting, committee,
                                                                   tmp_path):
    dataset, insts = setting
    ledger = Ledger.create(tmp_path / "l.sqlite", Consortium.generate(list(insts), seed=1))
    registry = ModelRegistry(ledger)
    recorder = group_round_recorder(registry, dataset)
    group = logistic_group(insts)
    result = train_group(group, insts, dataset, CONFIG, jax.random.key(1),
                         secure_aggregation(committee), rounds=3, patience=5,
                         on_round=lambda rnd, state: recorder(group, rnd, state))
    chain = [r.version for r in result.rounds]
    records = [registry.ledger.state.versions[v] for v in chain]
    assert [r.parent for r in records] == [None, *chain[:-1]]
    assert {r.model_id for r in records} == {"group-logistic"}
    assert records[1].data_summary["participants"] == list(insts)
    assert records[1].data_summary["update_sha256"] == result.rounds[1].update_sha256
    assert result.version == chain[result.best_round - 1]
    # a version that claims another parent than the previous round is rejected by the ledger
    model = fedavg_model(result.state)
    with pytest.raises(TransactionRejected, match="parent"):
        registry.model_commit("hospital-a", "group-logistic", params_to_bytes(model) + b"x",
                              "0" * 64, "logistic", {"round": 4}, {})
    with pytest.raises(TransactionRejected, match="parent"):
        registry.model_commit("hospital-b", "group-logistic", params_to_bytes(model) + b"y",
                              chain[-1], "logistic", {"round": 4}, {})
    ledger.close()


def test_pooled_auc_equals_sklearn_on_the_pooled_data_and_secure_equals_plaintext(
        setting, committee):
    dataset, insts = setting
    rng = np.random.default_rng(0)
    w = rng.normal(size=(np.prod(dataset.image_shape), 2))

    def predict(images):
        logits = images.reshape(len(images), -1) @ w
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    shares = [(i.id, i.val) for i in insts.values()]
    plain = pooled_auc({"m": predict}, shares, 2, plaintext_aggregation)["m"]
    secure = pooled_auc({"m": predict}, shares, 2, secure_aggregation(committee))["m"]
    images = np.concatenate([s.images for _, s in shares])
    labels = np.concatenate([s.labels for _, s in shares])
    assert secure == plain
    assert abs(plain - roc_auc_score(labels, predict(images)[:, 1])) <= 1 / 200


def test_histogram_auc_and_youden_threshold_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(20):
        labels = rng.integers(0, 2, 300)
        score = np.clip(rng.normal(0.4 + 0.2 * labels, 0.2), 0, 1)
        probs = np.stack([1 - score, score], axis=1)
        hist = auc_histograms(probs, labels, 2)
        assert abs(auc_from_histograms(hist) - roc_auc_score(labels, score)) <= 1 / 200
        t = youden_threshold(hist)
        edges = np.arange(201) / 200
        j = [np.mean(score[labels == 1] >= e) - np.mean(score[labels == 0] >= e)
             for e in edges]
        predicted = score >= t
        assert np.mean(predicted[labels == 1]) - np.mean(predicted[labels == 0]) == \
            pytest.approx(max(j))
        tied = rng.choice([0.2, 0.5, 0.8], size=300)        # many ties within one bin
        tied_hist = auc_histograms(np.stack([1 - tied, tied], axis=1), labels, 2)
        assert auc_from_histograms(tied_hist) == pytest.approx(roc_auc_score(labels, tied))
        # the threshold as an effective prior: argmax of the corrected probabilities
        corrected = prior_corrected(probs, [1 - t, t]).argmax(axis=1)
        np.testing.assert_array_equal(corrected == 1, score >= t - 1e-12)


def test_consortium_prior_and_weights(setting, committee):
    dataset, insts = setting
    prior = consortium_class_prior(list(insts.values()), 2, secure_aggregation(committee))
    counts = sum(i.train.class_counts(2) for i in insts.values()) + 1.0
    np.testing.assert_allclose(prior, counts / counts.sum(), atol=1e-9)
    weights = consortium_weights({"a": 0.9, "b": 0.5, "c": 0.7})
    assert weights["a"] > weights["c"] > weights["b"] >= 0
    assert sum(weights.values()) == pytest.approx(1.0)


def test_fine_tuning_is_kept_only_if_own_validation_improves(setting, committee):
    dataset, insts = setting
    group = Group("logistic", tuple(insts), tuple(insts))
    result = train_group(group, insts, dataset, CONFIG, jax.random.key(2),
                         secure_aggregation(committee), rounds=2, finetune_epochs=3)
    global_model = fedavg_model(result.state)
    for name, tuned in result.fine_tuned.items():
        inst = insts[name]

        def loss(model, inst=inst):
            p = predict_proba(model, inst.val.images)[np.arange(inst.n_val), inst.val.labels]
            return float(np.mean(-np.log(np.clip(p, 1e-7, 1))))

        if tuned:
            assert loss(result.models[name]) < loss(global_model)
        else:
            assert result.models[name] is global_model


def test_bad_faults_and_members_are_named(setting):
    dataset, insts = setting
    group = logistic_group(insts)
    with pytest.raises(ValueError, match=r"faults\[1\]\['hospital-b'\] = 'bogus'"):
        train_group(group, insts, dataset, CONFIG, jax.random.key(0), plaintext_aggregation,
                    rounds=1, faults={1: {"hospital-b": "bogus"}})
    with pytest.raises(ValueError, match="not among the institutions"):
        train_group(group, {"hospital-a": insts["hospital-a"]}, dataset, CONFIG,
                    jax.random.key(0), plaintext_aggregation, rounds=1)
