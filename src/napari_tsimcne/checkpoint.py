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
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

from . import distributed
from .persistence import read_model_file, write_model_file

__all__ = ["KEEP", "CheckpointFolder", "checkpoint_size"]

KIND = "napari-tsimcne-checkpoint"
#: Checkpoints kept in the folder (the newest ones).
KEEP = 2
_NAME = re.compile(r"^checkpoint-(\d+)-(\d+)\.pt$")


class CheckpointFolder:
    """Where and how often a training writes checkpoints.

    Parameters
    ----------
    folder
        Created if missing.
    every
        Write after every ``every`` epochs of a stage, and at its end.
    metadata
        Plain values stored in every checkpoint (the estimator's parameters,
        image shape, ...), checked by the estimator when it resumes.
    """

    def __init__(self, folder, every: int, metadata: dict | None = None):
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
                warnings.warn(f"Skipping a damaged checkpoint: {error}", stacklevel=2)
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
