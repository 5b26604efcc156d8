"""Where a map sits in the viewer: its frame, its points' size, and what is in view.

Coordinates follow napari: a point is ``(row, col)``, and a map point's data
coordinates are the embedding's ``(y, x)``; world coordinates are where the
viewer draws them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "MapFrame",
    "crop_outline",
    "fit_frame",
    "fit_frame_beside",
    "in_view",
    "point_size",
    "points_in_polygon",
]

#: Gap between an image and the map placed beside it, as a fraction of the map's side.
MAP_GAP = 0.1


@dataclass(frozen=True)
class MapFrame:
    """Placement of a map in the viewer: world = data * scale + translate (per axis).

    ``side`` is the side in world units of the square that the map's central
    part fills (see :func:`fit_frame`).
    """

    scale: float
    translate: tuple[float, float]
    side: float

    def to_world(self, coordinates) -> np.ndarray:
        return np.asarray(coordinates, dtype=np.float64) * self.scale + np.asarray(self.translate)


def fit_frame(
    coordinates, *, top: float = 0.0, left: float = 0.0, side: float = 512.0,
    coverage: float = 99.0,
) -> MapFrame:
    """Frame that fits the central ``coverage`` percent of ``coordinates (N, 2)`` in a square.

    The square has its top-left corner at ``(top, left)`` in world units and
    the given ``side``.  Far outliers lie outside the square instead of
    shrinking everything else.
    """
    coordinates = np.asarray(coordinates, dtype=np.float64)
    tail = (100 - coverage) / 2
    low, high = np.percentile(coordinates, [tail, 100 - tail], axis=0)
    span = max(float(np.max(high - low)), 1e-12)
    scale = side / span
    centre = (low + high) / 2
    translate = np.array([top, left]) + side / 2 - centre * scale
    return MapFrame(scale, (float(translate[0]), float(translate[1])), float(side))


def fit_frame_beside(coordinates, low, high, step) -> MapFrame:
    """Frame of a map drawn as a square right of an image, as tall as the image.

    ``low`` and ``high`` are the world coordinates ``(row, col)`` of the
    image's first and last pixel centres, ``step`` the world size of a pixel;
    the map keeps a gap of :data:`MAP_GAP` times its side from the image.
    """
    low, high, step = (np.asarray(v, dtype=np.float64)[-2:] for v in (low, high, step))
    side = float(high[0] - low[0] + step[0])
    return fit_frame(coordinates, top=float(low[0] - step[0] / 2),
                     left=float(high[1] + step[1] / 2 + MAP_GAP * side), side=side)


def point_size(n_points: int, frame: MapFrame) -> float:
    """Point diameter in data units: smaller for more points, 0.3-2.5% of the frame's side."""
    fraction = float(np.clip(0.8 / np.sqrt(max(n_points, 1)), 0.003, 0.025))
    return fraction * frame.side / frame.scale


def in_view(point, centre, canvas_size, zoom: float, margin: float = 0.05) -> bool:
    """Whether world ``point (y, x)`` is on a canvas of ``canvas_size (h, w)`` pixels.

    The canvas shows ``zoom`` pixels per world unit around ``centre (y, x)``;
    a point within ``margin`` (a fraction of the canvas) of its edge counts
    as outside.
    """
    half = np.asarray(canvas_size, dtype=np.float64)[-2:] / (2 * zoom) * (1 - margin)
    offset = np.asarray(point, dtype=np.float64)[-2:] - np.asarray(centre, dtype=np.float64)[-2:]
    return bool(np.all(np.abs(offset) <= half))


def crop_outline(centre, side: float, scale, translate) -> np.ndarray:
    """World corners ``(4, 2)`` of a square crop of ``side`` pixels around ``centre (row, col)``.

    ``centre`` is in the data coordinates of the image the crop was cut
    from, which the viewer draws at ``data * scale + translate``.
    """
    corners = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]]) * side / 2 + np.asarray(centre)
    return corners * np.asarray(scale)[-2:] + np.asarray(translate)[-2:]


def points_in_polygon(points, polygon) -> np.ndarray:
    """Indices of ``points (N, 2)`` inside ``polygon (M, 2)`` (same coordinates, any M >= 3)."""
    from matplotlib.path import Path

    polygon = np.asarray(polygon, dtype=np.float64)
    if len(polygon) < 3:
        return np.array([], dtype=int)
    return np.flatnonzero(Path(polygon).contains_points(np.asarray(points, dtype=np.float64)))
