"""Shared tiny data and estimator configurations for the core test suite.

Everything is sized for a couple of CPU cores: 16x16 images, a ResNet-10 with
8 channels in its first stage, a 64-wide projection head and single epochs.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_tsimcne import TSimCNE

# The tiny networks of the tests gain nothing from intra-op threads, and on a
# busy machine OpenMP's thread synchronisation makes each layer hundreds of
# times slower than a single thread.
torch.set_num_threads(1)

#: Parameters of a TSimCNE that trains in well under a second on a CPU.
FAST_PARAMS = dict(
    backbone="resnet10-w8",
    epochs=(1, 1, 1),
    batch_size=16,
    hidden_dim=64,
    random_state=0,
    device="cpu",
    # The bit-exact tests then mean the same on every CPU ("auto" is bf16 on
    # CPUs with AVX-512 BF16 or AMX, float32 elsewhere).
    precision="fp32",
)

N_IMAGES = 64


def unrevised_plan(stages, *args):
    """A ``revise_plan`` that keeps every plan, for tests whose fixed costs are not the clock's."""
    return tuple(stage.epochs for stage in stages)

IMAGE_SIDE = 16
N_CLASSES = 4


def make_class_images(n_images=N_IMAGES, side=IMAGE_SIDE, seed=0):
    """Seeded uint8 images ``(n, side, side)`` of four visually distinct classes.

    Class 0: horizontal stripes, 1: vertical stripes, 2: a bright centred
    square on black, 3: a checkerboard; each image gets its own noise and
    brightness so that no two images are identical.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:side, :side]
    patterns = np.stack([
        (rows // 2) % 2,
        (cols // 2) % 2,
        (abs(rows - side / 2 + 0.5) < side / 4) & (abs(cols - side / 2 + 0.5) < side / 4),
        ((rows // 4) + (cols // 4)) % 2,
    ]).astype(np.float64)
    labels = np.arange(n_images) % N_CLASSES
    brightness = rng.uniform(150, 230, size=(n_images, 1, 1))
    noise = rng.normal(0, 12, size=(n_images, side, side))
    images = patterns[labels] * brightness + 20 + noise
    return np.clip(np.round(images), 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="session")
def images():
    """64 uint8 images ``(64, 16, 16)`` of 4 classes."""
    return make_class_images()[0]


@pytest.fixture(scope="session")
def labels():
    """Class of each image of :func:`images`."""
    return make_class_images()[1]


@pytest.fixture(scope="module")
def small_network_and_images():
    """A pre-training network (resnet10-w8, 128-D output) and 96 images of 16 x 16 as DeviceImages."""
    from napari_tsimcne.data import DeviceImages
    from napari_tsimcne.network import TSimCNENetwork

    torch.manual_seed(0)
    images = torch.from_numpy(make_class_images(96)[0][:, None].copy())
    network = TSimCNENetwork("resnet10-w8", in_channels=1, out_dim=128, hidden_dim=32)
    return network, DeviceImages(images)


@pytest.fixture
def make_estimator():
    """Factory of fast estimators: ``make_estimator(**overrides)``."""

    def make(**overrides):
        return TSimCNE(**{**FAST_PARAMS, **overrides})

    return make


@pytest.fixture(scope="session")
def fitted(images):
    """A TSimCNE trained through all three stages on :func:`images`.

    Shared by many tests: tests must not modify it (use ``sklearn.base.clone``
    or ``pickle`` for a private copy).
    """
    return TSimCNE(**FAST_PARAMS).fit(images)


@pytest.fixture(autouse=True)
def _restore_torch_seed():
    """Keep tests that seed torch's global generator from affecting each other."""
    state = torch.random.get_rng_state()
    yield
    torch.random.set_rng_state(state)


@pytest.fixture
def small_disk(tmp_path):
    """Factory of real, small file systems: ``small_disk(n_bytes, read_only=False)``.

    Mounts a tmpfs of ``n_bytes`` on a new folder under ``tmp_path`` and
    returns the folder; unmounted after the test.  Skips the test where this
    process may not mount one (it needs Linux and root).
    """
    mounted = []

    def mount(n_bytes: int, read_only: bool = False):
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        options = f"size={n_bytes}" + (",ro" if read_only else "")
        try:
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                    capture_output=True, text=True, timeout=30)
        except OSError as error:
            result = subprocess.CompletedProcess([], 1, "", str(error))
        if result.returncode != 0 or not sys.platform.startswith("linux"):
            pytest.skip("this test needs a real full disk, a small tmpfs, which this process "
                        f"cannot mount: {result.stderr.strip() or 'not Linux'}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)


def fill_disk(folder, leave: int) -> None:
    """Fill the disk of ``folder`` with a ballast file until ``leave`` bytes are free."""
    size = shutil.disk_usage(folder).free - leave
    with open(folder / "ballast", "wb") as ballast:
        ballast.write(bytes(max(size, 0)))


def disk_full_after(n_bytes: int, real_save=torch.save):
    """A ``torch.save`` whose file refuses every byte after the first ``n_bytes``.

    The real ``torch.save`` runs, so a test sees what torch makes of a full
    disk: the ``RuntimeError`` of its archive writer, not an ``OSError``.
    Every error torch raises is recorded in the returned function's ``errors``.
    """
    class FullDisk:
        def __init__(self, file):
            self.file, self.written = file, 0

        def write(self, data):
            if self.written + len(data) > n_bytes:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
            return self.file.write(data)

    def save(obj, file, *args, **kwargs):
        try:
            return real_save(obj, FullDisk(file), *args, **kwargs)
        except Exception as error:
            save.errors.append(error)
            raise

    save.errors = []
    return save
