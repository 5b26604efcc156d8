"""``quality.py`` with more than two views of each image in pre-training.

On 5,000 Fashion-MNIST images the features stop improving after about 90
pre-training epochs (``RESULTS.md``).  More positives per image per step is
the other remedy the field uses for that, besides stronger augmentations
(``augmentation_variants.py``):

- ``local``: the two views plus two small ones, 16 × 16 px crops of 15–50%
  of the image area (the multi-crop of Caron et al., SwAV, 2020);
- ``four``: four views of the default augmentation.

The loss is the Cauchy InfoNCE with several positives: every view's loss is
the mean, over the other views of its image, of
``-log(q_ij / sum_{k != i} q_ik)`` (the supervised contrastive loss of
Khosla et al., 2020, with the image as the label); with two views it equals
:class:`napari_tsimcne.loss.CauchyInfoNCELoss`.  Only the pre-training
steps change (the 2-D stages' steps are paired); the time planner times the
changed step, so the extra views cost pre-training epochs, as they would in
the product.

Usage: the variant, then ``quality.py``'s arguments::

    python benchmarks/view_variants.py local --budget-minutes 15 --batch-size 64 \\
        --baselines --seed 0 --name quality_cpu_15min_views_local_seed0
"""

from __future__ import annotations

import sys

import torch
from napari_tsimcne.loss import CauchyInfoNCELoss, cauchy_log_similarity

import quality
from napari_tsimcne import budget, estimator, trainer

#: Extra views per image: (number, side in px or None for the images' own, crop scale).
VARIANTS = {"local": (2, 16, (0.15, 0.5)), "four": (2, None, None)}


def multi_positive_cauchy_loss(z: torch.Tensor, n_views: int) -> torch.Tensor:
    """Mean loss over ``z`` ``(n_views * b, d)``, view-major: rows ``i`` and ``i + b`` are one image."""
    n = len(z)
    image = torch.arange(n // n_views, device=z.device).repeat(n_views)
    self_pair = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = cauchy_log_similarity(z).masked_fill(self_pair, float("-inf"))
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (image[:, None] == image[None, :]) & ~self_pair
    return -(log_p.masked_fill(~positive, 0).sum(1) / positive.sum(1)).mean()


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in VARIANTS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(VARIANTS)}}} [quality.py arguments]")
    name = sys.argv[1]
    n_extra, side, scale = VARIANTS[name]
    z = torch.randn(20, 5)
    assert torch.allclose(multi_positive_cauchy_loss(z, 2), CauchyInfoNCELoss()(z[:10], z[10:]))

    default_augmentation, extra_augmentations = estimator.make_augmentation, {}

    def augmentation_with_extra_views(preset, n_channels, image_size, crop_scale):
        augment = default_augmentation(preset, n_channels, image_size, crop_scale)
        extra_augmentations[id(augment)] = default_augmentation(
            preset, n_channels, (side, side) if side else image_size, scale or crop_scale)
        return augment

    two_view_step = trainer.training_step

    def step_with_extra_views(model, batch, augment, loss_fn, optimizer,
                              accelerations=trainer.Accelerations(), *, paired=False):
        extra = extra_augmentations.get(id(augment))
        if paired or extra is None:
            return two_view_step(model, batch, augment, loss_fn, optimizer, accelerations,
                                 paired=paired)
        with torch.no_grad():
            x = batch.float().div_(255)
            view_sets = [augment(torch.cat([x, x])), extra(x.repeat(n_extra, 1, 1, 1))]
            if accelerations.channels_last:
                view_sets = [v.contiguous(memory_format=torch.channels_last) for v in view_sets]
        # One call per view set (BatchNorm statistics per set): the sets may differ in size.
        with accelerations.autocast(x.device):
            z = torch.cat([model(views) for views in view_sets]).float()
        loss = multi_positive_cauchy_loss(z, 2 + n_extra)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    estimator.make_augmentation = augmentation_with_extra_views
    trainer.training_step = budget.training_step = step_with_extra_views
    # quality.py records its command line from sys.argv: keep the variant in it.
    sys.argv = [f"{sys.argv[0]} {name}", *sys.argv[2:]]
    quality.main()


if __name__ == "__main__":
    main()
