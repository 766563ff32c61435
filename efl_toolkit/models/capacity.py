"""Model costs and capacity-aware assignment of architectures to institutions.

The cost of an architecture for a given image shape and class count is measured, not guessed:
the parameter count comes from an abstract (shape-only) build, and the forward FLOPs from
tracing one forward pass and adding up its matrix products and convolutions. Training costs
about three forward passes (forward + backward).

An institution's :class:`~efl_toolkit.data.institution.CapacityProfile` gives a compute budget
per epoch (GFLOP) and a storage budget (MB). :func:`assign_architectures` picks the most capable
architecture that fits, then adds the next most capable ones while the *sum* still fits: those
models form the institution's local ensemble (the hierarchical level 1).

Example:
    >>> from efl_toolkit.data.institution import CapacityProfile
    >>> from efl_toolkit.models.capacity import assign_architectures
    >>> [assign_architectures(CapacityProfile.preset(t), (28, 28, 1), 2)
    ...  for t in ("tiny", "small", "medium", "large")]
    [('logistic',), ('mlp', 'logistic'), ('cnn', 'vit'), ('resnet', 'cnn')]
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from flax import nnx

from efl_toolkit.data.institution import CAPACITY_TIERS, CapacityProfile, Institution
from efl_toolkit.models.zoo import (
    ARCHITECTURES,
    BUILTIN_ARCHITECTURES,
    REGISTERED_FOR_TIER,
    ImageShape,
    architecture_names,
    build_model,
)

#: Training samples per epoch assumed when the caller does not say (about one BreastMNIST
#: institution out of three).
REFERENCE_SAMPLES = 200
#: A training step costs about this many forward passes (forward + backward).
TRAIN_FORWARD_RATIO = 3.0


@dataclass(frozen=True)
class ModelCost:
    """What one architecture costs for one input shape.

    Attributes:
        arch: Architecture name.
        n_params: Number of trainable parameters.
        param_bytes: Bytes of all model variables (parameters and batch statistics).
        forward_flops: FLOPs of one forward pass of one sample (matmuls and convolutions).
        train_flops_per_sample: About ``3 * forward_flops``.
    """

    arch: str
    n_params: int
    param_bytes: int
    forward_flops: float
    train_flops_per_sample: float

    @property
    def storage_mb(self) -> float:
        return self.param_bytes / 1e6

    def epoch_gflops(self, n_samples: int) -> float:
        """Training GFLOP of one epoch over ``n_samples`` samples."""
        return self.train_flops_per_sample * n_samples / 1e9


def _eqn_flops(eqn) -> float:
    name = eqn.primitive.name
    if name == "dot_general":
        (contract_lhs, _), _ = eqn.params["dimension_numbers"]
        lhs_shape = eqn.invars[0].aval.shape
        inner = math.prod(lhs_shape[d] for d in contract_lhs)
        return 2.0 * math.prod(eqn.outvars[0].aval.shape) * inner
    if name == "conv_general_dilated":
        rhs_shape = eqn.invars[1].aval.shape
        spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial)
        kernel = math.prod(rhs_shape[d] for d in spec[1:])  # in-features x spatial
        return 2.0 * math.prod(eqn.outvars[0].aval.shape) * kernel
    return 0.0


def _jaxpr_flops(jaxpr) -> float:
    total = 0.0
    for eqn in jaxpr.eqns:
        total += _eqn_flops(eqn)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            total += _jaxpr_flops(sub)
    return total


@functools.lru_cache(maxsize=256)
def estimate_cost(arch: str, image_shape: ImageShape, n_classes: int) -> ModelCost:
    """Measures parameter count, bytes and FLOPs of an architecture (no arrays are allocated).

    Args:
        arch: Architecture name.
        image_shape: ``(H, W, C)``.
        n_classes: Number of classes.

    Raises:
        ValueError: The architecture cannot be built or traced for these images, or its output
            is not ``[batch, n_classes]`` logits (one line naming the architecture; a model
            registered with :func:`~efl_toolkit.models.register_architecture` is checked here,
            before any training).

    Example:
        >>> cost = estimate_cost("logistic", (28, 28, 1), 2)
        >>> cost.n_params, cost.forward_flops
        (1570, 3136.0)
    """
    image_shape = tuple(int(s) for s in image_shape)
    if arch not in architecture_names():
        build_model(arch, image_shape, n_classes, nnx.Rngs(0))  # raises the zoo's own error
    try:
        abstract = nnx.eval_shape(lambda: build_model(arch, image_shape, n_classes,
                                                      nnx.Rngs(0)))
        graphdef, state = nnx.split(abstract)

        def forward(state, images):
            return nnx.merge(graphdef, state)(images)

        sample = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
        closed = jax.make_jaxpr(forward)(state, sample)
    except Exception as err:  # noqa: BLE001 - a user's model may fail in any way: name it
        raise ValueError(f"architecture {arch!r} cannot run on images {image_shape} with "
                         f"{n_classes} classes: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    shapes = [tuple(v.aval.shape) for v in closed.jaxpr.outvars]
    if shapes != [(1, n_classes)]:
        raise ValueError(f"architecture {arch!r} returns outputs of shape "
                         f"{shapes[0] if len(shapes) == 1 else shapes} for one image; expected "
                         f"(1, {n_classes}) logits")
    params = nnx.state(abstract, nnx.Param)
    n_params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
    param_bytes = sum(math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize
                      for leaf in jax.tree.leaves(state))
    flops = _jaxpr_flops(closed.jaxpr)
    return ModelCost(arch, int(n_params), int(param_bytes), flops, TRAIN_FORWARD_RATIO * flops)


def fits(cost: ModelCost, profile: CapacityProfile, n_samples: int = REFERENCE_SAMPLES) -> bool:
    """Whether one model fits a capacity profile on its own.

    Example:
        >>> fits(estimate_cost("resnet", (28, 28, 1), 2), CapacityProfile.preset("tiny"))
        False
    """
    return (cost.epoch_gflops(n_samples) <= profile.compute_gflops
            and cost.storage_mb <= profile.storage_mb)


def assign_architectures(profile: CapacityProfile, image_shape: ImageShape, n_classes: int,
                         *, max_models: int = 2, n_samples: int | None = None,
                         candidates: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Maps a capacity profile to the architectures an institution trains.

    The most capable candidate whose epoch compute and storage fit comes first; then the next
    most capable ones are added while the summed compute and storage of all chosen models
    still fit, up to ``max_models``. If nothing fits, the cheapest candidate is returned alone
    (every institution trains at least one model).

    Args:
        profile: The institution's compute (GFLOP per epoch) and storage (MB) budget.
        image_shape: ``(H, W, C)`` of the dataset.
        n_classes: Number of classes.
        max_models: Size limit of the local ensemble (at least 1).
        n_samples: Training samples per epoch (default :data:`REFERENCE_SAMPLES`).
        candidates: Architectures to choose from (default: the zoo's own,
            :data:`~efl_toolkit.models.zoo.BUILTIN_ARCHITECTURES`; registered ones are chosen
            by tier, :func:`tier_architectures`).

    Returns:
        Architecture names, most capable first.

    Raises:
        ValueError: ``max_models < 1`` or an unknown candidate name.

    Example:
        >>> assign_architectures(CapacityProfile.preset("large"), (28, 28, 1), 2, max_models=3)
        ('resnet', 'cnn', 'vit')
    """
    if max_models < 1:
        raise ValueError(f"max_models must be at least 1, got {max_models}")
    names = candidates if candidates is not None else BUILTIN_ARCHITECTURES
    unknown = [name for name in names if name not in ARCHITECTURES]
    if unknown or not names:
        raise ValueError(f"unknown candidate architectures {unknown or names!r}; "
                         f"choose from {list(architecture_names())}")
    samples = REFERENCE_SAMPLES if n_samples is None else max(int(n_samples), 1)
    costs = sorted((estimate_cost(name, tuple(image_shape), n_classes) for name in names),
                   key=lambda cost: ARCHITECTURES[cost.arch].rank, reverse=True)
    chosen: list[ModelCost] = []
    for cost in costs:
        if len(chosen) == max_models:
            break
        compute = sum(c.epoch_gflops(samples) for c in chosen) + cost.epoch_gflops(samples)
        storage = sum(c.storage_mb for c in chosen) + cost.storage_mb
        if compute <= profile.compute_gflops and storage <= profile.storage_mb:
            chosen.append(cost)
    if not chosen:
        chosen = [min(costs, key=lambda cost: cost.train_flops_per_sample)]
    return tuple(cost.arch for cost in chosen)


def tier_architectures(configured: Mapping[str, Sequence[str]] | None = None
                       ) -> dict[str, tuple[str, ...]]:
    """The tiers whose architectures are chosen by name rather than measured: those registered
    with ``register_architecture(..., capacity=tier)``, overridden by ``configured``
    (``ExperimentConfig.architectures``).

    Example:
        >>> tier_architectures({"tiny": ["mlp"]})
        {'tiny': ('mlp',)}
    """
    return {**REGISTERED_FOR_TIER, **{t: tuple(a) for t, a in (configured or {}).items()}}


def with_architectures(institutions: Sequence[Institution],
                       configured: Mapping[str, Sequence[str]] | None = None
                       ) -> tuple[Institution, ...]:
    """The institutions, each of a tier in :func:`tier_architectures` given those architectures
    (an institution whose ``architectures`` are already set keeps them; the others keep the
    measured assignment, :func:`assign_architectures`).

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> insts = make_institutions(load_dataset("breastmnist"), 2, capacities=["tiny", "small"])
        >>> [i.architectures for i in with_architectures(insts, {"tiny": ["mlp"]})]
        [('mlp',), ()]
    """
    chosen = tier_architectures(configured)
    return tuple(inst if inst.architectures or inst.capacity.tier not in chosen
                 else dataclasses.replace(inst, architectures=chosen[inst.capacity.tier])
                 for inst in institutions)


def architectures_by_capacity(image_shape: ImageShape, n_classes: int,
                              configured: Mapping[str, Sequence[str]] | None = None
                              ) -> dict[str, list[str]]:
    """``{tier: architectures}`` for every capacity tier, as a run resolves them (named by a
    config or a registration, else measured for this image shape and class count).

    Example:
        >>> architectures_by_capacity((28, 28, 1), 2)["medium"]
        ['cnn', 'vit']
    """
    chosen = tier_architectures(configured)
    return {tier: list(chosen.get(tier) or assign_architectures(
        CapacityProfile.preset(tier), image_shape, n_classes)) for tier in CAPACITY_TIERS}
