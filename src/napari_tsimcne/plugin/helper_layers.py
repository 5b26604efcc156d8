"""Layers drawn for a map besides its points: selection rings, object outline, lasso, thumbnails.

Each helper layer holds weak references to the map layer it was drawn for
and to the map's record it was drawn from, so that it goes with its map
and never keeps a deleted map (and its model) alive.
"""

from __future__ import annotations

import weakref

import numpy as np
from napari.layers import Image, Points, Shapes
from napari.utils.theme import get_theme
from qtpy.QtCore import QTimer

from .colors import contrasting_color
from .map_layers import map_record
from .map_table import ImageMap, map_coordinates
from .montage import atlas, atlas_grid

__all__ = [
    "LASSO",
    "OBJECT",
    "SELECTION",
    "THUMBNAILS",
    "add_lasso",
    "add_thumbnails",
    "helper_of",
    "helpers_of",
    "is_plugin_layer",
    "made_of",
    "make_canvas_current",
    "outline_crop",
    "owner",
    "remove_layers",
    "remove_soon",
    "ring_points",
    "stack_helpers",
]

#: Metadata key that marks the layers this plugin draws besides maps; its value is the kind.
HELPER_KEY = "napari-tsimcne helper"
#: Metadata keys of a helper layer that hold weak references to the map layer it was
#: drawn for, and to the map's record it was drawn from.
HELPER_MAP_KEY = "napari-tsimcne map"
HELPER_RECORD_KEY = "napari-tsimcne record"
#: Kinds of helper layers.
THUMBNAILS, LASSO, SELECTION, OBJECT = "thumbnails", "lasso", "selection", "object"
#: Selected points are ringed: (times the point's size, least width on the screen in
#: pixels, line width relative to the ring's size).  Up to SELECTION_FEW rings are
#: large and thick, to be found at a glance however far the view is zoomed out;
#: more, which would merge in a cluster, hug their points with a thin line.
SELECTION_FEW = 10
SELECTION_RING_FEW = (2.2, 18, 0.2)
SELECTION_RING_MANY = (1.4, 8, 0.12)


# ----------------------------------------------------------------- bookkeeping
def is_plugin_layer(layer) -> bool:
    """Whether ``layer`` is a map or a helper layer drawn for one."""
    return map_record(layer) is not None or HELPER_KEY in layer.metadata


def helper_metadata(map_layer: Points, kind: str) -> dict:
    """Metadata of a helper layer of ``kind`` drawn for ``map_layer`` from its current record."""
    # A plugin widget sees layers through napari's proxies, made anew at each
    # access: the reference is to the layer itself.
    layer = getattr(map_layer, "__wrapped__", map_layer)
    return {HELPER_KEY: kind, HELPER_MAP_KEY: weakref.ref(layer),
            HELPER_RECORD_KEY: weakref.ref(map_record(map_layer))}


def owner(layer) -> Points | None:
    """The map layer a helper layer was drawn for (``None`` for other layers).

    Compare it with ``==``: napari hands plugin widgets proxies of layers,
    equal to the layer but not the same object.
    """
    reference = layer.metadata.get(HELPER_MAP_KEY)
    return reference() if isinstance(reference, weakref.ref) else None


def helper_of(viewer, map_layer: Points, kind: str):
    """The helper layer of ``kind`` drawn for ``map_layer``, or ``None``."""
    return next((layer for layer in viewer.layers if layer.metadata.get(HELPER_KEY) == kind
                 and owner(layer) == map_layer), None)


def helpers_of(viewer, map_layer: Points, kinds=(THUMBNAILS, LASSO, SELECTION, OBJECT)) -> list:
    """The helper layers of ``kinds`` drawn for ``map_layer``."""
    return [layer for layer in viewer.layers
            if layer.metadata.get(HELPER_KEY) in kinds and owner(layer) == map_layer]


def made_of(layer) -> ImageMap | None:
    """The map record a helper layer was drawn from."""
    reference = layer.metadata.get(HELPER_RECORD_KEY)
    return reference() if isinstance(reference, weakref.ref) else None


def stack_helpers(viewer, map_layer: Points) -> None:
    """Thumbnails right above the map and the selection rings above them; the map active."""
    position = viewer.layers.index(map_layer)
    for kind in (THUMBNAILS, SELECTION):
        helper = helper_of(viewer, map_layer, kind)
        if helper is not None:
            viewer.layers.move(viewer.layers.index(helper), position + 1)
            position = viewer.layers.index(helper)
    # Clicks go to the active layer: the map, never a helper.
    viewer.layers.selection.active = map_layer


# --------------------------------------------------------------------- removal
def make_canvas_current(viewer) -> None:
    """Make the OpenGL context of the viewer's canvas current, before a layer is removed.

    napari frees a removed layer's OpenGL resources without making its
    canvas' context current; freed in another context (Qt's, which composes
    the window), they leave OpenGL in a state where a later drawing of the
    canvas crashes (segfault in glDrawArrays), e.g. after a map and the
    thumbnails drawn for it were removed one after the other.
    """
    window = getattr(getattr(viewer, "__wrapped__", viewer), "window", None)
    canvas = getattr(getattr(window, "_qt_viewer", None), "canvas", None)
    canvas = getattr(canvas, "_scene_canvas", canvas)
    if hasattr(canvas, "set_current"):
        canvas.set_current()


def remove_layers(viewer, layers) -> None:
    """Remove ``layers`` (those still there) from the viewer."""
    make_canvas_current(viewer)
    for layer in layers:
        if layer in viewer.layers:
            viewer.layers.remove(layer)


def remove_soon(viewer, layers) -> None:
    """Hide ``layers`` now; remove them once napari has finished with the change under way."""
    for layer in layers:
        layer.visible = False
    QTimer.singleShot(0, lambda: remove_layers(viewer, layers))


# --------------------------------------------------------------------- drawing
def _color_on_canvas(viewer) -> tuple:
    """A colour that stands out from the viewer's canvas: white on dark, black on light."""
    return contrasting_color(np.asarray(get_theme(viewer.theme).canvas.as_rgb_tuple()) / 255)


def ring_points(viewer, map_layer: Points, rows) -> None:
    """Ring the points ``rows`` of ``map_layer``, in a layer above the map and its thumbnails.

    The rings are a layer of their own, so that they keep a size on the
    screen whatever the zoom (see :data:`SELECTION_RING_FEW`), in a colour
    that stands out from the canvas whatever the points' colours.
    """
    rows = np.asarray(rows, dtype=int)
    ring = helper_of(viewer, map_layer, SELECTION)
    if ring is None and len(rows) == 0:
        return
    data = map_layer.data[rows]
    scale, pixels, width = SELECTION_RING_FEW if len(rows) <= SELECTION_FEW else (
        SELECTION_RING_MANY)
    sizes = scale * np.asarray(map_layer.size, dtype=np.float64)[rows]
    color = np.asarray(_color_on_canvas(viewer))
    if ring is None:
        viewer.add_points(
            data, name=f"{map_layer.name} selection", size=sizes, face_color="transparent",
            border_color=color, border_width=width, border_width_is_relative=True,
            canvas_size_limits=(pixels, 100_000), scale=map_layer.scale,
            translate=map_layer.translate, metadata=helper_metadata(map_layer, SELECTION))
        stack_helpers(viewer, map_layer)
        return
    ring.data = data
    ring.size = sizes
    ring.border_width = width
    ring.canvas_size_limits = (pixels, 100_000)
    ring.border_color = color
    ring.face_color = "transparent"
    ring.scale, ring.translate = map_layer.scale, map_layer.translate


def outline_crop(viewer, map_layer: Points, corners) -> None:
    """Outline the crop with world ``corners (4, 2)`` in the image it was cut from.

    ``None`` clears the outline.
    """
    box = helper_of(viewer, map_layer, OBJECT)
    if corners is None:
        if box is not None and len(box.data):
            box.data = []
        return
    if box is not None:
        box.data = [corners]
        return
    side = float(np.ptp(corners[:, 0]))
    viewer.add_shapes(
        [corners], shape_type="polygon", name=f"{map_layer.name} object",
        edge_color=np.asarray(_color_on_canvas(viewer)), face_color="transparent",
        edge_width=side / 25, metadata=helper_metadata(map_layer, OBJECT))
    viewer.layers.selection.active = map_layer  # clicks go to the map


def add_lasso(viewer, map_layer: Points) -> Shapes:
    """A Shapes layer over ``map_layer`` to draw outlines around its points in."""
    return viewer.add_shapes(
        ndim=2, name=f"{map_layer.name} lasso", scale=map_layer.scale,
        translate=map_layer.translate, edge_color="yellow", face_color=[1, 1, 0, 0.1],
        edge_width=map_layer.size.mean() / 3, metadata=helper_metadata(map_layer, LASSO))


def add_thumbnails(viewer, map_layer: Points, record: ImageMap, table, zoom: float) -> Image:
    """An image of thumbnails at the places of ``map_layer``'s points, right above them.

    The grid and the thumbnails' resolution suit a view of ``zoom`` screen
    pixels per world unit (see :func:`.montage.atlas_grid`); the map stays
    the active layer, so that clicks still go to it.
    """
    indices = table["index"].to_numpy()
    n_cells, size = atlas_grid(len(indices), record.frame.side * zoom)
    thumbnails = atlas(map_coordinates(table), lambda rows: record.rgb(indices[rows]),
                       n_cells=n_cells, thumbnail_size=size)
    scale, translate = thumbnails.layer_transform(record.frame)
    layer = viewer.add_image(thumbnails.image, rgb=True, name=f"{map_layer.name} thumbnails",
                             scale=scale, translate=translate,
                             metadata=helper_metadata(map_layer, THUMBNAILS))
    stack_helpers(viewer, map_layer)
    return layer
