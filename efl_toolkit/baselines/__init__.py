"""Baselines that bracket what the method can gain; none of them is the method.

* :func:`train_centralized` (:mod:`~efl_toolkit.baselines.centralized`), the upper bound: one
  model on the pooled data, which privacy rules forbid;
* :func:`train_each_alone`, the lower bound: every institution alone on its own share (the
  method's level 1 without any collaboration, :mod:`efl_toolkit.federation.level1`), and
  :func:`best_single`;
* :func:`fedavg_train` (:mod:`~efl_toolkit.baselines.fedavg`): FedAvg (McMahan et al., AISTATS
  2017) on a homogeneous small CNN, the classic federated baseline.

Every result is evaluated on the dataset's official test split.

Example:
    >>> from efl_toolkit.baselines import BASELINE_ARCH
    >>> BASELINE_ARCH
    'cnn'
"""

from efl_toolkit.baselines.centralized import train_centralized
from efl_toolkit.baselines.fedavg import BASELINE_ARCH, FedAvgRun, fedavg_train
from efl_toolkit.federation.level1 import best_single, train_each_alone

__all__ = ["BASELINE_ARCH", "FedAvgRun", "best_single", "fedavg_train", "train_centralized",
           "train_each_alone"]
