"""Image collections that need no download, for the demo, tests and benchmarks.

* :func:`load_digits_images`: scikit-learn's bundled handwritten digits
  (1,797 images, 8x8, 10 classes), the command line's default demo dataset.
* :func:`load_fashion_mnist`: Fashion-MNIST (70,000 images, 28x28, 10 classes)
  from the IDX files of Debian's ``dataset-fashion-mnist`` package or any
  folder holding the four standard files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import read_idx

__all__ = ["FASHION_MNIST_DIR", "load_digits_images", "load_fashion_mnist"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 images ``(1797, 8, 8)`` in 0-255 and labels ``(1797,)``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def load_fashion_mnist(split: str = "train", folder=None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images ``(N, 28, 28)`` uint8 and labels ``(N,)``.

    ``split`` is ``"train"`` (60,000 images) or ``"test"`` (10,000).  ``folder``
    defaults to Debian's install location, :data:`FASHION_MNIST_DIR`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    folder = Path(folder) if folder is not None else FASHION_MNIST_DIR
    prefix = "train" if split == "train" else "t10k"
    paths = [folder / f"{prefix}-{kind}-idx{n}-ubyte.gz" for kind, n in (("images", 3), ("labels", 1))]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found ({missing[0]}). Install it with "
            "`apt-get install dataset-fashion-mnist` or pass the folder holding the IDX files."
        )
    return read_idx(paths[0]), read_idx(paths[1]).astype(np.int64)
