"""Galleries and thumbnail atlases: tiles found again, grids that suit the view."""

import numpy as np

from napari_tsimcne.plugin.geometry import MapFrame
from napari_tsimcne.plugin.montage import (
    atlas,
    atlas_cells,
    atlas_grid,
    gallery_columns,
    montage,
    tile_at,
    tile_origin,
)


def test_montage_tiles_are_found_again():
    tiles = np.stack([np.full((4, 6, 3), i, np.uint8) for i in range(7)])
    image = montage(tiles, columns=3, gap=2)
    assert image.shape == (3 * 6 - 2, 3 * 8 - 2, 3)
    for i in range(7):
        row, col = (i // 3) * 6 + 1, (i % 3) * 8 + 2
        assert image[row, col, 0] == i
        assert tile_at(row, col, (4, 6), 3, 7) == i
        assert tile_origin(i, (4, 6), 3) == (row - 1, col - 2)
    assert tile_at(4.5, 1, (4, 6), 3, 7) is None  # in the gap
    assert tile_at(13, 9, (4, 6), 3, 7) is None  # below the last tile


def test_gallery_columns_are_square_but_fit_the_width():
    assert gallery_columns(1, 400) == 1
    assert gallery_columns(16, 400) == 4
    assert gallery_columns(100, 300) == 5  # at least 56 px per tile


def test_atlas_shows_the_image_nearest_each_cell_centre():
    coordinates = np.array([[0.1, 0.1], [0.5, 0.5], [9.5, 9.5], [9.9, 0.2]])
    cells, indices, cell, origin = atlas_cells(coordinates, n_cells=2, coverage=100)
    assert dict(zip(map(tuple, cells.tolist()), indices.tolist())) == {
        (0, 0): 1, (1, 1): 2, (1, 0): 3}
    result = atlas(coordinates, lambda rows: np.full((len(rows), 8, 8, 3), 200, np.uint8),
                   n_cells=2, thumbnail_size=4)
    assert result.image.shape == (8, 8, 4)
    assert result.image[0, 0, 3] == 255 and result.image[0, 7, 3] == 0  # cell (0, 1) is empty
    assert result.image[0, 0, 0] == 200
    frame = MapFrame(scale=10.0, translate=(5.0, 7.0), side=100.0)
    (scale, _), translate = result.layer_transform(frame)
    top_left_edge = np.asarray(translate) - scale / 2
    np.testing.assert_allclose(top_left_edge, frame.to_world(result.origin))


def test_atlas_grid_gives_readable_thumbnails_for_the_view():
    n_cells, size = atlas_grid(500, extent_pixels=640)
    assert n_cells == 13 and size == 49  # at least 48 screen pixels per thumbnail
    assert atlas_grid(500, extent_pixels=6400)[0] == 44  # zoomed in: more cells, up to ~2√N
    assert atlas_grid(16, extent_pixels=6400)[0] == 8  # few points: few cells
    n_cells, size = atlas_grid(10**6, extent_pixels=10**6)
    assert n_cells == 48 and n_cells * size <= 3072  # the atlas image stays small
    assert atlas_grid(500, extent_pixels=10) == (2, 16)
