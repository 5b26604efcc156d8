"""What the Train map form offers and derives: schedules, networks, sizes, defaults.

The defaults follow the chosen layers as the library's follow the images
(:mod:`napari_tsimcne.defaults`), so that one collection gets one training
whichever front end starts it.  Nothing here needs napari or Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..devices import CPU_BACKBONE, defaults_for_device, resolve_backbone, resolve_device
from ..schedule import PAPER_EPOCHS, make_stages
from ..trainer import Accelerations
from .layer_layout import LayerLayout

__all__ = [
    "BACKBONES",
    "CUSTOM",
    "SCHEDULES",
    "TIME_BUDGET",
    "TrainingInput",
    "describe_input",
    "epochs_text",
    "form_defaults",
    "image_size_choices",
    "parse_epochs",
    "schedule_named",
]

#: Epochs per stage (pre-training, readout, fine-tuning) of the schedule presets.
SCHEDULES = {"paper": PAPER_EPOCHS}
#: The default schedule: a time budget, in minutes, for which the epochs are
#: planned on the user's machine (see :mod:`napari_tsimcne.budget`).
TIME_BUDGET = "time budget"
#: The schedule of epochs typed in by the user.
CUSTOM = "custom"
#: Image sides offered below the images' own size (with the default size, if another).
IMAGE_SIZES = (96, 64, 48, 32, 24, 16)
#: Backbone choices, with the words a person sees; the CPU's default is marked
#: from :data:`~napari_tsimcne.devices.CPU_BACKBONE`, its one home.
BACKBONES = {
    name: f"{words} (CPU default)" if name == CPU_BACKBONE else words
    for name, words in {
        "auto": "auto (small on CPU, ResNet-18 on GPU)",
        "resnet10-w8": "tiny ResNet-10 (fastest)",
        "resnet10-w16": "small ResNet-10",
        "resnet10-w32": "ResNet-10",
        "resnet18": "ResNet-18 (paper)",
    }.items()
}


def form_defaults(n_images: int, height: int, width: int, n_channels: int, dtype,
                  device: str = "auto"):
    """:func:`napari_tsimcne.defaults.data_defaults` for a device name such as ``"auto"``.

    As for ``TSimCNE``, the image size leaves room in the device's free memory
    for training (the default backbone).
    """
    device = resolve_device(device)
    backbone = resolve_backbone("auto", device)
    accelerations = Accelerations.for_device(device, backbone=backbone)
    return defaults_for_device(device, backbone, accelerations, n_images, height, width,
                               n_channels, dtype)


def epochs_text(epochs) -> str:
    """Epochs per stage as the form shows them, e.g. ``"40, 5, 15"``."""
    return ", ".join(str(e) for e in epochs)


def schedule_named(text: str) -> str:
    """The preset of :data:`SCHEDULES` whose epochs read ``text``, else :data:`CUSTOM`."""
    presets = {epochs_text(epochs): name for name, epochs in SCHEDULES.items()}
    return presets.get(text.strip(), CUSTOM)


def image_size_choices(native, default=None) -> list[tuple[str, object]]:
    """The image sizes offered for images of ``native (height, width)`` pixels, as (text, size).

    First the images' own size (size ``None``), then the sides of
    :data:`IMAGE_SIZES` below it, with the ``default`` size (a side or
    ``(height, width)``) among them, largest first.  Without a known
    ``native`` size only the images' own size is offered.
    """
    if native is None:
        return [("as is", None)]
    smaller = [size for size in IMAGE_SIZES if size < min(native)]
    if default is not None and default not in smaller:
        # Images shrunk to 256 px, or to what fits in memory.
        smaller = sorted([default, *smaller], reverse=True,
                         key=lambda size: size if isinstance(size, int) else max(size))
    return [(f"as is ({native[0]}×{native[1]} px)", None)] + [
        (f"{size} px" if isinstance(size, int) else f"{size[0]}×{size[1]} px", size)
        for size in smaller
    ]


@dataclass(frozen=True)
class TrainingInput:
    """What the chosen layers hold: a line for people and what the form's defaults follow.

    ``n_images`` is the number of images, or of objects to crop; ``size`` is
    ``(height, width)`` of the images or crops.
    """

    summary: str
    n_images: int
    size: tuple[int, int]
    n_channels: int


def describe_input(layouts: list[LayerLayout], objects: tuple[str, int] | None = None,
                   crop_size: int = 64) -> TrainingInput | None:
    """Describe the training input: image layers of ``layouts``, cropped or as a stack.

    ``layouts`` are those of the chosen image layers (several are the
    channels of one stack); ``objects`` is the name of the Labels layer to
    crop ``crop_size`` px squares from and its number of objects (see
    :func:`.layer_layout.count_objects`), ``None`` to train on the stack.
    ``None`` when no layer is chosen.
    """
    if not layouts:
        return None
    channels = sum(layout.n_channels for layout in layouts)
    if objects is not None:
        name, n_objects = objects
        return TrainingInput(f"One {crop_size}×{crop_size} px crop per object of '{name}', "
                             f"{channels} channel(s)", n_objects, (crop_size, crop_size), channels)
    n_images, (height, width) = layouts[0].n_images, layouts[0].size
    return TrainingInput(f"{n_images} images, {height}×{width} px, {channels} channel(s)",
                         n_images, (height, width), channels)


def parse_epochs(text: str) -> tuple[int, ...]:
    """Read epochs per stage from text such as ``"40, 5, 15"`` or ``"30"``.

    Raises ``ValueError`` explaining the expected form.
    """
    try:
        epochs = tuple(int(part) for part in text.replace(";", ",").split(",") if part.strip())
        make_stages(epochs, lr=1.0)
    except ValueError:
        raise ValueError(
            f"Epochs {text!r} are not a training plan: give three whole numbers for "
            "pre-training, readout and fine-tuning, such as 40, 5, 15 (the paper uses "
            "1000, 50, 450), a fourth for the final readout if it should differ from the "
            "readout, or one number to train the 2-D map directly."
        ) from None
    return epochs
