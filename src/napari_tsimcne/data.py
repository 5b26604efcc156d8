"""From user input to the uint8 image tensor that training and ``transform`` use.

Accepted inputs
---------------
* a numpy array (or anything ``np.asarray`` takes) of shape ``(N, H, W)`` for
  one channel or ``(N, H, W, C)`` with channels **last**, as napari and
  scikit-image store stacks; memory-mapped arrays are read in chunks.  Any
  other layout (channels first, time points and planes, ...) is read as its
  ``axes`` string says (see :mod:`napari_tsimcne.axes`); without one, an
  array whose last axis is too long for channels is refused, never guessed;
* a list or tuple of 2-D ``(H, W)`` or 3-D ``(H, W, C)`` arrays, possibly of
  different sizes, which are resized to a common size;
* a ``torch.utils.data.Dataset`` whose items are an image or a tuple
  ``(image, label, ...)``; the image is a ``(C, H, W)`` tensor (torchvision's
  convention), a PIL image or an ``(H, W[, C])`` array.

Dtypes bool, integer and float are accepted.  Intensities are mapped to
``[0, 1]`` per channel with an *intensity range* fitted once on the training
images: ``[0, 255]`` for uint8, ``[0, 1]`` for bool, and otherwise the 0.1th
and 99.9th percentiles of each channel (of up to 512 images and 4 million of
their pixels), so that a 12-bit camera in a 16-bit file and a float image both
fill the range.  A list whose images have
intensities on different scales (8-bit and 16-bit integers, integers and
floats, bool and numbers) is refused: one range for all would leave the
images of the smaller scale black.  The mapped images are stored as uint8
``(N, C, H, W)``: a quarter of float32's memory, and precise enough for
augmented training.  ``transform`` maps new images with the fitted range, and
warns when they lie far outside it (:func:`far_outside`): images on
another scale would land on one point of the map.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from . import devices
from .axes import image_layout, layout_of
from .backbones import MIN_IMAGE_SIZE
from .errors import ImageTypeError

__all__ = [
    "DeviceImages", "ImageStack", "StreamedImages", "as_image_stack", "check_one_scale",
    "far_outside", "fit_intensity_range", "should_stream", "to_uint8_tensor",
]

#: Images converted per chunk, which bounds the memory of the float copy ...
CHUNK_SIZE = 1024
#: ... together with the values per chunk (256 MiB as float32), for large images.
CHUNK_VALUES = 2**26
#: Images sampled to fit the percentiles of the intensity range.
RANGE_SAMPLE_SIZE = 512
#: Pixels sampled from them at most (32 MiB as float64), spread evenly over the images.
RANGE_SAMPLE_PIXELS = 2**22
PERCENTILES = (0.1, 99.9)


class ImageStack:
    """Validated images, channels last: an array ``(N, H, W, C)`` or a list of ``(H, W, C)``.

    Built by :func:`as_image_stack`; indexing is cheap for memory-mapped arrays.
    ``positions`` are the images' indices in the stack the user passed (for a
    stack made by :meth:`take`), so that messages name the user's image.
    """

    def __init__(self, images, n_channels: int, sizes: np.ndarray, positions=None):
        self.images = images
        self.n_channels = n_channels
        self.sizes = sizes  # (N, 2) heights and widths
        self.positions = np.arange(len(sizes)) if positions is None else positions

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def dtype(self) -> np.dtype:
        if isinstance(self.images, (np.ndarray, LazyArray)):
            return self.images.dtype
        return self.images[0].dtype

    def common_size(self) -> tuple[int, int]:
        """``(H, W)`` shared by all images, or the median size if they differ."""
        if len(np.unique(self.sizes, axis=0)) == 1:
            return tuple(int(s) for s in self.sizes[0])
        return tuple(int(round(s)) for s in np.median(self.sizes, axis=0))

    def chunk(self, start: int, stop: int) -> list[np.ndarray] | np.ndarray:
        return self.images[start:stop]  # a LazyArray reads the slice here

    def take(self, indices: np.ndarray) -> "ImageStack":
        """The images at increasing ``indices``, read into memory, as a new stack."""
        if isinstance(self.images, (np.ndarray, LazyArray)):
            images = self.images[indices]
        else:
            images = [np.asarray(self.images[i]) for i in indices]
        return ImageStack(images, self.n_channels, self.sizes[indices], self.positions[indices])


def as_image_stack(X, *, what: str = "X", min_images: int = 1, axes: str = "auto") -> ImageStack:
    """Validate ``X`` (see the module docstring) and wrap it as an :class:`ImageStack`.

    ``axes`` is the layout of an array ``X`` (see :mod:`napari_tsimcne.axes`;
    ``"auto"``: ``(N, H, W)`` or ``(N, H, W, C)``); lists and datasets hold
    one image per item in their documented layouts and do not use it.
    Raises ``TypeError`` or ``ValueError`` naming the problem and the fix.
    Non-finite values are detected later, while converting, without an extra pass.
    """
    if isinstance(X, torch.utils.data.Dataset) and not isinstance(X, torch.Tensor):
        X = _dataset_images(X, what)
    if isinstance(X, (list, tuple)):
        stack = _list_stack(X, what)
    else:
        stack = _array_stack(X, what, axes)
    if len(stack) < min_images:
        raise ValueError(
            f"{what} holds {len(stack)} image(s), but at least {min_images} are needed: "
            "t-SimCNE learns by contrasting images with each other. Pass a stack of images."
        )
    small = np.flatnonzero(stack.sizes.min(axis=1) < MIN_IMAGE_SIZE)
    if small.size:
        h, w = stack.sizes[small[0]]
        raise ValueError(
            f"Image {small[0]} of {what} is {h}x{w} pixels; the backbones need at least "
            f"{MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}. Upsample the images before passing them."
        )
    return stack


def _check_dtype(dtype: np.dtype, what: str) -> None:
    if (not (np.issubdtype(dtype, np.number) or dtype == bool)
            or np.issubdtype(dtype, np.complexfloating) or np.issubdtype(dtype, np.timedelta64)):
        raise ImageTypeError(
            f"{what} has dtype {dtype}; images must be bool, integer or float. "
            "Convert them, e.g. with np.asarray(images, dtype=np.float32)."
        )


class LazyArray:
    """Channels-last stack ``(N, H, W, C)`` of an array read image by image as it is indexed.

    For lazily read arrays (dask, zarr, h5py) nothing is read up front, and
    for numpy arrays whose axes of images cannot be merged into one without a
    copy (such as the time points and planes of ``"TCZYX"``) nothing is
    copied up front.  ``layout`` (:class:`~napari_tsimcne.axes.Layout`) says
    what the array's axes are; an int gives one image ``(H, W, C)``, slices
    and index arrays give numpy arrays ``(n, H, W, C)``.
    """

    def __init__(self, array, layout):
        self.array = array
        self.layout = layout
        self.dtype = np.dtype(array.dtype)
        self.shape = (layout.n_images, *layout.image_size, layout.n_channels)
        # Where Y, X and C are among the axes left after indexing one image.
        remaining = [i for i in range(len(layout.axes)) if i not in layout.image_axes]
        self._image_order = [remaining.index(i) for i in layout.order[len(layout.image_axes):]]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if self.layout.axes in ("NYX", "NYXC"):  # a stack as it is: slices read in one go
            try:
                images = np.asarray(self.array[key])
            except (TypeError, IndexError):  # an index array where only slices and ints work
                images = np.stack([np.asarray(self.array[int(i)]) for i in key])
            return images[..., None] if self.layout.channel_axis is None else images
        flat = np.arange(len(self))[key]
        indices = np.unravel_index(np.atleast_1d(flat), [self.layout.shape[i] for i in
                                                         self.layout.image_axes])
        images = [self._image(index) for index in zip(*indices)]
        if np.ndim(flat) == 0:
            return images[0]
        return np.stack(images) if images else np.empty((0, *self.shape[1:]), self.dtype)

    def _image(self, index) -> np.ndarray:
        """The image at ``index`` along the axes of images, as ``(H, W, C)``."""
        key = [slice(None)] * len(self.layout.axes)
        for axis, i in zip(self.layout.image_axes, index):
            key[axis] = int(i)
        image = np.transpose(np.asarray(self.array[tuple(key)]), self._image_order)
        return image[..., None] if self.layout.channel_axis is None else image


def _is_lazy_array(X) -> bool:
    """An array-like read on indexing (dask, zarr, h5py), which ``np.asarray`` would load whole."""
    return (not isinstance(X, np.ndarray) and all(hasattr(X, a) for a in ("shape", "dtype"))
            and hasattr(X, "__getitem__") and not isinstance(X, torch.Tensor))


def _array_stack(X, what: str, axes: str) -> ImageStack:
    if not _is_lazy_array(X) and not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except Exception as error:  # ragged nested lists and the like
            raise ImageTypeError(f"{what} could not be read as an image array: {error}") from None
    _check_dtype(np.dtype(X.dtype), what)
    layout = layout_of(X.shape, axes, what=what)
    X = _channels_last(X, layout) if isinstance(X, np.ndarray) else LazyArray(X, layout)
    return _checked_array_stack(X, X.shape, what)


def _channels_last(X: np.ndarray, layout) -> np.ndarray | LazyArray:
    """``X`` as a stack ``(N, H, W, C)``: a view, or a :class:`LazyArray` where a view cannot be.

    A view needs the axes of images to follow each other in memory, as they
    do in every C-ordered array whose image axes come first.
    """
    view = np.transpose(X, layout.order)
    if layout.channel_axis is None:
        view = view[..., None]
    n_lead = len(layout.image_axes)
    lead = [(n, stride) for n, stride in zip(view.shape[:n_lead], view.strides[:n_lead])
            if n != 1]  # axes of one image do not move through memory
    mergeable = layout.n_images == 0 or all(
        outer_stride == inner_stride * inner_n
        for (_, outer_stride), (inner_n, inner_stride) in zip(lead, lead[1:])
    )
    if not mergeable:
        return LazyArray(X, layout)
    return view.reshape((layout.n_images, *view.shape[n_lead:]))


def _checked_array_stack(X, shape, what: str) -> ImageStack:
    """Refuse empty ``(N, H, W, C)`` arrays and images without channels."""
    n, h, w, c = shape
    if n == 0 or h == 0 or w == 0:
        raise ValueError(f"{what} is empty (shape {shape}); pass at least one image.")
    if c == 0:
        raise ValueError(
            f"{what} has shape {shape}: its images have 0 channels. "
            "Pass images with at least one channel, channels last."
        )
    return ImageStack(X, c, np.tile([h, w], (n, 1)))


def _list_stack(images: Sequence, what: str) -> ImageStack:
    if len(images) == 0:
        raise ValueError(f"{what} is an empty list; pass at least one image.")
    arrays = []
    for index, image in enumerate(images):
        image = np.asarray(image)
        _check_dtype(image.dtype, f"image {index} of {what}")
        layout = image_layout(image.shape, what=f"Image {index} of {what}", option=None)
        arrays.append(image if layout.channel_axis is not None else image[..., None])
    check_one_scale([a.dtype for a in arrays], [f"image {i}" for i in range(len(arrays))],
                    f"The images of {what}", "Convert them to one dtype first, scaled as they "
                    "should compare, e.g. an 8-bit image among 16-bit ones with "
                    "image.astype(np.uint16) * 257.")
    channels = {a.shape[2] for a in arrays}
    if len(channels) > 1:
        raise ValueError(
            f"The images of {what} have different channel counts {sorted(channels)}; "
            "all images must have the same number of channels."
        )
    n_channels = channels.pop()
    if n_channels == 0:
        raise ValueError(
            f"The images of {what} have 0 channels (image 0 has shape {arrays[0].shape}). "
            "Pass images with at least one channel, channels last."
        )
    sizes = np.array([a.shape[:2] for a in arrays])
    return ImageStack(arrays, n_channels, sizes)


def _intensity_scale(dtype: np.dtype) -> str:
    """What a dtype's intensities are: ``"bools"``, ``"8-bit integers"``, ... or ``"floats"``.

    Integers of one bit depth share a scale, as do floats of any precision.
    """
    if dtype == bool:
        return "bools"
    return f"{8 * dtype.itemsize}-bit integers" if dtype.kind in "iu" else "floats"


def check_one_scale(dtypes, names, where: str, fix: str) -> None:
    """Refuse images whose intensities are on different scales; ``ValueError`` otherwise.

    ``dtypes`` and ``names`` are those of the images, ``where`` names the
    collection at the start of the message and ``fix`` says what to do.
    """
    dtypes = [np.dtype(dtype) for dtype in dtypes]
    scales = [_intensity_scale(dtype) for dtype in dtypes]
    other = next((i for i, scale in enumerate(scales) if scale != scales[0]), None)
    if other is not None:
        raise ValueError(
            f"{where} mix intensity scales: {names[0]} holds {scales[0]} ({dtypes[0]}) but "
            f"{names[other]} holds {scales[other]} ({dtypes[other]}). One intensity range "
            f"for all would leave the images of the smaller scale nearly black. {fix}")


def _dataset_images(dataset, what: str) -> list[np.ndarray]:
    images = []
    for index in range(len(dataset)):
        item = dataset[index]
        image = item[0] if isinstance(item, tuple) else item
        if isinstance(image, torch.Tensor):
            image = image.detach().cpu()
            image = image.permute(1, 2, 0).numpy() if image.ndim == 3 else image.numpy()
        images.append(np.asarray(image))
    if not images:
        raise ValueError(f"{what} is an empty dataset; pass at least one image.")
    return images


def fit_intensity_range(stack: ImageStack) -> np.ndarray:
    """Per-channel ``(low, high)`` that map the stack's intensities to ``[0, 1]``.

    Returns a float64 array of shape ``(C, 2)``; see the module docstring.
    """
    if isinstance(stack.images, (np.ndarray, LazyArray)):
        dtypes = {stack.dtype}
    else:  # a list may mix dtypes: the fixed ranges apply only if all images share them
        dtypes = {np.asarray(image).dtype for image in stack.images}
    if dtypes == {np.dtype(np.uint8)}:
        return np.tile([0.0, 255.0], (stack.n_channels, 1))
    if dtypes == {np.dtype(bool)}:
        return np.tile([0.0, 1.0], (stack.n_channels, 1))
    low, high = np.nan_to_num(_percentiles(_sample_pixels(stack), PERCENTILES))
    # Constant channels map to 0; beyond 2**53, low + 1 == low, so step by the float spacing.
    with np.errstate(over="ignore"):
        step = np.maximum(1.0, np.spacing(np.abs(low)))
        high = np.where(high > low, high, np.minimum(low + step, np.finfo(np.float64).max))
    return np.stack([low, high], axis=1)


def _sample_pixels(stack: ImageStack) -> np.ndarray:
    """Pixels ``(n, C)`` of up to :data:`RANGE_SAMPLE_SIZE` evenly spaced images, float64.

    Non-finite values are NaN.  Each image gives at most its share of
    :data:`RANGE_SAMPLE_PIXELS`, drawn at random with a fixed seed, so that
    large images cost no more memory than small ones and the sample is the
    same on every call.
    """
    sample = np.linspace(0, len(stack) - 1, min(len(stack), RANGE_SAMPLE_SIZE)).astype(int)
    per_image = RANGE_SAMPLE_PIXELS // len(sample)
    rng = np.random.default_rng(0)
    parts = []
    for index in sample:
        pixels = np.asarray(stack.images[index]).reshape(-1, stack.n_channels)
        if len(pixels) > per_image:
            pixels = pixels[rng.integers(0, len(pixels), per_image)]
        parts.append(pixels.astype(np.float64))
    pixels = np.concatenate(parts)
    return np.where(np.isfinite(pixels), pixels, np.nan)


def _percentiles(pixels: np.ndarray, q) -> np.ndarray:
    """``np.nanpercentile(pixels, q, axis=0)``: NaN for all-NaN channels, finite otherwise."""
    # Percentiles interpolate with differences, which overflow between values
    # near +-1.8e308; halving such pixels (exactly) keeps them finite.
    factor = 2.0 if (np.abs(pixels) > 2.0**1000).any() else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels are the caller's
        return np.nanpercentile(pixels / factor, q, axis=0) * factor


#: ``transform`` warns when, in some channel, the new images' 99.9th
#: percentile maps below this share of the training range (or their 0.1th
#: above one minus it): nearly all their pixels then share one grey level.
EDGE_SHARE = 1 / 50
#: ... or when their median pixel lies more than this share of the range
#: below or above it: most of their pixels are then clipped to black or white.
CLIPPED_SHARE = 0.5


def far_outside(stack: ImageStack, intensity_range: np.ndarray) -> str | None:
    """A warning when ``stack``'s intensities lie far outside ``intensity_range (C, 2)``, or None.

    Images on another scale than the training images (floats in ``[0, 1]``
    for a model trained on uint8, raw 16-bit values for one trained on 8-bit)
    map to nearly one grey level or are clipped, and land on one point of the
    map; see :data:`EDGE_SHARE` and :data:`CLIPPED_SHARE`.
    """
    pixels = _sample_pixels(stack)
    quantiles = _percentiles(pixels, (PERCENTILES[0], 50, PERCENTILES[1]))  # (3, C)
    low, high = np.asarray(intensity_range, dtype=np.float64).T
    with np.errstate(all="ignore"):  # halves: no overflow for any pair of float64 values
        mapped = (quantiles / 2 - low / 2) / (high / 2 - low / 2)
    dark, median, bright = mapped
    varies = quantiles[2] > quantiles[0]
    squashed = varies & ((bright < EDGE_SHARE) | (dark > 1 - EDGE_SHARE))
    clipped = (median < -CLIPPED_SHARE) | (median > 1 + CLIPPED_SHARE)
    channels = np.flatnonzero(squashed | clipped)
    if not channels.size:
        return None
    c = channels[0]
    effect = ("most of their pixels are clipped to black or white" if clipped[c] else
              "nearly all their pixels map to one grey level")
    return (
        f"The images given to transform lie far outside the intensity range of the training "
        f"images: in channel {c} their pixels run from {quantiles[0, c]:.4g} to "
        f"{quantiles[2, c]:.4g} (0.1th to 99.9th percentile), but the model maps "
        f"{low[c]:.4g} to black and {high[c]:.4g} to white, so {effect} and the images land "
        "on one point of the map. Bring them to the scale of the training images first, "
        "e.g. multiply float images in [0, 1] by 255 for a model trained on uint8 images.")


def to_uint8_tensor(
    stack: ImageStack,
    intensity_range: np.ndarray,
    image_size: tuple[int, int],
    *,
    what: str = "X",
    start: int = 0,
    stop: int | None = None,
) -> torch.Tensor:
    """Map images ``start:stop`` to a uint8 tensor ``(n, C, H, W)`` of ``image_size``.

    Works in chunks of :data:`CHUNK_SIZE` images, fewer for images so large that
    they would hold more than :data:`CHUNK_VALUES` values, so that the float
    copy stays small.
    Raises ``ValueError`` naming the first image with NaN or infinite values.
    """
    stop = len(stack) if stop is None else stop
    intensity_range = np.asarray(intensity_range, dtype=np.float64)
    low, high = intensity_range[:, 0], intensity_range[:, 1]
    # float32 maps uint8, uint16, float32... fast, but not where it would round
    # the range away (e.g. [1e10, 1e10 + 1]) or overflow (ranges near 3e38).
    with np.errstate(all="ignore"):
        low32, high32 = low.astype(np.float32), high.astype(np.float32)
        scale32 = high32 - low32
        range_fits_float32 = bool(np.all(np.isfinite(scale32) & (
            scale32 >= 1024 * np.spacing(np.maximum(np.abs(low32), np.abs(high32)))
        )))
    low32 = torch.from_numpy(low32)[:, None, None]
    scale32 = torch.from_numpy(scale32)[:, None, None]
    # float64 otherwise; x - low and high - low overflow only for ranges beyond
    # 2**1000, whose halves x/2 - low/2 and high/2 - low/2 stay finite.
    factor = 2.0 if np.abs(intensity_range).max() > 2.0**1000 else 1.0
    scale64 = high / factor - low / factor
    scale64 = torch.from_numpy(np.where(scale64 > 0, scale64, 1.0))[:, None, None]
    low64 = torch.from_numpy(low / factor)[:, None, None]
    out = torch.empty((stop - start, stack.n_channels, *image_size), dtype=torch.uint8)
    largest = stack.n_channels * int(stack.sizes.prod(axis=1).max())
    chunk_size = max(1, min(CHUNK_SIZE, CHUNK_VALUES // max(largest, 1)))
    for chunk_start in range(start, stop, chunk_size):
        chunk_stop = min(chunk_start + chunk_size, stop)
        for offset, images in _same_size_groups(stack.chunk(chunk_start, chunk_stop)):
            fast = range_fits_float32 and np.can_cast(images.dtype, np.float32)
            x = torch.from_numpy(
                np.ascontiguousarray(images, dtype=np.float32 if fast else np.float64)
            )
            x = x.permute(0, 3, 1, 2)
            bad = ~torch.isfinite(x).flatten(1).all(dim=1)
            if bad.any():
                index = stack.positions[chunk_start + offset + int(bad.nonzero()[0])]
                raise ValueError(
                    f"Image {index} of {what} contains NaN or infinite values. "
                    "Replace them (e.g. np.nan_to_num) or drop the image."
                )
            if fast:
                x = ((x - low32) / scale32).clamp_(0, 1)
            else:
                x = ((x / factor).sub_(low64) / scale64).clamp_(0, 1).float()
            if tuple(x.shape[2:]) != tuple(image_size):
                x = F.interpolate(
                    x, size=image_size, mode="bilinear", antialias=True, align_corners=False
                ).clamp_(0, 1)
            begin = chunk_start + offset - start
            out[begin : begin + len(x)] = x.mul_(255).round_().to(torch.uint8)
    return out


def _same_size_groups(images):
    """Yield ``(offset, array (n, H, W, C))`` runs of equally sized images."""
    if isinstance(images, np.ndarray):
        yield 0, images
        return
    start = 0
    for stop in range(1, len(images) + 1):
        if stop == len(images) or images[stop].shape != images[start].shape:
            yield start, np.stack(images[start:stop])
            start = stop


#: Share of the free memory (RAM, or GPU memory) that the uint8 copy of the
#: training images may take before ``stream="auto"`` streams them instead; the
#: rest is left for the network's activations and the user's other work.
DEVICE_MEMORY_SHARE = 0.25


def should_stream(stack: ImageStack, image_size: tuple[int, int], device: torch.device) -> bool:
    """Whether the uint8 copy of ``stack`` at ``image_size`` is too large for ``device``.

    Too large means more than :data:`DEVICE_MEMORY_SHARE` of the free memory.
    """
    nbytes = len(stack) * stack.n_channels * image_size[0] * image_size[1]
    available = devices.free_memory(device)
    return available is not None and nbytes > DEVICE_MEMORY_SHARE * available


class DeviceImages:
    """All training images as one uint8 tensor ``(N, C, H, W)`` on the training device.

    The fast path: a batch is an index into memory that is already on the device.
    """

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor
        self.device = tensor.device

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def select(self, index_batches):
        """Yield the uint8 batch ``(b, C, H, W)`` of every index tensor in ``index_batches``."""
        for indices in index_batches:
            yield self.tensor[indices.to(self.device)]

    def chunks(self, size: int):
        """Consecutive uint8 batches of at most ``size`` images, in order."""
        return self.tensor.split(size)


class StreamedImages:
    """Training images read from their source batch by batch, for data larger than memory.

    Memory stays bounded by a few batches whatever the size of the stack: a
    batch is read from the source (a memory-mapped array, a lazily indexed
    array such as zarr or h5py, a list, a torch Dataset), mapped to uint8 on
    the CPU and moved to the device, while the next batch is read in a
    background thread.
    """

    def __init__(self, stack: ImageStack, intensity_range: np.ndarray,
                 image_size: tuple[int, int], device: torch.device):
        self.stack = stack
        self.intensity_range = intensity_range
        self.image_size = tuple(image_size)
        self.device = device

    def __len__(self) -> int:
        return len(self.stack)

    def read(self, indices) -> torch.Tensor:
        """uint8 tensor ``(len(indices), C, H, W)`` of the images at ``indices``, on the device."""
        indices = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
        # Sources read fastest in increasing order (and h5py requires it).
        order = np.argsort(indices, kind="stable")
        selection = self.stack.take(indices[order])
        batch = to_uint8_tensor(selection, self.intensity_range, self.image_size)
        in_order = torch.empty_like(batch)
        in_order[torch.from_numpy(order)] = batch
        if self.device.type == "cuda":
            return in_order.pin_memory().to(self.device, non_blocking=True)
        return in_order.to(self.device)

    def select(self, index_batches):
        """Yield the batch of every index tensor, reading the next one while this one trains."""
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = None
            for indices in index_batches:
                upcoming = reader.submit(self.read, indices)
                if pending is not None:
                    yield pending.result()
                pending = upcoming
            if pending is not None:
                yield pending.result()

    def chunks(self, size: int):
        """Consecutive uint8 batches of at most ``size`` images, in order."""
        for start in range(0, len(self), size):
            yield self.read(np.arange(start, min(start + size, len(self))))
