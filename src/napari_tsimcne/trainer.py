"""The training loop: staged contrastive training on a uint8 image tensor.

The images live on the training device as uint8 ``(N, C, H, W)``; every step
takes a batch of indices, converts that batch to float, makes two augmented
views of each image in one batched call, and optimises the InfoNCE loss over
all ``2b`` views.  No per-image Python runs inside a step.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .callbacks import Callback
from .loss import make_loss
from .network import TSimCNENetwork
from .schedule import Stage, learning_rate_factor

__all__ = ["TrainingStopped", "embed", "inference_batch_size", "train", "training_step"]

class TrainingStopped(Exception):
    """Raised inside :func:`train` when a callback asks to stop."""


def train(
    network: TSimCNENetwork,
    images: torch.Tensor,
    stages: Sequence[Stage],
    augment: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    callbacks: Sequence = (),
    progress: Callable[[Stage], object] | None = None,
) -> list[np.ndarray]:
    """Train ``network`` in place through ``stages``.

    Parameters
    ----------
    network
        The network, on the same device as ``images``.
    images
        uint8 tensor ``(N, C, H, W)``.
    stages
        The plan from :func:`napari_tsimcne.schedule.make_stages`.
    augment
        Maps a float batch in ``[0, 1]`` to an augmented batch of the same shape.
    batch_size
        Images per step ``b``; the loss sees ``2b`` views.  The last partial
        batch of an epoch is dropped so that every step has ``2b`` views.
    callbacks
        Callables or :class:`napari_tsimcne.callbacks.Callback` objects.
    progress
        Optional factory of a progress bar (``update``/``set_postfix``/``close``)
        for a stage.

    Returns
    -------
    Mean loss of every epoch, one float array per stage.  If a callback
    stops training, :class:`TrainingStopped` is raised with the history so far
    as its ``history`` attribute and the network as trained up to then.
    """
    stop_checks = [cb.should_stop for cb in callbacks if hasattr(cb, "should_stop")]
    stage_end_hooks = [cb.on_stage_end for cb in callbacks if _overrides(cb, "on_stage_end")]

    def stop_requested() -> bool:
        return any(check() for check in stop_checks)

    history = []

    def stop(where: str):
        error = TrainingStopped(f"Training was stopped in {where}.")
        error.history = [np.asarray(h, dtype=np.float32) for h in history]
        raise error

    for stage_index, stage in enumerate(stages):
        if stage.new_readout:
            network.head.replace_readout(stage.out_dim)
        losses = []
        history.append(losses)
        bar = progress(stage) if progress else None
        try:
            epochs = _run_stage(network, images, stage, augment, batch_size, momentum,
                                weight_decay, stop_requested)
            for epoch, loss in enumerate(epochs):
                losses.append(loss)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}")
                if any([bool(callback(stage_index, epoch, loss)) for callback in callbacks]):
                    stop(f"{stage.name}, epoch {epoch}")
        finally:
            if bar is not None:
                bar.close()
        if stop_requested():
            stop(stage.name)
        if stage_end_hooks:
            embedding = embed(network, images.split(inference_batch_size(batch_size)),
                              device=images.device)
            for hook in stage_end_hooks:
                hook(stage_index, embedding)
    network.set_trainable(readout_only=False)
    return [np.asarray(h, dtype=np.float32) for h in history]


def _overrides(callback, method: str) -> bool:
    return hasattr(callback, method) and getattr(type(callback), method, None) is not getattr(
        Callback, method
    )


def _run_stage(network, images, stage, augment, batch_size, momentum, weight_decay,
               stop_requested):
    """Generator: trains one stage, yielding the mean loss of every epoch.

    Returns early, without a loss for the unfinished epoch, once
    ``stop_requested()`` is true.
    """
    loss_fn = make_loss(stage.loss)
    network.train()
    network.set_trainable(stage.readout_only)
    parameters = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=stage.lr, momentum=momentum,
                                weight_decay=weight_decay)
    n_images = images.shape[0]
    steps_per_epoch = n_images // batch_size
    total_steps = steps_per_epoch * stage.epochs
    warmup_steps = round(stage.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, total_steps, warmup_steps, stage.anneal)
    )
    for _ in range(stage.epochs):
        order = torch.randperm(n_images, device=images.device)
        epoch_loss = torch.zeros((), device=images.device)
        for step in range(steps_per_epoch):
            if stop_requested():
                return
            batch = images[order[step * batch_size : (step + 1) * batch_size]]
            epoch_loss += training_step(network, batch, augment, loss_fn, optimizer,
                                        readout_only=stage.readout_only)
            scheduler.step()
        mean_loss = float(epoch_loss) / steps_per_epoch
        if not np.isfinite(mean_loss):
            raise FloatingPointError(
                f"The loss became {mean_loss} in {stage.name}. Lower the learning rate (lr) "
                "or check the images for extreme values."
            )
        yield mean_loss


def inference_batch_size(training_batch_size) -> int:
    """Images per forward-only batch: the training batch size, but at least 256.

    Without gradients to keep, larger batches cost little memory and run faster.
    """
    size = int(training_batch_size) if isinstance(training_batch_size, numbers.Integral) else 0
    return max(256, size)


def training_step(network, batch, augment, loss_fn, optimizer, *, readout_only=False):
    """One optimiser step on a uint8 batch ``(b, C, H, W)``; returns the loss (a tensor).

    Both views of every image come from one batched call of ``augment``.
    """
    with torch.no_grad():
        x = batch.float().div_(255)
        views = augment(torch.cat([x, x]))
    # A frozen backbone needs no autograd graph: the readout stage then costs
    # a forward pass only.
    with torch.set_grad_enabled(not readout_only):
        hidden = network.head.hidden(network.features(views))
    z = network.head.readout(hidden)
    loss = loss_fn(z[: len(batch)], z[len(batch) :])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def embed(
    network: nn.Module,
    batches,
    *,
    features: bool = False,
    device: torch.device,
) -> np.ndarray:
    """Run ``network`` in eval mode over uint8 batches; return float32 ``(N, d)``.

    ``batches`` yields uint8 tensors ``(n, C, H, W)``; with ``features=True``
    the backbone features ``H`` are returned instead of the embedding.
    """
    was_training = network.training
    network.eval()
    try:
        outputs = []
        for batch in batches:
            x = batch.to(device, non_blocking=True).float().div_(255)
            out = network.features(x) if features else network(x)
            outputs.append(out.float().cpu())
        return torch.cat(outputs).numpy()
    finally:
        network.train(was_training)
