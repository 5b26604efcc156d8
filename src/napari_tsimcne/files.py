"""Files: reading image collections from disk, reading and writing map tables.

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
import gzip
import math
import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .atomic import write_file
from .axes import Layout, image_layout, layout_of, tiff_axes

__all__ = ["ACCEPTED_INPUTS", "IMAGE_SUFFIXES", "Collection", "embedding_file_size",
           "looks_like_map_csv", "read_idx", "read_images", "read_map_csv", "write_embedding",
           "write_map_csv"]

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
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"Cannot read IDX file {path}: {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (the MNIST format): bad magic number.")
    n_dims = data[3]
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    if len(data) - header != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{path} is truncated: its header announces shape {shape}.")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


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
        ``*.csv``: a map table (:func:`write_map_csv`) with the columns
        ``label`` and ``file`` when given.  ``*.npz``: arrays ``embedding``
        and, when given, ``labels`` and ``files``; it opens without
        ``allow_pickle``.
    embedding : array (N, d)
    labels : array (N,), optional
    files : sequence of N str, optional

    Returns the path written.
    """
    path = Path(path)
    columns = {}
    if labels is not None:
        columns["label"] = np.asarray(labels)
    if files is not None:
        columns["file"] = np.asarray(files, dtype=str)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return write_map_csv(path, embedding, columns)
    if suffix == ".npz":
        embedding = np.asarray(embedding)
        _check_lengths(columns, len(embedding))
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


# ---------------------------------------------------------------------- map tables
# The map table is the one CSV format of the project: the command line writes
# it, the napari plugin reads and writes it.  It is read and written with the
# csv module so that the core needs no pandas.

def write_map_csv(path, embedding, columns: Mapping | None = None, index=None) -> Path:
    """Write a map table: one row per image, columns ``index``, ``x``, ``y``, then ``columns``.

    Parameters
    ----------
    path : str or Path
    embedding : array (N, d)
        Coordinates; columns ``x, y`` when ``d == 2``, else ``dim0, dim1, ...``.
        Floats are written with 9 significant digits, which restore a float32
        exactly.
    columns : mapping of name to array (N,), optional
        Further per-image columns (labels, file names, features); names
        ``index``, ``x`` and ``y`` are taken by the table itself.
    index : array (N,) of int, optional
        Image numbers; default ``0 .. N-1``.

    Written whole or not at all (:func:`napari_tsimcne.atomic.write_file`).
    Returns the path written.
    """
    embedding = np.asarray(embedding)
    if embedding.ndim != 2:
        raise ValueError(f"An embedding has shape (N, d), not {embedding.shape}.")
    index = np.arange(len(embedding)) if index is None else np.asarray(index)
    dims = ["x", "y"] if embedding.shape[1] == 2 else [f"dim{i}" for i in range(embedding.shape[1])]
    columns = {name: np.asarray(values) for name, values in (columns or {}).items()
               if name not in ("index", *dims)}
    _check_lengths({"index": index, **columns}, len(embedding))

    def write(file) -> None:
        writer = csv.writer(file)
        writer.writerow(["index", *dims, *columns])
        for row, point in enumerate(embedding):
            writer.writerow([index[row], *(_csv_value(v) for v in point),
                             *(_csv_value(values[row]) for values in columns.values())])

    return write_file(path, write, text=True)


def read_map_csv(path) -> dict[str, np.ndarray]:
    """Read a map table written by :func:`write_map_csv` or by hand.

    Returns the columns by name, ``index``, ``x`` and ``y`` first (``index``
    numbered 0, 1, ... where the file has none), each an array of int, float,
    bool or str, the narrowest that holds all of its values (empty cells of a
    number column are NaN).  Raises ``ValueError`` naming the file when it is
    not a CSV table with ``x`` and ``y`` columns.
    """
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a map table: it is not a text (CSV) file.") from None
    header = rows[0] if rows else []
    missing = sorted({"x", "y"} - set(header))
    if missing:
        raise ValueError(
            f"{path} is not a map table: it has no column(s) {missing}. A map "
            "table has one row per image with the columns index, x, y and any features."
        )
    body = rows[1:]
    short = next((n for n, row in enumerate(body, start=2) if len(row) != len(header)), None)
    if short is not None:
        raise ValueError(
            f"{path} is not a map table: line {short} has a different number of cells "
            f"than the header's {len(header)}."
        )
    columns = {name: _parse_column([row[i] for row in body]) for i, name in enumerate(header)}
    if "index" not in columns:
        columns["index"] = np.arange(len(body))
    front = ["index", "x", "y"]
    for name in ("x", "y"):
        if columns[name].dtype.kind not in "iuf":
            raise ValueError(f"{path} is not a map table: its column {name} holds text.")
        columns[name] = columns[name].astype(np.float64)
    return {name: columns[name] for name in front + [c for c in header if c not in front]}


def looks_like_map_csv(path) -> bool:
    """Whether ``path`` is a text file whose first line names the columns ``x`` and ``y``.

    Reads only that line: for a reader that is asked about every CSV file.
    """
    try:
        with open(path, newline="", encoding="utf-8") as file:
            header = next(csv.reader(file), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return {"x", "y"} <= set(header)


def _csv_value(value):
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else f"{value:.9g}"
    return value


def _parse_column(cells: list[str]) -> np.ndarray:
    """The narrowest array for a CSV column's cells: bool, int, float or str."""
    if cells and all(cell in ("True", "False") for cell in cells):
        return np.array([cell == "True" for cell in cells])
    for kind in (np.int64, np.float64):
        try:
            return np.array([float("nan") if cell == "" else kind(cell) for cell in cells],
                            dtype=kind)
        except (ValueError, OverflowError):
            continue
    return np.array(cells, dtype=object)


def _check_lengths(columns: Mapping, n_points: int) -> None:
    for name, values in columns.items():
        if len(values) != n_points:
            raise ValueError(f"{len(values)} values of {name!r} given for {n_points} embedded images.")
