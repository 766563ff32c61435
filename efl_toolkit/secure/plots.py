"""Figures for the secure ensemble: shares, fixed-point precision, and the cost of a round.

Like :mod:`efl_toolkit.viz`, every function builds a :class:`matplotlib.figure.Figure` without
pyplot's global state and returns it (a cell's last expression shows it in a notebook).

Example:
    >>> from efl_toolkit.secure.teaching import share_secret
    >>> fig = plot_sharing(share_secret(30, 3, 1, rng=0), alternatives=[0, 60])
    >>> fig.axes[0].get_xlabel()
    'x (party index; x = 0 holds the secret)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from efl_toolkit.plotting import legend_outside
from efl_toolkit.secure.teaching import (
    ShamirSharing,
    evaluate_polynomial,
    secrets_consistent_with,
)


def plot_sharing(sharing: ShamirSharing, *, known: Sequence[int] = (1,),
                 alternatives: Sequence[int] = ()) -> Figure:
    """The sharing polynomial at ``x = 0..n`` and, dashed, other polynomials through the
    shares of the ``known`` parties that would hide other secrets.

    Args:
        sharing: A :class:`~efl_toolkit.secure.teaching.ShamirSharing`.
        known: The ``t`` parties whose shares are fixed (what ``t`` colluders hold).
        alternatives: Other secrets to draw a consistent polynomial for.

    Example:
        >>> from efl_toolkit.secure.teaching import share_secret
        >>> len(plot_sharing(share_secret(5, 3, 1, rng=1), alternatives=[9]).axes[0].lines)
        2
    """
    p, n = sharing.modulus, sharing.n_parties
    xs = np.arange(0, n + 1)
    cmap = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ys = [evaluate_polynomial(sharing.coefficients, int(x), p) for x in xs]
    ax.plot(xs, ys, "o-", color=cmap(0), label=f"real: secret {sharing.secret}")
    points = {x: sharing.shares[x] for x in known}
    options = secrets_consistent_with(points, sharing.threshold, p) if alternatives else {}
    for k, secret in enumerate(alternatives):
        alt = [evaluate_polynomial(options[int(secret)], int(x), p) for x in xs]
        ax.plot(xs, alt, "s--", color=cmap(k + 1), alpha=0.8, label=f"also fits: secret {secret}")
    ax.scatter(list(points), list(points.values()), s=160, facecolors="none",
               edgecolors="black", zorder=5, label=f"known share(s) {sorted(points)}")
    ax.set(xlabel="x (party index; x = 0 holds the secret)", ylabel=f"f(x) mod {p}",
           title=f"Shamir sharing, t={sharing.threshold}, n={n}, field Z_{p}", xticks=xs,
           ylim=(-2, p + 2))
    legend_outside(ax)
    return fig


def plot_share_histograms(samples: Mapping[object, np.ndarray], modulus: int, *,
                          party: int = 1) -> Figure:
    """Histograms of one party's share over many sharings, one panel per secret.

    Example:
        >>> fig = plot_share_histograms({7: np.arange(101), 90: np.arange(202) % 101}, 101)
        >>> len(fig.axes)
        2
    """
    if not samples:
        raise ValueError("no samples to plot")
    fig = Figure(figsize=(3.3 * len(samples), 2.8), layout="constrained")
    axes = fig.subplots(1, len(samples), sharey=True, squeeze=False)[0]
    cmap = matplotlib.colormaps["tab10"]
    for k, (ax, (secret, values)) in enumerate(zip(axes, samples.items(), strict=True)):
        counts = np.bincount(np.asarray(values, dtype=np.int64) % modulus, minlength=modulus)
        ax.bar(np.arange(modulus), counts, width=1.0, color=cmap(k))
        ax.axhline(len(values) / modulus, color="black", linestyle="--", linewidth=1)
        ax.set(title=f"secret {secret}", xlabel=f"party {party}'s share (0..{modulus - 1})",
               ylim=(0, 1.6 * max(counts.max(), 1)))
    axes[0].set_ylabel("sharings (count; dashed: uniform)")
    fig.suptitle(f"Party {party}'s share looks the same whatever the secret")
    return fig


def plot_fixed_point_errors(rows: Sequence[Mapping]) -> Figure:
    """Measured fixed-point error and its guaranteed bound against fractional bits (log scale).

    Args:
        rows: From :func:`efl_toolkit.secure.measure.fixed_point_errors`.

    Example:
        >>> fig = plot_fixed_point_errors([{"frac_bits": 8, "error_bound": 0.006,
        ...                                 "max_abs_error": 0.003}])
        >>> fig.axes[0].get_yscale()
        'log'
    """
    if not rows:
        raise ValueError("no rows to plot")
    cmap = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(6.0, 3.4), layout="constrained")
    ax = fig.add_subplot()
    bits = [r["frac_bits"] for r in rows]
    ax.plot(bits, [r["error_bound"] for r in rows], "--", color=cmap(3),
            label="bound M * 2^-(f+1)")
    measured = [max(r["max_abs_error"], 1e-18) for r in rows]
    ax.plot(bits, measured, "o-", color=cmap(0), label="measured max |error|")
    ax.set(xlabel="fractional bits f", ylabel="|fixed-point mean - float mean| (probability)",
           yscale="log", title="Fixed-point precision of the weighted mean")
    legend_outside(ax)
    return fig


def plot_share_fractions(fractions: Mapping[int, np.ndarray], *,
                         names: Sequence[str] | None = None) -> Figure:
    """Histogram of each party's shares divided by the prime (flat = random-looking).

    Args:
        fractions: From :func:`efl_toolkit.secure.measure.share_fractions`.
        names: Optional label per party.

    Example:
        >>> fig = plot_share_fractions({0: np.linspace(0, 1, 50), 1: np.linspace(0, 1, 50)})
        >>> len(fig.axes)
        2
    """
    if not fractions:
        raise ValueError("no shares to plot")
    cmap = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(3.2 * len(fractions), 2.8), layout="constrained")
    axes = fig.subplots(1, len(fractions), sharey=True, squeeze=False)[0]
    for k, (ax, (party, values)) in enumerate(zip(axes, fractions.items(), strict=True)):
        ax.hist(values, bins=np.linspace(0, 1, 11), color=cmap(k))
        ax.axhline(len(values) / 10, color="black", linestyle="--", linewidth=1)
        label = names[k] if names is not None else f"party {party}"
        ax.set(title=label, xlabel="share / prime (0 to 1)")
    axes[0].set_ylabel("shares (count; dashed: uniform)")
    fig.suptitle("What each party holds: shares spread evenly over the field")
    return fig


def plot_round_costs(rows: Sequence[Mapping]) -> Figure:
    """Compute time and bytes sent per party against rows, one line per (reveal, parties);
    the wall time (dominated by starting M Python processes) is drawn dotted.

    Args:
        rows: From :func:`efl_toolkit.secure.measure.measure_round_costs`.

    Example:
        >>> fig = plot_round_costs([{"reveal": "mean", "parties": 3, "rows": 8,
        ...                          "wall_seconds": 1.0, "compute_seconds": 0.02,
        ...                          "bytes_sent": 900.0}])
        >>> [ax.get_xlabel() for ax in fig.axes]
        ['query rows', 'query rows']
    """
    if not rows:
        raise ValueError("no rows to plot")
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        groups.setdefault((row["reveal"], row["parties"]), []).append(row)
    cmap = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(10.0, 3.6), layout="constrained")
    time_ax, bytes_ax = fig.subplots(1, 2)
    for k, ((reveal, parties), members) in enumerate(sorted(groups.items())):
        members = sorted(members, key=lambda r: r["rows"])
        xs = [r["rows"] for r in members]
        label = f"reveal={reveal}, M={parties}"
        time_ax.plot(xs, [r["compute_seconds"] for r in members], "o-", color=cmap(k),
                     label=label)
        time_ax.plot(xs, [r["wall_seconds"] for r in members], ":", color=cmap(k))
        bytes_ax.plot(xs, [r["bytes_sent"] / 1e3 for r in members], "o-", color=cmap(k),
                      label=label)
    sizes = sorted({r["rows"] for r in rows})
    time_ax.set(ylabel="time (seconds)", title="compute time once connected (dotted: wall time)")
    bytes_ax.set(ylabel="kB sent per party", title="traffic")
    for ax in (time_ax, bytes_ax):
        ax.set(xlabel="query rows", xscale="log", yscale="log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())
    legend_outside(bytes_ax)
    fig.suptitle("Cost of one secure round")
    return fig
