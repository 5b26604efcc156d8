"""Model files: round trips, safe loading, damaged and foreign files, atomic writes."""

from __future__ import annotations

import errno
import os
import pickle
import stat

import numpy as np
import pytest
import torch
from conftest import disk_full_after
from sklearn.exceptions import NotFittedError

from napari_tsimcne import TSimCNE, persistence
from napari_tsimcne.persistence import FORMAT, FORMAT_VERSION, write_model_file


@pytest.fixture(scope="module")
def model_file(fitted, tmp_path_factory):
    return fitted.save(tmp_path_factory.mktemp("models") / "model.pt")


def test_saved_model_transforms_like_the_original(fitted, model_file, images):
    loaded = TSimCNE.load(model_file, device="cpu")
    np.testing.assert_allclose(loaded.transform(images), fitted.transform(images), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(loaded.transform(images, features=True),
                               fitted.transform(images, features=True), rtol=1e-6, atol=1e-6)


def test_saved_model_restores_attributes_and_parameters(fitted, model_file):
    loaded = TSimCNE.load(model_file, device="cpu")
    np.testing.assert_array_equal(loaded.embedding_, fitted.embedding_)
    assert loaded.embedding_.dtype == np.float32
    assert len(loaded.loss_history_) == len(fitted.loss_history_)
    for restored, original in zip(loaded.loss_history_, fitted.loss_history_):
        np.testing.assert_array_equal(restored, original)
    np.testing.assert_array_equal(loaded.intensity_range_, fitted.intensity_range_)
    assert loaded.image_shape_ == fitted.image_shape_
    assert loaded.backbone_ == fitted.backbone_
    assert loaded.stopped_early_ == fitted.stopped_early_
    assert loaded.device_ == torch.device("cpu")
    assert loaded.versions_["napari-tsimcne"]
    params = {k: v for k, v in fitted.get_params().items() if k != "callbacks"}
    assert {k: v for k, v in loaded.get_params().items() if k != "callbacks"} == params
    assert not loaded.model_.network.training
    for name, tensor in fitted.model_.network.state_dict().items():
        assert torch.equal(loaded.model_.network.state_dict()[name], tensor), name


def test_model_file_opens_with_weights_only_torch_load(model_file):
    payload = torch.load(model_file, weights_only=True)
    assert payload["format"] == FORMAT
    assert payload["format_version"] == FORMAT_VERSION
    assert set(payload["state_dict"]) == set(TSimCNE.load(model_file).model_.network.state_dict())


@pytest.mark.parametrize("params", [
    dict(batch_size=np.int64(16), epochs=np.array([1])),
    dict(random_state=np.random.RandomState(0), crop_scale=np.array([0.3, 1.0]),
         image_size=(np.int64(16), np.int64(16))),
    dict(random_state=np.int32(7), lr=np.float64(0.01)),
], ids=["numpy ints", "RandomState and numpy arrays", "numpy seed and float"])
def test_models_fitted_with_numpy_valued_parameters_can_be_loaded(make_estimator, images, tmp_path,
                                                                  params):
    estimator = make_estimator(**{"epochs": (1,), **params}).fit(images[:32])
    loaded = TSimCNE.load(estimator.save(tmp_path / "model.pt"))
    np.testing.assert_allclose(loaded.transform(images[:4]), estimator.transform(images[:4]),
                               rtol=1e-6, atol=1e-6)
    stored = loaded.get_params()
    for name, value in params.items():
        if name != "random_state":
            assert np.array_equal(stored[name], value), name


def test_callable_augmentation_and_random_state_object_are_not_stored(make_estimator, images,
                                                                       tmp_path):
    estimator = make_estimator(epochs=(1,), augmentation=lambda x: x.flip(-1),
                               random_state=np.random.RandomState(0)).fit(images[:32])
    loaded = TSimCNE.load(estimator.save(tmp_path / "model.pt"))
    assert loaded.augmentation is None and loaded.random_state is None


def test_pickled_fitted_estimator_transforms_identically(fitted, images):
    copy = pickle.loads(pickle.dumps(fitted))
    assert copy.model_.network is not fitted.model_.network
    np.testing.assert_array_equal(copy.transform(images), fitted.transform(images))
    np.testing.assert_array_equal(copy.embedding_, fitted.embedding_)


def test_save_before_fit_raises_not_fitted(tmp_path):
    with pytest.raises(NotFittedError):
        TSimCNE().save(tmp_path / "model.pt")


def test_save_into_a_missing_folder_names_the_folder(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder .*missing does not exist"):
        fitted.save(tmp_path / "missing" / "model.pt")


def test_load_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file at"):
        TSimCNE.load(tmp_path / "nothing.pt")


# --------------------------------------------------------------------------
# Files that must not load


class CreatesFileWhenUnpickled:
    """Unpickling this object creates ``marker``: the way a malicious file runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_pickle(path, obj):
    path.write_bytes(pickle.dumps(obj))


def _write_torch(path, obj):
    torch.save(obj, path)


def _load_pickle_unsafely(path):
    return pickle.loads(path.read_bytes())


def _load_torch_unsafely(path):
    return torch.load(path, weights_only=False)


@pytest.mark.parametrize("write, load_unsafely", [
    (_write_pickle, _load_pickle_unsafely),
    (_write_torch, _load_torch_unsafely),
], ids=["plain pickle", "torch archive"])
def test_code_in_a_crafted_file_is_not_run_on_load(tmp_path, write, load_unsafely):
    marker = tmp_path / "code-was-run"
    path = tmp_path / "model.pt"
    write(path, {"format": FORMAT, "format_version": FORMAT_VERSION,
                 "params": CreatesFileWhenUnpickled(marker)})
    # The file is live: unpickling it without restrictions runs its code.
    load_unsafely(path)["params"].close()
    assert marker.exists()
    marker.unlink()

    with pytest.raises(ValueError, match="not a napari-tsimcne model file, or it is damaged"):
        TSimCNE.load(path)
    assert not marker.exists()


def _truncated(fraction):
    def write(path, model_bytes):
        path.write_bytes(model_bytes[: int(len(model_bytes) * fraction)])

    return write


def _random_bytes(path, model_bytes):
    path.write_bytes(np.random.default_rng(0).bytes(5000))


def _flipped_bytes(path, model_bytes):
    damaged = bytearray(model_bytes)
    middle = len(damaged) // 2
    damaged[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(damaged))


def _torch_file(obj):
    def write(path, model_bytes):
        torch.save(obj, path)

    return write


def _payload_edit(edit):
    def write(path, model_bytes):
        path.write_bytes(model_bytes)
        payload = torch.load(path, weights_only=True)
        edit(payload)
        torch.save(payload, path)

    return write


_UNREADABLE = "not a napari-tsimcne model file, or it is damaged"
_FOREIGN = "a torch file but not a napari-tsimcne model"

BAD_FILES = {
    "empty": (lambda path, _: path.write_bytes(b""), _UNREADABLE),
    "random bytes": (_random_bytes, _UNREADABLE),
    "text": (lambda path, _: path.write_text("hello"), _UNREADABLE),
    "truncated to half": (_truncated(0.5), "damaged"),
    "last bytes missing": (_truncated(0.99), "damaged"),
    "zeroed bytes in the middle": (_flipped_bytes, "damaged"),
    "plain dict": (_torch_file({"weights": torch.zeros(3)}), _FOREIGN),
    "tensor": (_torch_file(torch.zeros(3)), _FOREIGN),
    "state_dict of another network": (_torch_file(torch.nn.Linear(2, 2).state_dict()),
                                      "not a napari-tsimcne model"),
    "newer format version": (
        _payload_edit(lambda p: p.update(format_version=FORMAT_VERSION + 1)),
        rf"format version {FORMAT_VERSION + 1}, newer.*Upgrade napari-tsimcne"),
    "no format version": (_payload_edit(lambda p: p.pop("format_version")),
                          "model format version None"),
    "missing weights": (_payload_edit(lambda p: p.pop("state_dict")), "incomplete or inconsistent"),
    "weights of another shape": (
        _payload_edit(lambda p: p["state_dict"].update({"head.readout.bias": torch.zeros(5)})),
        "incomplete or inconsistent"),
}


@pytest.mark.parametrize("write, message", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_damaged_or_foreign_files_raise_value_error_naming_the_file(model_file, tmp_path, write,
                                                                  message):
    path = tmp_path / "bad-model.pt"
    write(path, model_file.read_bytes())
    with pytest.raises(ValueError, match=message) as error:
        TSimCNE.load(path)
    assert str(path) in str(error.value)


# --------------------------------------------------------------------------
# Atomic writes


def _save_unpicklable_payload(estimator, path, monkeypatch):
    write_model_file(path, {"not storable": lambda: None})


def _save_with_disk_full_mid_write(estimator, path, monkeypatch):
    save = disk_full_after(4096)
    monkeypatch.setattr(persistence.torch, "save", save)
    try:
        estimator.save(path)
    finally:
        # what torch itself raised: its archive writer's error, not the OSError
        assert [type(e) for e in save.errors] == [RuntimeError]
        assert "unexpected pos" in str(save.errors[0])


@pytest.mark.parametrize("failing_save", [
    _save_unpicklable_payload, _save_with_disk_full_mid_write,
], ids=["unpicklable payload", "disk full mid-write"])
def test_failed_save_leaves_the_existing_file_intact(fitted, model_file, tmp_path, monkeypatch,
                                                     failing_save):
    path = tmp_path / "model.pt"
    path.write_bytes(model_file.read_bytes())
    with pytest.raises(Exception, match="(?i)pickle|no space left"):
        failing_save(fitted, path, monkeypatch)
    assert path.read_bytes() == model_file.read_bytes()
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary file left behind
    np.testing.assert_array_equal(TSimCNE.load(path).embedding_, fitted.embedding_)


def test_a_full_disk_is_an_os_error_naming_the_file_and_what_to_do(fitted, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setattr(persistence.torch, "save", disk_full_after(4096))
    with pytest.raises(OSError) as raised:
        fitted.save(tmp_path / "model.pt")
    assert raised.value.errno == errno.ENOSPC
    assert str(raised.value) == (
        f"Could not write {tmp_path / 'model.pt'} (No space left on device); any earlier file "
        "there is unchanged. Free some disk space or choose another folder.")


def test_a_real_full_disk_keeps_the_earlier_model(fitted, model_file, small_disk):
    size = model_file.stat().st_size
    disk = small_disk(size + size // 2)  # room for one model, not for a second beside it
    path = fitted.save(disk / "model.pt")
    with pytest.raises(OSError, match="No space left on device.*Free some disk space") as raised:
        fitted.save(path)
    assert raised.value.errno == errno.ENOSPC
    assert os.listdir(disk) == ["model.pt"]
    assert path.read_bytes() == model_file.read_bytes()


def test_save_replaces_an_existing_model(make_estimator, fitted, images, tmp_path):
    path = fitted.save(tmp_path / "model.pt")
    other = make_estimator(epochs=(1,), random_state=3).fit(images)
    other.save(path)
    np.testing.assert_array_equal(TSimCNE.load(path).embedding_, other.embedding_)
    assert os.listdir(tmp_path) == ["model.pt"]


def test_model_file_gets_the_permissions_of_an_ordinary_new_file(fitted, tmp_path):
    previous = os.umask(0o022)
    try:
        path = fitted.save(tmp_path / "shared.pt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
