"""Batched random augmentations that make the two views of each image.

Every augmentation runs on whole batches of float images ``(N, C, H, W)`` in
``[0, 1]`` on the training device, with independent random parameters per
image, using kornia's augmentation modules.  (``benchmarks/augmentation.py``
compares them with torchvision's v2 transforms, which draw one set of
parameters per call and so need a Python loop over the images.)

Presets
-------
``"natural"``
    SimCLR's set as in the paper: random resized crop (the paper's scale
    is (0.2, 1); ``crop_scale`` sets it), horizontal flip, colour jitter
    (0.4, 0.4, 0.4, 0.1) with p=0.8 and grayscale with p=0.2.  Saturation,
    hue and grayscale need RGB, so for images with other than 3 channels only
    brightness and contrast are jittered.
``"microscopy"``
    For cells and tissue, where orientation carries no meaning and channels
    are independent stains: random resized crop (``crop_scale``),
    horizontal and vertical flips, 90-degree rotations (square images), and
    brightness/contrast jitter drawn independently for each channel with
    p=0.8.  No hue or grayscale; any number of channels.

Randomness comes from torch's global generator, which
:class:`napari_tsimcne.TSimCNE` seeds from ``random_state``.
"""

from __future__ import annotations

from collections.abc import Callable

import kornia.augmentation as K
import torch
from torch import nn

from .defaults import CROP_SCALE

__all__ = ["PRESETS", "RandomChannelIntensity", "check_augmentation", "make_augmentation"]

PRESETS = ("natural", "microscopy")


class RandomChannelIntensity(nn.Module):
    """Brightness and contrast jitter with separate factors for every channel.

    With probability ``p`` per image, each channel ``c`` becomes
    ``clip((x_c - mean_c) * contrast_c + mean_c) * brightness_c`` with both
    factors uniform in ``[1 - strength, 1 + strength]``.  Kornia's jitter uses
    one factor for all channels, which would keep the stains' ratio fixed.
    """

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, p: float = 0.8):
        super().__init__()
        self.brightness, self.contrast, self.p = brightness, contrast, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]

        def factors(strength):
            return 1 + strength * (2 * torch.rand(n, c, 1, 1, device=x.device) - 1)

        mean = x.mean(dim=(2, 3), keepdim=True)
        jittered = ((x - mean) * factors(self.contrast) + mean).clamp(0, 1)
        jittered = (jittered * factors(self.brightness)).clamp(0, 1)
        apply = torch.rand(n, 1, 1, 1, device=x.device) < self.p
        return torch.where(apply, jittered, x)


def make_augmentation(
    preset: str | Callable = "natural",
    n_channels: int = 3,
    image_size: tuple[int, int] = (32, 32),
    crop_scale: tuple[float, float] = CROP_SCALE,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the augmentation for a preset name, or ``preset`` itself if callable.

    Parameters
    ----------
    preset
        ``"natural"``, ``"microscopy"``, or a callable mapping a float batch
        ``(N, C, H, W)`` in ``[0, 1]`` to a batch of the same shape.
    n_channels
        Number of image channels ``C``.
    image_size
        ``(H, W)`` of the images; crops are resized back to it.
    crop_scale
        Range of the crop area as a fraction of the image area
        (default :data:`napari_tsimcne.defaults.CROP_SCALE`).
    """
    check_augmentation(preset)
    if callable(preset):
        return preset
    crop = K.RandomResizedCrop(tuple(image_size), scale=tuple(crop_scale))
    if preset == "natural":
        steps = [crop, K.RandomHorizontalFlip()]
        if n_channels == 3:
            steps += [K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2)]
        else:
            steps += [K.ColorJitter(brightness=0.4, contrast=0.4, p=0.8)]
        return nn.Sequential(*steps)
    # "microscopy"
    steps = [crop, K.RandomHorizontalFlip(), K.RandomVerticalFlip()]
    if image_size[0] == image_size[1]:
        steps.append(K.RandomRotation90(times=(0, 3), p=1.0))
    steps.append(RandomChannelIntensity())
    return nn.Sequential(*steps)


def check_augmentation(preset) -> None:
    """``ValueError`` unless ``preset`` names one of :data:`PRESETS` or is a callable."""
    if callable(preset) or (isinstance(preset, str) and preset in PRESETS):
        return
    raise ValueError(
        f"Unknown augmentation {preset!r}. Use one of {PRESETS} or pass a callable that "
        "maps a float tensor (N, C, H, W) in [0, 1] to one of the same shape."
    )
