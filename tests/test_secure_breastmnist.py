"""End to end on the embedded BreastMNIST: 3 heterogeneous institutions, secure vs plaintext.

The institutions of the default experiment (Dirichlet label skew, one imaging device each,
capacity-assigned architectures: mlp+logistic, cnn+vit, resnet+cnn) trained their level-1
ensembles; here their test probabilities go through secure rounds of 3 real party processes in
both reveal modes. The labels must equal the plaintext ensemble's exactly, and the ensemble's
accuracy must be at least the best single institution's (an oracle choice made on the test split).
"""

from __future__ import annotations

import numpy as np
import psutil

from efl_toolkit.ensemble import argmax_labels, weighted_mean
from efl_toolkit.secure import plaintext_reference, secure_ensemble


def _level1(experiment):
    result, _ = experiment
    probs = {inst_id: alone.test_probs for inst_id, alone in result.alone.items()}
    single = [alone.test.accuracy for alone in result.alone.values()]
    return result, probs, single


def test_labels_only_round_equals_plaintext_and_beats_best_single(breastmnist_experiment):
    result, probs, single = _level1(breastmnist_experiment)
    labels = result.dataset.test.labels
    res = secure_ensemble(probs, result.weights, reveal="labels")
    assert res.secret and res.n_parties == 3 and res.mean is None
    np.testing.assert_array_equal(res.labels,
                                  plaintext_reference(probs, result.weights,
                                                      reveal="labels").labels)
    np.testing.assert_array_equal(res.labels,
                                  argmax_labels(weighted_mean(list(probs.values()),
                                                              list(result.weights.values()))))
    accuracy = float((res.labels == labels).mean())
    print(f"single institutions {np.round(single, 4).tolist()}, secure ensemble {accuracy:.4f}")
    assert accuracy >= max(single)
    assert not psutil.Process().children(recursive=True)


def test_mean_round_matches_plaintext_within_the_fixed_point_bound(breastmnist_experiment):
    result, probs, single = _level1(breastmnist_experiment)
    secure = result.secure
    assert secure.secret and secure.n_parties == 3
    assert np.abs(secure.mean - result.plaintext_probs).max() <= secure.fixed_point.error_bound
    np.testing.assert_array_equal(secure.labels, argmax_labels(result.plaintext_probs))
    assert result.secure_eval.accuracy >= max(single)
    assert abs(result.secure_eval.auc - result.plaintext.auc) <= 1e-3
