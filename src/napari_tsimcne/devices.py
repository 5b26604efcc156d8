"""Devices: which one a ``device`` name means.

One home for the rules about devices, used by the library, the command line
and the napari widget alike.  This module imports torch; the torch-free
defaults of the command line's ``--help`` are in :mod:`napari_tsimcne.defaults`.
"""

from __future__ import annotations

import torch

from . import distributed

__all__ = ["resolve_device"]


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
