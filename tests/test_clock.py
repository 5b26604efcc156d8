"""The estimated time of a training: before it starts and while it runs."""

import time

import numpy as np
import pytest

from napari_tsimcne import Callback, TSimCNE
from napari_tsimcne.budget import StageCosts
from napari_tsimcne.clock import TimeLeft, format_duration
from napari_tsimcne.schedule import make_stages

COSTS = StageCosts(epoch_s=2.0, readout_epoch_s=0.5, readout_setup_s=3.0, embed_s=1.0)


class Heard:
    def __init__(self):
        self.seconds = []

    def on_time_left(self, seconds):
        self.seconds.append(seconds)


def test_durations_read_as_people_say_them():
    assert format_duration(4.4) == "4 s"
    assert format_duration(185) == "3 min 05 s"
    assert format_duration(2 * 3600 + 7 * 60) == "2 h 07 min"
    assert format_duration(-1) == "0 s"


def test_the_first_estimate_is_the_plan_at_the_measured_costs():
    heard = Heard()
    clock = TimeLeft(COSTS, [heard])
    clock.on_train_begin(make_stages((10, 4, 5), lr=1.0))
    # 10 * 2 + (3 + 4 * 0.5) + 5 * 2 + (3 + 4 * 0.5) for the final readout + 1 for the final map
    assert heard.seconds == [pytest.approx(41.0)]


def test_a_resumed_run_is_estimated_from_where_it_goes_on():
    heard = Heard()
    clock = TimeLeft(COSTS, [heard], start=(2, 3))
    clock.on_train_begin(make_stages((10, 4, 5), lr=1.0))
    # Two fine-tuning epochs, the final readout with its cache, the final map.
    assert heard.seconds == [pytest.approx(2 * 2.0 + (3.0 + 4 * 0.5) + 1.0)]


def test_the_estimate_follows_the_pace_of_the_finished_epochs(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    heard = Heard()
    clock = TimeLeft(COSTS, [heard])
    clock.on_train_begin(make_stages((10, 4, 5), lr=1.0))
    now[0] += 4.0  # an epoch predicted at 2 s took 4 s: the machine runs at half speed
    clock(0, 0, 5.0)
    assert heard.seconds[-1] == pytest.approx(2 * (41.0 - 2.0))
    now[0] += 2.0  # back to the predicted speed: the pace is the mean so far
    clock(0, 1, 5.0)
    assert heard.seconds[-1] == pytest.approx(1.5 * (41.0 - 4.0))


def test_a_single_stage_uses_the_whole_network_epoch_cost():
    heard = Heard()
    TimeLeft(COSTS, [heard]).on_train_begin(make_stages((6,), lr=1.0))
    assert heard.seconds == [pytest.approx(6 * 2.0 + 1.0)]


@pytest.mark.slow
def test_fit_tells_callbacks_the_time_left_down_to_the_end():
    class Recorder(Callback):
        def __init__(self):
            self.seconds = []

        def on_time_left(self, seconds):
            self.seconds.append(seconds)

    recorder = Recorder()
    images = np.random.default_rng(0).integers(0, 255, (64, 8, 8), dtype=np.uint8)
    TSimCNE(epochs=(2, 2, 2), batch_size=16, backbone="resnet10-w8", device="cpu",
            random_state=0, callbacks=[recorder]).fit(images)
    # Before the first epoch, then after each (the final readout's 2 included).
    assert len(recorder.seconds) == 1 + 8
    assert all(s >= 0 for s in recorder.seconds)
    assert recorder.seconds[0] > recorder.seconds[-1]


@pytest.mark.slow
def test_verbose_fit_prints_its_settings_and_estimate_first(capsys):
    images = np.random.default_rng(0).integers(0, 255, (64, 8, 8), dtype=np.uint8)
    TSimCNE(epochs=(1, 1, 1), backbone="resnet10-w8", device="cpu", random_state=3,
            verbose=True).fit(images)
    err = capsys.readouterr().err
    settings = next(line for line in err.splitlines() if line.startswith("Training on"))
    assert "64 images (8×8 px, 1 channel(s)) on cpu" in settings
    assert "batch size 32, augmentation microscopy, seed 3" in settings
    assert "Estimated time: about" in err
    assert "left in all" in err
