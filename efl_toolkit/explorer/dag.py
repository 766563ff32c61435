"""Drawing the model-version graph as inline SVG (no plotting library, no browser round trip).

Each institution gets a horizontal lane; nodes sit left to right in ledger order (one node per
column); an arrow runs from every parent to its child, so a model's history reads along its lane
and an ensemble round collects arrows from the versions that took part in it.

Edges never pass through an unrelated node: an arrow to the next node of the same lane is
straight; any other (another lane, or skipping nodes of its own lane) leaves its parent
vertically (the column holds no other node), runs along a channel halfway between two lanes
(which holds no node) and enters its child's column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from efl_toolkit.explorer.backend import ModelVersion

LANE_HEIGHT = 56
COLUMN_WIDTH = 92
LEFT_MARGIN = 150
TOP_MARGIN = 24
NODE_RADIUS = 11
KIND_COLOURS = {"model": "#4c78a8", "round": "#f58518"}


@dataclass(frozen=True)
class Layout:
    """Where each node sits: ``positions[version] = (x, y)``, lanes in drawing order."""

    positions: dict[str, tuple[float, float]]
    lanes: tuple[str, ...]
    width: float
    height: float


def layout(versions: Sequence[ModelVersion]) -> Layout:
    """Places nodes: one lane per institution (first-seen order), one column per node.

    Example:
        >>> v = [ModelVersion("a1", "model", "h-a", "cnn v1", 1),
        ...      ModelVersion("a2", "model", "h-a", "cnn v2", 2, parents=("a1",))]
        >>> layout(v).positions["a2"][0] > layout(v).positions["a1"][0]
        True
    """
    ordered = sorted(enumerate(versions), key=lambda pair: (pair[1].height, pair[0]))
    lanes: list[str] = []
    for _, version in ordered:
        if version.institution not in lanes:
            lanes.append(version.institution)
    positions = {
        version.version: (LEFT_MARGIN + column * COLUMN_WIDTH + COLUMN_WIDTH / 2,
                          TOP_MARGIN + lanes.index(version.institution) * LANE_HEIGHT
                          + LANE_HEIGHT / 2)
        for column, (_, version) in enumerate(ordered)
    }
    width = LEFT_MARGIN + max(len(ordered), 1) * COLUMN_WIDTH + 20
    height = TOP_MARGIN + max(len(lanes), 1) * LANE_HEIGHT + 10
    return Layout(positions, tuple(lanes), width, height)


def edge_path(start: tuple[float, float], end: tuple[float, float], *, adjacent: bool,
              offset: float = 0.0) -> list[tuple[float, float]]:
    """The corner points of an arrow from ``start`` to ``end`` (node centres; see module doc).

    ``adjacent``: ``end`` is the next node of ``start``'s lane (then a straight arrow).
    ``offset``: shifts the channel a few pixels so parallel edges stay apart.

    Example:
        >>> edge_path((0, 0), (100, 56), adjacent=False)
        [(0, 11), (0, 28.0), (100, 28.0), (100, 42)]
    """
    (x0, y0), (x1, y1) = start, end
    if adjacent and y0 == y1:
        return [(x0 + NODE_RADIUS, y0), (x1 - NODE_RADIUS - 3, y1)]
    down = y1 > y0
    channel = (y1 - LANE_HEIGHT / 2 if down or y0 == y1 else y1 + LANE_HEIGHT / 2) + offset
    leave = y0 + NODE_RADIUS if channel > y0 else y0 - NODE_RADIUS
    enter = y1 - NODE_RADIUS - 3 if channel < y1 else y1 + NODE_RADIUS + 3
    return [(x0, leave), (x0, channel), (x1, channel), (x1, enter)]


def _edge(points: list[tuple[float, float]]) -> str:
    d = " ".join(f"{'M' if k == 0 else 'L'}{x:.1f},{y:.1f}" for k, (x, y) in enumerate(points))
    return (f'<path class="efl-dag-edge" d="{d}" fill="none" stroke="#888" stroke-width="1.4" '
            f'stroke-linejoin="round" marker-end="url(#efl-arrow)"/>')


def _node(version: ModelVersion, x: float, y: float) -> str:
    colour = KIND_COLOURS.get(version.kind, "#54a24b")
    tooltip = escape(f"{version.label}\nversion {version.version}\nblock {version.height}"
                     + "".join(f"\nparent {p}" for p in version.parents))
    return (f'<g class="efl-dag-node" data-version="{escape(version.version)}">'
            f"<title>{tooltip}</title>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{NODE_RADIUS}" fill="{colour}"/>'
            f'<text x="{x:.1f}" y="{y + NODE_RADIUS + 12:.1f}" font-size="10" '
            f'text-anchor="middle">{escape(version.label[:16])}</text>'
            f'<text x="{x:.1f}" y="{y - NODE_RADIUS - 4:.1f}" font-size="9" fill="#666" '
            f'text-anchor="middle" font-family="monospace">{escape(version.version[:8])}</text>'
            "</g>")


def dag_svg(versions: Sequence[ModelVersion]) -> str:
    """The whole graph as an ``<svg>`` string (a short note when there is nothing to draw).

    Parents that are not among ``versions`` (e.g. pruned history) are ignored.

    Example:
        >>> svg = dag_svg([ModelVersion("a1", "model", "h-a", "cnn v1", 1)])
        >>> svg.startswith("<svg") and "h-a" in svg
        True
    """
    if not versions:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="320" height="30">' \
               '<text x="4" y="20" font-size="12">no model versions on the ledger yet</text></svg>'
    placed = layout(versions)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="efl-dag" width="{placed.width:.0f}" '
        f'height="{placed.height:.0f}" font-family="sans-serif">',
        '<defs><marker id="efl-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#888"/></marker></defs>',
    ]
    for index, lane in enumerate(placed.lanes):
        y = TOP_MARGIN + index * LANE_HEIGHT
        fill = "#f4f6f8" if index % 2 == 0 else "#ffffff"
        parts.append(f'<rect x="0" y="{y}" width="{placed.width:.0f}" height="{LANE_HEIGHT}" '
                     f'fill="{fill}"/>')
        parts.append(f'<text x="8" y="{y + LANE_HEIGHT / 2 + 4:.1f}" font-size="12" '
                     f'font-weight="bold">{escape(lane[:20])}</text>')
    by_lane: dict[float, list[float]] = {}
    for x, y in placed.positions.values():
        by_lane.setdefault(y, []).append(x)
    n_edges = 0
    for version in versions:
        for parent in version.parents:
            if parent in placed.positions:
                (x0, y0), (x1, y1) = placed.positions[parent], placed.positions[version.version]
                adjacent = y0 == y1 and not any(x0 < x < x1 for x in by_lane[y0])
                parts.append(_edge(edge_path((x0, y0), (x1, y1), adjacent=adjacent,
                                             offset=4.0 * (n_edges % 3 - 1))))
                n_edges += 1
    for version in versions:
        parts.append(_node(version, *placed.positions[version.version]))
    parts.append("</svg>")
    return "".join(parts)
