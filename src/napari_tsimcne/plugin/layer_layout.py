"""Training images from napari-style layer data: stacks, channel layers, object crops.

napari keeps the two displayed axes last: an image stack is ``(N, H, W)``, an
RGB stack ``(N, H, W, 3)`` with ``rgb=True``, and a multichannel stack either
one layer per channel (what ``channel_axis`` produces) or one 4-D layer
``(N, C, H, W)``.  The functions here turn such arrays into the channels-last
stack ``(N, H, W, C)`` that :class:`napari_tsimcne.TSimCNE` trains on, or cut
one fixed-size crop per labelled object out of an image and its Labels.
No napari or Qt is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

__all__ = [
    "MAX_CHANNELS",
    "LayerLayout",
    "ObjectCrops",
    "TrainingImages",
    "TrainingRequest",
    "channels_last",
    "count_objects",
    "crop_objects",
    "default_channel_layers",
    "default_crop_size",
    "default_inputs",
    "describe_layout",
    "stack_layers",
    "training_images",
]

#: Largest channel axis of a 4-D layer; longer axes are taken as the stack axis.
MAX_CHANNELS = 8


@dataclass(frozen=True)
class LayerLayout:
    """What the axes of one layer's data mean (see :func:`describe_layout`).

    Attributes
    ----------
    n_images : int or None
        Images in the stack; ``None`` for a single image.
    size : (int, int)
        Height and width of the images.
    n_channels : int
    stack_axis, channel_axis : int or None
        Axis of the data that counts the images, and the axis of channels
        (``-1`` for RGB, ``None`` for one channel).
    """

    n_images: int | None
    size: tuple[int, int]
    n_channels: int
    stack_axis: int | None
    channel_axis: int | None


def describe_layout(shape, rgb: bool = False, *, name: str = "image",
                    single_ok: bool = False) -> LayerLayout:
    """Read the layout of a layer's data from its ``shape`` alone (nothing is loaded).

    ``shape`` is ``(N, H, W)``, ``(N, H, W, 3|4)`` with ``rgb=True`` (alpha
    is ignored), or 4-D ``(N, C, H, W)`` / ``(C, N, H, W)``, where the shorter
    of the two leading axes (at most :data:`MAX_CHANNELS`) holds the
    channels.  A single image ``(H, W)`` or ``(H, W, 3)`` is accepted with
    ``single_ok`` and refused otherwise, with a message pointing to the
    Labels route.  Raises ``ValueError`` for anything else.
    """
    shape = tuple(int(s) for s in shape)
    spatial = shape[:-1] if rgb else shape
    colors = min(shape[-1], 3) if rgb else 1
    channel_axis = -1 if rgb else None
    if len(spatial) == 2:
        if single_ok:
            return LayerLayout(None, spatial, colors, None, channel_axis)
        raise ValueError(
            f"'{name}' holds a single 2-D image of {spatial[0]}x{spatial[1]} pixels, not a "
            "stack. Choose a stack of images (N, H, W), or pick a Labels layer to cut one "
            "crop per labelled object out of this image."
        )
    if len(spatial) == 3:
        return LayerLayout(spatial[0], spatial[1:], colors, 0, channel_axis)
    if len(spatial) == 4 and not rgb:
        channel_axis = 1 if shape[1] <= shape[0] else 0
        if shape[channel_axis] > MAX_CHANNELS:
            raise ValueError(
                f"'{name}' has shape {shape}: neither of the two leading axes looks like "
                f"channels (at most {MAX_CHANNELS}). Split the layer into one stack per "
                "channel, or keep only the axis that counts the images."
            )
        stack_axis = 1 - channel_axis
        return LayerLayout(shape[stack_axis], shape[2:], shape[channel_axis], stack_axis,
                           channel_axis)
    raise ValueError(
        f"'{name}' has shape {shape}; expected a stack of images (N, H, W), an RGB stack "
        "(N, H, W, 3), or a multichannel stack (N, C, H, W)."
    )


def channels_last(data, rgb: bool = False, *, name: str = "image",
                  single_ok: bool = False) -> tuple[np.ndarray, int | None]:
    """One layer's data as ``(N, H, W, C)`` (or ``(H, W, C)``), and its stack axis.

    See :func:`describe_layout` for the accepted shapes.  The result is a
    view of ``data``; lazy arrays (e.g. dask) are loaded.
    """
    data = np.asarray(data)
    layout = describe_layout(data.shape, rgb, name=name, single_ok=single_ok)
    if rgb:
        return data[..., :3], layout.stack_axis
    if layout.channel_axis is None:
        return data[..., None], layout.stack_axis
    return np.moveaxis(data, layout.channel_axis, -1), layout.stack_axis


def default_channel_layers(shapes, rgb, n_images: int | None = None) -> list[int]:
    """Which of some image layers to use by default, given their shapes and rgb flags.

    The first layer that is a stack (of ``n_images`` images, if given), or
    without a stack the first layer (none when ``n_images`` is given),
    together with the later non-RGB layers of the same shape as its channels
    (the layers napari makes from one multichannel file).
    """
    stacks = []
    for i, (shape, is_rgb) in enumerate(zip(shapes, rgb)):
        try:
            layout = describe_layout(shape, is_rgb)
        except ValueError:
            continue
        if n_images is None or layout.n_images == n_images:
            stacks.append(i)
    if stacks:
        first = stacks[0]
    elif len(shapes) and n_images is None:
        first = 0
    else:
        return []
    if rgb[first]:
        return [first]
    return [first] + [i for i in range(first + 1, len(shapes))
                      if not rgb[i] and tuple(shapes[i]) == tuple(shapes[first])]


def default_inputs(shapes, rgb, labels_shapes) -> tuple[list[int], int | None]:
    """Which image layers, and which Labels layer, to train on by default.

    With a Labels layer that covers the same pixels as some image layers
    (same shape, without the colour axis of RGB layers), the first such
    Labels layer and those image layers (the channels of the objects'
    crops) are chosen: labels are there to be cropped.  Otherwise the
    choice of :func:`default_channel_layers`, without labels.  Returns
    ``(image layer indices, Labels layer index or None)``.
    """
    for index, labels_shape in enumerate(labels_shapes):
        covering = [i for i, (shape, is_rgb) in enumerate(zip(shapes, rgb))
                    if tuple(shape[:-1] if is_rgb else shape) == tuple(labels_shape)]
        if covering:
            first = covering[0]
            if rgb[first]:
                return [first], index
            return [i for i in covering if not rgb[i]], index
    return default_channel_layers(shapes, rgb), None


def stack_layers(
    arrays: Sequence, rgb: Sequence[bool], names: Sequence[str], *, single_ok: bool = False
) -> tuple[np.ndarray, int | None]:
    """Join the data of one or more layers into one channels-last array.

    Several layers are the channels of one stack (their channels are
    concatenated in order), so they must hold the same number of images of
    the same size.  Returns ``(N, H, W, C)`` (or ``(H, W, C)`` for single
    images with ``single_ok``, see :func:`channels_last`) and the axis of the
    first layer's data that counts the images.  One layer gives a view,
    several a copy.
    """
    if len(arrays) == 0:
        raise ValueError("No image layer is selected. Select the layer holding your images.")
    parts = [
        channels_last(a, r, name=n, single_ok=single_ok) for a, r, n in zip(arrays, rgb, names)
    ]
    shapes = {part.shape[:-1] for part, _ in parts}
    if len(shapes) > 1:
        described = ", ".join(f"'{n}' {p.shape[:-1]}" for (p, _), n in zip(parts, names))
        raise ValueError(
            "The selected layers are used as channels of one stack, so they must hold the "
            f"same number of images of the same size; got {described}. Select one layer, "
            "or layers of the same shape."
        )
    stack = parts[0][0] if len(parts) == 1 else np.concatenate([p for p, _ in parts], axis=-1)
    return stack, parts[0][1]


@dataclass
class ObjectCrops:
    """One crop per labelled object, and a table describing the objects.

    Attributes
    ----------
    images : array (N, size, size, C)
        Crops centred on the objects' centroids, in the image's dtype.
    table : DataFrame
        One row per crop: ``label``, ``frame`` (index in a stack, 0 for a
        single image), ``centroid_row``, ``centroid_col``, ``area`` (pixels)
        and ``mean_intensity`` (one column per channel, ``mean_intensity_<c>``
        when there are several channels).
    """

    images: np.ndarray
    table: pd.DataFrame


def crop_objects(image, labels, size: int) -> ObjectCrops:
    """Cut a ``size`` x ``size`` crop centred on every labelled object.

    Parameters
    ----------
    image : array (H, W, C) or (T, H, W, C)
        One image or a stack, channels last (see :func:`stack_layers`).
    labels : int array (H, W) or (T, H, W)
        Objects labelled 1, 2, ...; 0 is background.  A stack of labels
        needs a stack of images of the same length.
    size : int
        Side of the square crops in pixels, at least 8.

    Crops that reach over the image border are padded with each channel's
    median, which is the background in a typical field of cells: zeros would
    draw an artificial dark edge that the network could learn instead of the cell.
    """
    image, labels = np.asarray(image), np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"Labels must be integers, got dtype {labels.dtype}.")
    if int(size) < 8:
        raise ValueError(f"The crop size must be at least 8 pixels, got {size}.")
    size = int(size)
    frames_image = image[None] if image.ndim == 3 else image
    frames_labels = labels[None] if labels.ndim == 2 else labels
    if frames_image.ndim != 4 or frames_labels.ndim != 3 or (
        frames_image.shape[:3] != frames_labels.shape
    ):
        raise ValueError(
            f"The image {image.shape[:-1]} (without channels) and the labels {labels.shape} "
            "must cover the same pixels: one image with 2-D labels, or a stack with a "
            "stack of labels of the same length."
        )
    crops, rows = [], []
    for frame, (frame_image, frame_labels) in enumerate(zip(frames_image, frames_labels)):
        frame_crops, frame_rows = _crop_frame(frame_image, frame_labels, size)
        crops += frame_crops
        rows += [{"frame": frame, **row} for row in frame_rows]
    if not crops:
        raise ValueError(
            "The Labels layer has no objects (all pixels are 0). Label the objects to "
            "crop, or choose another Labels layer."
        )
    table = pd.DataFrame(rows)[["label", "frame", "centroid_row", "centroid_col", "area",
                                *_intensity_columns(image.shape[-1])]]
    return ObjectCrops(np.stack(crops), table)


def _crop_frame(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[list, list[dict]]:
    """Crops and table rows of the objects of one image ``(H, W, C)`` with labels ``(H, W)``."""
    object_ids = np.unique(labels)
    object_ids = object_ids[object_ids > 0]
    if object_ids.size == 0:
        return [], []
    n_channels = image.shape[-1]
    centroids = ndimage.center_of_mass(np.ones(labels.shape), labels, object_ids)
    areas = ndimage.sum_labels(np.ones(labels.shape), labels, object_ids)
    means = np.stack(
        [ndimage.mean(image[..., c], labels, object_ids) for c in range(n_channels)], axis=1
    )
    half = size // 2
    fill = np.median(image.reshape(-1, n_channels), axis=0).astype(image.dtype)
    padded = np.empty((image.shape[0] + size, image.shape[1] + size, n_channels), image.dtype)
    padded[...] = fill
    padded[half : half + image.shape[0], half : half + image.shape[1]] = image
    crops, rows = [], []
    for object_id, (row, col), area, mean in zip(object_ids, centroids, areas, means):
        # The crop spans the rounded centroid ± size/2, which starts at the centroid itself
        # in the padded image (shifted by half).
        top, left = int(round(row)), int(round(col))
        crops.append(padded[top : top + size, left : left + size])
        rows.append({
            "label": int(object_id), "centroid_row": float(row), "centroid_col": float(col),
            "area": int(area), **dict(zip(_intensity_columns(n_channels), map(float, mean))),
        })
    return crops, rows


def count_objects(labels) -> int:
    """How many crops :func:`crop_objects` cuts from ``labels`` (2-D or a stack).

    One per distinct positive label of each frame: a stack that numbers its
    objects anew in every frame has more objects than its largest label.
    """
    labels = np.asarray(labels)
    frames = labels[None] if labels.ndim == 2 else labels
    return sum(int(np.count_nonzero(np.unique(frame) > 0)) for frame in frames)


def _intensity_columns(n_channels: int) -> list[str]:
    if n_channels == 1:
        return ["mean_intensity"]
    return [f"mean_intensity_{c}" for c in range(n_channels)]


def default_crop_size(labels, *, margin: float = 1.25, minimum: int = 16,
                      maximum: int = 256) -> int:
    """A crop size that fits most objects of ``labels`` (2-D or a stack) with a margin.

    The 90th percentile of the objects' bounding-box side times ``margin``,
    rounded up to a multiple of 8 and kept within ``[minimum, maximum]``;
    ``minimum`` when there are no objects.
    """
    labels = np.asarray(labels)
    frames = labels[None] if labels.ndim == 2 else labels
    sides = [
        max(s.stop - s.start for s in box)
        for frame in frames
        for box in ndimage.find_objects(frame)
        if box is not None
    ]
    if not sides:
        return minimum
    side = np.percentile(sides, 90) * margin
    return int(np.clip(8 * np.ceil(side / 8), minimum, maximum))


@dataclass
class TrainingRequest:
    """Layer data to train on (or to place on a map), as the widget collects it.

    Attributes
    ----------
    arrays, rgb, names
        Data, rgb flag and name of each selected image layer (several are
        channels, see :func:`stack_layers`).
    labels : int array or None
        Labels to cut one crop per object from; ``None`` trains on the stack.
    crop_size : int
        Side of the object crops.
    min_images : int
        Fewest images accepted: 2 for training, which contrasts images with
        each other, 1 for placing images on a map.
    """

    arrays: list
    rgb: list
    names: list
    labels: object = None
    crop_size: int = 64
    min_images: int = 2


@dataclass
class TrainingImages:
    """The images of a :class:`TrainingRequest`.

    Attributes
    ----------
    images : array (N, H, W, C)
    table : DataFrame or None
        The objects' measurements for crops (see :class:`ObjectCrops`).
    stack_axis : int or None
        Axis of the first layer's data that counts images (or frames, for crops).
    """

    images: np.ndarray
    table: pd.DataFrame | None
    stack_axis: int | None


def training_images(request: TrainingRequest) -> TrainingImages:
    """Stack the layers, or cut the object crops, of ``request``.

    Raises ``ValueError`` with a message for the user when the input is
    unsuitable: a single image without Labels, layers that do not fit
    together, no objects, or fewer than ``request.min_images`` images.
    """
    with_labels = request.labels is not None
    images, stack_axis = stack_layers(request.arrays, request.rgb, request.names,
                                      single_ok=with_labels)
    table = None
    if with_labels:
        cropped = crop_objects(images, request.labels, request.crop_size)
        images, table = cropped.images, cropped.table
    if len(images) < request.min_images:
        what = "object" if with_labels else "image"
        raise ValueError(
            f"There is only {len(images)} {what} to train on; t-SimCNE needs at least "
            f"{request.min_images}, because it learns by contrasting images with each other. "
            "Choose a stack with more images."
        )
    return TrainingImages(images, table, stack_axis)
