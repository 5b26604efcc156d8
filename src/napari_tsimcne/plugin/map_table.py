"""A map as napari holds it: the table in a Points layer's features, and the map's record.

The per-image table, one row per image with ``index`` (position in the image
stack or crop list), ``x``, ``y`` (the embedding) and any other features,
lives in the map layer's ``features`` and only there: the napari convention,
which lets other plugins read the table and add columns to it.  Everything
else known about a map (images, model, placement, colouring) is an
:class:`ImageMap` in the layer's ``metadata`` under :data:`MAP_KEY`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..files import read_map_csv, write_map_csv
from .colors import MAP_COLOR, PLACED_COLOR, map_colors
from .geometry import MapFrame, fit_frame, point_size

__all__ = [
    "MAP_KEY",
    "USER_FEATURES_KEY",
    "ChannelDisplay",
    "ImageMap",
    "ImageSource",
    "extra_columns",
    "map_coordinates",
    "map_layer_data",
    "map_table",
    "read_map_table",
    "user_features",
    "write_map_table",
]

#: Key of the :class:`ImageMap` in a map layer's ``metadata``.
MAP_KEY = "napari-tsimcne"
#: Key of an image layer's ``metadata`` that may hold a table with one row per
#: image (e.g. known classes); its columns are copied into the map's features.
USER_FEATURES_KEY = "features"
#: Channel colours of a multichannel layer with a single colormap (as in napari's defaults).
CHANNEL_PALETTE = ((1, 0, 1), (0, 1, 0), (0, 1, 1), (1, 1, 0), (1, 0, 0), (0, 0, 1))


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
    """What is known about one map besides its table: images, model, placement, colouring.

    The table is the map layer's ``features`` (see the module's description).

    Attributes
    ----------
    images : array (N, H, W, C) or None
        The images, channels last, for galleries and thumbnails; the table's
        ``index`` column says which image a row shows.
    display : ChannelDisplay or None
        How to colour ``images``.
    backbone_features : array (N, D) or None
        The network's backbone features of the table's rows, for outliers and
        near-duplicates.
    model : TSimCNEModel or None
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
        Column of the table the points are coloured by.
    """

    images: np.ndarray | None = None
    display: ChannelDisplay | None = None
    backbone_features: np.ndarray | None = None
    model: object | None = None
    source: ImageSource | None = None
    placed: bool = False
    preview: bool = False
    frame: MapFrame | None = None
    color_by: str | None = None

    @property
    def base_color(self) -> tuple:
        return PLACED_COLOR if self.placed else MAP_COLOR

    def rgb(self, image_indices) -> np.ndarray:
        """The images ``image_indices (K,)`` in colour, uint8 ``(K, H, W, 3)``."""
        return self.display.to_rgb(self.images[np.asarray(image_indices)])


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


def map_coordinates(table: pd.DataFrame) -> np.ndarray:
    """The points' data coordinates ``(N, 2)`` in a map's table: the embedding as ``(y, x)``."""
    return table[["y", "x"]].to_numpy(dtype=np.float64)


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


def extra_columns(object_table: pd.DataFrame | None, metadata: dict,
                  n_images: int) -> pd.DataFrame | None:
    """The columns of a new map's table besides index, x and y, if any.

    For object crops, the objects' measurements (``object_table``); for a
    stack, the per-image table its image layer carries (see :func:`user_features`).
    """
    return object_table if object_table is not None else user_features(metadata, n_images)


def read_map_table(path) -> pd.DataFrame:
    """A map table from a CSV file (:func:`napari_tsimcne.files.read_map_csv`) as a DataFrame."""
    return pd.DataFrame(read_map_csv(path))


def write_map_table(table: pd.DataFrame, path) -> None:
    """Write a map table, all its columns, as CSV (:func:`napari_tsimcne.files.write_map_csv`)."""
    features = {name: table[name].to_numpy() for name in table.columns
                if name not in ("index", "x", "y")}
    write_map_csv(path, table[["x", "y"]].to_numpy(), features, index=table["index"].to_numpy())


def map_layer_data(record: ImageMap, table: pd.DataFrame,
                   name: str) -> tuple[np.ndarray, dict, str]:
    """napari layer data ``(data, kwargs, "points")`` of a map: ``table`` drawn as ``record`` says.

    The table becomes the layer's features, the record its metadata under
    :data:`MAP_KEY`.  The record's frame is fitted (and stored) if it has none.
    """
    coordinates = map_coordinates(table)
    if record.frame is None:
        record.frame = fit_frame(coordinates)
    frame = record.frame
    kwargs = {
        "name": name,
        "features": table,
        "face_color": map_colors(table, record.color_by, record.base_color).colors,
        "size": point_size(len(table), frame),
        "border_width": 0,
        "scale": (frame.scale, frame.scale),
        "translate": frame.translate,
        "metadata": {MAP_KEY: record},
    }
    return coordinates, kwargs, "points"
