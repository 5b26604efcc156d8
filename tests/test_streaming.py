"""Training and ``transform`` on data read batch by batch (memory maps, lazy arrays)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import make_class_images

from napari_tsimcne import data, devices
from napari_tsimcne.data import (
    DeviceImages, StreamedImages, as_image_stack, fit_intensity_range, to_uint8_tensor,
)


class RecordingArray:
    """A lazily read array (like zarr or h5py) that records how many images each read returns."""

    def __init__(self, array):
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.reads = []

    def __getitem__(self, key):
        images = self.array[key]
        self.reads.append(1 if np.ndim(images) == self.array.ndim - 1 else len(images))
        return images


@pytest.fixture
def stack16(images):
    stack = as_image_stack(images.astype(np.uint16) * 200)
    return stack, fit_intensity_range(stack)


def test_streamed_batches_equal_the_in_memory_batches_in_the_requested_order(stack16):
    stack, intensity_range = stack16
    in_memory = DeviceImages(to_uint8_tensor(stack, intensity_range, (16, 16)))
    streamed = StreamedImages(stack, intensity_range, (16, 16), torch.device("cpu"))
    index_batches = [torch.tensor([5, 0, 63, 17]), torch.tensor([9, 8, 7])]
    for got, expected in zip(streamed.select(index_batches), in_memory.select(index_batches),
                             strict=True):
        assert torch.equal(got, expected)
    assert [len(c) for c in streamed.chunks(30)] == [30, 30, 4]
    assert torch.equal(torch.cat(list(streamed.chunks(30))), in_memory.tensor)


@pytest.mark.slow
def test_streamed_training_gives_the_same_map_as_in_memory_training(images, make_estimator):
    in_memory = make_estimator(stream=False).fit_transform(images)
    streamed = make_estimator(stream=True).fit_transform(images)
    np.testing.assert_array_equal(streamed, in_memory)


@pytest.mark.slow
def test_a_lazy_array_is_read_a_batch_at_a_time_and_never_whole(make_estimator, monkeypatch):
    monkeypatch.setattr(data, "CHUNK_SIZE", 100)
    lazy = RecordingArray(make_class_images(600)[0])
    estimator = make_estimator(stream=True, epochs=(1, 0, 1)).fit(lazy)
    # Batches of 16, chunks of 100, and forward-only batches of 256 for the embedding.
    assert lazy.reads and max(lazy.reads) == 256
    lazy.reads.clear()
    placed = estimator.transform(lazy)
    assert placed.shape == (600, 2) and max(lazy.reads) <= 256
    np.testing.assert_allclose(placed, estimator.embedding_, rtol=1e-5, atol=1e-5)


def test_stream_auto_streams_when_the_uint8_copy_would_not_fit(images, make_estimator, monkeypatch):
    chosen = []
    real = StreamedImages.__init__

    def record(self, *args, **kwargs):
        chosen.append("streamed")
        real(self, *args, **kwargs)

    monkeypatch.setattr(StreamedImages, "__init__", record)
    # The share of the free memory the copy may take (the rest is training's).
    free = devices.free_memory(torch.device("cpu"))
    monkeypatch.setattr(data, "DEVICE_MEMORY_SHARE", 10 * images.size / free)
    make_estimator(epochs=(1, 0, 1)).fit(images)
    assert chosen == []
    monkeypatch.setattr(data, "DEVICE_MEMORY_SHARE", images.size / 10 / free)
    make_estimator(epochs=(1, 0, 1)).fit(images)
    assert chosen == ["streamed"]


def test_bad_stream_value_is_refused(images, make_estimator):
    with pytest.raises(ValueError, match="stream must be"):
        make_estimator(stream="yes").fit(images)


@pytest.mark.slow
def test_a_memory_map_larger_than_the_memory_limit_as_float32_trains(tmp_path):
    """A 131 MB uint16 memory map (262 MB as float32) under a 180 MB data-memory limit."""
    path = tmp_path / "stack.npy"
    stack = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(16000, 64, 64))
    for start in range(0, len(stack), 1000):
        stack[start : start + 1000] = np.random.default_rng(start).integers(
            0, 4096, (1000, 64, 64), dtype=np.uint16)
    stack.flush()
    del stack
    script = textwrap.dedent(f"""
        import resource
        import numpy as np
        import torch
        from napari_tsimcne import TSimCNE
        torch.set_num_threads(1)
        images = np.load({str(path)!r}, mmap_mode="r")
        estimator = TSimCNE(epochs=(1,), batch_size=256, backbone="resnet10-w8",
                            hidden_dim=32, image_size=16, device="cpu", random_state=0,
                            stream=True)
        estimator.fit(images[:512])  # warm up allocations before the limit is set
        with open("/proc/self/status") as status:
            data_kib = next(int(l.split()[1]) for l in status if l.startswith("VmData"))
        limit = data_kib * 1024 + 180 * 2**20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        try:
            np.asarray(images, dtype=np.float32)
        except MemoryError:
            print("float32 copy does not fit")
        embedding = estimator.fit_transform(images)
        placed = estimator.transform(images[-1000:])
        assert np.isfinite(embedding).all() and embedding.shape == (16000, 2)
        np.testing.assert_allclose(placed, embedding[-1000:], rtol=1e-4, atol=1e-4)
        print("trained")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["float32", "copy", "does", "not", "fit", "trained"]


def test_streamed_training_names_the_users_image_with_nan(make_estimator):
    images = make_class_images(1100)[0].astype(np.float32)
    images[1050, 3, 3] = np.nan  # in the second chunk of 1024 images
    for stream in (False, True):
        with pytest.raises(ValueError, match="Image 1050 of X contains NaN"):
            make_estimator(stream=stream).fit(images)
