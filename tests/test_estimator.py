"""The scikit-learn-style API of TSimCNE: fit, transform, parameters, callbacks."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError, SkipTestWarning
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from napari_tsimcne import Callback, TrainingStopped, TSimCNE
from napari_tsimcne.network import TSimCNENetwork

# --------------------------------------------------------------------------
# Fitting and fitted attributes


def test_fit_returns_the_estimator_itself(make_estimator, images):
    estimator = make_estimator(epochs=(1,))
    assert estimator.fit(images) is estimator


def test_fitted_attributes_describe_the_model(fitted, images):
    assert fitted.embedding_.shape == (len(images), 2)
    assert fitted.embedding_.dtype == np.float32
    assert np.isfinite(fitted.embedding_).all()
    assert [h.shape for h in fitted.loss_history_] == [(1,)] * 4  # with the final readout
    assert fitted.epochs_ == (1, 1, 1, 1)
    assert all(h.dtype == np.float32 and np.isfinite(h).all() for h in fitted.loss_history_)
    assert isinstance(fitted.model_.network, TSimCNENetwork)
    assert not fitted.model_.network.training
    assert fitted.image_shape_ == (16, 16, 1)
    np.testing.assert_array_equal(fitted.intensity_range_, [[0, 255]])
    assert fitted.backbone_ == "resnet10-w8"
    assert fitted.device_ == torch.device("cpu")
    assert fitted.stopped_early_ is False


def test_fitted_model_has_a_trainable_2d_readout(fitted):
    readout = fitted.model_.network.head.readout
    assert isinstance(readout, nn.Linear)
    assert (readout.in_features, readout.out_features) == (64, 2)
    assert all(p.requires_grad for p in fitted.model_.network.parameters())


def test_init_only_stores_parameters_and_invalid_values_fail_at_fit(images):
    params = dict(epochs="many", batch_size=-3, backbone="vgg", augmentation="cells",
                  device="tpu", image_size=3, lr="fast")
    estimator = TSimCNE(**params)
    assert {name: estimator.get_params()[name] for name in params} == params
    assert not [name for name in vars(estimator) if name.endswith("_")]
    with pytest.raises(ValueError):
        estimator.fit(images)
    assert not hasattr(estimator, "model_")


def test_get_params_lists_every_init_parameter_and_set_params_changes_them():
    estimator = TSimCNE(batch_size=64, backbone="resnet10-w8")
    params = estimator.get_params()
    assert set(params) == {
        "epochs", "batch_size", "out_dim", "backbone", "augmentation", "lr", "image_size",
        "device", "random_state", "verbose", "callbacks", "pretrain_dim", "pretrain_loss",
        "hidden_dim", "weight_decay", "momentum", "warmup_epochs", "crop_scale", "precision",
        "compile", "stream", "checkpoint_dir", "checkpoint_every", "recipe", "time_budget",
        "axes",
    }
    assert (params["batch_size"], params["backbone"], params["epochs"]) == (
        64, "resnet10-w8", (1000, 50, 450))
    assert estimator.set_params(batch_size=32, lr=0.1) is estimator
    assert (estimator.batch_size, estimator.lr) == (32, 0.1)
    with pytest.raises(ValueError, match="Invalid parameter 'colour'"):
        estimator.set_params(colour="red")


def test_clone_of_a_fitted_estimator_has_its_parameters_but_no_model(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "model_") and not hasattr(copy, "embedding_")


# --------------------------------------------------------------------------
# Transform


def test_transform_of_training_images_is_the_embedding(fitted, images):
    out = fitted.transform(images)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, fitted.embedding_, rtol=1e-5, atol=1e-6)
    # Images are mapped one by one: a subset lands where it did in the whole set.
    np.testing.assert_allclose(fitted.transform(images[10:13]), fitted.embedding_[10:13],
                               rtol=1e-5, atol=1e-6)


def test_transform_features_returns_backbone_features(fitted, images):
    features = fitted.transform(images, features=True)
    assert features.shape == (len(images), 64)  # 8 * width 8
    assert features.dtype == np.float32
    with torch.no_grad():
        expected = fitted.model_.network.features(torch.from_numpy(images[:, None] / 255).float())
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", get_tags(TSimCNE()).transformer_tags.preserves_dtype)
def test_transform_preserves_the_dtypes_its_tags_claim(fitted, images, dtype):
    assert fitted.transform(images.astype(dtype)).dtype == dtype


def test_fit_transform_returns_a_copy_of_the_embedding_of_a_seeded_fit(make_estimator, fitted,
                                                                       images):
    estimator = make_estimator()
    out = estimator.fit_transform(images)
    np.testing.assert_array_equal(out, estimator.embedding_)
    assert out is not estimator.embedding_
    # Same data and random_state as the shared fixture: the same map on a CPU.
    np.testing.assert_array_equal(out, fitted.embedding_)


def test_different_random_states_give_different_maps(make_estimator, fitted, images):
    other = make_estimator(random_state=1).fit(images)
    assert not np.allclose(other.embedding_, fitted.embedding_)


def test_random_state_object_is_accepted(make_estimator, images):
    first = make_estimator(epochs=(1,), random_state=np.random.RandomState(5)).fit(images)
    second = make_estimator(epochs=(1,), random_state=np.random.RandomState(5)).fit(images)
    np.testing.assert_array_equal(first.embedding_, second.embedding_)


@pytest.mark.slow
def test_verbose_shows_a_progress_bar_per_stage(make_estimator, images, capsys):
    make_estimator(verbose=True).fit(images)
    err = capsys.readouterr().err
    assert all(stage in err for stage in ("pre-training", "readout", "fine-tuning"))


# --------------------------------------------------------------------------
# Callbacks


class Recorder(Callback):
    def __init__(self, stop_at=None, stop_after_polls=None):
        self.calls, self.stage_ends, self.polls = [], [], 0
        self.stop_at, self.stop_after_polls = stop_at, stop_after_polls

    def __call__(self, stage, epoch, loss):
        self.calls.append((stage, epoch, loss))
        return (stage, epoch) == self.stop_at

    def on_stage_end(self, stage, embedding):
        self.stage_ends.append((stage, embedding.shape, embedding.dtype))

    def should_stop(self):
        self.polls += 1
        return self.stop_after_polls is not None and self.polls > self.stop_after_polls


@pytest.mark.slow
def test_callbacks_see_every_epoch_and_stage_without_changing_the_result(make_estimator, fitted,
                                                                         images):
    recorder = Recorder()
    plain_calls = []
    estimator = make_estimator(callbacks=[recorder, lambda *args: plain_calls.append(args)])
    estimator.fit(images)

    assert [(stage, epoch) for stage, epoch, _ in recorder.calls] == [
        (0, 0), (1, 0), (2, 0), (3, 0)]
    losses = [loss for _, _, loss in recorder.calls]
    assert all(isinstance(loss, float) for loss in losses)
    np.testing.assert_allclose(losses, np.concatenate(estimator.loss_history_), rtol=1e-6)
    assert plain_calls == recorder.calls
    n = len(images)
    assert recorder.stage_ends == [(0, (n, 128), np.float32), (1, (n, 2), np.float32),
                                   (2, (n, 2), np.float32), (3, (n, 2), np.float32)]
    assert estimator.stopped_early_ is False
    np.testing.assert_array_equal(estimator.embedding_, fitted.embedding_)


@pytest.mark.slow
@pytest.mark.parametrize("stop_at, expected_lengths", [
    ((1, 0), [1, 1]),          # end of the readout stage: the 2-D map exists
    ((2, 1), [1, 1, 2]),       # during fine-tuning
    ((3, 0), [1, 1, 3, 1]),    # in the final readout
])
def test_callback_returning_true_in_a_2d_stage_keeps_the_model_so_far(make_estimator, images,
                                                                      stop_at, expected_lengths):
    recorder = Recorder(stop_at=stop_at)
    estimator = make_estimator(epochs=(1, 1, 3), callbacks=[recorder]).fit(images)
    assert estimator.stopped_early_ is True
    assert [len(h) for h in estimator.loss_history_] == expected_lengths
    assert recorder.calls[-1][:2] == stop_at
    assert estimator.embedding_.shape == (len(images), 2)
    np.testing.assert_allclose(estimator.transform(images[:4]), estimator.embedding_[:4],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_stopping_during_pretraining_raises_and_keeps_an_unfitted_estimator_unfitted(
        make_estimator, images):
    estimator = make_estimator(epochs=(2, 1, 1), callbacks=[Recorder(stop_at=(0, 0))])
    with pytest.raises(TrainingStopped, match="stopped before the 2-D map existed.*pre-training"):
        estimator.fit(images)
    with pytest.raises(NotFittedError):
        estimator.transform(images)


@pytest.mark.slow
def test_stopping_during_pretraining_leaves_a_fitted_estimator_unchanged(make_estimator, images):
    estimator = make_estimator(epochs=(1,)).fit(images)
    model, embedding = estimator.model_, estimator.embedding_.copy()
    history, weights = estimator.loss_history_, {k: v.clone() for k, v in
                                                 estimator.model_.network.state_dict().items()}

    estimator.set_params(epochs=(2, 1, 1), callbacks=[Recorder(stop_at=(0, 1))])
    with pytest.raises(TrainingStopped):
        estimator.fit(images[::-1])

    assert estimator.model_ is model
    assert estimator.loss_history_ is history
    np.testing.assert_array_equal(estimator.embedding_, embedding)
    assert all(torch.equal(v, weights[k]) for k, v in estimator.model_.network.state_dict().items())
    np.testing.assert_allclose(estimator.transform(images), embedding, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_should_stop_stops_pretraining_within_an_epoch(make_estimator, images):
    recorder = Recorder(stop_after_polls=2)  # 64 images / 16 = 4 steps per epoch
    with pytest.raises(TrainingStopped):
        make_estimator(callbacks=[recorder]).fit(images)
    assert recorder.calls == []  # not even the first epoch was finished


@pytest.mark.slow
def test_should_stop_stops_2d_training_within_an_epoch(make_estimator, images):
    # Polled before each of the 4 steps per epoch; the 6th poll is before the
    # second step of the second epoch.
    recorder = Recorder(stop_after_polls=5)
    estimator = make_estimator(epochs=(3,), callbacks=[recorder]).fit(images)
    assert estimator.stopped_early_ is True
    assert [(stage, epoch) for stage, epoch, _ in recorder.calls] == [(0, 0)]
    assert [len(h) for h in estimator.loss_history_] == [1]
    assert recorder.polls == 7  # 4 steps, 1 step, the stop, and the check after the stage


# --------------------------------------------------------------------------
# Invalid parameters and misuse


def _cuda_unavailable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _mps_unavailable(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


BAD_PARAMS = {
    "bad epochs": (dict(epochs=(0, 1, 1)), None, "is not a training plan"),
    "fractional epochs": (dict(epochs=(1.5, 1, 1)), None,
                          r"epochs=\(1.5, 1, 1\) is not a training plan"),
    "epochs as text": (dict(epochs="abc"), None, "epochs='abc' is not a training plan"),
    "batch size 1": (dict(batch_size=1), None, r"batch_size must be an integer >= 2 or .auto., got 1"),
    "batch size 0": (dict(batch_size=0), None, "batch_size must be an integer >= 2"),
    "fractional batch size": (dict(batch_size=2.5), None, "batch_size must be an integer >= 2"),
    "batch size as text": (dict(batch_size="16"), None, "batch_size must be an integer >= 2"),
    "out_dim 0": (dict(out_dim=0), None, "out_dim must be a whole number >= 1, got 0"),
    "unknown backbone": (dict(backbone="resnet50"), None, "Unknown backbone 'resnet50'"),
    "unknown augmentation": (dict(augmentation="cells"), None, "Unknown augmentation 'cells'"),
    "lr as text": (dict(lr="fast"), None, r"lr='fast' does not fit 3 stage\(s\)"),
    "negative lr": (dict(lr=-0.1), None, "Learning rates must be positive and finite, got lr=-0.1"),
    "infinite lr": (dict(lr=float("inf")), None, "must be positive and finite"),
    "two rates for three stages": (dict(lr=(0.1, 0.1)), None, r"does not fit 3 stage\(s\)"),
    "two rates for a planned budget": (dict(lr=(0.1, 0.1), epochs=(5,), time_budget=60), None,
                                       r"does not fit 3 stage\(s\)"),
    "image size too small": (dict(image_size=4), None,
                             r"image_size must be .* \(height, width\) of whole numbers >= 8, got 4"),
    "image size of one number in a tuple": (dict(image_size=(16,)), None, "image_size must be"),
    "image size 16.0": (dict(image_size=16.0), None,
                        "image_size must be 'auto', None, a whole number"),
    "unknown device": (dict(device="tpu"), None, "device='tpu' is not a device"),
    "cuda without a GPU": (dict(device="cuda"), _cuda_unavailable, "no CUDA GPU is available"),
    "cuda:1 without a GPU": (dict(device="cuda:1"), _cuda_unavailable,
                             "device='cuda:1' but no CUDA GPU"),
    "mps unavailable": (dict(device="mps"), _mps_unavailable, "MPS is not available"),
    "negative seed": (dict(random_state=-1), None,
                      "random_state must be None, a whole number from 0 to 2\\*\\*32 - 1"),
    "seed too large": (dict(random_state=2**32), None, "random_state must be None"),
    "seed as text": (dict(random_state="0"), None, "random_state must be None"),
    "verbose as text": (dict(verbose="yes"), None, "verbose must be True or False, got 'yes'"),
    "callbacks not a list": (dict(callbacks=3), None, "callbacks must be a list of callables"),
    "a callback that is not callable": (dict(callbacks=[3]), None, r"got \[3\]"),
    "pretrain_dim 0": (dict(pretrain_dim=0), None, "pretrain_dim must be a whole number >= 1"),
    "unknown pretraining loss": (dict(pretrain_loss="l1"), None,
                                 "pretrain_loss must be 'euclidean' .* or 'cosine' .*, got 'l1'"),
    "hidden_dim 0": (dict(hidden_dim=0), None, "hidden_dim must be a whole number >= 1, got 0"),
    "negative weight decay": (dict(weight_decay=-1), None, "weight_decay must be a number >= 0"),
    "momentum 2": (dict(momentum=2.0), None, r"momentum must be a number in \[0, 1\), got 2.0"),
    "negative warm-up": (dict(warmup_epochs=-1), None,
                         "warmup_epochs must be a number of epochs >= 0"),
    "crop_scale reversed": (dict(crop_scale=(0.5, 0.2)), None, r"crop_scale must be \(low, high\)"),
    "crop_scale above 1": (dict(crop_scale=(0.2, 2)), None, r"0 < low <= high <= 1"),
    "unknown precision": (dict(precision="fp16"), None,
                          "precision must be 'auto', 'bf16' or 'fp32', got 'fp16'"),
    "compile as text": (dict(compile="yes"), None, "compile must be True or False"),
    "unknown streaming": (dict(stream="always"), None,
                          "stream must be True, False or 'auto', got 'always'"),
    "checkpoint folder a number": (dict(checkpoint_dir=3), None,
                                   "checkpoint_dir must be the path of a folder, or None"),
    "checkpoint folder empty": (dict(checkpoint_dir=""), None, "checkpoint_dir must be the path"),
    "checkpoint interval 0": (dict(checkpoint_every=0), None,
                              "checkpoint_every must be a whole number"),
    "unknown recipe": (dict(recipe="fast"), None, "recipe must be one of"),
    "zero time budget": (dict(time_budget=0), None, "time_budget must be a positive number"),
    "unknown axis letter": (dict(axes="NQYX"), None, "axes=.NQYX. is not a layout"),
}


def test_every_parameter_has_a_bad_value_in_the_table():
    named = {name for params, _, _ in BAD_PARAMS.values() for name in params}
    assert named == set(TSimCNE().get_params())


@pytest.mark.parametrize("params, setup, message", BAD_PARAMS.values(), ids=BAD_PARAMS.keys())
def test_every_parameter_is_checked_before_the_images_are_read(make_estimator, images,
                                                               monkeypatch, params, setup,
                                                               message):
    if setup is not None:
        setup(monkeypatch)
    # Before any work: neither the images are read nor a single step runs.
    monkeypatch.setattr("napari_tsimcne.estimator.as_image_stack",
                        lambda *a, **k: pytest.fail("the images were read"))
    monkeypatch.setattr("napari_tsimcne.estimator.train", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=message):
        make_estimator(**params).fit(images)


@pytest.mark.parametrize("n_images, batch_size, fitting", [(64, 100, 64), (40, 50, 32)])
def test_a_batch_size_above_the_image_count_is_refused_with_one_that_fits(
        make_estimator, images, n_images, batch_size, fitting):
    with pytest.raises(ValueError, match=(
            rf"batch_size={batch_size} is larger than the {n_images} training images\. "
            rf"Pass batch_size={fitting}")):
        make_estimator(batch_size=batch_size).fit(images[:n_images])


def test_transform_before_fit_raises_not_fitted(make_estimator, images):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        make_estimator().transform(images)


@pytest.mark.parametrize("X, channels", [
    (np.zeros((3, 16, 16, 3), np.uint8), 3),
    (np.zeros((3, 16, 16, 2), np.float32), 2),
])
def test_transform_rejects_a_different_channel_count(fitted, X, channels):
    message = rf"X has {channels} channel\(s\) but the model was trained on 1"
    with pytest.raises(ValueError, match=message):
        fitted.transform(X)


def test_transform_resizes_images_of_another_size(fitted, images):
    out = fitted.transform(np.repeat(np.repeat(images[:3], 2, axis=1), 2, axis=2))
    assert out.shape == (3, 2)
    assert np.isfinite(out).all()


# --------------------------------------------------------------------------
# scikit-learn's estimator checks


class TabularTagsTSimCNE(TSimCNE):
    """TSimCNE declaring that it takes 2-D tables, so scikit-learn runs all its checks.

    With TSimCNE's own tags (image stacks, no 2-D tables) scikit-learn runs
    nothing beyond ``check_estimator_cloneable``.  Every check that fits on a
    2-D feature table is then expected to fail with TSimCNE's "expected a
    stack of images" error; the rest must pass.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


TINY_PARAMS = dict(backbone="resnet10-w8", epochs=(1,), batch_size=4, hidden_dim=16,
                   random_state=0, device="cpu")

_TABLES = "fits on a 2-D feature table, which TSimCNE rejects: it takes image stacks (N, H, W[, C])"
_MESSAGE_ABOUT = ("expects a message about {} of a 2-D table; TSimCNE says the 2-D array is not an "
                  "image stack")
_SPARSE = ("sparse matrices are not images; they are rejected as object arrays, without the word "
           "'sparse'")

EXPECTED_FAILED_CHECKS = {
    **{check: _TABLES for check in [
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_pipeline_consistency",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_transformer_data_not_an_array",
        "check_transformer_general",
        "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    ]},
    "check_estimators_empty_data_messages": _MESSAGE_ABOUT.format("0 features"),
    "check_fit2d_1sample": _MESSAGE_ABOUT.format("1 sample"),
    "check_fit2d_1feature": _MESSAGE_ABOUT.format("1 feature"),
    "check_estimators_nan_inf":
        "a 2-D table with NaN is rejected for its shape before its values are looked at",
    "check_complex_data":
        "complex images raise TypeError naming the dtype, not ValueError('Complex data not "
        "supported')",
    "check_dtype_object":
        "object arrays are rejected, not converted: images must have a bool, integer or float "
        "dtype",
    "check_estimator_sparse_tag": _SPARSE,
    "check_estimator_sparse_array": _SPARSE,
    "check_estimator_sparse_matrix": _SPARSE,
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS if isinstance(estimator, TabularTagsTSimCNE) else {}


with warnings.catch_warnings():
    # With its own tags TSimCNE gets only the cloning check; scikit-learn warns about that.
    warnings.simplefilter("ignore", SkipTestWarning)
    _sklearn_checks = parametrize_with_checks(
        [TSimCNE(**TINY_PARAMS), TabularTagsTSimCNE(**TINY_PARAMS)],
        expected_failed_checks=_expected_failed_checks, xfail_strict=True,
    )


@_sklearn_checks
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("augmentation, problem", [
    (lambda x: x[:, :, :8], r"returned shape \(4, 1, 8, 16\)"),
    (lambda x: x.double(), "returned dtype torch.float64"),
    (lambda x: x * float("nan"), "returned values that are not finite"),
    (lambda x: x.numpy(), "returned ndarray, not a tensor"),
])
def test_a_custom_augmentation_is_checked_on_its_first_call(make_estimator, images, augmentation,
                                                            problem):
    with pytest.raises(ValueError, match=f"The augmentation {problem}"):
        make_estimator(augmentation=augmentation).fit(images)


def test_a_checked_custom_augmentation_leaves_the_run_reproducible(make_estimator, images):
    def flip(x):
        return torch.flip(x, dims=[3]) if torch.rand(()) < 0.5 else x

    first = make_estimator(augmentation=flip, random_state=0).fit_transform(images)
    second = make_estimator(augmentation=flip, random_state=0).fit_transform(images)
    np.testing.assert_array_equal(first, second)


def test_a_changed_image_anywhere_is_a_different_run(make_estimator, images, tmp_path):
    collection = np.concatenate([images, images[:36]])  # 100 images
    with pytest.raises(TrainingStopped):  # stopped after its first checkpoint
        make_estimator(epochs=(2, 1, 1), checkpoint_dir=tmp_path, checkpoint_every=1,
                       callbacks=[lambda stage, epoch, loss: stage == 0]).fit(collection)
    for index in (2, 99):  # one of the images a sample of 64 would skip, and the last
        changed = collection.copy()
        changed[index] = 255 - changed[index]
        with pytest.raises(ValueError, match="different run.*images"):
            make_estimator(epochs=(2, 1, 1), checkpoint_dir=tmp_path,
                           checkpoint_every=1).fit(changed, resume=True)


@pytest.mark.parametrize("remove", ["versions", "embedding", "intensity_range"])
def test_a_model_file_missing_a_key_is_a_clear_error(fitted, tmp_path, remove):
    path = fitted.save(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    del payload[remove]
    torch.save(payload, path)
    with pytest.raises(ValueError, match=f"incomplete or inconsistent model file .*no '{remove}'"):
        TSimCNE.load(path)


def test_compile_on_a_gpu_is_refused_clearly_where_triton_is_turned_off(monkeypatch):
    from napari_tsimcne.trainer import check_compile_possible

    monkeypatch.delitem(sys.modules, "triton", raising=False)
    check_compile_possible(torch.device("cuda"))  # triton not turned off: nothing to say
    monkeypatch.setitem(sys.modules, "triton", None)  # as the guard leaves it beside napari
    with pytest.raises(ValueError, match="compile=True needs triton on a GPU.*without napari"):
        check_compile_possible(torch.device("cuda"))
    check_compile_possible(torch.device("cpu"))  # the CPU's compiler needs no triton


def test_the_progress_bar_of_a_stage_follows_a_revised_plan():
    from napari_tsimcne.estimator import _ProgressBars
    from napari_tsimcne.schedule import make_stages

    bars = _ProgressBars()
    bar = bars.open(make_stages((30, 5, 10), lr=0.1)[0])
    bars.on_train_begin(make_stages((24, 5, 8), lr=0.1))
    assert bar.total == 24
    bar.close()
