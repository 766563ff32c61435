"""Every plot the package makes has a title, labelled axes, a chance / majority reference where a
score is shown and its legend outside the data; the version graph's edges avoid unrelated nodes
(issue 13, item 4)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.lines import Line2D

from efl_toolkit.course.viz import (
    plot_image_grid,
    plot_metric_comparison,
    plot_partition_comparison,
    plot_rounds,
    plot_training_curves,
)
from efl_toolkit.data import load_dataset, make_institutions
from efl_toolkit.data.plots import plot_class_distribution, plot_device_examples
from efl_toolkit.ledger.state import ModelVersion, Round
from efl_toolkit.ledger.version_graph import version_layout
from efl_toolkit.playground.sweeps import plot_sweep
from efl_toolkit.plotting import majority_share
from efl_toolkit.secure.plots import (
    plot_fixed_point_errors,
    plot_round_costs,
    plot_share_fractions,
    plot_share_histograms,
    plot_sharing,
)
from efl_toolkit.secure.teaching import share_secret


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("breastmnist")


HISTORY = [{"epoch": e, "train_loss": 0.8 - 0.1 * e, "val_accuracy": 0.6 + 0.03 * e,
            "val_auc": 0.6 + 0.02 * e} for e in range(1, 6)]
ROUNDS = [{"round": r, "accuracy": 0.6 + 0.02 * r, "auc": 0.7 + 0.01 * r} for r in range(1, 11)]
COSTS = [{"reveal": "mean", "parties": 3, "rows": n, "wall_seconds": 1.0,
          "compute_seconds": 0.01 * n, "bytes_sent": 100.0 * n} for n in (8, 64)]


def _cases(ds):
    """(name, figure, needs a score reference) for every plotting function, small inputs."""
    insts = make_institutions(ds, 3, alpha=0.3)
    rows = [{"name": "hospital-a", "accuracy": 0.7, "balanced_accuracy": 0.6, "auc": 0.75},
            {"name": "ensemble", "accuracy": 0.8, "balanced_accuracy": 0.7, "auc": 0.85}]
    majority = majority_share(ds.test.labels)
    return [
        ("plot_image_grid", plot_image_grid(ds.train, ds.class_names, per_class=2), False),
        ("plot_partition_comparison", plot_partition_comparison(
            {"iid": make_institutions(ds, 3, scheme="iid"), "skewed": insts}, ds.class_names),
         False),
        ("plot_class_distribution", plot_class_distribution(insts, ds.class_names), False),
        ("plot_device_examples", plot_device_examples(ds.test.images[0], insts), False),
        ("plot_training_curves/accuracy", plot_training_curves({"a": HISTORY},
                                                               majority=majority), True),
        ("plot_training_curves/auc", plot_training_curves({"a": HISTORY}, metric="val_auc"),
         True),
        ("plot_metric_comparison", plot_metric_comparison(
            rows, metric=["accuracy", "auc"], majority=majority), True),
        ("plot_rounds", plot_rounds(ROUNDS, metric="auc", reference={"ensemble": 0.8},
                                    title="FedAvg (cnn) global model"), True),
        ("plot_sweep", plot_sweep([{"n": 2, "auc": 0.7}, {"n": 3, "auc": 0.8}], "n", ["auc"]),
         True),
        ("plot_sharing", plot_sharing(share_secret(30, 3, 1, rng=0), alternatives=[0, 60]),
         False),
        ("plot_share_histograms", plot_share_histograms(
            {7: np.arange(101), 90: np.arange(202) % 101}, 101), False),
        ("plot_fixed_point_errors", plot_fixed_point_errors(
            [{"frac_bits": b, "error_bound": 2.0 ** -b, "max_abs_error": 2.0 ** -(b + 2)}
             for b in (8, 16)]), False),
        ("plot_share_fractions", plot_share_fractions({0: np.linspace(0, 1, 50),
                                                       1: np.linspace(0, 1, 50)}), False),
        ("plot_round_costs", plot_round_costs(COSTS), False),
    ]


def _data_axes(fig):
    return [ax for ax in fig.axes if ax.axison and ax.get_label() != "<colorbar>"]


def check_figure(name, fig, needs_reference):
    """The conventions of :mod:`efl_toolkit.plotting`, asserted on an Agg-rendered figure."""
    FigureCanvasAgg(fig).draw()
    suptitle = fig._suptitle.get_text() if fig._suptitle else ""
    assert suptitle or all(ax.get_title() for ax in fig.axes), f"{name}: no title"
    axes = _data_axes(fig)
    for ax in axes:
        assert ax.get_xlabel(), f"{name}: an axes has no x label"
    if axes:
        assert axes[0].get_ylabel(), f"{name}: no y label"
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box, data = legend.get_window_extent(), ax.get_window_extent()
        overlap = (min(box.x1, data.x1) - max(box.x0, data.x0) > 1
                   and min(box.y1, data.y1) - max(box.y0, data.y0) > 1)
        assert not overlap, f"{name}: the legend sits inside the data area"
    if needs_reference:
        labels = [line.get_label() for ax in axes for line in ax.get_lines()]
        assert any("chance" in lab or "majority" in lab for lab in labels), \
            f"{name}: no chance / majority reference line ({labels})"


def test_every_plotting_function_follows_the_conventions(dataset):
    for name, fig, needs_reference in _cases(dataset):
        check_figure(name, fig, needs_reference)


def test_score_plots_draw_the_majority_class_for_accuracy(dataset):
    majority = majority_share(dataset.test.labels)
    fig = plot_metric_comparison([{"name": "a", "accuracy": 0.9}], majority=majority)
    xs = [line.get_xdata()[0] for line in fig.axes[0].get_lines()
          if "majority" in line.get_label()]
    assert xs == [pytest.approx(majority)] and fig.axes[0].get_xlim()[0] == 0.0


def _v(h, inst, model, parent=None):
    return ModelVersion(h, inst, model, parent, "mlp", {}, {}, None)


def _distance(point, a, b):
    (px, py), (ax, ay), (bx, by) = point, a, b
    dx, dy = bx - ax, by - ay
    t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy)
                                                / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def assert_edges_avoid_other_nodes(layout):
    for source, target, path in layout.edges:
        assert path[0] == layout.nodes[source] and path[-1] == layout.nodes[target]
        for node, where in layout.nodes.items():
            if node in (source, target):
                continue
            gap = min(_distance(where, a, b) for a, b in zip(path, path[1:], strict=False))
            assert gap > 0.3, f"edge {source}->{target} passes through {node}"


def test_version_graph_edges_avoid_unrelated_nodes():
    versions = [_v("a1", "h-a", "mlp"), _v("a-cnn", "h-a", "cnn"), _v("b1", "h-b", "mlp"),
                _v("a2", "h-a", "mlp", "a1"), _v("g1", "h-a", "group-cnn", "a-cnn"),
                _v("a3", "h-a", "mlp", "a1"),  # a branch: skips a2 in its own lane
                _v("c1", "h-c", "mlp", "a2")]
    rounds = [Round("r1", "h-a", ("a2", "b1", "c1"), {}, None, "done", None, None)]
    layout = version_layout(versions, rounds)
    assert layout.lanes == ["h-a / mlp", "h-a / cnn", "h-b / mlp", "h-a / group-cnn",
                            "h-c / mlp", "rounds"]
    assert len(layout.edges) == 4 + 3  # four parent links, three versions in the round
    straight = [(s, t) for s, t, path in layout.edges if len(path) == 2]
    assert straight == [("a1", "a2")]  # only consecutive versions of one lane are straight
    assert_edges_avoid_other_nodes(layout)


def test_report_plots_on_a_real_experiment(breastmnist_experiment):
    from efl_toolkit.ledger import open_ledger
    from efl_toolkit.report import plot_confusion, plot_model_versions, plot_roc_curves

    result, out = breastmnist_experiment
    roc = plot_roc_curves(result)
    check_figure("plot_roc_curves", roc, True)
    assert repr(result.dataset.class_names[1]) in roc.axes[0].get_title()  # positive class
    check_figure("plot_confusion", plot_confusion(result.secure_eval, result.dataset.class_names,
                                                  "Secure ensemble"), False)
    check_figure("plot_model_versions", plot_model_versions(result.ledger_path), False)
    view = open_ledger(result.ledger_path)
    try:
        assert_edges_avoid_other_nodes(version_layout(view.model_versions(), view.rounds()))
    finally:
        view.close()
    for png in ("metrics.png", "roc_curves.png", "model_versions.png"):
        assert (out / png).stat().st_size > 10_000
    assert any(isinstance(line, Line2D) and "majority" in line.get_label()
               for line in _metrics_figure(result).axes[0].get_lines())


def _metrics_figure(result):
    from efl_toolkit.course.viz import plot_metric_comparison as plot
    from efl_toolkit.report import metric_rows

    return plot(metric_rows(result), metric=["accuracy", "balanced_accuracy", "auc"],
                majority=majority_share(result.dataset.test.labels))


def test_explorer_dag_svg_edges_avoid_unrelated_nodes():
    import re

    from efl_toolkit.explorer.backend import ModelVersion as Node
    from efl_toolkit.explorer.dag import NODE_RADIUS, dag_svg

    nodes = [Node("a1", "model", "h-a", "mlp v1", 1), Node("b1", "model", "h-b", "mlp v1", 2),
             Node("a2", "model", "h-a", "mlp v2", 3, parents=("a1",)),
             Node("c1", "model", "h-c", "cnn v1", 4),
             Node("a3", "model", "h-a", "mlp v3", 5, parents=("a1",)),  # skips a2
             Node("r1", "round", "h-c", "round 1", 6, parents=("a2", "b1", "c1"))]
    svg = dag_svg(nodes)
    centres = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(
        r'data-version="(\w+)">.*?<circle cx="([\d.]+)" cy="([\d.]+)"', svg, re.S)}
    paths = [[tuple(map(float, p.split(","))) for p in re.findall(r"[ML]([\d.]+,[\d.]+)", d)]
             for d in re.findall(r'class="efl-dag-edge" d="([^"]+)"', svg)]
    assert len(centres) == 6 and len(paths) == 5
    for path in paths:
        ends = {min(centres, key=lambda n: math.dist(centres[n], point))
                for point in (path[0], path[-1])}
        for name, centre in centres.items():
            if name not in ends:
                gap = min(_distance(centre, a, b) for a, b in zip(path, path[1:], strict=False))
                assert gap > NODE_RADIUS + 2, f"an edge between {ends} crosses {name}"
