"""Heterogeneous Flax NNX models and capacity-aware architecture assignment."""

from efl_toolkit.models.capacity import ModelCost, assign_architectures, estimate_cost
from efl_toolkit.models.zoo import ARCHITECTURES, architecture_names, build_model

__all__ = ["ARCHITECTURES", "ModelCost", "architecture_names", "assign_architectures",
           "build_model", "estimate_cost"]
