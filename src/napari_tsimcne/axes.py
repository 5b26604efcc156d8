"""What the axes of an image array mean: images, height, width and channels.

An array's layout is a string with one letter per axis, ``axes``:

``Y``, ``X``
    Height and width of the images; each exactly once.
``C``
    Channels; at most once.  Without it every image has one channel.
``N``, ``T``, ``Z``
    Axes along which the images lie (images, time points, planes): every
    index along them is an image of its own.  Several of them are flattened
    in C order, the last one fastest, so a ``(T, Z, Y, X)`` stack of 4 time
    points and 8 planes gives 32 images, image ``8 * t + z`` being plane
    ``z`` of time point ``t``.

The letters say what an axis is *for* t-SimCNE: to take the planes of a
z-stack (or the time points) as channels of one image, name that axis ``C``.
``"TCYX"`` reads the ``(T, Z, Y, X)`` stack above as 4 images of 8 channels.
``"YX"`` or ``"YXC"`` describe a single image.

Without ``axes`` (``"auto"``) the layout is inferred from the shape alone: a
stack ``(N, H, W)``, or ``(N, H, W, C)`` with channels last when its last axis
is short enough to be channels (see :func:`could_be_channels`).  Everything
else (channels first, a stack of volumes, five axes) is refused with a message
that names the shape and the readings to choose from, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "AXES_LETTERS", "IMAGE_LETTERS", "Layout", "check_axes", "could_be_channels",
    "image_layout", "infer_axes", "layout_of", "tiff_axes",
]

AXES_LETTERS = "NTZCYX"
IMAGE_LETTERS = "NTZ"
#: Up to four channels (grey, grey and alpha, RGB, RGBA) count as channels
#: whatever the images' size, so that tiny images get the message about their
#: size rather than one about their layout.
COLOUR_CHANNELS = 4
#: A longer channel axis must be at most this share of the image's shorter side.
CHANNEL_SHARE = 0.5
#: The meaning of tifffile's axis codes (``TiffFile.series[i].axes``): ``S``
#: (samples, such as RGB) are channels and ``I`` (a sequence of pages) are
#: images.  ``Q`` (unknown) and the rarer codes (angle, phase, tile, ...) are
#: axes of images, except that two or more unknown axes beside no channel axis
#: leave the layout open.
_TIFF_LETTERS = {"Y": "Y", "X": "X", "C": "C", "S": "C", "T": "T", "Z": "Z", "I": "N"}


def could_be_channels(size: int, image_size) -> bool:
    """Whether an axis of ``size`` can be the channels of images of ``image_size (H, W)``.

    Channels are few next to the pixels of both sides: at most
    :data:`COLOUR_CHANNELS`, or at most :data:`CHANNEL_SHARE` of the shorter side.
    """
    return size <= COLOUR_CHANNELS or size <= CHANNEL_SHARE * min(image_size)


@dataclass(frozen=True)
class Layout:
    """An array ``shape`` read with ``axes`` (see the module docstring).

    ``order`` lists the array's axes as image axes, then Y, X and C (if any):
    ``np.transpose(X, order)`` is channels last, and merging its leading image
    axes gives the ``(N, H, W[, C])`` stack.
    """

    axes: str
    shape: tuple[int, ...]

    @property
    def image_axes(self) -> tuple[int, ...]:
        return tuple(i for i, letter in enumerate(self.axes) if letter in IMAGE_LETTERS)

    @property
    def channel_axis(self) -> int | None:
        return self.axes.index("C") if "C" in self.axes else None

    @property
    def order(self) -> tuple[int, ...]:
        spatial = (self.axes.index("Y"), self.axes.index("X"))
        channel = () if self.channel_axis is None else (self.channel_axis,)
        return self.image_axes + spatial + channel

    @property
    def n_images(self) -> int:
        return int(np.prod([self.shape[i] for i in self.image_axes], dtype=np.int64))

    @property
    def image_size(self) -> tuple[int, int]:
        return self.shape[self.axes.index("Y")], self.shape[self.axes.index("X")]

    @property
    def n_channels(self) -> int:
        return 1 if self.channel_axis is None else self.shape[self.channel_axis]

    def describe(self) -> str:
        """E.g. ``"512 images of 32×32 px"`` or ``"64 images of 32×32 px with 8 channels"``."""
        height, width = self.image_size
        text = f"{self.n_images} image{'s' if self.n_images != 1 else ''} of {height}×{width} px"
        return text + (f" with {self.n_channels} channels" if self.n_channels > 1 else "")


def check_axes(axes, *, option: str = "axes") -> str:
    """``axes`` if it is ``"auto"`` or a valid layout string, else ``ValueError`` saying why."""
    if isinstance(axes, str) and axes == "auto":
        return axes
    problem = None
    if not isinstance(axes, str) or not axes:
        problem = "it is not a string of axis letters"
    elif set(axes) - set(AXES_LETTERS):
        problem = f"{''.join(sorted(set(axes) - set(AXES_LETTERS)))!r} are not axis letters"
    elif any(axes.count(letter) != 1 for letter in "YX"):
        problem = "Y and X (height and width) must each appear once"
    elif axes.count("C") > 1:
        problem = "C (channels) may appear only once"
    if problem is not None:
        raise ValueError(
            f"{_option(option, axes)} is not a layout: {problem}. Name every axis with one "
            "letter: N, T or Z for axes of images, C for channels, Y and X for height and "
            "width, e.g. 'NYXC' (channels last), 'NCYX' (channels first) or 'TZYX'.")
    return axes


def layout_of(shape, axes="auto", *, what: str = "X", option: str = "axes") -> Layout:
    """The :class:`Layout` of an array of ``shape`` with ``axes`` (``"auto"``: inferred).

    ``what`` names the array and ``option`` the way to pass ``axes`` in
    messages (``"axes"`` for the Python API, ``"--axes"`` for the command line).
    Raises ``ValueError`` naming the shape and the layouts to choose from.
    """
    shape = tuple(int(s) for s in shape)
    if check_axes(axes, option=option) == "auto":
        axes = infer_axes(shape, what=what, option=option)
    if len(axes) != len(shape):
        raise ValueError(
            f"{_option(option, axes)} names {len(axes)} axes, but {what} has "
            f"{len(shape)} (shape {shape}). Give one letter per axis.")
    return Layout(axes, shape)


def infer_axes(shape, *, what: str = "X", option: str = "axes") -> str:
    """``"NYX"`` or ``"NYXC"`` for a stack whose shape says so; ``ValueError`` otherwise.

    The message names the shape and, where there are some, the layouts it
    could have and what each would give.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        # Read as a stack, such an array would hold images at most four pixels wide.
        if 0 < shape[2] <= COLOUR_CHANNELS < min(shape[:2]):
            raise ValueError(
                f"{what} has shape {shape}, which looks like a single image (H, W, C) rather "
                f"than a stack of {shape[0]} images of {shape[1]}×{shape[2]} px. Pass a stack "
                f"of images, or {_option(option, 'YXC')} to read it as one image.")
        return "NYX"
    if len(shape) == 4:
        if could_be_channels(shape[3], shape[1:3]):
            return "NYXC"
        readings = ("NCYX", "NZYX") if could_be_channels(shape[1], shape[2:]) else (
            "NYXC", "NCYX", "NZYX")
        raise ValueError(
            f"{what} has shape {shape}: its last axis ({shape[3]}) is too long to be the "
            f"channels of images of {shape[1]}×{shape[2]} px, so it is not (N, H, W, C). "
            f"Say which it is: {_readings(shape, readings, option)}.")
    if len(shape) == 2:
        hint = f" For a single image pass {_option(option, 'YX')}."
    elif len(shape) > 4:
        example = f", e.g. {_option(option, 'TZCYX')}" if len(shape) == 5 else ""
        name = option if option.startswith("-") else f"{option}="
        hint = (f" Pass {name} with one letter per axis (N, T, Z: axes of images; C: channels; "
                f"Y, X: height and width){example}.")
    else:
        hint = ""
    raise ValueError(
        f"{what} has shape {shape}; expected a stack of images (N, H, W) or (N, H, W, C) "
        f"with channels last.{hint}")


def image_layout(shape, axes="auto", *, what: str = "image", option: str | None = "axes"
                 ) -> Layout:
    """The layout of one image ``(H, W)``, ``(H, W, C)`` or as ``axes`` (C, Y, X only) says.

    Raises ``ValueError`` naming ``what`` for an image whose last axis is too
    long to be channels, or ``axes`` with letters of image axes.  ``option``
    ``None`` means that the caller cannot pass ``axes`` (the images of a
    Python list): the message then says how to move the channels last.
    """
    shape = tuple(int(s) for s in shape)
    if check_axes(axes, option=option) != "auto":
        if set(axes) & set(IMAGE_LETTERS):
            raise ValueError(
                f"{_option(option, axes)} describes a stack, but {what} is one image: use only "
                "C, Y and X, e.g. 'CYX' for channels first.")
        return layout_of(shape, axes, what=what, option=option)
    if len(shape) == 2:
        return Layout("YX", shape)
    if len(shape) != 3:
        raise ValueError(
            f"{what} has shape {shape}; an image must be 2-D (H, W) or 3-D (H, W, C) with "
            "channels last.")
    if not could_be_channels(shape[2], shape[:2]):
        fix = ("move them last, e.g. with np.moveaxis(image, 0, -1)" if option is None
               else f"pass {_option(option, 'CYX')}")
        raise ValueError(
            f"{what} has shape {shape}: its last axis ({shape[2]}) is too long to be the "
            f"channels of an image of {shape[0]}×{shape[1]} px, so it is not (H, W, C). If its "
            f"channels come first, {fix}.")
    return Layout("YXC", shape)


def tiff_axes(codes: str, shape, *, stack: bool = True) -> str | None:
    """``axes`` from tifffile's axis ``codes`` for an array of ``shape``, or ``None``.

    ``None`` means the codes do not settle the layout.  They settle it when
    they name height and width, at most one channel axis that
    :func:`could_be_channels`, no more than one unknown axis unless a channel
    axis is named, and at least one axis of images for a ``stack`` (none for
    a single image, ``stack=False``).
    """
    shape = tuple(int(s) for s in shape)
    if len(codes) != len(shape) or codes.count("Y") != 1 or codes.count("X") != 1:
        return None
    letters = [_TIFF_LETTERS.get(code) for code in codes]
    if letters.count("C") > 1 or (letters.count(None) > 1 and "C" not in letters):
        return None
    axes = "".join("N" if letter is None else letter for letter in letters)
    layout = Layout(axes, shape)
    plausible_channels = could_be_channels(layout.n_channels, layout.image_size)
    return axes if bool(layout.image_axes) == stack and plausible_channels else None


#: What the layouts offered by :func:`infer_axes` mean, in its messages.
_READINGS = {"NYXC": "channels last", "NCYX": "channels first", "NZYX": "every plane an image"}


def _readings(shape, choices, option: str) -> str:
    return ", or ".join(f"{_option(option, axes)} ({_READINGS[axes]}: "
                        f"{Layout(axes, shape).describe()})" for axes in choices)


def _option(option: str, axes: str) -> str:
    """How to pass ``axes``: ``axes="NCYX"`` in Python, ``--axes NCYX`` on the command line."""
    return f"{option} {axes}" if option.startswith("-") else f'{option}="{axes}"'
