"""Sweeps that retrain: non-IID strength (``dirichlet_alpha``) and number of institutions.

Example:
    >>> fig = plot_sweep([{"n": 2, "auc": 0.7}, {"n": 3, "auc": 0.8}], "n", ["auc"])
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['auc', 'chance (AUC 0.5)']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from efl_toolkit.config import ExperimentConfig
from efl_toolkit.course.heterogeneity import institution_label_skew
from efl_toolkit.data import Dataset, load_dataset
from efl_toolkit.ensemble import combine, weighted_mean
from efl_toolkit.playground.federation import (
    LIGHT_TIERS,
    Federation,
    score_on_test,
    train_federation,
)
from efl_toolkit.plotting import draw_references, legend_outside, score_references
from efl_toolkit.progress import Progress


def federation_row(fed: Federation) -> dict:
    """Headline numbers of one federation: label skew, institutions alone, level-2 ensembles.

    Example:
        >>> sorted(federation_row(fed))[:2]  # doctest: +SKIP
        ['best_alone_auc', 'ensemble_mean_auc']
    """
    n_classes = fed.dataset.n_classes
    alone = [fed.results[i].test.auc for i in fed.ids]
    mean = score_on_test(fed, combine(fed.test_probs, "mean").probabilities)
    weighted = score_on_test(fed, weighted_mean(fed.test_probs, fed.val_weights))
    return {"label_skew": institution_label_skew(fed.institutions, n_classes),
            "min_train": min(inst.n_train for inst in fed.institutions),
            "mean_alone_auc": float(np.nanmean(alone)), "best_alone_auc": float(np.nanmax(alone)),
            "ensemble_mean_auc": mean["auc"], "ensemble_weighted_auc": weighted["auc"],
            "ensemble_mean_accuracy": mean["accuracy"]}


def _average_rows(rows: Sequence[Mapping]) -> dict:
    """Field-wise mean of numeric fields (NaN-aware); other fields from the first row."""
    out = dict(rows[0])
    for key, value in rows[0].items():
        if isinstance(value, int | float | np.number) and not isinstance(value, bool):
            out[key] = float(np.nanmean([row[key] for row in rows]))
    return out


def sweep(config: ExperimentConfig, settings: Sequence[Mapping], *,
          dataset: Dataset | None = None, tiers: Sequence[str] | None = LIGHT_TIERS,
          seeds: Sequence[int] | None = None, progress: bool = True) -> list[dict]:
    """Retrains a federation for each setting (changes to ``config``) and measures it.

    Args:
        config: The base configuration.
        settings: Changes per run, e.g. ``[{"dirichlet_alpha": 0.1}, {"dirichlet_alpha": 10}]``.
        dataset: The dataset (loaded once from ``config.dataset`` by default).
        tiers: Capacity tiers (see :func:`train_federation`); light by default.
        seeds: Repeat every setting with these seeds (partition, devices and training all
            change) and average the numbers; default ``config.seed`` only.
        progress: One progress bar over all runs.

    Returns:
        One row per setting: the setting's fields, ``runs``, then :func:`federation_row`
        (averaged over the seeds).

    Example:
        >>> settings = [{"n_institutions": 2}, {"n_institutions": 4}]
        >>> rows = sweep(get_config(), settings, progress=False)  # doctest: +SKIP
        >>> [r["n_institutions"] for r in rows]  # doctest: +SKIP
        [2, 4]
    """
    dataset = dataset if dataset is not None else load_dataset(config.dataset)
    seeds = [config.seed] if seeds is None else list(seeds)
    if not seeds:
        raise ValueError("sweep needs at least one seed")
    settings = list(settings)
    for setting in settings:
        if "seed" in setting:
            raise ValueError(f"setting {dict(setting)} changes the seed: pass seeds=[...] instead")
    bar = Progress(len(settings) * len(seeds), "federations", unit="federation",
                   enabled=progress)
    rows = []
    with bar:
        for setting in settings:
            runs = []
            for seed in seeds:
                fed = train_federation(config.replace(**setting, seed=seed), dataset, tiers=tiers)
                runs.append(federation_row(fed))
                bar.update(setting=", ".join(f"{k}={v}" for k, v in setting.items()))
            rows.append({**setting, "runs": len(runs), **_average_rows(runs)})
    return rows


def plot_sweep(rows: Sequence[Mapping], x: str, metrics: Sequence[str], *,
               log_x: bool = False, title: str | None = None) -> Figure:
    """One line per metric against the swept setting ``x``.

    Example:
        >>> fig = plot_sweep([{"n": 2, "auc": 0.7}, {"n": 3, "auc": 0.8}], "n", ["auc"])
        >>> fig.axes[0].get_xlabel()
        'n'
    """
    if not rows:
        raise ValueError("no rows to plot")
    cmap = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    xs = [row[x] for row in rows]
    for k, metric in enumerate(metrics):
        ax.plot(xs, [row[metric] for row in rows], "o-", color=cmap(k), label=metric)
    if log_x:
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(xs, [f"{v:g}" for v in xs])
    draw_references(ax, score_references(metrics))
    ax.set(xlabel=x, ylabel="score on the test split (0 to 1)", title=title or f"sweep over {x}")
    legend_outside(ax)
    return fig
