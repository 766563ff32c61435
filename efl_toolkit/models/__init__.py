"""Heterogeneous Flax NNX models and capacity-aware architecture assignment.

One's own architecture joins with :func:`register_architecture` (see its docstring and the
README's "Variants for researchers").
"""

from efl_toolkit.models.capacity import ModelCost, assign_architectures, estimate_cost
from efl_toolkit.models.zoo import (
    ARCHITECTURES,
    architecture_names,
    build_model,
    register_architecture,
    unregister_architecture,
)

__all__ = ["ARCHITECTURES", "ModelCost", "architecture_names", "assign_architectures",
           "build_model", "estimate_cost", "register_architecture", "unregister_architecture"]
