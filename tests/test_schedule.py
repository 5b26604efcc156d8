"""The staged training plan, its learning rates, and stage switching during training."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from napari_tsimcne import Callback, trainer
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.data import DeviceImages
from napari_tsimcne.network import TSimCNENetwork
from napari_tsimcne.schedule import (
    HEAD_LR,
    NEIGHBOR_SHARE,
    WEIGHT_AVERAGE_SHARE,
    batch_size_for,
    default_learning_rate,
    learning_rate_factor,
    make_stages,
)
from napari_tsimcne.trainer import Accelerations, StageRun, train


def stage_table(stages, *fields):
    return [tuple(getattr(stage, field) for field in fields) for stage in stages]


def test_paper_plan_has_three_stages_with_the_papers_settings():
    stages = make_stages((1000, 50, 450), lr=0.12, recipe="paper")
    assert stage_table(stages, "name", "epochs", "out_dim", "readout_only", "new_readout") == [
        ("pre-training", 1000, 128, False, False),
        ("readout", 50, 2, True, True),
        ("fine-tuning", 450, 2, False, False),
    ]
    assert [stage.lr for stage in stages] == pytest.approx([0.12, 0.12, 0.12 / 1000])
    assert stage_table(stages, "warmup_epochs", "anneal") == [(10, True), (0, False), (10, True)]
    assert [stage.loss for stage in stages] == ["euclidean"] * 3
    assert not any(stage.cached_features or stage.neighbor_share for stage in stages)


def test_neighbors_plan_trains_the_head_on_cached_features_with_neighbour_positives():
    stages = make_stages((100, 30, 20), lr=0.12)
    # After fine-tuning, the final readout trains the fine-tuned head on, for
    # the readout's epochs.
    assert stage_table(stages, "name", "epochs", "out_dim", "cached_features",
                       "new_readout") == [
        ("pre-training", 100, 128, False, False),
        ("readout", 30, 2, True, True),
        ("fine-tuning", 20, 2, False, False),
        ("final readout", 30, 2, True, False),
    ]
    assert [stage.neighbor_share for stage in stages] == [0] + [NEIGHBOR_SHARE] * 3
    assert [stage.lr for stage in stages] == pytest.approx([0.12, HEAD_LR, 0.12 / 100, HEAD_LR])
    assert [stage.head_only for stage in stages] == [False, True, False, True]


@pytest.mark.parametrize("epochs, final_readout", [((100, 30, 20, 5), 5), ((100, 30, 20, 0), None),
                                                   ((100, 30, 0), None), ((100, 0, 20), None)])
def test_the_final_readout_follows_a_fourth_count_and_needs_fine_tuning_before_it(
        epochs, final_readout):
    stages = make_stages(epochs, lr=0.12)
    last = stages[-1]
    if final_readout is None:
        assert last.name != "final readout"
    else:
        assert (last.name, last.epochs) == ("final readout", final_readout)


def test_a_fourth_count_is_refused_for_the_paper_recipe():
    with pytest.raises(ValueError, match="only recipe='neighbors' has"):
        make_stages((100, 30, 20, 5), lr=0.12, recipe="paper")


def test_unknown_recipe_is_rejected():
    with pytest.raises(ValueError, match="recipe must be one of"):
        make_stages((5, 2, 3), lr=0.1, recipe="fast")


@pytest.mark.parametrize("epochs, lr, expected", [
    ((5, 2, 3), (0.2, 0.1, 0.01), (0.2, 0.1, 0.01, 0.1)),  # the final readout takes the readout's
    ((4,), (0.3,), (0.3,)),
])
def test_a_tuple_gives_one_learning_rate_per_stage(epochs, lr, expected):
    assert tuple(stage.lr for stage in make_stages(epochs, lr=lr)) == pytest.approx(expected)


@pytest.mark.parametrize("lr", [(0.1, 0.1), (0.1, 0.1, 0.1, 0.1), ("fast",), (0.1, -1.0, 0.1), 0.0])
def test_learning_rates_that_do_not_fit_the_plan_are_rejected(lr):
    with pytest.raises(ValueError, match="lr="):
        make_stages((5, 2, 3), lr=lr)


def test_plan_passes_dimensions_and_pretraining_loss_on():
    stages = make_stages((5, 2, 3), lr=0.1, out_dim=3, pretrain_dim=64, pretrain_loss="cosine")
    assert stage_table(stages, "out_dim", "loss") == [
        (64, "cosine"), (3, "euclidean"), (3, "euclidean"), (3, "euclidean")
    ]


def test_warmup_is_capped_at_a_tenth_of_each_stage():
    stages = make_stages((20, 5, 30), lr=0.1, warmup_epochs=10)
    assert [stage.warmup_epochs for stage in stages] == [2, 0, 3, 0]


@pytest.mark.parametrize("epochs", [(7,), 7])
def test_single_count_trains_the_map_directly_in_one_stage(epochs):
    (stage,) = make_stages(epochs, lr=0.05)
    assert (stage.epochs, stage.out_dim, stage.lr) == (7, 2, 0.05)
    assert stage.anneal and not stage.readout_only and not stage.new_readout
    assert stage.warmup_epochs == pytest.approx(0.7)


def test_without_readout_stage_fine_tuning_creates_the_new_readout():
    stages = make_stages((5, 0, 3), lr=0.1)
    assert stage_table(stages, "name", "new_readout", "readout_only", "out_dim") == [
        ("pre-training", False, False, 128),
        ("fine-tuning", True, False, 2),
    ]


def test_without_fine_tuning_the_plan_ends_with_the_readout_stage():
    stages = make_stages((5, 3, 0), lr=0.1)
    assert [stage.name for stage in stages] == ["pre-training", "readout"]


@pytest.mark.parametrize("epochs", [
    (0,), (0, 1, 1), (5, 0, 0), (5, 0, 0, 3), (1, 2), (1, 2, 3, 4, 5), (), (-1,), (5, -1, 3),
    "ten", None, (1.5, "x", 2),
])
def test_invalid_epochs_are_rejected(epochs):
    with pytest.raises(ValueError, match=r"is not a training plan.*\(1000, 50, 450\)"):
        make_stages(epochs, lr=0.1)


@pytest.mark.parametrize("step, expected", [
    (0, 0.1),                                  # warm-up starts at 1 / warmup_steps
    (4, 0.5),
    (9, 1.0),                                  # warm-up ends at the peak
    (10, 1.0),                                 # annealing starts at the peak
    (35, 0.5 * (1 + math.cos(math.pi / 4))),   # a quarter of the way through annealing
    (60, 0.5),                                 # half way
    (109, 0.5 * (1 + math.cos(math.pi * 99 / 100))),
])
def test_learning_rate_factor_warms_up_linearly_then_anneals_by_cosine(step, expected):
    factor = learning_rate_factor(step, total_steps=110, warmup_steps=10, anneal=True)
    assert factor == pytest.approx(expected)


@pytest.mark.parametrize("step, expected", [(0, 0.25), (3, 1.0), (4, 1.0), (50, 1.0)])
def test_learning_rate_factor_without_annealing_stays_at_the_peak(step, expected):
    assert learning_rate_factor(step, total_steps=60, warmup_steps=4, anneal=False) == expected


def test_learning_rate_factor_without_warmup_starts_at_the_peak_and_decreases():
    factors = [learning_rate_factor(step, 20, 0, anneal=True) for step in range(20)]
    assert factors[0] == 1.0
    assert all(later < earlier for earlier, later in zip(factors, factors[1:]))
    assert factors[-1] < 0.01


@pytest.mark.parametrize("batch_size, expected", [(256, 0.03), (1024, 0.12), (64, 0.0075)])
def test_default_learning_rate_scales_linearly_with_batch_size(batch_size, expected):
    assert default_learning_rate(batch_size) == pytest.approx(expected)


@pytest.mark.parametrize("batch_size, expected", [(64, 0.12), (256, 0.12), (8192, 0.96)])
def test_short_schedules_get_at_least_the_short_schedule_rate(batch_size, expected):
    assert default_learning_rate(batch_size, pretrain_epochs=40) == pytest.approx(expected)
    # A 15-minute CPU plan of over 100 epochs is still short: no cliff to the paper's rule.
    assert default_learning_rate(batch_size, pretrain_epochs=134) == pytest.approx(expected)
    assert default_learning_rate(64, pretrain_epochs=1000) == pytest.approx(0.0075)


# --------------------------------------------------------------------------
# Stage switching while training


class StageRecorder(Callback):
    """Watches a network through training: trainable flags, weights, outputs."""

    def __init__(self, network):
        self.network = network
        self.initial = self.parameters()
        self.epoch_ends = []   # (stage, epoch, names of trainable parameters, parameter copies)
        self.stage_ends = []   # (stage, embedding shape, parameter copies)
        self.buffers_at_stage_end = []  # copies of the BatchNorm statistics

    def parameters(self):
        return {name: p.detach().clone() for name, p in self.network.named_parameters()}

    def __call__(self, stage, epoch, loss):
        trainable = {name for name, p in self.network.named_parameters() if p.requires_grad}
        self.epoch_ends.append((stage, epoch, trainable, self.parameters()))
        return False

    def on_stage_end(self, stage, embedding):
        self.stage_ends.append((stage, embedding.shape, self.parameters()))
        self.buffers_at_stage_end.append(
            {name: b.detach().clone() for name, b in self.network.named_buffers()})


@pytest.fixture(scope="module", params=["paper", "neighbors"])
def staged_training(images, request):
    torch.manual_seed(0)
    images = torch.from_numpy(images[:, None].copy())
    network = TSimCNENetwork("resnet10-w8", in_channels=1, out_dim=128, hidden_dim=32)
    recorder = StageRecorder(network)
    recorder.recipe = request.param
    stages = make_stages((1, 2, 1), lr=0.05, recipe=request.param)
    history = train(network, images, stages, make_augmentation("natural", 1, (16, 16)),
                    batch_size=16, callbacks=[recorder])
    return network, recorder, history


def _changed(before, after, names):
    return {name for name in names if not torch.equal(before[name], after[name])}


READOUT = {"head.readout.weight", "head.readout.bias"}
HEAD = READOUT | {"head.hidden.0.weight", "head.hidden.0.bias"}


def test_readout_stage_trains_only_the_readout_or_the_head(staged_training):
    network, recorder, _ = staged_training
    # The paper trains the readout through the frozen backbone; the neighbors
    # recipe trains the whole head on cached features.
    trained = READOUT if recorder.recipe == "paper" else HEAD
    all_names = {name for name, _ in network.named_parameters()}
    trainable_by_stage = {(stage, epoch): names for stage, epoch, names, _ in recorder.epoch_ends}
    expected = {(0, 0): all_names, (1, 0): trained, (1, 1): trained, (2, 0): all_names}
    if recorder.recipe == "neighbors":  # the final readout
        expected.update({(3, 0): HEAD, (3, 1): HEAD})
    assert trainable_by_stage == expected

    after_pretraining = recorder.stage_ends[0][2]
    after_readout = recorder.stage_ends[1][2]
    frozen = all_names - trained
    assert _changed(after_pretraining, after_readout, frozen) == set()
    # Between the two readout epochs only the trained part moves.
    first_epoch, second_epoch = (p for stage, _, _, p in recorder.epoch_ends if stage == 1)
    assert _changed(first_epoch, second_epoch, all_names) == trained
    if recorder.recipe == "neighbors":
        # The backbone only computed the cache: its BatchNorm statistics are
        # as pre-training left them.
        statistics = recorder.buffers_at_stage_end
        assert all(torch.equal(statistics[0][name], statistics[1][name]) for name in statistics[0])


def test_the_final_readout_moves_only_the_fine_tuned_head(staged_training):
    network, recorder, _ = staged_training
    if recorder.recipe == "paper":
        assert len(recorder.stage_ends) == 3  # the paper's plan ends with fine-tuning
        return
    all_names = {name for name, _ in network.named_parameters()}
    after_fine_tuning, after_final_readout = recorder.stage_ends[2][2], recorder.stage_ends[3][2]
    assert _changed(after_fine_tuning, after_final_readout, all_names) == HEAD
    statistics = recorder.buffers_at_stage_end
    assert all(torch.equal(statistics[2][name], statistics[3][name]) for name in statistics[2])


def test_pretraining_and_fine_tuning_train_the_whole_network(staged_training):
    network, recorder, _ = staged_training
    # The loss depends only on differences between outputs, so the readout
    # bias gets no gradient; at lr / 1000 its weight decay is below float32's
    # resolution.  Every other parameter must move.
    names = {name for name, _ in network.named_parameters()} - {"head.readout.bias"}
    after_pretraining = recorder.stage_ends[0][2]
    after_readout = recorder.stage_ends[1][2]
    after_fine_tuning = recorder.stage_ends[2][2]
    assert _changed(recorder.initial, after_pretraining, names) == names
    assert _changed(after_readout, after_fine_tuning, names) == names


def test_stage_end_outputs_are_128_dimensional_then_2_dimensional(staged_training, images):
    _, recorder, history = staged_training
    n = len(images)
    final_readout = [(3, (n, 2))] if recorder.recipe == "neighbors" else []
    assert [(stage, shape) for stage, shape, _ in recorder.stage_ends] == [
        (0, (n, 128)), (1, (n, 2)), (2, (n, 2))
    ] + final_readout
    assert [len(losses) for losses in history] == [1, 2, 1] + [2] * len(final_readout)
    assert all(np.isfinite(losses).all() for losses in history)


def test_after_training_the_network_has_a_trainable_2d_readout(staged_training):
    network, _, _ = staged_training
    readout = network.head.readout
    assert isinstance(readout, nn.Linear)
    assert (readout.in_features, readout.out_features) == (32, 2)
    assert all(p.requires_grad for p in network.parameters())


@pytest.mark.parametrize("requested, n_images, expected", [(256, 100, 64), (32, 100, 32),
                                                           (100, 100, 100), (64, 1, 2)])
def test_batch_size_is_lowered_to_a_power_of_two_that_fits_the_images(requested, n_images,
                                                                     expected):
    assert batch_size_for(requested, n_images) == expected


def test_a_stage_resized_in_progress_anneals_its_learning_rate_over_the_new_length(images):
    torch.manual_seed(0)
    images = DeviceImages(torch.from_numpy(images[:, None].copy()))
    network = TSimCNENetwork("resnet10-w8", in_channels=1, out_dim=128, hidden_dim=32)
    stage = make_stages((6, 1, 1), lr=0.05)[0]
    run = StageRun(network, images, stage, 16, 0.9, 5e-4, Accelerations())
    epochs = run.epochs(0, make_augmentation("natural", 1, (16, 16)), torch.Generator(),
                        lambda: False)
    next(epochs)
    run.resize(2, epochs_done=1)
    assert len(list(epochs)) == 1  # one more epoch, then the stage ends
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="cannot be given 1"):
        run.resize(1, epochs_done=2)


def test_train_goes_on_with_the_plan_that_replan_returns_within_a_stage(images):
    torch.manual_seed(0)
    images = torch.from_numpy(images[:, None].copy())
    network = TSimCNENetwork("resnet10-w8", in_channels=1, out_dim=128, hidden_dim=32)
    calls, plans = [], []

    def replan(stage_index, stages, epochs_done):
        calls.append((stage_index, epochs_done))
        if (stage_index, epochs_done) == (0, 1):
            return make_stages((2, 1, 2), lr=0.05)
        return stages

    class Plans(Callback):
        def on_train_begin(self, stages):
            plans.append([stage.epochs for stage in stages])

    history = train(network, images, make_stages((4, 1, 3), lr=0.05),
                    make_augmentation("natural", 1, (16, 16)), batch_size=16,
                    callbacks=[Plans()], replan=replan)
    assert [len(h) for h in history] == [2, 1, 2, 1]
    assert plans == [[4, 1, 3, 1], [2, 1, 2, 1]]
    # After every epoch but a stage's last; before every stage but the first;
    # not within the readout stages on cached features.
    assert calls == [(0, 1), (1, 0), (2, 0), (2, 1), (3, 0)]


def test_pretraining_of_the_neighbors_recipe_alone_averages_its_weights():
    assert make_stages((3, 1, 1), lr=0.05)[0].weight_average == WEIGHT_AVERAGE_SHARE
    assert all(stage.weight_average == 0 for stage in make_stages((3, 1, 1), lr=0.05)[1:])
    assert all(stage.weight_average == 0
               for stage in make_stages((3, 1, 1), lr=0.05, recipe="paper"))


def test_a_stage_ends_with_the_moving_average_of_its_weights_after_every_step(
        images, monkeypatch):
    torch.manual_seed(0)
    images = DeviceImages(torch.from_numpy(images[:, None].copy()))
    network = TSimCNENetwork("resnet10-w8", in_channels=1, out_dim=128, hidden_dim=32)
    stage = replace(make_stages((3, 1, 1), lr=0.05)[0], weight_average=0.5)
    after_each_step = []
    real_step = trainer.training_step

    def recording_step(*args, **kwargs):
        loss = real_step(*args, **kwargs)
        after_each_step.append({name: value.detach().clone()
                                for name, value in network.state_dict().items()
                                if value.is_floating_point()})
        return loss

    monkeypatch.setattr(trainer, "training_step", recording_step)
    run = StageRun(network, images, stage, 16, 0.9, 5e-4, Accelerations())
    list(run.epochs(0, make_augmentation("natural", 1, (16, 16)), torch.Generator(),
                    lambda: False))
    steps = len(after_each_step)
    assert steps == 3 * run.steps_per_epoch
    decay = 1 - 1 / (0.5 * steps)
    expected = dict(after_each_step[0])
    for weights in after_each_step[1:]:
        expected = {name: decay * expected[name] + (1 - decay) * weights[name]
                    for name in expected}
    final = network.state_dict()
    last = after_each_step[-1]
    assert any(not torch.allclose(final[name], last[name]) for name in last)
    for name, value in expected.items():
        torch.testing.assert_close(final[name], value, rtol=1e-4, atol=1e-6)
