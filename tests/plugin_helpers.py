"""Helpers and fixtures shared by the tests of the napari widgets.

Models are tiny (ResNet-10 of width 8, 16x16 images, one epoch per stage).
Test modules import the fixtures they use by name.
"""

import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt

from napari_tsimcne.plugin.map_layers import map_record
from napari_tsimcne.plugin.map_table import USER_FEATURES_KEY
from napari_tsimcne.plugin.train_widget import TrainWidget

N_IMAGES, SIZE = 48, 16
#: Name of the Explore map widget's dock, opened by the Train map widget after training.
EXPLORER = "Explore map (napari-tsimcne)"


@pytest.fixture
def errors(monkeypatch):
    """Messages passed to napari's show_error by the widgets."""
    messages = []
    monkeypatch.setattr("napari_tsimcne.plugin.messages.show_error", messages.append)
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
    widget.form.epochs.value = epochs
    widget.form.backbone.value = "resnet10-w8"
    widget.form.batch_size.value = 16
    widget.form.device.value = "cpu"


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


class DragEvent:
    """A mouse press as napari hands it to a drag callback: it becomes each later event.

    napari points the event the drag began with at every following event of
    the drag (its ``__wrapped__``), so that the callback sees them in turn.
    """

    def __init__(self, press: MouseEvent):
        self.__wrapped__ = press

    def __getattr__(self, name):
        return getattr(self.__wrapped__, name)


def world_position(layer, row):
    """Viewer position (stack axis first) of the centre of map point ``row``."""
    return (0.0, *map_record(layer).frame.to_world(layer.data[row]))
