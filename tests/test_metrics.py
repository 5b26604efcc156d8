"""kNN accuracy of a map and the t-SNE-on-pixels baseline."""

from __future__ import annotations

import numpy as np
import pytest

from napari_tsimcne.datasets import load_digits_images
from napari_tsimcne.metrics import knn_accuracy, pixel_tsne_baseline


def clusters(n_per_class=50, n_classes=5, spread=0.3, seed=0):
    """Well separated 2-D Gaussian clusters and their labels."""
    rng = np.random.default_rng(seed)
    centres = 10 * np.stack([np.arange(n_classes), np.arange(n_classes) % 2], axis=1)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + spread * rng.normal(size=(len(labels), 2)), labels


def test_knn_accuracy_of_separated_clusters_is_one():
    embedding, labels = clusters()
    assert knn_accuracy(embedding, labels) == 1.0


def test_knn_accuracy_of_shuffled_labels_is_near_chance():
    embedding, labels = clusters(n_per_class=400, n_classes=5)
    shuffled = np.random.default_rng(1).permutation(labels)
    accuracy = knn_accuracy(embedding, shuffled)
    assert abs(accuracy - 1 / 5) < 0.08


def test_knn_accuracy_holds_out_a_stratified_share():
    # 10 points per class, 10% held out: exactly one point of each class is
    # classified; with k larger than the rest, the majority class wins.
    embedding = np.zeros((30, 2))
    labels = np.repeat([0, 1, 2], 10)
    assert knn_accuracy(embedding, labels, k=100) == pytest.approx(1 / 3)


def test_knn_accuracy_with_explicit_test_points():
    embedding, labels = clusters()
    test_points, test_labels = clusters(n_per_class=4, seed=1)
    assert knn_accuracy(embedding, labels, test_points, test_labels) == 1.0
    wrong = (test_labels + 1) % 5
    assert knn_accuracy(embedding, labels, test_points, wrong) == 0.0


def test_knn_accuracy_with_fewer_training_points_than_k():
    embedding = np.array([[0.0, 0], [0, 1], [0, 2], [10, 0], [10, 1]])
    labels = np.array([0, 0, 0, 1, 1])
    # k=15 is reduced to the 5 training points: the majority class 0 wins everywhere.
    assert knn_accuracy(embedding, labels, np.array([[10.0, 0.5]]), np.array([0])) == 1.0
    assert knn_accuracy(embedding, labels, np.array([[10.0, 0.5]]), np.array([1]), k=1) == 1.0


@pytest.fixture(scope="module")
def digits():
    return load_digits_images()


@pytest.mark.slow
def test_pixel_tsne_baseline_returns_training_and_test_maps(digits):
    images, labels = digits
    train, test = pixel_tsne_baseline(images[:200], images[200:230], n_jobs=1)
    assert train.shape == (200, 2) and test.shape == (30, 2)
    assert np.isfinite(train).all() and np.isfinite(test).all()
    # t-SNE on the pixels of digits separates the classes well.
    assert knn_accuracy(train, labels[:200], test, labels[200:230]) > 0.6


def test_pixel_tsne_baseline_without_test_images_returns_the_training_map(digits):
    images, _ = digits
    train = pixel_tsne_baseline(images[:100], n_jobs=1, random_state=1)
    assert isinstance(train, np.ndarray) and train.shape == (100, 2)
