"""Extreme weights: the plaintext and secure paths agree (issue 10, fault 6).

``weighted_mean`` with three finite weights of ``1e308`` (whose sum overflows) returned all
zeros while the secure path rejected them. Both now scale weights to a maximum of 1 before
normalizing, so any finite, non-negative weights give the same ensemble on both paths, and
weights that are not allowed are rejected with the same message.
"""

from __future__ import annotations

import numpy as np
import pytest

from efl_toolkit.ensemble import weighted_mean
from efl_toolkit.ensemble.combine import EnsembleInputError, normalize_weights
from efl_toolkit.secure import plaintext_reference, secure_ensemble, secure_ensemble_in_process

PREDS = [np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([[0.2, 0.8], [0.6, 0.4]]),
         np.array([[0.4, 0.6], [0.5, 0.5]])]

EXTREME = {
    "sum overflows": [1e308, 1e308, 1e308],
    "one huge, one tiny": [1e308, 1e-308, 1e308],
    "subnormal": [5e-324, 5e-324, 1e-323],
    "max float": [np.finfo(np.float64).max] * 3,
}


def expected(weights):
    w = np.array([float(x) for x in weights], dtype=object)  # exact rational arithmetic-ish
    ratios = np.array([float(x / max(w)) for x in w])
    return np.tensordot(ratios / ratios.sum(), np.stack(PREDS), axes=1)


@pytest.mark.parametrize("name", list(EXTREME))
def test_plaintext_paths_agree_on_extreme_weights(name):
    weights = EXTREME[name]
    plain = weighted_mean(PREDS, weights)
    assert np.all(np.isfinite(plain)) and np.allclose(plain.sum(axis=1), 1.0)
    np.testing.assert_allclose(plain, expected(weights), atol=1e-12)
    norm = normalize_weights(weights, 3)
    assert np.isclose(norm.sum(), 1.0) and np.all(norm >= 0)
    for committee in (None, 3):
        ref = plaintext_reference(PREDS, weights, committee=committee)
        np.testing.assert_allclose(ref.mean, plain, atol=1e-4)
    secure = secure_ensemble_in_process(PREDS, weights)
    np.testing.assert_allclose(secure.mean, plain, atol=1e-4)
    assert secure.labels.tolist() == plain.argmax(axis=1).tolist()


def test_a_real_secure_round_agrees_with_weighted_mean_on_1e308_weights():
    weights = EXTREME["sum overflows"]
    plain = weighted_mean(PREDS, weights)
    res = secure_ensemble(PREDS, weights, reveal="mean", timeout=120)
    np.testing.assert_allclose(res.mean, plain, atol=1e-4)
    np.testing.assert_allclose(plain, np.mean(np.stack(PREDS), axis=0))


@pytest.mark.parametrize("weights", [[1.0, -1.0, 1.0], [1.0, np.inf, 1.0], [np.nan, 1, 1],
                                     [0.0, 0.0, 0.0]])
def test_disallowed_weights_are_rejected_with_the_same_message(weights):
    with pytest.raises(EnsembleInputError) as plain:
        weighted_mean(PREDS, weights)
    with pytest.raises(ValueError) as secure:
        secure_ensemble(PREDS, weights)  # rejected before any process starts
    assert str(secure.value) == str(plain.value)
