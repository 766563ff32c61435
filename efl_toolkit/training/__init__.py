"""Local training, evaluation and model serialization."""

from efl_toolkit.training.evaluate import EvaluationResult, auc_score, evaluate
from efl_toolkit.training.local import TrainResult, predict_proba, train_local

__all__ = ["EvaluationResult", "TrainResult", "auc_score", "evaluate", "predict_proba",
           "train_local"]
