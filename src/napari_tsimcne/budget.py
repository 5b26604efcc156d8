"""A training plan for a wall-clock budget: epochs per stage from timed real steps.

Users think in minutes, not epochs.  :func:`measure_costs` times a few real
training steps of the network on this machine (on a throwaway copy, so the
run itself is unaffected), then :func:`plan_epochs` splits the budget over the
stages by :data:`BUDGET_SPLIT` and turns each share into epochs.  The time to prepare
the images, to time the steps and to embed the images at the end is taken
off the budget first.  Machines slow down under sustained load (thermal or
power limits: on a 2-core cloud machine the epochs of 15-minute runs became
about 30% slower after the fifth minute), so
:func:`revise_plan` fits what is still to come to the time left after every
epoch: shorter when the run is behind its plan, longer when the first timed
steps were slower than the machine then ran (within a stage only in its first
quarter).
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
from .schedule import Stage, make_stages
from .trainer import Accelerations, inference_batch_size, training_step

__all__ = ["BUDGET_SPLIT", "StageCosts", "measure_costs", "plan_epochs", "planned_seconds",
           "revise_plan"]

#: Shares of the budget of the stages (pre-training, readout, fine-tuning and,
#: for ``"neighbors"``, the final readout), per recipe.  From the stage
#: analysis on Fashion-MNIST (``benchmarks/RESULTS.md``): the features gain
#: most per minute in pre-training, a cached readout needs seconds, tens of
#: fine-tuning epochs changed the held-out kNN accuracy by -0.015 to +0.009,
#: and the final readout adds about 0.01 after them.
BUDGET_SPLIT = {"neighbors": (0.75, 0.05, 0.15, 0.05), "paper": (0.70, 0.05, 0.25)}
#: A revised plan is lengthened only when it would leave more than this share
#: of the time left unused, and at most by :data:`MAX_LENGTHENING` times (a
#: pace measured over one short stage is a rough guide).
SLACK = 0.05
MAX_LENGTHENING = 2.0
#: Within a stage, a plan is lengthened only up to this share of the stage
#: done (the learning rate then rises from at least 85% of its peak).
LENGTHEN_WITHIN = 0.25
#: A plan that is shortened keeps the readout stages whole while they cost at
#: most this share of the time left: a 15-minute run whose pre-training
#: overran and whose readout was cut from 201 epochs to 1 mapped its held-out
#: images at kNN 0.556, against about 0.72 to 0.76 in runs that kept it whole.
READOUT_KEPT = 0.1
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
        An epoch of a readout stage.
    readout_setup_s
        Once before a readout stage on cached features (the cache and neighbour graph).
    embed_s
        One forward pass over all images (the map at the end of training).
    """

    epoch_s: float
    readout_epoch_s: float
    readout_setup_s: float
    embed_s: float

    def epoch_seconds(self, stage: Stage) -> float:
        """Seconds of an epoch of ``stage``: ``readout_epoch_s`` if it trains the head
        alone, else ``epoch_s`` (the whole network)."""
        return self.readout_epoch_s if stage.head_only else self.epoch_s

    def setup_seconds(self, stage: Stage) -> float:
        """Seconds once before ``stage``: a cached readout's cache and graph, else 0."""
        return self.readout_setup_s if stage.cached_features else 0.0


def plan_epochs(budget_s: float, costs: StageCosts, recipe: str) -> tuple[int, ...]:
    """Epochs per stage of ``recipe``'s plan that fill ``budget_s`` seconds.

    The budget is split over the stages by :data:`BUDGET_SPLIT`.  Every stage
    gets at least one epoch; raises ``ValueError`` if even that does not fit,
    naming the least budget that does.
    """
    split = BUDGET_SPLIT[recipe]
    stages = make_stages((1, 1, 1), lr=1.0, recipe=recipe)  # the kinds of stage, for their costs
    minimum_s = planned_seconds(stages, costs) + costs.embed_s
    if budget_s < minimum_s:
        raise ValueError(
            f"A time budget of {budget_s:.0f} s is too short for these images on this machine: "
            f"one epoch of each stage takes about {minimum_s:.0f} s. Give at least "
            f"{math.ceil(minimum_s * 1.2)} s, or train on fewer or smaller images "
            "(image_size)."
        )
    # What every plan costs once (the readout stages' caches, the final map), then
    # the stages' shares of the rest.
    available_s = budget_s - costs.embed_s - sum(costs.setup_seconds(stage) for stage in stages)
    later = [max(1, int(available_s * share / costs.epoch_seconds(stage)))
             for stage, share in zip(stages[1:], split[1:])]
    # A stage raised to its one epoch takes its time from pre-training.
    pretrain_s = available_s - sum(n * costs.epoch_seconds(stage)
                                   for stage, n in zip(stages[1:], later))
    pretrain = max(1, min(int(available_s * split[0] / costs.epoch_s),
                          int(pretrain_s / costs.epoch_s)))
    return (pretrain, *later)


def planned_seconds(stages, costs: StageCosts, part=slice(None)) -> float:
    """Seconds that ``costs`` predict for the ``part`` (a slice) of the plan ``stages``.

    ``stages`` are :class:`~napari_tsimcne.schedule.Stage` objects; a cached
    readout stage includes its setup.  The final embedding is not included.
    """
    return sum(costs.setup_seconds(stage) + stage.epochs * costs.epoch_seconds(stage)
               for stage in list(stages)[part])


def revise_plan(stages, next_stage: int, spent_s: float, left_s: float,
                costs: StageCosts, epochs_done: int = 0) -> tuple[int, ...]:
    """The epochs of the plan ``stages`` with what is still to come fitted to ``left_s`` seconds.

    Training has done the stages before ``next_stage`` and the first
    ``epochs_done`` epochs of it, in ``spent_s`` seconds; compared with what
    ``costs`` predicted for that, it gives the machine's pace now, which the
    rest is assumed to keep.

    At a stage boundary (``epochs_done == 0``), if the stages still to come no
    longer fit in ``left_s`` (less the final embedding), they are shortened in
    proportion, each to at least one epoch; if they would end more than
    :data:`SLACK` of the time left early (the first steps were timed slower
    than the machine then ran), they are lengthened in proportion, at most
    :data:`MAX_LENGTHENING` times, so that the run uses its budget.

    Within a stage (``epochs_done > 0``) the plan changes only when it would
    miss the budget by more than :data:`SLACK`: shortened, the rest of the stage
    (possibly nothing) and the later stages in proportion; lengthened, the same,
    but only in the first :data:`LENGTHEN_WITHIN` of the stage.  A stage's
    learning rate anneals over its planned epochs, so lengthening one later
    would raise its rate again; the boundary lengthens the later stages instead.
    """
    stages = list(stages)
    epochs = [stage.epochs for stage in stages]
    within, current = epochs_done > 0, stages[next_stage]
    done_s = (planned_seconds(stages, costs, slice(0, next_stage))
              + epochs_done * costs.epoch_seconds(current)
              + (costs.setup_seconds(current) if within else 0.0))
    pace = spent_s / max(done_s, 1e-9)
    to_come = [0 if index < next_stage else n for index, n in enumerate(epochs)]
    to_come[next_stage] -= epochs_done
    to_come_s = [n * costs.epoch_seconds(stage) for stage, n in zip(stages, to_come)]
    epochs_s = sum(to_come_s)
    # Only epochs change, not the setup of a stage not yet begun or the final embedding.
    fixed_s = costs.embed_s + sum(
        costs.setup_seconds(stage) for stage in stages[next_stage + within:])
    available_s = max(left_s / pace - fixed_s, 0.0)
    share = available_s / max(epochs_s, 1e-9)
    if within:
        early = epochs_done <= LENGTHEN_WITHIN * epochs[next_stage]
        if 1.0 - SLACK <= share <= (1.0 + SLACK if early else math.inf):
            return tuple(epochs)
    elif 1.0 <= share <= 1.0 + SLACK:
        return tuple(epochs)
    shares = [min(share, MAX_LENGTHENING)] * len(epochs)
    readout_s = sum(s for stage, s in zip(stages, to_come_s) if stage.head_only)
    if share < 1.0 and 0.0 < readout_s <= READOUT_KEPT * available_s < epochs_s:
        # A readout stage costs little (seconds on cached features), and a map cut
        # to a few of its epochs is not laid out: the other stages give up the time.
        shares = [1.0 if stage.head_only else
                  (available_s - readout_s) / (epochs_s - readout_s) for stage in stages]
    revised = list(epochs)
    for stage in range(next_stage, len(epochs)):
        revised[stage] = max(1, int(to_come[stage] * shares[stage]))
    if within:  # what is left of the stage may shrink to nothing: it then ends now
        revised[next_stage] = epochs_done + int(to_come[next_stage] * shares[next_stage])
    return tuple(revised)


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
