"""``efl demo`` (interim): institutions train their own architectures and report test metrics.

This interim version loads the dataset, partitions it into institutions, trains each
institution's capacity-assigned architectures on its own share (the "each alone" baseline) and
prints every model's and every local ensemble's test accuracy and AUC. The full pipeline
(secure ensemble, ledger, report files) replaces it.

Example:
    $ efl demo --preset classroom_fast
"""

from __future__ import annotations

import argparse
import time

from efl_toolkit.baselines import train_each_alone
from efl_toolkit.config import get_config
from efl_toolkit.data import institutions_from_config, load_dataset
from efl_toolkit.rng import experiment_keys


def _config_from_args(args: argparse.Namespace):
    overrides = {name: value for name, value in (
        ("dataset", getattr(args, "dataset", None)),
        ("n_institutions", getattr(args, "institutions", None)),
        ("seed", getattr(args, "seed", None)),
    ) if value is not None}
    return get_config(getattr(args, "preset", None), **overrides)


def main(args: argparse.Namespace) -> int:
    """Runs the interim demo; returns the exit code (0 on success).

    Example:
        >>> import argparse
        >>> main(argparse.Namespace(preset="classroom_fast", institutions=3))  # doctest: +SKIP
        0
    """
    started = time.perf_counter()
    config = _config_from_args(args)
    dataset = load_dataset(config.dataset)
    print(f"dataset {dataset.name}: {len(dataset.train)} train, {len(dataset.val)} val, "
          f"{len(dataset.test)} test, {dataset.n_classes} classes, images {dataset.image_shape}")
    institutions = institutions_from_config(dataset, config)
    results = train_each_alone(institutions, dataset, config.train,
                               experiment_keys(config.seed).params, progress=True)
    print(f"\n{'institution':<14}{'tier':<8}{'n_train':>8}  {'model':<18}{'acc':>7}{'auc':>7}")
    for inst in institutions:
        result = results[inst.id]
        rows = list(result.per_model.items())
        if len(rows) > 1:
            rows.append(("local ensemble", result.test))
        for position, (name, evaluation) in enumerate(rows):
            lead = (f"{inst.id:<14}{inst.capacity.tier:<8}{inst.n_train:>8}" if position == 0
                    else " " * 30)
            print(f"{lead}  {name:<18}{evaluation.accuracy:>7.3f}{evaluation.auc:>7.3f}")
    print(f"\n{len(institutions)} institutions trained in {time.perf_counter() - started:.1f} s "
          f"(preset {config.name}; accuracy and AUC on the official test split)")
    return 0
