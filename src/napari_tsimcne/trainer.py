"""The training loop: staged contrastive training on uint8 images.

The images come as :class:`napari_tsimcne.data.DeviceImages` (all of them on
the training device as uint8 ``(N, C, H, W)``) or, for data larger than
memory, :class:`napari_tsimcne.data.StreamedImages`.  Every step takes a batch
of indices, converts that batch to float, makes two augmented views of each
image in one batched call, and optimises the InfoNCE loss over all ``2b``
views.  No per-image Python runs inside a step.

Under ``torchrun`` the same loop runs in every process on its share of each
global batch; see :mod:`napari_tsimcne.distributed`.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import distributed
from .backbones import parse_backbone_name
from .callbacks import Callback
from .data import DeviceImages
from .feature_cache import HeadRun
from .loss import make_loss
from .neighbors import neighbor_graph, partners
from .network import TSimCNENetwork
from .schedule import NEIGHBORS, Stage, learning_rate_factor

__all__ = [
    "Accelerations", "TrainingStopped", "embed", "inference_batch_size", "train", "training_step",
]


@dataclass(frozen=True)
class Accelerations:
    """Speed-ups of the training step, all off by default (the plain float32 step).

    Attributes
    ----------
    autocast_dtype
        Run the network under ``torch.autocast`` with this dtype (``torch.bfloat16``
        on GPUs); the loss is computed in float32.
    channels_last
        Store images and weights channels-last, which tensor cores prefer.
    fused_optimizer
        Use SGD's fused CUDA kernel.
    compile
        ``torch.compile`` the network (minutes of compilation, then faster steps).
    """

    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False
    fused_optimizer: bool = False
    compile: bool = False

    @classmethod
    def for_device(cls, device: torch.device, precision: str = "auto",
                   compile: bool = False, backbone: str | None = None) -> Accelerations:
        """What pays off on ``device`` (measured in ``benchmarks/RESULTS.md``).

        Channels-last on CPUs and CUDA GPUs (on CPUs not for ``backbone``
        widths under 8); bf16 autocast with ``precision="auto"`` where the
        hardware computes in bf16 natively (CUDA GPUs with bf16, CPUs with
        AVX-512 BF16 or AMX); fused SGD on CUDA.  ``precision`` is ``"auto"``,
        ``"bf16"`` or ``"fp32"``.
        """
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}.")
        cuda = device.type == "cuda"
        bf16 = precision == "bf16" or (precision == "auto" and native_bf16(device))
        channels_last = cuda or (device.type == "cpu" and not _too_narrow_for_channels_last(
            backbone))
        return cls(autocast_dtype=torch.bfloat16 if bf16 else None,
                   channels_last=channels_last, fused_optimizer=cuda, compile=compile)

    def autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)

    def prepare(self, network: nn.Module) -> nn.Module:
        """Lay out ``network``'s weights for training (channels-last); returns it."""
        if self.channels_last:
            network.to(memory_format=torch.channels_last)
        return network

    def optimizer(self, parameters, lr: float, momentum: float,
                  weight_decay: float) -> torch.optim.SGD:
        """SGD over ``parameters``, with the fused kernel where it is enabled."""
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               fused=True if self.fused_optimizer else None)


def _too_narrow_for_channels_last(backbone: str | None) -> bool:
    # At width 4, channels-last, oneDNN's AVX2 backward pass of a 1x1 shortcut
    # convolution stopped returning within a few steps in most runs (torch
    # 2.14); and networks this narrow gain nothing from the layout.
    return backbone is not None and parse_backbone_name(backbone)[1] < 8


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


class TrainingStopped(Exception):
    """Raised inside :func:`train` when a callback asks to stop."""


def train(
    network: TSimCNENetwork,
    images,
    stages: Sequence[Stage],
    augment: Callable[[torch.Tensor], torch.Tensor],
    *,
    batch_size: int,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    callbacks: Sequence = (),
    progress: Callable[[Stage], object] | None = None,
    accelerations: Accelerations = Accelerations(),
    checkpoints=None,
    resume: dict | None = None,
    replan: Callable[[int, list[Stage]], list[Stage]] | None = None,
) -> list[np.ndarray]:
    """Train ``network`` in place through ``stages``.

    Parameters
    ----------
    network
        The network, on the same device as ``images``.
    images
        :class:`~napari_tsimcne.data.DeviceImages`,
        :class:`~napari_tsimcne.data.StreamedImages`, or a uint8 tensor ``(N, C, H, W)``.
    stages
        The plan from :func:`napari_tsimcne.schedule.make_stages`.
    augment
        Maps a float batch in ``[0, 1]`` to an augmented batch of the same shape.
    batch_size
        Images per step ``b`` (over all processes when distributed); the loss
        sees ``2b`` views.  The last partial batch of an epoch is dropped so
        that every step has ``2b`` views.
    callbacks
        Callables or :class:`napari_tsimcne.callbacks.Callback` objects.
    progress
        Optional factory of a progress bar (``update``/``set_postfix``/``close``)
        for a stage.
    accelerations
        Speed-ups of the step, see :class:`Accelerations`.
    checkpoints
        A :class:`napari_tsimcne.checkpoint.CheckpointFolder` that receives a
        :func:`training_state` every few epochs and at the end of every stage.
    resume
        A checkpoint's training state to continue from (its ``"stage"`` and
        ``"epoch"`` say where); the network must be built as for a new run.
    replan
        Called before every stage after the first as ``replan(stage_index,
        stages)``; returns the stages to go on with (a time budget shortens
        the later ones when the run is behind).  Callbacks' ``on_train_begin``
        then sees the new plan.

    Returns
    -------
    Mean loss of every epoch, one float array per stage.  If a callback
    stops training, :class:`TrainingStopped` is raised with the history so far
    as its ``history`` attribute and the network as trained up to then.
    """
    if isinstance(images, torch.Tensor):
        images = DeviceImages(images)
    if batch_size % distributed.world_size():
        raise ValueError(
            f"batch_size={batch_size} cannot be split evenly over {distributed.world_size()} "
            "processes; pass a multiple of the number of processes."
        )
    stop_checks = [cb.should_stop for cb in callbacks if hasattr(cb, "should_stop")]
    stage_end_hooks = [cb.on_stage_end for cb in callbacks if _overrides(cb, "on_stage_end")]
    for callback in callbacks:
        if _overrides(callback, "on_train_begin"):
            callback.on_train_begin(list(stages))

    def stop_requested() -> bool:
        return any(check() for check in stop_checks)

    history = []

    def stop(where: str):
        error = TrainingStopped(f"Training was stopped in {where}.")
        error.history = [np.asarray(h, dtype=np.float32) for h in history]
        raise error

    # The batch order must be the same in every process, the augmentations not.
    order_seed = int(torch.randint(2**62, ()))
    order_generator = torch.Generator().manual_seed(order_seed)
    if distributed.is_distributed():
        torch.manual_seed(order_seed + distributed.rank())
    start = (0, 0)
    graph = None  # nearest neighbours in H, built by the first stage that needs them
    if resume is not None:
        start = _restore(network, resume, stages, order_generator)
        history = [list(h) for h in resume["history"][: start[0] + (start[1] > 0)]]
        graph = resume.get("graph")
    if distributed.is_distributed():
        distributed.synchronize_batchnorm(network, images.device)
    accelerations.prepare(network)
    stages = list(stages)
    try:
        for stage_index in range(len(stages)):
            if stage_index < start[0]:
                continue
            first_epoch = start[1] if stage_index == start[0] else 0
            if replan is not None and stage_index > 0 and first_epoch == 0:
                revised = list(replan(stage_index, stages))
                if revised != stages:
                    stages = revised
                    for callback in callbacks:
                        if _overrides(callback, "on_train_begin"):
                            callback.on_train_begin(list(stages))
            stage = stages[stage_index]
            if stage.new_readout and first_epoch == 0:
                network.head.replace_readout(stage.out_dim)
            if first_epoch == 0:
                history.append([])
            losses = history[-1]
            if stage.cached_features:
                run = HeadRun(network, images, stage, augment, order_generator)
                graph = run.graph if graph is None else graph
            else:
                if stage.neighbor_share > 0 and graph is None:
                    graph = _feature_graph(network, images, batch_size, order_generator)
                run = StageRun(network, images, stage, batch_size, momentum, weight_decay,
                               accelerations, resume if first_epoch else None,
                               graph if stage.neighbor_share > 0 else None)
            bar = progress(stage) if progress and distributed.is_main_process() else None
            try:
                if bar is not None:
                    bar.update(first_epoch)
                for epoch, loss in enumerate(run.epochs(first_epoch, augment, order_generator,
                                                        stop_requested), start=first_epoch):
                    losses.append(loss)
                    if checkpoints is not None and checkpoints.due(epoch + 1, stage.epochs) and (
                            run.checkpoints_within or epoch + 1 == stage.epochs):
                        checkpoints.write(stage_index, epoch + 1, training_state(
                            network, run, order_generator, history, graph))
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
                embedding = embed(network, images.chunks(inference_batch_size(batch_size)),
                                  device=images.device)
                for hook in stage_end_hooks:
                    hook(stage_index, embedding)
    finally:
        network.set_trainable(readout_only=False)
        if accelerations.channels_last:
            network.to(memory_format=torch.contiguous_format)
        distributed.local_batchnorm(network)
    return [np.asarray(h, dtype=np.float32) for h in history]


def _overrides(callback, method: str) -> bool:
    return hasattr(callback, method) and getattr(type(callback), method, None) is not getattr(
        Callback, method
    )


def _feature_graph(network, images, batch_size: int, generator) -> torch.Tensor:
    """Nearest neighbours (``(N, k)`` indices) of the training images in the features ``H``."""
    features = embed(network, images.chunks(inference_batch_size(batch_size)), features=True,
                     device=images.device)
    seed = int(torch.randint(2**62, (), generator=generator))
    return neighbor_graph(features, NEIGHBORS, random_state=seed)


class StageRun:
    """One stage in progress: its optimiser, learning-rate schedule and epochs.

    ``state`` (a checkpoint's ``"optimizer"`` and ``"scheduler"``) continues a
    stage that was interrupted.  With a neighbour ``graph``, a share
    ``stage.neighbor_share`` of the positive pairs are an image and a neighbour.
    """

    checkpoints_within = True

    def __init__(self, network, images, stage: Stage, batch_size: int, momentum: float,
                 weight_decay: float, accelerations: Accelerations, state: dict | None = None,
                 graph: torch.Tensor | None = None):
        self.network, self.images, self.stage = network, images, stage
        self.batch_size, self.accelerations, self.graph = batch_size, accelerations, graph
        network.train()
        network.set_trainable(stage.readout_only)
        parameters = [p for p in network.parameters() if p.requires_grad]
        self.optimizer = accelerations.optimizer(parameters, stage.lr, momentum, weight_decay)
        self.steps_per_epoch = len(images) // batch_size
        total_steps = self.steps_per_epoch * stage.epochs
        warmup_steps = round(stage.warmup_epochs * self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: learning_rate_factor(step, total_steps, warmup_steps, stage.anneal),
        )
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        self.model = _step_model(network, images.device, accelerations)

    def epochs(self, first_epoch, augment, order_generator, stop_requested):
        """Generator: trains epochs ``first_epoch..``, yielding each one's mean loss.

        Returns early, without a loss for the unfinished epoch, once
        ``stop_requested()`` is true.  A non-finite epoch loss raises
        ``FloatingPointError`` before anything is yielded for that epoch.
        """
        loss_fn = make_loss(self.stage.loss)
        batch_size = self.batch_size
        # This process's share of every global batch.
        share = batch_size // distributed.world_size()
        first = distributed.rank() * share
        device = self.images.device
        paired = self.graph is not None

        def index_batches(order):
            for step in range(self.steps_per_epoch):
                anchors = order[step * batch_size : (step + 1) * batch_size]
                if not paired:
                    yield anchors[first : first + share]
                    continue
                # Drawn for the whole global batch, so every process draws alike.
                positives = partners(anchors, self.graph, self.stage.neighbor_share,
                                     order_generator)
                yield torch.cat([anchors[first : first + share], positives[first : first + share]])

        for _ in range(first_epoch, self.stage.epochs):
            order = torch.randperm(len(self.images), generator=order_generator)
            epoch_loss = torch.zeros((), device=device)
            for batch in self.images.select(index_batches(order)):
                if stop_requested():
                    return
                epoch_loss += training_step(self.model, batch, augment, loss_fn, self.optimizer,
                                            self.accelerations, paired=paired)
                self.scheduler.step()
            mean_loss = float(epoch_loss) / self.steps_per_epoch
            if not np.isfinite(mean_loss):
                raise FloatingPointError(
                    f"The loss became {mean_loss} in {self.stage.name}. Lower the learning "
                    "rate (lr) or check the images for extreme values."
                )
            yield mean_loss

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}


def training_state(network, run: StageRun, order_generator, history, graph=None) -> dict:
    """What a checkpoint needs to continue training exactly: tensors and plain values.

    Weights (with BatchNorm statistics and the per-channel normalisation),
    optimiser and schedule, the random generators, the loss history and the
    neighbour graph (``None`` before a stage has built one).
    """
    return {
        "graph": graph,
        "network": {k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        **run.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "order": order_generator.get_state(),
        },
        "history": [list(map(float, h)) for h in history],
    }


def _restore(network, state: dict, stages, order_generator) -> tuple[int, int]:
    """Load a checkpoint's weights and random generators; return where to go on.

    The position ``(stage, epoch)`` is the next epoch to train; a checkpoint
    from the end of a stage continues with the next stage.
    """
    readout = state["network"]["head.readout.weight"]
    if readout.shape[0] != network.head.out_dim:
        network.head.replace_readout(readout.shape[0])
    network.load_state_dict(state["network"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    order_generator.set_state(state["rng"]["order"])
    if distributed.is_distributed():
        # Only rank 0's generator was saved; the others continue from their own seeds.
        torch.manual_seed(int(order_generator.initial_seed()) + distributed.rank()
                          + 7919 * (state["stage"] + 1) * (state["epoch"] + 1))
    stage, epoch = state["stage"], state["epoch"]
    if epoch >= stages[stage].epochs:
        return stage + 1, 0
    return stage, epoch


def _step_model(network: nn.Module, device: torch.device, accelerations: Accelerations):
    """``network`` as the training step calls it: wrapped for distributed training, compiled."""
    model = network
    if distributed.is_distributed():
        model = nn.parallel.DistributedDataParallel(
            network, device_ids=[device] if device.type == "cuda" else None
        )
    if accelerations.compile:
        model = torch.compile(model)
    return model


def inference_batch_size(training_batch_size) -> int:
    """Images per forward-only batch: the training batch size, but at least 256.

    Without gradients to keep, larger batches cost little memory and run faster.
    """
    size = int(training_batch_size) if isinstance(training_batch_size, numbers.Integral) else 0
    return max(256, size)


def training_step(model, batch, augment, loss_fn, optimizer,
                  accelerations: Accelerations = Accelerations(), *,
                  paired: bool = False) -> torch.Tensor:
    """One optimiser step on a uint8 batch ``(b, C, H, W)``; returns the loss (a tensor).

    The two views of every image (augmented twice) are the positive pairs; with
    ``paired``, ``batch`` holds ``2b`` images whose halves are the pairs (an
    image and its partner, each augmented once).  All views come from one
    batched call of ``augment``.  When distributed, ``batch`` is this
    process's share and the loss is over the views of all processes.  A
    frozen backbone (readout stage) records no autograd graph, so that stage
    costs about a forward pass.
    """
    with torch.no_grad():
        x = batch.float().div_(255)
        views = augment(x if paired else torch.cat([x, x]))
        if accelerations.channels_last:
            views = views.contiguous(memory_format=torch.channels_last)
    with accelerations.autocast(views.device):
        z = model(views)
    z1, z2 = _all_views(z.float(), len(views) // 2)
    loss = loss_fn(z1, z2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _all_views(z: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and second views of all processes' images, ``(W * n, d)`` each, in rank order."""
    gathered = distributed.gather_with_gradients(z)
    pairs = gathered.view(-1, 2, n, z.shape[1])
    return pairs[:, 0].reshape(-1, z.shape[1]), pairs[:, 1].reshape(-1, z.shape[1])


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
