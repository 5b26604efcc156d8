"""Maps as napari Points layers: drawn, kept from being edited, and tied to their images.

A map layer's features are the map's table and its metadata hold the map's
:class:`~.map_table.ImageMap` (see :mod:`.map_table`).  Its points are
results, not annotations: :func:`protect_map` keeps them where they are.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np
from napari.layers import Labels, Points
from napari.layers.base import ActionType

from .geometry import MapFrame, crop_outline, fit_frame, fit_frame_beside, in_view
from .layer_layout import default_channel_layers, describe_layout, stack_layers
from .map_table import (
    MAP_KEY,
    ChannelDisplay,
    ImageMap,
    ImageSource,
    map_coordinates,
    map_layer_data,
)

__all__ = [
    "attach_images",
    "camera",
    "channel_display",
    "crop_corners",
    "frame_beside",
    "jump_to_image",
    "map_layer_named",
    "map_record",
    "protect_map",
    "redraw",
    "show_map",
]

#: The actions a layer's ``events.data`` announces before, and reports after, an edit.
_BEFORE_EDIT = (ActionType.ADDING, ActionType.REMOVING, ActionType.CHANGING)


def map_record(layer) -> ImageMap | None:
    """The :class:`ImageMap` behind a map layer, or ``None`` for any other layer."""
    record = getattr(layer, "metadata", {}).get(MAP_KEY)
    return record if isinstance(layer, Points) and isinstance(record, ImageMap) else None


def map_layer_named(viewer, name: str) -> Points | None:
    """The viewer's map layer called ``name``, or ``None`` (also for another kind of layer)."""
    layer = next((layer for layer in viewer.layers if layer.name == name), None)
    return layer if map_record(layer) else None


def show_map(viewer, record: ImageMap, table, name: str, layer: Points | None = None) -> Points:
    """Draw the map ``table`` as ``record`` says in ``layer`` (updated), or in a new layer ``name``.

    The layer is protected against edits (see :func:`protect_map`); a new
    layer starts in select mode.
    """
    created = layer is None
    if created:
        data, kwargs, _ = map_layer_data(record, table, name)
        layer = viewer.add_points(data, **kwargs)
    else:
        redraw(layer, record, table)
    protect_map(layer)
    if created:
        layer.mode = "select"  # a new map is there to be clicked
    return layer


def redraw(layer: Points, record: ImageMap, table) -> None:
    """Make ``layer`` show the map ``table`` as ``record`` says: points, features, colours."""
    data, kwargs, _ = map_layer_data(record, table, layer.name)
    layer.metadata[MAP_KEY] = record
    layer.selected_data = set()
    guard = _guard_of(layer)
    with layer.events.data.blocker(guard) if guard else contextlib.nullcontext():
        layer.data = data
    for name in ("features", "face_color", "size", "scale", "translate"):
        setattr(layer, name, kwargs[name])


def protect_map(layer: Points) -> None:
    """Keep a map's points where they are, whatever the user does with the layer.

    In select mode, pressing on a point selects it but dragging does not move
    it; points moved, added or deleted any other way are put back, with their
    rows of the table.  Safe to call more than once.
    """
    if _guard_of(layer) is not None:
        return
    layer.events.data.connect(_PointsGuard())
    layer.events.mode.connect(_on_mode_changed)
    _use_select_without_moving(layer)


class _PointsGuard:
    """Puts a map's points and table back after any edit of its points.

    napari announces an edit before making it (when a point is added or
    deleted, the rows of the table go with it), so the table is kept from
    then until the edit is reported.  A move is only reported: the table,
    whose ``x`` and ``y`` columns are the points, is still as it was.
    """

    def __init__(self):
        self._table_before_edit = None

    def __call__(self, event) -> None:
        layer = event.source
        record = map_record(layer)
        if record is None:
            return
        if event.action in _BEFORE_EDIT:
            self._table_before_edit = layer.features.copy()
            return
        table = layer.features if self._table_before_edit is None else self._table_before_edit
        self._table_before_edit = None
        coordinates = map_coordinates(table)
        if layer.data.shape != coordinates.shape or not np.allclose(layer.data, coordinates):
            redraw(layer, record, table)


def _guard_of(layer: Points) -> _PointsGuard | None:
    return next((callback for callback in layer.events.data.callbacks
                 if isinstance(callback, _PointsGuard)), None)


def _on_mode_changed(event) -> None:
    _use_select_without_moving(event.source)


def _use_select_without_moving(layer: Points) -> None:
    # napari's select mode drags the selected points when the press lands on
    # one; a map's positions are results, so that drag is swapped out here.
    callbacks = layer.mouse_drag_callbacks
    napari_select = _napari_select()
    if napari_select in callbacks:
        callbacks[callbacks.index(napari_select)] = _select_without_moving
    if layer.mode != "select" and _select_without_moving in callbacks:
        callbacks.remove(_select_without_moving)


@functools.cache
def _napari_select():
    """napari's drag callback of a Points layer in select mode (select, drag points, box).

    napari does not export it: it is the callback that a layer gains in
    its ``mouse_drag_callbacks`` when switched to select mode.
    """
    probe = Points(ndim=2)
    before = list(probe.mouse_drag_callbacks)
    probe.mode = "select"
    (select,) = [callback for callback in probe.mouse_drag_callbacks if callback not in before]
    return select


def _select_without_moving(layer: Points, event):
    """napari's select drag, except that a press on a point only selects it."""
    on_point = layer.get_value(event.position, view_direction=event.view_direction,
                               dims_displayed=event.dims_displayed, world=True)
    if on_point is None or "Shift" in event.modifiers or "Control" in event.modifiers:
        yield from _napari_select()(layer, event)
        return
    layer.selected_data = {on_point}
    yield
    while event.type == "mouse_move":
        yield


def frame_beside(viewer, layer_name: str | None, coordinates) -> MapFrame:
    """Place a map as a square beside the image layer ``layer_name``, as tall as its image.

    Without that layer, the map gets the default frame (see :func:`.geometry.fit_frame`).
    """
    if layer_name not in viewer.layers:
        return fit_frame(coordinates)
    extent = viewer.layers[layer_name].extent
    return fit_frame_beside(coordinates, extent.world[0], extent.world[1], extent.step)


def attach_images(viewer, map_layer: Points, image_layers) -> str | None:
    """Attach an open stack with one image per point to a map that has no images.

    The first stack among ``image_layers`` with as many images as the map
    has points is taken, with its channel layers (see
    :func:`.layer_layout.default_channel_layers`), and the map moves beside
    it.  Returns the name of the stack's (first) layer, or ``None`` when
    there is no such stack.
    """
    record, table = map_record(map_layer), map_layer.features
    chosen = default_channel_layers([layer.data.shape for layer in image_layers],
                                    [layer.rgb for layer in image_layers], n_images=len(table))
    if not chosen or table["index"].max() >= len(table):
        return None
    picked = [image_layers[i] for i in chosen]
    record.images, stack_axis = stack_layers(
        [layer.data for layer in picked], [layer.rgb for layer in picked],
        [layer.name for layer in picked])
    record.display = channel_display(picked)
    record.source = ImageSource(picked[0].name, stack_axis)
    record.frame = frame_beside(viewer, picked[0].name, map_coordinates(table))
    redraw(map_layer, record, table)
    return picked[0].name


def jump_to_image(viewer, record: ImageMap, table, row: int) -> Labels | None:
    """Show the image of row ``row`` of ``table`` where it lives: its stack position, or its object.

    An object cropped from a Labels layer is shown alone in that layer (its
    label selected, the others hidden) and brought into view if it is off
    the canvas.  Returns that Labels layer, or ``None``.
    """
    source = record.source
    if source is None:
        return None
    item = table.iloc[row]
    position = item["frame"] if source.labels else item["index"]
    if source.stack_axis is not None and source.layer in viewer.layers:
        layer = viewer.layers[source.layer]
        data_position = np.zeros(layer.ndim)
        data_position[source.stack_axis] = position
        world = layer.data_to_world(data_position)
        axis = viewer.dims.ndim - layer.ndim + source.stack_axis
        viewer.dims.set_point(axis, world[source.stack_axis])
    if source.labels not in viewer.layers:
        return None
    labels = viewer.layers[source.labels]
    labels.selected_label = int(item["label"])
    labels.show_selected_label = True
    centre = [item["centroid_row"], item["centroid_col"]]
    world = labels.data_to_world([item["frame"], *centre] if labels.ndim == 3 else centre)
    view = camera(viewer)
    if not in_view(world[-2:], view.center[-2:], viewer.canvas.size, view.zoom):
        view.center = tuple(world[-2:])
    return labels


def crop_corners(viewer, record: ImageMap | None, table, row: int) -> np.ndarray | None:
    """World corners ``(4, 2)`` of the crop of object ``row``, or ``None`` for a map of a stack."""
    source = None if record is None else record.source
    if source is None or source.labels not in viewer.layers or record.images is None:
        return None
    labels = viewer.layers[source.labels]
    item = table.iloc[row]
    return crop_outline((item["centroid_row"], item["centroid_col"]), record.images.shape[1],
                        labels.scale, labels.translate)


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return viewer.camera if scene is None else scene.camera


def channel_display(layers) -> ChannelDisplay:
    """How image layers colour their channels: contrast limits and their colormap's top colour."""
    specs = []
    for layer in layers:
        layout = describe_layout(layer.data.shape, layer.rgb, name=layer.name, single_ok=True)
        color = None if layer.rgb else tuple(layer.colormap.map(np.array([1.0]))[0, :3])
        specs.append((layout.n_channels, tuple(layer.contrast_limits), color))
    return ChannelDisplay.for_layers(specs)
