"""The Train map widget: train a map of the images in Image layers, save, load and apply models.

Training runs in a worker thread with live progress and Cancel, optionally
writing checkpoints that Resume continues from; the map is drawn after
every stage, beside the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, Label, ProgressBar, PushButton
from napari.layers import Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_info
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QFileDialog, QSizePolicy

from ..model import TSimCNEModel
from .controller import (
    Outcome,
    ProgressEvent,
    TrainingProgress,
    capture,
    prepare_and_place,
    prepare_and_train,
)
from .geometry import MapFrame
from .helper_layers import remove_layers
from .map_layers import channel_display, frame_beside, map_layer_named, map_record, redraw, show_map
from .map_table import (
    ChannelDisplay,
    ImageMap,
    ImageSource,
    extra_columns,
    map_coordinates,
    map_table,
)
from .messages import grow_with_text, report_error
from .training_form import TrainingForm

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TrainWidget"]


class _ProgressRelay(QObject):
    """Carries progress events from the training thread to the main thread."""

    event = Signal(object)


@dataclass
class _Run:
    """One training or placing run, from the click to the worker's return.

    ``display`` (how the images' layers colour them) and ``user_features``
    (the first image layer's metadata) are taken at the click; ``frame`` is
    that of the map images are placed on.  ``layer`` is the map layer being
    drawn; ``previous`` and ``previous_table`` its record and table before
    the run (restored if training is stopped before the map exists);
    ``created`` whether the run added the layer; ``checkpoints`` the
    training's checkpoint folder.
    """

    name: str
    display: ChannelDisplay
    source_layer: str
    labels_layer: str | None
    user_features: dict
    frame: MapFrame | None = None
    layer: Points | None = None
    previous: ImageMap | None = None
    previous_table: pd.DataFrame | None = None
    created: bool = False
    checkpoints: Path | None = None

    def record(self, prepared, **kwargs) -> ImageMap:
        """The record of a map of ``prepared`` images (:class:`.layer_layout.TrainingImages`)."""
        return ImageMap(images=prepared.images, display=self.display,
                        source=ImageSource(self.source_layer, prepared.stack_axis,
                                           self.labels_layer), **kwargs)

    def table(self, prepared, embedding):
        """The table of a map of ``prepared`` images: objects' measurements or the layer's own."""
        return map_table(embedding, extra_columns(prepared.table, self.user_features,
                                                  len(prepared.images)))

    def resume_hint(self) -> str:
        if self.checkpoints is None:
            return ""
        return f" Its checkpoints in {self.checkpoints} are kept: Resume continues from the newest."


class TrainWidget(Container):
    """Train a map of the images in Image layers, watch it grow, save and apply the model."""

    def __init__(self, napari_viewer):
        super().__init__()
        self._viewer = napari_viewer
        self._worker = None
        self._progress = None
        self._relay = _ProgressRelay()
        self._relay.event.connect(self._on_progress)
        self._run = None  # the run in progress
        self.form = TrainingForm(napari_viewer)
        self._train_button = PushButton(text="Train")
        self._resume_button = PushButton(
            text="Resume", tooltip="Continue the training whose checkpoints are in the "
                                   "Checkpoints folder, with the same images and settings.")
        self._progress_bar = ProgressBar(value=0, min=0, max=1, label="Progress")
        self._status = Label(value="Select a stack of images and press Train.")
        self._status.native.setWordWrap(True)
        self._status.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self._status.native.setSizePolicy(QSizePolicy.Policy.Expanding,
                                          QSizePolicy.Policy.Preferred)
        grow_with_text(self._status.native)
        self._map = ComboBox(label="Map", choices=self._map_choices,
                             tooltip="The map whose model is saved or used to place images.")
        self._save_button = PushButton(text="Save model…")
        self._load_button = PushButton(text="Load model…")
        self._place_button = PushButton(text="Place images on map",
                                        tooltip="Put the selected images on the chosen map "
                                                "with its model, without training.")
        self.extend([
            *self.form.widgets,
            Container(widgets=[self._train_button, self._resume_button], layout="horizontal",
                      labels=False),
            self._progress_bar, self._status, self._map,
            Container(widgets=[self._save_button, self._load_button], layout="horizontal",
                      labels=False),
            self._place_button,
        ])
        self._train_button.changed.connect(self._on_train_clicked)
        self._resume_button.changed.connect(self.resume)
        self.form.checkpoint_dir.changed.connect(self._update_buttons)
        self._save_button.changed.connect(self._ask_save_model)
        self._load_button.changed.connect(self._ask_load_model)
        self._place_button.changed.connect(self.place_images)
        self.native.destroyed.connect(self._stop_quietly)
        self.reset_choices()
        self._update_buttons()

    def _map_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers if map_record(layer)]

    def reset_choices(self, *_):
        """Refresh the layer lists (napari calls this when layers change) and the defaults."""
        super().reset_choices()
        self.form.follow_layers()

    def _update_buttons(self, *_):
        """Resume needs a checkpoint folder, and nothing starts while busy."""
        self._resume_button.enabled = self.form.checkpoint_folder() is not None and not self.running

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
        """Start training on the chosen images in a worker thread.

        With ``resume``, continue the training whose checkpoints are in the
        Checkpoints folder (same images and settings) from the newest one.
        """
        if self.running:
            return
        try:
            settings = self.form.settings(resume=resume)
            request, run = self._request(min_images=2)
        except ValueError as error:
            report_error(self._show_status, "Training did not start.", str(error))
            return
        run.layer = map_layer_named(self._viewer, run.name)
        run.previous = map_record(run.layer)
        run.previous_table = None if run.layer is None else run.layer.features.copy()
        run.checkpoints = settings.checkpoint_dir
        planned = settings.time_budget is not None
        self._progress = TrainingProgress(None if planned else settings.epochs,
                                          self._relay.event.emit)
        self._progress_bar.max = max(self._progress.total_epochs, 1)
        self._progress_bar.value = 0
        self._status.value = ("Preparing the images and reading the newest checkpoint…" if resume
                              else "Preparing the images…")
        self._train_button.text = "Cancel"
        self._start(run, self._on_training_returned, prepare_and_train, request, settings,
                    self._progress)

    def resume(self, *_) -> None:
        """Continue the training whose checkpoints are in the Checkpoints folder."""
        self.train(resume=True)

    def _request(self, min_images: int):
        """What to train on (or place), and a run named after the first image layer."""
        request = self.form.request(min_images)
        layers, labels = list(self.form.images.value), self.form.objects.value
        run = _Run(name=f"{layers[0].name} map", display=channel_display(layers),
                   source_layer=layers[0].name,
                   labels_layer=None if labels is None else labels.name,
                   user_features=layers[0].metadata)
        return request, run

    def _start(self, run: _Run, on_returned, function, *args) -> None:
        """Run ``function(*args)`` in a worker thread; ``on_returned`` gets its :class:`Outcome`."""
        self._run = run
        self._worker = create_worker(capture, function, *args)
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

    def _on_progress(self, event: ProgressEvent):
        self._progress_bar.max = event.total  # planned when training began, for a time budget
        self._progress_bar.value = event.done
        self._status.value = event.describe()
        if event.embedding is not None and self._run is not None:
            self._show_run_map(ImageMap(preview=event.preview), map_table(event.embedding))
            preview = " (preview: PCA of the 128-D output)" if event.preview else ""
            self._status.value = f"{event.describe()} · map shown{preview}"

    def _show_run_map(self, record: ImageMap, table) -> None:
        run = self._run
        record.frame = frame_beside(self._viewer, run.source_layer, map_coordinates(table))
        if run.layer is not None and run.layer not in self._viewer.layers:
            run.layer = None  # deleted by the user while training ran
        created = run.layer is None
        run.layer = show_map(self._viewer, record, table, run.name, run.layer)
        run.layer.name = run.name + (" (preview)" if record.preview else "")
        run.created |= created
        if created:
            self._viewer.reset_view()

    def _on_training_returned(self, outcome: Outcome):
        run = self._run
        if outcome.error is not None:
            self._restore_previous(run)
            if outcome.stopped:
                self._status.value = ("Stopped before the 2-D map existed; the previous result is "
                                      "kept." + run.resume_hint())
            else:
                report_error(self._show_status, "Training failed.", outcome.error)
            return
        prepared, result = outcome.value
        table = run.table(prepared, result.embedding)
        self._show_run_map(run.record(prepared, backbone_features=result.features,
                                      model=result.model), table)
        run.layer.mode = "select"
        self._viewer.layers.selection.active = run.layer
        if result.stopped_early:
            self._status.value = (f"Map of {len(table)} images; stopped early by Cancel."
                                  + run.resume_hint())
        else:
            self._progress_bar.value = self._progress_bar.max  # also when resumed at the end
            self._status.value = f"Done: map of {len(table)} images."
        if result.notice:
            self._status.value += f" {result.notice}"
        self._open_explorer()

    def _restore_previous(self, run: _Run) -> None:
        if run.layer is None or run.layer not in self._viewer.layers:
            return
        if run.previous is not None:
            redraw(run.layer, run.previous, run.previous_table)
            run.layer.name = run.name
        elif run.created:
            remove_layers(self._viewer, [run.layer])

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
            report_error(self._show_status, "No map chosen.", "Train a map or load a model first.")
            return None
        if record.model is None:
            report_error(self._show_status, "This map has no model.",
                         f"The map '{self._map.value.name}' was read from a table; load the "
                         "model file it was made with.")
            return None
        return record

    def save_model(self, path) -> None:
        """Save the model of the map chosen under 'Map' to ``path``."""
        record = self._chosen_model_record()
        if record is None:
            return
        outcome = capture(record.model.save, path)
        if outcome.error:
            report_error(self._show_status, "Saving the model failed.", outcome.error)
        else:
            show_info(f"Saved the model to {path}.")

    def load_model(self, path) -> Points | None:
        """Load a model file and show the map of its training images, stored in the file.

        The map is drawn beside the first chosen image layer, if any.
        """
        outcome = capture(TSimCNEModel.load, path, device=self.form.device.value)
        if outcome.error:
            report_error(self._show_status, "Loading the model failed.", outcome.error)
            return None
        model = outcome.value
        record, table = ImageMap(model=model), map_table(model.embedding)
        beside = self.form.images.value[0].name if self.form.images.value else None
        record.frame = frame_beside(self._viewer, beside, map_coordinates(table))
        layer = show_map(self._viewer, record, table, f"{Path(path).stem} map")
        self._map.reset_choices()
        self._map.value = layer
        self._open_explorer()
        return layer

    def place_images(self, *_) -> None:
        """Place the chosen images on the chosen map with its model, in a worker thread."""
        record = self._chosen_model_record()
        if record is None or self.running:
            return
        try:
            request, run = self._request(min_images=1)
        except ValueError as error:
            report_error(self._show_status, "Placing did not start.", str(error))
            return
        run.name = f"{run.source_layer} on {self._map.value.name}"
        run.frame = record.frame
        self._status.value = "Placing the images on the map…"
        self._start(run, self._on_placed, prepare_and_place, request, record.model)

    def _on_placed(self, outcome: Outcome):
        run = self._run
        if outcome.error is not None:
            report_error(self._show_status, "Placing failed.", outcome.error)
            return
        prepared, (embedding, features) = outcome.value
        record = run.record(prepared, backbone_features=features, placed=True, frame=run.frame)
        show_map(self._viewer, record, run.table(prepared, embedding), run.name,
                 map_layer_named(self._viewer, run.name))
        self._status.value = f"Placed {len(embedding)} images on the map."
        self._open_explorer()
