"""Nearest neighbours in feature space as extra positive pairs.

t-SimCNE's positives are two augmentations of one image (the augmentation
graph).  Once the backbone has learned features ``H``, each image's nearest
neighbours in ``H`` are positives too: a kNN graph as parametric t-SNE by
InfoNCE uses (Damrich et al., ICLR 2023).  On a short budget this keeps in the
2-D map much of what the features know that the augmentation pairs alone lose
(``benchmarks/RESULTS.md``, the 2-D stages).

The graph comes from openTSNE's neighbour search (exact for small
collections, Annoy for large ones).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["neighbor_graph", "partners"]


def neighbor_graph(features, k: int = 15, *, random_state=None, n_jobs: int = 1) -> torch.Tensor:
    """Indices of the ``k`` nearest neighbours of every row of ``features``.

    Parameters
    ----------
    features : array (N, D)
        One feature vector per image; Euclidean distance.
    k : int, default 15
        Neighbours per image (fewer if there are not enough images).
    random_state : int or None
        Seed of the approximate search used for more than 1,000 images.

    Returns
    -------
    int64 tensor ``(N, k)``; row ``i`` never contains ``i``.
    """
    from openTSNE.affinity import get_knn_index

    features = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    k = min(int(k), len(features) - 1)
    if k < 1:
        raise ValueError("A neighbour graph needs at least two images.")
    seed = None if random_state is None else int(random_state) % 2**31
    index = get_knn_index(features, "auto", k, "euclidean", n_jobs=n_jobs, random_state=seed)
    indices, _ = index.build()
    return torch.from_numpy(np.asarray(indices, dtype=np.int64))


def partners(indices: torch.Tensor, graph: torch.Tensor | None, share: float,
             generator: torch.Generator) -> torch.Tensor:
    """The positive partner of every image in ``indices``.

    With probability ``share`` an image's partner is one of its neighbours in
    ``graph`` (drawn uniformly), otherwise the image itself (whose second
    augmentation is then the positive, as in the paper).  ``generator`` makes
    the draw reproducible and identical in every process of a distributed run.
    """
    if graph is None or share <= 0:
        return indices
    use_neighbor = torch.rand(len(indices), generator=generator) < share
    which = torch.randint(graph.shape[1], (len(indices),), generator=generator)
    neighbors = graph[indices, which]
    return torch.where(use_neighbor, neighbors, indices)
