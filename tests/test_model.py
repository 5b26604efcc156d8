"""The fitted model on its own: TSimCNEModel's transform, features, save and load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_tsimcne
from napari_tsimcne import TSimCNE, TSimCNEModel, __version__


@pytest.fixture(scope="module")
def model_file(fitted, tmp_path_factory):
    return fitted.model_.save(tmp_path_factory.mktemp("model") / "model.pt")


def test_the_estimator_s_fitted_attributes_are_its_model_s(fitted):
    model = fitted.model_
    assert isinstance(model, TSimCNEModel)
    assert fitted.embedding_ is model.embedding
    assert fitted.loss_history_ is model.loss_history
    assert (fitted.image_shape_, fitted.backbone_, fitted.device_, fitted.batch_size_,
            fitted.epochs_, fitted.random_state_) == (
        model.image_shape, model.backbone, model.device, model.batch_size, model.epochs,
        model.random_state)
    with pytest.raises(AttributeError, match="read-only: it is model_.embedding"):
        fitted.embedding_ = np.zeros((2, 2))


def test_versions_are_recorded_by_fit(fitted):
    assert fitted.versions_["napari-tsimcne"] == __version__
    assert fitted.versions_["torch"] == str(torch.__version__)
    assert set(fitted.versions_) == {"napari-tsimcne", "torch", "python"}


def test_a_saved_and_loaded_model_transforms_bit_for_bit_alike(fitted, model_file, images):
    loaded = TSimCNEModel.load(model_file, device="cpu")
    np.testing.assert_array_equal(loaded.transform(images), fitted.model_.transform(images))
    np.testing.assert_array_equal(loaded.features(images), fitted.model_.features(images))
    np.testing.assert_array_equal(loaded.embedding, fitted.embedding_)
    assert loaded.params == fitted.model_.params
    assert loaded.versions == fitted.versions_
    assert (loaded.epochs, loaded.batch_size, loaded.random_state) == (
        fitted.epochs_, fitted.batch_size_, fitted.random_state_)


def test_the_estimator_reads_the_model_s_file_and_the_model_the_estimator_s(fitted, model_file,
                                                                             images, tmp_path):
    estimator = TSimCNE.load(model_file, device="cpu")
    assert isinstance(estimator.model_, TSimCNEModel)
    np.testing.assert_array_equal(estimator.transform(images), fitted.transform(images))
    model = TSimCNEModel.load(fitted.save(tmp_path / "model.pt"), device="cpu")
    np.testing.assert_array_equal(model.transform(images), fitted.transform(images))


def test_embedding_and_features_in_one_pass_equal_the_two_calls(fitted, images):
    model = fitted.model_
    passes = []
    hook = model.network.backbone.register_forward_hook(
        lambda module, inputs, output: passes.append(len(inputs[0])))
    try:
        embedding = model.transform(images)
        features = model.features(images)
        assert sum(passes) == 2 * len(images)
        passes.clear()
        both = model.transform(images, return_features=True)
    finally:
        hook.remove()
    assert sum(passes) == len(images)  # every image through the backbone once
    assert isinstance(both, tuple) and len(both) == 2
    np.testing.assert_array_equal(both[0], embedding)
    np.testing.assert_array_equal(both[1], features)
    assert both[1].shape == (len(images), 64) and both[1].dtype == np.float32


def test_a_model_reads_arrays_in_its_training_layout_unless_told_otherwise(make_estimator,
                                                                           images):
    channels_first = np.stack([images, 255 - images], axis=1)  # (N, 2, H, W)
    model = make_estimator(epochs=(1,), axes="NCYX").fit(channels_first).model_
    assert model.axes == "NCYX"
    np.testing.assert_array_equal(model.transform(channels_first[:5]),
                                  model.transform(np.moveaxis(channels_first[:5], 1, -1),
                                                  axes="NYXC"))


def test_a_model_file_of_an_earlier_format_loads(fitted, model_file, tmp_path):
    # Written before the settings used were stored, and before recipes and axes.
    payload = torch.load(model_file, weights_only=True)
    for key in ("epochs_used", "batch_size_used", "augmentation_used", "seed",
                "checkpoint_folder"):
        del payload[key]
    for name in ("recipe", "axes"):
        del payload["params"][name]
    torch.save(payload, tmp_path / "old.pt")
    model = TSimCNEModel.load(tmp_path / "old.pt")
    assert model.params["recipe"] == "paper" and model.axes == "auto"
    assert model.epochs == (1, 1, 1)
    assert (model.batch_size, model.random_state) == (fitted.batch_size_, fitted.random_state_)
    assert model.checkpoint_folder is None
    assert TSimCNE.load(tmp_path / "old.pt").recipe == "paper"


def test_a_model_file_with_unknown_parameters_is_refused(model_file, tmp_path):
    payload = torch.load(model_file, weights_only=True)
    payload["params"]["colour"] = "red"
    torch.save(payload, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match=r"inconsistent model file \(unknown parameters "
                       r"\['colour'\]\)"):
        TSimCNEModel.load(tmp_path / "foreign.pt")


def test_the_model_class_is_exported_lazily():
    assert "TSimCNEModel" in napari_tsimcne.__all__ and "TSimCNEModel" in dir(napari_tsimcne)
    assert napari_tsimcne.TSimCNEModel.__module__ == "napari_tsimcne.model"


def test_a_warning_about_the_images_names_the_caller_s_line(fitted, images):
    with pytest.warns(UserWarning, match="far outside the intensity range") as caught:
        fitted.model_.transform(images[:4] / 255, return_features=True)
    assert caught[0].filename == __file__
