"""Scatter plots of maps as PNG files, drawn off-screen with matplotlib's Agg canvas.

The figure is drawn on its own Agg canvas rather than through ``pyplot``, so
plotting neither opens a window nor changes the backend of an application
(such as napari) that imported this module.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .atomic import write_file

__all__ = ["plot_embedding", "png_size"]

#: Size of the figure in inches, before the legend and title widen it.
FIGURE_SIZE = (7, 6)

#: Colour of the training points when there are no labels: light enough for
#: the new points on top to stand out.
UNLABELLED_COLOR = "#b0b0b0"
NEW_POINTS_COLOR = "black"
LEGEND_MARKER_SIZE = 30.0
#: More classes than this get a continuous colour map and no legend.
MAX_LEGEND_ENTRIES = 20


def plot_embedding(
    embedding,
    labels=None,
    path="map.png",
    title=None,
    new_points=None,
    *,
    class_names=None,
    new_points_label="new images",
    dpi: int = 150,
) -> Path:
    """Draw a map as a scatter plot and write it to ``path`` as a PNG.

    Parameters
    ----------
    embedding : array (N, 2)
        The map of the training images.
    labels : array (N,), optional
        Class of every point; points are coloured by class with a legend.
        Without labels all points are grey.
    path : str or Path, default "map.png"
    title : str, optional
    new_points : array (M, 2), optional
        Images placed on the map later (e.g. by ``transform``), drawn on top
        as black crosses with their own legend entry.
    class_names : sequence of str, optional
        ``class_names[label]`` names integer labels in the legend, e.g.
        :data:`napari_tsimcne.datasets.FASHION_MNIST_CLASSES`.
    new_points_label : str, default "new images"
        Legend entry of ``new_points``.
    dpi : int, default 150

    Returns the path written.
    """
    embedding = _check_points(embedding, "embedding")
    figure = Figure(figsize=FIGURE_SIZE)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    size = _marker_size(len(embedding))
    if labels is None:
        axes.scatter(*embedding.T, s=size, c=UNLABELLED_COLOR, linewidths=0)
    else:
        _scatter_by_class(axes, embedding, np.asarray(labels), size, class_names)
    if new_points is not None:
        new_points = _check_points(new_points, "new_points")
        # Crosses stay visible among many dots, and a few new images stand out.
        new_size = _marker_size(len(new_points), total_area=3000, smallest=10, largest=40)
        axes.scatter(*new_points.T, s=new_size, c=NEW_POINTS_COLOR, marker="x",
                     linewidths=0.7, label=f"{new_points_label} ({len(new_points)})")
    axes.set_aspect("equal", adjustable="box")
    axes.set_axis_off()  # map coordinates have no meaning of their own
    if title:
        axes.set_title(title)
    if axes.get_legend_handles_labels()[0]:
        legend = axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        for handle in legend.legend_handles:
            handle.set_sizes([LEGEND_MARKER_SIZE])  # the map's tiny dots would be unreadable
    return write_file(path, partial(figure.savefig, format="png", dpi=dpi, bbox_inches="tight",
                                    facecolor="white"))


def png_size(dpi: int = 150) -> int:
    """About the most bytes :func:`plot_embedding` writes: its pixels in RGBA, uncompressed."""
    return 4 * int(FIGURE_SIZE[0] * dpi) * int(FIGURE_SIZE[1] * dpi)


def _check_points(points, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) to be plotted, got {points.shape}.")
    return points


def _marker_size(n_points: int, total_area=5000.0, smallest=1.0, largest=20.0) -> float:
    """Marker area in points^2, ``total_area / n_points`` clipped to ``[smallest, largest]``.

    Large maps get small markers so that their clusters stay visible.
    """
    return float(np.clip(total_area / max(n_points, 1), smallest, largest))


def _scatter_by_class(axes, embedding, labels, size, class_names) -> None:
    """One scatter per class in a qualitative palette, or one colour-mapped scatter."""
    if len(labels) != len(embedding):
        raise ValueError(f"{len(labels)} labels given for {len(embedding)} points.")
    classes = np.unique(labels)
    if len(classes) > MAX_LEGEND_ENTRIES:
        codes = np.searchsorted(classes, labels)
        axes.scatter(*embedding.T, s=size, c=codes, cmap="turbo", linewidths=0)
        return
    palette = _palette(len(classes))
    for colour, label in zip(palette, classes):
        points = embedding[labels == label]
        axes.scatter(*points.T, s=size, color=colour, linewidths=0,
                     label=_class_name(label, class_names))


def _palette(n_classes: int) -> list:
    from matplotlib import colormaps

    colours = colormaps["tab10" if n_classes <= 10 else "tab20"].colors
    return list(colours[:n_classes])


def _class_name(label, class_names) -> str:
    if class_names is not None and isinstance(label, (int, np.integer)) and 0 <= label < len(class_names):
        return str(class_names[label])
    return str(label)
