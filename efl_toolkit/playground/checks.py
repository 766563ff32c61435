"""What an honest consortium can check about its members without trusting their claims.

* :func:`agreement_matrix` and :func:`consensus_rows` need no labels: how often each member's
  labels agree with the others' (a member that systematically disagrees stands out; honest
  members under strong label skew disagree too, so read it with the partition in mind);
* :func:`leave_one_out_rows` needs a labelled audit set: the ensemble without each member;
* :func:`evidence_rows` puts these next to the claims signed on the ledger
  (:func:`efl_toolkit.playground.recorded.ledger_claims`).

Example:
    >>> import numpy as np
    >>> probs = {"a": np.eye(2), "b": np.eye(2), "c": np.eye(2)[::-1]}
    >>> [r["median_agreement"] for r in consensus_rows(probs)]
    [0.5, 0.5, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from efl_toolkit.ensemble import argmax_labels, check_predictions, weighted_mean
from efl_toolkit.training import evaluate


def agreement_matrix(probs: Mapping[str, np.ndarray]) -> np.ndarray:
    """Share of queries on which two institutions predict the same label, ``[M, M]``.

    Needs no labels: any member can compute it on the ensemble's own queries if the
    institutions' labels are opened to it (here: in the clear, for the course).

    Example:
        >>> agreement_matrix({"a": np.eye(2), "b": np.eye(2), "c": np.eye(2)[::-1]}).tolist()
        [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    _, stacked = check_predictions(dict(probs))
    labels = np.argmax(stacked, axis=2)
    return (labels[:, None, :] == labels[None, :, :]).mean(axis=2)


def consensus_rows(probs: Mapping[str, np.ndarray]) -> list[dict]:
    """Each institution against the OTHERS; no labels needed.

    Returns:
        Rows ``institution``; ``median_agreement``: the median over the other members of the
        share of queries on which both predict the same label (robust: one confident liar
        cannot drag it); ``consensus_agreement``: share of queries where its label equals the
        label of the others' mean probabilities (with few members a confident outlier among
        the others can tip that mean); ``distance``: mean total-variation distance of its
        probabilities from the others' mean (0 to 1).

    Example:
        >>> rows = consensus_rows({"a": np.eye(2), "b": np.eye(2), "c": np.eye(2)[::-1]})
        >>> [(r["institution"], r["median_agreement"]) for r in rows]
        [('a', 0.5), ('b', 0.5), ('c', 0.0)]
    """
    names, stacked = check_predictions(dict(probs))
    if len(names) < 2:
        raise ValueError("a consensus of the others needs at least two institutions")
    pairwise = agreement_matrix(dict(zip(names, stacked, strict=True)))
    rows = []
    for k, name in enumerate(names):
        others = np.delete(stacked, k, axis=0).mean(axis=0)
        rows.append({
            "institution": name,
            "median_agreement": float(np.median(np.delete(pairwise[k], k))),
            "consensus_agreement": float(np.mean(argmax_labels(stacked[k])
                                                 == argmax_labels(others))),
            "distance": float(np.mean(0.5 * np.abs(stacked[k] - others).sum(axis=1)))})
    return rows


def leave_one_out_rows(probs: Mapping[str, np.ndarray], weights: Mapping[str, float],
                       labels: np.ndarray, n_classes: int) -> list[dict]:
    """The weighted ensemble with everybody, then without each institution in turn.

    Needs labelled queries (an audit set the consortium agrees on; here the test split).
    ``delta_auc`` is the change when the institution is left out: positive means the
    ensemble is better without it.

    Example:
        >>> probs = {"a": np.eye(2), "b": np.eye(2), "c": np.eye(2)[::-1]}
        >>> rows = leave_one_out_rows(probs, {"a": 1, "b": 1, "c": 1}, np.array([0, 1]), 2)
        >>> [(r["left_out"], r["accuracy"]) for r in rows]
        [('nobody', 1.0), ('a', 0.5), ('b', 0.5), ('c', 1.0)]
    """
    names = list(probs)
    if len(names) < 2:
        raise ValueError("leaving one out needs at least two institutions")

    def scores(members: list[str]) -> dict:
        mean = weighted_mean([probs[m] for m in members], [weights[m] for m in members])
        ev = evaluate(mean, labels, n_classes, warn=False)
        return {"accuracy": ev.accuracy, "balanced_accuracy": ev.balanced_accuracy,
                "auc": ev.auc}

    everybody = scores(names)
    rows = [{"left_out": "nobody", **everybody, "delta_auc": 0.0}]
    for name in names:
        without = scores([m for m in names if m != name])
        rows.append({"left_out": name, **without,
                     "delta_auc": float(without["auc"] - everybody["auc"])})
    return rows


def plot_agreement(matrix: np.ndarray, names: Sequence[str], *,
                   title: str = "Label agreement between institutions") -> Figure:
    """Heat map of :func:`agreement_matrix` with the shares written in.

    Example:
        >>> plot_agreement(np.eye(2), ["a", "b"]).axes[0].get_title()
        'Label agreement between institutions'
    """
    fig = Figure(figsize=(1.6 + 1.1 * len(names), 1.2 + 1.0 * len(names)), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="RdYlGn", vmin=0.0, vmax=1.0)
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names, rotation=30, ha="right")
    ax.set_yticks(ticks, names)
    ax.set(title=title, xlabel="institution", ylabel="institution")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of test images given the same label")
    return fig


def evidence_rows(claims: Sequence[Mapping], consensus: Sequence[Mapping],
                  leave_one_out: Sequence[Mapping]) -> list[dict]:
    """Claims from the ledger next to what the consortium measured, one row per institution.

    Example:
        >>> evidence_rows([{"institution": "a", "claimed_val_auc": 0.9, "round_weight": 0.5}],
        ...               [{"institution": "a", "median_agreement": 0.2}],
        ...               [{"left_out": "a", "delta_auc": 0.1}])[0]["agreement_with_others"]
        0.2
    """
    by_consensus = {r["institution"]: r for r in consensus}
    by_loo = {r["left_out"]: r for r in leave_one_out}
    return [{"institution": c["institution"], "claimed_val_auc": c["claimed_val_auc"],
             "round_weight": c["round_weight"],
             "agreement_with_others": by_consensus[c["institution"]]["median_agreement"],
             "auc_gain_without_it": by_loo[c["institution"]]["delta_auc"]} for c in claims]
