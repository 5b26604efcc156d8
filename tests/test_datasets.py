"""Bundled digits, the IDX reader and Fashion-MNIST."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from napari_tsimcne.datasets import FASHION_MNIST_DIR, load_digits_images, load_fashion_mnist
from napari_tsimcne.files import read_idx

IDX_TYPE_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
                  np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array):
    """The IDX encoding of ``array``: magic, big-endian dimensions, big-endian data."""
    array = np.asarray(array)
    big_endian = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    header = bytes([0, 0, IDX_TYPE_CODES[big_endian.dtype], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + big_endian.tobytes()


def write_idx(path, array):
    data = idx_bytes(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as file:
            file.write(data)
    else:
        path.write_bytes(data)
    return path


def test_digits_are_uint8_images_over_the_full_range():
    images, labels = load_digits_images()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert set(labels) == set(range(10))


ARRAYS = {
    "uint8 images": np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8),
    "uint8 labels": np.arange(7, dtype=np.uint8),
    "int32 matrix": np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 1000,
    "float32 volume": np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4),
}


@pytest.mark.parametrize("suffix", [".gz", ""], ids=["gzip", "plain"])
@pytest.mark.parametrize("array", ARRAYS.values(), ids=ARRAYS.keys())
def test_read_idx_returns_the_written_array(tmp_path, array, suffix):
    result = read_idx(write_idx(tmp_path / f"data-idx{suffix}", array))
    np.testing.assert_array_equal(result, array)
    assert result.dtype == array.dtype and result.dtype.isnative


BAD_IDX = {
    "truncated data": (lambda: idx_bytes(np.zeros((3, 4, 4), np.uint8))[:-5],
                       r"truncated: its header announces shape \(3, 4, 4\)"),
    "extra data": (lambda: idx_bytes(np.zeros((3, 4, 4), np.uint8)) + b"\0",
                   "header announces shape"),
    "too short for a header": (lambda: b"\0\0", "not an IDX file"),
    "wrong magic": (lambda: b"PK\3\4" + bytes(100), "not an IDX file"),
    "unknown type code": (lambda: bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "not an IDX file"),
}


@pytest.mark.parametrize("suffix", [".gz", ""], ids=["gzip", "plain"])
@pytest.mark.parametrize("make_bytes, message", BAD_IDX.values(), ids=BAD_IDX.keys())
def test_read_idx_rejects_files_that_are_not_complete_idx_files(tmp_path, make_bytes, message,
                                                                 suffix):
    path = tmp_path / f"bad-idx{suffix}"
    data = make_bytes()
    if suffix:
        with gzip.open(path, "wb") as file:
            file.write(data)
    else:
        path.write_bytes(data)
    with pytest.raises(ValueError, match=message):
        read_idx(path)


def test_read_idx_rejects_a_damaged_gzip_file(tmp_path):
    path = write_idx(tmp_path / "images-idx3-ubyte.gz", np.zeros((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ValueError, match="Cannot read IDX file"):
        read_idx(path)


def test_fashion_mnist_missing_folder_suggests_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test", folder=tmp_path / "nowhere")


def test_fashion_mnist_rejects_unknown_split():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_fashion_mnist("validation")


@pytest.mark.parametrize("split, prefix", [("train", "train"), ("test", "t10k")])
def test_fashion_mnist_reads_the_standard_files_of_a_folder(tmp_path, split, prefix):
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1, 2], np.uint8)
    write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
    loaded_images, loaded_labels = load_fashion_mnist(split, folder=tmp_path)
    np.testing.assert_array_equal(loaded_images, images)
    np.testing.assert_array_equal(loaded_labels, labels)
    assert loaded_labels.dtype == np.int64


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(),
                    reason=f"Debian's dataset-fashion-mnist is not installed ({FASHION_MNIST_DIR})")
def test_fashion_mnist_test_split_from_the_debian_package():
    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == [1000] * 10
    assert images.max() == 255
