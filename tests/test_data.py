"""Input forms, intensity ranges and input validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch.utils.data import Dataset, TensorDataset

from napari_tsimcne import data
from napari_tsimcne.data import as_image_stack, fit_intensity_range, to_uint8_tensor

FIT = dict(epochs=(1,), batch_size=4)


class PlainImages(Dataset):
    """A dataset whose items are bare images, not (image, label) tuples."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index]


def _rng(seed=0):
    return np.random.default_rng(seed)


def sized_list(sizes, channels=None, seed=0):
    shape = (lambda h, w: (h, w)) if channels is None else (lambda h, w: (h, w, channels))
    return [_rng(seed + i).integers(0, 256, shape(h, w), dtype=np.uint8) for i, (h, w) in
            enumerate(sizes)]


# --------------------------------------------------------------------------
# Accepted inputs

ARRAY_INPUTS = {
    "uint8 (N,H,W)": lambda: _rng().integers(0, 256, (8, 16, 16), dtype=np.uint8),
    "uint16 (N,H,W,2)": lambda: _rng().integers(0, 4096, (8, 16, 12, 2), dtype=np.uint16),
    "float32 (N,H,W,3)": lambda: _rng().random((8, 12, 16, 3), dtype=np.float32),
    "float64 (N,H,W,4)": lambda: _rng().normal(size=(8, 10, 10, 4)),
    "bool (N,H,W)": lambda: _rng().random((8, 16, 16)) > 0.5,
    "int32 (N,H,W)": lambda: _rng().integers(-50, 50, (8, 9, 16), dtype=np.int32),
    "torch uint8 tensor (N,H,W)": lambda: torch.randint(0, 256, (8, 16, 16), dtype=torch.uint8),
}


@pytest.mark.parametrize("make_input", ARRAY_INPUTS.values(), ids=ARRAY_INPUTS.keys())
def test_array_stacks_of_all_dtypes_are_accepted(make_estimator, make_input):
    X = make_input()
    n, h, w = X.shape[:3]
    channels = X.shape[3] if X.ndim == 4 else 1
    estimator = make_estimator(**FIT).fit(X)
    assert estimator.image_shape_ == (h, w, channels)
    assert estimator.intensity_range_.shape == (channels, 2)
    assert estimator.embedding_.shape == (n, 2)
    assert np.isfinite(estimator.embedding_).all()


@pytest.mark.parametrize("images, image_size, expected_shape", [
    (sized_list([(12, 12), (16, 20), (20, 24), (16, 16), (30, 10)]), None, (16, 16, 1)),
    (sized_list([(12, 10), (16, 20), (20, 24)], channels=3), None, (16, 20, 3)),
    (tuple(sized_list([(12, 12), (16, 20), (9, 9)])), (10, 14), (10, 14, 1)),
    (sized_list([(12, 12), (16, 20), (9, 9)]), 12, (12, 12, 1)),
], ids=["2-D, median size", "3-D, median size", "tuple, image_size pair", "image_size int"])
def test_lists_of_differently_sized_images_are_resized(make_estimator, images, image_size,
                                                      expected_shape):
    estimator = make_estimator(epochs=(1,), batch_size=2, image_size=image_size).fit(images)
    assert estimator.image_shape_ == expected_shape
    assert estimator.embedding_.shape == (len(images), 2)


def test_resizing_keeps_a_constant_image_constant():
    stack = as_image_stack([np.full((12, 20), 100, np.uint8), np.full((30, 30), 7, np.uint8)])
    out = to_uint8_tensor(stack, fit_intensity_range(stack), (16, 16))
    assert out.shape == (2, 1, 16, 16)
    assert (out[0] == 100).all() and (out[1] == 7).all()


def test_median_size_of_differently_sized_images():
    stack = as_image_stack(sized_list([(10, 40), (20, 30), (30, 8), (12, 12)]))
    assert stack.common_size() == (16, 21)  # medians 16 and 21 (20.99... rounds to 21)


def test_list_of_equal_images_gives_the_same_model_as_the_array(make_estimator, images):
    from_array = make_estimator(**FIT).fit(images[:8])
    from_list = make_estimator(**FIT).fit(list(images[:8]))
    np.testing.assert_array_equal(from_list.embedding_, from_array.embedding_)


@pytest.mark.parametrize("make_dataset", [
    lambda x: TensorDataset(torch.from_numpy(x).permute(0, 3, 1, 2), torch.arange(len(x))),
    lambda x: PlainImages(torch.from_numpy(x).permute(0, 3, 1, 2)),
    lambda x: PlainImages(list(x)),
], ids=["(C,H,W) tensor and label", "plain (C,H,W) tensors", "plain (H,W,C) arrays"])
def test_torch_datasets_give_the_same_model_as_the_array(make_estimator, make_dataset):
    X = _rng().integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    from_array = make_estimator(**FIT).fit(X)
    from_dataset = make_estimator(**FIT).fit(make_dataset(X))
    assert from_dataset.image_shape_ == (16, 16, 3)
    np.testing.assert_array_equal(from_dataset.embedding_, from_array.embedding_)


def test_dataset_of_2d_tensors_is_read_as_single_channel_images():
    X = torch.randint(0, 256, (5, 12, 12), dtype=torch.uint8)
    stack = as_image_stack(PlainImages(X))
    assert stack.n_channels == 1
    np.testing.assert_array_equal(np.stack(stack.images)[..., 0], X.numpy())


def test_memory_mapped_stack_converts_like_the_array_in_chunks(tmp_path, monkeypatch):
    X = _rng().integers(0, 65535, (10, 12, 12, 2), dtype=np.uint16)
    np.save(tmp_path / "stack.npy", X)
    mapped = np.load(tmp_path / "stack.npy", mmap_mode="r")
    stack = as_image_stack(X)
    intensity_range = fit_intensity_range(stack)
    whole = to_uint8_tensor(stack, intensity_range, (12, 12))
    monkeypatch.setattr(data, "CHUNK_SIZE", 3)
    chunked = to_uint8_tensor(as_image_stack(mapped), intensity_range, (12, 12))
    assert torch.equal(chunked, whole)
    partial = to_uint8_tensor(stack, intensity_range, (12, 12), start=4, stop=9)
    assert torch.equal(partial, whole[4:9])


def test_large_images_are_converted_in_chunks_of_bounded_size(monkeypatch):
    X = _rng().integers(0, 65535, (10, 12, 12, 2), dtype=np.uint16)
    stack = as_image_stack(X)
    intensity_range = fit_intensity_range(stack)
    whole = to_uint8_tensor(stack, intensity_range, (12, 12))
    monkeypatch.setattr(data, "CHUNK_VALUES", 3 * 12 * 12 * 2)  # three images' values
    chunks = []
    real_groups = data._same_size_groups
    monkeypatch.setattr(data, "_same_size_groups", lambda images: chunks.append(len(images))
                        or real_groups(images))
    assert torch.equal(to_uint8_tensor(stack, intensity_range, (12, 12)), whole)
    assert chunks == [3, 3, 3, 1]


def test_intensity_ranges_of_large_images_come_from_a_bounded_pixel_sample(monkeypatch):
    X = _rng().integers(0, 4096, (8, 128, 128), dtype=np.uint16)
    exact = fit_intensity_range(as_image_stack(X))
    monkeypatch.setattr(data, "RANGE_SAMPLE_PIXELS", 8 * 2048)  # an eighth of the pixels
    sampled = fit_intensity_range(as_image_stack(X))
    np.testing.assert_allclose(sampled, exact, atol=0.01 * 4096)
    assert not np.array_equal(sampled, exact)  # a sample, not all pixels
    np.testing.assert_array_equal(fit_intensity_range(as_image_stack(X)), sampled)  # the same


def test_list_of_mixed_sizes_keeps_image_order_across_chunks(monkeypatch):
    images = sized_list([(12, 12), (12, 12), (16, 16), (12, 12), (16, 16), (16, 16), (9, 9)])
    stack = as_image_stack(images)
    intensity_range = fit_intensity_range(stack)
    one_by_one = torch.cat([to_uint8_tensor(as_image_stack([image]), intensity_range, (14, 14))
                            for image in images])
    monkeypatch.setattr(data, "CHUNK_SIZE", 4)
    assert torch.equal(to_uint8_tensor(stack, intensity_range, (14, 14)), one_by_one)


# --------------------------------------------------------------------------
# Intensity ranges


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int16])
def test_intensity_range_is_per_channel_percentiles(dtype):
    rng = _rng(1)
    X = np.stack([rng.integers(100, 1100, (20, 10, 10)), rng.integers(0, 30000, (20, 10, 10))],
                 axis=-1).astype(dtype)
    intensity_range = fit_intensity_range(as_image_stack(X))
    for channel in range(2):
        expected = np.percentile(X[..., channel].astype(np.float64), [0.1, 99.9])
        np.testing.assert_allclose(intensity_range[channel], expected)


@pytest.mark.parametrize("X, expected", [
    (np.zeros((2, 8, 8, 3), np.uint8), [[0, 255]] * 3),
    (np.zeros((2, 8, 8), bool), [[0, 1]]),
])
def test_intensity_range_of_uint8_and_bool_is_their_full_range(X, expected):
    np.testing.assert_array_equal(fit_intensity_range(as_image_stack(X)), expected)


def test_intensity_mapping_clips_to_the_range_and_maps_constant_channels_to_zero():
    X = np.zeros((3, 8, 8, 2), np.float32)
    X[..., 0] = np.linspace(0, 1000, 64).reshape(8, 8)
    X[..., 1] = 42.0
    stack = as_image_stack(X)
    intensity_range = fit_intensity_range(stack)
    assert intensity_range[1].tolist() == [42.0, 43.0]
    low, high = intensity_range[0]
    out = to_uint8_tensor(stack, intensity_range, (8, 8)).numpy()
    expected = np.round(np.clip((X[..., 0] - low) / (high - low), 0, 1) * 255)
    np.testing.assert_array_equal(out[:, 0], expected)
    assert out[:, 0].min() == 0 and out[:, 0].max() == 255
    assert (out[:, 1] == 0).all()


def test_transform_warns_when_new_images_lie_far_outside_the_training_range(fitted, images):
    # fitted was trained on uint8 images: floats in [0, 1] map to one grey
    # level, raw 16-bit values are clipped to white.
    with pytest.warns(UserWarning, match=r"far outside the intensity range of the training "
                      r"images: in channel 0 their pixels run from 0 to 1 \(.*maps 0 to black "
                      "and 255 to white, so nearly all their pixels map to one grey") as caught:
        fitted.transform(images[:8] / 255)
    assert caught[0].filename == __file__  # where transform was called
    with pytest.warns(UserWarning, match="most of their pixels are clipped to black or white"):
        fitted.transform(images[:8].astype(np.uint16) * 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.transform(images[:8])  # the training images
        fitted.transform(np.full((4, 16, 16), 20, np.uint8))  # blank images, within the range
        fitted.transform(np.zeros((4, 16, 16), np.uint8))  # black ones


@pytest.fixture(scope="module")
def uint16_model(images, fitted):
    # A 12-bit camera in a 16-bit file: two channels with different ranges,
    # and images of different exposure (factors 2 to 16).
    factor = (2 + 2 * (np.arange(len(images)) % 8))[:, None, None].astype(np.uint16)
    X = np.stack([images * factor, 4095 - images * (factor // 2)], axis=-1)
    return X, clone(fitted).set_params(epochs=(1,)).fit(X)


def test_uint16_intensity_range_is_fitted_per_channel(uint16_model):
    X, estimator = uint16_model
    np.testing.assert_allclose(estimator.intensity_range_, fit_intensity_range(as_image_stack(X)))
    assert estimator.intensity_range_[0, 1] > 3000 and estimator.intensity_range_[1, 0] > 2000


def test_transform_maps_intensities_with_the_fitted_range(uint16_model):
    X, estimator = uint16_model
    # The dimmest images have narrower percentiles of their own; transform
    # must still use the training range and reproduce their training embedding.
    dimmest = np.arange(0, len(X), 8)[:5]
    subset = X[dimmest]
    assert not np.allclose(fit_intensity_range(as_image_stack(subset)), estimator.intensity_range_)
    np.testing.assert_allclose(estimator.transform(subset), estimator.embedding_[dimmest],
                               atol=1e-5)

    # transform(x) is the network applied to clip((x - low) / (high - low), 0, 1).
    low, high = estimator.intensity_range_[:, 0], estimator.intensity_range_[:, 1]
    scaled = np.round(np.clip((subset - low) / (high - low), 0, 1) * 255) / 255
    with torch.no_grad():
        expected = estimator.model_.network(torch.from_numpy(scaled).float().permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(estimator.transform(subset), expected, atol=1e-5)


# --------------------------------------------------------------------------
# Rejected inputs

ONE_IMAGE = np.zeros((16, 16), np.uint8)


def with_value_at(index, value, n=8):
    X = _rng().random((n, 16, 16))
    X[index, 3, 5] = value
    return X


BAD_INPUTS = {
    "empty array": (np.zeros((0, 16, 16), np.uint8), ValueError,
                    r"X is empty \(shape \(0, 16, 16, 1\)\)"),
    "empty list": ([], ValueError, "X is an empty list"),
    "empty dataset": (PlainImages([]), ValueError, "X is an empty dataset"),
    "single image": (ONE_IMAGE[None], ValueError, r"holds 1 image\(s\), but at least 2"),
    "2-D array": (ONE_IMAGE, ValueError, r'shape \(16, 16\).*axes="YX"'),
    "1-D array": (np.zeros(16), ValueError, r"shape \(16,\); expected a stack of images"),
    "5-D array": (np.zeros((4, 2, 16, 16, 1)), ValueError,
                  r"shape \(4, 2, 16, 16, 1\); expected a stack.*one letter per axis"),
    "channels first": (np.zeros((4, 3, 16, 16)), ValueError,
                       r'axes="NCYX" \(channels first: 4 images of 16×16 px with 3 channels\)'),
    "channels first, one channel": (np.zeros((4, 1, 16, 16)), ValueError,
                                    r'axes="NCYX" \(channels first: 4 images of 16×16 px\)'),
    "NaN": (with_value_at(5, np.nan), ValueError, "Image 5 of X contains NaN or infinite values"),
    "inf": (with_value_at(2, np.inf), ValueError, "Image 2 of X contains NaN or infinite values"),
    "-inf in a list": (list(with_value_at(6, -np.inf)), ValueError, "Image 6 of X contains NaN"),
    "complex": (np.zeros((4, 16, 16), complex), TypeError,
                "dtype complex128; images must be bool, integer or float"),
    "object": (np.empty((4, 16, 16), object), TypeError, "dtype object; images must be"),
    "strings": (np.full((4, 16, 16), "a"), TypeError, "dtype <U1"),
    "object image in a list": ([ONE_IMAGE, ONE_IMAGE.astype(object)], TypeError,
                               "image 1 of X has dtype object"),
    "too small": (np.zeros((4, 6, 9), np.uint8), ValueError,
                  r"Image 0 of X is 6x9 pixels.*at least 8x8"),
    "one small image in a list": ([ONE_IMAGE, ONE_IMAGE, np.zeros((16, 7), np.uint8)],
                                  ValueError, "Image 2 of X is 16x7 pixels"),
    "different channel counts": ([ONE_IMAGE, np.zeros((16, 16, 3), np.uint8)], ValueError,
                                 r"different channel counts \[1, 3\]"),
    "4-D image in a list": ([ONE_IMAGE, np.zeros((2, 16, 16, 1))], ValueError,
                            r"Image 1 of X has shape \(2, 16, 16, 1\)"),
    "channels-first image in a list": ([np.zeros((8, 16, 16), np.uint8)] * 2, ValueError,
                                       r"Image 0 of X has shape \(8, 16, 16\): its last axis "
                                       r"\(16\) is too long.*np\.moveaxis\(image, 0, -1\)"),
    "8-bit and 16-bit images in a list": (
        [ONE_IMAGE, ONE_IMAGE, ONE_IMAGE.astype(np.uint16)], ValueError,
        r"mix intensity scales: image 0 holds 8-bit integers \(uint8\) but image 2 holds "
        r"16-bit integers \(uint16\).*astype\(np\.uint16\) \* 257"),
    "stack of volumes": (np.zeros((4, 16, 16, 16)), ValueError,
                         r'axes="NYXC" \(channels last.*axes="NZYX" \(every plane an image: '
                         "64 images"),
    "axes that are not a layout": ((np.zeros((4, 16, 16)), "NYC"), ValueError,
                                   r'axes="NYC" is not a layout: Y and X'),
    "axes of another length": ((np.zeros((4, 16, 16)), "NCYX"), ValueError,
                               r'axes="NCYX" names 4 axes, but X has 3 \(shape \(4, 16, 16\)\)'),
}


@pytest.mark.parametrize("X, error, message", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_fit_rejects_bad_input_naming_the_problem(make_estimator, X, error, message):
    X, axes = X if isinstance(X, tuple) and isinstance(X[1], str) else (X, "auto")
    with pytest.raises(error, match=message):
        make_estimator(batch_size=2, axes=axes).fit(X)


# --------------------------------------------------------------------------
# Layouts: axes


def test_axes_read_channels_first_as_the_channels_last_array(make_estimator, tmp_path):
    channels_last = _rng().integers(0, 256, (8, 16, 12, 6), dtype=np.uint8)
    channels_first = np.ascontiguousarray(np.moveaxis(channels_last, -1, 1))
    reference = make_estimator(**FIT).fit(channels_last)
    model = make_estimator(**FIT, axes="NCYX").fit(channels_first)
    assert model.image_shape_ == (16, 12, 6)
    np.testing.assert_array_equal(model.embedding_, reference.embedding_)
    # Saved with the model, and the layout transform reads by default.
    loaded = type(model).load(model.save(tmp_path / "model.pt"))
    assert loaded.axes == "NCYX"
    np.testing.assert_allclose(loaded.transform(channels_first[:3]), reference.embedding_[:3],
                               atol=1e-5)
    np.testing.assert_allclose(loaded.transform(channels_last[:3], axes="NYXC"),
                               reference.embedding_[:3], atol=1e-5)


def test_axes_take_planes_as_images_or_as_channels(make_estimator):
    # Channels between the axes of images, which cannot be merged without a copy.
    stack = _rng().integers(0, 256, (2, 3, 4, 16, 16), dtype=np.uint8)  # (T, C, Z, Y, X)
    planes = as_image_stack(stack, axes="TCZYX")
    assert (len(planes), planes.n_channels) == (8, 3)
    expected = np.moveaxis(stack, 1, -1).reshape(8, 16, 16, 3)
    np.testing.assert_array_equal(planes.chunk(0, 8), expected)
    np.testing.assert_array_equal(planes.take(np.array([1, 6])).images, expected[[1, 6]])
    as_channels = as_image_stack(stack[:, 0], axes="TCYX")  # the 4 planes as channels
    assert (len(as_channels), as_channels.n_channels) == (2, 4)
    np.testing.assert_array_equal(as_channels.chunk(0, 2), np.moveaxis(stack[:, 0], 1, -1))
    # The images follow the array's order of its image axes, whatever their letters.
    transposed = as_image_stack(np.swapaxes(stack[:, 0], -1, -2), axes="ZNXY")
    np.testing.assert_array_equal(transposed.chunk(0, 8)[..., 0], stack[:, 0].reshape(8, 16, 16))
    model = make_estimator(**FIT, axes="TZYX").fit(stack[:, 0])
    assert model.embedding_.shape == (8, 2) and model.image_shape_ == (16, 16, 1)


def test_too_small_images_are_rejected_even_with_image_size(make_estimator):
    # image_size resizes valid images; it cannot rescue images the backbone
    # cannot use, so the error must not recommend it.
    with pytest.raises(ValueError, match="at least 8x8") as error:
        make_estimator(batch_size=2, image_size=16).fit(np.zeros((4, 6, 6), np.uint8))
    assert "image_size" not in str(error.value)


def test_transform_rejects_nan_naming_the_image(fitted):
    X = np.zeros((300, 16, 16), np.float32)  # more than one inference batch
    X[270, 0, 0] = np.nan
    with pytest.raises(ValueError, match="Image 270 of X contains NaN"):
        fitted.transform(X)
