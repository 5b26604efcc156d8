"""Checkpoints of a running training, for resuming after a crash or a stop.

A checkpoint is a file ``checkpoint-S-EEEEE.pt`` in a folder of the user's
choice, written after every ``every`` epochs and at the end of every stage,
where ``S`` is the stage (0-based) and ``EEEEE`` the epochs of it done.  It
holds what training needs to continue exactly where it was (see
:func:`napari_tsimcne.trainer.training_state`) and what the estimator needs to
check that a resumed run is the same run (parameters, image shape, intensity
range, a fingerprint of the images).

Checkpoints are written like model files (:mod:`napari_tsimcne.persistence`):
to a temporary file, flushed to disk, renamed, read with
``torch.load(weights_only=True)`` and checked against the archive's checksums.
The newest :data:`KEEP` are kept, so that a damaged newest file still leaves a
good one; :meth:`CheckpointFolder.latest` returns the newest good one.

The rules of resuming, one for the library, the command line and the napari
widget, are here too:

* a run is identified by its signature (:func:`run_signature`): the
  parameters of :data:`RUN_PARAMS`, the resolved backbone, the image shape,
  the number of images, the epochs, and a :func:`fingerprint` of the images;
  a run resumes only from a checkpoint with the same signature
  (:func:`check_same_run` names what differs);
* :func:`read_resume_state` finds the checkpoint to continue from.  Asked to
  resume from a folder without any checkpoint file, training starts from the
  beginning with a warning, whose message :func:`nothing_to_resume` gives a
  front end before training; a folder whose checkpoints are all damaged is
  refused, and so is a new run in a folder that holds an earlier run's
  checkpoints.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import distributed
from .data import CHUNK_SIZE
from .defaults import CHECKPOINT_EVERY
from .errors import warn
from .persistence import plain_value, read_model_file, write_model_file

__all__ = ["KEEP", "RUN_PARAMS", "CheckpointFolder", "check_same_run", "checkpoint_size",
           "fingerprint", "nothing_to_resume", "read_checkpoint", "read_resume_state",
           "run_signature", "run_value"]

KIND = "napari-tsimcne-checkpoint"
#: Checkpoints kept in the folder (the newest ones).
KEEP = 2
_NAME = re.compile(r"^checkpoint-(\d+)-(\d+)\.pt$")
#: Parameters of :class:`~napari_tsimcne.TSimCNE` that must be those of the
#: interrupted run to resume it (learning rate, momentum and weight decay may change).
RUN_PARAMS = (
    "epochs", "batch_size", "out_dim", "augmentation", "image_size", "random_state",
    "pretrain_dim", "pretrain_loss", "hidden_dim", "warmup_epochs", "crop_scale", "precision",
    "recipe",
)


class CheckpointFolder:
    """Where and how often a training writes checkpoints.

    Parameters
    ----------
    folder
        Created if missing.
    every
        Write after every ``every`` epochs of a stage, and at its end
        (:data:`~napari_tsimcne.defaults.CHECKPOINT_EVERY` by default).
    metadata
        Plain values stored in every checkpoint (the estimator's parameters,
        image shape, ...), checked by the estimator when it resumes.
    """

    def __init__(self, folder, every: int = CHECKPOINT_EVERY, metadata: dict | None = None):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"checkpoint_every must be a positive number of epochs, got {every!r}.")
        self.folder = Path(folder)
        self.every = every
        self.metadata = dict(metadata or {})

    def due(self, epochs_done: int, stage_epochs: int) -> bool:
        """Whether to write after ``epochs_done`` epochs of a stage of ``stage_epochs``."""
        return epochs_done % self.every == 0 or epochs_done == stage_epochs

    def check_writable(self, checkpoint_bytes: int) -> None:
        """Fail now, before training, if checkpoints cannot be written here.

        Creates the folder, writes and removes a probe file, and asks for the
        free space of :meth:`space_needed`.
        """
        if not distributed.is_main_process():
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.folder) as probe:
                probe.write(b"0")
        except OSError as error:
            raise OSError(
                f"Cannot write checkpoints to {self.folder}: {error.strerror or error}. "
                "Choose a folder you can write to (checkpoint_dir; on the command line, --out)."
            ) from None
        needed = self.space_needed(checkpoint_bytes)
        free = shutil.disk_usage(self.folder).free
        if free < needed:
            raise OSError(
                f"Not enough free disk space for checkpoints in {self.folder}: they need "
                f"about {needed / 2**20:.0f} MiB, {free / 2**20:.0f} MiB are free. Free some "
                "space or choose another checkpoint folder."
            )

    def space_needed(self, checkpoint_bytes: int) -> int:
        """Free bytes a run writing checkpoints of ``checkpoint_bytes`` here needs at most.

        The folder holds up to :data:`KEEP` checkpoints plus the one being
        written.  Checkpoints already here (those a resumed run continues
        from) take space now, but each write is followed by the deletion of
        all but the newest :data:`KEEP`, which frees theirs: before write
        ``k`` the new files take ``k`` checkpoints and the rotations so far
        have freed the existing files beyond the newest ``KEEP - k + 1``.
        """
        existing = [path.stat().st_size for path in self.paths()]  # newest first
        needed = 0
        for k in range(1, KEEP + 2):
            freed = 0 if k == 1 else sum(existing[max(KEEP - k + 1, 0):])
            needed = max(needed, k * checkpoint_bytes - freed)
        return needed

    def write(self, stage: int, epochs_done: int, training_state: dict) -> Path | None:
        """Write a checkpoint atomically and drop all but the newest :data:`KEEP`.

        Only the main process writes; the others return None.
        """
        if not distributed.is_main_process():
            return None
        path = self.folder / f"checkpoint-{stage}-{epochs_done:05d}.pt"
        write_model_file(path, {"metadata": self.metadata, "stage": stage,
                                "epoch": epochs_done, **training_state}, kind=KIND)
        for old in self.paths()[KEEP:]:
            old.unlink(missing_ok=True)
        return path

    def paths(self) -> list[Path]:
        """The checkpoint files of the folder, newest first."""
        if not self.folder.is_dir():
            return []
        found = [(tuple(map(int, m.groups())), self.folder / name)
                 for name in os.listdir(self.folder) if (m := _NAME.match(name))]
        return [path for _, path in sorted(found, reverse=True)]

    def latest(self) -> dict | None:
        """The newest readable checkpoint (with its ``"path"``), or None if there is none.

        Damaged files (e.g. from a disk that filled up) are skipped with a warning.
        """
        for path in self.paths():
            try:
                return read_checkpoint(path)
            except ValueError as error:
                warn(f"Skipping a damaged checkpoint: {error}")
        return None


def checkpoint_size(network) -> int:
    """About the size of a checkpoint: weights and buffers, and SGD's momentum per weight."""
    weights = sum(p.numel() * p.element_size() for p in network.parameters())
    buffers = sum(b.numel() * b.element_size() for b in network.buffers())
    return 2 * weights + buffers + 2**20


def read_checkpoint(path) -> dict:
    """Read a checkpoint file; ``ValueError`` naming the file if it is not a good one."""
    state = read_model_file(path, kind=KIND)
    missing = {"metadata", "stage", "epoch", "network", "rng", "history"} - set(state)
    if missing:
        raise ValueError(f"{path} is an incomplete checkpoint: {sorted(missing)} missing.")
    state["path"] = Path(path)
    return state


def run_value(value):
    """``value`` as a checkpoint stores and compares it: plain values, sequences as lists."""
    if callable(value):
        return "custom"  # a user's augmentation function
    if isinstance(value, np.random.RandomState):
        return "RandomState"
    value = plain_value(value)
    if isinstance(value, (list, tuple)):
        return [run_value(v) for v in value]
    return value


def run_signature(params: dict, *, backbone: str, image_shape, n_images: int, epochs) -> dict:
    """What identifies a run, as its checkpoints store it (their ``metadata``).

    ``params`` are the estimator's parameters (those of :data:`RUN_PARAMS`
    count), ``backbone`` and ``image_shape (H, W, C)`` what they resolved to,
    ``epochs`` the epochs per stage (the plan, for a time budget).  A
    checkpointed run adds ``"images"``, the :func:`fingerprint` of its images.
    """
    return {
        "backbone": backbone, "image_shape": list(image_shape), "n_images": int(n_images),
        **{name: run_value(params[name]) for name in RUN_PARAMS},
        "epochs": run_value(epochs),
    }


def fingerprint(images) -> str:
    """BLAKE2 hash of every uint8 training image, to recognise a dataset on resume.

    ``images`` are the training images (:class:`~napari_tsimcne.data.DeviceImages`
    or :class:`~napari_tsimcne.data.StreamedImages`).  They are uint8 already,
    so hashing all of them costs little next to an epoch (BLAKE2 hashes
    several hundred MB a second): a changed image anywhere in the collection
    is seen.
    """
    digest = hashlib.blake2b(digest_size=32)
    for batch in images.chunks(CHUNK_SIZE):
        digest.update(batch.cpu().numpy().tobytes())
    return digest.hexdigest()


def check_same_run(state: dict | None, run: dict) -> None:
    """Refuse to resume from ``state``, a checkpoint of another run, naming what differs.

    ``run`` is the new run's :func:`run_signature`; ``state`` None (a new run) passes.
    """
    if state is None:
        return
    differences = [
        f"{key}: {state['metadata'].get(key)!r} in the checkpoint, {value!r} now"
        for key, value in run.items() if state["metadata"].get(key) != value
    ]
    if differences:
        raise ValueError(
            f"{state['path']} belongs to a different run ({'; '.join(differences)}). "
            "Resume with the same images and parameters, or train anew without resume."
        )


def nothing_to_resume(folder) -> str | None:
    """What resuming from ``folder`` warns when it holds no checkpoint file; None if it has some.

    Such a resume trains from the start, with this message as a warning
    (:func:`read_resume_state`): a front end shows it before training.
    """
    if CheckpointFolder(folder).paths():
        return None
    return f"No checkpoint in {folder}; training from the start."


def read_resume_state(checkpoints: CheckpointFolder | None, resume: bool = False,
                      resume_from=None) -> dict | None:
    """The checkpoint a run continues from (see :func:`read_checkpoint`), or None for a new run.

    ``resume_from`` names a checkpoint file; ``resume`` asks for the newest
    good one of ``checkpoints``, the run's folder.  Without any checkpoint
    file there, a warning says that training starts from the beginning
    (:func:`nothing_to_resume`).  ``ValueError`` saying what to do for
    ``resume`` without a folder, for a folder whose checkpoints are all
    damaged, and for a new run in a folder that already holds checkpoints.
    """
    if resume_from is not None:
        return read_checkpoint(resume_from)
    if resume:
        if checkpoints is None:
            raise ValueError("resume=True needs checkpoint_dir, the folder of the checkpoints.")
        notice = nothing_to_resume(checkpoints.folder)
        if notice is not None:
            warn(notice)
            return None
        state = checkpoints.latest()
        if state is None:
            raise ValueError(
                f"{checkpoints.folder} holds no readable checkpoint: "
                f"{', '.join(p.name for p in checkpoints.paths())} are damaged. Delete them to "
                "train from the start."
            )
        return state
    existing = checkpoints.paths() if checkpoints is not None else []
    if existing:
        # The folder keeps only its newest checkpoints; an earlier run's
        # later ones would push this run's out, and resume would find them.
        raise ValueError(
            f"{checkpoints.folder} already holds checkpoints of an earlier run (newest: "
            f"{existing[0].name}). Resume that run (resume=True, or --resume), or choose "
            "another checkpoint folder (or delete those files) to start a new one."
        )
    return None
