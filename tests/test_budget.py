"""Time budgets: planning epochs from measured step costs, in the library and its front ends."""

from __future__ import annotations

import time

import pytest
import torch
from conftest import FAST_PARAMS, unrevised_plan

from napari_tsimcne import Callback, TSimCNE, budget
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.budget import (
    BUDGET_SPLIT, StageCosts, measure_costs, plan_epochs, revise_plan,
)
from napari_tsimcne.cli import main
from napari_tsimcne.data import DeviceImages
from napari_tsimcne.schedule import make_stages
from napari_tsimcne.trainer import Accelerations

COSTS = StageCosts(epoch_s=2.0, readout_epoch_s=0.1, readout_setup_s=5.0, embed_s=1.0)
#: Positions of the readout stages in the plans of each recipe.
READOUTS = {"neighbors": (1, 3), "paper": (1,)}


def stages(*epochs, recipe="neighbors"):
    return make_stages(epochs, lr=1.0, recipe=recipe)


def planned_seconds(epochs, costs=COSTS, recipe="neighbors"):
    """Brute force: the whole plan with the final embedding."""
    cached = recipe == "neighbors"
    total = costs.embed_s
    for position, n in enumerate(epochs):
        if position in READOUTS[recipe]:
            total += n * costs.readout_epoch_s + (costs.readout_setup_s if cached else 0.0)
        else:
            total += n * costs.epoch_s
    return total


def test_planned_seconds_of_parts_of_a_plan_add_up():
    plan = stages(100, 40, 20, 40)
    parts = [budget.planned_seconds(plan, COSTS, slice(i, i + 1)) for i in range(4)]
    assert parts == [200.0, 5.0 + 4.0, 40.0, 5.0 + 4.0]
    assert budget.planned_seconds(plan, COSTS) + COSTS.embed_s == planned_seconds(
        (100, 40, 20, 40))


def test_readout_stages_cost_readout_epochs_and_only_cached_ones_a_setup():
    neighbors, paper = stages(100, 40, 20), stages(100, 40, 20, recipe="paper")
    assert [COSTS.epoch_seconds(stage) for stage in neighbors] == [
        COSTS.epoch_s, COSTS.readout_epoch_s, COSTS.epoch_s, COSTS.readout_epoch_s]
    assert [COSTS.setup_seconds(stage) for stage in neighbors] == [
        0.0, COSTS.readout_setup_s, 0.0, COSTS.readout_setup_s]
    assert [COSTS.epoch_seconds(stage) for stage in paper] == [
        COSTS.epoch_s, COSTS.readout_epoch_s, COSTS.epoch_s]
    assert [COSTS.setup_seconds(stage) for stage in paper] == [0.0] * 3
    # A one-stage plan trains the 2-D network directly: whole-network epochs.
    (direct,) = stages(30)
    assert (COSTS.epoch_seconds(direct), COSTS.setup_seconds(direct)) == (COSTS.epoch_s, 0.0)


PLAN = (100, 40, 20, 40)
#: Predicted seconds after pre-training: both readouts with their setup,
#: fine-tuning, and the final embedding.
AFTER_PRETRAINING_S = 9.0 + 40.0 + 9.0 + 1.0


def test_a_run_on_pace_keeps_its_plan():
    # Pre-training took the predicted 200 s; 59 s of stages and embedding follow.
    assert revise_plan(stages(*PLAN), 1, 200.0, AFTER_PRETRAINING_S, COSTS) == PLAN
    assert revise_plan(stages(*PLAN), 1, 200.0, AFTER_PRETRAINING_S + 1, COSTS) == PLAN  # slack


def test_a_run_ahead_of_its_plan_lengthens_the_stages_still_to_come_to_fill_the_budget():
    # Pre-training took 160 s of the predicted 200: at that pace the rest, 59 s
    # as planned, would take 47 s of the 59 s left.
    left_s = AFTER_PRETRAINING_S
    revised = revise_plan(stages(*PLAN), 1, 160.0, left_s, COSTS)
    assert revised[0] == 100 and all(n > planned for n, planned in zip(revised[1:], PLAN[1:]))
    pace = 0.8
    rest = budget.planned_seconds(stages(*revised), COSTS, slice(1, None)) + COSTS.embed_s
    assert 0.9 * left_s <= pace * rest <= left_s
    # A pace from one short stage is a rough guide: at most twice the epochs.
    assert revise_plan(stages(*PLAN), 1, 20.0, 500.0, COSTS) == (100, 80, 40, 80)


def test_a_run_behind_its_plan_shortens_the_stages_still_to_come():
    # Pre-training took 1.5x its prediction: the rest would take 1.5 * 59 s, 36 s are left.
    revised = revise_plan(stages(*PLAN), 1, 300.0, 36.0, COSTS)
    assert revised[0] == 100 and all(n < planned for n, planned in zip(revised[1:], PLAN[1:]))
    pace = 1.5
    rest = budget.planned_seconds(stages(*revised), COSTS, slice(1, None)) + COSTS.embed_s
    assert pace * rest <= 36.0
    # Only the last stages are still to come; no time left: one epoch each, never zero.
    assert revise_plan(stages(*PLAN), 2, 500.0, -5.0, COSTS) == (100, 40, 1, 1)
    assert revise_plan(stages(*PLAN), 3, 500.0, -5.0, COSTS) == (100, 40, 20, 1)


def test_within_a_stage_a_run_behind_its_plan_shortens_the_rest_of_it_and_the_later_stages():
    # 50 of 100 pre-training epochs took 150 s where 100 s were planned: at that
    # pace the rest (100 + 9 + 40 + 9 s, and the embedding) needs about 240 s, 150 s are left.
    revised = revise_plan(stages(*PLAN), 0, 150.0, 150.0, COSTS, epochs_done=50)
    # The readout stages (4 s each) are kept whole: the others give up the time.
    assert 50 < revised[0] < 100 and revised[1] == revised[3] == 40 and revised[2] < 20
    pace = 1.5
    rest = planned_seconds((revised[0] - 50, *revised[1:]))
    assert 0.9 * 150.0 <= pace * rest <= 150.0
    # Fine-tuning half done and no time left: it ends now, never before what is done.
    assert revise_plan(stages(*PLAN), 2, 600.0, 0.0, COSTS, epochs_done=10) == (100, 40, 10, 1)


def test_a_shortened_plan_keeps_cheap_readout_stages_whole_unless_they_would_not_fit():
    cheap = StageCosts(epoch_s=2.0, readout_epoch_s=0.005, readout_setup_s=5.0, embed_s=1.0)
    plan = (100, 200, 20, 200)
    # Pre-training took twice its plan: 46 s of the 53 s planned for the rest are left.
    revised = revise_plan(stages(*plan), 1, 400.0, 2 * 46.0, cheap)
    assert revised[1] == revised[3] == 200 and revised[2] < 20
    # Readout stages of more than a tenth of the time left are shortened with the rest.
    dear = StageCosts(epoch_s=2.0, readout_epoch_s=0.5, readout_setup_s=5.0, embed_s=1.0)
    revised = revise_plan(stages(*plan), 1, 400.0, 2 * 46.0, dear)
    assert revised[1] < 200 and revised[2] < 20 and revised[3] < 200


def test_within_a_stage_a_plan_is_lengthened_only_early_and_not_for_a_small_delay():
    # Well ahead half-way through pre-training: lengthening waits for the next stage boundary.
    assert revise_plan(stages(*PLAN), 0, 50.0, 400.0, COSTS, epochs_done=50) == PLAN
    # Well ahead in its first quarter: pre-training and the rest are lengthened to fill the time.
    revised = revise_plan(stages(*PLAN), 0, 32.0, 300.0, COSTS, epochs_done=20)
    assert all(n > planned for n, planned in zip(revised, PLAN))
    pace = 32.0 / 40.0
    rest = planned_seconds((revised[0] - 20, *revised[1:]))
    assert 0.9 * 300.0 <= pace * rest <= 300.0
    # 3% slower than planned, and at that pace 2% short of the time the rest
    # (159 s as planned) needs: within the slack, unchanged.
    pace = 1.03
    assert revise_plan(stages(*PLAN), 0, pace * 100.0, 0.98 * pace * 159.0, COSTS,
                       epochs_done=50) == PLAN


def test_plan_fills_the_budget_in_the_given_shares():
    epochs = plan_epochs(1000, COSTS, "neighbors")
    assert epochs == (370, 494, 74, 494)
    assert 0.97 * 1000 <= planned_seconds(epochs) <= 1000
    epochs = plan_epochs(1000, COSTS, "paper")
    assert epochs == (349, 499, 124)
    assert 0.97 * 1000 <= planned_seconds(epochs, recipe="paper") <= 1000


@pytest.mark.parametrize("budget_s", [30, 120, 900, 3600])
@pytest.mark.parametrize("recipe", BUDGET_SPLIT)
def test_planned_time_is_within_the_budget_for_every_recipe(budget_s, recipe):
    plan = plan_epochs(budget_s, COSTS, recipe)
    assert len(plan) == len(BUDGET_SPLIT[recipe])
    assert 0.9 * budget_s <= planned_seconds(plan, recipe=recipe) <= budget_s


def test_a_budget_too_short_for_one_epoch_per_stage_names_the_least_budget():
    with pytest.raises(ValueError, match=r"too short .* about 15 s. Give at least 19 s"):
        plan_epochs(5, COSTS, "neighbors")


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
    monkeypatch.setattr("napari_tsimcne.estimator.revise_plan", unrevised_plan)
    params = {**FAST_PARAMS, "epochs": (50, 50, 50)}
    model = TSimCNE(**params, time_budget=24).fit(images)
    assert len(fixed_costs) == 1
    # 24 s less the seconds spent before planning (a few on a busy machine).
    assert model.epochs_ in {plan_epochs(24 - spent / 10, COSTS, "neighbors")
                             for spent in range(50)}
    assert model.epochs_ != (50, 50, 50)
    assert [len(h) for h in model.loss_history_] == list(model.epochs_)
    model.save(tmp_path / "model.pt")
    loaded = TSimCNE.load(tmp_path / "model.pt")
    assert loaded.epochs_ == model.epochs_ and loaded.time_budget == 24


@pytest.mark.slow
def test_resuming_a_budgeted_run_keeps_its_plan(images, fixed_costs, tmp_path, monkeypatch):
    # Revisions follow the clock; the next test covers a revised plan on resume.
    monkeypatch.setattr("napari_tsimcne.estimator.revise_plan", unrevised_plan)
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

    def behind(stages, next_stage, spent_s, left_s, costs, epochs_done):
        epochs = tuple(stage.epochs for stage in stages)
        if epochs_done:  # within a stage: on pace
            return epochs
        revisions.append((next_stage, epochs))
        return epochs if next_stage > 1 else (epochs[0], 2, 1, 3)

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
    assert plans.plans[0][1:] != [2, 1, 3] and plans.plans[1] == [plans.plans[0][0], 2, 1, 3]
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

    def recording(budget_s, costs, recipe):
        plan = original(budget_s, costs, recipe)
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
