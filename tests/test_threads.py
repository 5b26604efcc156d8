"""The thread governor: all threads on a quiet machine, one while that is faster, and back."""

import pytest
import torch

from napari_tsimcne.threads import ThreadGovernor


class StepClock:
    """A clock whose steps last ``seconds_per_step[threads]`` for torch's current thread count."""

    def __init__(self, seconds_per_step):
        self.seconds_per_step = dict(seconds_per_step)
        self.now = 0.0
        self.started = False
        self.threads = []  # of every step timed

    def __call__(self):
        # Called once before and once after every step: the second call advances.
        if self.started:
            self.threads.append(torch.get_num_threads())
            self.now += self.seconds_per_step[self.threads[-1]]
        self.started = not self.started
        return self.now


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def run_steps(governor, n_steps):
    """Thread count of each of ``n_steps`` steps taken under ``governor``."""
    threads = []
    for _ in range(n_steps):
        with governor.step():
            threads.append(torch.get_num_threads())
    return threads


def test_a_quiet_machine_keeps_all_threads_apart_from_the_probes(two_threads):
    clock = StepClock({2: 0.07, 1: 0.09})
    governor = ThreadGovernor(2, clock=clock)
    threads = run_steps(governor, 400)
    probes = threads.count(1)
    assert threads[:8] == [2] * 8 and threads[-1] == 2
    # Probes of five steps at 8, then after 128 and 256 steps: about 4% of the steps.
    assert 0 < probes <= 15


def test_a_busy_machine_moves_to_one_thread_and_back_when_it_is_quiet(two_threads):
    clock = StepClock({2: 0.30, 1: 0.09})  # a competitor holds a core
    governor = ThreadGovernor(2, clock=clock)
    busy = run_steps(governor, 300)
    # One thread, apart from probes of two (every 64, then 128, 256... steps).
    assert busy[20:].count(1) / len(busy[20:]) > 0.9
    clock.seconds_per_step = {2: 0.07, 1: 0.09}  # the competitor has gone
    quiet = run_steps(governor, 300)
    assert quiet[-100:].count(2) >= 90


def test_a_machine_that_gets_busy_is_seen_before_the_next_scheduled_probe(two_threads):
    clock = StepClock({2: 0.07, 1: 0.09})
    governor = ThreadGovernor(2, clock=clock, interval=1000, max_interval=1000)
    run_steps(governor, 50)  # past the first probe; the next is 1,000 steps away
    clock.seconds_per_step = {2: 0.30, 1: 0.09}
    assert run_steps(governor, 30)[-10:] == [1] * 10


def test_a_probe_on_a_much_slower_thread_count_ends_after_one_step(two_threads):
    clock = StepClock({2: 1.0, 1: 0.09})  # beside two busy processes
    governor = ThreadGovernor(2, clock=clock)
    run_steps(governor, 300)
    on_two = clock.threads[20:].count(2)
    # Probes of two threads after 64, 128 steps...: one step each, not five.
    assert 1 <= on_two <= 3


def test_restore_sets_all_threads_back(two_threads):
    governor = ThreadGovernor(2, clock=StepClock({2: 0.30, 1: 0.09}))
    assert run_steps(governor, 40)[-1] == 1
    governor.restore()
    assert torch.get_num_threads() == 2


def test_one_thread_leaves_nothing_to_choose():
    before = torch.get_num_threads()
    governor = ThreadGovernor(1, clock=StepClock({before: 1.0}))
    assert run_steps(governor, 50) == [before] * 50
    governor.restore()
    assert torch.get_num_threads() == before


def test_training_on_a_busy_machine_ends_with_the_threads_it_began_with(
        two_threads, make_estimator, images, monkeypatch):
    from napari_tsimcne import threads

    # Every step on two threads looks slow, so the governor moves to one.
    real_governor = threads.ThreadGovernor

    def slow_two_threads(max_threads, **kwargs):
        governor = real_governor(max_threads, first_probe=2, probe_steps=2,
                                 clock=StepClock({2: 0.3, 1: 0.1}))
        seen.append(governor)
        return governor

    seen = []
    monkeypatch.setattr("napari_tsimcne.trainer.ThreadGovernor", slow_two_threads)
    make_estimator(epochs=(3, 1, 1)).fit(images)
    assert len(seen) == 1 and seen[0].max_threads == 2
    assert 1 in seen[0].clock.threads  # it trained on one thread for a while
    assert torch.get_num_threads() == 2
