"""Fixed-point encoding, its plaintext reference, and the MPyC protocol in process (m=1).

The in-process runs use MPyC's real secure types and protocols (secure comparisons, argmax)
with a single party, which holds everything in the clear: they check the arithmetic, not the
secrecy (that is what tests/test_secure_parties.py does with real processes).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from efl_toolkit.ensemble import weighted_mean
from efl_toolkit.secure import plaintext_reference, secure_ensemble_in_process
from efl_toolkit.secure.fixed_point import (
    FixedPoint,
    effective_weights,
    local_contribution,
    normalize_units,
    reference_round,
    weight_units,
)
from efl_toolkit.secure.protocol import RoundSpec, run_in_process


def random_inputs(seed: int, m: int, n: int, c: int, ties: bool = True):
    """Random probability matrices; rows 0 and 1 hold exact ties when ``ties``."""
    rng = np.random.default_rng(seed)
    preds = [rng.dirichlet(np.ones(c) * rng.uniform(0.3, 3), size=n) for _ in range(m)]
    if ties and n >= 2:
        for p in preds:
            p[0] = 1.0 / c                                  # all classes tie -> label 0
            p[1] = np.r_[0.0, 0.5, 0.5, np.zeros(c - 3)] if c > 2 else [0.5, 0.5]
    weights = rng.uniform(0.05, 3.0, size=m)
    return preds, weights


def test_format_and_bound():
    fp = FixedPoint.for_inputs(3)
    assert (fp.frac_bits, fp.bit_length) == (16, 20)
    assert fp.error_bound == pytest.approx(3 * 2.0 ** -17)
    # Worst case sums and differences fit the signed bit length with room to spare.
    for m in (2, 3, 5, 7, 16):
        fp = FixedPoint.for_inputs(m)
        worst = m * fp.encode(1.0 + 1e-3)  # rows may sum to 1 + tolerance
        assert worst < 2 ** (fp.bit_length - 2)
    with pytest.raises(ValueError, match="frac_bits must be in"):
        FixedPoint.for_inputs(3, 2)


def test_encode_rounds_to_nearest():
    fp = FixedPoint.for_inputs(2, 4)
    x = np.array([0.0, 1 / 32, 3 / 32, 0.49, 1.0])
    np.testing.assert_array_equal(fp.encode(x), [0, 0, 2, 8, 16])  # ties to even
    assert np.abs(fp.decode(fp.encode(x)) - x).max() <= 2.0 ** -5


def test_public_weights_normalize_identically():
    units = [weight_units(w) for w in (0.25, 1.0, 0.5)]
    np.testing.assert_allclose(normalize_units(units), [0.25 / 1.75, 1 / 1.75, 0.5 / 1.75])
    np.testing.assert_array_equal(effective_weights([0.25, 1.0, 0.5], "labels"), [0.25, 1, 0.5])
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        weight_units(1.5)
    with pytest.raises(ValueError, match="all public weights are zero"):
        normalize_units([0, 0])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), m=st.integers(2, 6), n=st.integers(1, 40),
       c=st.integers(2, 7), frac_bits=st.sampled_from([8, 12, 16, 20]))
def test_reference_mean_within_bound(seed, m, n, c, frac_bits):
    preds, weights = random_inputs(seed, m, n, c, ties=False)
    ref = plaintext_reference(preds, weights, reveal="mean", frac_bits=frac_bits)
    bound = FixedPoint.for_inputs(m, frac_bits).error_bound
    assert np.abs(ref.mean - weighted_mean(preds, weights)).max() <= bound + 1e-9
    np.testing.assert_array_equal(ref.labels, np.argmax(ref.sum, axis=1))


def test_reference_ties_lowest_index():
    preds, weights = random_inputs(0, 3, 5, 4)
    ref = plaintext_reference(preds, weights, reveal="labels")
    assert ref.labels[0] == 0 and ref.labels[1] == 1


def test_labels_are_scale_invariant():
    """Private weights need no normalization for the argmax (up to rounding at the ends)."""
    preds, weights = random_inputs(3, 4, 200, 5, ties=False)
    fp = FixedPoint.for_inputs(4)
    w = weights / weights.max()
    a = reference_round(preds, w, "labels", fp).labels
    b = reference_round(preds, w / 2, "labels", fp).labels
    assert (a == b).mean() > 0.98
    exact = np.argmax(sum(wi * p for wi, p in zip(w, preds, strict=True)), axis=1)
    assert (a == exact).mean() > 0.98


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), m=st.integers(2, 5), n=st.integers(2, 25),
       c=st.integers(2, 6), reveal=st.sampled_from(["mean", "labels"]),
       batch=st.integers(1, 30))
def test_in_process_protocol_equals_reference(seed, m, n, c, reveal, batch):
    preds, weights = random_inputs(seed, m, n, c)
    party_w = weights / weights.max()
    out = run_in_process(RoundSpec(reveal=reveal, batch_rows=batch), preds, party_w)
    ref = reference_round(preds, party_w, reveal, out.fixed_point)
    np.testing.assert_array_equal(out.labels, ref.labels)
    if reveal == "mean":
        np.testing.assert_array_equal(out.sum, ref.sum)
    else:
        assert out.sum is None


def test_in_process_entry_point_is_marked_not_secret():
    preds, weights = random_inputs(1, 3, 10, 3)
    res = secure_ensemble_in_process(preds, weights, reveal="mean", transcript=True)
    assert not res.secret and res.in_process and res.n_parties == 1 and res.threshold == 0
    assert np.abs(res.mean - weighted_mean(preds, weights)).max() <= res.fixed_point.error_bound
    # A single party's "shares" are the values themselves: nothing is hidden.
    view = res.transcript.views[0]
    own = np.asarray(view.own_contributions[1], dtype=np.int64)
    np.testing.assert_array_equal(np.asarray(view.input_shares[1], dtype=np.int64), own)
    assert "no secrecy" in res.transcript.explain().lower()


def test_local_contribution_applies_weight_before_encoding():
    fp = FixedPoint.for_inputs(2, 8)
    np.testing.assert_array_equal(local_contribution(np.array([[0.5, 0.5]]), 0.5, fp),
                                  [[64, 64]])
