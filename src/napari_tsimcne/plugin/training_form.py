"""The Train map widget's fields: what to train on and how, with defaults that follow the data."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, FileEdit, FloatSpinBox, Label, LineEdit, Select, SpinBox
from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QSizePolicy

from ..defaults import CHECKPOINT_EVERY, CPU_BATCH_SIZE, DEFAULT_MINUTES, DEFAULT_SEED
from ..devices import available_devices
from .controller import TrainingSettings
from .helper_layers import is_plugin_layer
from .layer_layout import TrainingRequest, count_objects, default_inputs, describe_layout
from .messages import grow_with_text
from .training_choices import (
    BACKBONES,
    CUSTOM,
    SCHEDULES,
    TIME_BUDGET,
    describe_input,
    epochs_text,
    form_defaults,
    image_size_choices,
    parse_epochs,
    schedule_named,
)

__all__ = ["TrainingForm"]


class TrainingForm:
    """The training choices of the Train map widget, as magicgui fields.

    Which image layers (and Labels layer) to train on, and the settings.
    When the chosen layers change, the batch size, image size and
    augmentation are set to the defaults the library derives from such
    images (:func:`.training_choices.form_defaults`).  Not a widget itself:
    the widget lays out :attr:`widgets`.
    """

    def __init__(self, viewer):
        self._viewer = viewer
        self._input_key = None  # the input the defaults were last set for
        self._default_inputs = ([], None)  # the layers last chosen by default
        self._default_size = None  # the default image size, offered among the choices
        self.images = Select(
            label="Images", choices=self._image_choices,
            tooltip="A stack (N, H, W), an RGB stack, or a multichannel stack. Several "
                    "layers of the same shape are used as the channels of one stack.",
        )
        self.images.native.setMaximumHeight(90)
        self.objects = ComboBox(
            label="Objects", choices=self._labels_choices,
            tooltip="Optional Labels layer: train on one crop per labelled object, "
                    "centred on it, instead of on the images of a stack.",
        )
        self.crop_size = SpinBox(label="Crop size (px)", min=8, max=512, step=8, value=64)
        self.summary = Label(value="")
        self.schedule = ComboBox(
            label="Schedule", choices=[TIME_BUDGET, *SCHEDULES, CUSTOM], value=TIME_BUDGET,
            tooltip="time budget: the epochs are planned to fill the minutes you give, "
                    "timed on this computer; paper: the published schedule, for a GPU; "
                    "custom: your own epochs per stage.")
        self.minutes = FloatSpinBox(
            label="Time budget (min)", min=0.5, max=100_000, step=1, value=DEFAULT_MINUTES,
            tooltip="How long training may take; the planned epochs are shown when it starts.")
        self.epochs = LineEdit(label="Epochs per stage", value=epochs_text(SCHEDULES["paper"]),
                               tooltip="pre-training, readout, fine-tuning (or one number)")
        # Until layers are chosen and the defaults follow them.
        self.batch_size = SpinBox(label="Batch size", min=2, max=4096, value=CPU_BATCH_SIZE,
                                  tooltip="Images per training step; at most the number of images.")
        self.image_size = ComboBox(
            label="Image size", choices=self._image_size_choices,
            tooltip="Images are resized to this for training; smaller trains faster.")
        self.augmentation = ComboBox(
            label="Augmentation", choices=["microscopy", "natural"],
            tooltip="microscopy: flips, rotations, per-channel intensity. natural: the paper's "
                    "set for photographs.")
        self.backbone = ComboBox(label="Network",
                                 choices=[(text, name) for name, text in BACKBONES.items()])
        self.device = ComboBox(label="Device", choices=available_devices())
        self.seed = SpinBox(label="Random seed", min=0, max=2**31 - 1, value=DEFAULT_SEED)
        self.checkpoint_dir = FileEdit(
            label="Checkpoints", mode="d", nullable=True,
            tooltip="Optional folder (created if missing) for checkpoints of the training, "
                    "the newest two kept. Leave empty for none. With checkpoints, Resume "
                    "continues a cancelled or crashed training.",
        )
        self.checkpoint_dir.line_edit.native.setPlaceholderText("none")
        self.checkpoint_every = SpinBox(
            label="  every (epochs)", min=1, max=100_000, value=CHECKPOINT_EVERY,
            tooltip="Epochs between checkpoints; one is also written at the end of every stage.",
        )
        self.summary.native.setWordWrap(True)
        self.summary.native.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.summary.native.setSizePolicy(QSizePolicy.Policy.Expanding,
                                          QSizePolicy.Policy.Preferred)
        grow_with_text(self.summary.native)
        for field in (self.images, self.objects, self.crop_size, self.device):
            field.changed.connect(self._on_input_changed)
        self.schedule.changed.connect(self._on_schedule_changed)
        self.epochs.changed.connect(self._on_epochs_edited)
        self.checkpoint_dir.changed.connect(self._on_checkpoint_dir_changed)
        self._on_schedule_changed(self.schedule.value)
        self._on_checkpoint_dir_changed()

    @property
    def widgets(self) -> list:
        """The fields, in the order they are shown."""
        return [self.images, self.objects, self.crop_size, self.summary, self.schedule,
                self.minutes, self.epochs, self.batch_size, self.image_size, self.augmentation,
                self.backbone, self.device, self.seed, self.checkpoint_dir,
                self.checkpoint_every]

    # ------------------------------------------------------------------ inputs
    def _image_choices(self, _widget=None):
        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, Image) and not is_plugin_layer(layer)]

    def _labels_choices(self, _widget=None):
        return [("none: train on the stack", None)] + [
            (layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Labels)
        ]

    def _image_size_choices(self, _widget=None):
        return image_size_choices(self._native_size(), self._default_size)

    def follow_layers(self) -> None:
        """After the layer lists were refreshed: choose the layers to train on, unless the user did.

        The layers are chosen (see :func:`.layer_layout.default_inputs`) as
        long as the user has not changed the choice, so that layers that
        arrive one by one (a sample's channels, then its labels) are chosen
        together.
        """
        chosen = (list(self.images.value), self.objects.value)
        if not chosen[0] or chosen == self._default_inputs:
            images = [layer for _, layer in self._image_choices()]
            labels = [layer for _, layer in self._labels_choices() if layer is not None]
            image_indices, labels_index = default_inputs(
                [layer.data.shape for layer in images], [layer.rgb for layer in images],
                [layer.data.shape for layer in labels])
            self._default_inputs = ([images[i] for i in image_indices],
                                    None if labels_index is None else labels[labels_index])
            self.images.value, self.objects.value = self._default_inputs
        self._on_input_changed()

    def _layouts(self):
        """Layouts (see :func:`.layer_layout.describe_layout`) of the chosen layers.

        Raises ``ValueError`` for a layer that holds no usable images.
        """
        single_ok = self.objects.value is not None
        return [describe_layout(layer.data.shape, layer.rgb, name=layer.name,
                                single_ok=single_ok) for layer in self.images.value]

    def _native_size(self) -> tuple[int, int] | None:
        if self.objects.value is not None:
            return (self.crop_size.value,) * 2
        try:
            layouts = self._layouts()
        except ValueError:
            return None
        return layouts[0].size if layouts else None

    def _on_input_changed(self, *_):
        """Describe the training set; reset the defaults that depend on it when it changed."""
        labels = self.objects.value
        self.crop_size.visible = labels is not None
        key = (tuple(id(layer) for layer in self.images.value), id(labels),
               self.crop_size.value, self.device.value)
        if key == self._input_key:  # layers came or went elsewhere: keep the user's edits
            return
        self._input_key = key
        self.image_size.reset_choices()
        objects = None if labels is None else (labels.name, count_objects(labels.data))
        try:
            described = describe_input(self._layouts(), objects, self.crop_size.value)
        except ValueError as error:
            self.summary.value = str(error)
            return
        if described is None:
            self.summary.value = "No image layer selected."
            return
        self.summary.value = described.summary
        defaults = form_defaults(described.n_images, *described.size, described.n_channels,
                                 self.images.value[0].data.dtype, self.device.value)
        self.batch_size.value = defaults.batch_size
        self._default_size = defaults.image_size
        self.image_size.reset_choices()
        self.image_size.value = defaults.image_size
        self.augmentation.value = defaults.augmentation

    # ---------------------------------------------------------------- settings
    def _on_schedule_changed(self, name: str):
        if name in SCHEDULES:
            self.epochs.value = epochs_text(SCHEDULES[name])
        self.minutes.visible = name == TIME_BUDGET
        self.epochs.visible = name != TIME_BUDGET

    def _on_epochs_edited(self, text: str):
        self.schedule.value = schedule_named(text)

    def checkpoint_folder(self) -> Path | None:
        """The folder under Checkpoints, or ``None`` when it is empty (no checkpoints)."""
        text = self.checkpoint_dir.line_edit.value.strip()
        return Path(text).expanduser() if text else None

    def _on_checkpoint_dir_changed(self, *_):
        self.checkpoint_every.enabled = self.checkpoint_folder() is not None

    def settings(self, resume: bool = False) -> TrainingSettings:
        """The chosen settings; raises ValueError for unreadable epochs."""
        budget = self.schedule.value == TIME_BUDGET
        return TrainingSettings(
            time_budget=60 * self.minutes.value if budget else None,
            epochs=SCHEDULES["paper"] if budget else parse_epochs(self.epochs.value),
            batch_size=self.batch_size.value,
            image_size=self.image_size.value, augmentation=self.augmentation.value,
            backbone=self.backbone.value, device=self.device.value, seed=self.seed.value,
            checkpoint_dir=self.checkpoint_folder(),
            checkpoint_every=self.checkpoint_every.value, resume=resume,
        )

    def request(self, min_images: int) -> TrainingRequest:
        """The chosen layers' data, to train on (``min_images`` 2) or to place (1).

        Raises ``ValueError`` when no image layer is chosen.
        """
        layers = list(self.images.value)
        if not layers:
            raise ValueError("Select the Image layer(s) holding your images first.")
        labels = self.objects.value
        return TrainingRequest(
            arrays=[layer.data for layer in layers], rgb=[layer.rgb for layer in layers],
            names=[layer.name for layer in layers],
            labels=None if labels is None else labels.data, crop_size=self.crop_size.value,
            min_images=min_images,
        )
