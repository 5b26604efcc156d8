"""CPU threads under load: torch's work on all its threads, or on one while that is faster.

Beside another CPU-bound process, torch's threads wait for each other at every
layer, and a waiting thread's core is the competitor's: on 2 cores two
threads fell to 7-56% of their quiet speed, depending on the machine, while
one thread kept 99% of its own (``benchmarks/RESULTS.md``, "Machine D,
2026-12-02 (night)").  Alone, two threads are 1.2-1.8 times as fast as one.
No fixed thread count is right in both conditions, so
:class:`ThreadGovernor` times the steps of a loop of torch work (training
steps, the forward passes of an embedding or a feature cache) and every so
often tries the other count for a few steps, keeping whichever is faster.
:func:`governor_for` is where the library decides which work is governed.

Because the loops of torch work are governed, the library keeps OpenMP's
default of waiting threads that spin before they sleep: on a quiet machine
that trained 1.5 times as fast as sleeping waits on machine D, and beside a
busy process the governor moves the work to one thread, which waits for no
other (``benchmarks/RESULTS.md``, "Machine D, 2026-12-02 (late)").

Its probes fall on fixed step numbers, so two runs on a quiet machine take
the same steps on the same threads (and give the same map bit for bit)
wherever one thread count is clearly the faster;
on a busy machine the thread counts, and so the last bits of the result,
follow the load.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections import deque

import torch

from . import distributed

__all__ = ["ThreadGovernor", "governing", "governor_for"]


def governor_for(device: torch.device) -> "ThreadGovernor":
    """The governor of torch work on ``device``, to use as a context manager.

    It governs all of torch's threads on a CPU; on a GPU, and in distributed
    runs, it does nothing: distributed processes step together, and one that
    changed its threads alone would only wait for the others.  Leaving the
    ``with`` block sets torch's thread count back to what it was.
    """
    governed = device.type == "cpu" and not distributed.is_distributed()
    return ThreadGovernor(torch.get_num_threads() if governed else 1)


def governing(device: torch.device, governor: "ThreadGovernor | None" = None):
    """Context manager for a loop that runs inside training or on its own.

    Yields ``governor`` (training's, whose thread choice the loop then shares
    and which training restores), or without one a new :func:`governor_for`
    ``device`` that restores torch's threads when the loop ends.
    """
    return contextlib.nullcontext(governor) if governor is not None else governor_for(device)


class ThreadGovernor:
    """Chooses, step by step, between ``max_threads`` torch threads and one.

    Use :meth:`step` around every step and :meth:`start_stage` when the steps
    change their cost (a new stage, another loop); the thread count chosen
    carries over into the next loop.  After ``first_probe`` steps of
    a stage, and then every ``interval`` steps (doubling up to
    ``max_interval`` while the choice stands), it runs ``probe_steps`` steps
    (plus one to settle) on the other thread count and keeps that count if
    their median step is shorter by the factor ``margin``.  A run of steps
    ``slowdown`` times as long as the last chosen median (the machine got
    busy) probes at once, and a probe step ``abandon`` times as long as the
    steps before it ends the probe (beside two busy processes, one step on
    two threads took ten times one on one thread).  :meth:`restore` sets torch
    back to ``max_threads``.

    Parameters
    ----------
    max_threads
        The thread count to use on a quiet machine (torch's at the start); with
        1 there is nothing to choose and the governor does nothing.
    probe_steps, first_probe, interval, max_interval
        Steps timed per probe (4), before a stage's first probe (8), between
        probes (64, doubling up to 1024).
    margin, slowdown, abandon
        Factors of step time: to change the thread count (1.2), to probe
        early (1.5), to end a probe (3.0).
    clock
        Seconds as a float (default ``time.perf_counter``).
    """

    def __init__(self, max_threads: int, *, probe_steps: int = 4, first_probe: int = 8,
                 interval: int = 64, max_interval: int = 1024, margin: float = 1.2,
                 slowdown: float = 1.5, abandon: float = 3.0, clock=time.perf_counter):
        self.max_threads = max_threads
        self.probe_steps, self.first_probe = probe_steps, first_probe
        self.base_interval, self.max_interval = interval, max_interval
        self.margin, self.slowdown, self.abandon = margin, slowdown, abandon
        self.clock = clock
        self._interval = interval
        self._probe_times = None
        self.start_stage()

    @property
    def active(self) -> bool:
        return self.max_threads > 1

    def start_stage(self) -> None:
        """Forget the step times of the stage before; probe after ``first_probe`` steps.

        A probe that the stage before left unfinished is dropped, back on the
        thread count chosen before it.
        """
        if self._probe_times is not None:
            self._switch()
        self._recent = deque(maxlen=self.probe_steps)
        self._probe_times = None  # step times on the other count while probing
        self._before = None  # median step before the probe
        self._chosen_median = None
        self._countdown = self.first_probe

    @contextlib.contextmanager
    def step(self):
        """Times the step run inside it; may change torch's thread count after it."""
        if not self.active:
            yield
            return
        start = self.clock()
        yield
        self._record(self.clock() - start)

    def restore(self) -> None:
        """Set torch's thread count back to ``max_threads``."""
        if self.active and torch.get_num_threads() != self.max_threads:
            torch.set_num_threads(self.max_threads)

    def __enter__(self) -> "ThreadGovernor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.restore()

    def _record(self, seconds: float) -> None:
        if self._probe_times is not None:
            self._probe_times.append(seconds)
            if seconds > self.abandon * self._before:
                self._decide(seconds)
            # The first step on a new thread count sets up its kernels: not counted.
            elif len(self._probe_times) > self.probe_steps:
                self._decide(statistics.median(self._probe_times[1:]))
            return
        self._recent.append(seconds)
        self._countdown -= 1
        if len(self._recent) < self.probe_steps:
            return
        median = statistics.median(self._recent)
        slowed = (self._chosen_median is not None
                  and median > self.slowdown * self._chosen_median)
        if self._countdown <= 0 or slowed:
            self._before = median
            self._switch()
            self._probe_times = []

    def _decide(self, probed: float) -> None:
        if probed * self.margin < self._before:
            self._interval = self.base_interval  # the load changed: look again soon
            self._chosen_median = probed
        else:
            self._switch()
            self._interval = min(2 * self._interval, self.max_interval)
            self._chosen_median = self._before
        self._probe_times = None
        self._recent.clear()
        self._countdown = self._interval

    def _switch(self) -> None:
        """From all threads to one, or back."""
        torch.set_num_threads(1 if torch.get_num_threads() == self.max_threads
                              else self.max_threads)
