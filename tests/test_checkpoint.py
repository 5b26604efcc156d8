"""Checkpoints and resume: exact continuation, kill -9, damaged files, full disks."""

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from conftest import FAST_PARAMS, disk_full_after, fill_disk

from napari_tsimcne import TSimCNE, TrainingStopped, checkpoint, trainer
from napari_tsimcne.checkpoint import CheckpointFolder, checkpoint_size
from napari_tsimcne.network import TSimCNENetwork

PARAMS = {**FAST_PARAMS, "epochs": (3, 2, 3)}


class StopAt:
    """Callback that stops training after ``epoch`` of ``stage``."""

    def __init__(self, stage, epoch):
        self.stage, self.epoch = stage, epoch

    def __call__(self, stage, epoch, loss):
        return (stage, epoch) == (self.stage, self.epoch)


@pytest.fixture(scope="module")
def uninterrupted(images):
    estimator = TSimCNE(**PARAMS).fit(images)
    return estimator.embedding_, estimator.loss_history_


@pytest.mark.slow
@pytest.mark.parametrize("stage, epoch", [(0, 1), (0, 2), (1, 0), (2, 1)])
def test_resuming_a_stopped_run_gives_the_uninterrupted_result_bit_for_bit(
        images, uninterrupted, tmp_path, stage, epoch):
    stopped = TSimCNE(**PARAMS, checkpoint_dir=tmp_path, checkpoint_every=1,
                      callbacks=[StopAt(stage, epoch)])
    try:
        stopped.fit(images)
    except TrainingStopped:
        pass  # stopped before the 2-D map existed
    resumed = TSimCNE(**PARAMS, checkpoint_dir=tmp_path, checkpoint_every=1)
    embedding = resumed.fit_transform(images, resume=True)
    np.testing.assert_array_equal(embedding, uninterrupted[0])
    for got, expected in zip(resumed.loss_history_, uninterrupted[1], strict=True):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.slow
def test_only_the_newest_checkpoints_are_kept_and_every_n_epochs_plus_stage_ends(images, tmp_path):
    written = []
    real_write = CheckpointFolder.write

    def record(self, stage, epochs_done, state):
        written.append((stage, epochs_done))
        return real_write(self, stage, epochs_done, state)

    folder = tmp_path / "new" / "checkpoints"  # created when missing
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CheckpointFolder, "write", record)
        TSimCNE(**{**PARAMS, "epochs": (5, 1, 3)}, checkpoint_dir=folder,
                checkpoint_every=2).fit(images)
    # The readout stages on cached features are checkpointed at their end only.
    assert written == [(0, 2), (0, 4), (0, 5), (1, 1), (2, 2), (2, 3), (3, 1)]
    assert sorted(os.listdir(folder)) == ["checkpoint-2-00002.pt", "checkpoint-2-00003.pt",
                                          "checkpoint-3-00001.pt"][-checkpoint.KEEP:]


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_is_skipped_for_the_previous_good_one(
        images, uninterrupted, tmp_path):
    stopped = TSimCNE(**PARAMS, checkpoint_dir=tmp_path, checkpoint_every=1,
                      callbacks=[StopAt(2, 1)])
    stopped.fit(images)
    newest = CheckpointFolder(tmp_path, 1).paths()[0]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a torn write
    resumed = TSimCNE(**PARAMS, checkpoint_dir=tmp_path, checkpoint_every=1)
    with pytest.warns(UserWarning, match="damaged checkpoint"):
        embedding = resumed.fit_transform(images, resume=True)
    np.testing.assert_array_equal(embedding, uninterrupted[0])


@pytest.mark.slow
def test_resume_from_names_a_file_and_refuses_another_run(images, tmp_path):
    TSimCNE(**PARAMS, checkpoint_dir=tmp_path, checkpoint_every=1,
            callbacks=[StopAt(2, 0)]).fit(images)
    path = CheckpointFolder(tmp_path, 1).paths()[0]
    other_images = images[::-1].copy()
    with pytest.raises(ValueError, match="different run.*images"):
        TSimCNE(**PARAMS).fit(other_images, resume_from=path)
    with pytest.raises(ValueError, match="different run.*hidden_dim"):
        TSimCNE(**{**PARAMS, "hidden_dim": 32}).fit(images, resume_from=path)
    with pytest.raises(ValueError, match="not a napari-tsimcne checkpoint"):
        model = tmp_path / "model.pt"
        TSimCNE(**PARAMS).fit(images).save(model)
        TSimCNE(**PARAMS).fit(images, resume_from=model)


@pytest.mark.slow
def test_resume_without_a_folder_or_checkpoint(images, uninterrupted, tmp_path):
    with pytest.raises(ValueError, match="checkpoint_dir"):
        TSimCNE(**PARAMS).fit(images, resume=True)
    folder = tmp_path / "checkpoints"
    notice = checkpoint.nothing_to_resume(folder)  # what a front end shows before training
    assert notice == f"No checkpoint in {folder}; training from the start."
    with pytest.warns(UserWarning) as caught:
        estimator = TSimCNE(**PARAMS, checkpoint_dir=folder).fit(images, resume=True)
    assert [str(w.message) for w in caught] == [notice]
    assert caught[0].filename == __file__  # the caller's line
    np.testing.assert_array_equal(estimator.embedding_, uninterrupted[0])  # from the start
    assert checkpoint.nothing_to_resume(folder) is None  # the run wrote checkpoints


def test_a_different_run_is_refused_naming_each_difference(images, tmp_path):
    run = checkpoint.run_signature(TSimCNE(**PARAMS).get_params(), backbone="resnet10-w8",
                                   image_shape=(16, 16, 1), n_images=64, epochs=(3, 2, 3))
    assert run["epochs"] == [3, 2, 3] and run["image_shape"] == [16, 16, 1]
    state = {"path": tmp_path / "checkpoint-0-00001.pt", "metadata": dict(run)}
    checkpoint.check_same_run(state, run)
    checkpoint.check_same_run(None, run)  # a new run
    other = checkpoint.run_signature(TSimCNE(**{**PARAMS, "hidden_dim": 32}).get_params(),
                                     backbone="resnet10-w8", image_shape=(16, 16, 3),
                                     n_images=64, epochs=(3, 2, 3))
    with pytest.raises(ValueError, match=(
            r"checkpoint-0-00001.pt belongs to a different run \(image_shape: \[16, 16, 1\] in "
            r"the checkpoint, \[16, 16, 3\] now; hidden_dim: 64 in the checkpoint, 32 now\)")):
        checkpoint.check_same_run(state, other)


def test_unwritable_folder_and_full_disk_fail_before_training(images, tmp_path, monkeypatch):
    epochs_run = []
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(OSError, match="Cannot write checkpoints"):
        TSimCNE(**PARAMS, checkpoint_dir=not_a_folder / "checkpoints",
                callbacks=[lambda *a: epochs_run.append(a)]).fit(images)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage",
                        lambda path: type("Usage", (), {"free": 1000})())
    with pytest.raises(OSError, match="Not enough free disk space"):
        TSimCNE(**PARAMS, checkpoint_dir=tmp_path / "full",
                callbacks=[lambda *a: epochs_run.append(a)]).fit(images)
    assert epochs_run == []


def test_a_full_disk_while_writing_keeps_the_previous_checkpoint(images, tmp_path, monkeypatch):
    real_save = torch.save
    full = disk_full_after(4096, real_save)
    calls = []

    def save_then_fail(obj, file, *args, **kwargs):
        calls.append(1)
        return (full if len(calls) == 3 else real_save)(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(OSError, match="No space left.*earlier file there is unchanged") as raised:
        TSimCNE(**PARAMS, checkpoint_dir=tmp_path, checkpoint_every=1).fit(images)
    assert raised.value.errno == errno.ENOSPC
    assert "unexpected pos" in str(full.errors[0])  # what torch raised
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-0-00001.pt", "checkpoint-0-00002.pt"]
    assert CheckpointFolder(tmp_path, 1).latest()["epoch"] == 2


def first_run_needs(tmp_path) -> int:
    """The free space a new run of ``PARAMS`` asks for its checkpoints (1-channel images)."""
    network = TSimCNENetwork(PARAMS["backbone"], 1, 128, PARAMS["hidden_dim"])
    return CheckpointFolder(tmp_path / "empty", 1).space_needed(checkpoint_size(network))


def test_a_disk_that_fills_during_training_is_an_os_error(images, tmp_path, small_disk):
    disk = small_disk(first_run_needs(tmp_path) + (256 << 10))
    folder = disk / "checkpoints"

    def fill_after_first_epoch(stage, epoch, loss):
        if (stage, epoch) == (0, 0):
            fill_disk(disk, leave=4096)

    with pytest.raises(OSError, match="No space left on device.*Free some disk space") as raised:
        TSimCNE(**PARAMS, checkpoint_dir=folder, checkpoint_every=1,
                callbacks=[fill_after_first_epoch]).fit(images)
    assert raised.value.errno == errno.ENOSPC
    assert [path.name for path in folder.iterdir()] == ["checkpoint-0-00001.pt"]
    assert CheckpointFolder(folder, 1).latest()["epoch"] == 1


@pytest.mark.parametrize("existing, needed", [
    ([], 300), ([100], 200), ([100, 100], 100), ([100, 50], 150), ([150, 150], 100),
    ([60, 60], 180),
])
def test_the_space_check_counts_the_checkpoints_rotation_deletes(tmp_path, existing, needed):
    # existing: sizes of the checkpoints in the folder, newest first; new ones take 100 bytes
    for epoch, size in enumerate(reversed(existing), start=1):
        (tmp_path / f"checkpoint-0-{epoch:05d}.pt").write_bytes(bytes(size))
    assert CheckpointFolder(tmp_path, 1).space_needed(100) == needed


@pytest.mark.slow
def test_a_run_that_fitted_on_a_disk_can_be_resumed_on_it(images, uninterrupted, tmp_path,
                                                         small_disk):
    disk = small_disk(first_run_needs(tmp_path) + (64 << 10))
    TSimCNE(**PARAMS, checkpoint_dir=disk, checkpoint_every=1,
            callbacks=[StopAt(2, 0)]).fit(images)
    assert len(CheckpointFolder(disk, 1).paths()) == checkpoint.KEEP
    resumed = TSimCNE(**PARAMS, checkpoint_dir=disk, checkpoint_every=1)
    np.testing.assert_array_equal(resumed.fit_transform(images, resume=True), uninterrupted[0])


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(
        images, tmp_path, monkeypatch):
    real_make_loss = trainer.make_loss
    steps = []

    def failing_loss(name):
        loss = real_make_loss(name)

        def compute(z1, z2):
            steps.append(1)
            value = loss(z1, z2)
            return value * float("nan") if len(steps) > 8 else value  # epoch 3: 4 steps each

        return compute

    monkeypatch.setattr(trainer, "make_loss", failing_loss)
    with pytest.raises(FloatingPointError, match=r"nan in pre-training.*checkpoint-0-00002\.pt"):
        TSimCNE(**PARAMS, checkpoint_dir=tmp_path, checkpoint_every=1).fit(images)
    kept = CheckpointFolder(tmp_path, 1).latest()
    assert kept["epoch"] == 2 and np.isfinite(kept["history"][0]).all()


KILLED_RUN = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    sys.path.insert(0, {tests!r})
    from conftest import FAST_PARAMS, make_class_images
    from napari_tsimcne import TSimCNE
    torch.set_num_threads(1)
    images = make_class_images(256)[0]
    estimator = TSimCNE(**{{**FAST_PARAMS, "epochs": (12, 2, 4)}},
                        checkpoint_dir=sys.argv[1] if sys.argv[1] != "-" else None,
                        checkpoint_every=1)
    embedding = estimator.fit_transform(images, resume=sys.argv[2] == "resume")
    np.save(sys.argv[3], embedding)
""")


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_stage_then_resume_equals_the_uninterrupted_run(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILLED_RUN.format(tests=os.path.dirname(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    folder = tmp_path / "checkpoints"

    def run(*args):
        return subprocess.run([sys.executable, str(script), *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=300)

    victim = subprocess.Popen([sys.executable, str(script), str(folder), "new", "-"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not (folder / "checkpoint-0-00004.pt").exists():
        assert victim.poll() is None, victim.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)  # in epoch 5 of 12 of pre-training
    assert victim.wait(timeout=60) == -signal.SIGKILL
    victim.stderr.close()

    resumed = run(folder, "resume", tmp_path / "resumed.npy")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    uninterrupted = run("-", "new", tmp_path / "uninterrupted.npy")
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "resumed.npy"),
                                  np.load(tmp_path / "uninterrupted.npy"))


@pytest.mark.slow
def test_a_new_run_refuses_a_folder_with_checkpoints_of_an_earlier_run(images, tmp_path):
    TSimCNE(**PARAMS, checkpoint_dir=tmp_path).fit(images)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match="already holds checkpoints of an earlier run"):
        TSimCNE(**{**PARAMS, "random_state": 1}, checkpoint_dir=tmp_path).fit(images)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_code_in_a_crafted_checkpoint_is_not_run(images, tmp_path):
    from test_persistence import CreatesFileWhenUnpickled

    marker = tmp_path / "code-was-run"
    crafted = tmp_path / "checkpoints" / "checkpoint-2-00009.pt"
    crafted.parent.mkdir()
    torch.save({"format": checkpoint.KIND, "format_version": 1,
                "network": CreatesFileWhenUnpickled(marker)}, crafted)
    with pytest.raises(ValueError, match="damaged"):
        TSimCNE(**PARAMS).fit(images, resume_from=crafted)
    with pytest.warns(UserWarning, match="damaged checkpoint"):
        with pytest.raises(ValueError, match="no readable checkpoint.*checkpoint-2-00009.pt"):
            TSimCNE(**PARAMS, checkpoint_dir=crafted.parent).fit(images, resume=True)
    assert not marker.exists()
