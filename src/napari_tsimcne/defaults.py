"""Settings derived from the images: one rule for the library, the command line and the widget.

:class:`~napari_tsimcne.TSimCNE` resolves its ``"auto"`` parameters here,
the command line leaves them ``"auto"``, and the napari widget fills its form
with the same values before training, so that one collection gets one
training whichever front end starts it.  This module imports neither torch
nor Qt: the command line's ``--help`` reads its defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CPU_BATCH_SIZE",
    "CPU_IMAGE_SIZE",
    "DEFAULT_MINUTES",
    "DEFAULT_SEED",
    "GPU_BATCH_SIZE",
    "MIN_BATCH_SIZE",
    "DataDefaults",
    "data_defaults",
    "default_augmentation",
    "default_batch_size",
    "default_image_size",
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
#: Seed of the command line and the widget, so that a run can be repeated.
DEFAULT_SEED = 0
#: Time budget of training when neither minutes nor epochs are given.
DEFAULT_MINUTES = 10


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


def default_image_size(height: int, width: int, device_type: str = "cpu") -> int | None:
    """Side to resize images to for training, or ``None`` to keep them as they are.

    Square images larger than :data:`CPU_IMAGE_SIZE` are shrunk to it on a
    CPU; everything else keeps its size.
    """
    if device_type == "cpu" and height == width and height > CPU_IMAGE_SIZE:
        return CPU_IMAGE_SIZE
    return None


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
    image_size: int | None
    augmentation: str


def data_defaults(n_images: int, height: int, width: int, n_channels: int, dtype,
                  device_type: str = "cpu") -> DataDefaults:
    """Batch size, image size and augmentation preset for ``n_images`` images of this shape.

    ``height`` and ``width`` are the images' common size (the median size of
    images of different sizes); ``device_type`` is that of the resolved device.
    """
    return DataDefaults(
        batch_size=default_batch_size(n_images, device_type),
        image_size=default_image_size(height, width, device_type),
        augmentation=default_augmentation(n_channels, dtype),
    )
