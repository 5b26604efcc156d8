"""Training from the plugin: progress events, Cancel, errors, resume."""

import warnings
from dataclasses import replace

import numpy as np
import pytest

from napari_tsimcne.plugin.controller import (
    ProgressEvent,
    TrainingProgress,
    TrainingSettings,
    capture,
    pca_2d,
    place_on_map,
    prepare_and_train,
    train_map,
)
from napari_tsimcne.plugin.layer_layout import TrainingRequest


def test_progress_reports_epochs_and_stage_maps():
    events = []
    progress = TrainingProgress((2, 1, 3), events.append)
    assert progress.total_epochs == 7  # with the final readout's epoch
    progress(0, 0, 5.0)
    progress.on_stage_end(0, np.random.default_rng(0).normal(size=(10, 128)))
    progress(2, 1, 3.5)
    progress.on_stage_end(3, np.zeros((10, 2)))
    assert [(e.stage, e.epoch, e.done, e.total) for e in events] == [
        (0, 1, 1, 7), (0, 2, 2, 7), (2, 2, 5, 7), (3, 1, 7, 7)]
    assert events[1].preview and events[1].embedding.shape == (10, 2)
    assert not events[3].preview
    assert events[0].describe() == "pre-training (1/4) · epoch 1/2 · loss 5.000"
    assert events[3].describe() == "final readout (4/4) · epoch 1/1"
    assert not progress.should_stop()
    progress.stop()
    assert progress.should_stop()


def test_pca_keeps_the_largest_spread():
    rng = np.random.default_rng(0)
    values = np.zeros((200, 5))
    values[:, 3] = rng.normal(0, 10, 200)
    values[:, 1] = rng.normal(0, 1, 200)
    projected = pca_2d(values)
    assert projected.shape == (200, 2)
    assert np.abs(np.corrcoef(projected[:, 0], values[:, 3])[0, 1]) > 0.999


def test_capture_turns_expected_errors_into_messages():
    def fail():
        raise ValueError("the message")

    assert capture(fail).error == "the message"
    assert capture(lambda: 3).value == 3
    with pytest.raises(ZeroDivisionError):
        capture(lambda: 1 / 0)


def tiny(epochs):
    return TrainingSettings(epochs=epochs, batch_size=16, backbone="resnet10-w8",
                            augmentation="microscopy", device="cpu", seed=0)


@pytest.mark.slow
def test_train_map_returns_map_and_features_and_stops_on_request():
    images = np.random.default_rng(0).uniform(0, 1, (40, 16, 16, 1)).astype(np.float32)
    events: list[ProgressEvent] = []
    progress = TrainingProgress((1, 1, 1), events.append)
    result = train_map(images, tiny((1, 1, 1)), progress)
    assert result.embedding.shape == (40, 2) and result.features.shape == (40, 64)
    assert not result.stopped_early
    assert sum(e.embedding is not None for e in events) == 4  # a map after every stage
    embedding, features = place_on_map(result.model, images[:5])
    np.testing.assert_allclose(embedding, result.embedding[:5], atol=1e-5)
    assert features.shape == (5, 64)

    stopper = TrainingProgress((5, 1, 1), lambda e: stopper.stop())
    assert capture(train_map, images, tiny((5, 1, 1)), stopper).stopped

    late = TrainingProgress((1, 1, 5), lambda e: late.stop() if e.stage == 2 else None)
    assert train_map(images, tiny((1, 1, 5)), late).stopped_early


@pytest.mark.slow
def test_a_cancelled_run_keeps_its_checkpoints_and_resumes_to_the_uninterrupted_map(tmp_path):
    images = np.random.default_rng(0).uniform(0, 1, (40, 16, 16, 1)).astype(np.float32)
    settings = replace(tiny((3, 1, 2)), checkpoint_dir=tmp_path / "run", checkpoint_every=1)
    assert settings.estimator().checkpoint_dir == tmp_path / "run"
    assert settings.estimator().checkpoint_every == 1

    uninterrupted = train_map(images, replace(settings, checkpoint_dir=tmp_path / "other"),
                              TrainingProgress((3, 1, 2), lambda e: None))
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == [
        "checkpoint-2-00002.pt", "checkpoint-3-00001.pt"]

    # Cancel as the front end does: stop() during pre-training, after its second epoch.
    cancel = TrainingProgress((3, 1, 2), lambda e: cancel.stop() if e.done == 2 else None)
    assert capture(train_map, images, settings, cancel).stopped
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint-0-00001.pt", "checkpoint-0-00002.pt"]

    with pytest.raises(ValueError, match="already holds checkpoints.*Resume"):
        train_map(images, settings, TrainingProgress((3, 1, 2), lambda e: None))  # not resume
    events = []
    resumed = train_map(images, replace(settings, resume=True),
                        TrainingProgress((3, 1, 2), events.append))
    epochs_trained = [event for event in events if event.loss is not None]
    assert epochs_trained[0].done == 3  # continued with the third epoch of pre-training
    np.testing.assert_array_equal(resumed.embedding, uninterrupted.embedding)
    np.testing.assert_array_equal(resumed.features, uninterrupted.features)


@pytest.mark.slow
def test_resume_needs_checkpoints_of_the_same_run(tmp_path):
    images = np.random.default_rng(0).uniform(0, 1, (40, 16, 16, 1)).astype(np.float32)
    progress = TrainingProgress((1,), lambda e: None)
    with pytest.raises(ValueError, match="choose it under Checkpoints"):
        train_map(images, replace(tiny((1,)), resume=True), progress)
    empty = replace(tiny((1,)), checkpoint_dir=tmp_path, resume=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the notice travels with the result, not as a warning
        from_the_start = train_map(images, empty, progress)
    assert from_the_start.notice == f"No checkpoint in {tmp_path}; training from the start."
    fresh = replace(empty, checkpoint_dir=tmp_path / "new", resume=False)
    assert train_map(images, fresh, progress).notice is None
    other_seed = replace(empty, seed=1)
    outcome = capture(train_map, images, other_seed, progress)
    assert "different run" in outcome.error and "random_state" in outcome.error


@pytest.mark.slow
def test_a_batch_larger_than_the_images_is_lowered_to_them():
    images = np.random.default_rng(0).uniform(0, 1, (20, 16, 16)).astype(np.float32)
    request = TrainingRequest([images], [False], ["few"])
    prepared, result = prepare_and_train(request, replace(tiny((1,)), batch_size=64),
                                         TrainingProgress((1,), lambda e: None))
    assert prepared.images.shape == (20, 16, 16, 1) and prepared.stack_axis == 0
    assert result.model.batch_size == 16 and result.embedding.shape == (20, 2)
