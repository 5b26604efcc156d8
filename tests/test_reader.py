"""The napari reader: map tables and model files, recognised cheaply and read whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_tsimcne.plugin.map_table import MAP_KEY
from napari_tsimcne.plugin.reader import napari_get_reader, read_map_layer, read_model


def test_a_model_file_becomes_its_map_with_the_model_attached(fitted, tmp_path):
    path = fitted.save(tmp_path / "cells.pt")
    reader = napari_get_reader(str(path))
    assert reader is read_model
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "points" and kwargs["name"] == "cells map"
    assert len(data) == len(fitted.embedding_)
    assert kwargs["metadata"][MAP_KEY].model is not None


def test_recognising_a_model_file_does_not_load_it(fitted, tmp_path, monkeypatch):
    path = fitted.save(tmp_path / "cells.pt")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("loaded to be recognised"))
    assert napari_get_reader(str(path)) is read_model


def test_other_files_are_left_to_other_readers(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a zip archive")
    (tmp_path / "table.csv").write_text("a,b\n1,2\n")
    for name in ("other.pt", "garbage.pt", "table.csv", "missing.pt"):
        assert napari_get_reader(str(tmp_path / name)) is None, name
    assert napari_get_reader([str(tmp_path / "other.pt")]) is None


def test_a_damaged_model_file_is_claimed_and_then_refused_clearly(fitted, tmp_path):
    path = fitted.save(tmp_path / "cells.pt")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # a flipped byte inside the weights
    path.write_bytes(bytes(raw))
    reader = napari_get_reader(str(path))
    assert reader is read_model
    with pytest.raises(ValueError, match="damaged"):
        reader(str(path))


def test_a_map_table_becomes_a_map_layer(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("index,x,y,label\n0,0.5,1.0,a\n1,2.0,-1.0,b\n")
    reader = napari_get_reader(str(path))
    assert reader is read_map_layer
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "points" and len(data) == 2
    assert list(kwargs["features"]["label"]) == ["a", "b"]
    np.testing.assert_allclose(np.sort(kwargs["features"]["x"]), [0.5, 2.0])
