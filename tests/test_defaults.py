"""Settings derived from the images, shared by the library, the command line and the widget."""

import numpy as np
import pytest

from napari_tsimcne import TSimCNE, devices
from napari_tsimcne.defaults import (
    TRAINING_MEMORY_SHARE, data_defaults, default_augmentation, default_batch_size,
    default_image_size,
)


def test_batch_size_defaults_are_powers_of_two_up_to_the_image_count():
    assert default_batch_size(20, "cpu") == 16
    assert default_batch_size(300, "cpu") == 32  # 9 steps per epoch, not 1
    assert default_batch_size(500, "cpu") == 32
    assert default_batch_size(5000, "cpu") == 64
    assert default_batch_size(100_000, "cpu") == 64
    assert default_batch_size(100_000, "cuda") == 1024
    assert default_batch_size(1, "cpu") == 2


def test_large_square_images_are_shrunk_on_a_cpu_only():
    assert default_image_size(64, 64, "cpu") == 32
    assert default_image_size(28, 28, "cpu") is None
    assert default_image_size(64, 48, "cpu") is None
    assert default_image_size(64, 64, "cuda") is None


def test_images_above_256_px_are_shrunk_on_every_device_keeping_their_aspect():
    assert default_image_size(1024, 1024, "cuda") == 256
    assert default_image_size(1024, 768, "cuda") == (256, 192)
    assert default_image_size(768, 1024, "cpu") == (192, 256)
    assert default_image_size(300, 200, "mps") == (256, 168)  # sides in steps of 8
    assert default_image_size(256, 256, "cuda") is None
    assert default_image_size(1024, 1024, "cpu") == 32


def test_the_default_image_size_is_the_largest_that_fits_in_memory():
    def training_bytes(batch_size, size):  # as memory.training_bytes: linear in the pixels
        return 1000 * batch_size * size[0] * size[1]

    free = 400 * 2**20
    defaults = data_defaults(300, 200, 150, 1, np.uint16, "cuda", memory=free,
                             training_bytes=training_bytes)
    height, width = defaults.image_size
    assert height % 8 == 0 and abs(height / width - 200 / 150) < 0.1
    assert training_bytes(defaults.batch_size, (height, width)) <= TRAINING_MEMORY_SHARE * free
    larger = (height + 8, round((height + 8) * 150 / 200))
    assert training_bytes(defaults.batch_size, larger) > TRAINING_MEMORY_SHARE * free
    # Enough memory: the size rules alone.
    assert data_defaults(300, 200, 150, 1, np.uint16, "cuda", memory=2**40,
                         training_bytes=training_bytes).image_size is None


@pytest.mark.slow
def test_the_estimator_shrinks_images_to_fit_memory_and_says_so(monkeypatch, capsys):
    images = np.random.default_rng(0).integers(0, 255, (40, 64, 48), dtype=np.uint8)
    monkeypatch.setattr(devices, "free_memory", lambda device: 30 * 2**20)
    model = TSimCNE(epochs=(1,), backbone="resnet10-w8", device="cpu", verbose=True,
                    random_state=0).fit(images)
    assert model.image_shape_ == (32, 24, 1)
    assert "40 images (64×48 px resized to 32×24 px, 1 channel(s))" in capsys.readouterr().err


def test_training_that_does_not_fit_in_memory_is_refused_before_it_starts(monkeypatch):
    images = np.zeros((40, 16, 16), np.uint8)
    monkeypatch.setattr(devices, "free_memory", lambda device: 2**30)
    with pytest.raises(ValueError, match=(
            r"Training resnet10-w8 on batches of 16 images of 1024×1024 px needs about "
            r"[\d.]+ GiB of memory, but only 1\.0 GiB are free on cpu\. Train on smaller "
            r"images, e.g\. image_size=(\d+) \(--image-size \1\), or on smaller batches")):
        TSimCNE(epochs=(1,), batch_size=16, image_size=1024, backbone="resnet10-w8",
                device="cpu").fit(images)


@pytest.mark.parametrize("n_channels, dtype, preset", [
    (3, np.uint8, "natural"), (4, np.uint8, "natural"),
    (1, np.uint8, "microscopy"), (1, np.uint16, "microscopy"),
    (3, np.uint16, "microscopy"), (2, np.uint8, "microscopy"),
])
def test_colour_photographs_get_the_natural_augmentation_and_the_rest_microscopy(
        n_channels, dtype, preset):
    assert default_augmentation(n_channels, dtype) == preset


def test_data_defaults_combine_the_rules():
    defaults = data_defaults(300, 100, 100, 3, np.uint8, "cpu")
    assert (defaults.batch_size, defaults.image_size, defaults.augmentation) == (
        32, 32, "natural")


@pytest.mark.slow
def test_the_estimator_resolves_auto_with_the_same_rules_and_records_its_seed(tmp_path):
    images = np.random.default_rng(0).integers(0, 65535, (300, 12, 12), dtype=np.uint16)
    model = TSimCNE(epochs=(1, 1, 1), backbone="resnet10-w8", device="cpu").fit(images)
    expected = data_defaults(300, 12, 12, 1, np.uint16, "cpu")
    assert model.batch_size_ == expected.batch_size == 32
    assert model.augmentation_ == expected.augmentation == "microscopy"
    assert model.image_shape_ == (12, 12, 1)
    assert isinstance(model.random_state_, int)
    # The recorded seed repeats the run, and survives saving.
    again = TSimCNE(epochs=(1, 1, 1), backbone="resnet10-w8", device="cpu",
                    random_state=model.random_state_).fit(images)
    np.testing.assert_array_equal(again.embedding_, model.embedding_)
    loaded = TSimCNE.load(model.save(tmp_path / "model.pt"))
    assert (loaded.random_state_, loaded.batch_size_, loaded.augmentation_) == (
        model.random_state_, 32, "microscopy")
    assert loaded.checkpoint_folder_ is None


def test_an_explicit_int_seed_is_the_recorded_one():
    images = np.random.default_rng(1).integers(0, 255, (40, 8, 8), dtype=np.uint8)
    model = TSimCNE(epochs=(1,), batch_size=8, backbone="resnet10-w8", device="cpu",
                    random_state=7).fit(images)
    assert model.random_state_ == 7
    assert model.batch_size_ == 8


def test_a_batch_size_that_is_neither_int_nor_auto_is_refused():
    images = np.zeros((40, 8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match="integer >= 2 or 'auto'"):
        TSimCNE(batch_size="big").fit(images)
