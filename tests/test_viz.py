"""Course tables and figures: what they draw, and clear errors on bad input."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from efl_toolkit.course.viz import (
    format_table,
    plot_image_grid,
    plot_metric_comparison,
    plot_partition_comparison,
    plot_rounds,
    plot_training_curves,
)
from efl_toolkit.data import load_dataset, make_institutions


@pytest.fixture(scope="module")
def breast():
    return load_dataset("breastmnist")


def renders(fig) -> bool:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue().startswith(b"\x89PNG")


def test_format_table_aligns_and_rounds():
    text = format_table([{"name": "mean", "acc": 0.81234, "n": 3, "ok": True, "auc": None},
                         {"name": "weighted mean", "acc": math.nan, "n": 12, "ok": False,
                          "auc": 0.5}])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "acc", "n", "ok", "auc"]
    assert lines[1].split() == ["mean", "0.812", "3", "yes", "-"]
    assert lines[2].startswith("weighted mean  nan")
    assert lines[0].index("acc") == lines[1].index("0.812") == lines[2].index("nan")
    assert format_table([]) == "(no rows)"
    assert format_table([{"x": [0.5, 0.25]}], digits=1).splitlines()[1] == "0.5, 0.2"
    with pytest.raises(ValueError, match=r"row 1 has no column\(s\) \['acc'\]"):
        format_table([{"acc": 1.0}, {"name": "x"}])


def test_image_grid_shows_each_class(breast):
    fig = plot_image_grid(breast.train, breast.class_names, per_class=4, seed=1)
    assert len(fig.axes) == 8
    titles = [ax.get_title(loc="left") for ax in fig.axes if ax.get_title(loc="left")]
    counts = breast.train.class_counts(2)
    assert titles == [f"{name} ({n})" for name, n in zip(breast.class_names, counts,
                                                         strict=True)]
    shown = [ax.images[0].get_array() for ax in fig.axes[:4]]
    label0 = breast.train.images[breast.train.labels == 0][..., 0]
    assert all(any(np.array_equal(img, ref) for ref in label0) for img in shown)
    assert renders(fig)
    with pytest.raises(ValueError, match="per_class"):
        plot_image_grid(breast.train, breast.class_names, per_class=0)


def test_partition_comparison_has_one_panel_per_setting(breast):
    fig = plot_partition_comparison({
        "iid": make_institutions(breast, 3, scheme="iid"),
        "skew": make_institutions(breast, 3, alpha=0.1),
    }, breast.class_names)
    assert [ax.get_title() for ax in fig.axes] == ["iid", "skew"]
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert max(heights) <= 1.0 + 1e-9  # normalized shares
    assert fig.axes[0].get_legend() is None and fig.axes[1].get_legend() is not None
    assert renders(fig)


def test_training_curves_one_line_per_model():
    history = [{"epoch": e, "train_loss": 1 / e, "val_accuracy": 0.5 + e / 20}
               for e in range(1, 5)]
    fig = plot_training_curves({"hospital-a/cnn": history, "hospital-b/mlp": history[:2]})
    loss_ax, metric_ax = fig.axes
    assert [len(line.get_xdata()) for line in loss_ax.lines] == [4, 2]
    assert list(metric_ax.lines[0].get_ydata()) == [0.55, 0.6, 0.65, 0.7]
    assert renders(fig)
    with pytest.raises(ValueError, match="hospital-b/mlp: every epoch needs"):
        plot_training_curves({"hospital-b/mlp": [{"epoch": 1, "train_loss": 0.3}]})


def test_metric_comparison_skips_missing_values_and_draws_references():
    rows = [{"name": "hospital-a", "accuracy": 0.7, "kind": "single"},
            {"name": "hospital-b", "accuracy": None, "kind": "single"},
            {"name": "mean", "accuracy": 0.8, "kind": "ensemble"}]
    fig = plot_metric_comparison(rows, group_key="kind", reference={"chance": 0.5})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    ticks = sorted(zip(ax.get_yticks(), labels, strict=True), reverse=True)
    assert [label for _, label in ticks] == ["hospital-a", "mean"]  # first row on top
    widths = sorted(p.get_width() for p in ax.patches if p.get_width() > 0)
    assert widths == [0.7, 0.8]
    assert [line.get_xdata()[0] for line in ax.lines] == [0.5]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["chance", "ensemble", "single"]
    assert renders(fig)
    with pytest.raises(ValueError, match="no row has a value for 'auc'"):
        plot_metric_comparison(rows, metric="auc")


def test_metric_comparison_of_several_metrics_side_by_side():
    rows = [{"name": "a", "accuracy": 0.7, "auc": 0.6},
            {"name": "b", "accuracy": 0.75, "auc": math.nan}]
    fig = plot_metric_comparison(rows, metric=["accuracy", "auc"])
    ax = fig.axes[0]
    bars = [(round(p.get_y() + p.get_height() / 2, 3), p.get_width()) for p in ax.patches]
    assert sorted(w for _, w in bars) == [0.6, 0.7, 0.75]  # b's NaN AUC is left out
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t for t in legend if not t.startswith("chance")] == ["accuracy", "auc"]
    a_bars = [w for y, w in bars if y > 0.5]  # row "a" sits on top (y = 1)
    assert sorted(a_bars) == [0.6, 0.7]


def test_rounds_plot():
    fig = plot_rounds([{"round": r, "accuracy": 0.5 + 0.1 * r} for r in (1, 2, 3)],
                      reference={"ensemble": 0.8})
    ax = fig.axes[0]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    assert ax.lines[1].get_ydata()[0] == 0.8
    with pytest.raises(ValueError, match="round entry 0"):
        plot_rounds([{"accuracy": 0.5}])
