"""``quality.py`` with one augmentation changed: does a stronger augmentation lift the features?

On 5,000 Fashion-MNIST images the features stop improving after about 90
pre-training epochs (``RESULTS.md``), the pattern of a network that has
learned to tell its training images apart by details that do not generalise.
Stronger or other augmentations are the usual cure; this script runs the
15-minute benchmark with the default preset and one variant:

- ``blur``: a 3×3 Gaussian blur (sigma 0.1–1) with p=0.5, added last;
- ``erase``: random erasing of 2–15% of the image with p=0.5, added last;
- ``affine``: a random rotation (±10°) and shear (±10°) with p=0.5, added last;
- ``intensity``: brightness and contrast jitter of 0.8 instead of 0.4 (the
  ``natural`` preset's jitter).

Usage: the variant, then ``quality.py``'s arguments::

    python benchmarks/augmentation_variants.py blur --budget-minutes 15 --batch-size 64 \\
        --baselines --seed 0 --name quality_cpu_15min_aug_blur_seed0

The variant replaces the estimator's augmentation wherever it is built (the
pre-training, the cached views and the fine-tuning), exactly as a change to
:func:`napari_tsimcne.augmentation.make_augmentation` would.
"""

from __future__ import annotations

import sys

import kornia.augmentation as K
from torch import nn

import quality
from napari_tsimcne import estimator

VARIANTS = {
    "blur": lambda steps: [*steps, K.RandomGaussianBlur((3, 3), (0.1, 1.0), p=0.5)],
    "erase": lambda steps: [*steps, K.RandomErasing(scale=(0.02, 0.15), p=0.5)],
    "affine": lambda steps: [*steps, K.RandomAffine(degrees=10, shear=10, p=0.5)],
    "intensity": lambda steps: [
        K.ColorJitter(brightness=0.8, contrast=0.8, p=0.8) if isinstance(step, K.ColorJitter)
        else step for step in steps],
}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in VARIANTS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(VARIANTS)}}} [quality.py arguments]")
    name, variant = sys.argv[1], VARIANTS[sys.argv[1]]
    default_augmentation = estimator.make_augmentation

    def varied_augmentation(*args, **kwargs):
        steps = variant(list(default_augmentation(*args, **kwargs)))
        print("augmentation:", steps, flush=True)
        return nn.Sequential(*steps)

    estimator.make_augmentation = varied_augmentation
    # quality.py records its command line from sys.argv: keep the variant in it.
    sys.argv = [f"{sys.argv[0]} {name}", *sys.argv[2:]]
    quality.main()


if __name__ == "__main__":
    main()
