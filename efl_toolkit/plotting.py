"""Conventions every figure of the package follows (issue 13, item 4).

* a title and labelled axes with units;
* a chance / majority-class reference line wherever a score is shown (:func:`score_references`:
  an AUC of 0.5 is chance for any number of classes; the majority class's share is the accuracy
  of always predicting it);
* legends outside the data (:func:`legend_outside`), saved with ``bbox_inches="tight"`` so the
  legend is kept in the PNG (:func:`save_figure`);
* font sizes readable at 100 % zoom (nothing below ``small``, 110 dpi PNGs).

Example:
    >>> score_references(["accuracy", "auc"], majority=0.73)
    {'chance (AUC 0.5)': 0.5, 'majority class (accuracy 0.73)': 0.73}
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend

#: Resolution of saved PNGs: 100 % zoom in a browser shows ``small`` text at ~9 px.
DPI = 110
#: Colour of chance / majority reference lines.
REFERENCE_COLOR = "#555555"


def majority_share(labels: np.ndarray) -> float:
    """Accuracy of always predicting the most common class of ``labels`` (ints ``[N]``).

    Raises:
        ValueError: ``labels`` is empty.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        raise ValueError("majority_share: no labels")
    return float(np.bincount(labels.astype(np.int64)).max() / labels.size)


def score_references(metrics: Iterable[str], *, majority: float | None = None,
                     given: Mapping[str, float] | None = None) -> dict[str, float]:
    """The reference lines a plot of ``metrics`` needs, merged after ``given`` ones.

    An AUC metric gets chance at 0.5 (unless ``given`` already holds 0.5); an accuracy metric
    gets the majority-class share when ``majority`` is known.
    """
    refs = dict(given or {})
    names = [str(m).lower() for m in metrics]
    if any("auc" in m for m in names) and 0.5 not in refs.values():
        refs["chance (AUC 0.5)"] = 0.5
    if majority is not None and any("accuracy" in m and "balanced" not in m for m in names):
        refs[f"majority class (accuracy {majority:.2f})"] = float(majority)
    return refs


def draw_references(ax: Axes, references: Mapping[str, float], *,
                    vertical: bool = False) -> None:
    """Dashed grey lines at each reference value (labelled, so they join the legend)."""
    styles = ["--", ":", "-."]
    for k, (label, value) in enumerate(references.items()):
        line = ax.axvline if vertical else ax.axhline
        line(value, linestyle=styles[k % len(styles)], color=REFERENCE_COLOR, linewidth=1.2,
             label=label, zorder=1)


def legend_outside(ax: Axes, **kwargs) -> Legend:
    """The axes' legend to the right of the data area (never over a curve or bar)."""
    options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0,
               "frameon": False, "fontsize": "small"}
    return ax.legend(**{**options, **kwargs})


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Writes ``fig`` as an image (format from the suffix) with the legend kept inside."""
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return Path(path)
