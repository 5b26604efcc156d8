"""Property-based tests of the input path: validation, intensity ranges, uint8 mapping.

Every input is either accepted and mapped as the module docstring of
:mod:`napari_tsimcne.data` documents (uint8 by 0..255, bool by 0..1, other
dtypes by the per-channel 0.1/99.9 percentiles, clamped to [0, 1], constant
channels to 0), or refused with a ``TypeError``/``ValueError`` naming the
problem.  numpy's ``RuntimeWarning`` (overflow, invalid value) is an error
here: the input path must not compute garbage on the way.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import FAST_PARAMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch.utils.data import Dataset

from napari_tsimcne import TSimCNE
from napari_tsimcne.backbones import MIN_IMAGE_SIZE
from napari_tsimcne.data import (
    PERCENTILES,
    as_image_stack,
    fit_intensity_range,
    to_uint8_tensor,
)

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)

DTYPES = [np.dtype(d) for d in (bool, np.uint8, np.uint16, np.int32, np.float16, np.float32,
                                np.float64)]
FLOAT_DTYPES = [np.dtype(d) for d in (np.float16, np.float32, np.float64)]
SIDES = st.integers(MIN_IMAGE_SIZE, 12)
CHANNELS = st.sampled_from([None, 1, 2, 3, 4])  # None: (N, H, W)
F64_MAX = float(np.finfo(np.float64).max)


# --------------------------------------------------------------------------
# Strategies


@st.composite
def elements(draw, dtype):
    """Values of ``dtype``; floats within a drawn bound from 1 up to the dtype's maximum."""
    if dtype.kind != "f":
        return hnp.from_dtype(dtype)
    finfo = np.finfo(dtype)
    bound = draw(st.sampled_from([1.0, 1e4, 1e30, 1e300, float(finfo.max)]))
    bound = float(dtype.type(min(bound, float(finfo.max))))  # representable in dtype
    return st.floats(-bound, bound, width=finfo.bits, allow_nan=False, allow_infinity=False,
                     allow_subnormal=False)


@st.composite
def image_stacks(draw, dtypes=DTYPES, max_images=4):
    """Finite ``(N, H, W)`` or ``(N, H, W, C)`` arrays: random, constant, or identical images."""
    dtype = draw(st.sampled_from(dtypes))
    n, h, w, c = draw(st.integers(1, max_images)), draw(SIDES), draw(SIDES), draw(CHANNELS)
    shape = (n, h, w) if c is None else (n, h, w, c)
    values = draw(elements(dtype))
    kind = draw(st.sampled_from(["random", "random", "constant", "identical", "constant images"]))
    if kind == "random":
        return draw(hnp.arrays(dtype, shape, elements=values))
    if kind == "constant":
        return np.full(shape, draw(values), dtype)
    if kind == "identical":
        image = draw(hnp.arrays(dtype, shape[1:], elements=values))
        return np.repeat(image[None], n, axis=0)
    levels = np.array(draw(st.lists(values, min_size=n, max_size=n)), dtype)
    return np.broadcast_to(levels.reshape((n,) + (1,) * (len(shape) - 1)), shape).copy()


class LazyImages:
    """An array-like that is read on indexing, like a zarr or h5py dataset."""

    def __init__(self, array):
        self._array = array
        self.shape = array.shape
        self.dtype = array.dtype

    def __getitem__(self, key):
        return self._array[key].copy()


class ImageDataset(Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], index


# --------------------------------------------------------------------------
# Independent reference of the documented mapping


def _channels_first(X):
    """``(N, C, H, W)`` view of an ``(N, H, W[, C])`` array."""
    return np.moveaxis(X if X.ndim == 4 else X[..., None], -1, 1)


#: Extended precision where the platform has it; otherwise float64 values divided
#: by 4 (exact for normal numbers), so that differences of float64 values cannot overflow.
_EXTENDED = np.finfo(np.longdouble).maxexp > np.finfo(np.float64).maxexp
_EXACT_SCALE = 1 if _EXTENDED else 4


def _exact(x):
    """``x / _EXACT_SCALE`` in a float type where differences of float64 values stay finite."""
    if _EXTENDED:
        return np.asarray(x, dtype=np.longdouble)
    return np.asarray(x, dtype=np.float64) / _EXACT_SCALE


def expected_unit(x, low, high):
    """``clip((x - low) / (high - low), 0, 1)`` computed without overflow."""
    if not high > low:  # only a constant channel at the largest float64
        return np.zeros(np.shape(x))
    x, low, high = _exact(x), _exact(low), _exact(high)
    return np.clip((x - low) / (high - low), 0, 1).astype(np.float64)


def expected_range(pixels_by_channel):
    """The documented (low, high) percentiles of each channel (rows: pixels, columns: channels)."""
    percentiles = np.percentile(_exact(pixels_by_channel), PERCENTILES, axis=0)
    return (percentiles.astype(np.float64) * _EXACT_SCALE).T


def check_intensity_range(intensity_range, pixels_by_channel, dtypes):
    """``intensity_range`` is the documented range for pixels of ``dtypes``."""
    n_channels = pixels_by_channel.shape[1]
    assert intensity_range.shape == (n_channels, 2)
    assert intensity_range.dtype == np.float64
    assert np.isfinite(intensity_range).all()
    if dtypes == {np.dtype(np.uint8)}:
        np.testing.assert_array_equal(intensity_range, [[0, 255]] * n_channels)
        return
    if dtypes == {np.dtype(bool)}:
        np.testing.assert_array_equal(intensity_range, [[0, 1]] * n_channels)
        return
    expected = expected_range(pixels_by_channel)
    for (low, high), (expected_low, expected_high) in zip(intensity_range, expected):
        tolerance = 1e-12 * max(abs(expected_low), abs(expected_high))
        assert abs(low - expected_low) <= tolerance, (low, expected_low)
        if expected_low < expected_high:
            assert abs(high - expected_high) <= tolerance, (high, expected_high)
        else:  # a constant channel gets a range starting at its value, so that it maps to 0
            assert high > low or low == F64_MAX, (low, high)


def check_mapping(out, X_first, intensity_range, dtypes):
    """uint8 ``out`` (N, C, H, W) is the documented mapping of same-sized ``X_first``.

    ``dtypes``: those of all the images the range was fitted on.
    """
    assert out.dtype == torch.uint8
    assert tuple(out.shape) == X_first.shape
    out = out.numpy().astype(np.float64)
    for c, (low, high) in enumerate(intensity_range):
        x, y = X_first[:, c].ravel(), out[:, c].ravel()
        if dtypes == {np.dtype(np.uint8)}:
            np.testing.assert_array_equal(y, x)
        if dtypes == {np.dtype(bool)}:
            np.testing.assert_array_equal(y, 255 * x)
        expected = 255 * expected_unit(x, low, high)
        assert np.abs(y - expected).max() <= 0.65, (c, low, high)
        # Monotone: a brighter pixel never becomes darker, equal pixels stay equal.
        order = np.lexsort((y, x))
        x_sorted, y_sorted = x[order], y[order]
        assert (np.diff(y_sorted) >= 0).all()
        same = x_sorted[1:] == x_sorted[:-1]
        np.testing.assert_array_equal(y_sorted[1:][same], y_sorted[:-1][same])
        # Pixels at or below the 0.1 percentile are black, at or above the 99.9th white.
        assert (y[x <= low] == 0).all()
        assert (y[x >= high] == 255).all()


def run_pipeline(X, image_size=None):
    stack = as_image_stack(X)
    intensity_range = fit_intensity_range(stack)
    size = stack.common_size() if image_size is None else image_size
    return stack, intensity_range, to_uint8_tensor(stack, intensity_range, size)


# --------------------------------------------------------------------------
# Arrays of every dtype, shape and value range


@pytest.mark.slow
@SETTINGS
@given(X=image_stacks(), form=st.sampled_from(["array", "lazy", "list"]))
def test_finite_arrays_are_mapped_as_documented(X, form):
    n, h, w = X.shape[:3]
    c = X.shape[3] if X.ndim == 4 else 1
    source = {"array": X, "lazy": LazyImages(X), "list": list(X)}[form]
    stack, intensity_range, out = run_pipeline(source)
    assert (len(stack), stack.n_channels, stack.common_size()) == (n, c, (h, w))
    X_first = _channels_first(X)
    pixels = np.moveaxis(X_first, 1, -1).reshape(-1, c)
    check_intensity_range(intensity_range, pixels, {X.dtype})
    check_mapping(out, X_first, intensity_range, {X.dtype})


@SETTINGS
@given(X=image_stacks(), height=st.integers(8, 20), width=st.integers(8, 20))
def test_resized_images_stay_within_the_range_of_their_mapped_pixels(X, height, width):
    stack, intensity_range, same_size = run_pipeline(X)
    resized = to_uint8_tensor(stack, intensity_range, (height, width))
    assert resized.dtype == torch.uint8
    assert tuple(resized.shape) == (len(X), stack.n_channels, height, width)
    # Bilinear interpolation with antialiasing averages: no new extremes (up to rounding),
    # so constant images stay constant.
    low = same_size.flatten(2).min(dim=2).values[..., None, None].int()
    high = same_size.flatten(2).max(dim=2).values[..., None, None].int()
    assert ((resized.int() >= low - 1) & (resized.int() <= high + 1)).all()


@SETTINGS
@given(X=image_stacks(dtypes=FLOAT_DTYPES), data=st.data())
def test_non_finite_values_are_refused_naming_the_first_bad_image(X, data):
    n_bad = data.draw(st.integers(1, X.size), label="n_bad")
    flat = data.draw(st.lists(st.integers(0, X.size - 1), min_size=1, max_size=min(n_bad, 20),
                              unique=True), label="positions")
    values = data.draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), min_size=len(flat),
                                max_size=len(flat)), label="values")
    if data.draw(st.booleans(), label="all non-finite"):
        flat = list(range(X.size))
        values = [values[0]] * X.size
    X = X.copy()
    X.reshape(-1)[flat] = values
    first = min(np.unravel_index(flat, X.shape)[0])
    source = data.draw(st.sampled_from(["array", "list"]), label="form")
    source = X if source == "array" else list(X)
    stack = as_image_stack(source)
    intensity_range = fit_intensity_range(stack)  # ignores non-finite values
    assert np.isfinite(intensity_range).all()
    low, high = intensity_range.T
    assert ((high > low) | (low == F64_MAX)).all()
    with pytest.raises(ValueError, match=f"Image {first} of X contains NaN or infinite values"):
        to_uint8_tensor(stack, intensity_range, stack.common_size())


@pytest.mark.parametrize("value, dtype", [
    (F64_MAX, np.float64), (-F64_MAX, np.float64), (1e300, np.float64), (1e17, np.float64),
    (-3e38, np.float32), (65504, np.float16), (-(2**31), np.int32), (2**31 - 1, np.int32),
    (65535, np.uint16), (255, np.uint8), (True, bool),
])
@pytest.mark.parametrize("channels", [None, 3])
def test_constant_stacks_map_to_black_or_their_fixed_level(value, dtype, channels):
    X = np.full((3, 9, 10) if channels is None else (3, 9, 10, channels), value, dtype)
    stack, intensity_range, out = run_pipeline(X)
    assert np.isfinite(intensity_range).all()
    expected = {np.dtype(np.uint8): value, np.dtype(bool): 255}.get(np.dtype(dtype), 0)
    assert (out == expected).all()
    assert tuple(out.shape) == (3, channels or 1, 9, 10)
    resized = to_uint8_tensor(stack, intensity_range, (16, 12))
    assert (resized == expected).all()


# --------------------------------------------------------------------------
# Shapes and layouts


@settings(SETTINGS, max_examples=30)
@given(dtype=st.sampled_from(DTYPES), n=st.integers(1, 4), c=st.integers(1, 16),
       h=st.integers(32, 48), w=st.integers(32, 48))
def test_channels_first_arrays_are_refused_offering_both_readings_and_read_with_axes(
        dtype, n, c, h, w):
    # A ramp, so that a wrong order of axes shows.
    X = (np.arange(n * c * h * w) % 251).reshape(n, c, h, w).astype(dtype)
    with pytest.raises(ValueError, match=re.escape(f"shape {X.shape}") + r".*" + re.escape(
            f'axes="NCYX" (channels first: {n} image') + r".*" + re.escape(
            f'axes="NZYX" (every plane an image: {n * c} image')):
        as_image_stack(X)
    stack = as_image_stack(X, axes="NCYX")
    assert (len(stack), stack.n_channels, stack.common_size()) == (n, c, (h, w))
    np.testing.assert_array_equal(stack.chunk(0, n), np.moveaxis(X, 1, -1))
    planes = as_image_stack(X, axes="NZYX")
    assert (len(planes), planes.n_channels) == (n * c, 1)
    np.testing.assert_array_equal(planes.chunk(0, n * c)[..., 0], X.reshape(n * c, h, w))


@settings(SETTINGS, max_examples=30)
@given(dtype=st.sampled_from(DTYPES), h=st.integers(8, 32), w=st.integers(8, 32),
       c=st.integers(1, 4))
def test_single_images_are_refused_with_a_hint(dtype, h, w, c):
    with pytest.raises(ValueError, match=re.escape(f"shape {(h, w)}") + '.*axes="YX"'):
        as_image_stack(np.zeros((h, w), dtype))
    with pytest.raises(ValueError, match=re.escape(f"shape {(h, w, c)}") + '.*axes="YXC"'):
        as_image_stack(np.zeros((h, w, c), dtype))
    assert len(as_image_stack(np.zeros((h, w, c), dtype), axes="YXC")) == 1


@settings(SETTINGS, max_examples=30)
@given(shape=st.one_of(
    st.just(()), hnp.array_shapes(min_dims=1, max_dims=1, max_side=16),
    hnp.array_shapes(min_dims=5, max_dims=6, min_side=1, max_side=3),
))
def test_arrays_of_other_dimensions_are_refused_naming_the_shape(shape):
    with pytest.raises(ValueError, match=re.escape(f"shape {shape}") + ".*expected a stack"):
        as_image_stack(np.zeros(shape, np.float32))


@settings(SETTINGS, max_examples=30)
@given(shape=hnp.array_shapes(min_dims=3, max_dims=4, min_side=0, max_side=10).filter(
    lambda s: 0 in s), form=st.sampled_from(["array", "list"]))
def test_inputs_with_a_zero_size_dimension_are_refused(shape, form):
    X = np.zeros(shape, np.uint8)
    with pytest.raises(ValueError, match=r"empty|0 channels|pixels|shape") as error:
        as_image_stack(X if form == "array" else list(X))
    assert str(error.value).startswith(("X ", "Image ", "The images of X"))


def test_empty_lists_and_datasets_are_refused():
    with pytest.raises(ValueError, match="X is an empty list"):
        as_image_stack([])
    with pytest.raises(ValueError, match="X is an empty list"):
        as_image_stack(())
    with pytest.raises(ValueError, match="X is an empty dataset"):
        as_image_stack(ImageDataset([]))


BAD_DTYPES = [np.dtype(d) for d in (object, np.complex64, np.complex128, "U3", "S2",
                                    "datetime64[s]", "timedelta64[ms]", [("a", "f4")])]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
def test_non_numeric_dtypes_are_refused_naming_the_dtype(dtype):
    X = np.zeros((3, 8, 8), dtype)
    message = re.escape(f"has dtype {dtype}; images must be bool, integer or float")
    with pytest.raises(TypeError, match=f"^X {message}"):
        as_image_stack(X)
    with pytest.raises(TypeError, match=f"^image 1 of X {message}"):
        as_image_stack([np.zeros((8, 8)), X[0], np.zeros((8, 8))])
    with pytest.raises(TypeError, match="images must be bool, integer or float"):
        TSimCNE(**FAST_PARAMS).fit(X)


@pytest.mark.parametrize("X", [[[1, 2], [3]], [np.zeros((8, 8)), None]], ids=["ragged", "None"])
def test_unreadable_inputs_are_refused(X):
    with pytest.raises((TypeError, ValueError), match="X"):
        as_image_stack(X)


# --------------------------------------------------------------------------
# Lists of images of mixed sizes and dtypes


#: Dtypes whose intensities share a scale, and so may be mixed in one list.
SCALES = [[np.dtype(bool)], [np.dtype(np.uint8), np.dtype(np.int8)],
          [np.dtype(np.uint16), np.dtype(np.int16)], [np.dtype(np.int32)], FLOAT_DTYPES]


@st.composite
def image_lists(draw):
    """Lists of 2-D or 3-D finite images of different sizes, one dtype or several of one scale."""
    c = draw(CHANNELS)
    n = draw(st.integers(1, 5))
    mixed = draw(st.booleans())
    dtypes = draw(st.lists(st.sampled_from(draw(st.sampled_from(SCALES))), min_size=n,
                           max_size=n)) if mixed else [draw(st.sampled_from(DTYPES))] * n
    images = []
    for dtype in dtypes:
        h, w = draw(st.integers(8, 20)), draw(st.integers(8, 20))
        shape = (h, w) if c is None else (h, w, c)
        if draw(st.booleans()):
            images.append(np.full(shape, draw(draw(elements(dtype))), dtype))
        else:
            images.append(draw(hnp.arrays(dtype, shape, elements=draw(elements(dtype)))))
    return images


@SETTINGS
@given(images=image_lists(), size=st.one_of(st.none(), st.tuples(SIDES, SIDES)))
def test_lists_of_mixed_sizes_are_resized_to_a_common_size(images, size):
    stack, intensity_range, out = run_pipeline(images, size)
    c = 1 if images[0].ndim == 2 else images[0].shape[2]
    sizes = np.array([image.shape[:2] for image in images])
    if size is None:
        size = tuple(int(np.round(s)) for s in np.median(sizes, axis=0))
        assert stack.common_size() == size
    assert (len(stack), stack.n_channels) == (len(images), c)
    assert out.dtype == torch.uint8
    assert tuple(out.shape) == (len(images), c, *size)

    firsts = [_channels_first(image[None])[0] for image in images]
    pixels = np.concatenate([np.moveaxis(x, 0, -1).reshape(-1, c) for x in firsts])
    dtypes = {image.dtype for image in images}
    check_intensity_range(intensity_range, pixels, dtypes)
    for index, x in enumerate(firsts):
        if x.shape[1:] == size:  # not resized: the exact mapping
            check_mapping(out[index : index + 1], x[None], intensity_range, dtypes)
        elif (x == x.reshape(c, -1)[:, :1, None]).all():  # constant stays constant
            per_channel = out[index].flatten(1).int()  # (up to rounding of the interpolation)
            assert (per_channel.max(dim=1).values - per_channel.min(dim=1).values <= 1).all()


@settings(SETTINGS, max_examples=30)
@given(channels=st.lists(st.integers(1, 4), min_size=2, max_size=5).filter(
    lambda cs: len(set(cs)) > 1))
def test_lists_with_different_channel_counts_are_refused(channels):
    images = [np.zeros((8, 8)) if c == 1 and i % 2 else np.zeros((8, 8, c))
              for i, c in enumerate(channels)]
    counts = re.escape(str(sorted(set(channels))))
    with pytest.raises(ValueError, match=f"different channel counts {counts}"):
        as_image_stack(images)


@SETTINGS
@given(X=image_stacks(dtypes=[np.dtype(d) for d in (bool, np.uint8, np.int32, np.float16,
                                                       np.float32, np.float64)]))
def test_datasets_of_channels_first_tensors_map_like_the_array(X):
    X4 = X if X.ndim == 4 else X[..., None]
    tensors = [torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0))) for x in X4]
    _, range_from_array, from_array = run_pipeline(X)
    _, range_from_dataset, from_dataset = run_pipeline(ImageDataset(tensors))
    np.testing.assert_array_equal(range_from_dataset, range_from_array)
    assert torch.equal(from_dataset, from_array)


# --------------------------------------------------------------------------
# End to end through the estimator


@st.composite
def training_stacks(draw):
    dtype = draw(st.sampled_from(DTYPES))
    n, side, c = draw(st.integers(16, 24)), draw(st.integers(8, 12)), draw(
        st.sampled_from([None, 1, 3]))
    shape = (n, side, side) if c is None else (n, side, side, c)
    kind = draw(st.sampled_from(["random", "constant", "identical", "black", "huge"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "black":
        return np.zeros(shape, dtype)
    if kind == "constant":
        return np.full(shape, draw(draw(elements(dtype))), dtype)
    if dtype == bool:
        X = rng.random(shape) > 0.5
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        X = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    else:
        scale = float(np.finfo(dtype).max) / 4 if kind == "huge" else 1.0
        X = (rng.uniform(-1, 1, shape) * scale).astype(dtype)
    if kind == "identical":
        X = np.repeat(X[:1], n, axis=0)
    return X


@pytest.mark.slow
@settings(SETTINGS, max_examples=8)
@given(X=training_stacks())
def test_training_on_any_valid_stack_gives_a_finite_embedding(X):
    estimator = TSimCNE(**FAST_PARAMS)
    embedding = estimator.fit_transform(X)
    assert embedding.shape == (len(X), 2) and embedding.dtype == np.float32
    assert np.isfinite(embedding).all()
    assert all(np.isfinite(losses).all() for losses in estimator.loss_history_)
    assert np.isfinite(estimator.transform(X[:3])).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("kind", ["black", "constant", "identical"])
def test_training_on_degenerate_datasets_finishes_with_finite_losses(dtype, kind):
    rng = np.random.default_rng(0)
    if kind == "black":
        X = np.zeros((16, 12, 12), dtype)
    elif kind == "constant":
        X = np.full((16, 12, 12, 3), 200, dtype)
    else:
        X = np.repeat((rng.random((1, 12, 12, 2)) * 200).astype(dtype), 16, axis=0)
    estimator = TSimCNE(**FAST_PARAMS)
    embedding = estimator.fit_transform(X)
    assert np.isfinite(embedding).all() and embedding.shape == (16, 2)
    assert [len(losses) for losses in estimator.loss_history_] == [1, 1, 1, 1]
    assert all(np.isfinite(losses).all() for losses in estimator.loss_history_)
    assert not estimator.stopped_early_
    # Nothing tells the images apart: they all land on one point.
    np.testing.assert_allclose(embedding, embedding[:1].repeat(16, axis=0), atol=1e-5)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_training_refuses_non_finite_images_before_training(value):
    X = np.random.default_rng(0).random((16, 8, 8)).astype(np.float32)
    X[11, 2, 3] = value
    with pytest.raises(ValueError, match="Image 11 of X contains NaN or infinite values"):
        TSimCNE(**FAST_PARAMS).fit(X)


def test_huge_finite_values_are_not_mistaken_for_infinite():
    X = np.random.default_rng(0).uniform(-1e300, 1e300, (16, 8, 8))
    estimator = TSimCNE(**FAST_PARAMS)
    assert np.isfinite(estimator.fit_transform(X)).all()


@settings(SETTINGS, max_examples=30)
@given(scales=st.lists(st.sampled_from(SCALES), min_size=2, max_size=2, unique_by=id),
       data=st.data())
def test_lists_mixing_intensity_scales_are_refused_naming_two_images(scales, data):
    # One range for 8-bit and 16-bit images would leave the 8-bit ones black.
    first, other = (data.draw(st.sampled_from(scale)) for scale in scales)
    n_before = data.draw(st.integers(1, 3), label="images of the first scale")
    images = [np.zeros((8, 8), first)] * n_before + [np.zeros((8, 8), other)]
    with pytest.raises(ValueError, match=re.escape(
            "The images of X mix intensity scales: image 0 holds ") + r".*" + re.escape(
            f"({first}) but image {n_before} holds ") + r".*" + re.escape(f"({other})")):
        as_image_stack(images)
