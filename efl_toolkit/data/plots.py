"""Plots of the federation's data: class distribution per institution, and device examples.

Both functions build a :class:`matplotlib.figure.Figure` directly (no pyplot global state), so
they work under any backend; in Jupyter, a returned figure displays as the cell's output.

Example:
    >>> from efl_toolkit.data import load_dataset, make_institutions
    >>> ds = load_dataset("breastmnist")
    >>> fig = plot_class_distribution(make_institutions(ds, 3), ds.class_names)
    >>> len(fig.axes)
    1
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from efl_toolkit.data.devices import DeviceProfile, apply_device
from efl_toolkit.data.institution import Institution
from efl_toolkit.plotting import legend_outside


def plot_class_distribution(institutions: Sequence[Institution], class_names: Sequence[str],
                            ax: Axes | None = None, *, normalize: bool = False) -> Figure:
    """Stacked bars of each institution's training examples per class.

    Args:
        institutions: The institutions to show (one bar each).
        class_names: One name per class (legend entries).
        ax: Axes to draw into; a new figure when ``None``.
        normalize: Show class proportions instead of counts.

    Returns:
        The figure holding the plot.

    Example:
        >>> from efl_toolkit.data import load_dataset, make_institutions
        >>> ds = load_dataset("breastmnist")
        >>> fig = plot_class_distribution(make_institutions(ds, 2), ds.class_names)
        >>> fig.axes[0].get_ylabel()
        'training examples (count)'
    """
    if not institutions:
        raise ValueError("no institutions to plot")
    if ax is None:
        fig = Figure(figsize=(max(4.0, 1.2 * len(institutions) + 2), 3.6), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    n_labels = 1 + max((int(inst.train.labels.max(initial=0)) for inst in institutions),
                       default=0)
    width = max(n_labels, len(class_names))
    counts = np.stack([inst.train.class_counts(width) for inst in institutions])
    if counts.shape[1] > len(class_names):
        raise ValueError(f"labels hold {counts.shape[1]} classes but {len(class_names)} class "
                         "names were given")
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    ids = [inst.id for inst in institutions]
    cmap = matplotlib.colormaps["tab20" if len(class_names) > 10 else "tab10"]
    bottom = np.zeros(len(institutions))
    for c, name in enumerate(class_names):
        ax.bar(ids, values[:, c], bottom=bottom, label=name, color=cmap(c % cmap.N))
        bottom += values[:, c]
    ax.set_ylabel("share of training examples (0 to 1)" if normalize
                  else "training examples (count)")
    ax.set_xlabel("institution")
    ax.set_title("Class distribution per institution")
    legend_outside(ax, title="class")
    ax.tick_params(axis="x", labelrotation=30 if len(institutions) > 5 else 0)
    return fig


def plot_device_examples(image: np.ndarray,
                         devices: Sequence[DeviceProfile | Institution],
                         *, seed: int = 0) -> Figure:
    """One image as each imaging device would capture it (the original first).

    Args:
        image: One image ``[H, W]``, ``[H, W, C]`` or ``[1, H, W, C]`` in ``[0, 1]``.
        devices: Device profiles, or institutions (titled with their id and device).
        seed: Seed of the sensor noise.

    Returns:
        A figure with ``1 + len(devices)`` panels.

    Example:
        >>> from efl_toolkit.data import load_dataset, device_profiles
        >>> ds = load_dataset("breastmnist")
        >>> fig = plot_device_examples(ds.test.images[0], device_profiles(4, seed=0))
        >>> len(fig.axes)
        5
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one image [H, W], [H, W, C] or [1, H, W, C], got "
                         f"{image.shape}")
    panels = [("original", image[0])]
    rng = np.random.default_rng(seed)
    for item in devices:
        profile = item.device if isinstance(item, Institution) else item
        title = f"{item.id}\n{profile.name}" if isinstance(item, Institution) else profile.name
        panels.append((title, apply_device(image, profile, rng)[0]))
    fig = Figure(figsize=(1.9 * len(panels), 2.3), layout="constrained")
    for k, (title, img) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
        else:
            ax.imshow(np.clip(img[..., :3], 0.0, 1.0))
        ax.set_title(title, fontsize="small")
        ax.set_axis_off()
    fig.suptitle("One image as each imaging device captures it")
    return fig
