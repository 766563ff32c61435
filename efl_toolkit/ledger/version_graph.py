"""The ledger's model-version graph as a figure whose edges never cross unrelated nodes.

Layout (:func:`version_layout`): one lane (row) per model, i.e. per (institution, model id),
in the order models first appear; one column per committed version in ledger order, so every
column holds exactly one version; the ensemble rounds sit on a last lane to the right.

Edges are routed so they cannot pass through another node:

* a version following the previous version of its own lane: a straight arrow along the lane;
* any other parent link (another lane, or skipping a version of its own lane): down (or up)
  its parent's column, which holds no other node, along a channel halfway between two lanes,
  which holds no node at all, and into the child's column;
* a version used by a round: down its column to a channel above the rounds lane, then along it.

Example:
    >>> from efl_toolkit.ledger.state import ModelVersion
    >>> v = lambda h, inst, mid, parent=None: ModelVersion(h, inst, mid, parent, "mlp", {}, {},
    ...                                                    None)
    >>> layout = version_layout([v("a1", "h-a", "mlp"), v("b1", "h-b", "mlp"),
    ...                          v("a2", "h-a", "mlp", "a1")], [])
    >>> layout.lanes, layout.nodes["a2"]
    (['h-a / mlp', 'h-b / mlp'], (2.0, 0.0))
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from matplotlib.figure import Figure

from efl_toolkit.ledger.state import ModelVersion, Round

Point = tuple[float, float]


@dataclass(frozen=True)
class VersionLayout:
    """Positions (x = column, y = lane, lane 0 on top) and routed edges of the graph.

    Attributes:
        lanes: Lane labels, top to bottom (the rounds lane, if any, is ``"rounds"``, last).
        nodes: Version hash, or ``"round:<id>"``, -> its ``(x, y)``.
        labels: Node -> the text drawn under it.
        edges: ``(source, target, polyline)``; the polyline starts at the source node and ends
            at the target node.
    """

    lanes: list[str]
    nodes: dict[str, Point]
    labels: dict[str, str] = field(default_factory=dict)
    edges: list[tuple[str, str, list[Point]]] = field(default_factory=list)


def _version_label(v: ModelVersion, placed) -> str:
    """A federated group's rounds read ``r1 r2 ...`` after the first (which names the model)."""
    if v.model_id.startswith("group-") and v.parent in placed:
        return f"r{int(v.metrics.get('round', 0))}"
    name = v.model_id if v.model_id.startswith("group-") else v.architecture
    return f"{name}\n{v.version[:8]}"


def version_layout(versions: Sequence[ModelVersion], rounds: Sequence[Round]) -> VersionLayout:
    """Places ``versions`` (ledger order) and ``rounds`` and routes every edge (module doc)."""
    keys = list(dict.fromkeys((v.institution, v.model_id) for v in versions))
    lanes = [f"{inst} / {model}" for inst, model in keys]
    nodes, labels, last_in_lane = {}, {}, {}
    edges: list[tuple[str, str, list[Point]]] = []
    for column, v in enumerate(versions):
        x, y = float(column), float(keys.index((v.institution, v.model_id)))
        if v.parent in nodes:
            x0, y0 = nodes[v.parent]
            if y0 == y and last_in_lane.get(y) == v.parent:
                path = [(x0, y0), (x, y)]
            else:  # down the parent's column, along a channel between lanes, into the child's
                offset = 0.1 * (len(edges) % 3 - 1)  # parallel channels stay apart
                channel = y - 0.5 + offset if y0 <= y else y + 0.5 + offset
                path = [(x0, y0), (x0, channel), (x, channel), (x, y)]
            edges.append((v.parent, v.version, path))
        labels[v.version] = _version_label(v, nodes)
        nodes[v.version] = (x, y)
        last_in_lane[y] = v.version
    if rounds:
        lanes.append("rounds")
        round_y = float(len(keys))
        for k, rnd in enumerate(rounds):
            name, x = f"round:{rnd.round_id}", float(len(versions) + k)
            nodes[name], labels[name] = (x, round_y), f"{rnd.round_id}\n{rnd.status}"
            channel = round_y - 0.5 + 0.12 * (k % 3 - 1)
            for version in rnd.versions:
                if version in nodes:
                    vx, vy = nodes[version]
                    edges.append((version, name, [(vx, vy), (vx, channel), (x, channel),
                                                  (x, round_y)]))
    return VersionLayout(lanes, nodes, labels, edges)


def plot_version_layout(layout: VersionLayout, *, title: str | None = None) -> Figure:
    """Draws a :class:`VersionLayout`: blue version dots, orange round squares, arrows."""
    n_columns = 1 + max((x for x, _ in layout.nodes.values()), default=0)
    width = min(max(7.5, 0.6 * n_columns + 2.5), 40.0)
    fig = Figure(figsize=(width, 1.4 + 0.85 * max(len(layout.lanes), 1)), layout="constrained")
    ax = fig.add_subplot()
    for _source, target, path in layout.edges:
        to_round = target.startswith("round:")
        style = {"color": "#f58518", "alpha": 0.7} if to_round else {"color": "#333333"}
        xs, ys = zip(*path[:-1], strict=True)
        ax.plot(xs, ys, lw=1.0, zorder=1, **style)
        ax.annotate("", path[-1], path[-2], arrowprops={"arrowstyle": "->", "shrinkB": 9,
                                                        "lw": 1.0, **style}, zorder=2)
    for name, (x, y) in layout.nodes.items():
        is_round = name.startswith("round:")
        ax.scatter([x], [y], s=300 if is_round else 240, marker="s" if is_round else "o",
                   color="#f58518" if is_round else "#4c78a8", zorder=3)
        ax.text(x, y + 0.22, layout.labels.get(name, name), ha="center", va="top",
                fontsize="small", zorder=4)
    ax.set_yticks(range(len(layout.lanes)), layout.lanes)
    ax.set_xticks([])
    ax.set_ylim(-0.7, len(layout.lanes) - 0.1)
    ax.set_xlim(-0.7, n_columns - 0.3)
    ax.invert_yaxis()
    ax.set_xlabel("ledger order (one column per committed version, then the rounds)")
    ax.set_ylabel("lane: institution / model id")
    ax.set_title(title or "Model versions on the ledger and the rounds that used them")
    return fig


def plot_model_versions(ledger_path) -> Figure:
    """The model-version graph (see the module doc) of an embedded ledger file
    (``str``/``Path``) or of any open ledger backend (e.g. EVM: its ``history()``)."""
    from efl_toolkit.ledger import open_ledger

    if hasattr(ledger_path, "history"):
        versions, rounds = ledger_path.history()[::-1], ledger_path.rounds()
    else:
        view = open_ledger(ledger_path)
        try:
            versions, rounds = view.model_versions(), view.rounds()
        finally:
            view.close()
    return plot_version_layout(version_layout(versions, rounds))
