"""napari reader: a map table (CSV with x, y columns) or a t-SimCNE model file (.pt).

A table becomes a map layer with all its columns as features.  A model file
becomes the map of the images it was trained on (stored in the file), with
the model attached, so that new images can be placed on it.
"""

from __future__ import annotations

from pathlib import Path

from ..files import looks_like_map_csv
from .map_table import ImageMap, map_layer_data, map_table, read_map_table

__all__ = ["napari_get_reader"]


def napari_get_reader(path):
    """Return a reader for one ``.csv`` map table or ``.pt`` model file, else ``None``."""
    if not isinstance(path, (str, Path)):
        return None
    path = Path(path)
    if path.suffix.lower() == ".csv" and looks_like_map_csv(path):
        return read_map_layer
    if path.suffix.lower() == ".pt" and _is_model_file(path):
        return read_model
    return None


def _is_model_file(path: Path) -> bool:
    from ..persistence import looks_like_model_file  # imports torch: only for .pt files

    return looks_like_model_file(path)


def read_map_layer(path):
    """Layer data of a map from a CSV table with columns index, x, y and any features."""
    return [map_layer_data(ImageMap(), read_map_table(path), f"{Path(path).stem} map")]


def read_model(path):
    """Layer data of the map stored in a model file, with the model attached."""
    from ..model import TSimCNEModel  # imports torch: only for model files

    model = TSimCNEModel.load(path)
    return [map_layer_data(ImageMap(model=model), map_table(model.embedding),
                           f"{Path(path).stem} map")]
