"""The map table's one CSV reader and writer (``napari_tsimcne.files``)."""

import numpy as np
import pytest

from napari_tsimcne.files import read_map_csv, write_embedding, write_map_csv


def test_map_csv_round_trip_keeps_every_column_and_its_kind(tmp_path):
    embedding = np.array([[1.5, -2.0], [0.25, 3.0], [1e-7, 7.0]], dtype=np.float32)
    columns = {"label": np.array([3, 1, 2]), "kind": np.array(["a", "b, c", 'say "d"']),
               "score": np.array([0.5, np.nan, 2.0]), "flagged": np.array([True, False, True])}
    path = write_map_csv(tmp_path / "map.csv", embedding, columns, index=[10, 11, 12])
    table = read_map_csv(path)
    assert list(table) == ["index", "x", "y", "label", "kind", "score", "flagged"]
    assert table["index"].tolist() == [10, 11, 12]
    np.testing.assert_array_equal(table["x"].astype(np.float32), embedding[:, 0])  # exact float32
    assert table["label"].dtype == np.int64 and table["label"].tolist() == [3, 1, 2]
    assert table["kind"].tolist() == ["a", "b, c", 'say "d"']
    assert np.isnan(table["score"][1]) and table["score"][2] == 2.0
    assert table["flagged"].dtype == bool and table["flagged"].tolist() == [True, False, True]


def test_command_line_embedding_csv_is_a_map_table(tmp_path):
    path = write_embedding(tmp_path / "embedding.csv", np.ones((4, 2)), labels=np.arange(4),
                           files=[f"{i}.png" for i in range(4)])
    table = read_map_csv(path)
    assert list(table) == ["index", "x", "y", "label", "file"]
    assert table["file"].tolist() == ["0.png", "1.png", "2.png", "3.png"]


def test_map_csv_of_more_than_two_dimensions_names_them(tmp_path):
    write_map_csv(tmp_path / "e.csv", np.zeros((2, 3)))
    assert (tmp_path / "e.csv").read_text().splitlines()[0] == "index,dim0,dim1,dim2"


def test_map_csv_numbers_a_missing_index_and_puts_x_y_first(tmp_path):
    (tmp_path / "t.csv").write_text("kind,y,x\na,1.0,2.0\nb,3,4\n")
    table = read_map_csv(tmp_path / "t.csv")
    assert list(table) == ["index", "x", "y", "kind"]
    assert table["index"].tolist() == [0, 1] and table["x"].tolist() == [2.0, 4.0]


@pytest.mark.parametrize("text, message", [
    ("x\n1.0\n", r"no column\(s\) \['y'\]"),
    ("", r"no column\(s\) \['x', 'y'\]"),
    ("x,y\n1,2\n3\n", "line 3 has a different number of cells"),
    ("x,y\n1,a\n", "column y holds text"),
])
def test_map_csv_that_is_not_a_map_table_is_refused_by_name(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_map_csv(tmp_path / "bad.csv")


def test_binary_file_is_refused_as_a_map_table(tmp_path):
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(ValueError, match="not a text"):
        read_map_csv(tmp_path / "bad.csv")


def test_map_csv_refuses_columns_of_another_length(tmp_path):
    with pytest.raises(ValueError, match="2 values of 'label' given for 3 embedded images"):
        write_map_csv(tmp_path / "m.csv", np.zeros((3, 2)), {"label": [1, 2]})
    assert not (tmp_path / "m.csv").exists()
