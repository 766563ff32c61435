"""Plaintext ensembles: mean, weighted mean, vote, hierarchical; bad input named clearly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efl_toolkit.ensemble import (
    EnsembleInputError,
    argmax_labels,
    check_predictions,
    combine,
    hierarchical_ensemble,
    majority_vote,
    mean_probabilities,
    normalize_weights,
    vote_shares,
    weighted_mean,
    weights_from_scores,
    weights_from_sizes,
)


def random_probs(rng, n, c):
    return rng.dirichlet(np.ones(c), size=n)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 6), n=st.integers(1, 30),
       c=st.integers(2, 8))
def test_weighted_mean_is_convex_combination(seed, m, n, c):
    rng = np.random.default_rng(seed)
    preds = [random_probs(rng, n, c) for _ in range(m)]
    w = rng.uniform(0.1, 5.0, size=m)
    got = weighted_mean(preds, w)
    expected = sum(wi * p for wi, p in zip(w, preds, strict=True)) / w.sum()
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(mean_probabilities(preds), np.mean(preds, axis=0), atol=1e-12)


def test_equal_weights_equal_mean():
    rng = np.random.default_rng(0)
    preds = [random_probs(rng, 7, 3) for _ in range(4)]
    np.testing.assert_allclose(weighted_mean(preds, [2, 2, 2, 2]), mean_probabilities(preds))


def test_ties_go_to_lowest_class():
    assert argmax_labels([[0.25, 0.25, 0.5], [0.4, 0.4, 0.2], [1 / 3, 1 / 3, 1 / 3]]).tolist() \
        == [2, 0, 0]
    # Two members disagree with equal weight: vote tie -> class 0; weighted breaks it.
    a, b = np.array([[0.1, 0.9]]), np.array([[0.8, 0.2]])
    assert majority_vote([a, b]).tolist() == [0]
    assert majority_vote([a, b], [2, 1]).tolist() == [1]


def test_vote_shares_count_votes():
    preds = [np.array([[0.6, 0.3, 0.1]]), np.array([[0.1, 0.2, 0.7]]),
             np.array([[0.2, 0.1, 0.7]])]
    np.testing.assert_allclose(vote_shares(preds), [[1 / 3, 0, 2 / 3]])
    np.testing.assert_allclose(vote_shares(preds, [4, 1, 1]), [[2 / 3, 0, 1 / 3]])
    assert majority_vote(preds).tolist() == [2]


def test_weights_from_scores_and_sizes():
    np.testing.assert_allclose(weights_from_sizes([50, 150]), [0.25, 0.75])
    w = weights_from_scores([0.9, 0.5, 0.7], floor=0.5)
    assert w[1] < 1e-4 and w[0] == pytest.approx(2 * w[2], rel=1e-4)
    assert normalize_weights({"b": 1, "a": 3}, 2, names=["a", "b"]).tolist() == [0.75, 0.25]


def test_combine_methods_agree_with_functions():
    rng = np.random.default_rng(1)
    preds = [random_probs(rng, 20, 4) for _ in range(3)]
    np.testing.assert_allclose(combine(preds, "mean").probabilities, mean_probabilities(preds))
    np.testing.assert_allclose(combine(preds, "weighted", [1, 2, 3]).probabilities,
                               weighted_mean(preds, [1, 2, 3]))
    assert (combine(preds, "vote").labels == majority_vote(preds)).all()
    with pytest.raises(EnsembleInputError, match="unknown ensemble method 'median'"):
        combine(preds, "median")


def test_hierarchical_two_levels():
    rng = np.random.default_rng(2)
    models = {"a": [random_probs(rng, 9, 3) for _ in range(3)],
              "b": [random_probs(rng, 9, 3)],
              "c": [random_probs(rng, 9, 3) for _ in range(2)]}
    h = hierarchical_ensemble(models, level2_weights={"a": 1, "b": 2, "c": 1})
    assert h.institution_ids == ("a", "b", "c")
    level1 = {k: np.mean(v, axis=0) for k, v in models.items()}
    for k in models:
        np.testing.assert_allclose(h.level1[k], level1[k])
    expected = (level1["a"] + 2 * level1["b"] + level1["c"]) / 4
    np.testing.assert_allclose(h.probabilities, expected)
    assert (h.labels == np.argmax(expected, axis=1)).all()
    voted = hierarchical_ensemble(models, level1="vote", level2="vote")
    # by hand: each institution's models vote (one-hot argmax), the institution votes for its
    # most voted class (ties to the lowest), the label is the institutions' most voted class
    shares = {k: np.mean([np.eye(3)[p.argmax(axis=1)] for p in v], axis=0)
              for k, v in models.items()}
    top = np.mean([np.eye(3)[s.argmax(axis=1)] for s in shares.values()], axis=0)
    for k in models:
        np.testing.assert_allclose(voted.level1[k], shares[k])
    np.testing.assert_allclose(voted.probabilities, top)
    np.testing.assert_array_equal(voted.labels, top.argmax(axis=1))


@pytest.mark.parametrize(("bad", "message"), [
    ([[0.5, np.nan]], r"hospital-b: row 0 is not finite"),
    ([[0.5, 0.5], [1.2, -0.2]], r"hospital-b: row 1 has a negative probability"),
    ([[0.5, 0.5], [0.5, 0.6]], r"hospital-b: row 1 sums to 1.1, not 1"),
    ([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]], r"hospital-b has 3 classes but hospital-a has 2"),
    ([[0.5, 0.5]], r"hospital-b has 1 queries but hospital-a has 2"),
    ([0.5, 0.5], r"hospital-b: expected a probability matrix"),
])
def test_bad_predictions_name_the_institution(bad, message):
    good = np.array([[0.5, 0.5], [0.1, 0.9]])
    with pytest.raises(EnsembleInputError, match=message):
        check_predictions({"hospital-a": good, "hospital-b": bad})


def test_bad_weights():
    preds = [np.array([[0.5, 0.5]])] * 2
    with pytest.raises(EnsembleInputError, match="got 3 weights for 2 members"):
        weighted_mean(preds, [1, 2, 3])
    with pytest.raises(EnsembleInputError, match="weight of member-1 is -1.0"):
        weighted_mean(preds, [1, -1])
    with pytest.raises(EnsembleInputError, match="all weights are zero"):
        weighted_mean(preds, [0, 0])
    with pytest.raises(EnsembleInputError, match="institution 'x', level 1: model-0: row 0 sums"):
        hierarchical_ensemble({"x": [np.array([[0.5, 0.6]])]})
