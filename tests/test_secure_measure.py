"""Measurements and figures of a secure round (efl_toolkit.secure.measure / .plots), on real
MPyC party processes over 127.0.0.1 where a round is involved."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats

from efl_toolkit.ensemble import weighted_mean
from efl_toolkit.secure import FixedPoint, secure_ensemble, secure_ensemble_in_process
from efl_toolkit.secure.measure import (
    agreement,
    fixed_point_errors,
    measure_round_costs,
    random_predictions,
    round_costs,
    share_fractions,
)
from efl_toolkit.secure.plots import (
    plot_fixed_point_errors,
    plot_round_costs,
    plot_share_fractions,
    plot_share_histograms,
    plot_sharing,
)
from efl_toolkit.secure.teaching import share_samples, share_secret

# This file tests the first design, every institution its own MPyC party (committee=None);
# the committee of compute parties is tested in test_secure_committee.py.
secure_ensemble = functools.partial(secure_ensemble, committee=None)


@pytest.fixture(scope="module")
def real_round():
    """One real 3-party round (mean revealed) with a 40-row transcript."""
    preds = random_predictions(3, 40, 3, seed=5)
    weights = [0.5, 0.3, 0.9]
    result = secure_ensemble(preds, weights, reveal="mean", transcript=True, transcript_rows=40)
    return preds, weights, result


def test_random_predictions_are_seeded_probabilities():
    a = random_predictions(3, 7, 4, seed=1)
    assert [p.shape for p in a] == [(7, 4)] * 3
    for p in a:
        assert np.all(p >= 0) and np.allclose(p.sum(axis=1), 1.0)
    assert all(np.array_equal(x, y) for x, y in zip(a, random_predictions(3, 7, 4, seed=1),
                                                     strict=True))
    assert not np.array_equal(a[0], random_predictions(3, 7, 4, seed=2)[0])
    with pytest.raises(ValueError, match="n_classes >= 2"):
        random_predictions(3, 7, 1)


def test_fixed_point_error_stays_under_the_bound_and_shrinks_with_bits():
    preds = random_predictions(5, 200, 3, seed=0)
    rows = fixed_point_errors(preds, [1, 2, 3, 4, 5], [4, 8, 12, 16, 24])
    for row in rows:
        fp = FixedPoint.for_inputs(5, row["frac_bits"])
        assert row["bit_length"] == fp.bit_length == row["frac_bits"] + 3 + 2
        assert row["error_bound"] == fp.error_bound
        assert 0 < row["max_abs_error"] <= row["error_bound"]
    errors = [r["max_abs_error"] for r in rows]
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 1000
    assert rows[-1]["labels_changed"] == 0


def test_fixed_point_error_is_measured_against_the_float_weighted_mean():
    preds = [np.array([[0.3, 0.7]]), np.array([[0.6, 0.4]])]
    (row,) = fixed_point_errors(preds, None, [4])
    fp = FixedPoint.for_inputs(2, 4)
    encoded = fp.decode(fp.encode(0.5 * preds[0]) + fp.encode(0.5 * preds[1]))
    assert row["max_abs_error"] == pytest.approx(
        np.max(np.abs(encoded - weighted_mean(preds))))


def test_agreement_of_a_real_round(real_round):
    preds, weights, result = real_round
    out = agreement(result, preds, weights)
    assert out["labels_equal_reference"] and out["label_agreement"] == 1.0
    assert out["max_abs_diff_vs_reference"] == 0.0
    assert 0 < out["max_abs_diff_vs_float"] <= out["error_bound"] == result.fixed_point.error_bound


def test_agreement_notices_wrong_labels_and_wrong_means(real_round):
    preds, weights, result = real_round
    flipped = result.labels.copy()
    flipped[:4] = (flipped[:4] + 1) % 3
    bad = dataclasses.replace(result, labels=flipped, mean=result.mean + 1e-3)
    out = agreement(bad, preds, weights)
    assert out["label_agreement"] == pytest.approx(36 / 40)
    assert not out["labels_equal_reference"]
    assert out["max_abs_diff_vs_reference"] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="40 rows but the predictions have 2"):
        agreement(result, [p[:2] for p in preds], weights)


def test_agreement_in_labels_mode_has_no_mean_entries():
    preds = random_predictions(3, 5, 2, seed=2)
    out = agreement(secure_ensemble_in_process(preds, reveal="labels"), preds)
    assert out == {"label_agreement": 1.0, "labels_equal_reference": True}


def test_shares_of_a_real_round_look_uniform(real_round):
    preds, _, result = real_round
    fractions = share_fractions(result.transcript)
    assert sorted(fractions) == [0, 1, 2]
    for values in fractions.values():
        assert values.shape == (3 * 40 * 3,)          # institutions x rows x classes
        assert np.all((values >= 0) & (values < 1))
        assert stats.kstest(values, "uniform").pvalue > 1e-6
    # the plaintext inputs are nowhere near uniform over the field: all below 2^16 / p
    own = np.concatenate([np.asarray(v.own_contributions, dtype=float).ravel()
                          for v in result.transcript.views]) / result.transcript.modulus
    assert own.max() < 1e-9


def test_round_costs_of_a_real_round(real_round):
    _, _, result = real_round
    costs = round_costs(result)
    assert costs["reveal"] == "mean" and costs["parties"] == 3 and costs["rows"] == 40
    assert 0 < costs["compute_seconds"] < costs["wall_seconds"]
    assert costs["connect_seconds"] >= 0 and costs["bytes_sent"] > 0


def test_measure_round_costs_runs_real_rounds_and_checks_them():
    rows = measure_round_costs([{"reveal": "mean", "parties": 3, "rows": 4},
                                {"reveal": "labels", "parties": 3, "rows": 16}],
                               n_classes=3, progress=False)
    assert [(r["reveal"], r["parties"], r["rows"], r["classes"]) for r in rows] == [
        ("mean", 3, 4, 3), ("labels", 3, 16, 3)]
    assert all(r["labels_equal_reference"] for r in rows)
    # a secure argmax needs secure comparisons: far more traffic than opening a sum
    assert rows[1]["bytes_sent"] > 3 * rows[0]["bytes_sent"]
    with pytest.raises(ValueError, match=r"setting 0 lacks \['rows'\]"):
        measure_round_costs([{"reveal": "mean", "parties": 3}], progress=False)


def test_figures():
    sharing = share_secret(30, 3, 1, rng=0)
    fig = plot_sharing(sharing, alternatives=[0, 60])
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 3
    # every dashed alternative passes through the known share of party 1
    for line in fig.axes[0].lines[1:]:
        assert line.get_ydata()[1] == sharing.shares[1]
    hist = plot_share_histograms({7: share_samples(7, 1, 200, rng=0)}, 101)
    assert len(hist.axes) == 1
    assert len(plot_share_fractions({0: np.random.default_rng(0).random(30)}).axes) == 1
    rows = fixed_point_errors(random_predictions(3, 20, 2), None, [8, 16])
    assert plot_fixed_point_errors(rows).axes[0].get_yscale() == "log"
    costs = [{"reveal": "mean", "parties": 3, "rows": n, "wall_seconds": 1.0,
              "compute_seconds": 0.01 * n, "bytes_sent": 100.0 * n} for n in (4, 16)]
    fig = plot_round_costs(costs)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    for plot in (plot_share_histograms, plot_fixed_point_errors, plot_share_fractions,
                 plot_round_costs):
        with pytest.raises(ValueError):
            plot(*([{}] if plot is not plot_share_histograms else [{}, 101]))
