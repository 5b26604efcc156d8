"""The reference implementation, tsimcne 0.3.12, timed on its own training pipeline.

Everything that runs is the reference's own code, built the way
``tsimcne.TSimCNE.fit`` builds its first stage:

* data: ``TSimCNE.make_dataloader`` -- the reference's ``TransformedPairDataset``
  applies its torchvision transforms (random resized crop 0.2-1, horizontal
  flip, colour jitter 0.4/0.4/0.4/0.1 with p=0.8, grayscale p=0.2, ToTensor)
  twice to every PIL image, in a ``DataLoader`` with the reference's default
  number of worker processes (8), ``shuffle=True``;
* model: ``PLtSimCNE`` with its ``make_model`` (the SimCLR ResNet-18, 3x3
  stride-1 stem, no max-pool; MLP head 512 -> 1024 -> 128) and its
  ``InfoNCECauchy`` loss;
* optimiser: its ``configure_optimizers`` (SGD, momentum 0.9, weight decay
  5e-4, lr 0.03 * b / 256, its cosine schedule);
* loop: a Lightning ``Trainer`` with the reference's trainer arguments
  (gradient clipping by value at 4) and ``Trainer.fit``.

What is timed: one round is one ``Trainer.fit`` of a single epoch over exactly
``n_steps * b`` random uint8 RGB images, handed out as PIL images the way
torchvision's CIFAR-10 dataset does.  The clock runs from Lightning's
``on_fit_start`` hook, just before the loop creates the DataLoader iterator
and its workers start, to ``on_train_batch_end`` of the last batch (after the
optimiser step; CUDA is synchronised there).  The round's step time is that
span divided by ``n_steps``, so every batch's decoding, augmentation,
collation, host-to-device copy, forward, loss, backward, clipping and SGD step
is inside it, and so is the start of the workers, which the reference pays
once per epoch because its workers are not persistent.  So is Lightning's
set-up between ``on_fit_start`` and the first epoch (about 30 ms on a CPU),
which the reference pays once per stage; each round's ``fit`` also builds a
new optimiser, whose first step allocates the momentum buffers.

Why a mean over the epoch and not the median time between consecutive batch
ends: with several workers the batches arrive in bursts (every worker
finishes a batch at about the same time), so most single intervals cost only
the training step and the median would leave the augmentation out.  The
epoch mean charges the first batch's wait (the pipeline fill) to a short
epoch; on a CPU, where workers and training share the cores, that wait is
work the cores do anyway, but on a GPU it overstates the reference's cost by
about one batch's augmentation time divided by ``n_steps``.  ``steady_step_s``
is therefore also returned: the time from the end of batch ``workers - 1`` to
the end of the last whole burst, divided by the batches in between, which
matches the pipelined steady state once ``n_steps >= 2 * workers``.

Not part of the timed work, and switched off so that rounds leave no files:
Lightning's logger, checkpointing, progress bar and model summary (each costs
either nothing per step or only at the end of an epoch).
"""

from __future__ import annotations

import inspect
import logging
import multiprocessing
import tempfile
import time

import numpy as np
import torch
from lightning import pytorch as pl
from PIL import Image
from tsimcne import PLtSimCNE, TSimCNE

_DEFAULTS = inspect.signature(TSimCNE).parameters
#: The reference's default number of DataLoader worker processes.
DEFAULT_WORKERS = _DEFAULTS["num_workers"].default
#: The reference's default images per batch.
DEFAULT_BATCH_SIZE = _DEFAULTS["batch_size"].default
#: The reference's default epochs of its three stages (pretraining, readout, fine-tuning).
DEFAULT_EPOCHS = tuple(_DEFAULTS["total_epochs"].default)


class RandomImages(torch.utils.data.Dataset):
    """``(PIL image, 0)`` pairs from a uint8 array ``(N, H, W, 3)``, as CIFAR-10 gives them."""

    def __init__(self, images: np.ndarray):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return Image.fromarray(self.images[index]), 0


class _EpochClock(pl.Callback):
    """Records the fit start and the end of every training batch (``time.perf_counter``)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.start = None
        self.batch_ends = []
        self.workers_private_mib = 0.0

    def on_fit_start(self, trainer, pl_module):
        self.start = time.perf_counter()
        self.batch_ends = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        last = batch_idx + 1 == trainer.num_training_batches
        if last and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.batch_ends.append(time.perf_counter())
        if last:
            # The workers exit with the epoch, so their memory is read now,
            # after the clock has stopped.
            self.workers_private_mib = sum(_private_mib(p.pid)
                                           for p in multiprocessing.active_children())


def _private_mib(pid: int) -> float:
    """Memory only this process holds (USS: private clean + dirty pages), in MiB; 0 if gone.

    Pages a forked worker still shares with the main process are already in
    the main process's RSS, so only the private ones add to it.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as file:
            return sum(int(line.split()[1]) for line in file
                       if line.startswith(("Private_Clean:", "Private_Dirty:"))) / 1024
    except OSError:
        return 0.0


class ReferenceTSimCNE:
    """The reference's first training stage, run one short epoch at a time.

    Parameters
    ----------
    batch_size
        Images per step ``b`` (``2b`` views), the reference's ``batch_size``.
    image_size
        Side of the square RGB images.
    device
        ``cpu`` or ``cuda[:i]``; the model trains there, augmentation runs in
        the DataLoader workers on the CPU as in the reference.
    num_workers
        DataLoader workers, by default the reference's own default.
    seed
        Seed of the random images.
    """

    def __init__(self, batch_size: int, image_size: int, device: torch.device,
                 num_workers: int = DEFAULT_WORKERS, seed: int = 0):
        previous = torch.get_float32_matmul_precision()
        self.tsimcne = TSimCNE(batch_size=batch_size, image_size=(image_size, image_size),
                               num_workers=num_workers, use_ffcv=False)
        # TSimCNE sets the process-wide precision when it is built; it is kept
        # here and applied only while the reference runs (see matmul_precision).
        self.matmul_precision = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision(previous)
        self.module = self._first_stage_module()
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.parameters = sum(p.numel() for p in self.module.model.parameters())
        self._image_shape = (image_size, image_size, 3)
        self._generator = np.random.default_rng(seed)
        self._root = tempfile.TemporaryDirectory(prefix="tsimcne-reference-")
        self.clock = _EpochClock(self.device)
        # Lightning announces its accelerators at every fit; the rounds need no such lines.
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    def _first_stage_module(self) -> PLtSimCNE:
        """The LightningModule exactly as ``TSimCNE.fit`` builds it for stage one."""
        t = self.tsimcne
        return PLtSimCNE(
            model=t.model, loss=t.loss, metric=t.metric, backbone=t.backbone,
            projection_head=t.projection_head, n_epochs=t.epoch_schedule[0],
            batch_size=t.batch_size, optimizer_name=t.optimizer,
            lr_scheduler_name=t.lr_scheduler, lr=t.learning_rates[0],
            warmup=t.warmup_schedules[0], pretrain_out_dim=t.pretrain_out_dim,
            out_dim=t.out_dim, use_ffcv=False,
        )

    def _trainer(self) -> pl.Trainer:
        accelerator, devices = ("gpu", [self.device.index or 0]) if self.device.type == "cuda" \
            else ("cpu", 1)
        return pl.Trainer(
            max_epochs=1, accelerator=accelerator, devices=devices,
            callbacks=[self.clock], logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=self._root.name, **self.tsimcne.trainer_kwargs,
        )

    def run(self, n_steps: int) -> dict:
        """Train one epoch of ``n_steps`` batches; return its timings.

        Returns
        -------
        ``step_s``: (last batch end - fit start) / n_steps;
        ``steady_step_s``: the steady-state estimate (None if ``n_steps < 2 * workers``);
        ``batch_intervals_s``: fit start to first batch end, then between consecutive batch ends;
        ``workers_private_mib``: the workers' summed private memory at the last batch.
        """
        images = self._generator.integers(0, 256, (n_steps * self.batch_size, *self._image_shape),
                                          dtype=np.uint8)
        loader = self.tsimcne.make_dataloader(RandomImages(images), True, None)
        self._trainer().fit(self.module, train_dataloaders=loader)
        ends = self.clock.batch_ends
        if len(ends) != n_steps:
            raise RuntimeError(f"The reference ran {len(ends)} batches instead of {n_steps}.")
        return {
            "step_s": (ends[-1] - self.clock.start) / n_steps,
            "steady_step_s": self._steady_step_s(ends),
            "batch_intervals_s": np.diff([self.clock.start, *ends]).tolist(),
            "workers_private_mib": self.clock.workers_private_mib,
        }

    def _steady_step_s(self, ends: list[float]) -> float | None:
        """Mean step time over whole bursts of ``workers`` batches after the first burst."""
        burst = max(self.num_workers, 1)
        bursts = (len(ends) - burst) // burst
        if bursts < 1:
            return None
        first, last = burst - 1, burst - 1 + bursts * burst
        return (ends[last] - ends[first]) / (last - first)
