"""Reading image collections from disk and writing embeddings, for the command line.

Accepted inputs of :func:`read_images`
--------------------------------------
* a folder of image files (PNG, JPEG, BMP, GIF read with Pillow; TIFF read
  with tifffile), taken in the order of their file names; each file holds one
  2-D ``(H, W)`` or ``(H, W, C)`` image and sizes may differ;
* a ``.npy`` file holding a stack ``(N, H, W)`` or ``(N, H, W, C)``, opened
  memory-mapped so that large stacks are read in chunks;
* a multi-page TIFF stack ``(N, H, W)`` or ``(N, H, W, C)``;
* an IDX file, the format of MNIST and Fashion-MNIST (``*idx3-ubyte``,
  gzipped or not); for ``*-images-idx3-ubyte[.gz]`` the labels are read from
  the matching ``*-labels-idx1-ubyte[.gz]`` file when it lies in the same folder.
"""

from __future__ import annotations

import csv
import re
from functools import partial
from pathlib import Path

import numpy as np

from .atomic import write_file
from .datasets import read_idx

__all__ = ["ACCEPTED_INPUTS", "IMAGE_SUFFIXES", "read_images", "write_embedding"]

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


def read_images(path, *, return_files: bool = False):
    """Read the image collection at ``path`` (see the module docstring for the forms).

    Parameters
    ----------
    path : str or Path
    return_files : bool, default False
        Also return the file names of a folder's images.

    Returns
    -------
    images : ndarray (N, H, W[, C]) or list of ndarray (H, W[, C])
        A list for a folder (sizes may differ), an array otherwise (memory-mapped
        for ``.npy``).
    labels : ndarray (N,) or None
        The labels of an IDX file with its labels file beside it, else None.
    files : list of str or None
        Only with ``return_files``: file names of a folder's images, else None.

    Raises ``FileNotFoundError`` for a missing path and ``ValueError`` naming
    the path and the accepted forms for anything that cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist. Pass {ACCEPTED_INPUTS}.")
    files = labels = None
    if path.is_dir():
        images, files = _read_folder(path)
    elif path.suffix.lower() == ".npy":
        images = _check_stack(_read_npy(path), path)
    elif path.suffix.lower() in TIFF_SUFFIXES:
        images = _check_stack(_read_tiff(path), path)
    elif _IDX_FILE.search(path.name):
        images = _check_stack(read_idx(path), path)
        labels = _read_idx_labels(path, len(images))
    elif path.suffix.lower() in PILLOW_SUFFIXES:
        raise ValueError(
            f"{path} is a single image, but t-SimCNE maps collections of images: "
            "pass the folder holding them."
        )
    else:
        raise ValueError(f"{path} is not a supported input. Pass {ACCEPTED_INPUTS}.")
    return (images, labels, files) if return_files else (images, labels)


def _read_folder(folder: Path) -> tuple[list[np.ndarray], list[str]]:
    """The folder's images, sorted by file name, and their names; subfolders are ignored."""
    paths = sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not paths:
        raise ValueError(
            f"The folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)}). "
            f"Pass {ACCEPTED_INPUTS}."
        )
    images = [_read_image_file(p) for p in paths]
    channels = [1 if image.ndim == 2 else image.shape[2] for image in images]
    mismatch = next((i for i, c in enumerate(channels) if c != channels[0]), None)
    if mismatch is not None:
        raise ValueError(
            f"{paths[0].name} has {channels[0]} channel(s) but {paths[mismatch].name} has "
            f"{channels[mismatch]}; all images of {folder} must have the same number of channels."
        )
    return images, [p.name for p in paths]


def _read_image_file(path: Path) -> np.ndarray:
    """One image ``(H, W)`` or ``(H, W, C)`` from a PNG/JPEG/... or TIFF file."""
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            image = _read_tiff(path)
        else:
            from PIL import Image

            with Image.open(path) as file:
                image = np.asarray(file.convert("RGB") if file.mode in _PILLOW_MODES_TO_RGB else file)
    except (OSError, ValueError) as error:
        raise ValueError(f"Cannot read the image file {path}: {error}") from None
    if image.ndim not in (2, 3):
        raise ValueError(
            f"{path} holds an array of shape {image.shape}; every file of a folder must "
            "hold one image (H, W) or (H, W, C). Put stacks in their own TIFF or .npy file."
        )
    return image


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npy array file: {error}") from None


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        try:
            # Uncompressed, contiguous stacks open as a memory map: pages are read
            # as training needs them, so stacks larger than memory work.
            return tifffile.memmap(path, mode="r")
        except ValueError:  # compressed or tiled: not memory-mappable
            return tifffile.imread(path)
    except (OSError, ValueError) as error:  # tifffile.TiffFileError is a ValueError
        raise ValueError(f"{path} is not a readable TIFF file: {error}") from None


def _check_stack(images: np.ndarray, path: Path) -> np.ndarray:
    """Refuse anything but a stack ``(N, H, W)`` or ``(N, H, W, C)``, naming the path."""
    if images.ndim not in (3, 4):
        what = "a single 2-D image" if images.ndim == 2 else f"an array of {images.ndim} dimension(s)"
        raise ValueError(
            f"{path} holds {what} of shape {images.shape}, not a stack of images "
            f"(N, H, W) or (N, H, W, C). Pass {ACCEPTED_INPUTS}."
        )
    return images


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


def _write_csv(file, embedding: np.ndarray, columns: dict) -> None:
    dims = ["x", "y"] if embedding.shape[1] == 2 else [f"dim{i}" for i in range(embedding.shape[1])]
    writer = csv.writer(file)
    writer.writerow(["index", *dims, *columns])
    for index, point in enumerate(embedding):
        # 9 significant digits restore a float32 exactly.
        coordinates = [f"{value:.9g}" for value in point]
        writer.writerow([index, *coordinates, *(values[index] for values in columns.values())])
