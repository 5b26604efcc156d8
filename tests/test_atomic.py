"""Files written whole or not at all, alone and as a set, by every writer of the package."""

from __future__ import annotations

import errno
import os

import numpy as np
import pandas as pd
import pytest
from conftest import fill_disk

from napari_tsimcne import atomic
from napari_tsimcne.atomic import together, write_file
from napari_tsimcne.cli import _write_summary
from napari_tsimcne.files import write_embedding
from napari_tsimcne.plotting import plot_embedding
from napari_tsimcne.plugin.map_table import write_map_table

POINTS = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)


def fail_halfway(file):
    file.write(b"half of it")
    raise ValueError("the writer broke")


def test_a_failing_writer_leaves_the_earlier_file_and_no_temporary(tmp_path):
    path = tmp_path / "result.bin"
    path.write_bytes(b"earlier")
    with pytest.raises(ValueError, match="the writer broke"):  # not disguised as an OSError
        write_file(path, fail_halfway)
    assert os.listdir(tmp_path) == ["result.bin"]
    assert path.read_bytes() == b"earlier"
    write_file(path, lambda file: file.write("new\n"), text=True)
    assert path.read_bytes() == b"new\n"


def test_together_publishes_every_file_at_the_end_or_none(tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("old 1")
    second.write_text("old 2")
    with pytest.raises(ValueError):
        with together():
            write_file(first, lambda file: file.write(b"new 1"))
            write_file(second, fail_halfway)
    assert (first.read_text(), second.read_text()) == ("old 1", "old 2")
    assert sorted(os.listdir(tmp_path)) == ["first.txt", "second.txt"]
    with together():
        write_file(first, lambda file: file.write(b"new 1"))
        assert first.read_text() == "old 1"  # not before the set is complete
        write_file(second, lambda file: file.write(b"new 2"))
    assert (first.read_text(), second.read_text()) == ("new 1", "new 2")
    assert sorted(os.listdir(tmp_path)) == ["first.txt", "second.txt"]


def _embedding_csv(path):
    return write_embedding(path.with_suffix(".csv"), POINTS, labels=np.arange(50) % 3)


def _embedding_npz(path):
    return write_embedding(path.with_suffix(".npz"), POINTS, files=[f"{i}.png" for i in range(50)])


def _map_png(path):
    return plot_embedding(POINTS, path=path.with_suffix(".png"))


def _map_table(path):
    table = pd.DataFrame({"index": range(50), "x": POINTS[:, 0], "y": POINTS[:, 1]})
    write_map_table(table, path.with_suffix(".csv"))
    return path.with_suffix(".csv")


def _summary(path):
    return _write_summary(path.with_suffix(".json"), knn_accuracy=0.5)


def _model(path, fitted):
    return fitted.save(path.with_suffix(".pt"))


WRITERS = [_embedding_csv, _embedding_npz, _map_png, _map_table, _summary, _model]


@pytest.mark.parametrize("writer", WRITERS, ids=lambda w: w.__name__.strip("_"))
def test_every_writer_keeps_the_earlier_file_when_the_disk_fills(writer, fitted, tmp_path,
                                                                 monkeypatch):
    def run(path):
        return writer(path, fitted) if writer is _model else writer(path)

    path = run(tmp_path / "result")
    earlier = path.read_bytes()

    def disk_full(handle):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", disk_full)  # every writer flushes through it
    with pytest.raises(OSError, match=f"Could not write {path} .*Free some disk space") as raised:
        run(tmp_path / "result")
    assert raised.value.errno == errno.ENOSPC
    assert path.read_bytes() == earlier
    assert os.listdir(tmp_path) == [path.name]


def test_a_csv_on_a_disk_that_fills_is_not_cut_short(small_disk):
    disk = small_disk(1 << 20)
    many = np.random.default_rng(1).normal(size=(3000, 2)).astype(np.float32)
    path = write_embedding(disk / "embedding.csv", many)
    earlier = path.read_bytes()
    fill_disk(disk, leave=8192)  # a few hundred lines' worth
    with pytest.raises(OSError, match="No space left on device") as raised:
        write_embedding(path, many[::-1])
    assert raised.value.errno == errno.ENOSPC
    assert path.read_bytes() == earlier
    assert len(earlier.splitlines()) == 3001
    assert sorted(os.listdir(disk)) == ["ballast", "embedding.csv"]


def test_a_read_only_folder_says_so(small_disk):
    disk = small_disk(1 << 20, read_only=True)
    with pytest.raises(OSError, match="Read-only file system.*Choose a folder you can write to"):
        write_embedding(disk / "embedding.csv", POINTS)
