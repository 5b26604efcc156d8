"""The memory a training run needs, estimated before it starts.

Training keeps the activations of every layer of the backbone for the
backward pass.  The small-image ResNets (a stride-1 stem and no max-pool)
keep ``width`` channels at the images' full resolution in their first
stage and half as many values in every later one, so the memory grows with
the images' pixels: a batch of 32 images of 1024×1024 px needs hundreds of
GiB with ResNet-18.  :func:`training_bytes` counts those values for the two
views of every image of a batch, and for the forward passes of the final
embedding; on a CPU it came within 10% of the measured peak of training
steps from ``resnet10-w8`` to ``resnet18-w8`` at 64 and 128 px, in float32
and in bfloat16 autocast.
"""

from __future__ import annotations

import torch

from . import devices, distributed
from .backbones import BLOCKS_PER_STAGE, parse_backbone_name
from .defaults import TRAINING_MEMORY_SHARE, shrunk_size
from .trainer import Accelerations, inference_batch_size

__all__ = ["check_training_memory", "training_bytes"]

#: Values a basic block keeps per output value: two convolutions, two batch
#: norms and the sum (its ReLUs work in place).
BLOCK_ACTIVATIONS = 5
#: The 1x1 convolution and batch norm that bring a stage's input to its shape.
DOWNSAMPLE_ACTIVATIONS = 2
#: The stem's convolution and batch norm.
STEM_ACTIVATIONS = 2
#: Values per input value of the augmentation: the views and their crops,
#: flips and jitter as float32.
AUGMENTATION_COPIES = 4
#: Layer outputs alive at once in a forward pass without gradients.
FORWARD_ACTIVATIONS = 3
#: Bytes per value: float32, or bfloat16 autocast, whose convolutions keep 2
#: bytes and batch norms 4 (measured: three quarters of float32's peak).
FLOAT32_BYTES, AUTOCAST_BYTES = 4, 3


def training_bytes(backbone: str, n_channels: int, batch_size: int, image_size,
                   accelerations: Accelerations = Accelerations()) -> int:
    """Bytes a training step takes on ``batch_size`` images of ``image_size (H, W)``, about.

    ``batch_size`` is the global batch, shared by the processes of a
    distributed run.  The larger of a step (two views of every image) and a
    forward pass of the final embedding, whose batches are
    :func:`~napari_tsimcne.trainer.inference_batch_size`.
    """
    depth, width = parse_backbone_name(backbone)
    stages = sum(
        (BLOCK_ACTIVATIONS * n_blocks + (DOWNSAMPLE_ACTIVATIONS if stage else 0)) / 2**stage
        for stage, n_blocks in enumerate(BLOCKS_PER_STAGE[depth]))
    per_view = width * (STEM_ACTIVATIONS + stages) + AUGMENTATION_COPIES * n_channels
    per_image = FORWARD_ACTIVATIONS * width + n_channels
    local_batch = -(-batch_size // distributed.planned_world_size())
    value_bytes = FLOAT32_BYTES if accelerations.autocast_dtype is None else AUTOCAST_BYTES
    return int(max(2 * local_batch * per_view, inference_batch_size(batch_size) * per_image)
               * image_size[0] * image_size[1] * value_bytes)


def check_training_memory(backbone: str, n_channels: int, batch_size: int, image_size,
                          device: torch.device, accelerations: Accelerations) -> None:
    """``ValueError`` saying what to change when training will not fit in ``device``'s memory.

    Training may take :data:`~napari_tsimcne.defaults.TRAINING_MEMORY_SHARE`
    of the free memory, as the default image size does; an unknown free
    memory passes.
    """
    available = devices.free_memory(device)
    needed = training_bytes(backbone, n_channels, batch_size, image_size, accelerations)
    if available is None or needed <= TRAINING_MEMORY_SHARE * available:
        return
    height, width = image_size
    fitting = shrunk_size(height, width, max_pixels=(
        TRAINING_MEMORY_SHARE * available * height * width / needed))
    example = (f"image_size={fitting[0]} (--image-size {fitting[0]})"
               if fitting[0] == fitting[1] else f"image_size={fitting}")
    raise ValueError(
        f"Training {backbone} on batches of {batch_size} images of {height}×{width} px "
        f"needs about {_gib(needed)} of memory, but only {_gib(available)} are free on "
        f"{device}. Train on smaller images, e.g. {example}, or on smaller batches "
        "(batch_size).")


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"
