"""Re-combining one trained federation: level-2 rules and fixed-point precision, no retraining.

Example:
    >>> from efl_toolkit.config import get_config
    >>> fed = train_federation(get_config())  # doctest: +SKIP
    >>> [r["frac_bits"] for r in precision_rows(fed, [4, 16])]  # doctest: +SKIP
    [4, 16]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from efl_toolkit.ensemble import argmax_labels, combine, weighted_mean
from efl_toolkit.playground.federation import Federation, score_on_test
from efl_toolkit.secure import SecureEnsembleResult, plaintext_reference, secure_ensemble
from efl_toolkit.secure.fixed_point import FixedPoint


def rule_rows(fed: Federation) -> list[dict]:
    """Every level-2 rule on the same level-1 probabilities, scored on the test split.

    Rules: ``mean``, ``weighted by size``, ``weighted by own validation AUC`` (the pipeline's
    rule), ``vote`` and ``vote weighted by own validation AUC``. A vote's AUC is computed on
    vote shares, which are coarse.

    Example:
        >>> [r["rule"] for r in rule_rows(fed)][:2]  # doctest: +SKIP
        ['mean', 'weighted by size']
    """
    probs = fed.test_probs
    rules = [("mean", "mean", None), ("weighted by size", "weighted", fed.size_weights),
             ("weighted by own validation AUC", "weighted", fed.val_weights),
             ("vote", "vote", None),
             ("vote weighted by own validation AUC", "vote", fed.val_weights)]
    return [{"rule": name, **score_on_test(fed, combine(probs, method, weights).probabilities)}
            for name, method, weights in rules]


def precision_rows(fed: Federation, frac_bits: Sequence[int],
                   weights: Mapping[str, float] | None = None) -> list[dict]:
    """The fixed-point weighted mean for each number of fractional bits, in plaintext.

    Uses the parties' own encoding (:func:`~efl_toolkit.secure.plaintext_reference`), so each
    row is exactly what a secure round with that precision would open.

    Returns:
        One dict per ``f``: ``frac_bits``, ``bit_length``, ``error_bound`` (``M 2^-(f+1)``),
        ``max_abs_error`` (vs the float weighted mean), ``labels_changed`` (rows whose label
        differs from the float argmax) and the fixed-point labels' ``accuracy``.

    Example:
        >>> precision_rows(fed, [4, 16])[0]["frac_bits"]  # doctest: +SKIP
        4
    """
    probs = fed.test_probs
    weights = fed.val_weights if weights is None else weights
    exact = weighted_mean(probs, weights)
    rows = []
    for f in frac_bits:
        ref = plaintext_reference(probs, weights, reveal="mean", frac_bits=int(f))
        fp = FixedPoint.for_inputs(len(probs), int(f))
        rows.append({"frac_bits": int(f), "bit_length": fp.bit_length,
                     "error_bound": fp.error_bound,
                     "max_abs_error": float(np.max(np.abs(ref.mean - exact))),
                     "labels_changed": int(np.sum(ref.labels != argmax_labels(exact))),
                     "accuracy": float(np.mean(ref.labels == fed.dataset.test.labels))})
    return rows


def precision_round(fed: Federation, frac_bits: int,
                    weights: Mapping[str, float] | None = None) -> tuple[SecureEnsembleResult,
                                                                         dict]:
    """One real secure round (one MPyC process per institution) at ``frac_bits`` precision.

    Returns:
        ``(result, facts)``: facts hold ``labels_equal_reference`` (the secure labels equal the
        plaintext fixed-point reference), ``labels_changed_vs_float``, ``max_abs_error`` vs the
        float mean, ``error_bound`` and ``seconds``.
    """
    probs = fed.test_probs
    weights = fed.val_weights if weights is None else weights
    result = secure_ensemble(probs, weights, reveal="mean", frac_bits=int(frac_bits))
    ref = plaintext_reference(probs, weights, reveal="mean", frac_bits=int(frac_bits))
    exact = weighted_mean(probs, weights)
    return result, {
        "frac_bits": int(frac_bits), "parties": result.n_parties,
        "labels_equal_reference": bool(np.array_equal(result.labels, ref.labels)),
        "labels_changed_vs_float": int(np.sum(result.labels != argmax_labels(exact))),
        "max_abs_error": float(np.max(np.abs(result.mean - exact))),
        "error_bound": result.fixed_point.error_bound, "seconds": round(result.seconds, 3)}


def scenario_rows(scenarios: Mapping[str, Federation]) -> list[dict]:
    """The level-2 ensemble of each scenario, with equal weights and with own-validation weights.

    Example:
        >>> rows = scenario_rows({"honest": fed, "poisoned": bad})  # doctest: +SKIP
        >>> [r["name"] for r in rows]  # doctest: +SKIP
        ['honest: mean', 'honest: weighted by own validation AUC', 'poisoned: mean', ...]
    """
    rows = []
    for name, fed in scenarios.items():
        for rule, weights in (("mean", None), ("weighted by own validation AUC",
                                               fed.val_weights)):
            rows.append({"name": f"{name}: {rule}", "scenario": name, "rule": rule,
                         **score_on_test(fed, weighted_mean(fed.test_probs, weights))})
    return rows
