"""Quality of a map: kNN accuracy, and the t-SNE-on-pixels baseline to compare with."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

__all__ = ["knn_accuracy", "pixel_tsne_baseline"]


def knn_accuracy(
    embedding, labels, test_embedding=None, test_labels=None, *, k: int = 15,
    test_size: float = 0.1, random_state=0,
) -> float:
    """Accuracy of a k-nearest-neighbour classifier in the embedding (k=15 as in the paper).

    With ``test_embedding`` and ``test_labels``, the test points (e.g. images
    placed with ``transform``) are classified by their neighbours among the
    training points.  Without them, a stratified ``test_size`` share of the
    points is held out and classified by the rest.

    Parameters
    ----------
    embedding : array (n, d)
    labels : array (n,)
    test_embedding : array (m, d), optional
    test_labels : array (m,), optional
    """
    embedding, labels = np.asarray(embedding), np.asarray(labels)
    if test_embedding is None:
        embedding, test_embedding, labels, test_labels = train_test_split(
            embedding, labels, test_size=test_size, random_state=random_state, stratify=labels
        )
    classifier = KNeighborsClassifier(n_neighbors=min(k, len(embedding))).fit(embedding, labels)
    return float(classifier.score(np.asarray(test_embedding), np.asarray(test_labels)))


def pixel_tsne_baseline(train_images, test_images=None, *, random_state=0, n_jobs: int = -1):
    """openTSNE on raw pixels: fit on ``train_images``, place ``test_images`` with ``transform``.

    Images are flattened; openTSNE's defaults are used otherwise.  Returns the
    training embedding ``(n, 2)`` and, if test images are given, theirs ``(m, 2)``.
    """
    from openTSNE import TSNE

    flat = np.asarray(train_images, dtype=np.float32).reshape(len(train_images), -1)
    embedding = TSNE(random_state=random_state, n_jobs=n_jobs).fit(flat)
    if test_images is None:
        return np.asarray(embedding)
    test_flat = np.asarray(test_images, dtype=np.float32).reshape(len(test_images), -1)
    return np.asarray(embedding), np.asarray(embedding.transform(test_flat))
