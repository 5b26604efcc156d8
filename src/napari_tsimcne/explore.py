"""Exploring a map of images without a GUI: the map record, layout, colours, outliers,
near-duplicates, selection by polygon, galleries and thumbnail atlases.

The napari widgets keep one :class:`ImageMap` per map in the Points layer's
metadata (under :data:`MAP_KEY`) and draw what the functions here compute.
Coordinates follow napari: a point is ``(row, col)``, and a map point's data
coordinates are the embedding's ``(y, x)``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .files import read_map_csv, write_map_csv

__all__ = [
    "MAP_KEY",
    "USER_FEATURES_KEY",
    "Atlas",
    "ChannelDisplay",
    "Coloring",
    "ImageMap",
    "ImageSource",
    "MapFrame",
    "atlas",
    "atlas_cells",
    "atlas_grid",
    "contrasting_color",
    "feature_colors",
    "fit_frame",
    "format_number",
    "gallery_columns",
    "in_view",
    "legend_html",
    "map_colors",
    "map_layer_data",
    "map_table",
    "montage",
    "near_duplicate_groups",
    "outlier_scores",
    "point_size",
    "points_in_polygon",
    "read_map_table",
    "tile_at",
    "tile_origin",
    "user_features",
    "write_map_table",
]

#: Key of the :class:`ImageMap` in a map layer's ``metadata``.
MAP_KEY = "napari-tsimcne"
#: Key of an image layer's ``metadata`` that may hold a table with one row per
#: image (e.g. known classes); its columns are copied into the map's features.
USER_FEATURES_KEY = "features"
#: Colours of the points of a map, and of images placed on an existing map.
MAP_COLOR = (0.36, 0.75, 1.0, 1.0)
PLACED_COLOR = (1.0, 0.55, 0.1, 1.0)
MISSING_COLOR = (0.5, 0.5, 0.5, 1.0)
#: Channel colours of a multichannel layer with a single colormap (as in napari's defaults).
CHANNEL_PALETTE = ((1, 0, 1), (0, 1, 0), (0, 1, 1), (1, 1, 0), (1, 0, 0), (0, 0, 1))
#: Numeric features with at most this many distinct values are coloured as categories.
MAX_CATEGORIES = 12


# ------------------------------------------------------------------------ records
@dataclass
class ImageSource:
    """Where the map's images are shown in the viewer, so a click can go there.

    Attributes
    ----------
    layer : str
        Name of the image layer (the first channel's, for several).
    stack_axis : int or None
        Axis of the layer's data that counts the images; ``None`` for object
        crops cut from one image.
    labels : str or None
        Name of the Labels layer the images were cropped from; the map's
        table then has ``label`` and ``frame`` columns.
    """

    layer: str
    stack_axis: int | None
    labels: str | None = None


@dataclass
class ChannelDisplay:
    """How images ``(n, H, W, C)`` are drawn in colour: per-channel limits and colours.

    Attributes
    ----------
    limits : array (C, 2)
        Intensity mapped to black and to full colour, per channel.
    colors : array (C, 3)
        RGB colour in ``[0, 1]`` of each channel at full intensity; channels add up.
    """

    limits: np.ndarray
    colors: np.ndarray

    @classmethod
    def for_layers(cls, layers: list[tuple[int, tuple[float, float], tuple | None]]):
        """Build from ``(n_channels, contrast_limits, color)`` per layer.

        ``color`` is the layer colormap's brightest colour, or ``None`` for an
        RGB layer (its channels are red, green, blue).  A multichannel layer
        with one colormap gets the colours of :data:`CHANNEL_PALETTE`.
        """
        limits, colors = [], []
        for n_channels, contrast_limits, color in layers:
            limits += [contrast_limits] * n_channels
            if color is None:
                colors += list(np.eye(3))
            elif n_channels == 1:
                colors.append(color)
            else:
                colors += [CHANNEL_PALETTE[c % len(CHANNEL_PALETTE)] for c in range(n_channels)]
        return cls(np.asarray(limits, dtype=np.float64), np.asarray(colors, dtype=np.float64))

    def to_rgb(self, images) -> np.ndarray:
        """Colour images ``(n, H, W, C)``; returns uint8 ``(n, H, W, 3)``."""
        images = np.asarray(images, dtype=np.float32)
        low = self.limits[:, 0].astype(np.float32)
        span = np.maximum(self.limits[:, 1] - self.limits[:, 0], 1e-12).astype(np.float32)
        scaled = np.clip((images - low) / span, 0, 1)
        rgb = np.clip(scaled @ self.colors.astype(np.float32), 0, 1)
        return np.round(rgb * 255).astype(np.uint8)


@dataclass
class ImageMap:
    """Everything known about one map: its table and, where available, images and model.

    Attributes
    ----------
    table : DataFrame
        One row per image: ``index`` (position in the image stack or crop
        list), ``x``, ``y`` (the embedding), then any other features.
    images : array (N, H, W, C) or None
        The images, channels last, for galleries and thumbnails.
    display : ChannelDisplay or None
        How to colour ``images``.
    features : array (N, D) or None
        Backbone features of the images, for outliers and near-duplicates.
    model : TSimCNE or None
        The trained model that made the map.
    source : ImageSource or None
        Where the images are in the viewer.
    placed : bool
        The images were placed on an existing map by the model (``transform``)
        rather than trained on.
    preview : bool
        The coordinates are a 2-D PCA of the 128-D pre-training output, shown
        while training, not a t-SimCNE map yet.
    frame : MapFrame or None
        Where the map is drawn in the viewer; fitted when first drawn.
    color_by : str or None
        Column of ``table`` the points are coloured by.
    """

    table: pd.DataFrame
    images: np.ndarray | None = None
    display: ChannelDisplay | None = None
    features: np.ndarray | None = None
    model: object | None = None
    source: ImageSource | None = None
    placed: bool = False
    preview: bool = False
    frame: MapFrame | None = None
    color_by: str | None = None

    @property
    def coordinates(self) -> np.ndarray:
        """Points' data coordinates ``(N, 2)``: the embedding as ``(y, x)``."""
        return self.table[["y", "x"]].to_numpy(dtype=np.float64)

    @property
    def base_color(self) -> tuple:
        return PLACED_COLOR if self.placed else MAP_COLOR


def map_table(embedding, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table of a map: ``index``, ``x``, ``y`` from ``embedding (N, 2)``, then ``extra``'s columns.

    Columns of ``extra`` named like the first three are dropped.
    """
    embedding = np.asarray(embedding, dtype=np.float64)
    table = pd.DataFrame({
        "index": np.arange(len(embedding)), "x": embedding[:, 0], "y": embedding[:, 1],
    })
    if extra is not None:
        extra = extra.drop(columns=[c for c in table.columns if c in extra.columns])
        table = pd.concat([table, extra.reset_index(drop=True)], axis=1)
    return table


def user_features(metadata: dict, n_images: int) -> pd.DataFrame | None:
    """The per-image table an image layer carries in ``metadata[USER_FEATURES_KEY]``, if any.

    Accepts a DataFrame or a dict of columns; returns ``None`` when there is
    none or it does not have ``n_images`` rows.
    """
    features = metadata.get(USER_FEATURES_KEY)
    if features is None:
        return None
    try:
        features = pd.DataFrame(features)
    except (TypeError, ValueError):
        return None
    return features.reset_index(drop=True) if len(features) == n_images else None


def read_map_table(path) -> pd.DataFrame:
    """A map table from a CSV file (:func:`napari_tsimcne.files.read_map_csv`) as a DataFrame."""
    return pd.DataFrame(read_map_csv(path))


def write_map_table(table: pd.DataFrame, path) -> None:
    """Write a map table as CSV (:func:`napari_tsimcne.files.write_map_csv`)."""
    features = {name: table[name].to_numpy() for name in table.columns
                if name not in ("index", "x", "y")}
    write_map_csv(path, table[["x", "y"]].to_numpy(), features, index=table["index"].to_numpy())


# ------------------------------------------------------------------------- layout
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


@dataclass
class Coloring:
    """Colours of a map's points and the key to read them.

    Attributes
    ----------
    colors : array (N, 4)
        RGBA in ``[0, 1]``.
    description : str
        E.g. ``"4 categories"`` or ``"viridis from 0.1 (dark) to 2.3 (yellow)"``.
    legend : list of (str, tuple)
        Label and RGBA colour of each category, or of the two ends of a scale.
    continuous : bool
        The legend holds the two ends of a colour scale rather than categories.
    """

    colors: np.ndarray
    description: str
    legend: list
    continuous: bool = False


def feature_colors(values) -> Coloring:
    """Colours for a feature with one value per point.

    Numbers with more than :data:`MAX_CATEGORIES` distinct values use
    viridis between their 1st and 99th percentile; anything else is treated
    as categories, coloured with tab10 or tab20.  Missing values are grey.
    """
    from matplotlib import colormaps

    values = pd.Series(values).reset_index(drop=True)
    missing = values.isna().to_numpy()
    colors = np.tile(np.asarray(MISSING_COLOR), (len(values), 1))
    present = values[~missing]
    if len(present) == 0:
        return Coloring(colors, "no values", [])
    if pd.api.types.is_numeric_dtype(values) and present.nunique() > MAX_CATEGORIES:
        low, high = np.percentile(present.to_numpy(dtype=np.float64), [1, 99])
        scaled = (present.to_numpy(dtype=np.float64) - low) / max(high - low, 1e-12)
        viridis = colormaps["viridis"]
        colors[~missing] = viridis(np.clip(scaled, 0, 1))
        low_text, high_text = format_number(low), format_number(high)
        return Coloring(colors, f"viridis from {low_text} (dark) to {high_text} (yellow)",
                        [(low_text, viridis(0.0)), (high_text, viridis(1.0))], continuous=True)
    categories = sorted(present.unique(), key=str)
    cmap = colormaps["tab10" if len(categories) <= 10 else "tab20"]
    lookup = {c: cmap(i % cmap.N) for i, c in enumerate(categories)}
    colors[~missing] = np.array([lookup[v] for v in present])
    return Coloring(colors, f"{len(categories)} categories",
                    [(str(c), lookup[c]) for c in categories])


def map_colors(record: ImageMap) -> Coloring:
    """Colours of a map's points: by its ``color_by`` feature, or all in its plain colour."""
    if record.color_by is None or record.color_by not in record.table.columns:
        plain = np.tile(np.asarray(record.base_color), (len(record.table), 1))
        return Coloring(plain, "plain", [])
    return feature_colors(record.table[record.color_by])


def format_number(value, digits: int = 3) -> str:
    """A number for people: ``digits`` significant digits, thousands separated, no exponent.

    E.g. ``1999.7`` gives ``"2,000"``, ``778.2`` gives ``"778"`` and
    ``0.012345`` gives ``"0.0123"``.
    """
    value = float(value)
    if value == 0 or not np.isfinite(value):
        return f"{value:g}"
    decimals = digits - 1 - int(np.floor(np.log10(abs(value))))
    text = f"{round(value, decimals):,.{max(decimals, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def legend_html(coloring: Coloring, columns: int = 1, limit: int = 20) -> str:
    """A colour key as rich text: a coloured square before each label.

    A scale reads ``low → high`` on one line; categories fill a table of
    ``columns`` columns, row by row, each label kept on one line (long names
    such as ``outlier: debris`` are not broken), at most ``limit`` of them.
    """
    def entry(label, color):
        r, g, b = (int(round(255 * c)) for c in color[:3])
        text = html.escape(str(label)).replace(" ", "&nbsp;")
        return f'<span style="color: rgb({r}, {g}, {b})">&#9632;</span>&nbsp;{text}'

    if not coloring.legend:
        return ""
    if coloring.continuous:
        return " &rarr; ".join(entry(label, color) for label, color in coloring.legend)
    entries = [entry(label, color) for label, color in coloring.legend[:limit]]
    if len(coloring.legend) > limit:
        entries.append(f"… {len(coloring.legend) - limit} more")
    columns = max(1, int(columns))
    rows = ["".join(f'<td style="padding-right: 12px">{cell}</td>'
                    for cell in entries[start : start + columns])
            for start in range(0, len(entries), columns)]
    return '<table cellspacing="0">' + "".join(f"<tr>{row}</tr>" for row in rows) + "</table>"


def contrasting_color(background) -> tuple[float, float, float, float]:
    """White on a dark ``background`` (RGB in ``[0, 1]``), black on a light one."""
    r, g, b = (float(c) for c in background[:3])
    return (1.0, 1.0, 1.0, 1.0) if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else (
        0.0, 0.0, 0.0, 1.0)


def map_layer_data(record: ImageMap, name: str) -> tuple[np.ndarray, dict, str]:
    """napari layer data tuple ``(data, kwargs, "points")`` that shows ``record``.

    The record's frame is fitted (and stored) if it has none.  The record
    itself goes into the layer's metadata under :data:`MAP_KEY`.
    """
    if record.frame is None:
        record.frame = fit_frame(record.coordinates)
    frame = record.frame
    kwargs = {
        "name": name,
        "features": record.table,
        "face_color": map_colors(record).colors,
        "size": point_size(len(record.table), frame),
        "border_width": 0,
        "scale": (frame.scale, frame.scale),
        "translate": frame.translate,
        "metadata": {MAP_KEY: record},
    }
    return record.coordinates, kwargs, "points"


# ------------------------------------------------------------ outliers, duplicates
def outlier_scores(vectors, n_neighbors: int = 10, *, normalize: bool = True) -> np.ndarray:
    """Outlier score of every row of ``vectors (N, D)``: the local outlier factor.

    The factor compares how far an image is from its ``n_neighbors`` nearest
    neighbours with how far those neighbours are from theirs: about 1 for a
    typical image, clearly above 1 for one that sits apart, also next to a
    dense cluster.  With ``normalize`` the vectors are scaled to unit length
    first, so backbone features are compared by angle (cosine), as
    contrastive learning trains them.
    """
    from sklearn.neighbors import LocalOutlierFactor

    vectors = _unit_rows(vectors) if normalize else np.asarray(vectors, dtype=np.float64)
    k = min(n_neighbors, len(vectors) - 1)
    if k < 1:
        return np.ones(len(vectors))
    return -LocalOutlierFactor(n_neighbors=k).fit(vectors).negative_outlier_factor_


def near_duplicate_groups(
    vectors, tolerance: float = 0.25, *, normalize: bool = True
) -> list[np.ndarray]:
    """Groups of images whose vectors are nearly identical, most similar groups first.

    Two images are linked when their distance is below ``tolerance`` times
    the median distance between an image and its nearest neighbour, a scale
    that adapts to the model; groups are the connected sets of linked images.

    Parameters
    ----------
    vectors : array (N, D)
        Backbone features (or any representation) of the images.
    tolerance : float, default 0.25
        Fraction of the typical nearest-neighbour distance.
    normalize : bool, default True
        Compare unit-length vectors (cosine geometry).

    Returns
    -------
    List of index arrays, each sorted, of at least two images.
    """
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    vectors = _unit_rows(vectors) if normalize else np.asarray(vectors, dtype=np.float64)
    if len(vectors) < 2:
        return []
    neighbors = NearestNeighbors().fit(vectors)
    nearest, _ = neighbors.kneighbors(vectors, n_neighbors=2)
    typical = float(np.median(nearest[:, 1]))
    radius = tolerance * typical
    graph = neighbors.radius_neighbors_graph(vectors, radius=radius, mode="distance")
    n_groups, group_of = connected_components(graph, directed=False)
    sizes = np.bincount(group_of, minlength=n_groups)
    groups = [np.flatnonzero(group_of == g) for g in np.flatnonzero(sizes > 1)]
    spread = [nearest[g, 1].max() for g in groups]
    return [groups[i] for i in np.argsort(spread, kind="stable")]


def _unit_rows(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


# --------------------------------------------------------------------- selection
def points_in_polygon(points, polygon) -> np.ndarray:
    """Indices of ``points (N, 2)`` inside ``polygon (M, 2)`` (same coordinates, any M >= 3)."""
    from matplotlib.path import Path

    polygon = np.asarray(polygon, dtype=np.float64)
    if len(polygon) < 3:
        return np.array([], dtype=int)
    return np.flatnonzero(Path(polygon).contains_points(np.asarray(points, dtype=np.float64)))


# ----------------------------------------------------------------- galleries
def tile_origin(index: int, tile_shape, columns: int, gap: int = 2) -> tuple[int, int]:
    """Top-left pixel ``(row, col)`` of tile ``index`` in a :func:`montage`."""
    h, w = tile_shape
    return (index // columns) * (h + gap), (index % columns) * (w + gap)


def montage(
    tiles, columns: int, *, gap: int = 2, background=(30, 30, 30)
) -> np.ndarray:
    """Arrange RGB ``tiles (n, h, w, 3)`` in rows of ``columns``; returns uint8 ``(H, W, 3)``.

    Tile ``i`` sits in row ``i // columns`` and column ``i % columns`` with
    ``gap`` pixels of ``background`` between tiles (see :func:`tile_at`).
    """
    tiles = np.asarray(tiles, dtype=np.uint8)
    n, h, w = tiles.shape[:3]
    columns = max(1, min(int(columns), n))
    rows = -(-n // columns)
    image = np.empty((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), np.uint8)
    image[...] = background
    for i, tile in enumerate(tiles):
        top, left = tile_origin(i, (h, w), columns, gap)
        image[top : top + h, left : left + w] = tile
    return image


def tile_at(row: float, col: float, tile_shape, columns: int, n_tiles: int,
            *, gap: int = 2) -> int | None:
    """Index of the :func:`montage` tile under pixel ``(row, col)``, or ``None`` (gap, outside)."""
    h, w = tile_shape
    r, c = int(row // (h + gap)), int(col // (w + gap))
    inside = row % (h + gap) < h and col % (w + gap) < w
    index = r * columns + c
    if not inside or row < 0 or col < 0 or c >= columns or index >= n_tiles:
        return None
    return index


def gallery_columns(n_tiles: int, width: int, min_tile: int = 56) -> int:
    """Columns of a gallery ``width`` pixels wide: near-square, tiles at least ``min_tile``."""
    return int(max(1, min(np.ceil(np.sqrt(max(n_tiles, 1))), width // min_tile)))


@dataclass
class Atlas:
    """Thumbnails laid out on the map's grid, as an RGBA image in map data coordinates.

    Attributes
    ----------
    image : uint8 array (rows * t, cols * t, 4)
        Transparent where a grid cell holds no image.
    indices : int array (K,)
        The image shown in each occupied cell.
    scale : float
        Data units per atlas pixel.
    origin : (float, float)
        Data coordinates ``(y, x)`` of the atlas' top-left corner.
    """

    image: np.ndarray
    indices: np.ndarray
    scale: float
    origin: tuple[float, float]

    def layer_transform(self, frame: MapFrame) -> tuple[tuple[float, float], tuple[float, float]]:
        """``(scale, translate)`` of an Image layer that shows the atlas on a map in ``frame``.

        napari centres pixel ``i`` on ``translate + scale * i``, so the
        translation is shifted by half a pixel to put the top-left corner of
        the atlas on ``origin``.
        """
        pixel = self.scale * frame.scale
        translate = frame.to_world(self.origin) + pixel / 2
        return (pixel, pixel), (float(translate[0]), float(translate[1]))


def atlas_cells(coordinates, n_cells: int = 24, coverage: float = 99.0):
    """Choose one image per cell of a square grid over the map.

    The grid of ``n_cells`` cells along the longer side covers the central
    ``coverage`` percent of ``coordinates (N, 2)``; in every occupied cell
    the image closest to the cell's centre is chosen.

    Returns ``(cells (K, 2) int grid positions, indices (K,), cell size, origin (2,))``.
    """
    coordinates = np.asarray(coordinates, dtype=np.float64)
    tail = (100 - coverage) / 2
    low, high = np.percentile(coordinates, [tail, 100 - tail], axis=0)
    cell = max(float(np.max(high - low)), 1e-12) / n_cells
    inside = np.all((coordinates >= low) & (coordinates <= low + n_cells * cell), axis=1)
    grid = np.clip(np.floor((coordinates - low) / cell).astype(int), 0, n_cells - 1)
    offset = np.linalg.norm(coordinates - (low + (grid + 0.5) * cell), axis=1)
    candidates = np.flatnonzero(inside)
    order = candidates[np.lexsort((offset[candidates], grid[candidates, 1], grid[candidates, 0]))]
    keys = grid[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    chosen = order[first]
    return grid[chosen], chosen, cell, low


#: Smallest side of a thumbnail on the screen, in pixels, for it to be readable.
MIN_THUMBNAIL_PIXELS = 48
#: Largest side of an atlas image in pixels (its memory grows with the square).
MAX_ATLAS_PIXELS = 3072


def atlas_grid(n_points: int, extent_pixels: float) -> tuple[int, int]:
    """Grid cells along the side of an atlas, and thumbnail side in pixels, for the view.

    ``extent_pixels`` is how many screen pixels the map's side spans at the
    current zoom.  Each thumbnail gets at least :data:`MIN_THUMBNAIL_PIXELS`
    on the screen, and there are no more cells along a side than about twice
    the square root of the number of points (a finer grid would leave most
    cells empty).  The thumbnails are drawn at their screen size, between 16
    and 128 pixels, so that they are sharp without wasting memory.
    """
    by_screen = extent_pixels / MIN_THUMBNAIL_PIXELS
    by_points = 2 * np.sqrt(max(n_points, 1))
    n_cells = int(np.clip(np.floor(min(by_screen, by_points)), 2, 48))
    size = int(np.clip(round(extent_pixels / n_cells), 16, min(128, MAX_ATLAS_PIXELS // n_cells)))
    return n_cells, size


def atlas(coordinates, thumbnails_of, *, n_cells: int = 24, thumbnail_size: int = 32) -> Atlas:
    """Build an :class:`Atlas`: a thumbnail of one image in each occupied cell of the map.

    Parameters
    ----------
    coordinates : array (N, 2)
        The map's data coordinates ``(y, x)``.
    thumbnails_of : callable
        Maps an index array ``(K,)`` to RGB uint8 images ``(K, h, w, 3)``.
    n_cells : int, default 24
        Grid cells along the map's longer side.
    thumbnail_size : int, default 32
        Side of each thumbnail in pixels.
    """
    from skimage.transform import resize

    cells, indices, cell, origin = atlas_cells(coordinates, n_cells)
    thumbnails = np.asarray(thumbnails_of(indices))
    t = int(thumbnail_size)
    if thumbnails.shape[1:3] != (t, t):
        thumbnails = resize(thumbnails, (len(thumbnails), t, t, 3), anti_aliasing=True,
                            preserve_range=True).round().astype(np.uint8)
    image = np.zeros((n_cells * t, n_cells * t, 4), np.uint8)
    for (row, col), thumbnail in zip(cells, thumbnails):
        image[row * t : (row + 1) * t, col * t : (col + 1) * t, :3] = thumbnail
        image[row * t : (row + 1) * t, col * t : (col + 1) * t, 3] = 255
    return Atlas(image, indices, cell / t, (float(origin[0]), float(origin[1])))
