"""The InfoNCE losses against the paper's formulas written out view by view."""

from __future__ import annotations

import math

import pytest
import torch

from napari_tsimcne.loss import CauchyInfoNCELoss, CosineInfoNCELoss, make_loss


def cauchy_similarity(u, v):
    """q = 1 / (1 + d^2) of the Euclidean distance d (Eq. 5)."""
    return 1 / (1 + ((u - v) ** 2).sum())


def cosine_similarity_over_temperature(temperature):
    """exp(cos(u, v) / tau), SimCLR's similarity (Eq. 1)."""

    def similarity(u, v):
        cosine = (u * v).sum() / (u.norm() * v.norm())
        return torch.exp(cosine / temperature)

    return similarity


def brute_force_info_nce(z_a, z_b, similarity):
    """Eq. 4 with explicit loops: mean over all 2b views of -log(s_ij / sum_{k != i} s_ik)."""
    z = torch.cat([z_a, z_b])
    n_views = len(z)
    b = n_views // 2
    total = 0
    for i in range(n_views):
        j = (i + b) % n_views  # the other view of the same image
        normaliser = sum(similarity(z[i], z[k]) for k in range(n_views) if k != i)
        total = total - torch.log(similarity(z[i], z[j]) / normaliser)
    return total / n_views


LOSSES = [
    pytest.param(CauchyInfoNCELoss(), cauchy_similarity, id="cauchy"),
    pytest.param(CosineInfoNCELoss(), cosine_similarity_over_temperature(0.5),
                 id="cosine-default-0.5"),
    pytest.param(CosineInfoNCELoss(temperature=0.2), cosine_similarity_over_temperature(0.2),
                 id="cosine-0.2"),
]


@pytest.mark.parametrize("loss_fn, similarity", LOSSES)
@pytest.mark.parametrize("batch, dim", [(2, 2), (5, 2), (4, 16)])
def test_loss_value_and_gradient_match_brute_force_formula(loss_fn, similarity, batch, dim):
    generator = torch.Generator().manual_seed(batch * 100 + dim)
    z = torch.randn(2 * batch, dim, dtype=torch.float64, generator=generator) * 2
    z_fast = z.clone().requires_grad_(True)
    z_slow = z.clone().requires_grad_(True)

    fast = loss_fn(z_fast[:batch], z_fast[batch:])
    slow = brute_force_info_nce(z_slow[:batch], z_slow[batch:], similarity)
    fast.backward()
    slow.backward()

    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(z_fast.grad, z_slow.grad, rtol=1e-8, atol=1e-12)
    assert z_fast.grad.abs().sum() > 0


def _far_apart(scale):
    grid = torch.arange(16, dtype=torch.float32).reshape(8, 2)
    return grid * scale


EXTREME_CONFIGURATIONS = {
    "points 1e4 apart": _far_apart(1e4),
    "points 1e15 apart": _far_apart(1e15),
    "all points identical": torch.zeros(8, 2),
    "identical pairs far from each other": torch.cat([_far_apart(1e4)[:4]] * 2),
    "one point far from a tight cluster": torch.cat([torch.zeros(7, 2), torch.full((1, 2), 1e6)]),
}


@pytest.mark.parametrize("loss_fn", [CauchyInfoNCELoss(), CosineInfoNCELoss()],
                         ids=["cauchy", "cosine"])
@pytest.mark.parametrize("z", EXTREME_CONFIGURATIONS.values(), ids=EXTREME_CONFIGURATIONS.keys())
def test_loss_and_gradient_are_finite_in_float32_for_extreme_configurations(loss_fn, z):
    z = z.clone().requires_grad_(True)
    loss = loss_fn(z[:4], z[4:])
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    assert torch.isfinite(z.grad).all()


def test_cauchy_loss_of_identical_pairs_far_apart_approaches_its_minimum():
    # Each view's positive is at distance 0 (q = 1) and all negatives are far
    # away (q -> 0), so -log(q_ij / sum_k q_ik) -> -log(1 / 1) = 0.
    z = torch.cat([_far_apart(1e4)[:4]] * 2)
    assert CauchyInfoNCELoss()(z[:4], z[4:]).item() < 1e-6


def test_cauchy_loss_of_all_identical_points_is_log_of_negatives_plus_one():
    # All q = 1: each view's loss is -log(1 / (2b - 1)).
    b = 4
    loss = CauchyInfoNCELoss()(torch.zeros(b, 2), torch.zeros(b, 2))
    assert loss.item() == pytest.approx(math.log(2 * b - 1), rel=1e-6)


@pytest.mark.parametrize("loss_fn", [CauchyInfoNCELoss(), CosineInfoNCELoss()],
                         ids=["cauchy", "cosine"])
def test_aligned_well_separated_configuration_has_lower_loss_than_random(loss_fn):
    generator = torch.Generator().manual_seed(0)
    b = 16
    # Positives coincide; the images sit on a wide circle, so for the cosine
    # loss they are also well separated in angle.
    angle = torch.arange(b) * (2 * math.pi / b)
    anchors = 20 * torch.stack([angle.cos(), angle.sin()], dim=1)
    aligned = loss_fn(anchors, anchors.clone())
    random = loss_fn(torch.randn(b, 2, generator=generator), torch.randn(b, 2, generator=generator))
    assert aligned < random - 1


def test_loss_does_not_depend_on_which_view_comes_first():
    generator = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(2, 6, 3, dtype=torch.float64, generator=generator)
    loss_fn = CauchyInfoNCELoss()
    torch.testing.assert_close(loss_fn(z_a, z_b), loss_fn(z_b, z_a))


@pytest.mark.parametrize("metric, cls", [
    ("euclidean", CauchyInfoNCELoss), ("cosine", CosineInfoNCELoss),
])
def test_make_loss_returns_the_named_loss(metric, cls):
    assert isinstance(make_loss(metric), cls)


def test_make_loss_rejects_unknown_metric():
    with pytest.raises(ValueError, match="Unknown loss metric 'manhattan'"):
        make_loss("manhattan")
