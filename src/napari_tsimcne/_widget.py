"""napari widgets: train a t-SimCNE map of an image collection, and explore it.

* :class:`TrainWidget` (magicgui) takes the images from Image layers (a stack,
  or one crop per object of a Labels layer), trains in a worker thread with
  live progress and Cancel, optionally writing checkpoints that Resume
  continues from, and saves, loads and applies models.
* :class:`ExploreWidget` (Qt) shows the images of the selected points as a
  gallery, colours the map by a feature, lists outliers and near-duplicates,
  lays thumbnails on the map and exports the table.

The computations live in :mod:`napari_tsimcne.explore`,
:mod:`napari_tsimcne.crops` and :mod:`napari_tsimcne.session`; this module
only connects them to napari.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    Select,
    SpinBox,
)
from napari.layers import Image, Labels, Points, Shapes
from napari.layers.base import ActionType
from napari.layers.points._points_mouse_bindings import select as napari_select
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from napari.utils.theme import get_theme
from qtpy.QtCore import QEvent, QObject, QRect, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QImage, QPainter, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from . import crops, explore, session
from .defaults import CHECKPOINT_EVERY, CPU_BATCH_SIZE, DEFAULT_MINUTES, DEFAULT_SEED
from .estimator import TSimCNE
from .explore import MAP_KEY, ChannelDisplay, ImageMap, ImageSource
from .schedule import batch_size_for

__all__ = ["ExploreWidget", "TrainWidget", "show_map"]

#: Metadata key that marks the layers this plugin draws besides maps; its value is the kind.
HELPER_KEY = "napari-tsimcne helper"
#: Metadata keys of a helper layer that hold weak references to the map layer it was
#: drawn for, and to the map's record (the result) it was drawn from.
HELPER_MAP_KEY = "napari-tsimcne map"
HELPER_RECORD_KEY = "napari-tsimcne record"
#: Kinds of helper layers.
THUMBNAILS, LASSO, SELECTION, OBJECT = "thumbnails", "lasso", "selection", "object"
#: Selected points are ringed: (times the point's size, least width on the screen in
#: pixels, line width relative to the ring's size).  Up to SELECTION_FEW rings are
#: large and thick, to be found at a glance however far the view is zoomed out;
#: more, which would merge in a cluster, hug their points with a thin line.
SELECTION_FEW = 10
SELECTION_RING_FEW = (2.2, 18, 0.2)
SELECTION_RING_MANY = (1.4, 8, 0.12)
#: Pixels between the columns of a colour key.
LEGEND_SPACING = 16
#: Most images shown at once in the gallery.
GALLERY_LIMIT = 100
#: Pixels between the images of the gallery.
GALLERY_GAP = 2
#: Outliers listed.
OUTLIER_LIST_LENGTH = 25
#: What the explore widget says while nothing is selected.
SELECTION_HINT = ("Click a point, drag a box around points (select mode), or use Lasso; "
                  "the gallery shows their images.")
#: What the explore widget says while there is no map.
NO_MAP_HINT = ("No map to explore: train one with Train map, or open a map table (.csv) or a "
               "model file (.pt).")
#: Gap between the image and the map placed beside it, as a fraction of the map's side.
MAP_GAP = 0.1


# ============================================================ maps as Points layers
def map_record(layer) -> ImageMap | None:
    """The :class:`ImageMap` behind a map layer, or ``None`` for any other layer."""
    record = getattr(layer, "metadata", {}).get(MAP_KEY)
    return record if isinstance(layer, Points) and isinstance(record, ImageMap) else None


def _map_layer_named(viewer, name: str) -> Points | None:
    """The viewer's map layer called ``name``, or ``None`` (also for another kind of layer)."""
    layer = next((layer for layer in viewer.layers if layer.name == name), None)
    return layer if map_record(layer) else None


def _is_plugin_layer(layer) -> bool:
    return map_record(layer) is not None or HELPER_KEY in layer.metadata


def _helper_metadata(map_layer: Points, kind: str) -> dict:
    # Weak references: a helper must not keep a deleted map (and its model) alive.  A
    # plugin widget sees layers through napari's proxies, made anew at each access:
    # the reference is to the layer itself.
    layer = getattr(map_layer, "__wrapped__", map_layer)
    return {HELPER_KEY: kind, HELPER_MAP_KEY: weakref.ref(layer),
            HELPER_RECORD_KEY: weakref.ref(map_record(map_layer))}


def _owner(layer) -> Points | None:
    """The map layer a helper layer was drawn for (``None`` for other layers).

    Compare it with ``==``: napari hands plugin widgets proxies of layers,
    equal to the layer but not the same object.
    """
    reference = layer.metadata.get(HELPER_MAP_KEY)
    return reference() if isinstance(reference, weakref.ref) else None


def _helper_of(viewer, map_layer: Points, kind: str):
    """The helper layer of ``kind`` drawn for ``map_layer``, or ``None``."""
    return next((layer for layer in viewer.layers if layer.metadata.get(HELPER_KEY) == kind
                 and _owner(layer) == map_layer), None)


def _made_of(layer) -> ImageMap | None:
    """The map record a thumbnails layer was drawn from."""
    reference = layer.metadata.get(HELPER_RECORD_KEY)
    return reference() if isinstance(reference, weakref.ref) else None


def _make_canvas_current(viewer) -> None:
    """Make the OpenGL context of the viewer's canvas current, before a layer is removed.

    napari frees a removed layer's OpenGL resources without making its
    canvas' context current; freed in another context (Qt's, which composes
    the window), they leave OpenGL in a state where a later drawing of the
    canvas crashes (segfault in glDrawArrays), e.g. after a map and the
    thumbnails drawn for it were removed one after the other.
    """
    window = getattr(getattr(viewer, "__wrapped__", viewer), "window", None)
    canvas = getattr(getattr(window, "_qt_viewer", None), "canvas", None)
    canvas = getattr(canvas, "_scene_canvas", canvas)
    if hasattr(canvas, "set_current"):
        canvas.set_current()


def _remove_layers(viewer, layers) -> None:
    """Remove ``layers`` (those still there) from the viewer."""
    _make_canvas_current(viewer)
    for layer in layers:
        if layer in viewer.layers:
            viewer.layers.remove(layer)


def _remove_soon(viewer, layers) -> None:
    """Hide ``layers`` now; remove them once napari has finished with the change under way."""
    for layer in layers:
        layer.visible = False
    QTimer.singleShot(0, lambda: _remove_layers(viewer, layers))


def show_map(viewer, record: ImageMap, name: str, layer: Points | None = None) -> Points:
    """Draw ``record`` in ``layer`` (updated in place) or in a new Points layer called ``name``.

    The layer is protected against accidental edits (see :func:`protect_map`);
    a new layer starts in select mode.
    """
    created = layer is None
    if created:
        data, kwargs, _ = explore.map_layer_data(record, name)
        layer = viewer.add_points(data, **kwargs)
    else:
        _redraw(layer, record)
    protect_map(layer)
    if created:
        layer.mode = "select"  # a new map is there to be clicked
    return layer


def _redraw(layer: Points, record: ImageMap) -> None:
    """Make ``layer`` show ``record``: coordinates, table, colours, size and placement."""
    data, kwargs, _ = explore.map_layer_data(record, layer.name)
    layer.metadata[MAP_KEY] = record  # first, so the edit guard sees the new positions
    layer.selected_data = set()
    layer.data = data
    for name in ("features", "face_color", "size", "scale", "translate"):
        setattr(layer, name, kwargs[name])


def protect_map(layer: Points) -> None:
    """Keep a map's points where they are, whatever the user does with the layer.

    In select mode, pressing on a point selects it but dragging does not move
    it; points moved, added or deleted any other way are put back.  Safe to
    call more than once.
    """
    if _keep_points_in_place in layer.events.data.callbacks:
        return
    layer.events.data.connect(_keep_points_in_place)
    layer.events.mode.connect(_on_mode_changed)
    _use_select_without_moving(layer)


def _keep_points_in_place(event) -> None:
    layer = event.source
    record = map_record(layer)
    if record is None or event.action not in (ActionType.ADDED, ActionType.REMOVED,
                                               ActionType.CHANGED):
        return
    if layer.data.shape != record.coordinates.shape or not np.allclose(
        layer.data, record.coordinates
    ):
        _redraw(layer, record)


def _on_mode_changed(event) -> None:
    _use_select_without_moving(event.source)


def _use_select_without_moving(layer: Points) -> None:
    # napari's select mode drags the selected points when the press lands on
    # one; a map's positions are results, so that drag is swapped out here.
    callbacks = layer.mouse_drag_callbacks
    if napari_select in callbacks:
        callbacks[callbacks.index(napari_select)] = _select_without_moving
    if layer.mode != "select" and _select_without_moving in callbacks:
        callbacks.remove(_select_without_moving)


def _select_without_moving(layer: Points, event):
    """napari's select drag, except that a press on a point only selects it."""
    on_point = layer.get_value(event.position, view_direction=event.view_direction,
                               dims_displayed=event.dims_displayed, world=True)
    if on_point is None or "Shift" in event.modifiers or "Control" in event.modifiers:
        yield from napari_select(layer, event)
        return
    layer.selected_data = {on_point}
    yield
    while event.type == "mouse_move":
        yield


def _frame_beside(viewer, layer_name: str | None, coordinates) -> explore.MapFrame:
    """Place a map as a square beside the image layer ``layer_name``, as tall as its image."""
    if layer_name not in viewer.layers:
        return explore.fit_frame(coordinates)
    extent = viewer.layers[layer_name].extent
    low, high, step = extent.world[0, -2:], extent.world[1, -2:], extent.step[-2:]
    side = float(high[0] - low[0] + step[0])
    return explore.fit_frame(coordinates, top=float(low[0] - step[0] / 2),
                             left=float(high[1] + step[1] / 2 + MAP_GAP * side), side=side)


def jump_to_image(viewer, record: ImageMap, row: int) -> Labels | None:
    """Show image ``row`` of the map where it lives: its stack position, or its object.

    An object cropped from a Labels layer is shown alone in that layer (its
    label selected, the others hidden) and brought into view if it is off
    the canvas.  Returns that Labels layer, or ``None``.
    """
    source = record.source
    if source is None:
        return None
    item = record.table.iloc[row]
    position = item["frame"] if source.labels else item["index"]
    if source.stack_axis is not None and source.layer in viewer.layers:
        layer = viewer.layers[source.layer]
        data_position = np.zeros(layer.ndim)
        data_position[source.stack_axis] = position
        world = layer.data_to_world(data_position)
        axis = viewer.dims.ndim - layer.ndim + source.stack_axis
        viewer.dims.set_point(axis, world[source.stack_axis])
    if source.labels not in viewer.layers:
        return None
    labels = viewer.layers[source.labels]
    labels.selected_label = int(item["label"])
    labels.show_selected_label = True
    centre = [item["centroid_row"], item["centroid_col"]]
    world = labels.data_to_world([item["frame"], *centre] if labels.ndim == 3 else centre)
    camera = _camera(viewer)
    if not explore.in_view(world[-2:], camera.center[-2:], viewer.canvas.size, camera.zoom):
        camera.center = tuple(world[-2:])
    return labels


def _crop_corners(viewer, record: ImageMap | None, row: int) -> np.ndarray | None:
    """World corners ``(4, 2)`` of the crop of object ``row``, or ``None`` for a map of a stack."""
    source = None if record is None else record.source
    if source is None or source.labels not in viewer.layers or record.images is None:
        return None
    labels = viewer.layers[source.labels]
    item = record.table.iloc[row]
    half = record.images.shape[1] / 2
    corners = np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]]) * half + [item["centroid_row"],
                                                                      item["centroid_col"]]
    return corners * np.asarray(labels.scale)[-2:] + np.asarray(labels.translate)[-2:]


def _camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return viewer.camera if scene is None else scene.camera


def _report_error(show_status, headline: str, message: str) -> None:
    """Say what went wrong: a notification, and the whole text in a widget's status area.

    ``headline`` is a short first sentence with the point, so that it is what
    a notification cut to one line still shows.
    """
    text = f"{headline} {message}"
    show_status(text)
    show_error(text)


class _GrowWithText(QObject):
    """Keeps a word-wrapped label at least as tall as its text at its width.

    Layouts short of room squeeze a word-wrapped label to one line otherwise,
    cutting off the rest of its text.  A label repaints after every change of
    text or width, which is when its height is checked.
    """

    def eventFilter(self, label, event):
        if event.type() in (QEvent.Type.Paint, QEvent.Type.Resize):
            needed = label.heightForWidth(label.width())
            if needed > 0 and needed != label.minimumHeight():
                label.setMinimumHeight(needed)
        return False


def _grow_with_text(label: QLabel) -> None:
    label.installEventFilter(_GrowWithText(label))


def _display_of(layers) -> ChannelDisplay:
    """How the image layers colour their channels: contrast limits and colormap's top colour."""
    specs = []
    for layer in layers:
        layout = crops.describe_layout(layer.data.shape, layer.rgb, name=layer.name,
                                       single_ok=True)
        color = None if layer.rgb else tuple(layer.colormap.map(np.array([1.0]))[0, :3])
        specs.append((layout.n_channels, tuple(layer.contrast_limits), color))
    return ChannelDisplay.for_layers(specs)


# ================================================================ training widget
class _ProgressRelay(QObject):
    """Carries progress events from the training thread to the main thread."""

    event = Signal(object)


class TrainWidget(Container):
    """Train a map of the images in Image layers, watch it grow, save and apply the model."""

    def __init__(self, napari_viewer):
        super().__init__()
        self._viewer = napari_viewer
        self._worker = None
        self._progress = None
        self._relay = _ProgressRelay()
        self._relay.event.connect(self._on_progress)
        self._run = None  # the run in progress: map layer, its previous record, input
        self._input_key = None  # the input the defaults were last set for
        self._default_inputs = ([], None)  # the layers last chosen by default
        self._default_size = None  # the default image size, offered among the choices

        self._images = Select(
            label="Images", choices=self._image_choices,
            tooltip="A stack (N, H, W), an RGB stack, or a multichannel stack. Several "
                    "layers of the same shape are used as the channels of one stack.",
        )
        self._objects = ComboBox(
            label="Objects", choices=self._labels_choices,
            tooltip="Optional Labels layer: train on one crop per labelled object, "
                    "centred on it, instead of on the images of a stack.",
        )
        self._images.native.setMaximumHeight(90)
        self._crop_size = SpinBox(label="Crop size (px)", min=8, max=512, step=8, value=64)
        self._summary = Label(value="")
        self._schedule = ComboBox(
            label="Schedule", choices=[session.TIME_BUDGET, *session.SCHEDULES, "custom"],
            value=session.TIME_BUDGET,
            tooltip="time budget: the epochs are planned to fill the minutes you give, "
                    "timed on this computer; paper: the published schedule, for a GPU; "
                    "custom: your own epochs per stage.")
        self._minutes = FloatSpinBox(
            label="Time budget (min)", min=0.5, max=100_000, step=1,
            value=DEFAULT_MINUTES,
            tooltip="How long training may take; the planned epochs are shown when it starts.")
        self._epochs = LineEdit(label="Epochs per stage",
                                value=_epochs_text(session.SCHEDULES["paper"]),
                                tooltip="pre-training, readout, fine-tuning (or one number)")
        self._batch_size = SpinBox(label="Batch size", min=2, max=4096, value=CPU_BATCH_SIZE,
                                   tooltip="Images per training step; at most the number of images.")
        self._image_size = ComboBox(label="Image size", choices=self._image_size_choices,
                                    tooltip="Images are resized to this for training; smaller trains faster.")
        self._augmentation = ComboBox(label="Augmentation", choices=["microscopy", "natural"],
                                      tooltip="microscopy: flips, rotations, per-channel "
                                              "intensity. natural: the paper's set for photographs.")
        self._backbone = ComboBox(label="Network",
                                  choices=[(text, name) for name, text in session.BACKBONES.items()])
        self._device = ComboBox(label="Device", choices=session.available_devices())
        self._seed = SpinBox(label="Random seed", min=0, max=2**31 - 1, value=DEFAULT_SEED)
        self._checkpoint_dir = FileEdit(
            label="Checkpoints", mode="d", nullable=True,
            tooltip="Optional folder (created if missing) for checkpoints of the training, "
                    "the newest two kept. Leave empty for none. With checkpoints, Resume "
                    "continues a cancelled or crashed training.",
        )
        self._checkpoint_dir.line_edit.native.setPlaceholderText("none")
        self._checkpoint_every = SpinBox(
            label="  every (epochs)", min=1, max=100_000, value=CHECKPOINT_EVERY,
            tooltip="Epochs between checkpoints; one is also written at the end of every stage.",
        )
        self._train_button = PushButton(text="Train")
        self._resume_button = PushButton(
            text="Resume", tooltip="Continue the training whose checkpoints are in the "
                                   "Checkpoints folder, with the same images and settings.")
        self._progress_bar = ProgressBar(value=0, min=0, max=1, label="Progress")
        self._status = Label(value="Select a stack of images and press Train.")
        for label in (self._summary, self._status):
            label.native.setWordWrap(True)
            label.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
            _grow_with_text(label.native)
        self._map = ComboBox(label="Map", choices=self._map_choices,
                             tooltip="The map whose model is saved or used to place images.")
        self._save_button = PushButton(text="Save model…")
        self._load_button = PushButton(text="Load model…")
        self._place_button = PushButton(text="Place images on map",
                                        tooltip="Put the selected images on the chosen map "
                                                "with its model, without training.")
        self.extend([
            self._images, self._objects, self._crop_size, self._summary, self._schedule,
            self._minutes, self._epochs, self._batch_size, self._image_size, self._augmentation,
            self._backbone, self._device, self._seed, self._checkpoint_dir,
            self._checkpoint_every,
            Container(widgets=[self._train_button, self._resume_button], layout="horizontal",
                      labels=False),
            self._progress_bar, self._status, self._map,
            Container(widgets=[self._save_button, self._load_button], layout="horizontal",
                      labels=False),
            self._place_button,
        ])
        self._images.changed.connect(self._on_input_changed)
        self._objects.changed.connect(self._on_input_changed)
        self._crop_size.changed.connect(self._on_input_changed)
        self._device.changed.connect(self._on_input_changed)
        self._schedule.changed.connect(self._on_schedule_changed)
        self._epochs.changed.connect(self._on_epochs_edited)
        self._train_button.changed.connect(self._on_train_clicked)
        self._resume_button.changed.connect(self.resume)
        self._checkpoint_dir.changed.connect(self._update_buttons)
        self._save_button.changed.connect(self._ask_save_model)
        self._load_button.changed.connect(self._ask_load_model)
        self._place_button.changed.connect(self.place_images)
        self.native.destroyed.connect(self._stop_quietly)
        self._on_schedule_changed(self._schedule.value)
        self.reset_choices()
        self._update_buttons()

    # ------------------------------------------------------------------ inputs
    def _image_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, Image) and not _is_plugin_layer(layer)]

    def _labels_choices(self, _widget=None):
        return [("none: train on the stack", None)] + [
            (layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Labels)
        ]

    def _map_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers if map_record(layer)]

    def _image_size_choices(self, _widget=None):
        native = self._native_size()
        if native is None:
            return [("as is", None)]
        smaller = [size for size in (96, 64, 48, 32, 24, 16) if size < min(native)]
        if self._default_size is not None and self._default_size not in smaller:
            # Images shrunk to 256 px, or to what fits in memory: largest first.
            smaller = sorted([self._default_size, *smaller], reverse=True,
                             key=lambda size: size if isinstance(size, int) else max(size))
        return [(f"as is ({native[0]}×{native[1]} px)", None)] + [
            (f"{size} px" if isinstance(size, int) else f"{size[0]}×{size[1]} px", size)
            for size in smaller
        ]

    def reset_choices(self, *_):
        """Refresh the layer lists (napari calls this when layers change) and the defaults.

        The layers to train on are chosen anew (see :func:`crops.default_inputs`)
        as long as the user has not changed the choice, so that layers that
        arrive one by one (a sample's channels, then its labels) are chosen
        together.
        """
        super().reset_choices()
        chosen = (list(self._images.value), self._objects.value)
        if not chosen[0] or chosen == self._default_inputs:
            images = [layer for _, layer in self._image_choices()]
            labels = [layer for _, layer in self._labels_choices() if layer is not None]
            image_indices, labels_index = crops.default_inputs(
                [layer.data.shape for layer in images], [layer.rgb for layer in images],
                [layer.data.shape for layer in labels])
            self._default_inputs = ([images[i] for i in image_indices],
                                    None if labels_index is None else labels[labels_index])
            self._images.value, self._objects.value = self._default_inputs
        self._on_input_changed()

    def _layouts(self):
        """Layouts (see :func:`crops.describe_layout`) of the selected layers; may raise ValueError."""
        single_ok = self._objects.value is not None
        return [crops.describe_layout(layer.data.shape, layer.rgb, name=layer.name,
                                      single_ok=single_ok) for layer in self._images.value]

    def _native_size(self) -> tuple[int, int] | None:
        if self._objects.value is not None:
            return (self._crop_size.value,) * 2
        try:
            layouts = self._layouts()
        except ValueError:
            return None
        return layouts[0].size if layouts else None

    def _on_input_changed(self, *_):
        """Describe the training set; reset the defaults that depend on it when it changed."""
        self._crop_size.visible = self._objects.value is not None
        key = (tuple(id(layer) for layer in self._images.value), id(self._objects.value),
               self._crop_size.value, self._device.value)
        if key == self._input_key:  # layers came or went elsewhere: keep the user's edits
            return
        self._input_key = key
        self._image_size.reset_choices()
        try:
            layouts = self._layouts()
        except ValueError as error:
            self._summary.value = str(error)
            return
        if not layouts:
            self._summary.value = "No image layer selected."
            return
        channels = sum(layout.n_channels for layout in layouts)
        if self._objects.value is not None:
            size = self._crop_size.value
            self._summary.value = (f"One {size}×{size} px crop per object of "
                                   f"'{self._objects.value.name}', {channels} channel(s)")
            # About one crop per label; the batch is clamped to the crops' number later.
            n_images = max(int(np.max(self._objects.value.data)), 2)
        else:
            n_images = layouts[0].n_images
            height, width = layouts[0].size
            self._summary.value = f"{n_images} images, {height}×{width} px, {channels} channel(s)"
        defaults = session.form_defaults(n_images, *self._native_size(), channels,
                                         self._images.value[0].data.dtype, self._device.value)
        self._batch_size.value = defaults.batch_size
        self._default_size = defaults.image_size
        self._image_size.reset_choices()
        self._image_size.value = defaults.image_size
        self._augmentation.value = defaults.augmentation

    def _on_schedule_changed(self, name: str):
        if name in session.SCHEDULES:
            self._epochs.value = _epochs_text(session.SCHEDULES[name])
        self._minutes.visible = name == session.TIME_BUDGET
        self._epochs.visible = name != session.TIME_BUDGET

    def _on_epochs_edited(self, text: str):
        presets = {_epochs_text(epochs): name for name, epochs in session.SCHEDULES.items()}
        self._schedule.value = presets.get(text.strip(), "custom")

    def _checkpoint_folder(self) -> Path | None:
        """The folder under Checkpoints, or ``None`` when it is empty (no checkpoints)."""
        text = self._checkpoint_dir.line_edit.value.strip()
        return Path(text).expanduser() if text else None

    def _update_buttons(self, *_):
        """Resume and the checkpoint interval need a checkpoint folder; nothing starts while busy."""
        has_folder = self._checkpoint_folder() is not None
        self._checkpoint_every.enabled = has_folder
        self._resume_button.enabled = has_folder and not self.running

    def settings(self, resume: bool = False) -> session.TrainingSettings:
        """The form's choices; raises ValueError for unreadable epochs."""
        budget = self._schedule.value == session.TIME_BUDGET
        return session.TrainingSettings(
            time_budget=60 * self._minutes.value if budget else None,
            epochs=session.SCHEDULES["paper"] if budget else session.parse_epochs(self._epochs.value),
            batch_size=self._batch_size.value,
            image_size=self._image_size.value, augmentation=self._augmentation.value,
            backbone=self._backbone.value, device=self._device.value, seed=self._seed.value,
            checkpoint_dir=self._checkpoint_folder(),
            checkpoint_every=self._checkpoint_every.value, resume=resume,
        )

    # ---------------------------------------------------------------- training
    @property
    def running(self) -> bool:
        return self._worker is not None

    def _on_train_clicked(self, *_):
        if self.running:
            self.cancel()
        else:
            self.train()

    def train(self, resume: bool = False) -> None:
        """Start training on the selected images in a worker thread.

        With ``resume``, continue the training whose checkpoints are in the
        Checkpoints folder (same images and settings) from the newest one.
        """
        if self.running:
            return
        try:
            settings = self.settings(resume=resume)
            request, run = self._request(min_images=2)
        except ValueError as error:
            _report_error(self._show_status, "Training did not start.", str(error))
            return
        run.layer = _map_layer_named(self._viewer, run.name)
        run.previous = map_record(run.layer)
        run.checkpoints = settings.checkpoint_dir
        planned = settings.time_budget is not None
        self._progress = session.TrainingProgress(None if planned else settings.epochs,
                                                  self._relay.event.emit)
        self._progress_bar.max = max(self._progress.total_epochs, 1)
        self._progress_bar.value = 0
        self._status.value = ("Preparing the images and reading the newest checkpoint…" if resume
                              else "Preparing the images…")
        self._train_button.text = "Cancel"
        self._start(run, self._on_training_returned, _prepare_and_train, request, settings,
                    self._progress)

    def resume(self, *_) -> None:
        """Continue the training whose checkpoints are in the Checkpoints folder."""
        self.train(resume=True)

    def _request(self, min_images: int) -> tuple[crops.TrainingRequest, _Run]:
        """What to train on (or place), and a run record named after the first image layer."""
        layers = list(self._images.value)
        if not layers:
            raise ValueError("Select the Image layer(s) holding your images first.")
        labels = self._objects.value
        request = crops.TrainingRequest(
            arrays=[layer.data for layer in layers], rgb=[layer.rgb for layer in layers],
            names=[layer.name for layer in layers],
            labels=None if labels is None else labels.data, crop_size=self._crop_size.value,
            min_images=min_images,
        )
        run = _Run(name=f"{layers[0].name} map", display=_display_of(layers),
                   source_layer=layers[0].name, labels_layer=None if labels is None else labels.name,
                   user_features=layers[0].metadata)
        return request, run

    def _start(self, run: _Run, on_returned, function, *args) -> None:
        """Run ``function(*args)`` in a worker thread; ``on_returned`` gets its :class:`Outcome`."""
        self._run = run
        self._worker = create_worker(session.capture, function, *args)
        self._worker.returned.connect(on_returned)
        self._worker.finished.connect(self._on_worker_finished)
        self._worker.start()
        self._update_buttons()

    def cancel(self) -> None:
        """Ask training to stop; it stops before its next optimiser step."""
        if self._progress is not None:
            self._stop_quietly()
            self._status.value = "Stopping…"

    def _show_status(self, text: str) -> None:
        self._status.value = text

    def _stop_quietly(self, *_):
        """Stop training without touching the widgets, which may be gone."""
        if self._progress is not None:
            self._progress.stop()

    def _on_progress(self, event: session.ProgressEvent):
        self._progress_bar.max = event.total  # planned when training began, for a time budget
        self._progress_bar.value = event.done
        self._status.value = event.describe()
        if event.embedding is not None and self._run is not None:
            record = ImageMap(table=explore.map_table(event.embedding), preview=event.preview)
            self._show_run_map(record)
            self._status.value = (f"{event.describe()} · map shown"
                                  + (" (preview: PCA of the 128-D output)" if event.preview else ""))

    def _show_run_map(self, record: ImageMap) -> None:
        run = self._run
        record.frame = _frame_beside(self._viewer, run.source_layer, record.coordinates)
        if run.layer is not None and run.layer not in self._viewer.layers:
            run.layer = None  # deleted by the user while training ran
        created = run.layer is None
        run.layer = show_map(self._viewer, record, run.name, run.layer)
        run.layer.name = run.name + (" (preview)" if record.preview else "")
        run.created |= created
        if created:
            self._viewer.reset_view()

    def _on_training_returned(self, outcome: session.Outcome):
        run = self._run
        if outcome.error is not None:
            self._restore_previous(run)
            if outcome.stopped:
                self._status.value = ("Stopped before the 2-D map existed; the previous result is "
                                      "kept." + _resume_hint(run))
            else:
                _report_error(self._show_status, "Training failed.", outcome.error)
            return
        prepared, result = outcome.value
        table = explore.map_table(result.embedding, _extra_features(prepared, run.user_features))
        record = ImageMap(
            table=table, images=prepared.images, display=run.display, features=result.features,
            model=result.model, source=ImageSource(run.source_layer, prepared.stack_axis,
                                                   run.labels_layer),
        )
        self._show_run_map(record)
        run.layer.mode = "select"
        self._viewer.layers.selection.active = run.layer
        n = len(table)
        if result.stopped_early:
            self._status.value = f"Map of {n} images; stopped early by Cancel." + _resume_hint(run)
        else:
            self._progress_bar.value = self._progress_bar.max  # also when resumed at the end
            self._status.value = f"Done: map of {n} images."
        self._open_explorer()

    def _restore_previous(self, run) -> None:
        if run.layer is None or run.layer not in self._viewer.layers:
            return
        if run.previous is not None:
            _redraw(run.layer, run.previous)
            run.layer.name = run.name
        elif run.created:
            _remove_layers(self._viewer, [run.layer])

    def _on_worker_finished(self):
        self._worker = None
        self._progress = None
        self._run = None
        self._train_button.text = "Train"
        self._update_buttons()

    def _open_explorer(self) -> None:
        try:
            self._viewer.window.add_plugin_dock_widget("napari-tsimcne", "Explore map",
                                                       tabify=True)
        except (KeyError, ValueError):
            pass  # not installed as a plugin (e.g. used from a script); the map still works

    # ------------------------------------------------------------------ models
    def _ask_save_model(self, *_):
        if self._chosen_model_record() is None:
            return
        path, _ = QFileDialog.getSaveFileName(self.native, "Save t-SimCNE model", "model.pt",
                                              "t-SimCNE model (*.pt)")
        if path:
            self.save_model(path)

    def _ask_load_model(self, *_):
        path, _ = QFileDialog.getOpenFileName(self.native, "Load t-SimCNE model", "",
                                              "t-SimCNE model (*.pt)")
        if path:
            self.load_model(path)

    def _chosen_model_record(self) -> ImageMap | None:
        """The record of the map chosen under 'Map', if it has a model; else say why not."""
        record = map_record(self._map.value)
        if record is None:
            _report_error(self._show_status, "No map chosen.", "Train a map or load a model first.")
            return None
        if record.model is None:
            _report_error(self._show_status, "This map has no model.",
                          f"The map '{self._map.value.name}' was read from a table; load the "
                          "model file it was made with.")
            return None
        return record

    def save_model(self, path) -> None:
        """Save the model of the map chosen under 'Map' to ``path``."""
        record = self._chosen_model_record()
        if record is None:
            return
        outcome = session.capture(record.model.save, path)
        if outcome.error:
            _report_error(self._show_status, "Saving the model failed.", outcome.error)
        else:
            show_info(f"Saved the model to {path}.")

    def load_model(self, path) -> Points | None:
        """Load a model file and show the map of its training images, stored in the file.

        The map is drawn beside the first selected image layer, if any.
        """
        outcome = session.capture(TSimCNE.load, path, device=self._device.value)
        if outcome.error:
            _report_error(self._show_status, "Loading the model failed.", outcome.error)
            return None
        model = outcome.value
        record = ImageMap(table=explore.map_table(model.embedding_), model=model)
        beside = self._images.value[0].name if self._images.value else None
        record.frame = _frame_beside(self._viewer, beside, record.coordinates)
        layer = show_map(self._viewer, record, f"{Path(path).stem} map")
        self._map.reset_choices()
        self._map.value = layer
        self._open_explorer()
        return layer

    def place_images(self, *_) -> None:
        """Place the selected images on the chosen map with its model, in a worker thread."""
        record = self._chosen_model_record()
        if record is None or self.running:
            return
        try:
            request, run = self._request(min_images=1)
        except ValueError as error:
            _report_error(self._show_status, "Placing did not start.", str(error))
            return
        run.name = f"{run.source_layer} on {self._map.value.name}"
        run.frame = record.frame
        self._status.value = "Placing the images on the map…"
        self._start(run, self._on_placed, _prepare_and_place, request, record.model)

    def _on_placed(self, outcome: session.Outcome):
        run = self._run
        if outcome.error is not None:
            _report_error(self._show_status, "Placing failed.", outcome.error)
            return
        prepared, (embedding, features) = outcome.value
        record = ImageMap(
            table=explore.map_table(embedding, _extra_features(prepared, run.user_features)),
            images=prepared.images, display=run.display, features=features, placed=True,
            source=ImageSource(run.source_layer, prepared.stack_axis, run.labels_layer),
            frame=run.frame,
        )
        show_map(self._viewer, record, run.name, _map_layer_named(self._viewer, run.name))
        self._status.value = f"Placed {len(embedding)} images on the map."
        self._open_explorer()


@dataclass
class _Run:
    """One training or placing run, from the click to the worker's return.

    ``layer`` is the map layer being drawn, ``previous`` its record before the
    run (restored if training is stopped before the map exists), ``created``
    whether the run added the layer, ``checkpoints`` the training's
    checkpoint folder.
    """

    name: str
    display: ChannelDisplay
    source_layer: str
    labels_layer: str | None
    user_features: dict
    frame: explore.MapFrame | None = None
    layer: Points | None = None
    previous: ImageMap | None = None
    created: bool = False
    checkpoints: Path | None = None


def _epochs_text(epochs) -> str:
    return ", ".join(str(e) for e in epochs)


def _resume_hint(run: _Run) -> str:
    if run.checkpoints is None:
        return ""
    return f" Its checkpoints in {run.checkpoints} are kept: Resume continues from the newest."


def _prepare_and_train(request: crops.TrainingRequest, settings: session.TrainingSettings,
                       progress: session.TrainingProgress):
    """Worker: cut or stack the images, then train on them."""
    prepared = crops.training_images(request)
    settings = replace(settings, batch_size=batch_size_for(settings.batch_size,
                                                                   len(prepared.images)))
    return prepared, session.train_map(prepared.images, settings, progress)


def _prepare_and_place(request: crops.TrainingRequest, model: TSimCNE):
    """Worker: cut or stack the images, then place them on the model's map."""
    prepared = crops.training_images(request)
    return prepared, session.place_on_map(model, prepared.images)


def _extra_features(prepared: crops.TrainingImages, metadata: dict):
    """Object measurements of crops, or the per-image table the image layer carries."""
    if prepared.table is not None:
        return prepared.table
    return explore.user_features(metadata, len(prepared.images))


# ================================================================= explore widget
class GalleryView(QLabel):
    """A grid of images with their indices; a click on one emits its row in the map."""

    tile_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.rows = np.array([], dtype=int)
        self.columns = 1
        self._tile_shape = (1, 1)
        self._zoom = 1.0

    def show_tiles(self, tiles: np.ndarray, rows: np.ndarray, indices, width: int) -> None:
        """Show RGB ``tiles (n, h, w, 3)`` of map rows ``rows``, labelled with ``indices``."""
        self.rows = np.asarray(rows)
        self._tile_shape = tiles.shape[1:3]
        self.columns = explore.gallery_columns(len(tiles), width)
        image = explore.montage(tiles, self.columns, gap=GALLERY_GAP)
        self._zoom = max(width, 1) / image.shape[1]
        pixmap = _pixmap(image).scaledToWidth(
            max(width, 1), Qt.TransformationMode.FastTransformation
            if self._zoom >= 1 else Qt.TransformationMode.SmoothTransformation)
        self._label_tiles(pixmap, indices)
        self.setPixmap(pixmap)

    def _label_tiles(self, pixmap: QPixmap, indices) -> None:
        painter = QPainter(pixmap)
        font = painter.font()
        font.setPointSize(8)
        painter.setFont(font)
        for i, index in enumerate(indices):
            top, left = explore.tile_origin(i, self._tile_shape, self.columns, GALLERY_GAP)
            box = QRect(int(left * self._zoom), int(top * self._zoom),
                        painter.fontMetrics().horizontalAdvance(str(index)) + 4,
                        painter.fontMetrics().height())
            painter.fillRect(box, QColor(0, 0, 0, 160))
            painter.setPen(QColor("white"))
            painter.drawText(box, Qt.AlignmentFlag.AlignCenter, str(index))
        painter.end()

    def tile_row(self, x: float, y: float) -> int | None:
        """Map row of the tile at widget pixel ``(x, y)``, or ``None``."""
        tile = explore.tile_at(y / self._zoom, x / self._zoom, self._tile_shape, self.columns,
                               len(self.rows), gap=GALLERY_GAP)
        return None if tile is None else int(self.rows[tile])

    def mousePressEvent(self, event):
        row = self.tile_row(event.position().x(), event.position().y())
        if row is not None:
            self.tile_clicked.emit(row)


def _pixmap(image: np.ndarray) -> QPixmap:
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    qimage = QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(qimage.copy())


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
        self._coloring: explore.Coloring | None = None
        self._requested_order: list[int] = []
        self._lasso_rows: set[int] = set()
        self._labels_alone: Labels | None = None  # a Labels layer showing only the clicked object
        self._gallery_timer = QTimer(self, singleShot=True, interval=0)
        self._gallery_timer.timeout.connect(self._on_selection_settled)

        self.map_box = QComboBox()
        self.color_box = QComboBox()
        self.lasso_button = QPushButton("Lasso")
        self.lasso_button.setToolTip("Draw around points on the map to select them.")
        self.thumbnails_button = QPushButton("Thumbnails")
        self.thumbnails_button.setCheckable(True)
        self.thumbnails_button.setToolTip("Show one image per grid cell at its place on the map, "
                                          "sized for the current zoom.")
        self.export_button = QPushButton("Export CSV…")
        self.outlier_button = QPushButton("Find outliers")
        self.outlier_list = QListWidget()
        self.duplicate_tolerance = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05,
                                                  value=0.25)
        self.duplicate_tolerance.setToolTip(
            "Images count as near-duplicates when closer than this fraction of the typical "
            "distance between neighbouring images (in the network's features).")
        self.duplicate_button = QPushButton("Find near-duplicates")
        self.duplicate_list = QListWidget()
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.status = QLabel(SELECTION_HINT)
        self.status.setWordWrap(True)
        _grow_with_text(self.status)
        self.gallery = GalleryView()
        self._layout_widgets()

        self.map_box.currentIndexChanged.connect(self._on_map_chosen)
        self.color_box.currentTextChanged.connect(self._on_color_chosen)
        self.lasso_button.clicked.connect(self.start_lasso)
        self.thumbnails_button.toggled.connect(self.show_thumbnails)
        self.export_button.clicked.connect(self._ask_export)
        self.outlier_button.clicked.connect(self.find_outliers)
        self.outlier_list.itemClicked.connect(self._on_list_item)
        self.duplicate_button.clicked.connect(self.find_duplicates)
        self.duplicate_list.itemClicked.connect(self._on_list_item)
        self.gallery.tile_clicked.connect(self._on_tile_clicked)
        self._viewer.layers.events.inserted.connect(self._on_layer_inserted)
        self._viewer.layers.events.removing.connect(self._before_layer_removed)
        self._viewer.layers.events.removed.connect(self._on_layer_removed)
        self._explore(None)
        self._fill_map_box()

    def _layout_widgets(self) -> None:
        form = QFormLayout()
        form.addRow("Map", self.map_box)
        form.addRow("Colour by", self.color_box)
        form.addRow("", self.legend)
        buttons = QHBoxLayout()
        for button in (self.lasso_button, self.thumbnails_button, self.export_button):
            buttons.addWidget(button)
        outliers = QWidget()
        QVBoxLayout(outliers).addWidget(self.outlier_button)
        outliers.layout().addWidget(self.outlier_list)
        duplicates = QWidget()
        row = QHBoxLayout()
        row.addWidget(QLabel("Tolerance"))
        row.addWidget(self.duplicate_tolerance)
        row.addWidget(self.duplicate_button)
        QVBoxLayout(duplicates).addLayout(row)
        duplicates.layout().addWidget(self.duplicate_list)
        self.tabs = QTabWidget()
        self.tabs.addTab(outliers, "Outliers")
        self.tabs.addTab(duplicates, "Near-duplicates")
        self.tabs.setMaximumHeight(220)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.gallery)
        scroll.setMinimumHeight(260)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.tabs)
        layout.addWidget(self.status)
        layout.addWidget(scroll, stretch=1)

    # ------------------------------------------------------------ choosing maps
    @property
    def record(self) -> ImageMap | None:
        return map_record(self._layer)

    def _on_layer_inserted(self, event) -> None:
        layer = event.value
        if map_record(layer) is not None:
            self._fill_map_box(explore=layer)
            layer.mode = "select"  # also for maps opened from files

    def _before_layer_removed(self, _event) -> None:
        _make_canvas_current(self._viewer)  # also for removals by the user

    def _on_layer_removed(self, event) -> None:
        layer = event.value
        if map_record(layer) is not None:
            _remove_soon(self._viewer, [h for h in self._viewer.layers if _owner(h) == layer])
            self._fill_map_box()
        elif self._layer is not None and _owner(layer) == self._layer:
            self._set_thumbnails_checked(_helper_of(self._viewer, self._layer, THUMBNAILS)
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
            _remove_soon(self._viewer, [h for h in (_helper_of(self._viewer, old, kind)
                                                    for kind in (LASSO, SELECTION, OBJECT))
                                        if h is not None])
        self._layer = layer
        self._requested_order = []
        if layer is not None:
            protect_map(layer)
            if self.record.images is None and not self.record.preview:
                self._link_images()
            layer.selected_data.events.items_changed.connect(self._schedule_gallery)
        for widget in (self.color_box, self.lasso_button, self.thumbnails_button,
                       self.export_button, self.outlier_button, self.duplicate_tolerance,
                       self.duplicate_button):
            widget.setEnabled(layer is not None)
        self._show_record()

    def _show_record(self) -> None:
        """Start afresh from the explored map's record: lists, colours, thumbnails, selection."""
        self._shown_record = self.record
        self.outlier_list.clear()
        self.duplicate_list.clear()
        self._refresh_colors()
        thumbnails = None if self._layer is None else _helper_of(self._viewer, self._layer,
                                                                  THUMBNAILS)
        self._set_thumbnails_checked(thumbnails is not None)
        self._show_selection()

    def _on_features_changed(self, event) -> None:
        """A map's table changed: a column was added, or the map was redrawn with a new result."""
        layer = event.source
        thumbnails = _helper_of(self._viewer, layer, THUMBNAILS)
        if layer != self._layer:
            if thumbnails is not None and _made_of(thumbnails) is not map_record(layer):
                _remove_soon(self._viewer, [thumbnails])  # the points moved away from them
        elif self.record is not self._shown_record:
            wanted = self.thumbnails_button.isChecked()
            self._show_record()
            if wanted and self.record.images is not None:
                self.show_thumbnails(True)
            elif wanted:  # a map in training: its images come with the finished map
                if thumbnails is not None:
                    _remove_layers(self._viewer, [thumbnails])
                self._set_thumbnails_checked(True)
        else:
            self._refresh_colors()

    def _link_images(self) -> None:
        """Attach an open image stack with one image per point to a map read from a file.

        The first stack of as many images as the map has points is taken (with
        its channel layers), and the map moves beside it.
        """
        record = self.record
        layers = [layer for layer in self._viewer.layers
                  if isinstance(layer, Image) and not _is_plugin_layer(layer)]
        chosen = crops.default_channel_layers([layer.data.shape for layer in layers],
                                              [layer.rgb for layer in layers],
                                              n_images=len(record.table))
        if not chosen or record.table["index"].max() >= len(record.table):
            return
        picked = [layers[i] for i in chosen]
        record.images, stack_axis = crops.stack_layers(
            [layer.data for layer in picked], [layer.rgb for layer in picked],
            [layer.name for layer in picked])
        record.display = _display_of(picked)
        record.source = ImageSource(picked[0].name, stack_axis)
        record.frame = _frame_beside(self._viewer, picked[0].name, record.coordinates)
        _redraw(self._layer, record)
        self.status.setText(f"Showing the images of '{picked[0].name}' for this map.")

    def _schedule_gallery(self, *_):
        # Box selection changes the selection in several steps; draw once after them.
        self._gallery_timer.start()

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._show_legend(self._coloring)  # as many columns as fit
        self.update_gallery()  # the tiles follow the new width

    # ------------------------------------------------------------------ colours
    def _refresh_colors(self, *_):
        record = self.record
        columns = [] if record is None else [c for c in record.table.columns if c not in ("x", "y")]
        self.color_box.blockSignals(True)
        self.color_box.clear()
        self.color_box.addItems(["none", *columns])
        self.color_box.setCurrentText(record.color_by if record and record.color_by else "none")
        self.color_box.blockSignals(False)
        self._show_legend(None if record is None else explore.map_colors(record))

    def _on_color_chosen(self, name: str):
        self.color_by(None if name in ("none", "") else name)

    def color_by(self, feature: str | None) -> None:
        """Colour the map's points by ``feature`` (a column of its table), or plainly."""
        record = self.record
        if record is None:
            return
        record.color_by = feature
        coloring = explore.map_colors(record)
        self._layer.face_color = coloring.colors
        self._show_legend(coloring)
        if self.color_box.currentText() != (feature or "none"):
            self.color_box.blockSignals(True)
            self.color_box.setCurrentText(feature or "none")
            self.color_box.blockSignals(False)

    def _show_legend(self, coloring: explore.Coloring | None) -> None:
        """The key of ``coloring`` in as many columns as the widget's width holds."""
        self._coloring = coloring
        if coloring is None or not coloring.legend:
            self.legend.clear()
            self.legend.setVisible(False)
            return
        metrics = self.legend.fontMetrics()
        widest = max(metrics.horizontalAdvance(f"■ {label}") for label, _ in coloring.legend)
        # The key sits in the column of the colour box, also while it is hidden.
        width = self.width() - self.color_box.x()
        columns = max(1, width // (widest + LEGEND_SPACING))
        self.legend.setText(explore.legend_html(coloring, columns=columns))
        self.legend.setVisible(True)

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
            self._labels_alone = jump_to_image(self._viewer, self.record, int(rows[0]))
        self._show_selection()

    def _show_selection(self) -> None:
        """Ring the selected points, drop a lasso outline that no longer fits, fill the gallery."""
        rows = self.selected_rows()
        self._ring(rows)
        lasso = None if self._layer is None else _helper_of(self._viewer, self._layer, LASSO)
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
        box = None if self._layer is None else _helper_of(self._viewer, self._layer, OBJECT)
        corners = None if row is None else _crop_corners(self._viewer, self.record, row)
        if corners is None:
            if box is not None and len(box.data):
                box.data = []
            return
        if box is not None:
            box.data = [corners]
            return
        side = float(np.ptp(corners[:, 0]))
        color = explore.contrasting_color(
            np.asarray(get_theme(self._viewer.theme).canvas.as_rgb_tuple()) / 255)
        self._viewer.add_shapes(
            [corners], shape_type="polygon", name=f"{self._layer.name} object",
            edge_color=np.asarray(color), face_color="transparent", edge_width=side / 25,
            metadata=_helper_metadata(self._layer, OBJECT))
        self._viewer.layers.selection.active = self._layer  # clicks go to the map

    def _ring(self, rows: np.ndarray) -> None:
        """Draw a ring around each selected point, above the map and its thumbnails.

        The rings are a layer of their own, so that they can keep a size on
        the screen whatever the zoom (see :data:`SELECTION_RING_FEW`), in a
        colour that stands out from the canvas whatever the points' colours.
        """
        if self._layer is None:
            return
        ring = _helper_of(self._viewer, self._layer, SELECTION)
        if ring is None and len(rows) == 0:
            return
        data = self._layer.data[rows]
        scale, pixels, width = SELECTION_RING_FEW if len(rows) <= SELECTION_FEW else (
            SELECTION_RING_MANY)
        sizes = scale * np.asarray(self._layer.size, dtype=np.float64)[rows]
        color = explore.contrasting_color(
            np.asarray(get_theme(self._viewer.theme).canvas.as_rgb_tuple()) / 255)
        if ring is None:
            ring = self._viewer.add_points(
                data, name=f"{self._layer.name} selection", size=sizes,
                face_color="transparent", border_color=np.asarray(color), border_width=width,
                border_width_is_relative=True, canvas_size_limits=(pixels, 100_000),
                scale=self._layer.scale, translate=self._layer.translate,
                metadata=_helper_metadata(self._layer, SELECTION))
            self._stack_helpers()
            return
        ring.data = data
        ring.size = sizes
        ring.border_width = width
        ring.canvas_size_limits = (pixels, 100_000)
        ring.border_color = np.asarray(color)
        ring.face_color = "transparent"
        ring.scale, ring.translate = self._layer.scale, self._layer.translate

    def _stack_helpers(self) -> None:
        """Thumbnails right above the map and the selection ring above them; the map active."""
        position = self._viewer.layers.index(self._layer)
        for kind in (THUMBNAILS, SELECTION):
            helper = _helper_of(self._viewer, self._layer, kind)
            if helper is not None:
                self._viewer.layers.move(self._viewer.layers.index(helper), position + 1)
                position = self._viewer.layers.index(helper)
        # Clicks go to the active layer: the map, never a helper.
        self._viewer.layers.selection.active = self._layer

    # ----------------------------------------------------------------- gallery
    def update_gallery(self) -> None:
        """Show the images of the selected points (the first :data:`GALLERY_LIMIT`)."""
        record, rows = self.record, self.selected_rows()
        if record is None or len(rows) == 0:
            self.gallery.clear()
            self.gallery.rows = np.array([], dtype=int)
            self.status.setText(NO_MAP_HINT if record is None else SELECTION_HINT)
            return
        if record.images is None:
            self.gallery.clear()
            self.gallery.rows = np.array([], dtype=int)
            self.status.setText(f"{len(rows)} selected. This map has no images attached "
                                "(it was read from a file), so there is nothing to show.")
            return
        shown = rows[:GALLERY_LIMIT]
        more = f" (showing the first {GALLERY_LIMIT})" if len(rows) > GALLERY_LIMIT else ""
        self.status.setText(f"{len(rows)} image(s) selected{more}.")
        tiles = record.display.to_rgb(record.images[record.table["index"].to_numpy()[shown]])
        self.gallery.show_tiles(tiles, shown, record.table["index"].to_numpy()[shown],
                                self.gallery.parentWidget().width() - 4)

    def _on_tile_clicked(self, row: int):
        self._labels_alone = jump_to_image(self._viewer, self.record, row)
        self._outline_object(row)

    def select_rows(self, rows) -> None:
        """Select map rows ``rows`` (the gallery follows)."""
        if self._layer is not None:
            self._requested_order = [int(r) for r in rows]
            self._layer.selected_data = set(self._requested_order)
            self._viewer.layers.selection.active = self._layer

    def _on_list_item(self, item: QListWidgetItem):
        self.select_rows(item.data(Qt.ItemDataRole.UserRole))

    # ------------------------------------------------------------------- lasso
    def start_lasso(self) -> Shapes | None:
        """Add (or reuse) a Shapes layer where each drawn polygon selects the points inside."""
        if self._layer is None:
            return None
        lasso = _helper_of(self._viewer, self._layer, LASSO)
        if lasso is None:
            lasso = self._viewer.add_shapes(
                ndim=2, name=f"{self._layer.name} lasso", scale=self._layer.scale,
                translate=self._layer.translate, edge_color="yellow",
                face_color=[1, 1, 0, 0.1], edge_width=self._layer.size.mean() / 3,
                metadata=_helper_metadata(self._layer, LASSO),
            )
            lasso.events.data.connect(self._on_lasso_drawn)
        self._viewer.layers.selection.active = lasso
        lasso.mode = "add_polygon_lasso"
        self.status.setText("Draw around points on the map; releasing the mouse selects them.")
        return lasso

    def _on_lasso_drawn(self, event):
        if event.action != ActionType.ADDED or _owner(event.source) != self._layer:
            return
        polygon = event.source.data[-1]
        rows = explore.points_in_polygon(self.record.coordinates, polygon)
        self._lasso_rows = set(rows.tolist())
        if len(event.source.data) > 1:  # keep only the newest outline on screen
            with event.source.events.data.blocker(self._on_lasso_drawn):
                event.source.data = [polygon]
        self.select_rows(rows)

    # -------------------------------------------------------- outliers, dupes
    def _vectors(self, need_features: bool):
        record = self.record
        if record is None:
            return None, False
        if record.features is not None:
            return record.features, True
        if need_features:
            self.status.setText("Near-duplicates need the network's features: train the map, "
                                "or place the images with a loaded model.")
            return None, False
        return record.coordinates, False

    def find_outliers(self) -> None:
        """Score every image, colour the map by the score and list the most unusual images."""
        vectors, are_features = self._vectors(need_features=False)
        if vectors is None:
            return
        scores = explore.outlier_scores(vectors, normalize=are_features)
        self.record.table["outlier_score"] = scores
        self._layer.features = self.record.table
        self.color_by("outlier_score")
        self.outlier_list.clear()
        for row in np.argsort(-scores, kind="stable")[:OUTLIER_LIST_LENGTH]:
            item = QListWidgetItem(f"image {self.record.table['index'].iloc[row]} · "
                                   f"score {scores[row]:.2f}")
            item.setData(Qt.ItemDataRole.UserRole, [int(row)])
            self.outlier_list.addItem(item)
        where = "network features" if are_features else "map"
        self.status.setText(f"Outlier score (local outlier factor in the {where}): about 1 is "
                            "typical, clearly above 1 sits apart. Click an entry to see it.")

    def find_duplicates(self) -> None:
        """Group nearly identical images, mark the groups in the table and list them."""
        vectors, _ = self._vectors(need_features=True)
        if vectors is None:
            return
        groups = explore.near_duplicate_groups(vectors, self.duplicate_tolerance.value())
        group_of = np.full(len(vectors), -1)
        for number, group in enumerate(groups):
            group_of[group] = number
        self.record.table["duplicate_group"] = group_of
        self._layer.features = self.record.table
        self.duplicate_list.clear()
        indices = self.record.table["index"].to_numpy()
        for number, group in enumerate(groups):
            item = QListWidgetItem(f"group {number}: images " + ", ".join(map(str, indices[group])))
            item.setData(Qt.ItemDataRole.UserRole, [int(r) for r in group])
            self.duplicate_list.addItem(item)
        self.tabs.setCurrentIndex(1)
        self.status.setText(f"{len(groups)} group(s) of near-duplicates. Click one to see it.")

    # ------------------------------------------------------ thumbnails, export
    def show_thumbnails(self, visible: bool = True) -> Image | None:
        """Show (or hide) an image of thumbnails laid out at the points' places, above them.

        The grid and the thumbnails' resolution are chosen for the current
        zoom (see :func:`explore.atlas_grid`); press again after zooming to
        redraw them for the new view.
        """
        record = self.record
        if record is None:
            return None
        shown = _helper_of(self._viewer, self._layer, THUMBNAILS)
        if shown is not None:
            _remove_layers(self._viewer, [shown])
        if not visible or record.images is None:
            if visible:
                self.status.setText("This map has no images attached, so no thumbnails.")
            self._set_thumbnails_checked(False)
            return None
        indices = record.table["index"].to_numpy()
        n_cells, size = explore.atlas_grid(len(indices),
                                           record.frame.side * _camera(self._viewer).zoom)
        atlas = explore.atlas(record.coordinates,
                              lambda rows: record.display.to_rgb(record.images[indices[rows]]),
                              n_cells=n_cells, thumbnail_size=size)
        scale, translate = atlas.layer_transform(record.frame)
        layer = self._viewer.add_image(atlas.image, rgb=True, name=f"{self._layer.name} thumbnails",
                                       scale=scale, translate=translate,
                                       metadata=_helper_metadata(self._layer, THUMBNAILS))
        # Above the points, which would hide the thumbnails; clicks still go to
        # the map, which stays the active layer.
        self._stack_helpers()
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
        """Write the map's table (index, x, y and all features) to a CSV file."""
        outcome = session.capture(explore.write_map_table, self.record.table, path)
        if outcome.error:
            _report_error(self.status.setText, "Export failed.", outcome.error)
        else:
            self.status.setText(f"Exported {len(self.record.table)} rows to {path}.")
