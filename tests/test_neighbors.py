"""Neighbour positives and the readout stage on cached features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.feature_cache import HeadRun, cache_features
from napari_tsimcne.neighbors import neighbor_graph, partners
from napari_tsimcne.schedule import make_stages


def brute_force_neighbors(features, k):
    distances = ((features[:, None] - features[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    return np.argsort(distances, axis=1, kind="stable")[:, :k]


def test_neighbor_graph_matches_brute_force_and_never_lists_an_image_itself():
    features = np.random.default_rng(0).normal(size=(200, 6))
    graph = neighbor_graph(features, k=7)
    assert graph.shape == (200, 7) and graph.dtype == torch.int64
    expected = brute_force_neighbors(features, 7)
    assert all(set(graph[i].tolist()) == set(expected[i]) for i in range(200))
    assert not (graph == torch.arange(200)[:, None]).any()


def test_neighbor_graph_has_fewer_neighbours_when_there_are_few_images():
    assert neighbor_graph(np.eye(4), k=15).shape == (4, 3)
    with pytest.raises(ValueError, match="at least two images"):
        neighbor_graph(np.ones((1, 3)), k=5)


def test_partners_are_neighbours_with_the_given_share_and_the_image_itself_otherwise():
    graph = torch.arange(1000)[:, None].add(torch.arange(1, 4)) % 1000  # neighbours i+1..i+3
    anchors = torch.arange(1000).repeat(20)
    chosen = partners(anchors, graph, 0.8, torch.Generator().manual_seed(0))
    offset = (chosen - anchors) % 1000
    assert set(offset.unique().tolist()) == {0, 1, 2, 3}
    assert (offset != 0).float().mean().item() == pytest.approx(0.8, abs=0.01)
    assert torch.equal(partners(anchors, graph, 0.0, torch.Generator()), anchors)
    assert torch.equal(partners(anchors, None, 0.8, torch.Generator()), anchors)


def test_same_generator_state_gives_the_same_partners():
    graph = torch.randint(0, 50, (50, 5))
    anchors = torch.randint(0, 50, (64,))
    first = partners(anchors, graph, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(first, partners(anchors, graph, 0.5, torch.Generator().manual_seed(3)))


def test_cache_holds_clean_and_augmented_features_and_leaves_the_network_as_it_was(
        small_network_and_images):
    network, images = small_network_and_images
    network.train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    cache = cache_features(network, images, make_augmentation("natural", 1, (16, 16)), n_views=3,
                           batch_size=40)
    assert cache.clean.shape == (96, 64) and cache.views.shape == (96, 3, 64)
    network.eval()
    with torch.no_grad():
        expected = network.features(images.tensor.float() / 255)
    torch.testing.assert_close(cache.clean, expected)
    # Augmented views differ from the clean image and from each other.
    assert not torch.allclose(cache.views[:, 0], cache.clean)
    assert not torch.allclose(cache.views[:, 0], cache.views[:, 1])
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_head_run_lowers_the_loss_and_moves_only_the_head(small_network_and_images):
    network, images = small_network_and_images
    torch.manual_seed(1)
    readout = make_stages((1, 30, 1), lr=0.1)[1]
    network.head.replace_readout(2)
    backbone = {k: v.clone() for k, v in network.backbone.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    run = HeadRun(network, images, readout, make_augmentation("natural", 1, (16, 16)),
                  generator, batch_size=32)
    assert run.graph.shape == (96, 15)
    losses = list(run.epochs(0, None, generator, lambda: False))
    assert len(losses) == 30 and np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert all(torch.equal(backbone[k], v) for k, v in network.backbone.state_dict().items())


def test_head_run_stops_between_steps_when_asked(small_network_and_images):
    network, images = small_network_and_images
    readout = make_stages((1, 5, 1), lr=0.1)[1]
    network.head.replace_readout(2)
    generator = torch.Generator().manual_seed(0)
    run = HeadRun(network, images, readout, make_augmentation("natural", 1, (16, 16)),
                  generator, batch_size=32)
    assert list(run.epochs(0, None, generator, lambda: True)) == []
