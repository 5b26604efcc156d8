"""How long a training will take, and how long it has left.

Before the first step the estimate is what the timed steps of
:func:`napari_tsimcne.budget.measure_costs` predict for the plan.  After
every epoch it is the rest of the plan at the pace the run has kept so far
(the measured time of its finished epochs over their predicted time), so that
a machine that is busy, or slows down under sustained load, is seen in the
estimate.  This module imports no torch: the command line formats durations
with :func:`format_duration` before it loads anything heavy.
"""

from __future__ import annotations

import time

from .callbacks import Callback

__all__ = ["TimeLeft", "format_duration"]


def format_duration(seconds: float) -> str:
    """A duration for people: ``"42 s"``, ``"3 min 05 s"``, ``"1 h 12 min"``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h {rest:02d} min"


class TimeLeft(Callback):
    """Callback that estimates the seconds left in a training and tells ``listeners``.

    Parameters
    ----------
    costs : :class:`~napari_tsimcne.budget.StageCosts`
        Measured costs of an epoch of each kind on this machine.
    listeners : sequence
        Objects with ``on_time_left(seconds)`` (e.g.
        :class:`~napari_tsimcne.callbacks.Callback` subclasses), told the
        estimate when training begins and after every epoch.
    start : (int, int), default (0, 0)
        Stage and epoch where training begins (a resumed run's position).

    After every epoch, :attr:`seconds_left` holds the newest estimate.
    Stage-end work outside the epochs (the maps sent to callbacks) is part of
    the measured pace, not of the prediction.
    """

    def __init__(self, costs, listeners, start=(0, 0)):
        self.costs = costs
        self.listeners = list(listeners)
        self.position = tuple(start)
        self.stages = []
        self.measured_s = self.predicted_s = 0.0
        self.last_epoch_end = None
        self.seconds_left = None

    def on_train_begin(self, stages) -> None:
        """Called with the plan, and again with a revised one."""
        self.stages = list(stages)
        if self.last_epoch_end is None:
            self.last_epoch_end = time.perf_counter()
        self._tell(self._predicted_rest(*self.position) * self._pace())

    def __call__(self, stage: int, epoch: int, loss: float) -> bool:
        now = time.perf_counter()
        self.measured_s += now - self.last_epoch_end
        current = self.stages[stage]
        self.predicted_s += self.costs.epoch_seconds(current) + (
            self.costs.setup_seconds(current) if epoch == 0 else 0.0)
        self.last_epoch_end = now
        self.position = (stage, epoch + 1)
        self._tell(self._predicted_rest(stage, epoch + 1) * self._pace())
        return False

    def _pace(self) -> float:
        """Measured over predicted time of the epochs so far; 1 before the first."""
        return self.measured_s / self.predicted_s if self.predicted_s > 0 else 1.0

    def _predicted_rest(self, stage: int, epoch: int) -> float:
        """Predicted seconds from epoch ``epoch`` of ``stage`` to the end, with the final map."""
        rest = self.costs.embed_s
        for index in range(stage, len(self.stages)):
            first = epoch if index == stage else 0
            left = max(self.stages[index].epochs - first, 0)
            rest += left * self.costs.epoch_seconds(self.stages[index])
            if first == 0 and left:
                rest += self.costs.setup_seconds(self.stages[index])
        return rest

    def _tell(self, seconds: float) -> None:
        self.seconds_left = seconds
        for listener in self.listeners:
            listener.on_time_left(seconds)
