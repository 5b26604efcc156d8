"""Settings derived from the images: one rule for the library, the command line and the widget.

:class:`~napari_tsimcne.TSimCNE` resolves its ``"auto"`` parameters here (on
the device's free memory, :func:`napari_tsimcne.devices.defaults_for_device`),
the command line leaves them ``"auto"``, and the napari widget fills its form
with the same values before training, so that one collection gets one
training whichever front end starts it.  This module imports neither torch
nor Qt: the command line's ``--help`` reads its defaults from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CHECKPOINT_EVERY",
    "CPU_BATCH_SIZE",
    "CPU_IMAGE_SIZE",
    "CROP_SCALE",
    "DEFAULT_MINUTES",
    "DEFAULT_SEED",
    "GPU_BATCH_SIZE",
    "MAX_IMAGE_SIDE",
    "MIN_BATCH_SIZE",
    "PAPER_CROP_SCALE",
    "TRAINING_MEMORY_SHARE",
    "DataDefaults",
    "data_defaults",
    "default_augmentation",
    "default_batch_size",
    "default_image_size",
    "shrunk_size",
]

#: Images per optimiser step by default: the paper's on a GPU, less on a CPU
#: where each step is slow and a short budget needs many steps (batch 64 beat
#: 256 at the same time on Fashion-MNIST, ``benchmarks/RESULTS.md``).
GPU_BATCH_SIZE, CPU_BATCH_SIZE = 1024, 64
#: Smallest default batch: the loss contrasts each image with the batch's others.
MIN_BATCH_SIZE = 32
#: Image side used by default on a CPU: the paper's 32 px, a quarter of the
#: pixels of a 64 px crop for the network to process.
CPU_IMAGE_SIZE = 32
#: Longest side images are trained at by default on any device.  The
#: backbones keep full resolution in their first stage, so memory and time
#: grow with the pixels (a batch of 1024 px images needs tens of GiB), while
#: the map needs the objects' forms, which 256 px keep.
MAX_IMAGE_SIDE = 256
#: Share of the device's free memory that training may take (at the default
#: image size, and at any other before it is refused): what the uint8 copy of
#: the images leaves, which takes at most a quarter or is streamed.
TRAINING_MEMORY_SHARE = 0.75
#: Sides of shrunk images are multiples of this (the backbones halve the
#: resolution three times), and at least this (the backbones' smallest side).
SIZE_STEP = 8
#: Seed of the command line and the widget, so that a run can be repeated.
DEFAULT_SEED = 0
#: Time budget of training when neither minutes nor epochs are given.
DEFAULT_MINUTES = 10
#: Range of the random crops' area, as a share of the image's: the paper's
#: suits its 1000 epochs; in the hundred or so of a CPU budget a small crop
#: that misses most of the object teaches little, and (0.4, 1) gave the
#: better map on Fashion-MNIST and the generated shapes.
PAPER_CROP_SCALE, CROP_SCALE = (0.2, 1.0), (0.4, 1.0)
#: Epochs between checkpoints by default (and at the end of every stage).
CHECKPOINT_EVERY = 10


def default_batch_size(n_images: int, device_type: str = "cpu") -> int:
    """A power of two that gives about 8 or more steps per epoch, within the device's default.

    Small collections need several optimiser steps per epoch to learn in a
    short schedule, so the batch is at most an eighth of the images (but at
    least :data:`MIN_BATCH_SIZE`, or all images when there are fewer), and at
    most :data:`CPU_BATCH_SIZE` on a CPU or :data:`GPU_BATCH_SIZE` on a GPU
    (``device_type`` ``"cuda"`` or ``"mps"``).
    """
    device_limit = CPU_BATCH_SIZE if device_type == "cpu" else GPU_BATCH_SIZE
    limit = min(device_limit, max(MIN_BATCH_SIZE, n_images // 8), max(int(n_images), 2))
    return 1 << (limit.bit_length() - 1)


def shrunk_size(height: int, width: int, max_side: float | None = None,
                max_pixels: float | None = None) -> tuple[int, int]:
    """``(height, width)``, or smaller with the aspect kept, to fit both limits.

    At most ``max_side`` pixels on the longer side and ``max_pixels`` pixels
    in all (``None``: no limit).  Shrunk sides are rounded down to multiples
    of :data:`SIZE_STEP`, and are at least that.
    """
    scale = 1.0
    if max_side is not None:
        scale = min(scale, max_side / max(height, width))
    if max_pixels is not None:
        scale = min(scale, math.sqrt(max(max_pixels, 0) / (height * width)))
    if scale >= 1:
        return height, width
    return tuple(max(SIZE_STEP, int(side * scale) // SIZE_STEP * SIZE_STEP)
                 for side in (height, width))


def default_image_size(height: int, width: int, device_type: str = "cpu",
                       max_pixels: float | None = None) -> int | tuple[int, int] | None:
    """Size to resize images of ``height`` × ``width`` to for training; ``None`` keeps it.

    Square images larger than :data:`CPU_IMAGE_SIZE` are shrunk to it on a
    CPU; on every device, images are shrunk (aspect kept) to at most
    :data:`MAX_IMAGE_SIDE` on their longer side and ``max_pixels`` pixels, the
    most that fit in memory (see :func:`data_defaults`).  Returns a side for
    square sizes, ``(height, width)`` for others.
    """
    size = (height, width)
    if device_type == "cpu" and height == width and height > CPU_IMAGE_SIZE:
        size = (CPU_IMAGE_SIZE, CPU_IMAGE_SIZE)
    size = shrunk_size(*size, MAX_IMAGE_SIDE, max_pixels)
    if size == (height, width):
        return None
    return size[0] if size[0] == size[1] else size


def default_augmentation(n_channels: int, dtype) -> str:
    """``"natural"`` for colour photographs (3 or 4 channels of uint8), else ``"microscopy"``.

    Microscopy images (one to four channels, often uint16) have no up or
    down, so the microscopy preset also flips vertically and rotates.
    """
    photograph = n_channels in (3, 4) and np.dtype(dtype) == np.uint8
    return "natural" if photograph else "microscopy"


@dataclass(frozen=True)
class DataDefaults:
    """The settings :func:`data_defaults` derives; see :class:`~napari_tsimcne.TSimCNE`."""

    batch_size: int
    image_size: int | tuple[int, int] | None
    augmentation: str


def data_defaults(n_images: int, height: int, width: int, n_channels: int, dtype,
                  device_type: str = "cpu", *, memory: int | None = None,
                  training_bytes: Callable[[int, tuple[int, int]], float] | None = None,
                  ) -> DataDefaults:
    """Batch size, image size and augmentation preset for ``n_images`` images of this shape.

    ``height`` and ``width`` are the images' common size (the median size of
    images of different sizes); ``device_type`` is that of the resolved device.
    With the device's free ``memory`` (bytes) and ``training_bytes(batch_size,
    (height, width))``, the memory a training step needs, the image size is
    also small enough for training to take at most
    :data:`TRAINING_MEMORY_SHARE` of that memory (the need grows with the pixels).
    """
    batch_size = default_batch_size(n_images, device_type)
    max_pixels = None
    if memory is not None and training_bytes is not None:
        max_pixels = (TRAINING_MEMORY_SHARE * memory * height * width
                      / training_bytes(batch_size, (height, width)))
    return DataDefaults(
        batch_size=batch_size,
        image_size=default_image_size(height, width, device_type, max_pixels),
        augmentation=default_augmentation(n_channels, dtype),
    )
