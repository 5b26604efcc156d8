"""Training from the napari plugin: settings, progress events, Cancel, resuming, errors.

The Train map widget runs :func:`prepare_and_train` in a worker thread; a
:class:`TrainingProgress` callback hands it a :class:`ProgressEvent` after
every epoch and stage, and its :meth:`TrainingProgress.stop` makes training
stop before the next optimiser step.  With a checkpoint folder in
:class:`TrainingSettings`, a stopped (or crashed) training leaves its
checkpoints there, and the same settings with ``resume=True`` continue it.
Nothing here needs napari or Qt.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..callbacks import Callback
from ..checkpoint import nothing_to_resume
from ..clock import format_duration
from ..defaults import CHECKPOINT_EVERY, DEFAULT_SEED
from ..errors import USER_ERRORS
from ..estimator import TrainingStopped, TSimCNE
from ..model import TSimCNEModel
from ..schedule import PAPER_EPOCHS, batch_size_for, make_stages
from .layer_layout import TrainingImages, TrainingRequest, training_images

__all__ = [
    "STACK_AXES",
    "Outcome",
    "ProgressEvent",
    "TrainingProgress",
    "TrainingResult",
    "TrainingSettings",
    "capture",
    "check_checkpoints",
    "pca_2d",
    "place_on_map",
    "prepare_and_place",
    "prepare_and_train",
    "train_map",
]

#: Layout of the stacks the widget makes (:func:`.layer_layout.training_images`):
#: channels last, whatever the channel count.
STACK_AXES = "NYXC"


@dataclass(frozen=True)
class TrainingSettings:
    """The choices of the training form; see :class:`napari_tsimcne.TSimCNE` for each.

    ``time_budget`` (seconds) plans the epochs on this machine; ``epochs``
    count only without one.  ``checkpoint_dir`` (``None``: no checkpoints)
    and ``checkpoint_every`` are the estimator's; ``resume`` continues the
    training whose checkpoints are in ``checkpoint_dir`` (see :func:`train_map`).
    """

    time_budget: float | None = None
    epochs: tuple[int, ...] = PAPER_EPOCHS
    batch_size: int | str = "auto"
    image_size: int | None | str = "auto"
    augmentation: str = "auto"
    backbone: str = "auto"
    device: str = "auto"
    seed: int = DEFAULT_SEED
    checkpoint_dir: Path | None = None
    checkpoint_every: int = CHECKPOINT_EVERY
    resume: bool = False

    def estimator(self, callbacks=()) -> TSimCNE:
        return TSimCNE(
            epochs=self.epochs, time_budget=self.time_budget, batch_size=self.batch_size,
            image_size=self.image_size,
            augmentation=self.augmentation, backbone=self.backbone, device=self.device,
            random_state=self.seed, callbacks=list(callbacks),
            checkpoint_dir=self.checkpoint_dir, checkpoint_every=self.checkpoint_every,
            axes=STACK_AXES,
        )


def check_checkpoints(settings: TrainingSettings) -> str | None:
    """What the widget says before resuming: ``None``, or that there is nothing to resume.

    A resume from a folder without checkpoints trains from the start, as
    ``TSimCNE.fit`` and the command line do
    (:func:`napari_tsimcne.checkpoint.nothing_to_resume` gives the message).
    ``ValueError`` for a resume without a checkpoint folder.
    """
    if settings.resume and settings.checkpoint_dir is None:
        raise ValueError("Resuming needs the checkpoint folder of the training to continue: "
                         "choose it under Checkpoints.")
    return nothing_to_resume(settings.checkpoint_dir) if settings.resume else None


@dataclass(frozen=True)
class ProgressEvent:
    """Progress of training after an epoch, or at the end of a stage with its map.

    Attributes
    ----------
    stage, n_stages : int
        Index of the stage (from 0) and number of stages.
    stage_name : str
    epoch, stage_epochs : int
        Epochs finished in this stage, and the stage's length.
    done, total : int
        Epochs finished over all stages, and their total.
    loss : float or None
        Mean loss of the last epoch (``None`` for a stage's end).
    embedding : array (N, 2) or None
        At a stage's end: the training images' current map.
    preview : bool
        ``embedding`` is a PCA of the 128-D pre-training output.
    seconds_left : float or None
        Estimated seconds until training ends (:mod:`napari_tsimcne.clock`).
    """

    stage: int
    n_stages: int
    stage_name: str
    epoch: int
    stage_epochs: int
    done: int
    total: int
    loss: float | None = None
    embedding: np.ndarray | None = None
    preview: bool = False
    seconds_left: float | None = None

    def describe(self) -> str:
        """One line for a status bar, e.g.
        ``pre-training (1/4) · epoch 12/40 · loss 5.432 · about 3 min 10 s left``."""
        text = (f"{self.stage_name} ({self.stage + 1}/{self.n_stages}) · "
                f"epoch {self.epoch}/{self.stage_epochs}")
        if self.loss is not None:
            text += f" · loss {self.loss:.3f}"
        if self.seconds_left is not None:
            text += f" · about {format_duration(self.seconds_left)} left"
        return text


class TrainingProgress(Callback):
    """Callback that reports :class:`ProgressEvent` objects to ``emit`` and can stop training.

    ``emit`` is called from the training thread.  :meth:`stop` may be called
    from any thread; training stops before its next optimiser step.
    """

    def __init__(self, epochs, emit: Callable[[ProgressEvent], None]):
        """``epochs`` per stage, or ``None`` when a time budget plans them."""
        self._emit = emit
        self._stop = threading.Event()
        self._seconds_left = None
        self._began = False
        # With a time budget (epochs None) the plan is known when training begins.
        self._set_stages(make_stages(epochs, lr=1.0) if epochs is not None else [])

    def _set_stages(self, stages) -> None:
        self._stages = stages
        self._starts = np.cumsum([0] + [s.epochs for s in stages])

    def on_train_begin(self, stages) -> None:
        first_call = not self._began  # later calls bring a revised plan
        self._began = True
        self._set_stages(stages)
        if first_call:  # the plan and the time estimate, before the first epoch ends
            self._emit(self._event(0, 0))

    def on_time_left(self, seconds: float) -> None:
        self._seconds_left = seconds

    def _event(self, stage: int, epoch: int, **kwargs) -> ProgressEvent:
        return ProgressEvent(
            stage=stage, n_stages=len(self._stages), stage_name=self._stages[stage].name,
            epoch=epoch, stage_epochs=self._stages[stage].epochs,
            done=int(self._starts[stage] + epoch), total=int(self._starts[-1]),
            seconds_left=self._seconds_left, **kwargs,
        )

    def __call__(self, stage: int, epoch: int, loss: float) -> bool:
        self._emit(self._event(stage, epoch + 1, loss=float(loss)))
        return False

    def on_stage_end(self, stage: int, embedding: np.ndarray) -> None:
        preview = embedding.shape[1] > 2
        self._emit(self._event(stage, self._stages[stage].epochs,
                               embedding=pca_2d(embedding) if preview else embedding,
                               preview=preview))

    @property
    def total_epochs(self) -> int:
        return int(self._starts[-1])

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


def pca_2d(values) -> np.ndarray:
    """First two principal components of ``values (N, D)``, float32 ``(N, 2)``."""
    values = np.asarray(values, dtype=np.float64)
    centred = values - values.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return (centred @ components[:2].T).astype(np.float32)


@dataclass
class TrainingResult:
    """A trained model with the map and backbone features of its training images.

    ``stopped_early`` is true when Cancel came during the 2-D stages: the
    map exists but training did not run to the end.  ``notice`` is what the
    person should know about the run, e.g. that Resume found nothing to resume.
    """

    model: TSimCNEModel
    embedding: np.ndarray
    features: np.ndarray
    stopped_early: bool
    notice: str | None = None


def train_map(images, settings: TrainingSettings, progress: TrainingProgress) -> TrainingResult:
    """Train a model on ``images (N, H, W, C)`` and compute what the explore tools need.

    With ``settings.resume`` training continues from the newest checkpoint in
    ``settings.checkpoint_dir``; a stopped training keeps its checkpoints there.
    Raises :class:`TrainingStopped` when stopped before the 2-D map exists,
    the core's ``ValueError``/``TypeError`` for unsuitable input or a checkpoint
    of a different run, ``OSError`` for a checkpoint folder that cannot be
    written, and ``ValueError`` from :func:`check_checkpoints`.
    """
    notice = check_checkpoints(settings)
    with warnings.catch_warnings():
        if notice is not None:  # shown by the widget with the result instead
            warnings.filterwarnings("ignore", message=re.escape(notice))
        model = settings.estimator([progress]).fit(images, resume=settings.resume).model_
    return TrainingResult(model, model.embedding, model.features(images), model.stopped_early,
                          notice)


def place_on_map(model: TSimCNEModel, images) -> tuple[np.ndarray, np.ndarray]:
    """Place new ``images (N, H, W, C)`` on a model's map: ``(embedding (N, 2), features (N, D))``.

    The model may have been trained elsewhere on another layout (its ``axes``).
    """
    return model.transform(images, axes=STACK_AXES, return_features=True)


def prepare_and_train(request: TrainingRequest, settings: TrainingSettings,
                      progress: TrainingProgress) -> tuple[TrainingImages, TrainingResult]:
    """Cut or stack the images of ``request``, then train on them (:func:`train_map`).

    A batch larger than the images is lowered to them
    (:func:`napari_tsimcne.schedule.batch_size_for`).
    """
    prepared = training_images(request)
    settings = replace(settings, batch_size=batch_size_for(settings.batch_size,
                                                           len(prepared.images)))
    return prepared, train_map(prepared.images, settings, progress)


def prepare_and_place(request: TrainingRequest, model: TSimCNEModel):
    """Cut or stack the images of ``request``, then place them on ``model``'s map.

    Returns the prepared images and :func:`place_on_map`'s ``(embedding, features)``.
    """
    prepared = training_images(request)
    return prepared, place_on_map(model, prepared.images)


@dataclass
class Outcome:
    """What a background task returned, or the message of the expected error that ended it."""

    value: object = None
    error: str | None = None
    stopped: bool = False


def capture(function: Callable, *args, **kwargs) -> Outcome:
    """Run ``function``; return its value, or the message of a
    :data:`~napari_tsimcne.errors.USER_ERRORS` error.

    :class:`TrainingStopped` gives ``Outcome(stopped=True)``.  Other
    exceptions propagate, so that a bug keeps its traceback.
    """
    try:
        return Outcome(value=function(*args, **kwargs))
    except TrainingStopped as stop:
        return Outcome(error=str(stop), stopped=True)
    except USER_ERRORS as error:
        return Outcome(error=str(error) or type(error).__name__)
