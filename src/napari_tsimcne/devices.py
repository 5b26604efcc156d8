"""Devices: which one a name means, what it can do, and the settings that follow from it.

One home for the rules about devices, used alike by :class:`~napari_tsimcne.TSimCNE`,
the command line (which leaves the settings to the estimator) and the napari
widget (which fills its form with the same values before training):

* :func:`resolve_device`: the device a ``device`` name means;
* :func:`available_devices`: the names that can be chosen on this machine;
* :func:`resolve_backbone`: the backbone of ``backbone="auto"``
  (:data:`CPU_BACKBONE` or :data:`GPU_BACKBONE`);
* :func:`native_bf16`: whether bfloat16 is computed natively (``precision="auto"``);
* :func:`free_memory` and :func:`defaults_for_device`: the device's free
  memory, and the batch size, image size and augmentation derived from the
  images on it.

This module imports torch; the torch-free rules behind the defaults, which
the command line's ``--help`` reads, are in :mod:`napari_tsimcne.defaults`,
and the memory estimates in :mod:`napari_tsimcne.memory`.
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING

import torch

from . import distributed
from .defaults import DataDefaults, data_defaults

if TYPE_CHECKING:  # the trainer imports this module
    from .trainer import Accelerations

__all__ = [
    "CPU_BACKBONE",
    "GPU_BACKBONE",
    "available_devices",
    "defaults_for_device",
    "free_memory",
    "native_bf16",
    "resolve_backbone",
    "resolve_device",
]

#: Backbone of ``backbone="auto"`` on a GPU: the paper's.
GPU_BACKBONE = "resnet18"
#: Backbone of ``backbone="auto"`` on a CPU, chosen by ``benchmarks/quality.py``:
#: in 15 minutes on Fashion-MNIST it pre-trains about 90 epochs and maps at
#: 0.756-0.777 (eight seeds), where resnet10-w32 manages 35-40 epochs, maps
#: at 0.731-0.767 and lays out the training images worse on all three seeds
#: measured, and resnet10-w8 maps at 0.641 (``benchmarks/RESULTS.md``).
CPU_BACKBONE = "resnet10-w16"


def resolve_device(device) -> torch.device:
    """The device a ``device`` parameter means: ``"auto"`` (or None) picks cuda, then mps,
    then cpu; other names are checked to exist (``ValueError`` naming what to pass).

    Under ``torchrun``, ``"auto"`` and ``"cuda"`` mean this process's GPU ``cuda:LOCAL_RANK``.
    """
    if distributed.launched_distributed() and device in (None, "auto", "cuda") and (
        torch.cuda.is_available()
    ):
        return torch.device("cuda", distributed.local_rank())
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} but no CUDA GPU is available; use 'auto' or 'cpu'.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' but Apple's MPS is not available; use 'auto' or 'cpu'.")
    return device


def available_devices() -> list[str]:
    """Device names that can be chosen on this machine: ``"auto"``, ``"cpu"`` and any GPU found
    (``"cuda"``, ``"mps"``); each is accepted by :func:`resolve_device`."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    if torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def resolve_backbone(backbone: str, device: torch.device) -> str:
    """The backbone a ``backbone`` parameter means on ``device``: ``"auto"`` is
    :data:`CPU_BACKBONE` on a CPU and :data:`GPU_BACKBONE` elsewhere."""
    if backbone == "auto":
        return CPU_BACKBONE if device.type == "cpu" else GPU_BACKBONE
    return backbone


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively, so that bf16 autocast is faster.

    Elsewhere (e.g. CPUs without AVX-512 BF16 or AMX) bf16 is emulated and slower.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # torch has no public query for the CPU's bf16 instructions; oneDNN uses
        # AVX-512 BF16 and AMX when present.
        return any(getattr(torch.cpu, query, lambda: False)()
                   for query in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


def free_memory(device: torch.device) -> int | None:
    """Free bytes of ``device``'s memory (RAM for a CPU, and for Apple's MPS, which
    shares it), or None if unknown.

    For RAM, Linux's estimate of the memory available to new work: the free
    pages and the file cache that the kernel gives up on demand.
    """
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # in kB
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux
        return None


def defaults_for_device(device: torch.device, backbone: str, accelerations: Accelerations,
                        n_images: int, height: int, width: int, n_channels: int,
                        dtype) -> DataDefaults:
    """:func:`~napari_tsimcne.defaults.data_defaults` on ``device``, with its free memory.

    ``backbone`` and ``accelerations`` are those training will use; the default image size then leaves room
    for training there (:func:`napari_tsimcne.memory.training_bytes`).
    """
    # Imported here: memory.py needs free_memory from this module, and the
    # trainer it imports needs native_bf16.
    from .memory import training_bytes

    return data_defaults(n_images, height, width, n_channels, dtype, device.type,
                         memory=free_memory(device),
                         training_bytes=partial(training_bytes, backbone, n_channels,
                                                accelerations=accelerations))
