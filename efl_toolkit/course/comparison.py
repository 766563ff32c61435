"""Plaintext ensembles of the institutions' models versus each institution alone.

Once every institution has trained its own (different) models, the federation can still learn
together by combining **predictions**: class probabilities on the same queries (the shared test
split). This module computes, from the training results of
:func:`efl_toolkit.federation.level1.train_each_alone`:

* every model's test probabilities (:func:`member_probabilities`);
* each institution's level-1 local ensemble next to its individual models (:func:`level1_rows`);
* level-2 weights from data sizes or from each institution's own validation accuracy;
* a table of ensembles — flat mean and vote over all models, and hierarchical ensembles
  (level-1 mean, then mean / size-weighted / validation-weighted / vote across institutions) —
  next to every institution alone (:func:`ensemble_rows`).

Everything here is in the clear: the secure version of level 2 is notebook 04's subject.

Example:
    >>> import jax
    >>> from efl_toolkit.federation.level1 import train_each_alone
    >>> from efl_toolkit.config import TrainConfig
    >>> from efl_toolkit.data import load_dataset, make_institutions
    >>> ds = load_dataset("breastmnist")
    >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
    >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
    >>> rows = ensemble_rows(res, insts, ds)
    >>> [r["kind"] for r in rows][:3]
    ['institution alone', 'institution alone', 'ensemble']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from flax import nnx

from efl_toolkit.data.institution import Institution
from efl_toolkit.data.medmnist import Dataset
from efl_toolkit.ensemble import combine, hierarchical_ensemble, weights_from_sizes
from efl_toolkit.federation.level1 import LocalResult
from efl_toolkit.training.evaluate import EvaluationResult, evaluate
from efl_toolkit.training.local import predict_proba


def _check(results: Mapping[str, LocalResult],
           institutions: Sequence[Institution] | None = None) -> None:
    if not results:
        raise ValueError("no training results given")
    if institutions is not None:
        ids = [inst.id for inst in institutions]
        if list(results) != ids:
            raise ValueError(f"results are for institutions {list(results)} but the "
                             f"institutions given are {ids}")


def member_probabilities(results: Mapping[str, LocalResult], images: np.ndarray
                         ) -> dict[str, dict[str, np.ndarray]]:
    """Every model's class probabilities on ``images``: ``{institution: {arch: [n, C]}}``.

    Example:
        >>> import jax
        >>> from efl_toolkit.federation.level1 import train_each_alone
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
        >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> probs = member_probabilities(res, ds.test.images)
        >>> probs["hospital-a"]["logistic"].shape
        (156, 2)
    """
    _check(results)
    return {name: {arch: predict_proba(trained.model, images)
                   for arch, trained in zip(result.architectures, result.trained, strict=True)}
            for name, result in results.items()}


def primary_models(results: Mapping[str, LocalResult]) -> dict[str, nnx.Module]:
    """Each institution's first (most capable) model, keyed by institution id.

    Example:
        >>> import jax
        >>> from efl_toolkit.federation.level1 import train_each_alone
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
        >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> type(primary_models(res)["hospital-a"]).__name__
        'LogisticRegression'
    """
    _check(results)
    return {name: result.trained[0].model for name, result in results.items()}


def evaluation_row(name: str, kind: str, evaluation: EvaluationResult, **extra) -> dict:
    """One table row from an evaluation: ``name``, ``kind``, accuracy, balanced accuracy, AUC.

    Example:
        >>> ev = evaluate(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]), 2)
        >>> evaluation_row("centralized", "baseline", ev)["balanced_accuracy"]
        1.0
    """
    return {"name": name, "kind": kind, "accuracy": evaluation.accuracy,
            "balanced_accuracy": evaluation.balanced_accuracy, "auc": evaluation.auc, **extra}


def level1_rows(results: Mapping[str, LocalResult]) -> list[dict]:
    """Each institution's models and their mean (the level-1 local ensemble) on the test split.

    Example:
        >>> import jax
        >>> from efl_toolkit.federation.level1 import train_each_alone
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
        >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> [r["member"] for r in level1_rows(res)][:2]
        ['logistic', 'local ensemble (mean)']
    """
    _check(results)
    rows = []
    for name, result in results.items():
        for arch in result.architectures:
            ev = result.per_model[arch]
            rows.append({"institution": name, "member": arch, "accuracy": ev.accuracy,
                         "balanced_accuracy": ev.balanced_accuracy, "auc": ev.auc})
        rows.append({"institution": name, "member": "local ensemble (mean)",
                     "accuracy": result.test.accuracy,
                     "balanced_accuracy": result.test.balanced_accuracy,
                     "auc": result.test.auc})
    return rows


def validation_accuracies(results: Mapping[str, LocalResult],
                          institutions: Sequence[Institution]) -> dict[str, float]:
    """Each institution's level-1 accuracy on its *own* validation share.

    This is all an institution can know about itself without seeing anyone's data; with skewed
    shares it can be badly misleading (a share of one class rewards a one-class model).

    Example:
        >>> import jax
        >>> from efl_toolkit.federation.level1 import train_each_alone
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
        >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> sorted(validation_accuracies(res, insts))
        ['hospital-a', 'hospital-b']
    """
    _check(results, institutions)
    scores = {}
    for inst in institutions:
        if inst.n_val == 0:
            raise ValueError(f"{inst.id}: has no validation share to score itself on")
        result = results[inst.id]
        probs = np.mean([predict_proba(t.model, inst.val.images) for t in result.trained],
                        axis=0)
        scores[inst.id] = evaluate(probs, inst.val.labels, probs.shape[1], warn=False).accuracy
    return scores


def level2_weights(results: Mapping[str, LocalResult],
                   institutions: Sequence[Institution]) -> list[dict]:
    """The two level-2 weightings side by side: by training size and by own validation score.

    Example:
        >>> import jax
        >>> from efl_toolkit.federation.level1 import train_each_alone
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
        >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> [round(sum(r[k] for r in level2_weights(res, insts)), 6)
        ...  for k in ("weight_by_size", "weight_by_validation")]
        [1.0, 1.0]
    """
    _check(results, institutions)
    sizes = weights_from_sizes([inst.n_train for inst in institutions])
    scores = validation_accuracies(results, institutions)
    by_score = np.array([scores[inst.id] for inst in institutions])
    by_score = by_score / by_score.sum() if by_score.sum() > 0 else np.full(len(by_score),
                                                                            1 / len(by_score))
    return [{"institution": inst.id, "n_train": inst.n_train,
             "own_val_accuracy": scores[inst.id], "weight_by_size": float(size),
             "weight_by_validation": float(score)}
            for inst, size, score in zip(institutions, sizes, by_score, strict=True)]


def ensemble_rows(results: Mapping[str, LocalResult], institutions: Sequence[Institution],
                  dataset: Dataset) -> list[dict]:
    """Every institution alone, then the plaintext ensembles, scored on the test split.

    Ensembles (``kind == "ensemble"``):

    * ``flat mean``: the mean of *all* models' probabilities (institutions with more models
      count more);
    * ``flat vote``: the majority vote of all models;
    * ``hierarchical mean``: level 1 mean inside each institution, then the plain mean;
    * ``hierarchical weighted by size``: level 2 weighted by training-set size;
    * ``hierarchical weighted by validation``: level 2 weighted by own validation accuracy;
    * ``hierarchical vote``: level 2 majority vote of the institutions.

    Example:
        >>> import jax
        >>> from efl_toolkit.federation.level1 import train_each_alone
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)
        >>> res = train_each_alone(insts, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> names = [r["name"] for r in ensemble_rows(res, insts, ds)]
        >>> names[2:4]
        ['flat mean', 'flat vote']
    """
    _check(results, institutions)
    labels, n_classes = dataset.test.labels, dataset.n_classes
    members = member_probabilities(results, dataset.test.images)
    flat = {f"{inst}/{arch}": p for inst, models in members.items() for arch, p in models.items()}
    by_institution = {inst: list(models.values()) for inst, models in members.items()}
    weights = level2_weights(results, institutions)

    def scored(probabilities) -> EvaluationResult:
        return evaluate(probabilities, labels, n_classes, warn=False)

    rows = [evaluation_row(name, "institution alone", result.test)
            for name, result in results.items()]
    rows.append(evaluation_row("flat mean", "ensemble", scored(combine(flat, "mean")
                                                               .probabilities)))
    rows.append(evaluation_row("flat vote", "ensemble", scored(combine(flat, "vote")
                                                               .probabilities)))
    variants = {
        "hierarchical mean": ("mean", None),
        "hierarchical weighted by size": ("weighted", [w["weight_by_size"] for w in weights]),
        "hierarchical weighted by validation": (
            "weighted", [w["weight_by_validation"] for w in weights]),
        "hierarchical vote": ("vote", None),
    }
    for name, (method, level2_w) in variants.items():
        ensemble = hierarchical_ensemble(by_institution, level1="mean", level2=method,
                                         level2_weights=level2_w)
        rows.append(evaluation_row(name, "ensemble", scored(ensemble.probabilities)))
    return rows


def best_row(rows: Sequence[Mapping], kind: str, metric: str = "balanced_accuracy") -> Mapping:
    """The row of a kind with the highest ``metric`` (NaN counts as lowest).

    Example:
        >>> best_row([{"kind": "a", "auc": 0.6}, {"kind": "a", "auc": 0.7}], "a", "auc")["auc"]
        0.7
    """
    candidates = [row for row in rows if row.get("kind") == kind]
    if not candidates:
        raise ValueError(f"no row of kind {kind!r}")
    return max(candidates, key=lambda row: -np.inf if row[metric] is None
               or np.isnan(row[metric]) else row[metric])


def verdict(rows: Sequence[Mapping], metric: str = "auc") -> str:
    """Compares the best ensemble with the best institution alone, from the numbers given.

    Example:
        >>> print(verdict([{"name": "hospital-a", "kind": "institution alone", "auc": 0.70},
        ...                {"name": "flat mean", "kind": "ensemble", "auc": 0.75}]))
        best ensemble:               flat mean (auc 0.750)
        best institution alone:      hospital-a (auc 0.700)
        in this run the ensemble is: higher by 0.050
    """
    ensemble = best_row(rows, "ensemble", metric)
    single = best_row(rows, "institution alone", metric)
    gap = float(ensemble[metric]) - float(single[metric])
    if abs(gap) < 5e-4:
        relation = "equal"
    else:
        relation = f"{'higher' if gap > 0 else 'lower'} by {abs(gap):.3f}"
    return (f"best ensemble:               {ensemble['name']} ({metric} "
            f"{float(ensemble[metric]):.3f})\n"
            f"best institution alone:      {single['name']} ({metric} "
            f"{float(single[metric]):.3f})\n"
            f"in this run the ensemble is: {relation}")
