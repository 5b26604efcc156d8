"""The map's table and record: columns, user features, CSV files, layer data."""

import numpy as np
import pandas as pd
import pytest

from napari_tsimcne.plugin.colors import MAP_COLOR, PLACED_COLOR
from napari_tsimcne.plugin.map_table import (
    MAP_KEY,
    ChannelDisplay,
    ImageMap,
    extra_columns,
    map_coordinates,
    map_layer_data,
    map_table,
    read_map_table,
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


def test_coordinates_are_the_table_s_y_and_x():
    table = map_table(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(map_coordinates(table), [[2.0, 1.0], [4.0, 3.0]])


def test_user_features_need_one_row_per_image():
    assert user_features({"features": {"kind": ["a", "b"]}}, 2)["kind"].tolist() == ["a", "b"]
    assert user_features({"features": pd.DataFrame({"kind": ["a"]})}, 2) is None
    assert user_features({}, 2) is None


def test_a_new_map_gets_the_objects_measurements_else_the_layer_s_table():
    measurements = pd.DataFrame({"area": [3, 4]})
    carried = {"features": pd.DataFrame({"kind": ["a", "b"]})}
    assert extra_columns(measurements, carried, 2) is measurements
    assert extra_columns(None, carried, 2)["kind"].tolist() == ["a", "b"]
    assert extra_columns(None, {}, 2) is None


def test_the_record_colours_the_images_the_table_points_to():
    images = np.arange(3, dtype=np.float64).reshape(3, 1, 1, 1)
    record = ImageMap(images=images, display=ChannelDisplay.for_layers([(1, (0, 2), (1, 1, 1))]))
    assert record.rgb([2, 0])[:, 0, 0, 0].tolist() == [255, 0]


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


def test_layer_data_shows_the_table_as_the_record_says():
    table = map_table(np.array([[1.0, 2.0], [3.0, 5.0], [0.0, 0.0]]),
                      pd.DataFrame({"kind": ["a", "b", "a"]}))
    record = ImageMap()
    data, kwargs, layer_type = map_layer_data(record, table, "m")
    assert layer_type == "points" and kwargs["metadata"][MAP_KEY] is record
    assert kwargs["features"] is table
    np.testing.assert_array_equal(data, [[2, 1], [5, 3], [0, 0]])
    assert np.allclose(kwargs["face_color"], MAP_COLOR)
    assert kwargs["scale"] == (record.frame.scale, record.frame.scale)
    record.color_by = "kind"
    colors = map_layer_data(record, table, "m")[1]["face_color"]
    assert np.allclose(colors[0], colors[2]) and not np.allclose(colors[0], colors[1])
    placed = map_layer_data(ImageMap(placed=True), table, "m")[1]["face_color"]
    assert np.allclose(placed, PLACED_COLOR)
