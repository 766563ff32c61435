"""The method: hierarchical ensemble and federated learning across institutions.

============  ====================================================================================
level1        every institution's models trained alone and its local ensemble
              (:func:`train_each_alone`, :func:`train_institution`, :class:`LocalResult`)
fedavg        the FedAvg algorithm as pure functions (McMahan et al. 2017)
aggregation   what the committee sums: model updates, validation losses, AUC histograms
              (:func:`secure_aggregation`, :func:`plaintext_aggregation`)
groups        federated learning among the institutions that afford the same architecture:
              FedAvg rounds under secure aggregation, fine-tuning, local ensembles
              (:func:`form_groups`, :func:`train_groups`, :func:`local_ensembles`)
level2        the weights across institutions by a registered rule (consortium validation AUC,
              the first design's own validation AUC, equal, n_train, or one's own:
              :func:`register_rule`; an AUC at or below chance gives weight 0.00) and the
              decision rule; the secure round is :func:`efl_toolkit.pipeline.run_secure_round`
record        ONE path that commits model versions to the ledger (:func:`commit_versions`), with
              the lineage of group rounds
============  ====================================================================================

Baselines that bracket the method live in :mod:`efl_toolkit.baselines`.

Example:
    >>> from efl_toolkit.federation import WEIGHT_FLOOR
    >>> WEIGHT_FLOOR
    0.5
"""

from efl_toolkit.federation.aggregation import plaintext_aggregation, secure_aggregation
from efl_toolkit.federation.fedavg import (
    ArchitectureMismatchError,
    FedAvgState,
    average_parameters,
    fedavg_init,
    fedavg_model,
    fedavg_round,
    weighted_average,
)
from efl_toolkit.federation.groups import (
    Group,
    GroupResult,
    LocalEnsemble,
    form_groups,
    local_ensembles,
    train_group,
    train_groups,
)
from efl_toolkit.federation.level1 import (
    LocalResult,
    best_single,
    institution_architectures,
    train_each_alone,
    train_institution,
)
from efl_toolkit.federation.level2 import (
    WEIGHT_FLOOR,
    RuleInputs,
    apply_rule,
    consortium_validation_auc,
    consortium_weights,
    describe_weights,
    level2_weights,
    own_validation_auc,
    register_rule,
    rule_names,
)
from efl_toolkit.federation.record import (
    NewVersion,
    commit_model,
    commit_versions,
    data_summary,
    model_metrics,
    new_version,
    record_local_results,
    validation_scores,
)

__all__ = [
    "WEIGHT_FLOOR",
    "ArchitectureMismatchError",
    "FedAvgState",
    "Group",
    "GroupResult",
    "LocalEnsemble",
    "LocalResult",
    "NewVersion",
    "RuleInputs",
    "apply_rule",
    "average_parameters",
    "best_single",
    "commit_model",
    "commit_versions",
    "consortium_validation_auc",
    "consortium_weights",
    "data_summary",
    "describe_weights",
    "fedavg_init",
    "fedavg_model",
    "fedavg_round",
    "form_groups",
    "institution_architectures",
    "level2_weights",
    "local_ensembles",
    "model_metrics",
    "new_version",
    "own_validation_auc",
    "plaintext_aggregation",
    "record_local_results",
    "register_rule",
    "rule_names",
    "secure_aggregation",
    "train_each_alone",
    "train_group",
    "train_groups",
    "train_institution",
    "validation_scores",
    "weighted_average",
]
