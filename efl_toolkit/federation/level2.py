"""Level 2 of the method: how much say each institution gets in the ensemble across them.

A level-2 **rule** maps the institutions' local ensembles to one non-negative weight each; the
committee then opens the weighted mean of their test probabilities under secret sharing
(:func:`efl_toolkit.secure.committee_ensemble`). The rules are registered by name
(:func:`register_rule`, :func:`rule_names`) and chosen by ``ExperimentConfig.rule``:

* ``consortium_auc`` (``rule="auto"`` for the hierarchical method, :func:`consortium_weights`):
  every institution's local ensemble is scored on the validation shares of *all* institutions.
  Each institution computes, on its own share, a histogram of every local ensemble's scores for
  its positive and negative examples; the committee adds the histograms (secure aggregation),
  and the AUC comes from the pooled histograms
  (:func:`efl_toolkit.federation.aggregation.pooled_auc`, exact up to the bin width). No
  institution's own score or labels are revealed, and one tiny, skewed share can no longer zero
  a good institution.
* ``own_auc`` (``rule="auto"`` for ``ensemble_only``, the first design,
  :func:`level2_weights`): the AUC an institution reports on its OWN validation share, which
  the consortium has to take on trust.
* ``equal``: one weight each; ``n_train``: proportional to the training-share sizes.

Both AUC rules weigh ``AUC - 0.5`` (:data:`WEIGHT_FLOOR`, chance level), normalized to sum 1:
an institution whose AUC is at or below chance (or undefined) keeps a token ``1e-6`` before
normalizing, so it is printed as weight **0.00**: it has (almost) no say in the mean.

Example:
    >>> level2_weights([], {}, 2)
    {}
    >>> rule_names()
    ('consortium_auc', 'equal', 'n_train', 'own_auc')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from efl_toolkit.data.institution import Institution
from efl_toolkit.ensemble import normalize_weights, weights_from_scores, weights_from_sizes
from efl_toolkit.federation.aggregation import (
    SumFn,
    pooled_auc,
    pooled_histograms,
    youden_threshold,
)
from efl_toolkit.federation.level1 import LocalResult
from efl_toolkit.training import evaluate, predict_proba

#: Level-2 weights: an institution's validation AUC above this floor (chance level); at or
#: below it the weight is a token 1e-6 before normalizing (printed 0.00).
WEIGHT_FLOOR = 0.5


def own_validation_auc(institution: Institution, result: LocalResult, n_classes: int) -> float:
    """The level-1 AUC an institution measures on its OWN validation share (0.5 if undefined).

    Only the institution itself can compute this (no data leaves it); a consortium has to take
    its word for it, which is why notebook 07 shows what a lying institution can do.

    Example:
        >>> import jax
        >>> from efl_toolkit.config import TrainConfig
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> from efl_toolkit.federation.level1 import train_institution
        >>> ds = load_dataset("breastmnist")
        >>> inst = make_institutions(ds, 2, capacities=["tiny", "tiny"], seed=0)[0]
        >>> res = train_institution(inst, ds, TrainConfig(epochs=1), jax.random.key(0))
        >>> 0.0 <= own_validation_auc(inst, res, ds.n_classes) <= 1.0
        True
    """
    probs = np.mean([predict_proba(t.model, institution.val.images) for t in result.trained],
                    axis=0)
    auc = evaluate(probs, institution.val.labels, n_classes, warn=False).auc
    return WEIGHT_FLOOR if np.isnan(auc) else float(auc)


def level2_weights(institutions: Sequence[Institution], alone: Mapping[str, LocalResult],
                   n_classes: int) -> dict[str, float]:
    """Each institution's level-2 weight: its own validation AUC above chance, normalized.

    Scores at or below chance (AUC 0.5) keep a token 1e-6 before normalizing (weight 0.00).

    Example:
        >>> level2_weights([], {}, 2)
        {}
    """
    if not institutions:
        return {}
    scores = [own_validation_auc(inst, alone[inst.id], n_classes) for inst in institutions]
    weights = weights_from_scores(scores, floor=WEIGHT_FLOOR)
    return {inst.id: float(w) for inst, w in zip(institutions, weights, strict=True)}


def consortium_validation_auc(predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]],
                              institutions: Sequence[Institution], n_classes: int,
                              sum_fn: SumFn) -> dict[str, float]:
    """Each local ensemble's AUC on the pooled validation shares of all institutions, securely.

    Args:
        predictors: ``{institution: images -> probabilities}``: each local ensemble (its models
            are shared with the consortium for scoring; data never leaves an institution).
        institutions: Whose validation shares score them.
        n_classes: Number of classes.
        sum_fn: Secure aggregation (:func:`efl_toolkit.federation.aggregation.secure_aggregation`).

    Returns:
        ``{institution: pooled validation AUC}`` (NaN where undefined).
    """
    return pooled_auc(predictors, [(i.id, i.val) for i in institutions], n_classes, sum_fn)


def consortium_class_prior(institutions: Sequence[Institution], n_classes: int,
                           sum_fn: SumFn) -> np.ndarray:
    """The class frequencies of all institutions' training shares pooled, securely.

    Each institution gives its own class frequencies with its ``n_train`` as public weight; the
    committee's weighted mean is the pooled prior, with no institution's counts revealed. One
    example per class is added (Laplace smoothing) so no class has prior 0.

    Example:
        >>> from efl_toolkit.federation.aggregation import plaintext_aggregation
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> consortium_class_prior(make_institutions(ds, 3, seed=0), 2,
        ...                        plaintext_aggregation).round(3).tolist()
        [0.268, 0.732]
    """
    vectors, weights = {}, {}
    for inst in institutions:
        if inst.n_train:
            vectors[inst.id] = inst.train.class_counts(n_classes) / inst.n_train
            weights[inst.id] = float(inst.n_train)
    mean, included = sum_fn(vectors, weights, ())
    counts = mean * sum(weights[i] for i in included) + 1.0
    return counts / counts.sum()


def operating_point(predict: Callable[[np.ndarray], np.ndarray],
                    institutions: Sequence[Institution], n_classes: int, sum_fn: SumFn,
                    prior: np.ndarray) -> np.ndarray:
    """The level-2 decision rule as an effective class prior for :func:`prior_corrected`.

    Two classes: the threshold ``t`` on the positive-class score that maximizes Youden's
    ``J = TPR - FPR`` (the balanced-accuracy optimum) on the pooled validation shares, from
    histograms the committee sums (:func:`~efl_toolkit.federation.aggregation.youden_threshold`)
    ; returned as ``[1 - t, t]`` (``p_1 >= t`` predicts positive). More classes: ``prior``.
    """
    if n_classes != 2:
        return np.asarray(prior, dtype=np.float64)
    hist = pooled_histograms({"ensemble": predict}, [(i.id, i.val) for i in institutions],
                             n_classes, sum_fn)["ensemble"]
    t = min(max(youden_threshold(hist), 1e-3), 1 - 1e-3)
    return np.array([1.0 - t, t])


def consortium_weights(scores: Mapping[str, float]) -> dict[str, float]:
    """Level-2 weights from consortium validation AUCs: ``AUC - 0.5``, normalized; an AUC at
    or below chance, or undefined (NaN), keeps a token 1e-6 before normalizing (weight 0.00).

    Example:
        >>> {k: round(v, 3) for k, v in consortium_weights({"a": 0.8, "b": 0.7,
        ...                                                   "c": float("nan")}).items()}
        {'a': 0.6, 'b': 0.4, 'c': 0.0}
    """
    names = list(scores)
    values = [WEIGHT_FLOOR if np.isnan(scores[n]) else scores[n] for n in names]
    weights = weights_from_scores(values, floor=WEIGHT_FLOOR)
    return {n: float(w) for n, w in zip(names, weights, strict=True)}


@dataclass(frozen=True)
class RuleInputs:
    """What a level-2 rule may use (all public to the consortium, or computed securely).

    Attributes:
        institutions: The institutions, in the round's order (their ``val`` shares are private:
            a rule that scores on them must pool the result through ``sum_fn``, as
            ``consortium_auc`` does, or trust each institution's own word, as ``own_auc``).
        predictors: ``{institution: images [B, H, W, C] -> probabilities [B, C]}``, each
            institution's local ensemble (the method's, after the groups).
        n_classes: Number of classes.
        sum_fn: The committee's secure aggregation
            (:func:`efl_toolkit.federation.aggregation.secure_aggregation`).
        method: ``"hierarchical"`` or ``"ensemble_only"``.
        validation_auc: Consortium validation AUCs when the pipeline has them already.
    """

    institutions: tuple[Institution, ...]
    predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]]
    n_classes: int
    sum_fn: SumFn
    method: str = "hierarchical"
    validation_auc: Mapping[str, float] = field(default_factory=dict)

    def consortium_auc(self) -> dict[str, float]:
        """Each local ensemble's AUC on the pooled validation shares (computed securely)."""
        if self.validation_auc:
            return dict(self.validation_auc)
        return consortium_validation_auc(self.predictors, self.institutions, self.n_classes,
                                         self.sum_fn)


#: ``rule(inputs) -> {institution: weight >= 0}`` (normalized by :func:`apply_rule`).
Rule = Callable[[RuleInputs], Mapping[str, float]]


def _own_auc_rule(inputs: RuleInputs) -> dict[str, float]:
    scores = []
    for inst in inputs.institutions:
        probs = inputs.predictors[inst.id](inst.val.images)
        auc = evaluate(probs, inst.val.labels, inputs.n_classes, warn=False).auc
        scores.append(WEIGHT_FLOOR if np.isnan(auc) else float(auc))
    weights = weights_from_scores(scores, floor=WEIGHT_FLOOR)
    return {inst.id: float(w) for inst, w in zip(inputs.institutions, weights, strict=True)}


RULES: dict[str, Rule] = {
    "consortium_auc": lambda inputs: consortium_weights(inputs.consortium_auc()),
    "own_auc": _own_auc_rule,
    "equal": lambda inputs: {inst.id: 1.0 for inst in inputs.institutions},
    "n_train": lambda inputs: dict(zip(
        [i.id for i in inputs.institutions],
        weights_from_sizes([i.n_train for i in inputs.institutions]).tolist(), strict=True)),
}
#: What ``rule="auto"`` means for each method.
AUTO_RULES = {"hierarchical": "consortium_auc", "ensemble_only": "own_auc"}


def rule_names() -> tuple[str, ...]:
    """The registered level-2 rule names, sorted."""
    return tuple(sorted(RULES))


def register_rule(name: str, rule: Rule, *, replace: bool = False) -> None:
    """Registers one's own level-2 rule under ``name`` (then ``ExperimentConfig(rule=name)``,
    ``efl demo --rule name`` in a process that registered it, and the report names it).

    Args:
        name: A new rule name (letters, digits, ``_`` and ``-``).
        rule: ``rule(inputs: RuleInputs) -> {institution id: weight}``; every institution needs
            a finite weight ``>= 0`` and at least one must be positive (normalized to sum 1).
        replace: Allow replacing a registered rule of that name.

    Raises:
        ValueError: A bad or taken name, or a ``rule`` that is not callable.

    Example:
        >>> register_rule("first_only", lambda inputs: {
        ...     i.id: float(k == 0) for k, i in enumerate(inputs.institutions)})
        >>> "first_only" in rule_names()
        True
        >>> unregister_rule("first_only")
    """
    if not isinstance(name, str) or not name or not name.replace("_", "").replace(
            "-", "").isalnum() or name == "auto":
        raise ValueError(f"level-2 rule name must be letters, digits, '_' or '-' (not 'auto'), "
                         f"got {name!r}")
    if not callable(rule):
        raise ValueError(f"level-2 rule {name!r} must be callable, got {type(rule).__name__}")
    if name in RULES and not replace:
        raise ValueError(f"level-2 rule {name!r} is already registered (replace=True to "
                         "replace it)")
    RULES[name] = rule


def unregister_rule(name: str) -> None:
    """Removes a rule registered with :func:`register_rule` (built-in rules stay)."""
    if name in ("consortium_auc", "own_auc", "equal", "n_train"):
        raise ValueError(f"{name!r} is a built-in level-2 rule")
    RULES.pop(name, None)


def resolve_rule(rule: str, method: str) -> str:
    """The rule name ``rule`` stands for (``"auto"``: the method's own, :data:`AUTO_RULES`)."""
    return AUTO_RULES[method] if rule == "auto" else rule


def apply_rule(name: str, inputs: RuleInputs) -> dict[str, float]:
    """Runs a registered rule and checks its answer; returns weights summing to 1.

    Raises:
        ValueError: Unknown rule, or an answer with a missing or extra institution, a negative,
            non-finite or non-numeric weight, or only zeros (one line naming the rule).
    """
    if name not in RULES:
        raise ValueError(f"unknown level-2 rule {name!r}; registered: {list(rule_names())}")
    ids = [inst.id for inst in inputs.institutions]
    answer = RULES[name](inputs)
    if not isinstance(answer, Mapping) or set(answer) != set(ids):
        got = sorted(answer) if isinstance(answer, Mapping) else type(answer).__name__
        raise ValueError(f"level-2 rule {name!r} must return one weight per institution "
                         f"{ids}, got {got}")
    try:
        weights = normalize_weights([float(answer[i]) for i in ids], len(ids), names=ids)
    except (TypeError, ValueError) as error:
        raise ValueError(f"level-2 rule {name!r}: {error}") from None
    return {i: float(w) for i, w in zip(ids, weights, strict=True)}


RULE_WORDS = {"consortium_auc": "consortium-wide validation AUC above chance (0.5), normalized",
              "own_auc": "each institution's own validation AUC above chance (0.5), normalized",
              "equal": "equal weights", "n_train": "proportional to the training-share sizes"}


def describe_weights(weights: Mapping[str, float], rule: str,
                     scores: Mapping[str, float] | None = None) -> str:
    """One sentence: the weights, the rule behind them, and why any weight prints as 0.00.

    Example:
        >>> describe_weights({"a": 0.5, "b": 1e-6, "c": 0.5}, "consortium_auc",
        ...                  {"a": 0.8, "b": 0.45, "c": 0.8})
        'weights a 0.50, b 0.00, c 0.50 (rule consortium_auc: consortium-wide validation AUC \
above chance (0.5), normalized; b 0.00: AUC 0.450 at or below chance, so (almost) no say)'
    """
    text = ", ".join(f"{k} {w:.2f}" for k, w in weights.items())
    words = f"rule {rule}: {RULE_WORDS.get(rule, 'a registered level-2 rule')}"
    zero = [k for k, w in weights.items() if round(w, 2) == 0]
    if zero and rule in ("consortium_auc", "own_auc"):
        def auc(k: str) -> str:
            known = scores is not None and k in scores
            return (f"AUC {scores[k]:.3f}" if known and np.isfinite(scores[k]) else
                    "AUC undefined" if known else "AUC")

        why = ", ".join(f"{k} 0.00: {auc(k)}" for k in zero)
        words += f"; {why} at or below chance, so (almost) no say"
    elif zero:
        words += f"; {', '.join(zero)} 0.00: the rule gave (almost) no weight"
    return f"weights {text} ({words})"
