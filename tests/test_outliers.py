"""Outlier scores and groups of near-duplicates, in any vectors."""

import numpy as np
import pytest

from napari_tsimcne.plugin.outliers import (
    group_numbers,
    most_unusual,
    near_duplicate_groups,
    outlier_scores,
)


def test_the_isolated_point_has_the_highest_outlier_score():
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0, 1, (200, 8)), [[8.0] * 8]])
    scores = outlier_scores(vectors, normalize=False)
    assert np.argmax(scores) == 200 and scores[200] > 2
    assert np.median(scores) == pytest.approx(1, abs=0.2)


def test_normalized_outlier_scores_ignore_the_length_of_vectors():
    rng = np.random.default_rng(1)
    vectors = rng.normal(0, 1, (100, 8))
    lengths = rng.uniform(1, 10, (100, 1))
    np.testing.assert_allclose(outlier_scores(vectors), outlier_scores(vectors * lengths))


def test_the_most_unusual_come_first_ties_in_row_order():
    assert most_unusual([0.5, 2.0, 1.0, 2.0], 3).tolist() == [1, 3, 2]
    assert most_unusual([1.0], 5).tolist() == [0]


def test_near_duplicates_are_grouped_tightest_first():
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 1, (100, 16))
    vectors[10] = vectors[3] + 1e-4
    vectors[50] = vectors[3] + 2e-4
    vectors[70] = vectors[20] + 1e-2
    groups = near_duplicate_groups(vectors)
    assert [g.tolist() for g in groups] == [[3, 10, 50], [20, 70]]
    assert near_duplicate_groups(vectors, tolerance=1e-6) == []


def test_group_numbers_mark_every_image_of_a_group():
    groups = [np.array([3, 10]), np.array([0, 4, 5])]
    assert group_numbers(groups, 12).tolist() == [1, -1, -1, 0, 1, 1, -1, -1, -1, -1, 0, -1]
    assert group_numbers([], 3).tolist() == [-1, -1, -1]
