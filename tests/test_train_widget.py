"""The Train map widget end to end: training, live map, Cancel, checkpoints, bad input, models.

Run under a virtual display: ``xvfb-run -a pytest tests/test_train_widget.py``.
"""

import numpy as np
import pytest
from conftest import unrevised_plan
from plugin_helpers import (
    EXPLORER,
    N_IMAGES,
    SIZE,
    add_widget,
    cancel_when,
    disconnect_all,
    errors,  # noqa: F401 (fixture)
    make_stack,
    train,
    trained,  # noqa: F401 (fixture)
)

from napari_tsimcne.budget import StageCosts
from napari_tsimcne.plugin.colors import PLACED_COLOR
from napari_tsimcne.plugin.map_layers import map_record
from napari_tsimcne.plugin.train_widget import TrainWidget

# Every test here opens a napari viewer, most of them train.
pytestmark = pytest.mark.slow


# -------------------------------------------------------------------- training
def test_training_makes_a_map_with_features(trained):
    viewer, widget, layer = trained
    record = map_record(layer)
    assert layer.data.shape == (N_IMAGES, 2)
    assert list(layer.features.columns[:4]) == ["index", "x", "y", "size"]
    np.testing.assert_array_equal(layer.features["index"], np.arange(N_IMAGES))
    np.testing.assert_allclose(layer.features[["y", "x"]].to_numpy(), layer.data)
    assert record.model is not None and record.backbone_features.shape[0] == N_IMAGES
    assert not record.preview and layer.mode == "select"
    assert widget._status.value.startswith("Done: map of 48 images")
    assert widget._progress_bar.value == widget._progress_bar.max == 4
    assert "Explore map (napari-tsimcne)" in viewer.window.dock_widgets


def test_map_is_updated_at_every_stage(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(make_stack(), name="blobs")
    widget = add_widget(viewer, TrainWidget)
    seen = []
    widget._relay.event.connect(
        lambda event: seen.append((event.stage, event.preview, "blobs map (preview)" in viewer.layers))
        if event.embedding is not None else None
    )
    train(qtbot, widget)
    assert seen == [(0, True, True), (1, False, False), (2, False, False), (3, False, False)]


def test_defaults_follow_the_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((20, 64, 64, 3), np.uint8), rgb=True, name="photos")
    widget = add_widget(viewer, TrainWidget)
    widget.form.device.value = "cpu"
    assert widget.form.batch_size.value == 16  # largest power of two up to 20 images
    assert widget.form.image_size.value == 32
    assert widget.form.augmentation.value == "natural"
    assert widget.form.summary.value == "20 images, 64×64 px, 3 channel(s)"
    # The library derives the same settings from the same images.
    from napari_tsimcne.defaults import data_defaults
    same = data_defaults(20, 64, 64, 3, np.uint8, "cpu")
    assert (same.batch_size, same.image_size, same.augmentation) == (16, 32, "natural")
    widget.form.batch_size.value = 8
    viewer.add_points(np.zeros((3, 2)), name="unrelated")
    assert widget.form.batch_size.value == 8  # layer changes elsewhere keep the user's edits
    widget.form.schedule.value = "paper"
    assert widget.form.epochs.value == "1000, 50, 450"
    widget.form.epochs.value = "10, 2, 3"
    assert widget.form.schedule.value == "custom"


def test_large_images_default_to_the_library_s_shrunk_size(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((20, 300, 200), np.uint16), name="large")
    widget = add_widget(viewer, TrainWidget)
    widget.form.device.value = "cpu"
    assert widget.form.image_size.value == (256, 168)  # 256 px on the longer side, aspect kept
    assert widget.form.image_size.current_choice == "256×168 px"


def test_rgb_stacks_train_and_show_in_colour(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    photos = np.zeros((24, SIZE, SIZE, 3), np.uint8)
    photos[::2, ..., 0] = 200  # red and blue images
    photos[1::2, ..., 2] = 200
    viewer.add_image(photos, rgb=True, name="photos")
    widget = add_widget(viewer, TrainWidget)
    train(qtbot, widget)
    record = map_record(viewer.layers["photos map"])
    assert record.images.shape == (24, SIZE, SIZE, 3)
    assert record.display.to_rgb(record.images[:2])[:, 0, 0].tolist() == [[200, 0, 0], [0, 0, 200]]


def test_channel_layers_are_preselected_together(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((10, 16, 16, 2)), channel_axis=3, name=["a", "b"])
    viewer.add_image(np.zeros((5, 16, 16)), name="other")
    widget = add_widget(viewer, TrainWidget)
    assert [layer.name for layer in widget.form.images.value] == ["a", "b"]
    assert widget.form.summary.value == "10 images, 16×16 px, 2 channel(s)"


def test_a_field_with_labels_is_preselected_whole(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = add_widget(viewer, TrainWidget)  # open before the layers arrive, one by one
    viewer.open_sample("napari-tsimcne", "cell_field")
    assert [layer.name for layer in widget.form.images.value] == ["nucleus", "cell"]
    assert widget.form.objects.value is viewer.layers["cell labels"]
    widget.form.objects.value = None  # the user's choice is kept from then on
    viewer.add_points(np.zeros((2, 2)), name="unrelated")
    assert widget.form.objects.value is None


def test_time_budget_is_the_default_schedule_and_its_plan_drives_the_progress_bar(
        make_napari_viewer, qtbot, monkeypatch):
    viewer = make_napari_viewer()
    viewer.add_image(make_stack(), name="blobs")
    widget = add_widget(viewer, TrainWidget)
    assert widget.form.schedule.value == "time budget"
    assert not widget.form.minutes.native.isHidden() and widget.form.epochs.native.isHidden()
    widget.form.minutes.value = 0.5
    assert widget.form.settings().time_budget == 30
    # Plans come from fixed step costs here, so that the test does not depend
    # on how busy the machine is.
    monkeypatch.setattr("napari_tsimcne.estimator.measure_costs", lambda *a, **k: StageCosts(
        epoch_s=1.0, readout_epoch_s=0.1, readout_setup_s=1.0, embed_s=0.1))
    # Slower than the real steps, which a revision would lengthen: the first plan is kept.
    monkeypatch.setattr("napari_tsimcne.estimator.revise_plan", unrevised_plan)
    events = []
    widget._relay.event.connect(events.append)
    widget.form.backbone.value = "resnet10-w8"
    widget.form.batch_size.value = 16
    widget.form.device.value = "cpu"
    widget.train()
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    model = map_record(viewer.layers["blobs map"]).model
    assert sum(model.epochs) > 3  # planned, not the paper's epochs hidden under the field
    assert events[0].done == 0 and events[0].total == sum(model.epochs)
    # The estimate comes with the plan, before the first epoch: the fixed costs predict it.
    assert events[0].seconds_left == pytest.approx(
        model.epochs[0] + 1.0 + 0.1 * model.epochs[1] + model.epochs[2] + 1.0
        + 0.1 * model.epochs[3] + 0.1)
    assert "left" in events[0].describe() and all(e.seconds_left is not None for e in events)
    assert widget._progress_bar.max == sum(model.epochs) == widget._progress_bar.value
    widget.form.schedule.value = "custom"
    assert widget.form.minutes.native.isHidden() and not widget.form.epochs.native.isHidden()
    assert widget.form.settings().time_budget is None


# ---------------------------------------------------------------------- cancel
def test_cancel_keeps_the_previous_result(trained, qtbot):
    _, widget, layer = trained
    first = map_record(layer)
    coordinates = layer.data.copy()

    cancel_when(widget, lambda event: event.stage == 0 and event.epoch == 1)
    train(qtbot, widget, epochs="3, 1, 1")
    assert map_record(layer) is first
    np.testing.assert_array_equal(layer.data, coordinates)
    assert layer.name == "blobs map"
    assert "previous result is kept" in widget._status.value
    assert widget._train_button.text == "Train"


def test_cancel_during_the_2d_stages_keeps_the_map(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(make_stack(), name="blobs")
    widget = add_widget(viewer, TrainWidget)
    cancel_when(widget, lambda event: event.stage == 2 and event.epoch == 1)
    train(qtbot, widget, epochs="1, 1, 3")
    record = map_record(viewer.layers["blobs map"])
    assert record.model.stopped_early
    assert [len(losses) for losses in record.model.loss_history] == [1, 1, 1]
    assert "stopped early" in widget._status.value


# ----------------------------------------------------------------- checkpoints
def test_cancel_keeps_checkpoints_and_resume_finishes_the_map(make_napari_viewer, qtbot,
                                                             tmp_path, errors):
    viewer = make_napari_viewer()
    viewer.add_image(make_stack(), name="blobs")
    widget = add_widget(viewer, TrainWidget)
    assert not widget._resume_button.enabled and not widget.form.checkpoint_every.enabled
    assert widget.form.checkpoint_every.value == 10
    folder = tmp_path / "checkpoints"  # created by the training
    widget.form.checkpoint_dir.value = folder
    widget.form.checkpoint_every.value = 1
    assert widget._resume_button.enabled and widget.form.checkpoint_every.enabled
    resume_enabled_while_running = []
    widget._relay.event.connect(
        lambda event: resume_enabled_while_running.append(widget._resume_button.enabled))
    cancel = cancel_when(widget, lambda event: event.done == 2)
    train(qtbot, widget, epochs="3, 1, 1")
    disconnect_all(widget, cancel)
    assert resume_enabled_while_running and not any(resume_enabled_while_running)
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-0-00001.pt",
                                                       "checkpoint-0-00002.pt"]
    assert "Resume continues" in widget._status.value and "blobs map" not in viewer.layers

    widget.resume()
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    assert errors == []
    layer = viewer.layers["blobs map"]
    assert layer.data.shape == (N_IMAGES, 2)
    assert [len(h) for h in map_record(layer).model.loss_history] == [3, 1, 1, 1]
    assert widget._status.value.startswith("Done: map of 48 images")
    assert widget._progress_bar.value == widget._progress_bar.max == 6
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-2-00001.pt",
                                                       "checkpoint-3-00001.pt"]

    first = map_record(layer)
    widget.form.seed.value = 1  # another run: its checkpoints do not fit
    widget.resume()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert len(errors) == 1 and "different run" in errors[0] and "random_state" in errors[0]
    widget.train()  # a new training would mix its checkpoints with the old ones
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert len(errors) == 2 and "already holds checkpoints" in errors[1]
    assert map_record(layer) is first


def test_unwritable_checkpoint_folder_gives_a_clear_message(trained, qtbot, tmp_path, errors):
    viewer, widget, layer = trained
    first = map_record(layer)
    coordinates = layer.data.copy()
    names = [each.name for each in viewer.layers]
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    widget.form.checkpoint_dir.value = not_a_folder / "checkpoints"
    train(qtbot, widget)
    assert len(errors) == 1 and "Cannot write checkpoints" in errors[0]
    assert str(not_a_folder / "checkpoints") in errors[0]
    assert [each.name for each in viewer.layers] == names
    assert map_record(layer) is first
    np.testing.assert_array_equal(layer.data, coordinates)
    # The whole message stays readable under Progress, after a short first sentence.
    assert widget._status.value == errors[0]
    assert errors[0].startswith("Training failed. Cannot write checkpoints")
    assert widget._train_button.text == "Train" and widget._resume_button.enabled


# ------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("data", "message"),
    [(np.zeros((32, 32)), "single 2-D image"), (np.zeros((1, 16, 16)), "only 1 image")],
)
def test_bad_stacks_give_a_clear_message(make_napari_viewer, qtbot, errors, data, message):
    viewer = make_napari_viewer()
    viewer.add_image(data, name="bad")
    widget = add_widget(viewer, TrainWidget)
    train(qtbot, widget)
    assert len(errors) == 1 and message in errors[0]
    assert "bad map" not in viewer.layers
    assert widget._train_button.text == "Train"
    viewer.add_image(make_stack(), name="blobs")  # still usable
    widget.form.images.value = [viewer.layers["blobs"]]
    train(qtbot, widget)
    assert "blobs map" in viewer.layers


def test_empty_labels_give_a_clear_message(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64)), name="field")
    widget = add_widget(viewer, TrainWidget)
    widget.form.objects.value = viewer.add_labels(np.zeros((64, 64), int), name="nothing")
    train(qtbot, widget)
    assert len(errors) == 1 and "no objects" in errors[0]


def test_unreadable_epochs_give_a_clear_message(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    viewer.add_image(make_stack(), name="blobs")
    widget = add_widget(viewer, TrainWidget)
    widget.form.epochs.value = "many"
    widget.train()
    assert not widget.running
    assert len(errors) == 1 and "not a training plan" in errors[0]


# ----------------------------------------------------- status, models, drawing
def test_long_status_lines_are_shown_whole(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(900, 600)  # short of room: the form is squeezed
    widget = add_widget(viewer, TrainWidget)
    widget._status.value = "Map of 48 images; stopped early by Cancel. " * 4
    label = widget._status.native
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()) > 3 * (
        label.fontMetrics().height()))


def test_save_load_and_place_new_images(trained, qtbot, tmp_path, errors):
    viewer, widget, layer = trained
    path = tmp_path / "model.pt"
    widget._map.value = layer
    widget.save_model(path)
    assert path.is_file() and not errors
    explorer = viewer.window.dock_widgets[EXPLORER]
    loaded = widget.load_model(path)
    np.testing.assert_allclose(loaded.data, layer.data, atol=1e-5)
    assert map_record(loaded).model is not None
    assert loaded.mode == "select" and explorer.record is map_record(loaded)  # ready to click

    viewer.add_image(make_stack(seed=1, n=10), name="new")
    widget.form.images.value = [viewer.layers["new"]]
    widget._map.value = layer
    widget.place_images()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    placed = viewer.layers["new on blobs map"]
    assert len(placed.data) == 10 and map_record(placed).placed
    np.testing.assert_allclose(placed.scale, layer.scale)
    np.testing.assert_allclose(placed.translate, layer.translate)
    np.testing.assert_allclose(placed.face_color[0], PLACED_COLOR)
    assert placed.mode == "select" and explorer.record is map_record(placed)
    assert explorer.map_box.currentText() == "new on blobs map"


def test_screenshot_shows_the_points(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)  # a hidden canvas renders nothing
    widget = add_widget(viewer, TrainWidget)
    viewer.add_image(make_stack(), name="blobs", visible=False)
    train(qtbot, widget)
    layer = viewer.layers["blobs map"]
    viewer.reset_view()
    screenshot = viewer.screenshot(canvas_only=True, flash=False)
    color = np.round(np.asarray(layer.face_color[0][:3]) * 255)
    close = np.abs(screenshot[..., :3].astype(int) - color).max(axis=-1) <= 40
    assert close.sum() > 3 * N_IMAGES  # every point covers several pixels of its colour
