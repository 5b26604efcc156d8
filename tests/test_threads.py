"""The thread governor: all threads on a quiet machine, one while that is faster, and back."""

import pytest
import torch

from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.feature_cache import CACHED_VIEWS, HeadRun
from napari_tsimcne.schedule import make_stages
from napari_tsimcne.threads import ThreadGovernor
from napari_tsimcne.trainer import embed


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


def test_a_loop_that_ends_during_a_probe_leaves_the_next_on_the_chosen_threads(two_threads):
    governor = ThreadGovernor(2, clock=StepClock({2: 0.07, 1: 0.09}))
    assert run_steps(governor, 9)[-1] == 1  # the probe of one thread began at step 9
    governor.start_stage()
    assert run_steps(governor, 8) == [2] * 8


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


@pytest.fixture
def slow_on_two_threads(monkeypatch):
    """Governors that the library makes see steps on two threads 3x as slow as on one.

    Returns the list of the governors made, in order.
    """
    from napari_tsimcne import threads

    real_governor = threads.ThreadGovernor
    made = []

    def make(max_threads, **kwargs):
        made.append(real_governor(max_threads, first_probe=2, probe_steps=2,
                                  clock=StepClock({2: 0.3, 1: 0.1})))
        return made[-1]

    monkeypatch.setattr(threads, "ThreadGovernor", make)
    return made


def test_training_on_a_busy_machine_ends_with_the_threads_it_began_with(
        two_threads, slow_on_two_threads, make_estimator, images):
    make_estimator(epochs=(3, 1, 1)).fit(images)
    training = slow_on_two_threads[0]
    assert training.max_threads == 2
    assert 1 in training.clock.threads  # it trained on one thread for a while
    assert torch.get_num_threads() == 2


def test_an_embedding_on_its_own_is_governed_and_restores_the_threads(
        two_threads, slow_on_two_threads, small_network_and_images):
    network, images = small_network_and_images
    embedding = embed(network, images.chunks(8), device=torch.device("cpu"))
    assert len(embedding) == 96
    [governor] = slow_on_two_threads
    assert len(governor.clock.threads) == 12  # one step a batch
    assert 1 in governor.clock.threads
    assert torch.get_num_threads() == 2


def test_the_cached_readout_runs_its_forward_passes_and_steps_under_trainings_governor(
        two_threads, small_network_and_images):
    network, images = small_network_and_images
    readout = make_stages((1, 3, 1), lr=0.1)[1]
    network.head.replace_readout(2)
    clock = StepClock({2: 0.3, 1: 0.1})
    governor = ThreadGovernor(2, first_probe=2, probe_steps=2, clock=clock)
    generator = torch.Generator().manual_seed(0)
    run = HeadRun(network, images, readout, make_augmentation("natural", 1, (16, 16)),
                  generator, governor, batch_size=32)
    # The cache: the clean images and 8 augmentations of them, one forward pass each.
    assert len(clock.threads) == 1 + CACHED_VIEWS
    list(run.epochs(0, None, generator, lambda: False))
    head_steps = clock.threads[1 + CACHED_VIEWS:]
    assert len(head_steps) == 3 * 3 and head_steps[-1] == 1
    governor.restore()
