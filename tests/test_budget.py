"""Time budgets: planning epochs from measured step costs, in the library and its front ends."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import FAST_PARAMS

from napari_tsimcne import Callback, TSimCNE, budget
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.budget import (
    BUDGET_SPLIT, StageCosts, measure_costs, plan_epochs, revise_plan,
)
from napari_tsimcne.cli import main
from napari_tsimcne.data import DeviceImages
from napari_tsimcne.trainer import Accelerations

COSTS = StageCosts(epoch_s=2.0, readout_epoch_s=0.1, readout_setup_s=5.0, embed_s=1.0)


def planned_seconds(epochs, costs=COSTS):
    """Brute force: the whole plan with the final embedding."""
    pretrain, readout, finetune = epochs
    return ((pretrain + finetune) * costs.epoch_s + costs.readout_setup_s
            + readout * costs.readout_epoch_s + costs.embed_s)


def test_planned_seconds_of_parts_of_a_plan_add_up():
    plan = (100, 40, 20)
    parts = [budget.planned_seconds(plan, COSTS, slice(i, i + 1)) for i in range(3)]
    assert parts == [200.0, 5.0 + 4.0, 40.0]
    assert budget.planned_seconds(plan, COSTS) + COSTS.embed_s == planned_seconds(plan)


def test_only_the_readout_of_a_three_stage_plan_costs_a_readout_epoch_and_its_setup():
    assert [COSTS.epoch_seconds(stage, 3) for stage in range(3)] == [
        COSTS.epoch_s, COSTS.readout_epoch_s, COSTS.epoch_s]
    assert [COSTS.setup_seconds(stage, 3) for stage in range(3)] == [
        0.0, COSTS.readout_setup_s, 0.0]
    # A one-stage plan trains the 2-D network directly: whole-network epochs.
    assert (COSTS.epoch_seconds(0, 1), COSTS.setup_seconds(0, 1)) == (COSTS.epoch_s, 0.0)


def test_a_run_on_pace_keeps_its_plan():
    plan = (100, 40, 20)
    # Pre-training took the predicted 200 s; 50 s of stages and embedding follow.
    assert revise_plan(plan, 1, 200.0, 50.0, COSTS) == plan
    assert revise_plan(plan, 1, 200.0, 51.0, COSTS) == plan  # within the slack


def test_a_run_ahead_of_its_plan_lengthens_the_stages_still_to_come_to_fill_the_budget():
    plan = (100, 40, 20)
    # Pre-training took 160 s of the predicted 200: at that pace the rest, 50 s
    # as planned, would take 40 s of the 50 s left.
    revised = revise_plan(plan, 1, 160.0, 50.0, COSTS)
    assert revised[0] == 100 and revised[1] > 40 and revised[2] > 20
    pace = 0.8
    rest = budget.planned_seconds(revised, COSTS, slice(1, None)) + COSTS.embed_s
    assert 0.9 * 50.0 <= pace * rest <= 50.0
    # A pace from one short stage is a rough guide: at most twice the epochs.
    assert revise_plan(plan, 1, 20.0, 500.0, COSTS) == (100, 80, 40)


def test_a_run_behind_its_plan_shortens_the_stages_still_to_come():
    plan = (100, 40, 20)
    # Pre-training took 1.5x its prediction: the rest would take 1.5 * 50 s, 30 s are left.
    revised = revise_plan(plan, 1, 300.0, 30.0, COSTS)
    assert revised[0] == 100 and revised[1] < 40 and revised[2] < 20
    pace = 1.5
    rest = budget.planned_seconds(revised, COSTS, slice(1, None)) + COSTS.embed_s
    assert pace * rest <= 30.0
    # Only fine-tuning is still to come; no time left: one epoch, never zero.
    assert revise_plan(plan, 2, 500.0, -5.0, COSTS) == (100, 40, 1)


def test_within_a_stage_a_run_behind_its_plan_shortens_the_rest_of_it_and_the_later_stages():
    plan = (100, 40, 20)
    # 50 of 100 pre-training epochs took 150 s where 100 s were planned: at that
    # pace the rest (100 + 9 + 40 s, and the embedding) needs about 225 s, 150 s are left.
    revised = revise_plan(plan, 0, 150.0, 150.0, COSTS, epochs_done=50)
    # The readout stage (4 s) is kept whole: the others give up the time.
    assert 50 < revised[0] < 100 and revised[1] == 40 and revised[2] < 20
    pace = 1.5
    rest = ((revised[0] - 50 + revised[2]) * COSTS.epoch_s + COSTS.readout_setup_s
            + revised[1] * COSTS.readout_epoch_s + COSTS.embed_s)
    assert 0.9 * 150.0 <= pace * rest <= 150.0
    # Fine-tuning half done and no time left: it ends now, never before what is done.
    assert revise_plan(plan, 2, 600.0, 0.0, COSTS, epochs_done=10) == (100, 40, 10)


def test_a_shortened_plan_keeps_a_cheap_readout_stage_whole_unless_it_would_not_fit():
    cheap = StageCosts(epoch_s=2.0, readout_epoch_s=0.01, readout_setup_s=5.0, embed_s=1.0)
    plan = (100, 200, 20)
    # Pre-training took twice its plan: 46 s of the 86 s planned for the rest are left.
    revised = revise_plan(plan, 1, 400.0, 2 * 46.0, cheap)
    assert revised[1] == 200 and revised[2] < 20
    # A readout stage of more than a tenth of the time left is shortened with the rest.
    dear = StageCosts(epoch_s=2.0, readout_epoch_s=0.5, readout_setup_s=5.0, embed_s=1.0)
    revised = revise_plan(plan, 1, 400.0, 2 * 46.0, dear)
    assert revised[1] < 200 and revised[2] < 20


def test_within_a_stage_a_plan_is_lengthened_only_early_and_not_for_a_small_delay():
    plan = (100, 40, 20)
    # Well ahead half-way through pre-training: lengthening waits for the next stage boundary.
    assert revise_plan(plan, 0, 50.0, 400.0, COSTS, epochs_done=50) == plan
    # Well ahead in its first quarter: pre-training and the rest are lengthened to fill the time.
    revised = revise_plan(plan, 0, 32.0, 300.0, COSTS, epochs_done=20)
    assert revised[0] > 100 and revised[1] >= 40 and revised[2] > 20
    pace = 32.0 / 40.0
    rest = ((revised[0] - 20 + revised[2]) * COSTS.epoch_s + COSTS.readout_setup_s
            + revised[1] * COSTS.readout_epoch_s + COSTS.embed_s)
    assert 0.9 * 300.0 <= pace * rest <= 300.0
    # 3% slower than planned, and at that pace 2% short of the time the rest
    # (150 s as planned) needs: within the slack, unchanged.
    pace = 1.03
    assert revise_plan(plan, 0, pace * 100.0, 0.98 * pace * 150.0, COSTS,
                       epochs_done=50) == plan


def test_plan_fills_the_budget_in_the_given_shares():
    epochs = plan_epochs(1000, COSTS, (0.8, 0.05, 0.15))
    assert epochs == (397, 497, 74)
    assert 0.97 * 1000 <= planned_seconds(epochs) <= 1000


@pytest.mark.parametrize("budget_s", [30, 120, 900, 3600])
def test_planned_time_is_within_the_budget_for_every_recipe(budget_s):
    for split in BUDGET_SPLIT.values():
        assert 0.9 * budget_s <= planned_seconds(plan_epochs(budget_s, COSTS, split)) <= budget_s


def test_a_budget_too_short_for_one_epoch_per_stage_names_the_least_budget():
    with pytest.raises(ValueError, match=r"too short .* about 10 s. Give at least 13 s"):
        plan_epochs(5, COSTS, (0.8, 0.05, 0.15))


@pytest.mark.slow
@pytest.mark.parametrize("cached_readout", [True, False])
def test_measured_costs_are_positive_and_leave_the_random_generator_alone(images, cached_readout):
    tensor = torch.from_numpy(images[:, None].copy())
    state = torch.get_rng_state()
    costs = measure_costs("resnet10-w8", DeviceImages(tensor),
                          make_augmentation("natural", 1, (16, 16)), batch_size=16, hidden_dim=32,
                          accelerations=Accelerations(), cached_readout=cached_readout)
    assert torch.equal(torch.get_rng_state(), state)
    assert min(costs.epoch_s, costs.readout_epoch_s, costs.embed_s) > 0
    assert (costs.readout_setup_s > 0) == cached_readout


@pytest.fixture
def fixed_costs(monkeypatch):
    """Make every plan come from :data:`COSTS`, whatever the machine is doing."""
    calls = []

    def fake(*args, **kwargs):
        calls.append(kwargs)
        return COSTS

    monkeypatch.setattr("napari_tsimcne.estimator.measure_costs", fake)
    return calls


@pytest.mark.slow
def test_fit_with_a_time_budget_trains_the_plan_and_saves_it(images, fixed_costs, tmp_path,
                                                            monkeypatch):
    # The fixed costs are slower than the real steps, which revising would lengthen.
    monkeypatch.setattr("napari_tsimcne.estimator.revise_plan", lambda epochs, *a: tuple(epochs))
    params = {**FAST_PARAMS, "epochs": (50, 50, 50)}
    model = TSimCNE(**params, time_budget=24).fit(images)
    assert len(fixed_costs) == 1
    # 24 s less the seconds spent before planning (a few on a busy machine).
    assert model.epochs_ in {plan_epochs(24 - spent / 10, COSTS, BUDGET_SPLIT["neighbors"])
                             for spent in range(50)}
    assert model.epochs_ != (50, 50, 50)
    assert [len(h) for h in model.loss_history_] == list(model.epochs_)
    model.save(tmp_path / "model.pt")
    loaded = TSimCNE.load(tmp_path / "model.pt")
    assert loaded.epochs_ == model.epochs_ and loaded.time_budget == 24


@pytest.mark.slow
def test_resuming_a_budgeted_run_keeps_its_plan(images, fixed_costs, tmp_path, monkeypatch):
    # Revisions follow the clock; the next test covers a revised plan on resume.
    monkeypatch.setattr("napari_tsimcne.estimator.revise_plan", lambda epochs, *a: tuple(epochs))
    class StopInFineTuning:
        def __call__(self, stage, epoch, loss):
            return stage == 2

    folder = tmp_path / "checkpoints"
    params = {**FAST_PARAMS, "time_budget": 24, "checkpoint_dir": folder, "checkpoint_every": 1}
    stopped = TSimCNE(**params, callbacks=[StopInFineTuning()]).fit(images)
    assert stopped.stopped_early_
    fixed_costs.clear()
    resumed = TSimCNE(**params).fit(images, resume=True)
    assert fixed_costs == []  # no new plan
    assert resumed.epochs_ == stopped.epochs_
    uninterrupted = TSimCNE(**{**params, "checkpoint_dir": tmp_path / "other"}).fit(images)
    assert uninterrupted.epochs_ == stopped.epochs_
    torch.testing.assert_close(torch.from_numpy(resumed.embedding_),
                               torch.from_numpy(uninterrupted.embedding_))


@pytest.mark.slow
def test_a_revised_plan_is_trained_reported_saved_and_kept_on_resume(images, fixed_costs,
                                                                       monkeypatch, tmp_path):
    revisions = []

    def behind(epochs, next_stage, spent_s, left_s, costs, epochs_done):
        if epochs_done:  # within a stage: on pace
            return tuple(epochs)
        revisions.append((next_stage, tuple(epochs)))
        return tuple(epochs) if next_stage == 2 else (epochs[0], 2, 1)

    class Plans(Callback):
        def __init__(self):
            self.plans = []

        def on_train_begin(self, stages):
            self.plans.append([stage.epochs for stage in stages])

        def __call__(self, stage, epoch, loss):
            return stage == 2  # stop in fine-tuning, to resume

    monkeypatch.setattr("napari_tsimcne.estimator.revise_plan", behind)
    plans = Plans()
    folder = tmp_path / "checkpoints"
    params = {**FAST_PARAMS, "time_budget": 24, "checkpoint_dir": folder, "checkpoint_every": 1}
    stopped = TSimCNE(**params, callbacks=[plans]).fit(images)
    assert plans.plans[0][1:] != [2, 1] and plans.plans[1] == [plans.plans[0][0], 2, 1]
    assert [stage for stage, _ in revisions] == [1, 2]
    assert stopped.epochs_ == tuple(plans.plans[1])
    assert [len(h) for h in stopped.loss_history_[:2]] == plans.plans[1][:2]
    revisions.clear()
    resumed = TSimCNE(**params).fit(images, resume=True)
    assert revisions == []  # a resumed run keeps the revised plan of its checkpoints
    assert resumed.epochs_ == stopped.epochs_
    assert [len(h) for h in resumed.loss_history_] == list(resumed.epochs_)
    resumed.save(tmp_path / "model.pt")
    assert TSimCNE.load(tmp_path / "model.pt").epochs_ == stopped.epochs_


@pytest.mark.parametrize("value", [0, -5, float("nan"), "10 min", True])
def test_bad_time_budgets_are_refused_before_training(images, value):
    with pytest.raises(ValueError, match="time_budget must be a positive number of seconds"):
        TSimCNE(**FAST_PARAMS, time_budget=value).fit(images)


@pytest.mark.slow
def test_a_short_budget_is_honoured(images):
    """Real timing on a tiny run: the plan fills the budget from the costs measured here.

    The wall-clock bound is loose so that a busy machine cannot fail it;
    ``benchmarks/quality.py --budget-minutes`` measures the accuracy on a quiet one.
    """
    recorded = []
    original = budget.plan_epochs

    def recording(budget_s, costs, split):
        plan = original(budget_s, costs, split)
        recorded.append((budget_s, costs, plan))
        return plan

    params = {**FAST_PARAMS, "epochs": (1, 1, 1), "time_budget": 8.0}
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("napari_tsimcne.estimator.plan_epochs", recording)
        model = TSimCNE(**params).fit(images)
    wall_s = time.perf_counter() - start
    (budget_left, costs, plan), = recorded
    assert 0.9 * budget_left <= planned_seconds(plan, costs) <= budget_left
    # Every stage may have been shortened on the way (a busy machine) or
    # lengthened (a machine faster than its timed steps), at most twice.
    assert all(1 <= n <= budget.MAX_LENGTHENING * planned for n, planned in
               zip(model.epochs_, plan))
    assert sum(plan) > 3
    assert wall_s < 3 * 8.0


@pytest.mark.slow
def test_command_line_minutes_plan_the_epochs_and_say_so(tmp_path, images, fixed_costs, capsys):
    import numpy as np

    np.save(tmp_path / "images.npy", images)
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "run"),
                 "--minutes", "0.4", "--batch-size", "16", "--backbone", "resnet10-w8",
                 "--device", "cpu", "--seed", "0", "--quiet"]) == 0
    output = capsys.readouterr().out
    assert "planned for 24 s" in output
    assert main(["info", str(tmp_path / "run" / "model.pt")]) == 0
    assert "planned for 24 s" in capsys.readouterr().out


def test_command_line_refuses_minutes_with_epochs(tmp_path, capsys):
    assert main(["fit", "x.npy", "--out", str(tmp_path), "--minutes", "3",
                 "--epochs", "1", "1", "1"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
