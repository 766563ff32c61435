"""Measuring a secure round: precision, agreement with plaintext, what parties saw, and cost.

These functions answer the questions a course (or a reviewer) asks about a secure ensemble:

* :func:`fixed_point_errors`: how far the fixed-point mean is from the float mean, for several
  numbers of fractional bits, next to the guaranteed bound ``M * 2^-(f+1)``;
* :func:`agreement`: does a secure result equal the plaintext reference exactly, and is it
  within the bound of the float weighted mean;
* :func:`share_fractions`: every share a party held, divided by the field's prime (uniform in
  ``[0, 1)`` when shares look random);
* :func:`measure_round_costs`: wall time, compute time and bytes sent by real party processes
  for several sizes.

Figures for all of them are in :mod:`efl_toolkit.secure.plots`.

Example:
    >>> rows = fixed_point_errors(random_predictions(3, 50, 2, seed=0), None, [8, 16])
    >>> [(r["frac_bits"], r["max_abs_error"] <= r["error_bound"]) for r in rows]
    [(8, True), (16, True)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from efl_toolkit.ensemble.combine import check_predictions, weighted_mean
from efl_toolkit.progress import Progress
from efl_toolkit.secure.ensemble import (
    SecureEnsembleResult,
    plaintext_reference,
    secure_ensemble,
)
from efl_toolkit.secure.fixed_point import FixedPoint
from efl_toolkit.secure.transcript import Transcript


def random_predictions(n_institutions: int, n_rows: int, n_classes: int, *,
                       seed: int = 0) -> list[np.ndarray]:
    """Random probability matrices ``[n_rows, n_classes]`` (Dirichlet rows), one per institution.

    Stand-ins for real model outputs when only the size matters (cost measurements).

    Example:
        >>> [p.shape for p in random_predictions(2, 4, 3)]
        [(4, 3), (4, 3)]
    """
    if n_institutions < 1 or n_rows < 1 or n_classes < 2:
        raise ValueError(f"need n_institutions >= 1, n_rows >= 1, n_classes >= 2; got "
                         f"{n_institutions}, {n_rows}, {n_classes}")
    rng = np.random.default_rng(seed)
    return [rng.dirichlet(np.ones(n_classes), size=n_rows) for _ in range(n_institutions)]


def fixed_point_errors(predictions, weights, frac_bits: Sequence[int]) -> list[dict]:
    """Measured fixed-point error of the weighted mean for each number of fractional bits.

    Encoded as when every institution is its own party (weights normalized before encoding);
    a committee divides by the weights' sum after opening, which gives the same bound.

    Args:
        predictions: ``M`` probability matrices ``[n, C]`` (list or dict by institution).
        weights: Institution weights (``None``: equal).
        frac_bits: Fractional bits ``f`` to try.

    Returns:
        One dict per ``f``: ``frac_bits``, ``bit_length`` (bits of the secure integers),
        ``error_bound`` (``M * 2^-(f+1)``), ``max_abs_error`` (largest
        ``|fixed-point mean - float mean|``), ``labels_changed`` (rows whose argmax differs).

    Example:
        >>> fixed_point_errors([[[0.3, 0.7]], [[0.6, 0.4]]], None, [4])[0]["bit_length"]
        8
    """
    names, _ = check_predictions(predictions)
    exact = weighted_mean(predictions, weights)
    rows = []
    for f in frac_bits:
        ref = plaintext_reference(predictions, weights, reveal="mean", frac_bits=int(f),
                                  committee=None)
        fp = FixedPoint.for_inputs(len(names), int(f))
        rows.append({"frac_bits": int(f), "bit_length": fp.bit_length,
                     "error_bound": fp.error_bound,
                     "max_abs_error": float(np.max(np.abs(ref.mean - exact))),
                     "labels_changed": int(np.sum(ref.labels != np.argmax(exact, axis=1)))})
    return rows


def agreement(result: SecureEnsembleResult, predictions, weights=None) -> dict:
    """How a secure result compares with plaintext: exact reference and float weighted mean.

    Returns:
        ``label_agreement`` (share of rows whose secure label equals the reference label),
        ``labels_equal_reference`` (all equal), and for ``reveal="mean"`` also
        ``max_abs_diff_vs_reference`` (0.0: the same integers), ``max_abs_diff_vs_float`` and
        ``error_bound``.

    Example:
        >>> from efl_toolkit.secure import secure_ensemble_in_process
        >>> preds = [[[0.9, 0.1]], [[0.2, 0.8]]]
        >>> agreement(secure_ensemble_in_process(preds), preds)["max_abs_diff_vs_reference"]
        0.0
    """
    ref = plaintext_reference(predictions, weights, reveal=result.reveal,
                              frac_bits=result.fixed_point.frac_bits, committee=result.committee)
    if ref.labels.shape != result.labels.shape:
        raise ValueError(f"the result has {result.labels.shape[0]} rows but the predictions "
                         f"have {ref.labels.shape[0]}")
    same = result.labels == ref.labels
    out = {"label_agreement": float(np.mean(same)), "labels_equal_reference": bool(same.all())}
    if result.mean is not None:
        exact = weighted_mean(predictions, weights)
        out.update(max_abs_diff_vs_reference=float(np.max(np.abs(result.mean - ref.mean))),
                   max_abs_diff_vs_float=float(np.max(np.abs(result.mean - exact))),
                   error_bound=result.fixed_point.error_bound)
    return out


def share_fractions(transcript: Transcript) -> dict[int, np.ndarray]:
    """Every input share each party held, divided by the field's prime: ``{party: values}``.

    If the shares look random, each party's values are spread uniformly over ``[0, 1)``
    whatever the probabilities behind them.

    Example:
        >>> from efl_toolkit.secure import secure_ensemble_in_process
        >>> res = secure_ensemble_in_process([[[0.9, 0.1]], [[0.2, 0.8]]], transcript=True)
        >>> list(share_fractions(res.transcript))
        [0]
    """
    p = transcript.modulus
    return {v.party: np.array([int(x) / p for share in v.input_shares
                               for x in np.asarray(share).ravel()])
            for v in transcript.views}


def round_costs(result: SecureEnsembleResult) -> dict:
    """Time and traffic of one round: ``wall_seconds`` (process start to result),
    ``compute_seconds`` and ``connect_seconds`` (slowest party), ``bytes_sent`` (per party,
    mean).

    Example:
        >>> from efl_toolkit.secure import secure_ensemble_in_process
        >>> round_costs(secure_ensemble_in_process([[[0.9, 0.1]], [[0.2, 0.8]]]))["parties"]
        1
    """
    def worst(values):
        values = [v for v in values if v is not None]
        return max(values) if values else None

    sent = [p.bytes_sent for p in result.parties if p.bytes_sent is not None]
    return {"reveal": result.reveal, "parties": result.n_parties,
            "rows": int(result.labels.shape[0]), "wall_seconds": result.seconds,
            "compute_seconds": worst(p.compute_seconds for p in result.parties),
            "connect_seconds": worst(p.connect_seconds for p in result.parties),
            "bytes_sent": int(round(float(np.mean(sent)))) if sent else None}


def measure_round_costs(settings: Sequence[Mapping], *, n_classes: int = 2, seed: int = 0,
                        progress: bool = True, **kwargs) -> list[dict]:
    """Runs one real secure round per setting and reports its cost.

    Args:
        settings: Mappings with ``reveal`` (``"mean"``/``"labels"``), ``parties`` (the number
            of institutions) and ``rows``, optionally ``committee`` (compute parties; absent or
            ``None``: every institution is its own party, M >= 2); inputs are
            :func:`random_predictions` of that size.
        n_classes: Classes per row.
        seed: Seed of the random inputs.
        progress: Show a progress bar (one step per round).
        **kwargs: Passed on to :func:`~efl_toolkit.secure.secure_ensemble` (e.g. ``timeout``).

    Returns:
        One :func:`round_costs` dict per setting, in order, plus ``classes`` and
        ``labels_equal_reference`` (the round was also checked against plaintext).

    Example:
        >>> rows = measure_round_costs([{"reveal": "mean", "parties": 3, "rows": 8}],
        ...                            progress=False)
        >>> rows[0]["parties"], rows[0]["labels_equal_reference"]
        (3, True)
    """
    rows, settings = [], list(settings)
    bar = Progress(len(settings), "secure rounds", unit="round", enabled=progress)
    for index, setting in enumerate(settings):
        missing = {"reveal", "parties", "rows"} - set(setting)
        if missing:
            raise ValueError(f"setting {index} lacks {sorted(missing)}: {dict(setting)}")
        preds = random_predictions(int(setting["parties"]), int(setting["rows"]), n_classes,
                                   seed=seed + index)
        result = secure_ensemble(preds, reveal=setting["reveal"],
                                 committee=setting.get("committee"), **kwargs)
        rows.append({**round_costs(result), "classes": n_classes,
                     "labels_equal_reference": agreement(result, preds)["labels_equal_reference"]})
        bar.update(parties=setting["parties"], reveal=setting["reveal"])
    bar.finish()
    return rows
