"""Presentation helpers for the course: text tables and matplotlib figures.

Every plot function builds a :class:`matplotlib.figure.Figure` directly (no pyplot global
state) and returns it. In a notebook, run ``%matplotlib inline`` once (the course notebooks do it
in their first code cell); then a figure returned as a cell's last expression is shown.

Functions:

* :func:`format_table`: fixed-width text table of a list of dicts (metrics, summaries);
* :func:`plot_image_grid`: a few example images of each class;
* :func:`plot_partition_comparison`: class mix per institution under several partitions;
* :func:`plot_training_curves`: loss and validation curves of locally trained models;
* :func:`plot_metric_comparison`: one bar per method or institution (e.g. test accuracy);
* :func:`plot_rounds`: a metric over federated rounds, with reference lines.

Example:
    >>> print(format_table([{"name": "mean", "accuracy": 0.8123}, {"name": "vote",
    ...                      "accuracy": 0.79}]))
    name  accuracy
    mean  0.812
    vote  0.790
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from efl_toolkit.data.institution import Institution
from efl_toolkit.data.medmnist import Split
from efl_toolkit.plotting import draw_references, legend_outside, score_references


def _cell(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v, digits) for v in value)
    return str(value)


def format_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None, *,
                 digits: int = 3) -> str:
    """Renders dict rows as a fixed-width text table (floats rounded to ``digits``).

    Args:
        rows: One mapping per row.
        columns: Columns to show, in order; default the keys of the first row.
        digits: Decimal places of floats.

    Raises:
        ValueError: A requested column is missing from a row (the row index is named).

    Example:
        >>> print(format_table([{"id": "hospital-a", "n": 3, "ok": True}], ["id", "ok"]))
        id          ok
        hospital-a  yes
    """
    if not rows:
        return "(no rows)"
    columns = list(columns) if columns is not None else list(rows[0])
    body = []
    for index, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        if missing:
            raise ValueError(f"row {index} has no column(s) {missing}")
        body.append([_cell(row[c], digits) for c in columns])
    widths = [max(len(line[j]) for line in [columns, *body]) for j in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
                     .rstrip() for line in [columns, *body])


def plot_image_grid(split: Split, class_names: Sequence[str], *, per_class: int = 6,
                    seed: int = 0) -> Figure:
    """A row of randomly chosen example images for each class.

    Args:
        split: Images ``[N, H, W, C]`` in ``[0, 1]`` and their labels.
        class_names: One name per class (row titles).
        per_class: Images per row.
        seed: Which examples are drawn.

    Raises:
        ValueError: Empty split or ``per_class < 1``.

    Example:
        >>> from efl_toolkit.data import load_dataset
        >>> ds = load_dataset("breastmnist")
        >>> len(plot_image_grid(ds.train, ds.class_names, per_class=3).axes)
        6
    """
    if len(split) == 0:
        raise ValueError("the split holds no images")
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(1.3 * per_class + 1.2, 1.4 * len(class_names)), layout="constrained")
    for row, name in enumerate(class_names):
        pool = np.flatnonzero(split.labels == row)
        picks = rng.choice(pool, size=min(per_class, len(pool)), replace=False)
        for col in range(per_class):
            ax = fig.add_subplot(len(class_names), per_class, row * per_class + col + 1)
            ax.set_axis_off()
            if col < len(picks):
                image = split.images[picks[col]]
                if image.shape[-1] == 1:
                    ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
                else:
                    ax.imshow(np.clip(image[..., :3], 0.0, 1.0))
            if col == 0:
                ax.set_title(f"{name} ({len(pool)})", fontsize="small", loc="left")
    fig.suptitle(f"Example images per class ({per_class} drawn at random, count in brackets)")
    return fig


def plot_partition_comparison(partitions: Mapping[str, Sequence[Institution]],
                              class_names: Sequence[str], *, normalize: bool = True) -> Figure:
    """Side-by-side class distributions of the same institutions under several partitions.

    Args:
        partitions: ``{setting name: institutions}``, e.g. IID versus Dirichlet skew.
        class_names: One name per class.
        normalize: Show class shares (default) instead of counts.

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> fig = plot_partition_comparison({"iid": make_institutions(ds, 3, scheme="iid"),
        ...     "skewed": make_institutions(ds, 3, alpha=0.1)}, ds.class_names)
        >>> [ax.get_title() for ax in fig.axes]
        ['iid', 'skewed']
    """
    from efl_toolkit.data.plots import plot_class_distribution

    if not partitions:
        raise ValueError("no partitions to plot")
    n_inst = max(len(insts) for insts in partitions.values())
    fig = Figure(figsize=(max(3.0, 1.1 * n_inst + 1.0) * len(partitions) + 1.5, 3.4),
                 layout="constrained")
    axes = fig.subplots(1, len(partitions), sharey=True, squeeze=False)[0]
    for k, (ax, (name, institutions)) in enumerate(zip(axes, partitions.items(), strict=True)):
        plot_class_distribution(institutions, class_names, ax, normalize=normalize)
        ax.set_title(name)
        if k < len(partitions) - 1:
            ax.get_legend().remove()
        if k > 0:
            ax.set_ylabel("")
    fig.suptitle("Class mix per institution under each partition")
    return fig


def plot_training_curves(histories: Mapping[str, Sequence[Mapping]], *,
                         metric: str = "val_accuracy", majority: float | None = None) -> Figure:
    """Training loss and one validation metric per epoch, one line per trained model.

    Args:
        histories: ``{label: per-epoch dicts}`` (the ``history`` of a training result), each
            dict holding ``epoch``, ``train_loss`` and ``metric``.
        metric: The validation metric of the right panel.
        majority: The majority-class share (drawn as a reference for an accuracy metric; an
            AUC metric gets chance 0.5).

    Raises:
        ValueError: No histories, or an epoch dict without the needed keys (the label is named).

    Example:
        >>> fig = plot_training_curves({"hospital-a/cnn": [
        ...     {"epoch": 1, "train_loss": 0.7, "val_accuracy": 0.6},
        ...     {"epoch": 2, "train_loss": 0.5, "val_accuracy": 0.7}]})
        >>> [ax.get_ylabel() for ax in fig.axes]
        ['training loss (cross-entropy)', 'val_accuracy (0 to 1)']
    """
    if not histories:
        raise ValueError("no training histories to plot")
    fig = Figure(figsize=(10.0, 3.4), layout="constrained")
    loss_ax, metric_ax = fig.subplots(1, 2)
    cmap = matplotlib.colormaps["tab10"]
    for k, (label, history) in enumerate(histories.items()):
        needed = ("epoch", "train_loss", metric)
        if not history or any(key not in row for row in history for key in needed):
            raise ValueError(f"{label}: every epoch needs the keys {needed}")
        epochs = [row["epoch"] for row in history]
        color = cmap(k % cmap.N)
        loss_ax.plot(epochs, [row["train_loss"] for row in history], color=color, label=label)
        metric_ax.plot(epochs, [row[metric] for row in history], color=color, label=label)
    draw_references(metric_ax, score_references([metric], majority=majority))
    loss_ax.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="Training loss")
    metric_ax.set(xlabel="epoch", ylabel=f"{metric} (0 to 1)",
                  title=f"Own validation share: {metric}")
    legend_outside(metric_ax)
    return fig


def plot_metric_comparison(rows: Sequence[Mapping], *, metric: str | Sequence[str] = "accuracy",
                           name_key: str = "name", group_key: str | None = None,
                           reference: Mapping[str, float] | None = None,
                           majority: float | None = None, title: str | None = None) -> Figure:
    """Horizontal bars of one or more metrics, one group of bars per row, from 0.

    Args:
        rows: Mappings holding ``name_key`` and the metrics; a row without a value (missing,
            ``None`` or NaN) for every metric is skipped, and a single missing value leaves its
            bar out.
        metric: One metric name, or several (shown side by side, one colour each).
        name_key: The bar label.
        group_key: With a single metric: a key whose value colours the bars (e.g. ``"kind"``).
        reference: Dashed vertical lines ``{label: value}`` (e.g. chance level); an AUC
            metric always gets chance 0.5 (:func:`~efl_toolkit.plotting.score_references`).
        majority: The majority-class share, drawn as the reference of an accuracy metric.
        title: Axes title (default names the metrics).

    Raises:
        ValueError: No row has a value for any requested metric.

    Example:
        >>> fig = plot_metric_comparison([{"name": "a", "accuracy": 0.7, "auc": 0.6},
        ...                               {"name": "mean", "accuracy": 0.8, "auc": 0.9}],
        ...                              metric=["accuracy", "auc"])
        >>> fig.axes[0].get_xlabel()
        'accuracy, auc (0 to 1)'
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)

    def value(row, name):
        v = row.get(name)
        return None if v is None or math.isnan(float(v)) else float(v)

    shown = [row for row in rows if any(value(row, m) is not None for m in metrics)]
    if not shown:
        raise ValueError(f"no row has a value for {metrics[0] if len(metrics) == 1 else metrics!r}")
    cmap = matplotlib.colormaps["tab10"]
    groups = (list(dict.fromkeys(str(row.get(group_key, "")) for row in shown))
              if group_key and len(metrics) == 1 else [])
    fig = Figure(figsize=(7.5, 0.9 + (0.25 + 0.2 * len(metrics)) * len(shown)),
                 layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / len(metrics)
    positions = np.arange(len(shown))[::-1]  # first row on top
    values_seen = []
    for k, name in enumerate(metrics):
        ys, widths, colors = [], [], []
        for pos, row in zip(positions, shown, strict=True):
            v = value(row, name)
            if v is None:
                continue
            ys.append(pos + (len(metrics) - 1) / 2 * height - k * height)
            widths.append(v)
            colors.append(cmap(groups.index(str(row.get(group_key, ""))) % cmap.N) if groups
                          else cmap(k % cmap.N))
        bars = ax.barh(ys, widths, height=height * 0.9, color=colors,
                       label=name if len(metrics) > 1 else None)
        ax.bar_label(bars, fmt="%.3f", padding=3, fontsize="small")
        values_seen += widths
    for g in groups:
        ax.barh([positions[0]], [0], color=cmap(groups.index(g) % cmap.N), label=g)
    references = score_references(metrics, majority=majority, given=reference)
    draw_references(ax, references, vertical=True)
    values_seen += list(references.values())
    ax.set_yticks(positions, [str(row[name_key]) for row in shown])
    if len(metrics) > 1 or groups or references:
        legend_outside(ax)
    top = max(values_seen)
    ax.set_xlim(min(0.0, min(values_seen)), top + 0.12 if top <= 1 else top * 1.1)
    ax.set_xlabel(", ".join(metrics) + (" (0 to 1)" if top <= 1 else ""))
    row_kind = "model or method" if name_key == "name" else name_key
    ax.set_ylabel(row_kind)
    ax.set_title(title or f"{', '.join(metrics)} per {row_kind}")
    return fig


def plot_rounds(history: Sequence[Mapping], *, metric: str = "accuracy",
                reference: Mapping[str, float] | None = None, title: str | None = None,
                majority: float | None = None) -> Figure:
    """A metric after each federated round, with optional dashed reference lines.

    Args:
        history: One mapping per round with ``round`` and ``metric``.
        metric: The metric to plot.
        reference: ``{label: value}`` horizontal lines (e.g. the ensemble's accuracy); an AUC
            metric always gets chance 0.5.
        title: Axes title.
        majority: The majority-class share, drawn as the reference of an accuracy metric.

    Example:
        >>> fig = plot_rounds([{"round": 1, "accuracy": 0.6}, {"round": 2, "accuracy": 0.7}],
        ...                   reference={"ensemble": 0.75})
        >>> fig.axes[0].get_xlabel()
        'federated round'
    """
    if not history:
        raise ValueError("no rounds to plot")
    for index, row in enumerate(history):
        if "round" not in row or metric not in row:
            raise ValueError(f"round entry {index} needs the keys 'round' and {metric!r}")
    cmap = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(6.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([row["round"] for row in history], [row[metric] for row in history], marker="o",
            color=cmap(0), label=title or metric)
    given = dict(reference or {})
    for k, (label, value) in enumerate(given.items()):
        ax.axhline(value, linestyle="--", color=cmap(k + 1), label=label)
    chance = score_references([metric], majority=majority)
    draw_references(ax, {k: v for k, v in chance.items() if v not in given.values()})
    ax.set(xlabel="federated round", ylabel=f"{metric} (0 to 1)",
           title=title or f"{metric} per round")
    legend_outside(ax)
    return fig
