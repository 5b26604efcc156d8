"""From user input to the uint8 image tensor that training and ``transform`` use.

Accepted inputs
---------------
* a numpy array (or anything ``np.asarray`` takes) of shape ``(N, H, W)`` for
  one channel or ``(N, H, W, C)`` with channels **last**, as napari and
  scikit-image store stacks; memory-mapped arrays are read in chunks;
* a list or tuple of 2-D ``(H, W)`` or 3-D ``(H, W, C)`` arrays, possibly of
  different sizes, which are resized to a common size;
* a ``torch.utils.data.Dataset`` whose items are an image or a tuple
  ``(image, label, ...)``; the image is a ``(C, H, W)`` tensor (torchvision's
  convention), a PIL image or an ``(H, W[, C])`` array.

Dtypes bool, integer and float are accepted.  Intensities are mapped to
``[0, 1]`` per channel with an *intensity range* fitted once on the training
images: ``[0, 255]`` for uint8, ``[0, 1]`` for bool, and otherwise the 0.1th
and 99.9th percentiles of each channel, so that a 12-bit camera in a 16-bit
file and a float image both fill the range.  The mapped images are stored as
uint8 ``(N, C, H, W)``: a quarter of float32's memory, and precise enough for
augmented training.  ``transform`` maps new images with the fitted range.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from .backbones import MIN_IMAGE_SIZE

__all__ = [
    "DeviceImages", "ImageStack", "StreamedImages", "as_image_stack", "fit_intensity_range",
    "should_stream", "to_uint8_tensor",
]

#: Images converted per chunk, which bounds the memory of the float copy.
CHUNK_SIZE = 1024
#: Images sampled to fit the percentiles of the intensity range.
RANGE_SAMPLE_SIZE = 512
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


def as_image_stack(X, *, what: str = "X", min_images: int = 1) -> ImageStack:
    """Validate ``X`` (see the module docstring) and wrap it as an :class:`ImageStack`.

    Raises ``TypeError`` or ``ValueError`` naming the problem and the fix.
    Non-finite values are detected later, while converting, without an extra pass.
    """
    if isinstance(X, torch.utils.data.Dataset) and not isinstance(X, torch.Tensor):
        X = _dataset_images(X, what)
    if isinstance(X, (list, tuple)):
        stack = _list_stack(X, what)
    else:
        stack = _array_stack(X, what)
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
        raise TypeError(
            f"{what} has dtype {dtype}; images must be bool, integer or float. "
            "Convert them, e.g. with np.asarray(images, dtype=np.float32)."
        )


class LazyArray:
    """Channels-last view of a lazily read array (dask, zarr, h5py): nothing is read up front.

    ``(N, H, W)`` arrays get their channel axis on reading; slices and index
    arrays come back as numpy arrays.
    """

    def __init__(self, array):
        self.array = array
        self.dtype = np.dtype(array.dtype)
        self.shape = tuple(array.shape) + ((1,) if len(array.shape) == 3 else ())

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        try:
            images = np.asarray(self.array[key])
        except (TypeError, IndexError):  # an index array where only slices and ints work
            images = np.stack([np.asarray(self.array[int(i)]) for i in key])
        return images[..., None] if len(self.array.shape) == 3 else images


def _is_lazy_array(X) -> bool:
    """An array-like read on indexing (dask, zarr, h5py), which ``np.asarray`` would load whole."""
    return (not isinstance(X, np.ndarray) and all(hasattr(X, a) for a in ("shape", "dtype"))
            and hasattr(X, "__getitem__") and not isinstance(X, torch.Tensor))


def _array_stack(X, what: str) -> ImageStack:
    if _is_lazy_array(X) and len(X.shape) in (3, 4):
        X = LazyArray(X)
        _check_dtype(X.dtype, what)
        return _checked_array_stack(X, X.shape, what)
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except Exception as error:  # ragged nested lists and the like
            raise TypeError(f"{what} could not be read as an image array: {error}") from None
    _check_dtype(X.dtype, what)
    if X.ndim == 3 and 0 < X.shape[2] <= 4 and min(X.shape[:2]) >= MIN_IMAGE_SIZE:
        n, h, w = X.shape
        raise ValueError(
            f"{what} has shape {X.shape}, read as {n} images of {h}x{w} pixels; the backbones "
            f"need at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE}. For a single image with channels "
            "last (H, W, C) use X[None]."
        )
    if X.ndim == 3:
        X = X[..., None]
    elif X.ndim != 4:
        hint = " For a single 2-D image use X[None]." if X.ndim == 2 else ""
        raise ValueError(
            f"{what} has shape {X.shape}; expected a stack of images (N, H, W) or "
            f"(N, H, W, C) with channels last.{hint}"
        )
    return _checked_array_stack(X, X.shape, what)


def _checked_array_stack(X, shape, what: str) -> ImageStack:
    """Refuse channels-first and empty ``(N, H, W, C)`` arrays."""
    n, h, w, c = shape
    if c > 4 and h <= 4 and c >= 2 * h:
        raise ValueError(
            f"{what} has shape {shape}, which looks like channels first (N, C, H, W). "
            "Images must be channels last: use np.moveaxis(X, 1, -1)."
        )
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
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3:
            raise ValueError(
                f"Image {index} of {what} has shape {image.shape}; each image must be "
                "2-D (H, W) or 3-D (H, W, C) with channels last."
            )
        arrays.append(image)
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
    sample = np.linspace(0, len(stack) - 1, min(len(stack), RANGE_SAMPLE_SIZE)).astype(int)
    pixels = np.concatenate(
        [np.asarray(stack.images[i], dtype=np.float64).reshape(-1, stack.n_channels) for i in sample]
    )
    pixels = np.where(np.isfinite(pixels), pixels, np.nan)
    # Percentiles interpolate with differences, which overflow between values
    # near +-1.8e308; halving such pixels (exactly) keeps them finite.
    factor = 2.0 if (np.abs(pixels) > 2.0**1000).any() else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN channels are handled below
        low, high = np.nanpercentile(pixels / factor, PERCENTILES, axis=0) * factor
    low, high = np.nan_to_num(low), np.nan_to_num(high)
    # Constant channels map to 0; beyond 2**53, low + 1 == low, so step by the float spacing.
    with np.errstate(over="ignore"):
        step = np.maximum(1.0, np.spacing(np.abs(low)))
        high = np.where(high > low, high, np.minimum(low + step, np.finfo(np.float64).max))
    return np.stack([low, high], axis=1)


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

    Works in chunks of :data:`CHUNK_SIZE` images so the float copy stays small.
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
    for chunk_start in range(start, stop, CHUNK_SIZE):
        chunk_stop = min(chunk_start + CHUNK_SIZE, stop)
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


def free_memory(device: torch.device) -> int | None:
    """Free bytes of ``device``'s memory (RAM for a CPU), or None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux
        return None


def should_stream(stack: ImageStack, image_size: tuple[int, int], device: torch.device) -> bool:
    """Whether the uint8 copy of ``stack`` at ``image_size`` is too large for ``device``.

    Too large means more than :data:`DEVICE_MEMORY_SHARE` of the free memory.
    """
    nbytes = len(stack) * stack.n_channels * image_size[0] * image_size[1]
    available = free_memory(device)
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
