"""InfoNCE losses over the ``2b`` views of a batch.

Both losses take the embeddings of the two views of ``b`` images,
``z_a`` and ``z_b`` of shape ``(b, d)``; view ``i`` of the first set and view
``i`` of the second set are a positive pair, and every one of the other
``2b - 2`` views is a negative.  Each is the cross-entropy of a ``2b x 2b``
matrix of log-similarities whose diagonal is excluded, so the normaliser is
a log-sum-exp: stable in float32 for any distance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LOSS_METRICS", "CauchyInfoNCELoss", "CosineInfoNCELoss", "cauchy_log_similarity",
           "make_loss", "squared_distances"]

#: Names of the losses :func:`make_loss` makes.
LOSS_METRICS = ("euclidean", "cosine")


def info_nce_from_log_similarity(log_similarity: torch.Tensor) -> torch.Tensor:
    """Mean InfoNCE loss from a ``(2b, 2b)`` matrix of log-similarities.

    Row ``i`` holds ``log s(z_i, z_k)`` for all views ``k``; the positive of
    view ``i`` is view ``(i + b) mod 2b``.  Self-similarities are excluded.
    """
    n_views = log_similarity.shape[0]
    self_mask = torch.eye(n_views, dtype=torch.bool, device=log_similarity.device)
    logits = log_similarity.masked_fill(self_mask, float("-inf"))
    positives = torch.arange(n_views, device=logits.device).roll(n_views // 2)
    return F.cross_entropy(logits, positives)


def squared_distances(z: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``d^2`` between all rows of ``z`` ``(n, d)``: ``(n, n)``."""
    # Exact differences, not the |a|^2 + |b|^2 - 2ab expansion, which loses
    # the small distances of close pairs to cancellation in float32.
    return torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist").square()


def cauchy_log_similarity(z: torch.Tensor) -> torch.Tensor:
    """``log q`` for all pairs of rows of ``z`` ``(n, d)``: ``(n, n)``, ``q = 1 / (1 + d^2)``."""
    return -torch.log1p(squared_distances(z))


class CauchyInfoNCELoss(nn.Module):
    """t-SimCNE loss, Eq. 4-5 of Böhm et al. (2023).

    ``l(i, j) = -log( q_ij / sum_{k != i} q_ik )`` with the Cauchy similarity
    ``q = 1 / (1 + d^2)`` of the Euclidean distance ``d``; averaged over all
    ``2b`` views.  The paper calls it the "Euclidean" loss and uses it both in
    2-D and for 128-D pre-training.
    """

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return info_nce_from_log_similarity(cauchy_log_similarity(torch.cat([z_a, z_b])))


class CosineInfoNCELoss(nn.Module):
    """SimCLR's loss (NT-Xent), Eq. 1-2: cosine similarity over a temperature.

    Parameters
    ----------
    temperature
        ``tau``; 0.5 as in the paper and in Chen et al. (2020).
    """

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        self.temperature = temperature

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        z = F.normalize(torch.cat([z_a, z_b]), dim=1)
        return info_nce_from_log_similarity(z @ z.T / self.temperature)


def make_loss(metric: str) -> nn.Module:
    """Loss by name, one of :data:`LOSS_METRICS`: ``"euclidean"`` (Cauchy, t-SimCNE) or
    ``"cosine"`` (SimCLR)."""
    if metric == "euclidean":
        return CauchyInfoNCELoss()
    if metric == "cosine":
        return CosineInfoNCELoss()
    raise ValueError(f"Unknown loss metric {metric!r}; use one of {LOSS_METRICS}.")
