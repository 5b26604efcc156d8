"""Maps as Points layers: points that stay where they are, with their rows of the table.

Run under a virtual display: ``xvfb-run -a pytest tests/test_map_layers.py``.
"""

import numpy as np
import pandas as pd
import pytest
from napari.utils.interactions import (
    mouse_move_callbacks,
    mouse_press_callbacks,
    mouse_release_callbacks,
)
from plugin_helpers import DragEvent, MouseEvent

from napari_tsimcne.plugin.map_layers import map_record, show_map
from napari_tsimcne.plugin.map_table import ImageMap, map_table

# Every test here opens a napari viewer.
pytestmark = pytest.mark.slow

N_POINTS = 30


@pytest.fixture
def map_layer(make_napari_viewer):
    """A map of 30 random points, alone in a viewer, with a column another plugin added."""
    viewer = make_napari_viewer()
    embedding = np.random.default_rng(0).normal(size=(N_POINTS, 2))
    layer = show_map(viewer, ImageMap(), map_table(embedding), "map")
    layer.features = layer.features.assign(cluster=np.arange(N_POINTS) % 3)
    return layer


def drag(layer, start, end=None, modifiers=()):
    """Press at world ``start``, drag to ``end`` (``None``: a click) and release."""
    def event(kind, position, **kwargs):
        return MouseEvent(kind, position, list(modifiers), dims_displayed=[0, 1], **kwargs)

    mouse_press_callbacks(layer, DragEvent(event("mouse_press", start)))
    if end is not None:
        mouse_move_callbacks(layer, event("mouse_move", end, is_dragging=True))
    mouse_release_callbacks(layer, event("mouse_release", start if end is None else end))


def on_point(layer, row):
    """World position of the centre of map point ``row``."""
    return tuple(map_record(layer).frame.to_world(layer.data[row]))


def test_dragging_a_point_selects_it_without_moving_it(map_layer):
    before = map_layer.data.copy()
    start = on_point(map_layer, 4)
    end = (start[0] + 5, start[1] + 5)
    mouse_press_callbacks(map_layer, DragEvent(MouseEvent("mouse_press", start,
                                                          dims_displayed=[0, 1])))
    mouse_move_callbacks(map_layer, MouseEvent("mouse_move", end, is_dragging=True,
                                               dims_displayed=[0, 1]))
    np.testing.assert_array_equal(map_layer.data, before)  # not even while dragging
    mouse_release_callbacks(map_layer, MouseEvent("mouse_release", end, dims_displayed=[0, 1]))
    assert set(map_layer.selected_data) == {4}
    np.testing.assert_array_equal(map_layer.data, before)
    drag(map_layer, on_point(map_layer, 9), modifiers=["Shift"])
    assert set(map_layer.selected_data) == {4, 9}  # napari's own selection, for the rest


def test_a_box_dragged_on_empty_canvas_selects_the_points_inside(map_layer):
    world = map_record(map_layer).frame.to_world(map_layer.data)
    low, high = world.min(axis=0) - 1, world.max(axis=0) + 1
    drag(map_layer, tuple(low), tuple(high))
    assert set(map_layer.selected_data) == set(range(N_POINTS))


def test_deleted_or_added_points_come_back_with_their_rows(map_layer):
    before, table = map_layer.data.copy(), map_layer.features.copy()
    map_layer.selected_data = {4, 7}
    map_layer.remove_selected()
    np.testing.assert_array_equal(map_layer.data, before)
    pd.testing.assert_frame_equal(map_layer.features, table)  # the other plugin's column too
    map_layer.add([[0.0, 0.0]])
    np.testing.assert_array_equal(map_layer.data, before)
    pd.testing.assert_frame_equal(map_layer.features, table)
    map_layer.data = before + 1  # moved by code
    np.testing.assert_array_equal(map_layer.data, before)
    pd.testing.assert_frame_equal(map_layer.features, table)
