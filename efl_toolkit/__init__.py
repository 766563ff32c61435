"""efl_toolkit: secure ensemble federated learning for healthcare.

The curated public API, loaded lazily (``import efl_toolkit`` stays light: MPyC party processes
import the package and must start fast, so JAX is imported only when a name needs it).

==========================  ================================================================
``get_config``              presets ``classroom_fast`` (default) and ``paper``
``load_dataset``            embedded MedMNIST or any MedMNIST-format ``.npz``
``make_institutions``       non-IID partitions, imaging devices, capacity profiles
``build_model``             the heterogeneous Flax NNX zoo; ``assign_architectures``
``train_local``             jit-compiled local training; ``predict_proba``, ``evaluate``
``combine``                 plaintext ensembles; ``hierarchical_ensemble``
``train_each_alone``        the method's level 1: local models and ensembles (``LocalResult``)
``commit_versions``         the one path that commits model versions to the ledger
``train_centralized``       baselines: centralized upper bound; ``fedavg_train`` (FedAvg, CNN)
``secure_ensemble``         MPyC secure weighted mean / argmax over real party processes
``Ledger``                  signed hash-linked blocks; ``open_ledger``, ``ModelRegistry``
``ExplorerWidget``          the ledger explorer for JupyterLab
``run_experiment``          the end-to-end experiment behind ``efl demo``
==========================  ================================================================

Example:
    >>> import efl_toolkit as efl
    >>> efl.get_config().name in ("classroom_fast", "paper")
    True
"""

from __future__ import annotations

import importlib

from efl_toolkit._jax_setup import enable_compilation_cache

__version__ = "0.1.0"

# JAX's persistent compilation cache (~/.cache/efl_toolkit/jax or $EFL_JAX_CACHE): a second
# demo or notebook run loads compiled steps instead of compiling them (efl_toolkit/_jax_setup.py).
enable_compilation_cache()

_EXPORTS = {
    "get_config": "efl_toolkit.config",
    "ExperimentConfig": "efl_toolkit.config",
    "TrainConfig": "efl_toolkit.config",
    "load_dataset": "efl_toolkit.data",
    "make_institutions": "efl_toolkit.data",
    "build_model": "efl_toolkit.models",
    "assign_architectures": "efl_toolkit.models",
    "train_local": "efl_toolkit.training",
    "predict_proba": "efl_toolkit.training",
    "evaluate": "efl_toolkit.training",
    "version_hash": "efl_toolkit.training.serialize",
    "combine": "efl_toolkit.ensemble",
    "hierarchical_ensemble": "efl_toolkit.ensemble",
    "secure_ensemble": "efl_toolkit.secure",
    "Consortium": "efl_toolkit.ledger",
    "Ledger": "efl_toolkit.ledger",
    "ModelRegistry": "efl_toolkit.ledger",
    "open_ledger": "efl_toolkit.ledger",
    "ExplorerWidget": "efl_toolkit.explorer",
    "run_experiment": "efl_toolkit.pipeline",
    "train_each_alone": "efl_toolkit.federation",
    "LocalResult": "efl_toolkit.federation",
    "commit_versions": "efl_toolkit.federation",
    "train_centralized": "efl_toolkit.baselines",
    "fedavg_train": "efl_toolkit.baselines",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'efl_toolkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
