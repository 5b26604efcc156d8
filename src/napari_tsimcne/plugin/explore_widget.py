"""The Explore map widget: the images of the selected points, colours, outliers, near-duplicates.

It reads the explored map's table from the map layer's features, so that
columns other plugins add there can colour the map and are kept and exported.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from napari.layers.base import ActionType
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .color_key import ColorChoice
from .colors import map_colors
from .controller import capture
from .findings import FindingsTabs
from .gallery import GalleryView
from .geometry import points_in_polygon
from .helper_layers import (
    LASSO,
    OBJECT,
    SELECTION,
    THUMBNAILS,
    add_lasso,
    add_thumbnails,
    helper_of,
    helpers_of,
    is_plugin_layer,
    made_of,
    make_canvas_current,
    outline_crop,
    owner,
    remove_layers,
    remove_soon,
    ring_points,
)
from .map_layers import (
    attach_images,
    camera,
    crop_corners,
    jump_to_image,
    map_record,
    protect_map,
)
from .map_table import ImageMap, map_coordinates, write_map_table
from .messages import grow_with_text, report_error

__all__ = ["ExploreWidget"]

#: Most images shown at once in the gallery.
GALLERY_LIMIT = 100
#: What the widget says while nothing is selected.
SELECTION_HINT = ("Click a point, drag a box around points (select mode), or use Lasso; "
                  "the gallery shows their images.")
#: What the widget says while there is no map.
NO_MAP_HINT = ("No map to explore: train one with Train map, or open a map table (.csv) or a "
               "model file (.pt).")


class ExploreWidget(QWidget):
    """Look at a map: gallery of the selected images, colours, outliers, near-duplicates.

    The widget follows the layer list: a new map becomes the one explored,
    and when the explored map is deleted the widget moves to another map or
    clears itself, removing the layers it drew for the deleted one.
    """

    def __init__(self, napari_viewer):
        super().__init__()
        self._viewer = napari_viewer
        self._layer: Points | None = None
        self._shown_record: ImageMap | None = None  # what the lists and thumbnails were made of
        self._requested_order: list[int] = []
        self._lasso_rows: set[int] = set()
        self._labels_alone: Labels | None = None  # a Labels layer showing only the clicked object
        self._gallery_timer = QTimer(self, singleShot=True, interval=0)
        self._gallery_timer.timeout.connect(self._on_selection_settled)

        self.map_box = QComboBox()
        self.colors = ColorChoice(self)
        self.lasso_button = QPushButton("Lasso")
        self.lasso_button.setToolTip("Draw around points on the map to select them.")
        self.thumbnails_button = QPushButton("Thumbnails")
        self.thumbnails_button.setCheckable(True)
        self.thumbnails_button.setToolTip("Show one image per grid cell at its place on the map, "
                                          "sized for the current zoom.")
        self.export_button = QPushButton("Export CSV…")
        self.findings = FindingsTabs()
        self.status = QLabel(SELECTION_HINT)
        self.status.setWordWrap(True)
        grow_with_text(self.status)
        self.gallery = GalleryView()
        self._layout_widgets()

        self.map_box.currentIndexChanged.connect(self._on_map_chosen)
        self.colors.chosen.connect(self.color_by)
        self.lasso_button.clicked.connect(self.start_lasso)
        self.thumbnails_button.toggled.connect(self.show_thumbnails)
        self.export_button.clicked.connect(self._ask_export)
        self.findings.rows_chosen.connect(self.select_rows)
        self.findings.message.connect(self.status.setText)
        self.findings.color_by.connect(self.color_by)
        self.gallery.tile_clicked.connect(self._on_tile_clicked)
        self._viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self._viewer.layers.events.removing.connect(self._before_layer_removed)
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        self._explore(None)
        self._fill_map_box()

    def _layout_widgets(self) -> None:
        form = QFormLayout()
        form.addRow("Map", self.map_box)
        form.addRow("Colour by", self.colors.box)
        form.addRow("", self.colors.legend)
        buttons = QHBoxLayout()
        for button in (self.lasso_button, self.thumbnails_button, self.export_button):
            buttons.addWidget(button)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.gallery)
        scroll.setMinimumHeight(260)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.findings)
        layout.addWidget(self.status)
        layout.addWidget(scroll, stretch=1)

    # ------------------------------------------------------------ choosing maps
    @property
    def record(self) -> ImageMap | None:
        """The explored map's record, or ``None`` without a map."""
        return map_record(self._layer)

    @property
    def table(self):
        """The explored map's table: its layer's features (``None`` without a map)."""
        return None if self._layer is None else self._layer.features

    def _on_layer_inserted(self, event) -> None:
        layer = event.value
        if map_record(layer) is not None:
            self._fill_map_box(explore=layer)
            layer.mode = "select"  # also for maps opened from files

    def _before_layer_removed(self, _event) -> None:
        make_canvas_current(self._viewer)  # also for removals by the user

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        if map_record(layer) is not None:
            remove_soon(self._viewer, helpers_of(self._viewer, layer))
            self._fill_map_box()
        elif self._layer is not None and owner(layer) == self._layer:
            self._set_thumbnails_checked(helper_of(self._viewer, self._layer, THUMBNAILS)
                                         is not None)

    def _fill_map_box(self, *_, explore: Points | None = None) -> None:
        """List the viewer's maps and explore ``explore``, else the current map, else the newest."""
        maps = [layer for layer in self._viewer.layers if map_record(layer)]
        if explore not in maps:
            explore = self._layer if self._layer in maps else (maps[-1] if maps else None)
        self.map_box.blockSignals(True)
        self.map_box.clear()
        for layer in maps:
            self.map_box.addItem(layer.name, layer)
            layer.events.name.connect(self._fill_map_box)
            layer.events.features.connect(self._on_features_changed)
        self.map_box.setCurrentIndex(-1 if explore is None else maps.index(explore))
        self.map_box.blockSignals(False)
        if explore != self._layer:
            self._explore(explore)

    def _on_map_chosen(self, *_):
        self._explore(self.map_box.currentData())

    def _explore(self, layer: Points | None) -> None:
        """Make ``layer`` (a map, or ``None``) the explored map; everything shown follows it."""
        old = self._layer
        if old is not None:
            old.selected_data.events.items_changed.disconnect(self._schedule_gallery)
            self._outline_object(None)
            # What follows the selection of the old map would no longer follow it.
            remove_soon(self._viewer, helpers_of(self._viewer, old, (LASSO, SELECTION, OBJECT)))
        self._layer = layer
        self._requested_order = []
        if layer is not None:
            protect_map(layer)
            if self.record.images is None and not self.record.preview:
                self._link_images()
            layer.selected_data.events.items_changed.connect(self._schedule_gallery)
        for widget in (self.colors.box, self.lasso_button, self.thumbnails_button,
                       self.export_button):
            widget.setEnabled(layer is not None)
        self._show_record()

    def _show_record(self) -> None:
        """Start afresh from the explored map's record: lists, colours, thumbnails, selection."""
        self._shown_record = self.record
        self.findings.explore(self._layer)
        self._refresh_colors()
        thumbnails = None if self._layer is None else helper_of(self._viewer, self._layer,
                                                                 THUMBNAILS)
        self._set_thumbnails_checked(thumbnails is not None)
        self._show_selection()

    def _on_features_changed(self, event) -> None:
        """A map's table changed: a column was added or changed, or the map shows a new result."""
        layer = event.source
        thumbnails = helper_of(self._viewer, layer, THUMBNAILS)
        if layer != self._layer:
            if thumbnails is not None and made_of(thumbnails) is not map_record(layer):
                remove_soon(self._viewer, [thumbnails])  # the points moved away from them
        elif self.record is not self._shown_record:
            wanted = self.thumbnails_button.isChecked()
            self._show_record()
            if wanted and self.record.images is not None:
                self.show_thumbnails(True)
            elif wanted:  # a map in training: its images come with the finished map
                if thumbnails is not None:
                    remove_layers(self._viewer, [thumbnails])
                self._set_thumbnails_checked(True)
        else:
            self._refresh_colors()

    def _link_images(self) -> None:
        """Attach an open image stack with one image per point to a map read from a file."""
        layers = [layer for layer in self._viewer.layers
                  if isinstance(layer, Image) and not is_plugin_layer(layer)]
        name = attach_images(self._viewer, self._layer, layers)
        if name is not None:
            self.status.setText(f"Showing the images of '{name}' for this map.")

    def _schedule_gallery(self, *_):
        # Box selection changes the selection in several steps; draw once after them.
        self._gallery_timer.start()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self.colors.fit_key(self._key_width())  # as many columns as fit
        self.update_gallery()  # the tiles follow the new width

    # ------------------------------------------------------------------ colours
    def _key_width(self) -> int:
        # The key sits in the column of the colour box, also while it is hidden.
        return self.width() - self.colors.box.x()

    def _refresh_colors(self, *_):
        """Offer the table's columns to colour by, and colour the points by the chosen one."""
        record, table = self.record, self.table
        if record is None:
            self.colors.offer([], None)
            self.colors.show_key(None, self._key_width())
            return
        self.colors.offer([c for c in table.columns if c not in ("x", "y")], record.color_by)
        coloring = map_colors(table, record.color_by, record.base_color)
        if record.color_by is not None:  # the column's values may have changed
            self._layer.face_color = coloring.colors
        self.colors.show_key(coloring, self._key_width())

    def color_by(self, feature: str | None) -> None:
        """Colour the map's points by ``feature`` (a column of its table), or plainly."""
        record = self.record
        if record is None:
            return
        record.color_by = feature
        coloring = map_colors(self.table, feature, record.base_color)
        self._layer.face_color = coloring.colors
        self.colors.show_key(coloring, self._key_width())
        self.colors.show_chosen(feature)

    # ---------------------------------------------------------------- selection
    def selected_rows(self) -> np.ndarray:
        """Selected map rows, in the order they were asked for (e.g. most unusual first)."""
        if self._layer is None:
            return np.array([], dtype=int)
        selected = set(self._layer.selected_data)
        if selected == set(self._requested_order):
            return np.array(self._requested_order, dtype=int)
        return np.array(sorted(selected), dtype=int)

    def _on_selection_settled(self) -> None:
        """One selected image also moves the viewer to it; any selection fills the gallery."""
        if self._layer is None:
            return
        rows = self.selected_rows()
        if len(rows) == 1:
            self._labels_alone = jump_to_image(self._viewer, self.record, self.table, int(rows[0]))
        self._show_selection()

    def _show_selection(self) -> None:
        """Ring the selected points, drop a lasso outline that no longer fits, fill the gallery."""
        rows = self.selected_rows()
        if self._layer is not None:
            ring_points(self._viewer, self._layer, rows)
            lasso = helper_of(self._viewer, self._layer, LASSO)
            if lasso is not None and len(lasso.data) and set(rows.tolist()) != self._lasso_rows:
                lasso.data = []
        self._outline_object(int(rows[0]) if len(rows) == 1 else None)
        self.update_gallery()

    def _outline_object(self, row: int | None) -> None:
        """Outline the crop of object ``row`` in the image it was cut from.

        ``None`` removes the outline and shows all labels again.
        """
        if row is None and self._labels_alone is not None:
            if self._labels_alone in self._viewer.layers:
                self._labels_alone.show_selected_label = False
            self._labels_alone = None
        if self._layer is not None:
            outline_crop(self._viewer, self._layer, None if row is None else crop_corners(
                self._viewer, self.record, self.table, row))

    # ----------------------------------------------------------------- gallery
    def update_gallery(self) -> None:
        """Show the images of the selected points (the first :data:`GALLERY_LIMIT`)."""
        record, rows = self.record, self.selected_rows()
        if record is None or len(rows) == 0:
            self.gallery.show_nothing()
            self.status.setText(NO_MAP_HINT if record is None else SELECTION_HINT)
            return
        if record.images is None:
            self.gallery.show_nothing()
            self.status.setText(f"{len(rows)} selected. This map has no images attached "
                                "(it was read from a file), so there is nothing to show.")
            return
        shown = rows[:GALLERY_LIMIT]
        more = f" (showing the first {GALLERY_LIMIT})" if len(rows) > GALLERY_LIMIT else ""
        self.status.setText(f"{len(rows)} image(s) selected{more}.")
        indices = self.table["index"].to_numpy()[shown]
        self.gallery.show_tiles(record.rgb(indices), shown, indices,
                                self.gallery.parentWidget().width() - 4)

    def _on_tile_clicked(self, row: int):
        self._labels_alone = jump_to_image(self._viewer, self.record, self.table, row)
        self._outline_object(row)

    def select_rows(self, rows) -> None:
        """Select map rows ``rows`` (the gallery follows)."""
        if self._layer is not None:
            self._requested_order = [int(r) for r in rows]
            self._layer.selected_data = set(self._requested_order)
            self._viewer.layers.selection.active = self._layer

    # ------------------------------------------------------------------- lasso
    def start_lasso(self) -> Shapes | None:
        """Add (or reuse) a Shapes layer where each drawn polygon selects the points inside."""
        if self._layer is None:
            return None
        lasso = helper_of(self._viewer, self._layer, LASSO)
        if lasso is None:
            lasso = add_lasso(self._viewer, self._layer)
            lasso.events.data.connect(self._on_lasso_drawn)
        self._viewer.layers.selection.active = lasso
        lasso.mode = "add_polygon_lasso"
        self.status.setText("Draw around points on the map; releasing the mouse selects them.")
        return lasso

    def _on_lasso_drawn(self, event):
        if event.action != ActionType.ADDED or owner(event.source) != self._layer:
            return
        polygon = event.source.data[-1]
        rows = points_in_polygon(map_coordinates(self.table), polygon)
        self._lasso_rows = set(rows.tolist())
        if len(event.source.data) > 1:  # keep only the newest outline on screen
            with event.source.events.data.blocker(self._on_lasso_drawn):
                event.source.data = [polygon]
        self.select_rows(rows)

    # ------------------------------------------------------ thumbnails, export
    def show_thumbnails(self, visible: bool = True) -> Image | None:
        """Show (or hide) an image of thumbnails laid out at the points' places, above them.

        The grid and the thumbnails' resolution are chosen for the current
        zoom (see :func:`.montage.atlas_grid`); press again after zooming to
        redraw them for the new view.
        """
        record = self.record
        if record is None:
            return None
        shown = helper_of(self._viewer, self._layer, THUMBNAILS)
        if shown is not None:
            remove_layers(self._viewer, [shown])
        if not visible or record.images is None:
            if visible:
                self.status.setText("This map has no images attached, so no thumbnails.")
            self._set_thumbnails_checked(False)
            return None
        layer = add_thumbnails(self._viewer, self._layer, record, self.table,
                               camera(self._viewer).zoom)
        self._set_thumbnails_checked(True)
        return layer

    def _set_thumbnails_checked(self, checked: bool) -> None:
        self.thumbnails_button.blockSignals(True)
        self.thumbnails_button.setChecked(checked)
        self.thumbnails_button.blockSignals(False)

    def _ask_export(self):
        if self.record is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export map table", f"{self._layer.name}.csv",
                                              "CSV table (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path) -> None:
        """Write the map's table, its layer's features as they are, to a CSV file."""
        table = self.table
        outcome = capture(write_map_table, table, path)
        if outcome.error:
            report_error(self.status.setText, "Export failed.", outcome.error)
        else:
            self.status.setText(f"Exported {len(table)} rows to {path}.")
