"""Where a map sits in the viewer: frames, point sizes, what is in view or in a polygon."""

import numpy as np
import pytest

from napari_tsimcne.plugin.geometry import (
    MapFrame,
    crop_outline,
    fit_frame,
    fit_frame_beside,
    in_view,
    point_size,
    points_in_polygon,
)


def test_frame_fits_the_centre_and_leaves_far_outliers_outside():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform(0, 10, (1000, 2)), [[1000.0, 1000.0]]])
    frame = fit_frame(points, top=5, left=100, side=50)
    world = frame.to_world(points)
    inside = world[:-1]
    assert inside.min() > 5 - 1 and inside.max() < 100 + 50 + 1
    assert np.all(world[-1] > 1000)
    assert frame.side == 50


def test_a_map_beside_an_image_is_as_tall_as_the_image_and_keeps_a_gap():
    points = np.random.default_rng(0).uniform(0, 10, (1000, 2))
    # An image of 100 x 50 pixels of 2 world units, its first pixel centred on (10, 20).
    frame = fit_frame_beside(points, low=(0, 10, 20), high=(0, 208, 118), step=(1, 2, 2))
    assert frame.side == 200  # the image's height
    world = frame.to_world(points)
    image_right_edge = 118 + 1
    assert world[:, 1].min() > image_right_edge + 0.1 * 200 - 2  # right of the gap
    assert world[:, 0].min() > 9 - 2 and world[:, 0].max() < 9 + 200 + 2


def test_points_are_smaller_when_there_are_more():
    frame = MapFrame(scale=2.0, translate=(0, 0), side=100.0)
    sizes = [point_size(n, frame) for n in (10, 1000, 100_000, 10**8)]
    assert sizes[0] == pytest.approx(0.025 * 50) and sizes[-1] == pytest.approx(0.003 * 50)
    assert sizes == sorted(sizes, reverse=True)


def test_a_crop_is_outlined_where_the_image_is_drawn():
    corners = crop_outline((11.5, 21.5), 8, scale=(1, 2, 2), translate=(0, 100, 0))
    np.testing.assert_allclose(corners.min(axis=0), [2 * 7.5 + 100, 2 * 17.5])
    np.testing.assert_allclose(corners.max(axis=0), [2 * 15.5 + 100, 2 * 25.5])


def test_polygon_selection():
    points = np.array([[0.5, 0.5], [2.0, 2.0], [0.1, 0.9]])
    square = np.array([[0, 0], [0, 1], [1, 1], [1, 0]])
    assert points_in_polygon(points, square).tolist() == [0, 2]
    assert points_in_polygon(points, square[:2]).tolist() == []


def test_in_view():
    centre, canvas = (100.0, 200.0), (400, 600)  # zoom 2: 200 x 300 world units
    assert in_view((100, 200), centre, canvas, zoom=2)
    assert in_view((180, 60), centre, canvas, zoom=2)
    assert not in_view((205, 200), centre, canvas, zoom=2)
    assert not in_view((100, 40), centre, canvas, zoom=2)
