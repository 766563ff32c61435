"""Federated averaging (FedAvg), the algorithm: rounds of local training and a weighted average.

FedAvg (McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of
Deep Networks from Decentralized Data", AISTATS 2017) sends a global model to every
participant; each trains it for a few local epochs on its own data, and the new global model is
the average of their parameters weighted by their number of training examples. Here it is the
tool of the method's federated groups (institutions that afford the same architecture) and of
the homogeneous baseline (:mod:`efl_toolkit.baselines.fedavg`).

Averaging needs every participant's parameters to be the same tree of arrays with the same
shapes. :func:`check_averageable` checks that first and raises
:class:`ArchitectureMismatchError`, naming the institutions and the first difference, when
models of different architectures are mixed: the reason the toolkit ensembles *predictions*
across architectures instead.

The aggregation step is a separate pure function, ``aggregate(trees, weights) -> tree``:
:func:`weighted_average` (in the clear) by default; :func:`fedavg_round` takes another one,
e.g. a secure aggregation of the weighted update sum.

The functions are pure: :func:`fedavg_init` and :func:`fedavg_round` return new
:class:`FedAvgState` values and take explicit PRNG keys; institution ``i`` in round ``r`` trains
with ``fold_in(fold_in(key, r), i)`` (:func:`efl_toolkit.rng.institution_key`).

Example:
    >>> import jax
    >>> from efl_toolkit.config import TrainConfig
    >>> from efl_toolkit.data import load_dataset, make_institutions
    >>> ds = load_dataset("breastmnist")
    >>> insts = make_institutions(ds, 2, scheme="iid", seed=0)
    >>> state = fedavg_init("logistic", ds.image_shape, ds.n_classes, jax.random.key(0))
    >>> state = fedavg_round(state, insts, jax.random.key(1), TrainConfig(batch_size=32))
    >>> state.round, state.weights
    (1, (0.5, 0.5))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from efl_toolkit.config import TrainConfig
from efl_toolkit.data.institution import Institution
from efl_toolkit.data.medmnist import Split
from efl_toolkit.models.capacity import estimate_cost, fits
from efl_toolkit.models.zoo import architecture_names, build_model
from efl_toolkit.rng import institution_key
from efl_toolkit.training.local import train_local

#: ``aggregate(trees, weights) -> tree``: combines the participants' variable trees (one per
#: participant, same structure) with their normalized weights into the new global tree.
Aggregator = Callable[[list[Any], np.ndarray], Any]


class ArchitectureMismatchError(ValueError):
    """Models whose parameters cannot be averaged; the message names the institutions."""


@dataclass(frozen=True)
class FedAvgState:
    """The global model between rounds.

    Attributes:
        arch: Architecture every institution trains.
        graphdef: Static structure of the model (Flax NNX graph definition).
        params: Global trainable parameters (an ``nnx.State``).
        rest: Other model variables, e.g. BatchNorm statistics (averaged the same way).
        round: Number of completed rounds.
        weights: Aggregation weights of the last round (``n_train`` shares), in institution
            order; empty before the first round.
    """

    arch: str
    graphdef: nnx.GraphDef
    params: nnx.State
    rest: nnx.State
    round: int = 0
    weights: tuple[float, ...] = ()


def parameter_shapes(model: nnx.Module) -> dict[str, tuple[int, ...]]:
    """The model's trainable parameters as ``{path: shape}``, sorted by path.

    Example:
        >>> parameter_shapes(build_model("logistic", (4, 4, 1), 2, nnx.Rngs(0)))
        {'linear/bias': (2,), 'linear/kernel': (16, 2)}
    """
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    return dict(sorted(("/".join(str(p) for p in path), tuple(var.get_value().shape))
                       for path, var in flat))


def _describe(shapes: Mapping[str, tuple], limit: int = 3) -> str:
    items = [f"{path} {shape}" for path, shape in list(shapes.items())[:limit]]
    more = len(shapes) - limit
    return ", ".join(items) + (f", ... ({more} more)" if more > 0 else "")


def mismatch_reason(shapes_a: Mapping[str, tuple], shapes_b: Mapping[str, tuple],
                    name_a: str = "a", name_b: str = "b") -> str | None:
    """Why two parameter trees cannot be averaged, or ``None`` when they can.

    Example:
        >>> mismatch_reason({"w": (2, 3)}, {"w": (2, 4)}, "hospital-a", "hospital-b")
        'parameter w has shape (2, 3) at hospital-a but (2, 4) at hospital-b'
        >>> mismatch_reason({"w": (2,)}, {"w": (2,)}) is None
        True
    """
    only_a = [p for p in shapes_a if p not in shapes_b]
    only_b = [p for p in shapes_b if p not in shapes_a]
    if only_a or only_b:
        return (f"their parameter trees differ: {name_a} has {len(shapes_a)} arrays "
                f"({_describe(shapes_a)}), {name_b} has {len(shapes_b)} "
                f"({_describe(shapes_b)}); {len(only_a)} of {name_a}'s arrays have no "
                f"counterpart at {name_b}, e.g. {(only_a or only_b)[0]}")
    for path, shape in shapes_a.items():
        if tuple(shapes_b[path]) != tuple(shape):
            return (f"parameter {path} has shape {tuple(shape)} at {name_a} but "
                    f"{tuple(shapes_b[path])} at {name_b}")
    return None


def check_averageable(models: Mapping[str, nnx.Module]) -> None:
    """Raises :class:`ArchitectureMismatchError` unless all models have the same parameter tree.

    Args:
        models: ``{institution id: model}``.

    Example:
        >>> check_averageable({"hospital-a": build_model("logistic", (4, 4, 1), 2, nnx.Rngs(0)),
        ...                    "hospital-b": build_model("logistic", (4, 4, 1), 2, nnx.Rngs(1))})
    """
    if not models:
        raise ValueError("no models to average")
    names = list(models)
    reference = parameter_shapes(models[names[0]])
    for name in names[1:]:
        reason = mismatch_reason(reference, parameter_shapes(models[name]), names[0], name)
        if reason is not None:
            raise ArchitectureMismatchError(
                f"cannot average the parameters of {names[0]} "
                f"({type(models[names[0]]).__name__}) and {name} ({type(models[name]).__name__}):"
                f" {reason}. Parameter averaging (FedAvg) needs one architecture everywhere; "
                "institutions with different architectures combine predictions instead "
                "(an ensemble).")


@jax.jit
def _weighted_sum(trees: list, weights: jax.Array):
    """``sum_k weights[k] * trees[k]`` leaf by leaf, compiled once per tree structure."""
    def combine(*leaves):
        if not jnp.issubdtype(leaves[0].dtype, jnp.inexact):
            return leaves[0]  # counters and the like: not averaged
        return sum(weights[k].astype(leaf.dtype) * leaf for k, leaf in enumerate(leaves))

    return jax.tree.map(combine, *trees)


def _normalized(weights: Sequence[float] | np.ndarray | None, n: int) -> np.ndarray:
    w = np.asarray([1.0] * n if weights is None else weights, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need {n} finite non-negative weights with a positive sum, "
                         f"got {list(np.atleast_1d(w))}")
    return w / w.sum()


def weighted_average(trees: list[Any], weights: np.ndarray) -> Any:
    """The plaintext aggregation: ``sum_k w_k * trees[k]`` leaf by leaf, weights normalized.

    Non-float leaves (counters and the like) are taken from the first tree, not averaged.

    Args:
        trees: One variable tree per participant, all of the same structure and shapes.
        weights: One non-negative weight per tree (normalized here).

    Raises:
        ValueError: No trees, or bad weights.

    Example:
        >>> weighted_average([{"w": jnp.ones(2)}, {"w": jnp.zeros(2)}], np.array([3.0, 1.0]))
        {'w': Array([0.75, 0.75], dtype=float32)}
    """
    if not trees:
        raise ValueError("no parameter trees to average")
    w = _normalized(weights, len(trees))
    return _weighted_sum(list(trees), jnp.asarray(w, jnp.float32))


def average_parameters(models: Mapping[str, nnx.Module],
                       weights: Sequence[float] | None = None) -> nnx.Module:
    """A new model whose variables are the weighted average of the given models' variables.

    Args:
        models: ``{institution id: model}``, all of one architecture.
        weights: One non-negative weight per model (normalized here); default equal.

    Raises:
        ArchitectureMismatchError: The models' parameter trees or shapes differ (names the two
            institutions and the first difference).
        ValueError: No models, or bad weights.

    Example:
        >>> a = build_model("logistic", (4, 4, 1), 2, nnx.Rngs(0))
        >>> b = build_model("logistic", (4, 4, 1), 2, nnx.Rngs(1))
        >>> avg = average_parameters({"hospital-a": a, "hospital-b": b}, [3, 1])
        >>> bool(jnp.allclose(avg.linear.kernel[...],
        ...                   0.75 * a.linear.kernel[...] + 0.25 * b.linear.kernel[...]))
        True
    """
    check_averageable(models)
    w = _normalized(weights, len(models))
    splits = [nnx.split(model) for model in models.values()]
    return nnx.merge(splits[0][0], weighted_average([s for _, s in splits], w))


def fedavg_init(arch: str, image_shape: tuple[int, int, int], n_classes: int,
                key: jax.Array) -> FedAvgState:
    """The initial global model (round 0).

    Example:
        >>> s = fedavg_init("cnn", (28, 28, 1), 2, jax.random.key(0))
        >>> s.arch, s.round
        ('cnn', 0)
    """
    model = build_model(arch, image_shape, n_classes, nnx.Rngs(key))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return FedAvgState(arch=arch, graphdef=graphdef, params=params, rest=rest)


def fedavg_model(state: FedAvgState) -> nnx.Module:
    """The global model of a state, ready for :func:`~efl_toolkit.training.predict_proba`.

    Example:
        >>> m = fedavg_model(fedavg_init("logistic", (4, 4, 1), 2, jax.random.key(0)))
        >>> type(m).__name__
        'LogisticRegression'
    """
    return nnx.merge(state.graphdef, state.params, state.rest)


def check_institutions(institutions: Sequence[Institution]) -> None:
    """Raises ``ValueError`` unless there are participants and each has training data.

    Example:
        >>> check_institutions([])
        Traceback (most recent call last):
        ...
        ValueError: FedAvg needs at least one institution
    """
    if not institutions:
        raise ValueError("FedAvg needs at least one institution")
    for inst in institutions:
        if inst.n_train == 0:
            raise ValueError(f"{inst.id}: has no training data to take part in FedAvg")


def fedavg_round(state: FedAvgState, institutions: Sequence[Institution], key: jax.Array,
                 config: TrainConfig | None = None, *, local_epochs: int = 1,
                 aggregate: Aggregator | None = None) -> FedAvgState:
    """One FedAvg round: local training everywhere, then the ``n_train``-weighted aggregate.

    Every institution starts from the global model and trains ``local_epochs`` epochs on its
    own training share (Adam with the config's learning rate, batch size, weight decay and
    augmentation; the optimiser state starts fresh each round; no early stopping). Institution
    ``i`` uses the key ``institution_key(key, i, state.round)``.

    Args:
        state: The global model before the round.
        institutions: Participants, all training ``state.arch``.
        key: The run's key; per round and institution keys are folded in from it.
        config: Local hyper-parameters (``epochs`` is ignored: ``local_epochs`` is used).
        local_epochs: Passes over each institution's data per round (>= 1).
        aggregate: ``aggregate(trees, weights) -> tree`` over the trained models' variable
            trees (institution order) and the ``n_train`` shares; default
            :func:`weighted_average`, the plaintext weighted mean.

    Returns:
        The new state, with ``round`` one higher and the weights used.

    Raises:
        ArchitectureMismatchError: The trained models cannot be averaged.
        ValueError: No institutions, an institution without training data (named), or
            ``local_epochs < 1``.

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> insts = make_institutions(ds, 3, seed=0)
        >>> s = fedavg_init("logistic", ds.image_shape, 2, jax.random.key(0))
        >>> fedavg_round(s, insts, jax.random.key(1)).round
        1
    """
    trained = local_updates(state, institutions, key, config, local_epochs=local_epochs)
    sizes = np.array([inst.n_train for inst in institutions], dtype=np.float64)
    weights = sizes / sizes.sum()
    check_averageable(trained)
    splits = [nnx.split(model) for model in trained.values()]
    tree = (aggregate or weighted_average)([s for _, s in splits], weights)
    return next_state(state, splits[0][0], tree, weights)


def local_updates(state: FedAvgState, institutions: Sequence[Institution], key: jax.Array,
                  config: TrainConfig | None = None, *, local_epochs: int = 1,
                  positions: Sequence[int] | None = None) -> dict[str, nnx.Module]:
    """The local half of a round: each institution trains the global model on its own share.

    Institution ``i`` (at ``positions[i]``, default ``i``, in the run's roster) trains
    ``local_epochs`` epochs with the key ``institution_key(key, position, state.round)``.

    Returns:
        ``{institution id: trained model}`` in ``institutions`` order.

    Raises:
        ValueError: No institutions, one without training data, or ``local_epochs < 1``.
    """
    check_institutions(institutions)
    if int(local_epochs) != local_epochs or local_epochs < 1:
        raise ValueError(f"local_epochs must be an integer >= 1, got {local_epochs!r}")
    local_config = dataclasses.replace(config or TrainConfig(), epochs=int(local_epochs))
    global_model = fedavg_model(state)
    n_classes = int(nnx.eval_shape(
        lambda m: m(jnp.zeros((1, *institutions[0].train.images.shape[1:]))), global_model
    ).shape[-1])
    positions = range(len(institutions)) if positions is None else positions
    trained = {}
    for position, inst in zip(positions, institutions, strict=True):
        no_validation = Split(inst.train.images[:0], inst.train.labels[:0])
        result = train_local(global_model, inst.train, no_validation,
                             institution_key(key, position, state.round), local_config,
                             n_classes=n_classes, progress=False)
        trained[inst.id] = result.model
    return trained


def next_state(state: FedAvgState, graphdef: nnx.GraphDef, tree: Any,
               weights: Sequence[float]) -> FedAvgState:
    """The state after a round whose aggregate variable tree is ``tree``."""
    new_graphdef, params, rest = nnx.split(nnx.merge(graphdef, tree), nnx.Param, ...)
    return FedAvgState(arch=state.arch, graphdef=new_graphdef, params=params, rest=rest,
                       round=state.round + 1, weights=tuple(float(w) for w in weights))


def parameter_summary(models: Mapping[str, nnx.Module], *, show: int = 2) -> list[dict]:
    """What each model's parameter tree looks like: the thing FedAvg would have to average.

    Args:
        models: ``{institution id: model}``.
        show: Leading parameter arrays listed per model.

    Example:
        >>> rows = parameter_summary({"hospital-a": build_model("logistic", (4, 4, 1), 2,
        ...                                                     nnx.Rngs(0))})
        >>> rows[0]["arrays"], rows[0]["params"], rows[0]["first_arrays"]
        (2, 34, ['linear/bias (2,)', 'linear/kernel (16, 2)'])
    """
    rows = []
    for name, model in models.items():
        shapes = parameter_shapes(model)
        rows.append({"institution": name, "model": type(model).__name__,
                     "arrays": len(shapes),
                     "params": int(sum(int(np.prod(shape)) for shape in shapes.values())),
                     "first_arrays": [f"{path} {shape}" for path, shape in
                                      list(shapes.items())[:show]]})
    return rows


def affordability(institutions: Sequence[Institution], image_shape: tuple[int, int, int],
                  n_classes: int, arch: str = "cnn") -> list[dict]:
    """Whether each institution's capacity affords training ``arch`` on its own share.

    The default ``arch`` is the small CNN of the homogeneous FedAvg baseline.

    FedAvg needs *one* architecture everywhere: either the weakest institution's budget caps
    the model for everyone, or some institutions are asked to train beyond their budget.

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> rows = affordability(make_institutions(ds, 3, seed=0), ds.image_shape, 2)
        >>> [(r["id"], r["affords"]) for r in rows]
        [('hospital-a', False), ('hospital-b', True), ('hospital-c', True)]
    """
    cost = estimate_cost(arch, tuple(image_shape), n_classes)
    return [{"id": inst.id, "tier": inst.capacity.tier,
             "budget_gflops": inst.capacity.compute_gflops,
             f"{arch}_gflops_per_epoch": cost.epoch_gflops(inst.n_train),
             "affords": fits(cost, inst.capacity, inst.n_train)} for inst in institutions]


def common_architecture(institutions: Sequence[Institution], image_shape: tuple[int, int, int],
                        n_classes: int) -> str:
    """The most capable architecture that *every* institution can afford alone.

    Falls back to the cheapest architecture when even that does not fit everyone.

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> common_architecture(make_institutions(ds, 3, seed=0), ds.image_shape, 2)
        'mlp'
    """
    check_institutions(institutions)
    names = architecture_names()  # least to most capable
    for arch in reversed(names):
        cost = estimate_cost(arch, tuple(image_shape), n_classes)
        if all(fits(cost, inst.capacity, inst.n_train) for inst in institutions):
            return arch
    return min(names, key=lambda a: estimate_cost(a, tuple(image_shape),
                                                   n_classes).train_flops_per_sample)
