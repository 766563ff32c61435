"""Explicit PRNG keys: one master seed, separate streams for data, parameters and sampling.

Every random choice in the toolkit takes a key derived here, so a run is reproducible from its
seed and changing, say, the parameter seed does not change the data partition.

Example:
    >>> from efl_toolkit.rng import experiment_keys, institution_key
    >>> keys = experiment_keys(0)
    >>> k = institution_key(keys.params, institution=2, round_=0)
    >>> k.shape
    (2,)
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

_DATA, _PARAMS, _SAMPLING = 0, 1, 2


@dataclass(frozen=True)
class ExperimentKeys:
    """Independent key streams of one experiment."""

    data: jax.Array
    params: jax.Array
    sampling: jax.Array


def experiment_keys(seed: int) -> ExperimentKeys:
    """Derives the data, parameter and sampling keys from one master seed."""
    root = jax.random.PRNGKey(seed)
    return ExperimentKeys(
        data=jax.random.fold_in(root, _DATA),
        params=jax.random.fold_in(root, _PARAMS),
        sampling=jax.random.fold_in(root, _SAMPLING),
    )


def institution_key(key: jax.Array, institution: int, round_: int = 0) -> jax.Array:
    """Folds in a round number and an institution index (``fold_in`` per round and institution)."""
    return jax.random.fold_in(jax.random.fold_in(key, round_), institution)


def numpy_rng(key: jax.Array) -> np.random.Generator:
    """A NumPy generator seeded from a JAX key (for data-side work done in NumPy)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.random.default_rng(np.asarray(key, dtype=np.uint32).ravel().tolist())
