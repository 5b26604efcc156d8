"""Batched augmentations: shapes, ranges, randomness and the per-channel jitter."""

from __future__ import annotations

import pytest
import torch

from napari_tsimcne.augmentation import PRESETS, RandomChannelIntensity, make_augmentation


def random_batch(n, channels, size=(16, 16), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, *size, generator=generator)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [(16, 16), (12, 20)], ids=["square", "rectangular"])
def test_presets_keep_shape_and_unit_range(preset, channels, size):
    augment = make_augmentation(preset, n_channels=channels, image_size=size)
    x = random_batch(8, channels, size)
    y = augment(x)
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.equal(y, x)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("channels", [1, 3])
def test_copies_of_one_image_in_a_batch_are_augmented_differently(preset, channels):
    augment = make_augmentation(preset, n_channels=channels, image_size=(16, 16))
    x = random_batch(1, channels).repeat(2, 1, 1, 1)
    y = augment(x)
    assert not torch.allclose(y[0], y[1])


@pytest.mark.parametrize("preset", PRESETS)
def test_same_torch_seed_gives_same_augmentation(preset):
    augment = make_augmentation(preset, n_channels=3, image_size=(16, 16))
    x = random_batch(8, 3)
    torch.manual_seed(123)
    first = augment(x)
    torch.manual_seed(123)
    again = augment(x)
    torch.manual_seed(321)
    other = augment(x)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_microscopy_preset_jitters_each_channel_with_its_own_factor(channels):
    # A constant image with equal channels stays constant under crops, flips
    # and rotations; only the intensity jitter can make the channels differ.
    augment = make_augmentation("microscopy", n_channels=channels, image_size=(16, 16))
    y = augment(torch.full((64, channels, 16, 16), 0.5))
    per_channel = y[:, :, 0, 0]
    torch.testing.assert_close(y, per_channel[:, :, None, None].expand_as(y), rtol=0, atol=1e-5)
    channels_differ = (per_channel.max(dim=1).values - per_channel.min(dim=1).values) > 1e-4
    # Jitter is applied with p=0.8; independent factors differ almost surely.
    assert channels_differ.sum() >= 32


def test_channel_intensity_factors_stay_within_strength():
    jitter = RandomChannelIntensity(brightness=0.4, contrast=0.4, p=1.0)
    y = jitter(torch.full((256, 3, 8, 8), 0.5))
    # Contrast does not change a constant channel; brightness scales it by 1 +- 0.4.
    factors = y[:, :, 0, 0] / 0.5
    assert factors.min() >= 0.6 - 1e-6 and factors.max() <= 1.4 + 1e-6
    assert factors.std() > 0.1


def test_channel_intensity_with_probability_zero_is_the_identity():
    x = random_batch(4, 2)
    assert torch.equal(RandomChannelIntensity(p=0.0)(x), x)


def test_unknown_preset_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="Unknown augmentation 'cells'.*natural.*microscopy"):
        make_augmentation("cells", n_channels=1, image_size=(16, 16))


def test_user_callable_is_returned_as_is():
    def my_augmentation(x):
        return x.flip(-1)

    assert make_augmentation(my_augmentation, n_channels=5, image_size=(9, 9)) is my_augmentation
