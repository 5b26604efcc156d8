"""Reading image collections from disk and writing embeddings, for the command line.

Accepted inputs of :func:`read_images`
--------------------------------------
* a folder of image files (PNG, JPEG, BMP, GIF read with Pillow; TIFF read
  with tifffile), taken in the order of their file names; each file holds one
  2-D ``(H, W)`` or ``(H, W, C)`` image and sizes may differ, but not bit
  depths (8-bit and 16-bit files are refused together, see
  :mod:`napari_tsimcne.data`);
* a ``.npy`` file holding a stack ``(N, H, W)`` or ``(N, H, W, C)``, opened
  memory-mapped so that large stacks are read in chunks;
* a multi-page TIFF stack ``(N, H, W)`` or ``(N, H, W, C)``;
* an IDX file, the format of MNIST and Fashion-MNIST (``*idx3-ubyte``,
  gzipped or not); for ``*-images-idx3-ubyte[.gz]`` the labels are read from
  the matching ``*-labels-idx1-ubyte[.gz]`` file when it lies in the same folder.

Stacks in other layouts (channels first, time points and planes) are read
as ``axes`` says (see :mod:`napari_tsimcne.axes`): the command line's
``--axes``, else the axes a TIFF file records where tifffile can read them
(``TiffFile.series[0].axes``), else the shape where it leaves no doubt.  A
folder's ``axes`` are those of each file, e.g. ``CYX`` for channels first.
"""

from __future__ import annotations

import csv
import re
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .atomic import write_file
from .axes import Layout, image_layout, layout_of, tiff_axes
from .datasets import read_idx

__all__ = ["ACCEPTED_INPUTS", "IMAGE_SUFFIXES", "Collection", "embedding_file_size",
           "read_images", "write_embedding"]

PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = PILLOW_SUFFIXES + TIFF_SUFFIXES
ACCEPTED_INPUTS = (
    "a folder of image files (PNG, JPEG, TIFF, ...), a .npy stack (N, H, W[, C]), "
    "a TIFF stack or an MNIST-style IDX file (*-images-idx3-ubyte[.gz])"
)

_IDX_FILE = re.compile(r"idx\d-ubyte(?:\.gz)?$")
_IDX_IMAGES = re.compile(r"^(?P<prefix>.*)images(?P<separator>[-.])idx3-ubyte(?:\.gz)?$")
# Pillow modes whose pixel values are not intensities (palette indices, other
# colour spaces) are converted to RGB; all other modes are kept as stored.
_PILLOW_MODES_TO_RGB = ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV")


class Collection(NamedTuple):
    """The images :func:`read_images` read, and what it knows about them.

    Attributes
    ----------
    images : ndarray or list of ndarray (H, W[, C])
        An array as stored (memory-mapped for ``.npy``), whose layout is
        ``axes``; a list for a folder (sizes may differ).
    labels : ndarray (N,) or None
        The labels of an IDX file with its labels file beside it, else None.
    files : list of str or None
        File names of a folder's images, else None.
    axes : str
        Layout of an array ``images`` (``"NYX"``, ``"NYXC"``, ``"TZYX"``, ...),
        for :class:`~napari_tsimcne.TSimCNE`'s ``axes``; ``"auto"`` for a
        folder, whose images are each ``(H, W[, C])``.
    note : str or None
        How the array was read, when its layout came from elsewhere than
        ``--axes`` and is not a plain stack, e.g. from the TIFF's metadata.
    """

    images: object
    labels: np.ndarray | None = None
    files: list[str] | None = None
    axes: str = "auto"
    note: str | None = None

    @property
    def n_images(self) -> int:
        if isinstance(self.images, list):
            return len(self.images)
        return Layout(self.axes, tuple(self.images.shape)).n_images


def read_images(path, *, axes: str | None = None, fallback_axes: str | None = None
                ) -> Collection:
    """Read the image collection at ``path`` (see the module docstring for the forms).

    Parameters
    ----------
    path : str or Path
    axes : str or None
        The layout (``--axes``): of the stack in a file, or of each file of a
        folder (C, Y and X only).  None: from the TIFF metadata, else the shape.
    fallback_axes : str or None
        Layout of a stack whose shape leaves it open and whose file records
        none, such as the layout a model was trained on; used where it names
        as many axes as the stack has.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` naming
    the path and what to pass for anything that cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist. Pass {ACCEPTED_INPUTS}.")
    labels = None
    if path.is_dir():
        return Collection(*_read_folder(path, axes))
    if path.suffix.lower() == ".npy":
        images, codes = _read_npy(path), None
    elif path.suffix.lower() in TIFF_SUFFIXES:
        images, codes = _read_tiff(path)
    elif _IDX_FILE.search(path.name):
        images, codes = read_idx(path), None
        labels = _read_idx_labels(path, len(images))
    elif path.suffix.lower() in PILLOW_SUFFIXES:
        raise ValueError(
            f"{path} is a single image, but t-SimCNE maps collections of images: "
            "pass the folder holding them."
        )
    else:
        raise ValueError(f"{path} is not a supported input. Pass {ACCEPTED_INPUTS}.")
    layout, note = _stack_layout(images.shape, path, axes, codes, fallback_axes)
    return Collection(images, labels, None, layout.axes, note)


def _stack_layout(shape, path: Path, axes, codes, fallback_axes) -> tuple[Layout, str | None]:
    """The layout of the stack in ``path`` and a note on where it came from (see read_images)."""
    if len(shape) < 3 and axes is None:
        what = "a single 2-D image" if len(shape) == 2 else f"an array of {len(shape)} dimension(s)"
        raise ValueError(
            f"{path} holds {what} of shape {tuple(shape)}, not a stack of images "
            f"(N, H, W) or (N, H, W, C). Pass {ACCEPTED_INPUTS}."
        )
    if axes is not None:
        return layout_of(shape, axes, what=str(path), option="--axes"), None
    recorded = tiff_axes(codes, shape) if codes else None
    if recorded is not None:
        layout = Layout(recorded, tuple(shape))
        return layout, _layout_note(layout, path, f"its TIFF metadata ({codes})")
    try:
        return layout_of(shape, what=str(path), option="--axes"), None
    except ValueError:
        if fallback_axes is None or len(fallback_axes) != len(shape):
            raise
    layout = layout_of(shape, fallback_axes, what=str(path), option="--axes")
    return layout, _layout_note(layout, path, "the layout the model was trained on")


def _layout_note(layout: Layout, path: Path, source: str) -> str | None:
    """What a reader should know about a layout taken from ``source``: None for a plain stack."""
    if layout.axes in ("NYX", "NYXC"):
        return None
    return (f"Reading {path.name} as {layout.axes}, from {source}: {layout.describe()}. "
            "Pass --axes to read it otherwise (C names the channel axis; N, T, Z axes of images).")


def _read_folder(folder: Path, axes) -> tuple[list[np.ndarray], None, list[str]]:
    """The folder's images ``(H, W[, C])`` sorted by file name, no labels, and the file names.

    Subfolders are ignored; ``axes`` is the layout of every file (see read_images).
    """
    from .data import check_one_scale  # imports torch: not for --help
    paths = sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not paths:
        raise ValueError(
            f"The folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)}). "
            f"Pass {ACCEPTED_INPUTS}."
        )
    images = [_read_image_file(p, axes) for p in paths]
    check_one_scale([image.dtype for image in images], [p.name for p in paths],
                    f"The files of {folder}", "Save them with one bit depth, scaled as they "
                    "should compare, or map each bit depth on its own.")
    channels = [1 if image.ndim == 2 else image.shape[2] for image in images]
    mismatch = next((i for i, c in enumerate(channels) if c != channels[0]), None)
    if mismatch is not None:
        raise ValueError(
            f"{paths[0].name} has {channels[0]} channel(s) but {paths[mismatch].name} has "
            f"{channels[mismatch]}; all images of {folder} must have the same number of channels."
        )
    return images, None, [p.name for p in paths]


def _read_image_file(path: Path, axes) -> np.ndarray:
    """One image ``(H, W)`` or ``(H, W, C)`` from a PNG/JPEG/... or TIFF file.

    ``axes``: the file's layout (C, Y and X); None: its TIFF metadata, else (H, W[, C]).
    """
    codes = None
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            image, codes = _read_tiff(path)
        else:
            from PIL import Image

            with Image.open(path) as file:
                image = np.asarray(file.convert("RGB") if file.mode in _PILLOW_MODES_TO_RGB else file)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read the image file {path}: {error}") from None
    if axes is None and codes:
        axes = tiff_axes(codes, image.shape, stack=False)
    if axes is None and image.ndim not in (2, 3):
        raise ValueError(
            f"{path} holds an array of shape {image.shape}; every file of a folder must "
            "hold one image (H, W) or (H, W, C). Put stacks in their own TIFF or .npy file."
        )
    layout = image_layout(image.shape, axes or "auto", what=str(path), option="--axes")
    return np.transpose(image, layout.order)


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npy array file: {error}") from None


def _read_tiff(path: Path) -> tuple[np.ndarray, str]:
    """The first series of a TIFF file and its axis codes (``"QYX"``, ``"TZCYX"``, ...)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as file:
            codes = file.series[0].axes
        try:
            # Uncompressed, contiguous stacks open as a memory map: pages are read
            # as training needs them, so stacks larger than memory work.
            return tifffile.memmap(path, mode="r"), codes
        except ValueError:  # compressed or tiled: not memory-mappable
            return tifffile.imread(path), codes
    except (OSError, ValueError) as error:  # tifffile.TiffFileError is a ValueError
        raise ValueError(f"{path} is not a readable TIFF file: {error}") from None


def _read_idx_labels(images_path: Path, n_images: int) -> np.ndarray | None:
    """Labels ``(n_images,)`` from the labels IDX file beside ``images_path``, or None."""
    match = _IDX_IMAGES.match(images_path.name)
    if match is None:
        return None
    stem = f"{match['prefix']}labels{match['separator']}idx1-ubyte"
    for candidate in (images_path.with_name(stem + ".gz"), images_path.with_name(stem)):
        if candidate.is_file():
            labels = read_idx(candidate)
            if labels.shape != (n_images,):
                raise ValueError(
                    f"The labels file {candidate} holds shape {labels.shape}, but "
                    f"{images_path} holds {n_images} images. Move or rename the labels file."
                )
            return labels.astype(np.int64)
    return None


def write_embedding(path, embedding, labels=None, files=None) -> Path:
    """Write an embedding as CSV or NPZ, chosen by the suffix of ``path``.

    Parameters
    ----------
    path : str or Path
        ``*.csv``: columns ``index, x, y`` (``dim0, dim1, ...`` unless 2-D), then
        ``label`` and ``file`` when given.  ``*.npz``: arrays ``embedding`` and,
        when given, ``labels`` and ``files``; it opens without ``allow_pickle``.
    embedding : array (N, d)
    labels : array (N,), optional
    files : sequence of N str, optional

    Returns the path written.
    """
    path = Path(path)
    embedding = np.asarray(embedding)
    columns = {}
    if labels is not None:
        columns["label"] = np.asarray(labels)
    if files is not None:
        columns["file"] = np.asarray(files, dtype=str)
    for name, values in columns.items():
        if len(values) != len(embedding):
            raise ValueError(f"{len(values)} {name}s given for {len(embedding)} embedded images.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return write_file(path, partial(_write_csv, embedding=embedding, columns=columns),
                          text=True)
    if suffix == ".npz":
        arrays = {f"{name}s": values for name, values in columns.items()}
        return write_file(path, partial(np.savez, embedding=embedding, **arrays))
    raise ValueError(f"Cannot write an embedding to {path}: use a .csv or .npz file name.")


def embedding_file_size(path, n_points: int, labels=None, files=None) -> int:
    """About the most bytes :func:`write_embedding` writes to ``path`` (its suffix
    chooses the format) for a float32 2-D embedding: for checking the free space
    before the embedding is computed."""
    if Path(path).suffix.lower() == ".npz":
        size = n_points * 2 * 4 + 4096  # the coordinates, zip and npy headers
        if labels is not None:
            size += np.asarray(labels).nbytes
        if files is not None:
            size += np.asarray(files, dtype=str).nbytes
        return size
    # A row: the index, coordinates of at most 15 characters ("-1.23456789e-05"),
    # the label, the file name quoted, commas and "\r\n".
    extra = [max((len(str(v).encode()) for v in values), default=0) + 3
             for values in (labels, files) if values is not None]
    return 256 + n_points * (len(str(n_points)) + 2 * 16 + sum(extra) + 2)


def _write_csv(file, embedding: np.ndarray, columns: dict) -> None:
    dims = ["x", "y"] if embedding.shape[1] == 2 else [f"dim{i}" for i in range(embedding.shape[1])]
    writer = csv.writer(file)
    writer.writerow(["index", *dims, *columns])
    for index, point in enumerate(embedding):
        # 9 significant digits restore a float32 exactly.
        coordinates = [f"{value:.9g}" for value in point]
        writer.writerow([index, *coordinates, *(values[index] for values in columns.values())])
