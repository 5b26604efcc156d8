"""Training on several processes (GPUs or machines) with PyTorch's distributed engine.

Launch the same script or command once per process with ``torchrun``, which
sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous address;
:class:`napari_tsimcne.TSimCNE` then joins the process group by itself (NCCL
on GPUs, gloo on CPUs).  Launch commands are in ``docs/scaling.md``.

How the work is split, so that the result equals one process training on
the same global batches:

* ``batch_size`` is the *global* batch ``b``; every step, each of the ``W``
  processes takes its own ``b / W`` images of the same global batch (all
  processes draw the same random order) and makes their two views;
* the embeddings of all views are gathered from all processes with a gather
  that passes gradients back (:func:`gather_with_gradients`), so the loss sees
  all ``2b`` views as negatives, as on a single device;
* BatchNorm statistics are computed over the global batch
  (:func:`synchronize_batchnorm`);
* ``DistributedDataParallel`` averages the gradients.  Each process's loss is
  the same global loss, so the gather's backward sums ``W`` equal copies of
  every gradient and the average restores the single-process gradient;
* only the main process (rank 0) writes files or shows progress.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
# torch's recommended home of the differentiable collectives (the public
# torch.distributed.nn.functional ones are deprecated).
import torch.distributed._functional_collectives as funcol
from torch import nn

from .errors import SetupError

__all__ = [
    "DistributedBatchNorm",
    "gather_with_gradients",
    "init_from_environment",
    "is_distributed",
    "is_main_process",
    "local_batchnorm",
    "local_rank",
    "planned_world_size",
    "rank",
    "same_on_all_processes",
    "synchronize_batchnorm",
    "world_size",
]


def launched_distributed() -> bool:
    """Whether this process was started by ``torchrun`` (or similar) with several processes."""
    return planned_world_size() > 1


def planned_world_size() -> int:
    """Processes this run trains in, known before the process group is joined (``WORLD_SIZE``)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def is_distributed() -> bool:
    """Whether a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """Index of this process on its machine (``LOCAL_RANK``), 0 without a launcher."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Rank 0, or the only process: the one that writes files and shows progress."""
    return rank() == 0


def init_from_environment(device: torch.device) -> None:
    """Join the process group described by ``torchrun``'s environment, if not yet joined.

    NCCL for CUDA devices, gloo otherwise.  Does nothing in a single process.
    """
    if not launched_distributed() or (dist.is_available() and dist.is_initialized()):
        return
    if not dist.is_available():
        raise SetupError(
            "WORLD_SIZE > 1 asks for distributed training, but this PyTorch build has no "
            "torch.distributed. Install a standard PyTorch build or run one process."
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)


def same_on_all_processes(value):
    """Rank 0's ``value`` (any picklable object) in every process; ``value`` in a single one.

    For decisions from measured time, such as a time budget's plan, which
    every process must share although each measures its own.
    """
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_with_gradients(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` ``(n, d)`` of all processes in rank order: ``(W * n, d)``.

    Unlike ``dist.all_gather``, gradients flow back to every process's ``z``.
    In a single process ``z`` is returned unchanged.
    """
    if not is_distributed():
        return z
    return funcol.all_gather_single_autograd(z.contiguous(), 0, dist.group.WORLD)


class DistributedBatchNorm(nn.BatchNorm2d):
    """BatchNorm over the batches of all processes, for CPU process groups (gloo).

    ``torch.nn.SyncBatchNorm`` runs only on GPUs, and plain BatchNorm would
    normalise every process's views with their own statistics, so that
    distributed training on CPUs would not equal single-process training.
    Statistics are summed with an all-reduce that passes gradients (two
    passes: mean, then centred squares, for float32 precision).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        # Statistics in float32 also under bf16 autocast, like BatchNorm's own kernels.
        x, dtype = x.float(), x.dtype
        channels = x.shape[1]
        count = torch.tensor([x.numel() / channels], dtype=x.dtype, device=x.device)
        count = _sum_over_processes(count)
        mean = _sum_over_processes(x.sum(dim=(0, 2, 3))) / count
        centred = x - mean[None, :, None, None]
        var = _sum_over_processes(centred.square().sum(dim=(0, 2, 3))) / count
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1 / int(self.num_batches_tracked)
            unbiased = var * count / (count - 1).clamp_min(1)
            self.running_mean.lerp_(mean, momentum)
            self.running_var.lerp_(unbiased, momentum)
        scale = self.weight / torch.sqrt(var + self.eps)
        return (centred * scale[None, :, None, None] + self.bias[None, :, None, None]).to(dtype)


def _sum_over_processes(x: torch.Tensor) -> torch.Tensor:
    """All-reduce (sum) whose gradient is the all-reduced gradient."""
    return funcol.all_reduce(x, "sum", dist.group.WORLD)


def synchronize_batchnorm(network: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm of ``network`` by one that uses the global batch.

    torch's ``SyncBatchNorm`` on GPUs, :class:`DistributedBatchNorm` otherwise.
    Weights, biases and running statistics are kept.  Returns ``network``.
    """
    return _swap_batchnorm(network, nn.SyncBatchNorm if device.type == "cuda" else DistributedBatchNorm)


def local_batchnorm(network: nn.Module) -> nn.Module:
    """Undo :func:`synchronize_batchnorm`: plain ``BatchNorm2d`` layers again."""
    return _swap_batchnorm(network, nn.BatchNorm2d)


_BATCHNORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def _swap_batchnorm(module: nn.Module, kind: type) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, _BATCHNORMS) and type(child) is not kind:
            replacement = kind(child.num_features, child.eps, child.momentum, child.affine,
                               child.track_running_stats)
            replacement.to(device=child.weight.device, dtype=child.weight.dtype)
            replacement.load_state_dict(child.state_dict())
            replacement.train(child.training)
            setattr(module, name, replacement)
        else:
            _swap_batchnorm(child, kind)
    return module
