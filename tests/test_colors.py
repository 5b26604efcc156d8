"""Colours of a map's points, their key, and numbers written for people."""

import numpy as np
import pandas as pd
import pytest

from napari_tsimcne.plugin.colors import (
    MAP_COLOR,
    Coloring,
    contrasting_color,
    feature_colors,
    format_number,
    legend_columns,
    legend_html,
    map_colors,
)


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


def test_a_map_is_coloured_by_a_column_of_its_table_else_plainly():
    table = pd.DataFrame({"kind": ["a", "b", "a"]})
    by_kind = map_colors(table, "kind").colors
    assert np.allclose(by_kind[0], by_kind[2]) and not np.allclose(by_kind[0], by_kind[1])
    for plain in (map_colors(table, None), map_colors(table, "gone")):  # a column removed
        assert plain.description == "plain" and np.allclose(plain.colors, MAP_COLOR)


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


def test_the_key_has_as_many_columns_as_fit():
    assert legend_columns([40, 60, 50], width=250, spacing=16) == 3  # 76 px each
    assert legend_columns([40, 60, 50], width=100, spacing=16) == 1
    assert legend_columns([40, 60, 50], width=10, spacing=16) == 1  # at least one


def test_contrasting_color_is_white_on_dark_and_black_on_light():
    assert contrasting_color((0, 0, 0)) == (1, 1, 1, 1)
    assert contrasting_color((0.1, 0.1, 0.3)) == (1, 1, 1, 1)
    assert contrasting_color((1, 1, 1)) == (0, 0, 0, 1)
    assert contrasting_color((0.9, 0.9, 0.5)) == (0, 0, 0, 1)
