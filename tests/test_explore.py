"""Exploring a map without a GUI: table, layout, colours, outliers, duplicates, galleries."""

import numpy as np
import pandas as pd
import pytest

from napari_tsimcne.explore import (
    MAP_COLOR,
    MAP_KEY,
    ChannelDisplay,
    ImageMap,
    MapFrame,
    Coloring,
    atlas,
    atlas_cells,
    atlas_grid,
    contrasting_color,
    feature_colors,
    fit_frame,
    format_number,
    gallery_columns,
    in_view,
    legend_html,
    map_layer_data,
    map_table,
    montage,
    near_duplicate_groups,
    outlier_scores,
    point_size,
    points_in_polygon,
    read_map_table,
    tile_at,
    tile_origin,
    user_features,
    write_map_table,
)


def test_display_colours_channels_like_napari():
    gray = ChannelDisplay.for_layers([(1, (0, 100), (1.0, 1.0, 1.0))])
    rgb = gray.to_rgb(np.array([[[[0.0], [50.0], [200.0]]]]))
    assert rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [[0, 0, 0], [128, 128, 128], [255, 255, 255]]
    two = ChannelDisplay.for_layers([(1, (0, 10), (0, 1, 0)), (1, (0, 20), (1, 0, 1))])
    assert two.to_rgb(np.array([[[[10.0, 10.0]]]]))[0, 0, 0].tolist() == [128, 255, 128]
    photo = ChannelDisplay.for_layers([(3, (0, 255), None)])
    assert photo.to_rgb(np.array([[[[255, 0, 51]]]]))[0, 0, 0].tolist() == [255, 0, 51]
    stack = ChannelDisplay.for_layers([(2, (0, 1), (1, 1, 1))])
    assert stack.colors.tolist() == [[1, 0, 1], [0, 1, 0]]  # one colormap, two channels


def test_map_table_puts_index_x_y_first():
    extra = pd.DataFrame({"label": [4, 5], "x": [9, 9]}, index=[10, 11])
    table = map_table(np.array([[1.0, 2.0], [3.0, 4.0]]), extra)
    assert table.columns.tolist() == ["index", "x", "y", "label"]
    assert table["y"].tolist() == [2.0, 4.0] and table["label"].tolist() == [4, 5]


def test_user_features_need_one_row_per_image():
    assert user_features({"features": {"kind": ["a", "b"]}}, 2)["kind"].tolist() == ["a", "b"]
    assert user_features({"features": pd.DataFrame({"kind": ["a"]})}, 2) is None
    assert user_features({}, 2) is None


def test_csv_round_trip(tmp_path):
    table = map_table(np.array([[1.5, -2.0], [0.25, 3.0]]), pd.DataFrame({"kind": ["a", "b"]}))
    write_map_table(table, tmp_path / "map.csv")
    pd.testing.assert_frame_equal(read_map_table(tmp_path / "map.csv"), table)


def test_csv_needs_x_and_y_and_numbers_a_missing_index(tmp_path):
    pd.DataFrame({"kind": ["a"], "y": [1.0], "x": [2.0]}).to_csv(tmp_path / "t.csv", index=False)
    assert read_map_table(tmp_path / "t.csv").columns.tolist() == ["index", "x", "y", "kind"]
    pd.DataFrame({"x": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"no column\(s\) \['y'\]"):
        read_map_table(tmp_path / "bad.csv")


def test_frame_fits_the_centre_and_leaves_far_outliers_outside():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.uniform(0, 10, (1000, 2)), [[1000.0, 1000.0]]])
    frame = fit_frame(points, top=5, left=100, side=50)
    world = frame.to_world(points)
    inside = world[:-1]
    assert inside.min() > 5 - 1 and inside.max() < 100 + 50 + 1
    assert np.all(world[-1] > 1000)
    assert frame.side == 50


def test_points_are_smaller_when_there_are_more():
    frame = MapFrame(scale=2.0, translate=(0, 0), side=100.0)
    sizes = [point_size(n, frame) for n in (10, 1000, 100_000, 10**8)]
    assert sizes[0] == pytest.approx(0.025 * 50) and sizes[-1] == pytest.approx(0.003 * 50)
    assert sizes == sorted(sizes, reverse=True)


def test_numbers_are_coloured_continuously_and_labels_by_category():
    coloring = feature_colors(np.arange(100.0))
    colors = coloring.colors
    assert colors.shape == (100, 4) and "viridis" in coloring.description
    assert np.allclose(colors[0], colors[1]) and not np.allclose(colors[0], colors[-1])
    assert [label for label, _ in coloring.legend] == ["0.99", "98"] and coloring.continuous
    coloring = feature_colors(["b", "a", "b", None])
    colors = coloring.colors
    assert coloring.description == "2 categories"
    assert np.allclose(colors[0], colors[2]) and not np.allclose(colors[0], colors[1])
    assert np.allclose(colors[3], [0.5, 0.5, 0.5, 1])
    assert [label for label, _ in coloring.legend] == ["a", "b"] and not coloring.continuous
    assert np.allclose(coloring.legend[1][1], colors[0])
    assert feature_colors([1, 2, 3, 1]).description == "3 categories"


def test_the_isolated_point_has_the_highest_outlier_score():
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0, 1, (200, 8)), [[8.0] * 8]])
    scores = outlier_scores(vectors, normalize=False)
    assert np.argmax(scores) == 200 and scores[200] > 2
    assert np.median(scores) == pytest.approx(1, abs=0.2)


def test_normalized_outlier_scores_ignore_the_length_of_vectors():
    rng = np.random.default_rng(1)
    vectors = rng.normal(0, 1, (100, 8))
    lengths = rng.uniform(1, 10, (100, 1))
    np.testing.assert_allclose(outlier_scores(vectors), outlier_scores(vectors * lengths))


def test_near_duplicates_are_grouped_tightest_first():
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 1, (100, 16))
    vectors[10] = vectors[3] + 1e-4
    vectors[50] = vectors[3] + 2e-4
    vectors[70] = vectors[20] + 1e-2
    groups = near_duplicate_groups(vectors)
    assert [g.tolist() for g in groups] == [[3, 10, 50], [20, 70]]
    assert near_duplicate_groups(vectors, tolerance=1e-6) == []


def test_polygon_selection():
    points = np.array([[0.5, 0.5], [2.0, 2.0], [0.1, 0.9]])
    square = np.array([[0, 0], [0, 1], [1, 1], [1, 0]])
    assert points_in_polygon(points, square).tolist() == [0, 2]
    assert points_in_polygon(points, square[:2]).tolist() == []


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


def test_map_layer_data_shows_the_record():
    record = ImageMap(table=map_table(np.array([[1.0, 2.0], [3.0, 5.0], [0.0, 0.0]]),
                                      pd.DataFrame({"kind": ["a", "b", "a"]})))
    data, kwargs, layer_type = map_layer_data(record, "m")
    assert layer_type == "points" and kwargs["metadata"][MAP_KEY] is record
    np.testing.assert_array_equal(data, [[2, 1], [5, 3], [0, 0]])
    assert np.allclose(kwargs["face_color"], MAP_COLOR)
    assert kwargs["scale"] == (record.frame.scale, record.frame.scale)
    record.color_by = "kind"
    colors = map_layer_data(record, "m")[1]["face_color"]
    assert np.allclose(colors[0], colors[2]) and not np.allclose(colors[0], colors[1])


@pytest.mark.parametrize(("value", "text"), [
    (1999.7, "2,000"), (778.2, "778"), (123456, "123,000"), (0.012345, "0.0123"),
    (0.99, "0.99"), (98.01, "98"), (-4.5e-7, "-0.00000045"), (0, "0"), (2.0, "2"),
])
def test_numbers_read_without_exponents(value, text):
    assert format_number(value) == text


def test_colour_scale_ends_are_written_for_people():
    coloring = feature_colors(np.linspace(700, 2100, 200))
    assert "e+" not in coloring.description
    assert [label for label, _ in coloring.legend] == ["714", "2,090"]


def test_legend_keeps_each_label_on_one_line_and_fills_columns():
    blue, red = (0.0, 0.0, 1.0, 1.0), (1.0, 0.0, 0.0, 1.0)
    categories = Coloring(np.zeros((3, 4)), "3 categories",
                          [("outlier: debris", blue), ("round", red), ("a<b", blue)])
    text = legend_html(categories, columns=2)
    assert "outlier:&nbsp;debris" in text and "a&lt;b" in text
    assert text.count("<tr>") == 2 and text.count("<td") == 3  # two rows of two columns
    assert "rgb(255, 0, 0)" in text
    assert legend_html(categories, columns=1).count("<tr>") == 3
    many = Coloring(np.zeros((30, 4)), "30 categories", [(str(i), blue) for i in range(30)])
    assert "10 more" in legend_html(many, columns=4, limit=20)
    scale = Coloring(np.zeros((2, 4)), "scale", [("778", blue), ("2,000", red)], continuous=True)
    assert "<table" not in legend_html(scale) and "778" in legend_html(scale)
    assert legend_html(Coloring(np.zeros((2, 4)), "plain", [])) == ""


def test_contrasting_color_is_white_on_dark_and_black_on_light():
    assert contrasting_color((0, 0, 0)) == (1, 1, 1, 1)
    assert contrasting_color((0.1, 0.1, 0.3)) == (1, 1, 1, 1)
    assert contrasting_color((1, 1, 1)) == (0, 0, 0, 1)
    assert contrasting_color((0.9, 0.9, 0.5)) == (0, 0, 0, 1)


def test_atlas_grid_gives_readable_thumbnails_for_the_view():
    n_cells, size = atlas_grid(500, extent_pixels=640)
    assert n_cells == 13 and size == 49  # at least 48 screen pixels per thumbnail
    assert atlas_grid(500, extent_pixels=6400)[0] == 44  # zoomed in: more cells, up to ~2√N
    assert atlas_grid(16, extent_pixels=6400)[0] == 8  # few points: few cells
    n_cells, size = atlas_grid(10**6, extent_pixels=10**6)
    assert n_cells == 48 and n_cells * size <= 3072  # the atlas image stays small
    assert atlas_grid(500, extent_pixels=10) == (2, 16)


def test_in_view():
    centre, canvas = (100.0, 200.0), (400, 600)  # zoom 2: 200 x 300 world units
    assert in_view((100, 200), centre, canvas, zoom=2)
    assert in_view((180, 60), centre, canvas, zoom=2)
    assert not in_view((205, 200), centre, canvas, zoom=2)
    assert not in_view((100, 40), centre, canvas, zoom=2)
