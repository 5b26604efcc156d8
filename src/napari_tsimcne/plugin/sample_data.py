"""napari sample data: generated cells and shapes, patches of scikit-image's photographs.

Each function returns napari layer data tuples.  The known classes of the
images travel in the image layer's ``metadata["features"]``, from where the
Train map widget copies them into the map's features (to colour by).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..synthetic import SHAPES, make_cell_crops, make_cell_field, make_shapes
from .map_table import USER_FEATURES_KEY

__all__ = ["PHOTOGRAPHS", "cell_crops", "cell_field", "natural_image_patches", "photo_patches",
           "shapes"]

#: Colour photographs bundled with scikit-image that the patches are cut from.
PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")

_CHANNELS = {"name": ["nucleus", "cell"], "colormap": ["green", "magenta"],
             "blending": ["translucent_no_depth", "additive"]}


def _contrast_limits(images) -> list[tuple[float, float]]:
    """Per-channel display range of channels-last ``images``.

    napari's default, the data range, is set by the brightest pixel: the
    saturated outlier would leave every ordinary cell nearly black.
    """
    channels = images.reshape(-1, images.shape[-1])[::7]  # a sample is plenty
    return [tuple(float(v) for v in np.percentile(channels[:, c], (1, 99.9)))
            for c in range(channels.shape[1])]


def cell_crops():
    """500 generated two-channel cell crops (64x64, uint16), one layer per channel."""
    images, truth = make_cell_crops()
    return [(images, {**_CHANNELS, "channel_axis": 3, "contrast_limits": _contrast_limits(images),
                      "metadata": {USER_FEATURES_KEY: pd.DataFrame(truth)}}, "image")]


def cell_field():
    """A 512x512 two-channel field of 60 generated cells, and their labels."""
    image, labels, _ = make_cell_field()
    return [
        (image, {**_CHANNELS, "channel_axis": 2, "contrast_limits": _contrast_limits(image)},
         "image"),
        (labels, {"name": "cell labels", "opacity": 0.3}, "labels"),
    ]


def natural_image_patches(
    n_images: int = 600, size: int = 32, *, window: int = 64, seed: int = 0
) -> tuple[np.ndarray, pd.DataFrame]:
    """Square patches cut at random from scikit-image's bundled colour photographs.

    Each patch is a ``window`` x ``window`` region shrunk to ``size`` x ``size``
    by averaging, taken from the photographs in :data:`PHOTOGRAPHS` in turn.

    Returns
    -------
    images : uint8 array (n_images, size, size, 3)
    truth : DataFrame with ``photograph`` (the source) and ``row``, ``col``
        (top-left corner of the window in it)
    """
    import skimage.data

    if window % size:
        raise ValueError(f"window={window} must be a multiple of size={size}.")
    rng = np.random.default_rng(seed)
    photographs = [np.asarray(getattr(skimage.data, name)())[..., :3] for name in PHOTOGRAPHS]
    factor = window // size
    patches, rows = [], []
    for i in range(n_images):
        name = PHOTOGRAPHS[i % len(PHOTOGRAPHS)]
        photo = photographs[i % len(PHOTOGRAPHS)]
        row = int(rng.integers(0, photo.shape[0] - window + 1))
        col = int(rng.integers(0, photo.shape[1] - window + 1))
        region = photo[row : row + window, col : col + window].astype(np.float32)
        patches.append(region.reshape(size, factor, size, factor, 3).mean(axis=(1, 3)))
        rows.append((name, row, col))
    images = np.round(np.stack(patches)).astype(np.uint8)
    return images, pd.DataFrame(rows, columns=["photograph", "row", "col"])


def photo_patches():
    """600 RGB patches (32x32) cut from six photographs bundled with scikit-image."""
    images, truth = natural_image_patches()
    return [(images, {"name": "photo patches", "rgb": True,
                      "metadata": {USER_FEATURES_KEY: truth[["photograph"]]}}, "image")]


def shapes():
    """2,000 generated grey shapes (32x32, uint8) whose pixel neighbours mislead."""
    images, labels = make_shapes()
    truth = pd.DataFrame({"shape": pd.Categorical.from_codes(labels, SHAPES)})
    return [(images, {"name": "shapes", "contrast_limits": (0, 255),
                      "metadata": {USER_FEATURES_KEY: truth}}, "image")]
