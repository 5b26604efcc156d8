"""``quality.py`` with another kernel for the 128-D pre-training.

The paper (Böhm et al., 2023, Discussion) suggests that "128D pretraining
could benefit from using the Gaussian kernel (instead of Cauchy), as the
crowding problem may not be an issue in higher dimensions".  This script
adds that loss as ``--pretrain-loss gaussian``: the InfoNCE loss with the
similarity ``exp(-d^2)`` of the Euclidean distance ``d`` (the output's scale
is learned, so the kernel's width is too).  The 2-D stages keep the Cauchy
kernel.

Usage: ``quality.py``'s arguments::

    python benchmarks/loss_variants.py --pretrain-loss gaussian --budget-minutes 15 \\
        --batch-size 64 --baselines --seed 0 --name quality_cpu_15min_gaussian_seed0
"""

from __future__ import annotations

import torch
from torch import nn

import quality
from napari_tsimcne import estimator, loss, trainer


class GaussianInfoNCELoss(nn.Module):
    """InfoNCE over the ``2b`` views with the Gaussian similarity ``exp(-d^2)``."""

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return loss.info_nce_from_log_similarity(-loss.squared_distances(torch.cat([z_a, z_b])))


def main():
    loss.LOSS_METRICS = estimator.LOSS_METRICS = (*loss.LOSS_METRICS, "gaussian")
    default_make_loss = trainer.make_loss
    trainer.make_loss = lambda metric: (GaussianInfoNCELoss() if metric == "gaussian"
                                        else default_make_loss(metric))
    quality.main()


if __name__ == "__main__":
    main()
