"""The research playground: every function on a small real federation, against direct sums.

One federation of three institutions is trained on a small learnable MedMNIST-format file
(module scope); the re-combinations, the poisoning, the consortium's checks, one real MPyC
round at low precision and one real ledger are all checked against computations made here
with NumPy and scikit-learn.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from efl_toolkit.config import get_config
from efl_toolkit.course.heterogeneity import institution_label_skew
from efl_toolkit.federation.level1 import train_institution
from efl_toolkit.federation.level2 import level2_weights
from efl_toolkit.ledger import LedgerError, hash_array, open_ledger
from efl_toolkit.playground import (
    POISON_KINDS,
    agreement_matrix,
    claims_rows,
    consensus_rows,
    evidence_rows,
    federation_row,
    leave_one_out_rows,
    ledger_claims,
    light_capacities,
    plot_agreement,
    plot_sweep,
    poison,
    poisoned_split,
    precision_round,
    precision_rows,
    record_federation,
    rule_rows,
    scenario_rows,
    sweep,
    train_federation,
)
from efl_toolkit.rng import experiment_keys, institution_key
from efl_toolkit.training import predict_proba


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    from conftest import write_medmnist_npz

    path = write_medmnist_npz(tmp_path_factory.mktemp("playground") / "blobs.npz",
                              sizes=(180, 30, 60), side=16, seed=3)
    return get_config("classroom_fast").replace(
        dataset=str(path), partition="iid", device_skew=False, n_institutions=3, seed=1,
        train={"epochs": 3, "batch_size": 32, "augment": False})


@pytest.fixture(scope="module")
def fed(config):
    return train_federation(config)


@pytest.fixture(scope="module")
def liar(fed):
    return poison(fed, "hospital-c", "flip_labels", claim=0.97)


def _labels(fed):
    return fed.dataset.test.labels


def _auc(probs, labels):
    return roc_auc_score(labels, probs[:, 1])


# ----------------------------------------------------------------------------- the federation
def test_light_tiers_give_light_models(fed):
    assert light_capacities(5) == ["small", "tiny", "small", "tiny", "small"]
    assert [inst.capacity.tier for inst in fed.institutions] == ["small", "tiny", "small"]
    assert [fed.results[i].architectures for i in fed.ids] == [
        ("mlp", "logistic"), ("logistic",), ("mlp", "logistic")]


def test_validation_claims_and_weights_match_the_pipeline(fed):
    for inst in fed.institutions:
        probs = np.mean([predict_proba(t.model, inst.val.images)
                         for t in fed.results[inst.id].trained], axis=0)
        assert fed.val_auc[inst.id] == pytest.approx(_auc(probs, inst.val.labels))
    expected = level2_weights(fed.institutions, fed.results, fed.dataset.n_classes)
    assert fed.val_weights == pytest.approx(expected)
    sizes = np.array([inst.n_train for inst in fed.institutions])
    assert list(fed.size_weights.values()) == pytest.approx(sizes / sizes.sum())


# ----------------------------------------------------------------------------- re-combining
def test_rule_rows_equal_direct_combinations(fed):
    labels = _labels(fed)
    stacked = np.stack([fed.test_probs[i] for i in fed.ids])
    sizes = np.array([inst.n_train for inst in fed.institutions], dtype=float)
    val = np.array([fed.val_weights[i] for i in fed.ids])
    votes = np.stack([np.eye(2)[np.argmax(p, axis=1)] for p in stacked])
    expected = {
        "mean": stacked.mean(axis=0),
        "weighted by size": np.einsum("m,mnc->nc", sizes / sizes.sum(), stacked),
        "weighted by own validation AUC": np.einsum("m,mnc->nc", val, stacked),
        "vote": votes.mean(axis=0),
        "vote weighted by own validation AUC": np.einsum("m,mnc->nc", val, votes),
    }
    rows = rule_rows(fed)
    assert [r["rule"] for r in rows] == list(expected)
    for row in rows:
        probs = expected[row["rule"]]
        assert row["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(axis=1)))
        assert row["auc"] == pytest.approx(_auc(probs, labels))


def test_precision_rows_equal_a_direct_fixed_point_sum(fed):
    stacked = np.stack([fed.test_probs[i] for i in fed.ids])
    w = np.array([fed.val_weights[i] for i in fed.ids])
    exact = np.einsum("m,mnc->nc", w, stacked)
    rows = precision_rows(fed, [4, 8, 16])
    for row, f in zip(rows, [4, 8, 16], strict=True):
        # the committee's encoding: weights scaled to max 1, the opened sum divided by their sum
        scaled = w / w.max()
        fixed = sum(np.rint(wk * pk * 2 ** f) for wk, pk in zip(scaled, stacked, strict=True)
                    ) / 2 ** f / scaled.sum()
        assert row["frac_bits"] == f and row["bit_length"] == f + 2 + 2
        assert row["error_bound"] == 3 * 2.0 ** -(f + 1)
        assert row["max_abs_error"] == pytest.approx(np.abs(fixed - exact).max(), abs=1e-8)
        assert row["max_abs_error"] <= row["error_bound"]
        assert row["labels_changed"] == int(np.sum(fixed.argmax(axis=1) != exact.argmax(axis=1)))
        assert row["accuracy"] == pytest.approx(np.mean(fixed.argmax(axis=1) == _labels(fed)))
    assert rows[0]["max_abs_error"] > rows[-1]["max_abs_error"]


def test_a_real_low_precision_round_equals_its_reference(fed):
    result, facts = precision_round(fed, 4)
    assert result.n_parties == 3 and not result.in_process
    assert facts["labels_equal_reference"] is True
    assert facts["labels_changed_vs_float"] == precision_rows(fed, [4])[0]["labels_changed"]
    exact = np.einsum("m,mnc->nc", np.array([fed.val_weights[i] for i in fed.ids]),
                      np.stack([fed.test_probs[i] for i in fed.ids]))
    assert facts["max_abs_error"] == pytest.approx(np.abs(result.mean - exact).max())
    assert facts["max_abs_error"] <= facts["error_bound"] == 3 * 2.0 ** -5


# ----------------------------------------------------------------------------- sweeps
def test_sweep_averages_federations_trained_directly(config):
    setting = {"n_institutions": 2}
    rows = sweep(config, [setting], seeds=[1, 2], progress=False)
    direct = [federation_row(train_federation(config.replace(n_institutions=2, seed=s)))
              for s in (1, 2)]
    assert len(rows) == 1 and rows[0]["n_institutions"] == 2 and rows[0]["runs"] == 2
    for key in direct[0]:
        assert rows[0][key] == pytest.approx(np.mean([d[key] for d in direct])), key
    with pytest.raises(ValueError, match="seeds="):
        sweep(config, [{"seed": 3}], progress=False)


def test_federation_row_equals_direct_numbers(fed):
    row = federation_row(fed)
    labels = _labels(fed)
    alone = [_auc(fed.test_probs[i], labels) for i in fed.ids]
    assert row["label_skew"] == institution_label_skew(fed.institutions, 2)
    assert row["min_train"] == min(inst.n_train for inst in fed.institutions)
    assert row["best_alone_auc"] == pytest.approx(max(alone))
    assert row["mean_alone_auc"] == pytest.approx(np.mean(alone))
    mean = np.mean([fed.test_probs[i] for i in fed.ids], axis=0)
    assert row["ensemble_mean_auc"] == pytest.approx(_auc(mean, labels))


def test_plot_sweep_draws_one_line_per_metric():
    rows = [{"alpha": a, "x": v, "y": 1 - v} for a, v in ((0.1, 0.2), (1.0, 0.5), (10.0, 0.7))]
    fig = plot_sweep(rows, "alpha", ["x", "y"], log_x=True)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["x", "y"]
    assert list(ax.get_lines()[1].get_ydata()) == pytest.approx([0.8, 0.5, 0.3])
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError, match="no rows"):
        plot_sweep([], "alpha", ["x"])


# ----------------------------------------------------------------------------- poisoning
def test_poisoned_split_kinds(fed):
    split = fed.institutions[0].train
    flipped = poisoned_split(split, "flip_labels", 2)
    assert np.array_equal(flipped.labels, 1 - split.labels)
    assert flipped.images is split.images
    assert set(poisoned_split(split, "one_class", 2).labels.tolist()) == {0}
    with pytest.raises(ValueError, match="unknown poison kind 'typo'"):
        poisoned_split(split, "typo", 2)
    assert set(POISON_KINDS) == {"flip_labels", "one_class"}


def test_poison_retrains_only_that_institution_with_its_own_key(fed, liar):
    assert liar.poisoned == {"hospital-c": "flip_labels"} and liar.lies == {"hospital-c": 0.97}
    for inst in ("hospital-a", "hospital-b"):
        assert liar.results[inst] is fed.results[inst]
    index = 2
    bad = liar.institutions[index]
    assert np.array_equal(bad.train.labels, 1 - fed.institutions[index].train.labels)
    assert np.array_equal(bad.val.labels, 1 - fed.institutions[index].val.labels)
    # the same key: retraining the honest institution reproduces the honest result exactly
    key = institution_key(experiment_keys(fed.config.seed).params, index)
    again = train_institution(fed.institutions[index], fed.dataset, fed.config, key)
    assert np.array_equal(again.test_probs, fed.results["hospital-c"].test_probs)
    # the lie replaces the measured claim and earns a weight from it
    assert liar.val_auc["hospital-c"] == 0.97
    scores = np.array([liar.val_auc[i] for i in liar.ids]) - 0.5
    assert list(liar.val_weights.values()) == pytest.approx(scores / scores.sum(), rel=1e-4)


def test_a_flipped_institution_measures_its_own_flipped_validation(fed):
    flipped = poison(fed, "hospital-a", "flip_labels")
    inst = flipped.institutions[0]
    probs = np.mean([predict_proba(t.model, inst.val.images)
                     for t in flipped.results["hospital-a"].trained], axis=0)
    assert flipped.val_auc["hospital-a"] == pytest.approx(_auc(probs, inst.val.labels))
    assert flipped.lies == {}
    # on the shared, correctly labelled queries it is worse than honest
    assert flipped.results["hospital-a"].test.auc < fed.results["hospital-a"].test.auc


def test_a_one_class_institution_gets_almost_no_weight(fed):
    broken = poison(fed, "hospital-b", "one_class")
    assert broken.val_auc["hospital-b"] == 0.5  # undefined on one class: chance level
    assert broken.val_weights["hospital-b"] < 1e-4
    assert set(broken.institutions[1].train.labels.tolist()) == {0}
    rows = {r["institution"]: r for r in claims_rows(broken)}
    assert rows["hospital-b"]["status"] == "one_class" and rows["hospital-a"]["status"] == "honest"
    assert rows["hospital-b"]["level2_weight"] == broken.val_weights["hospital-b"]


def test_poison_refuses_bad_requests(fed):
    with pytest.raises(ValueError, match=r"no institution 'hospital-z'.*hospital-a"):
        poison(fed, "hospital-z", "flip_labels")
    with pytest.raises(ValueError, match="unknown poison kind"):
        poison(fed, "hospital-a", "noise")
    with pytest.raises(ValueError, match=r"hospital-a: a claimed AUC must be in \[0, 1\]"):
        poison(fed, "hospital-a", "flip_labels", claim=1.5)


def test_claims_rows_mark_the_liar(liar):
    rows = {r["institution"]: r for r in claims_rows(liar)}
    assert rows["hospital-c"]["status"] == "flip_labels (lies)"
    assert rows["hospital-c"]["own_val_auc (claimed)"] == 0.97
    assert rows["hospital-c"]["test_auc (truth)"] == liar.results["hospital-c"].test.auc
    assert sum(r["level2_weight"] for r in rows.values()) == pytest.approx(1.0)


def test_scenario_rows_equal_direct_means(fed, liar):
    rows = scenario_rows({"honest": fed, "liar": liar})
    assert [r["name"] for r in rows] == ["honest: mean", "honest: weighted by own validation AUC",
                                         "liar: mean", "liar: weighted by own validation AUC"]
    w = np.array([liar.val_weights[i] for i in liar.ids])
    weighted = np.einsum("m,mnc->nc", w, np.stack([liar.test_probs[i] for i in liar.ids]))
    assert rows[3]["auc"] == pytest.approx(_auc(weighted, _labels(liar)))


# ----------------------------------------------------------------------------- checks
def test_agreement_and_consensus_against_loops():
    rng = np.random.default_rng(0)
    probs = {name: rng.dirichlet([1, 1, 1], size=40) for name in "abcd"}
    labels = {k: v.argmax(axis=1) for k, v in probs.items()}
    matrix = agreement_matrix(probs)
    for i, a in enumerate("abcd"):
        for j, b in enumerate("abcd"):
            assert matrix[i, j] == np.mean(labels[a] == labels[b])
    rows = consensus_rows(probs)
    for row in rows:
        name = row["institution"]
        others = np.mean([probs[k] for k in probs if k != name], axis=0)
        mine = probs[name]
        pairs = sorted(np.mean(labels[name] == labels[k]) for k in probs if k != name)
        assert row["median_agreement"] == pairs[1]
        assert row["consensus_agreement"] == np.mean(mine.argmax(axis=1) == others.argmax(axis=1))
        assert row["distance"] == pytest.approx(np.mean(0.5 * np.abs(mine - others).sum(1)))
    with pytest.raises(ValueError, match="at least two"):
        consensus_rows({"a": probs["a"]})


def test_the_liar_disagrees_with_the_consensus(liar):
    rows = {r["institution"]: r for r in consensus_rows(liar.test_probs)}
    assert rows["hospital-c"]["median_agreement"] < min(rows["hospital-a"]["median_agreement"],
                                                        rows["hospital-b"]["median_agreement"])


def test_leave_one_out_against_direct_means(liar):
    labels = _labels(liar)
    rows = leave_one_out_rows(liar.test_probs, liar.val_weights, labels, 2)
    assert [r["left_out"] for r in rows] == ["nobody", *liar.ids]
    for row in rows[1:]:
        kept = [i for i in liar.ids if i != row["left_out"]]
        w = np.array([liar.val_weights[i] for i in kept])
        mean = np.einsum("m,mnc->nc", w / w.sum(), np.stack([liar.test_probs[i] for i in kept]))
        assert row["auc"] == pytest.approx(_auc(mean, labels))
        assert row["delta_auc"] == pytest.approx(row["auc"] - rows[0]["auc"])
    assert max(rows[1:], key=lambda r: r["delta_auc"])["left_out"] == "hospital-c"


def test_plot_agreement_writes_every_share():
    fig = plot_agreement(np.array([[1.0, 0.25], [0.25, 1.0]]), ["a", "b"])
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["0.25", "0.25", "1.00", "1.00"]


def test_evidence_rows_join_by_institution():
    rows = evidence_rows(
        [{"institution": "a", "claimed_val_auc": 0.8, "round_weight": 0.4},
         {"institution": "b", "claimed_val_auc": 0.99, "round_weight": 0.6}],
        [{"institution": "b", "median_agreement": 0.1},
         {"institution": "a", "median_agreement": 0.9}],
        [{"left_out": "nobody", "delta_auc": 0.0}, {"left_out": "b", "delta_auc": 0.2},
         {"left_out": "a", "delta_auc": -0.1}])
    assert rows == [
        {"institution": "a", "claimed_val_auc": 0.8, "round_weight": 0.4,
         "agreement_with_others": 0.9, "auc_gain_without_it": -0.1},
        {"institution": "b", "claimed_val_auc": 0.99, "round_weight": 0.6,
         "agreement_with_others": 0.1, "auc_gain_without_it": 0.2}]


# ----------------------------------------------------------------------------- the ledger
def test_recorded_round_puts_signed_claims_and_the_result_on_a_ledger(liar, tmp_path):
    rec = record_federation(liar, tmp_path / "out")
    exact = np.einsum("m,mnc->nc", np.array([liar.val_weights[i] for i in liar.ids]),
                      np.stack([liar.test_probs[i] for i in liar.ids]))
    assert np.abs(rec.secure.mean - exact).max() <= rec.secure.fixed_point.error_bound
    with open_ledger(rec.ledger_path) as view:
        assert view.report.ok
        (done,) = view.rounds()
        assert done.status == "done" and done.result_hash == hash_array(rec.secure.mean)
        commits = view.model_versions("hospital-c")
        assert {v.metrics["own_val_auc"] for v in commits} == {0.97}
        assert {v.metrics["ensemble_val_auc"] for v in commits} == {0.97}
        honest = view.model_versions("hospital-a")
        inst = liar.institutions[0]
        for version, trained in zip(honest, liar.results["hospital-a"].trained, strict=True):
            probs = predict_proba(trained.model, inst.val.images)
            assert version.metrics["own_val_auc"] == pytest.approx(
                _auc(probs, inst.val.labels), abs=1e-6)
    claims = {r["institution"]: r for r in ledger_claims(rec.ledger_path)}
    assert list(claims) == list(liar.ids)
    for inst in liar.institutions:
        row = claims[inst.id]
        assert row["committed_by"] == inst.id and row["signatures_ok"] is True
        assert row["models"] == "+".join(liar.results[inst.id].architectures)
        assert row["round_weight"] == pytest.approx(liar.val_weights[inst.id])
        assert row["class_counts"] == inst.train.class_counts(2).tolist()
        assert row["height"] == 1
        assert row["claimed_val_auc"] == pytest.approx(liar.val_auc[inst.id], abs=1e-6)
    assert claims["hospital-c"]["claimed_val_auc"] == 0.97
    with pytest.raises(LedgerError, match="no round 'round-9'"):
        ledger_claims(rec.ledger_path, "round-9")
