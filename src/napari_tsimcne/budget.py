"""A training plan for a wall-clock budget: epochs per stage from timed real steps.

Users think in minutes, not epochs.  :func:`plan_for_budget` times a few real
training steps of the network on this machine (on a throwaway copy, so the
run itself is unaffected), then splits the budget over the stages by
:data:`BUDGET_SPLIT` and turns each share into epochs.  The time to prepare
the images, to time the steps and to embed the images at the end is taken
off the budget first.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch

from .feature_cache import CACHE_BATCH_SIZE, CACHED_VIEWS
from .loss import make_loss
from .network import TSimCNENetwork
from .trainer import Accelerations, inference_batch_size, training_step

__all__ = ["BUDGET_SPLIT", "StageCosts", "measure_costs", "plan_epochs"]

#: Shares of the budget of pre-training, the readout stage and fine-tuning,
#: per recipe.  From the stage analysis on Fashion-MNIST
#: (``benchmarks/RESULTS.md``): the features gain most per minute in
#: pre-training, the cached readout needs seconds, and tens of fine-tuning
#: epochs add about 0.01 held-out kNN accuracy.
BUDGET_SPLIT = {"neighbors": (0.80, 0.05, 0.15), "paper": (0.70, 0.05, 0.25)}
#: Steps timed after the warm-up steps; the median is used.
TIMED_STEPS = 8
WARMUP_STEPS = 3


@dataclass(frozen=True)
class StageCosts:
    """Measured seconds of the parts of a training on this machine.

    Attributes
    ----------
    epoch_s
        An epoch through the whole network (pre-training, fine-tuning).
    readout_epoch_s
        An epoch of the readout stage.
    readout_setup_s
        Once before the readout stage (the feature cache and neighbour graph).
    embed_s
        One forward pass over all images (the map at the end of training).
    """

    epoch_s: float
    readout_epoch_s: float
    readout_setup_s: float
    embed_s: float


def plan_epochs(budget_s: float, costs: StageCosts, split) -> tuple[int, int, int]:
    """Epochs (pre-training, readout, fine-tuning) that fill ``budget_s`` seconds.

    Every stage gets at least one epoch; raises ``ValueError`` if even that
    does not fit, naming the least budget that does.
    """
    minimum_s = 2 * costs.epoch_s + costs.readout_setup_s + costs.readout_epoch_s + costs.embed_s
    if budget_s < minimum_s:
        raise ValueError(
            f"A time budget of {budget_s:.0f} s is too short for these images on this machine: "
            f"one epoch of each stage takes about {minimum_s:.0f} s. Give at least "
            f"{math.ceil(minimum_s * 1.2)} s, or train on fewer or smaller images "
            "(image_size)."
        )
    # What every plan costs once (the readout stage's cache, the final map), then
    # the stages' shares of the rest.
    available_s = budget_s - costs.embed_s - costs.readout_setup_s
    readout = max(1, int(available_s * split[1] / costs.readout_epoch_s))
    finetune = max(1, int(available_s * split[2] / costs.epoch_s))
    # A stage raised to its one epoch takes its time from pre-training.
    pretrain_s = available_s - readout * costs.readout_epoch_s - finetune * costs.epoch_s
    pretrain = max(1, min(int(available_s * split[0] / costs.epoch_s),
                          int(pretrain_s / costs.epoch_s)))
    return pretrain, readout, finetune


def measure_costs(backbone: str, images, augment, *, batch_size: int, hidden_dim: int,
                  accelerations: Accelerations, cached_readout: bool) -> StageCosts:
    """Time real steps of a fresh network like the one to be trained.

    ``images`` are the training images (:class:`~napari_tsimcne.data.DeviceImages`
    or :class:`~napari_tsimcne.data.StreamedImages`); the first batch of them
    is used.  Torch's random generators are left as they were.
    """
    device = images.device
    batch = next(iter(images.chunks(batch_size)))
    n_images = len(images)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        network = TSimCNENetwork(backbone, batch.shape[1], 128, hidden_dim).to(device)
        accelerations.prepare(network)
        loss_fn = make_loss("euclidean")
        optimizer = accelerations.optimizer(network.parameters(), 1e-3, 0.9, 5e-4)
        step_s = _median_seconds(lambda: training_step(
            network, batch, augment, loss_fn, optimizer, accelerations), device)
        epoch_s = step_s * (n_images // batch_size)
        network.to(memory_format=torch.contiguous_format).eval()
        forward_batch = next(iter(images.chunks(inference_batch_size(batch_size))))
        with torch.no_grad():
            forward_s = _median_seconds(
                lambda: network.features(forward_batch.float().div_(255)), device)
        embed_s = forward_s * n_images / len(forward_batch)
        if cached_readout:
            readout_setup_s = embed_s * (1 + CACHED_VIEWS) + _graph_seconds(n_images)
            readout_epoch_s = _head_step_seconds(network, loss_fn, device) * math.ceil(
                n_images / CACHE_BATCH_SIZE)
        else:  # the paper's readout stage: a forward pass and a readout step per batch
            network.set_trainable(readout_only=True)
            readout_epoch_s = _median_seconds(lambda: training_step(
                network, batch, augment, loss_fn, optimizer), device) * (n_images // batch_size)
            readout_setup_s = 0.0
    return StageCosts(epoch_s, readout_epoch_s, readout_setup_s, embed_s)


def _median_seconds(function, device: torch.device) -> float:
    times = []
    for _ in range(WARMUP_STEPS + TIMED_STEPS):
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[WARMUP_STEPS:])


def _head_step_seconds(network, loss_fn, device: torch.device) -> float:
    head = network.head
    head.replace_readout(2)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    features = torch.randn(CACHE_BATCH_SIZE, 2, network.backbone.out_features, device=device)

    def step():
        loss = loss_fn(head(features[:, 0]), head(features[:, 1]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return _median_seconds(step, device)


def _graph_seconds(n_images: int) -> float:
    """A rough bound for the neighbour search: well under a second per 10,000 images."""
    return 1e-4 * n_images
