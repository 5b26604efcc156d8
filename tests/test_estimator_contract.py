"""scikit-learn's estimator contract, checked on images.

scikit-learn's own checks (``test_estimator.py``) feed 2-D tables, which an
image transformer rejects, so most of them cannot run on TSimCNE.  These tests
state the parts of the contract that matter for an image transformer with the
images it is made for.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from napari_tsimcne import TSimCNE

from conftest import FAST_PARAMS, make_class_images


def _fitted_state(estimator) -> dict:
    return {name: value for name, value in vars(estimator).items()
            if name.endswith("_") and not name.startswith("_")}


def test_fit_returns_self_and_leaves_the_parameters_as_given(images):
    estimator = TSimCNE(**FAST_PARAMS)  # "auto" batch, image size and augmentation stay "auto"
    before = estimator.get_params(deep=False)
    assert estimator.fit(images) is estimator
    after = estimator.get_params(deep=False)
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert after[name] is value or after[name] == value, name
    assert estimator.get_params()["image_size"] == "auto"


@pytest.mark.slow
def test_fit_is_idempotent_and_a_clone_fits_the_same_map(fitted, images):
    first = TSimCNE(**FAST_PARAMS)
    once = first.fit_transform(images)
    twice = first.fit_transform(images)
    np.testing.assert_array_equal(once, twice)
    np.testing.assert_array_equal(clone(first).fit_transform(images), once)
    np.testing.assert_array_equal(fitted.embedding_, once)


@pytest.mark.slow
def test_a_second_fit_keeps_nothing_of_the_first(images):
    other_images = make_class_images(48, 24, seed=5)[0]  # other count, size and content
    reused = TSimCNE(**FAST_PARAMS).fit(other_images)
    np.testing.assert_array_equal(reused.fit_transform(images),
                                  TSimCNE(**FAST_PARAMS).fit_transform(images))
    assert reused.embedding_.shape == (len(images), 2)
    assert reused.image_shape_ == TSimCNE(**FAST_PARAMS).fit(images).image_shape_


@pytest.mark.slow
def test_set_params_between_fits_takes_effect_and_nothing_else_changes(images):
    estimator = TSimCNE(**FAST_PARAMS).fit(images)
    state_names = set(_fitted_state(estimator))
    estimator.set_params(out_dim=3).fit(images)
    assert estimator.embedding_.shape == (len(images), 3)
    assert set(_fitted_state(estimator)) == state_names


def test_transform_is_invariant_to_sample_order_and_subsets(fitted, images):
    everything = fitted.transform(images)
    order = np.random.default_rng(0).permutation(len(images))
    np.testing.assert_allclose(fitted.transform(images[order]), everything[order], atol=1e-5)
    np.testing.assert_allclose(fitted.transform(images[10:13]), everything[10:13], atol=1e-5)


def test_transform_reads_read_only_and_memory_mapped_images(fitted, images, tmp_path):
    np.save(tmp_path / "images.npy", images)
    mapped = np.load(tmp_path / "images.npy", mmap_mode="r")
    frozen = images.copy()
    frozen.flags.writeable = False
    expected = fitted.transform(images)
    np.testing.assert_array_equal(fitted.transform(mapped), expected)
    np.testing.assert_array_equal(fitted.transform(frozen), expected)
    assert TSimCNE(**FAST_PARAMS).fit(mapped).embedding_.dtype == np.float32


def test_input_is_not_modified(images):
    copy = images.copy()
    TSimCNE(**FAST_PARAMS).fit(images).transform(images)
    np.testing.assert_array_equal(images, copy)


def test_a_pickled_fitted_estimator_transforms_the_same(fitted, images):
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(images[:8]), fitted.transform(images[:8]))
    assert restored.get_params() == fitted.get_params()


def test_transform_before_fit_says_to_fit_first(images):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        TSimCNE(**FAST_PARAMS).transform(images)
