"""napari sample data: generated cells and shapes, patches of scikit-image's photographs.

Each function returns napari layer data tuples.  The known classes of the
images travel in the image layer's ``metadata["features"]``, from where the
training widget copies them into the map's features (to colour by).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .explore import USER_FEATURES_KEY
from .synthetic import SHAPES, make_cell_crops, make_cell_field, make_shapes, natural_image_patches

__all__ = ["cell_crops", "cell_field", "photo_patches", "shapes"]

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
                      "metadata": {USER_FEATURES_KEY: truth}}, "image")]


def cell_field():
    """A 512x512 two-channel field of 60 generated cells, and their labels."""
    image, labels, _ = make_cell_field()
    return [
        (image, {**_CHANNELS, "channel_axis": 2, "contrast_limits": _contrast_limits(image)},
         "image"),
        (labels, {"name": "cell labels", "opacity": 0.3}, "labels"),
    ]


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
