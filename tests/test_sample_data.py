"""Generated sample images and napari's sample menu."""

import numpy as np
import pytest

from napari_tsimcne.metrics import knn_accuracy
from napari_tsimcne.plugin import sample_data
from napari_tsimcne.plugin.map_table import USER_FEATURES_KEY
from napari_tsimcne.plugin.sample_data import PHOTOGRAPHS, natural_image_patches
from napari_tsimcne.synthetic import (
    MORPHOLOGIES,
    OUTLIER_KINDS,
    SHAPES,
    make_cell_crops,
    make_cell_field,
    make_shapes,
)


def test_cell_crops_are_deterministic_with_planted_duplicates_and_outliers():
    images, truth = make_cell_crops(120, 32, n_duplicates=4, n_outliers=6, seed=3)
    assert images.shape == (120, 32, 32, 2) and images.dtype == np.uint16
    again, _ = make_cell_crops(120, 32, n_duplicates=4, n_outliers=6, seed=3)
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, make_cell_crops(120, 32, n_duplicates=4, n_outliers=6,
                                                      seed=4)[0])
    kinds = truth["morphology"]
    outliers = np.char.startswith(kinds, "outlier")
    assert set(kinds[~outliers]) == set(MORPHOLOGIES)
    assert sorted(kinds[outliers]) == sorted(
        f"outlier: {k}" for k in OUTLIER_KINDS)
    copies = np.flatnonzero(truth["duplicate_of"] >= 0)
    assert len(copies) == 4
    pixels = images.reshape(120, -1).astype(float)
    for copy in copies:
        original = truth["duplicate_of"][copy]
        distances = np.linalg.norm(pixels - pixels[copy], axis=1)
        distances[copy] = np.inf
        assert np.argmin(distances) == original  # the copy's nearest image is its original
        assert truth["morphology"][copy] == truth["morphology"][original]


def test_cell_crops_refuse_impossible_counts():
    with pytest.raises(ValueError, match="no ordinary cells"):
        make_cell_crops(10, 32, n_duplicates=5, n_outliers=5)


def test_cell_field_labels_every_cell():
    image, labels, truth = make_cell_field(12, (256, 256), seed=1)
    assert image.shape == (256, 256, 2) and image.dtype == np.uint16
    assert labels.dtype == np.int32
    assert set(np.unique(labels)) == set(range(13))
    assert truth["label"].tolist() == list(range(1, 13))
    inside, outside = image[labels > 0, 1].mean(), image[labels == 0, 1].mean()
    assert inside > 3 * outside


def test_photo_patches_come_from_bundled_photographs():
    images, truth = natural_image_patches(24, 16, window=32, seed=0)
    assert images.shape == (24, 16, 16, 3) and images.dtype == np.uint8
    assert truth["photograph"].tolist() == list(PHOTOGRAPHS) * 4
    np.testing.assert_array_equal(images, natural_image_patches(24, 16, window=32, seed=0)[0])


@pytest.mark.slow
def test_shapes_are_balanced_deterministic_and_hard_for_pixel_neighbours():
    images, labels = make_shapes(1000, seed=2)
    assert images.shape == (1000, 32, 32) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [200] * len(SHAPES)
    np.testing.assert_array_equal(images, make_shapes(1000, seed=2)[0])
    assert images.min() < 30 and images.max() > 200  # backgrounds and shapes span the range
    pixels = images.reshape(1000, -1).astype(float)
    accuracy = knn_accuracy(pixels[:800], labels[:800], pixels[800:], labels[800:])
    assert accuracy < 0.45  # chance is 0.2: pixel neighbours are mostly of other shapes


def test_every_shape_has_its_own_form():
    """Noise-free, centred and equal in size, the five masks differ clearly from each other."""
    from napari_tsimcne.synthetic import _rotated_grid, _shape

    u, v = _rotated_grid(32, np.array([16.0, 16.0]), 0.0)
    masks = np.stack([_shape(name, u, v, 10.0) for name in SHAPES]).reshape(len(SHAPES), -1)
    assert masks.min() >= 0 and masks.max() <= 1
    areas = masks.sum(axis=1)
    assert np.all(areas > 40)
    differences = np.abs(masks[:, None] - masks[None]).sum(axis=2)
    assert np.all(differences[~np.eye(len(SHAPES), dtype=bool)] > 0.15 * areas.min())
    with pytest.raises(ValueError, match="Unknown shape"):
        _shape("star", u, v, 10.0)


@pytest.mark.slow
def test_sample_contributions_return_layer_data():
    (cells, kwargs, kind), = sample_data.cell_crops()
    assert kind == "image" and cells.shape == (500, 64, 64, 2) and kwargs["channel_axis"] == 3
    assert len(kwargs["metadata"][USER_FEATURES_KEY]) == 500
    (field, _, _), (labels, _, labels_kind) = sample_data.cell_field()
    assert labels_kind == "labels" and field.shape[:2] == labels.shape
    (photos, kwargs, _), = sample_data.photo_patches()
    assert kwargs["rgb"] and photos.shape == (600, 32, 32, 3)
    (shapes, kwargs, _), = sample_data.shapes()
    assert shapes.shape == (2000, 32, 32)
    assert kwargs["metadata"][USER_FEATURES_KEY]["shape"].value_counts().to_dict() == {
        name: 400 for name in SHAPES}


@pytest.mark.slow
def test_samples_open_in_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-tsimcne", "cells")
    assert [layer.name for layer in viewer.layers] == ["nucleus", "cell"]
    assert viewer.layers["nucleus"].data.shape == (500, 64, 64)
    viewer.open_sample("napari-tsimcne", "cell_field")
    assert viewer.layers["cell labels"].data.max() == 60
