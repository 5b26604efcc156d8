"""The napari widgets end to end: training, live map, Cancel, exploring, bad input.

Run under a virtual display: ``xvfb-run -a pytest tests/test_widget.py``.
Models are tiny (ResNet-10 of width 8, 16x16 images, one epoch per stage).
"""

import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

from napari_tsimcne._widget import ExploreWidget, TrainWidget, map_record
from napari_tsimcne.budget import StageCosts
from napari_tsimcne.explore import PLACED_COLOR, USER_FEATURES_KEY

N_IMAGES, SIZE = 48, 16


@pytest.fixture
def errors(monkeypatch):
    """Messages passed to napari's show_error by the widgets."""
    messages = []
    monkeypatch.setattr("napari_tsimcne._widget.show_error", messages.append)
    return messages


def make_stack(seed=0, n=N_IMAGES):
    """Blobs of two sizes with noise, and a near copy of image 0 as the last image."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:SIZE, :SIZE]
    radius = np.where(np.arange(n) % 2, 3.0, 6.0)[:, None, None]
    centre = rng.uniform(6, 10, (n, 2))
    distance = np.hypot(rows - centre[:, 0, None, None], cols - centre[:, 1, None, None])
    images = 100 * (distance < radius) + rng.normal(0, 10, (n, SIZE, SIZE))
    images[-1] = images[0] + rng.normal(0, 0.5, (SIZE, SIZE))
    return images.astype(np.float32)


def add_widget(viewer, widget_class):
    widget = widget_class(viewer)
    viewer.window.add_dock_widget(widget)
    return widget


def tiny_settings(widget, epochs="1, 1, 1"):
    widget._epochs.value = epochs
    widget._backbone.value = "resnet10-w8"
    widget._batch_size.value = 16
    widget._device.value = "cpu"


def train(qtbot, widget, epochs="1, 1, 1"):
    tiny_settings(widget, epochs)
    widget.train()
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)


@pytest.fixture
def trained(make_napari_viewer, qtbot):
    """A viewer with a stack and its trained map; returns (viewer, train widget, map layer)."""
    viewer = make_napari_viewer()
    truth = pd.DataFrame({"size": np.where(np.arange(N_IMAGES) % 2, "small", "large")})
    viewer.add_image(make_stack(), name="blobs", metadata={USER_FEATURES_KEY: truth})
    widget = add_widget(viewer, TrainWidget)
    train(qtbot, widget)
    return viewer, widget, viewer.layers["blobs map"]


def cancel_when(widget, condition):
    """Press Cancel right after the first progress event that meets ``condition``.

    Cancel is pressed in the main thread, as a person would, while the
    training thread waits at that event until it has been pressed: the epoch
    that training stops at does not depend on how busy the machine is.
    Returns the two connected slots, for ``disconnect_all``.
    """
    pressed = threading.Event()

    def press(event):  # main thread, queued like the widget's own progress display
        if condition(event) and not pressed.is_set():
            widget.cancel()
            pressed.set()

    def hold(event):  # training thread, before its next step
        if condition(event):
            pressed.wait(60)

    widget._relay.event.connect(press)  # first, so that it is queued before hold waits
    widget._relay.event.connect(hold, Qt.ConnectionType.DirectConnection)
    return press, hold


def disconnect_all(widget, slots):
    for slot in slots:
        widget._relay.event.disconnect(slot)


@dataclass
class MouseEvent:
    """The parts of a vispy mouse event that napari's mouse callbacks read."""

    type: str
    position: tuple
    modifiers: list = field(default_factory=list)
    is_dragging: bool = False
    pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
    view_direction: tuple | None = None
    up_direction: tuple | None = None
    dims_displayed: list = field(default_factory=lambda: [1, 2])
    button: int = 1
    handled: bool = False


def world_position(layer, row):
    """Viewer position (stack axis first) of the centre of map point ``row``."""
    return (0.0, *map_record(layer).frame.to_world(layer.data[row]))


# --------------------------------------------------------------------------- training
def test_training_makes_a_map_with_features(trained):
    viewer, widget, layer = trained
    record = map_record(layer)
    assert layer.data.shape == (N_IMAGES, 2)
    assert list(layer.features.columns[:4]) == ["index", "x", "y", "size"]
    np.testing.assert_array_equal(layer.features["index"], np.arange(N_IMAGES))
    np.testing.assert_allclose(layer.features[["y", "x"]].to_numpy(), layer.data)
    assert record.model is not None and record.features.shape[0] == N_IMAGES
    assert not record.preview and layer.mode == "select"
    assert widget._status.value.startswith("Done: map of 48 images")
    assert widget._progress_bar.value == widget._progress_bar.max == 3
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
    assert seen == [(0, True, True), (1, False, False), (2, False, False)]


def test_defaults_follow_the_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((20, 64, 64, 3), np.uint8), rgb=True, name="photos")
    widget = add_widget(viewer, TrainWidget)
    widget._device.value = "cpu"
    assert widget._batch_size.value == 16  # largest power of two up to 20 images
    assert widget._image_size.value == 32
    assert widget._augmentation.value == "natural"
    assert widget._summary.value == "20 images, 64×64 px, 3 channel(s)"
    # The library derives the same settings from the same images.
    from napari_tsimcne.defaults import data_defaults
    same = data_defaults(20, 64, 64, 3, np.uint8, "cpu")
    assert (same.batch_size, same.image_size, same.augmentation) == (16, 32, "natural")
    widget._batch_size.value = 8
    viewer.add_points(np.zeros((3, 2)), name="unrelated")
    assert widget._batch_size.value == 8  # layer changes elsewhere keep the user's edits
    widget._schedule.value = "paper"
    assert widget._epochs.value == "1000, 50, 450"
    widget._epochs.value = "10, 2, 3"
    assert widget._schedule.value == "custom"


def test_large_images_default_to_the_library_s_shrunk_size(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((20, 300, 200), np.uint16), name="large")
    widget = add_widget(viewer, TrainWidget)
    widget._device.value = "cpu"
    assert widget._image_size.value == (256, 168)  # 256 px on the longer side, aspect kept
    assert widget._image_size.current_choice == "256×168 px"


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
    assert [layer.name for layer in widget._images.value] == ["a", "b"]
    assert widget._summary.value == "10 images, 16×16 px, 2 channel(s)"


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
    assert record.model.stopped_early_
    assert [len(losses) for losses in record.model.loss_history_] == [1, 1, 1]
    assert "stopped early" in widget._status.value


# --------------------------------------------------------------------- checkpoints
def test_cancel_keeps_checkpoints_and_resume_finishes_the_map(make_napari_viewer, qtbot,
                                                             tmp_path, errors):
    viewer = make_napari_viewer()
    viewer.add_image(make_stack(), name="blobs")
    widget = add_widget(viewer, TrainWidget)
    assert not widget._resume_button.enabled and not widget._checkpoint_every.enabled
    assert widget._checkpoint_every.value == 10
    folder = tmp_path / "checkpoints"  # created by the training
    widget._checkpoint_dir.value = folder
    widget._checkpoint_every.value = 1
    assert widget._resume_button.enabled and widget._checkpoint_every.enabled
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
    assert [len(h) for h in map_record(layer).model.loss_history_] == [3, 1, 1]
    assert widget._status.value.startswith("Done: map of 48 images")
    assert widget._progress_bar.value == widget._progress_bar.max == 5
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-1-00001.pt",
                                                       "checkpoint-2-00001.pt"]

    first = map_record(layer)
    widget._seed.value = 1  # another run: its checkpoints do not fit
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
    widget._checkpoint_dir.value = not_a_folder / "checkpoints"
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


# ------------------------------------------------------------------------ bad input
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
    widget._images.value = [viewer.layers["blobs"]]
    train(qtbot, widget)
    assert "blobs map" in viewer.layers


def test_empty_labels_give_a_clear_message(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64)), name="field")
    widget = add_widget(viewer, TrainWidget)
    widget._objects.value = viewer.add_labels(np.zeros((64, 64), int), name="nothing")
    train(qtbot, widget)
    assert len(errors) == 1 and "no objects" in errors[0]


def test_unreadable_epochs_give_a_clear_message(make_napari_viewer, errors):
    viewer = make_napari_viewer()
    viewer.add_image(make_stack(), name="blobs")
    widget = add_widget(viewer, TrainWidget)
    widget._epochs.value = "many"
    widget.train()
    assert not widget.running
    assert len(errors) == 1 and "not a training plan" in errors[0]


# -------------------------------------------------------------------------- labels
def test_labels_layer_gives_one_crop_per_object(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image = np.zeros((3, 96, 96))
    labels = np.zeros((3, 96, 96), int)
    for frame in range(3):
        for k in range(8):
            top, left = 12 * k, 10 + 6 * frame
            labels[frame, top : top + 6, left : left + 4 + k % 3] = frame * 8 + k + 1
            image[frame, top : top + 6, left : left + 4 + k % 3] = 50 + k
    viewer.add_image(image, name="field")
    viewer.add_labels(labels, name="cells")
    widget = add_widget(viewer, TrainWidget)
    assert widget._objects.value is viewer.layers["cells"]  # chosen with the image it labels
    assert widget._images.value == [viewer.layers["field"]]
    widget._crop_size.value = 16
    train(qtbot, widget)
    layer = viewer.layers["field map"]
    assert len(layer.data) == 24
    features = layer.features
    assert {"label", "frame", "area", "mean_intensity"} <= set(features.columns)
    assert features["area"].tolist()[:3] == [24, 30, 36]
    assert features["mean_intensity"].tolist()[:3] == [50, 51, 52]

    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    camera = getattr(viewer, "scene", viewer).camera
    camera.center = (0, 5000, 5000)  # far from the field
    explorer.select_rows([10])
    qtbot.waitUntil(lambda: len(explorer.gallery.rows) == 1)
    cells = viewer.layers["cells"]
    assert viewer.dims.current_step[0] == 1
    assert cells.selected_label == 11 and cells.show_selected_label  # the object alone
    np.testing.assert_allclose(camera.center[-2:], [26.5, 18.5])  # brought into view
    (box,) = viewer.layers["field map object"].data  # the crop, outlined
    np.testing.assert_allclose(box.min(axis=0), [26.5 - 8, 18.5 - 8])
    np.testing.assert_allclose(box.max(axis=0), [26.5 + 8, 18.5 + 8])
    assert viewer.layers.selection.active is layer
    explorer.select_rows([3, 10])
    qtbot.waitUntil(lambda: len(explorer.gallery.rows) == 2)
    assert not cells.show_selected_label and len(viewer.layers["field map object"].data) == 0


def test_a_field_with_labels_is_preselected_whole(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = add_widget(viewer, TrainWidget)  # open before the layers arrive, one by one
    viewer.open_sample("napari-tsimcne", "cell_field")
    assert [layer.name for layer in widget._images.value] == ["nucleus", "cell"]
    assert widget._objects.value is viewer.layers["cell labels"]
    widget._objects.value = None  # the user's choice is kept from then on
    viewer.add_points(np.zeros((2, 2)), name="unrelated")
    assert widget._objects.value is None


# ------------------------------------------------------------------------- explore
def test_click_jumps_to_the_image_and_shows_it(trained, qtbot):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    row = 17
    press = MouseEvent("mouse_press", world_position(layer, row))
    mouse_press_callbacks(layer, press)
    mouse_release_callbacks(layer, MouseEvent("mouse_release", press.position))
    assert set(layer.selected_data) == {row}
    qtbot.waitUntil(lambda: list(explorer.gallery.rows) == [row])
    assert viewer.dims.current_step[0] == row
    assert not explorer.gallery.pixmap().isNull()


def test_selecting_many_shows_a_gallery_and_tiles_jump(trained, qtbot):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    layer.selected_data = {3, 5, 8, 13}
    qtbot.waitUntil(lambda: list(explorer.gallery.rows) == [3, 5, 8, 13])
    assert "4 image(s) selected" in explorer.status.text()
    pixmap = explorer.gallery.pixmap()
    columns = explorer.gallery.columns
    tile = pixmap.width() / columns
    explorer.gallery.tile_clicked.emit(explorer.gallery.tile_row(1.5 * tile, 0.5 * tile))
    assert viewer.dims.current_step[0] == 5


def test_lasso_selects_the_points_inside(trained, qtbot):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    lasso = explorer.start_lasso()
    assert lasso.mode == "add_polygon_lasso"
    coordinates = map_record(layer).coordinates
    centre = np.median(coordinates, axis=0)
    half = np.abs(coordinates - centre).max() / 3
    square = centre + half * np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])
    lasso.add_polygons([square])
    inside = np.flatnonzero(np.all(np.abs(coordinates - centre) < half, axis=1))
    assert len(inside) > 0
    assert set(layer.selected_data) == set(inside)
    qtbot.waitUntil(lambda: len(explorer.gallery.rows) == min(len(inside), 100))
    assert len(lasso.data) == 1
    outside = next(row for row in range(N_IMAGES) if row not in inside)
    layer.selected_data = {outside}  # another selection: the outline no longer fits
    qtbot.waitUntil(lambda: len(lasso.data) == 0)


def test_selected_points_are_ringed_above_the_map(trained, qtbot):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    explorer.show_thumbnails(True)
    explorer.select_rows([4, 9])
    qtbot.waitUntil(lambda: "blobs map selection" in viewer.layers)
    ring = viewer.layers["blobs map selection"]
    np.testing.assert_array_equal(ring.data, layer.data[[4, 9]])
    np.testing.assert_allclose(ring.scale, layer.scale)
    np.testing.assert_allclose(ring.translate, layer.translate)
    assert np.all(ring.size > 2 * layer.size[[4, 9]]) and np.all(ring.border_width >= 0.2)
    assert ring.canvas_size_limits[0] >= 16  # visible however far the view is zoomed out
    np.testing.assert_allclose(ring.border_color, 1)  # white on napari's black canvas
    names = [each.name for each in viewer.layers]
    assert names.index("blobs map selection") > names.index("blobs map thumbnails") > names.index(
        "blobs map")
    assert viewer.layers.selection.active is layer  # clicks still go to the map
    explorer.select_rows(range(20))  # many: thin rings that do not merge into a blot
    qtbot.waitUntil(lambda: len(ring.data) == 20)
    assert np.all(ring.border_width < 0.2) and np.all(ring.size < 2 * layer.size[:20])
    layer.selected_data = set()
    qtbot.waitUntil(lambda: len(ring.data) == 0)


def test_removing_the_map_clears_the_explorer_and_its_layers(trained, qtbot):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    explorer.find_outliers()
    explorer.show_thumbnails(True)
    explorer.start_lasso()
    explorer.select_rows([1, 2, 3])
    qtbot.waitUntil(lambda: len(explorer.gallery.rows) == 3)
    assert explorer.legend.text() and explorer.outlier_list.count() == 25
    viewer.layers.remove(layer)
    assert explorer.record is None and explorer.map_box.count() == 0
    assert len(explorer.gallery.rows) == 0 and explorer.gallery.pixmap().isNull()
    assert "No map to explore" in explorer.status.text()
    assert explorer.legend.text() == "" and explorer.color_box.currentText() == "none"
    assert explorer.outlier_list.count() == 0 and not explorer.thumbnails_button.isChecked()
    for button in (explorer.lasso_button, explorer.thumbnails_button, explorer.export_button,
                   explorer.outlier_button, explorer.duplicate_button):
        assert not button.isEnabled()
    qtbot.waitUntil(lambda: [each.name for each in viewer.layers] == ["blobs"])  # helpers gone
    assert explorer.show_thumbnails(True) is None and explorer.start_lasso() is None
    assert [each.name for each in viewer.layers] == ["blobs"]


def test_the_explorer_follows_the_maps(trained, qtbot, tmp_path):
    viewer, widget, layer = trained
    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    map_record(layer).model.save(tmp_path / "model.pt")
    explorer.find_outliers()
    (opened,) = viewer.open(tmp_path / "model.pt", plugin="napari-tsimcne")
    assert explorer.record is map_record(opened) and opened.mode == "select"
    assert explorer.legend.text() == "" and explorer.outlier_list.count() == 0
    explorer.show_thumbnails(True)
    viewer.layers.remove(opened)  # back to the map that is left
    assert explorer.record is map_record(layer) and explorer.map_box.currentText() == "blobs map"
    assert explorer.lasso_button.isEnabled() and not explorer.thumbnails_button.isChecked()
    assert explorer.color_box.currentText() == "outlier_score"
    assert "&rarr;" in explorer.legend.text()
    qtbot.waitUntil(lambda: "model map thumbnails" not in viewer.layers)
    layer.name = "renamed"
    assert explorer.map_box.currentText() == "renamed"


def test_a_new_result_resets_what_was_found_in_the_old_one(trained, qtbot):
    viewer, widget, layer = trained
    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    explorer.find_outliers()
    old_thumbnails = explorer.show_thumbnails(True)
    train(qtbot, widget)  # the same images again: the map is redrawn in place
    assert explorer.record is map_record(layer)
    assert explorer.color_box.currentText() == "none" and explorer.legend.text() == ""
    assert explorer.outlier_list.count() == 0
    thumbnails = viewer.layers["blobs map thumbnails"]  # drawn again at the new places
    assert thumbnails is not old_thumbnails and explorer.thumbnails_button.isChecked()


def test_long_status_lines_are_shown_whole(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(900, 600)  # short of room: the form is squeezed
    widget = add_widget(viewer, TrainWidget)
    widget._status.value = "Map of 48 images; stopped early by Cancel. " * 4
    label = widget._status.native
    qtbot.waitUntil(lambda: label.height() >= label.heightForWidth(label.width()) > 3 * (
        label.fontMetrics().height()))


def test_points_do_not_move_when_dragged_or_deleted(trained):
    _, _, layer = trained
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    before = layer.data.copy()
    start = world_position(layer, 4)
    mouse_press_callbacks(layer, MouseEvent("mouse_press", start))
    moved = (0.0, start[1] + 5, start[2] + 5)
    mouse_move_callbacks(layer, MouseEvent("mouse_move", moved, is_dragging=True))
    mouse_release_callbacks(layer, MouseEvent("mouse_release", moved))
    assert set(layer.selected_data) == {4}
    np.testing.assert_array_equal(layer.data, before)
    layer.remove_selected()
    np.testing.assert_array_equal(layer.data, before)
    assert len(layer.features) == N_IMAGES
    layer.add([[0.0, 0.0]])
    np.testing.assert_array_equal(layer.data, before)


def test_outliers_duplicates_thumbnails_and_export(trained, qtbot, tmp_path):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    explorer.find_outliers()
    assert "outlier_score" in layer.features.columns
    assert explorer.outlier_list.count() == 25
    assert explorer.color_box.currentText() == "outlier_score"
    top = explorer.outlier_list.item(0)
    explorer.outlier_list.itemClicked.emit(top)
    assert set(layer.selected_data) == set(top.data(Qt.ItemDataRole.UserRole))
    most_unusual = [explorer.outlier_list.item(i).data(Qt.ItemDataRole.UserRole)[0] for i in range(5)]
    explorer.select_rows(most_unusual)
    qtbot.waitUntil(lambda: list(explorer.gallery.rows) == most_unusual)  # in list order

    explorer.find_duplicates()
    groups = [explorer.duplicate_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(explorer.duplicate_list.count())]
    assert [0, N_IMAGES - 1] in groups
    assert layer.features["duplicate_group"].iloc[0] == layer.features["duplicate_group"].iloc[-1] >= 0

    explorer.color_by("size")
    assert "large" in explorer.legend.text() and "small" in explorer.legend.text()
    colors = layer.face_color
    small = layer.features["size"].to_numpy() == "small"
    assert np.allclose(colors[small], colors[small][0]) and not np.allclose(colors[0], colors[1])

    thumbnails = explorer.show_thumbnails(True)
    assert thumbnails.rgb and thumbnails.data.shape[-1] == 4
    assert viewer.layers.index(thumbnails) == viewer.layers.index(layer) + 1
    assert viewer.layers.selection.active is layer
    explorer.show_thumbnails(False)
    assert thumbnails.name not in viewer.layers

    path = tmp_path / "map.csv"
    explorer.export_csv(path)
    table = pd.read_csv(path)
    assert list(table.columns[:3]) == ["index", "x", "y"]
    assert {"size", "outlier_score", "duplicate_group"} <= set(table.columns)
    np.testing.assert_allclose(table[["x", "y"]], layer.features[["x", "y"]])


def test_save_load_and_place_new_images(trained, qtbot, tmp_path, errors):
    viewer, widget, layer = trained
    path = tmp_path / "model.pt"
    widget._map.value = layer
    widget.save_model(path)
    assert path.is_file() and not errors
    explorer = viewer.window.dock_widgets["Explore map (napari-tsimcne)"]
    loaded = widget.load_model(path)
    np.testing.assert_allclose(loaded.data, layer.data, atol=1e-5)
    assert map_record(loaded).model is not None
    assert loaded.mode == "select" and explorer.record is map_record(loaded)  # ready to click

    viewer.add_image(make_stack(seed=1, n=10), name="new")
    widget._images.value = [viewer.layers["new"]]
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


def test_plugin_is_listed_and_valid():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("napari-tsimcne")
    manifest.validate_imports()
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert widgets == {"Train map", "Explore map"}
    assert {s.key for s in manifest.contributions.sample_data} == {
        "cells", "cell_field", "photo_patches", "shapes"}
    plugin_manager = npe2.PluginManager.instance()
    plugin_manager.discover()
    assert plugin_manager.get_manifest("napari-tsimcne").display_name == "t-SimCNE image map"


def test_a_map_table_opens_and_finds_its_images(make_napari_viewer, qtbot, tmp_path):
    from napari_tsimcne.files import write_embedding

    embedding = np.random.default_rng(0).normal(size=(N_IMAGES, 2))
    write_embedding(tmp_path / "embedding.csv", embedding, labels=np.arange(N_IMAGES) % 3)
    viewer = make_napari_viewer()
    viewer.add_image(make_stack(), name="blobs")
    (layer,) = viewer.open(tmp_path / "embedding.csv", plugin="napari-tsimcne")
    assert layer.name == "embedding map"
    np.testing.assert_allclose(layer.features[["x", "y"]], embedding)
    assert layer.features["label"].tolist()[:4] == [0, 1, 2, 0]
    explorer = add_widget(viewer, ExploreWidget)
    record = map_record(layer)
    assert record.source.layer == "blobs" and record.images.shape == (N_IMAGES, SIZE, SIZE, 1)
    explorer.select_rows([7])
    qtbot.waitUntil(lambda: list(explorer.gallery.rows) == [7])
    assert viewer.dims.current_step[0] == 7


def test_a_model_file_opens_as_its_map(trained, tmp_path):
    viewer, _, layer = trained
    map_record(layer).model.save(tmp_path / "model.pt")
    (opened,) = viewer.open(tmp_path / "model.pt", plugin="napari-tsimcne")
    np.testing.assert_allclose(opened.data, layer.data, atol=1e-5)
    assert map_record(opened).model is not None


def test_time_budget_is_the_default_schedule_and_its_plan_drives_the_progress_bar(
        make_napari_viewer, qtbot, monkeypatch):
    viewer = make_napari_viewer()
    viewer.add_image(make_stack(), name="blobs")
    widget = add_widget(viewer, TrainWidget)
    assert widget._schedule.value == "time budget"
    assert not widget._minutes.native.isHidden() and widget._epochs.native.isHidden()
    widget._minutes.value = 0.5
    assert widget.settings().time_budget == 30
    # Plans come from fixed step costs here, so that the test does not depend
    # on how busy the machine is.
    monkeypatch.setattr("napari_tsimcne.estimator.measure_costs", lambda *a, **k: StageCosts(
        epoch_s=1.0, readout_epoch_s=0.1, readout_setup_s=1.0, embed_s=0.1))
    events = []
    widget._relay.event.connect(events.append)
    widget._backbone.value = "resnet10-w8"
    widget._batch_size.value = 16
    widget._device.value = "cpu"
    widget.train()
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    model = map_record(viewer.layers["blobs map"]).model
    assert sum(model.epochs_) > 3  # planned, not the paper's epochs hidden under the field
    assert events[0].done == 0 and events[0].total == sum(model.epochs_)
    # The estimate comes with the plan, before the first epoch: the fixed costs predict it.
    assert events[0].seconds_left == pytest.approx(
        model.epochs_[0] + 1.0 + 0.1 * model.epochs_[1] + model.epochs_[2] + 0.1)
    assert "left" in events[0].describe() and all(e.seconds_left is not None for e in events)
    assert widget._progress_bar.max == sum(model.epochs_) == widget._progress_bar.value
    widget._schedule.value = "custom"
    assert widget._minutes.native.isHidden() and not widget._epochs.native.isHidden()
    assert widget.settings().time_budget is None
