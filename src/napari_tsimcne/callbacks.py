"""Hooks into training, in the spirit of openTSNE's callbacks.

A callback is any callable ``callback(stage, epoch, loss)``, called after every
epoch with the stage index and epoch counted from 0 and the epoch's mean loss;
a true return value stops training.  Subclasses of :class:`Callback` can also
react to the end of a stage, hear the estimated time left, and ask to stop
between two steps, which is what an interactive front end needs for a live
map, a time estimate and a prompt Cancel.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Callback"]


class Callback:
    """Base class of callbacks with the optional hooks; override what you need."""

    def __call__(self, stage: int, epoch: int, loss: float) -> bool:
        """After every epoch; return True to stop training."""
        return False

    def on_train_begin(self, stages: list) -> None:
        """Before the first step, with the plan: the :class:`~napari_tsimcne.schedule.Stage` list.

        With a time budget this is where the planned epochs become known;
        it is called again, with the new plan, if the budget shortens the
        stages still to come.
        """

    def on_stage_end(self, stage: int, embedding: np.ndarray) -> None:
        """After every stage, with the training images' current output ``(N, d)``.

        ``d`` is the stage's output dimension: 128 after pre-training, 2 after
        the later stages.  Computing it costs one pass over the images, and
        only happens when a callback overrides this method.
        """

    def on_time_left(self, seconds: float) -> None:
        """When training begins and after every epoch: the estimated seconds until it ends.

        The estimate comes from timed steps on this machine and the pace of
        the epochs so far (:class:`napari_tsimcne.clock.TimeLeft`).
        """

    def should_stop(self) -> bool:
        """Polled before every optimiser step; return True to stop at once."""
        return False
