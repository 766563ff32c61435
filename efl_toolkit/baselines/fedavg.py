"""The homogeneous FedAvg baseline: every institution trains the same small CNN with FedAvg.

FedAvg (McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS 2017; the algorithm is :mod:`efl_toolkit.federation.fedavg`) needs one
architecture everywhere: here the small CNN, whatever each institution's capacity. It is the
classic federated baseline the method is compared with, and exactly what institutions of
different capacity cannot all do.

Example:
    >>> import jax
    >>> from efl_toolkit.data import load_dataset, make_institutions
    >>> ds = load_dataset("breastmnist")
    >>> run = fedavg_train(make_institutions(ds, 2), ds.test, jax.random.key(0),
    ...                    arch="logistic", rounds=1, progress=False)
    >>> run.state.round, 0.0 <= run.accuracy <= 1.0
    (1, True)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import jax

from efl_toolkit.config import TrainConfig
from efl_toolkit.data.institution import Institution
from efl_toolkit.data.medmnist import Split
from efl_toolkit.federation.fedavg import (
    FedAvgState,
    check_institutions,
    fedavg_init,
    fedavg_model,
    fedavg_round,
)
from efl_toolkit.progress import Progress
from efl_toolkit.training.evaluate import EvaluationResult, evaluate
from efl_toolkit.training.local import predict_proba

#: The architecture of the homogeneous FedAvg baseline ("a homogeneous small CNN").
BASELINE_ARCH = "cnn"


@dataclass(frozen=True)
class FedAvgRun:
    """Outcome of :func:`fedavg_train`.

    Attributes:
        state: The final global model.
        history: One dict per round: ``round``, ``accuracy``, ``auc`` (on the evaluation split)
            and ``seconds`` (wall time of the round, evaluation excluded).
        accuracy: Final accuracy on the evaluation split.
        auc: Final AUC on the evaluation split.
        seconds: Wall time of the whole run.
        final: The full evaluation of the final global model.
    """

    state: FedAvgState
    history: tuple[dict, ...]
    accuracy: float
    auc: float
    seconds: float
    final: EvaluationResult


def fedavg_train(institutions: Sequence[Institution], evaluation: Split, key: jax.Array,
                 config: TrainConfig | None = None, *, arch: str = BASELINE_ARCH,
                 rounds: int | None = None, local_epochs: int = 1,
                 progress: bool = True) -> FedAvgRun:
    """Runs FedAvg for several rounds and scores the global model after each one.

    Args:
        institutions: Participants; they all train ``arch``.
        evaluation: Split the global model is scored on after every round (e.g. the official
            test split).
        key: Master key: ``fold_in(key, 0)`` initialises the model, ``fold_in(key, 1)`` drives
            the rounds.
        config: Local hyper-parameters.
        arch: The one architecture everyone trains (default: the small CNN).
        rounds: Number of rounds; default ``config.epochs // local_epochs`` (the same number of
            passes over the data as local training).
        local_epochs: Local epochs per round.
        progress: Show a per-round progress bar (:class:`~efl_toolkit.progress.Progress`).

    Returns:
        A :class:`FedAvgRun` with the per-round history and final metrics.

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> run = fedavg_train(make_institutions(ds, 2), ds.test, jax.random.key(0),
        ...                    arch="logistic", rounds=2, progress=False)
        >>> [row["round"] for row in run.history]
        [1, 2]
    """
    started = time.perf_counter()
    check_institutions(institutions)
    config = config or TrainConfig()
    rounds = max(1, config.epochs // local_epochs) if rounds is None else int(rounds)
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if len(evaluation) == 0:
        raise ValueError("the evaluation split is empty")
    image_shape = tuple(institutions[0].train.images.shape[1:])
    n_classes = int(max(int(inst.train.labels.max()) for inst in institutions) + 1)
    n_classes = max(n_classes, int(evaluation.labels.max()) + 1)
    state = fedavg_init(arch, image_shape, n_classes, jax.random.fold_in(key, 0))
    round_key = jax.random.fold_in(key, 1)
    history, result = [], None
    bar = Progress(rounds, f"FedAvg ({arch})", unit="round", enabled=progress)
    for _ in range(rounds):
        round_started = time.perf_counter()
        state = fedavg_round(state, institutions, round_key, config, local_epochs=local_epochs)
        seconds = time.perf_counter() - round_started
        probs = predict_proba(fedavg_model(state), evaluation.images)
        result = evaluate(probs, evaluation.labels, n_classes, warn=False)
        history.append({"round": state.round, "accuracy": result.accuracy, "auc": result.auc,
                        "seconds": seconds})
        bar.update(accuracy=f"{result.accuracy:.3f}")
    bar.finish()
    last = history[-1]
    return FedAvgRun(state=state, history=tuple(history), accuracy=float(last["accuracy"]),
                     auc=float(last["auc"]), seconds=time.perf_counter() - started,
                     final=result)
