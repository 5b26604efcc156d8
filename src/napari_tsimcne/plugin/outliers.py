"""Images that sit apart, and groups of nearly identical images, found in their vectors.

The vectors are the network's backbone features of the images where the map
has them (compared by angle, as contrastive learning trains them), else the
map's coordinates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_numbers", "most_unusual", "near_duplicate_groups", "outlier_scores"]


def outlier_scores(vectors, n_neighbors: int = 10, *, normalize: bool = True) -> np.ndarray:
    """Outlier score of every row of ``vectors (N, D)``: the local outlier factor, ``(N,)``.

    The factor compares how far an image is from its ``n_neighbors`` nearest
    neighbours with how far those neighbours are from theirs: about 1 for a
    typical image, clearly above 1 for one that sits apart, also next to a
    dense cluster.  With ``normalize`` the vectors are scaled to unit length
    first, so backbone features are compared by angle (cosine), as
    contrastive learning trains them.
    """
    from sklearn.neighbors import LocalOutlierFactor

    vectors = _unit_rows(vectors) if normalize else np.asarray(vectors, dtype=np.float64)
    k = min(n_neighbors, len(vectors) - 1)
    if k < 1:
        return np.ones(len(vectors))
    return -LocalOutlierFactor(n_neighbors=k).fit(vectors).negative_outlier_factor_


def most_unusual(scores, n: int) -> np.ndarray:
    """Rows of the ``n`` highest ``scores``, highest first (ties in row order)."""
    return np.argsort(-np.asarray(scores), kind="stable")[:n]


def near_duplicate_groups(
    vectors, tolerance: float = 0.25, *, normalize: bool = True
) -> list[np.ndarray]:
    """Groups of images whose vectors are nearly identical, most similar groups first.

    Two images are linked when their distance is below ``tolerance`` times
    the median distance between an image and its nearest neighbour, a scale
    that adapts to the model; groups are the connected sets of linked images.

    Parameters
    ----------
    vectors : array (N, D)
        Backbone features (or any representation) of the images.
    tolerance : float, default 0.25
        Fraction of the typical nearest-neighbour distance.
    normalize : bool, default True
        Compare unit-length vectors (cosine geometry).

    Returns
    -------
    List of index arrays, each sorted, of at least two images.
    """
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import NearestNeighbors

    vectors = _unit_rows(vectors) if normalize else np.asarray(vectors, dtype=np.float64)
    if len(vectors) < 2:
        return []
    neighbors = NearestNeighbors().fit(vectors)
    nearest, _ = neighbors.kneighbors(vectors, n_neighbors=2)
    typical = float(np.median(nearest[:, 1]))
    radius = tolerance * typical
    graph = neighbors.radius_neighbors_graph(vectors, radius=radius, mode="distance")
    n_groups, group_of = connected_components(graph, directed=False)
    sizes = np.bincount(group_of, minlength=n_groups)
    groups = [np.flatnonzero(group_of == g) for g in np.flatnonzero(sizes > 1)]
    spread = [nearest[g, 1].max() for g in groups]
    return [groups[i] for i in np.argsort(spread, kind="stable")]


def group_numbers(groups, n_images: int) -> np.ndarray:
    """The number of each image's group in ``groups`` (a list of row arrays), ``-1`` for none.

    Returns an int array ``(n_images,)``: the table column that marks the groups.
    """
    group_of = np.full(n_images, -1)
    for number, group in enumerate(groups):
        group_of[group] = number
    return group_of


def _unit_rows(vectors) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
