"""The 2-D readout stage on cached backbone features.

In the paper's readout stage the backbone is frozen, yet every step runs it
on two fresh augmentations of every image: the stage costs about as much as
pre-training per epoch and, on a short budget, gets too few steps to lay the
features out in 2-D.  Here the backbone runs once: it computes the features
``H`` of a few augmentations of every image (the *cache*), and the projection
head alone (its hidden layer and a fresh 2-D readout) is trained on them with
Adam, with large batches and many steps, in seconds on a CPU.  Positive pairs
are two cached augmentations of one image and, with the stage's
``neighbor_share``, an image and one of its nearest neighbours in ``H``
(:mod:`napari_tsimcne.neighbors`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .loss import make_loss
from .neighbors import neighbor_graph, partners
from .schedule import NEIGHBORS, Stage
from .threads import ThreadGovernor, governing

__all__ = ["CACHE_BATCH_SIZE", "CACHED_VIEWS", "FeatureCache", "HeadRun", "cache_features"]

#: Augmentations per image in the cache.
CACHED_VIEWS = 8
#: Anchor images per step of the head: ``2 * 512`` views, many negatives.
CACHE_BATCH_SIZE = 512


@dataclass
class FeatureCache:
    """Backbone features of the training images.

    Attributes
    ----------
    clean : tensor (N, D)
        Features of the images as they are (what ``transform`` sees).
    views : tensor (N, V, D)
        Features of ``V`` random augmentations of every image.
    """

    clean: torch.Tensor
    views: torch.Tensor

    def __len__(self) -> int:
        return self.clean.shape[0]


@torch.no_grad()
def cache_features(network, images, augment, n_views: int = CACHED_VIEWS,
                   batch_size: int = 256, governor: ThreadGovernor | None = None) -> FeatureCache:
    """Features of every image and of ``n_views`` augmentations of it, in eval mode.

    ``images`` are :class:`~napari_tsimcne.data.DeviceImages` or
    :class:`~napari_tsimcne.data.StreamedImages`; the features stay on their
    device.  The augmentations draw from torch's global generator.  Every
    forward pass runs under ``governor`` (training's), or under one of its own
    (:func:`~napari_tsimcne.threads.governing`).
    """
    was_training = network.training
    network.eval()
    with governing(images.device, governor) as governor:
        governor.start_stage()

        def features(x):
            with governor.step():
                return network.features(x).float()

        try:
            clean, views = [], []
            for batch in images.chunks(batch_size):
                x = batch.float().div_(255)
                clean.append(features(x))
                views.append(torch.stack([features(augment(x)) for _ in range(n_views)], dim=1))
        finally:
            network.train(was_training)
    return FeatureCache(torch.cat(clean), torch.cat(views))


class HeadRun:
    """The readout stage on cached features, with the interface of the trainer's stage runs.

    Building it computes the cache (and, for ``stage.neighbor_share > 0``, the
    neighbour graph of the clean features, :attr:`graph`).  The cache's
    augmentations draw from a generator seeded by ``order_generator``, which
    every process of a distributed run shares, so that all compute the same head.
    The stage is short: it is checkpointed at its end only
    (:attr:`checkpoints_within` is false).
    """

    checkpoints_within = False

    def __init__(self, network, images, stage: Stage, augment, order_generator: torch.Generator,
                 governor: ThreadGovernor | None = None, batch_size: int = CACHE_BATCH_SIZE):
        self.head, self.stage = network.head, stage
        self.batch_size = batch_size
        # Without a governor, the steps run on torch's threads as they are.
        self.governor = governor if governor is not None else ThreadGovernor(1)
        network.set_trainable(readout_only=False)
        network.backbone.requires_grad_(False)
        seed = int(torch.randint(2**62, (), generator=order_generator))
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            self.cache = cache_features(network, images, augment, governor=self.governor)
        self.graph = None
        if stage.neighbor_share > 0:
            self.graph = neighbor_graph(self.cache.clean.cpu().numpy(), NEIGHBORS, random_state=seed)
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=stage.lr)
        self.steps_per_epoch = math.ceil(len(self.cache) / batch_size)

    def epochs(self, first_epoch, augment, order_generator, stop_requested):
        """Generator: trains epochs ``first_epoch..`` of the head, yielding each one's mean loss.

        Each step pairs the cached view of ``batch_size`` random anchors with
        one of their partner (the anchor itself or a neighbour); the rate is
        annealed from ``stage.lr`` to 0 on a cosine over the stage.
        """
        loss_fn = make_loss(self.stage.loss)
        views = self.cache.views
        n, n_views = views.shape[:2]
        device = views.device
        total_steps = self.steps_per_epoch * self.stage.epochs
        self.head.train()
        self.governor.start_stage()
        for epoch in range(first_epoch, self.stage.epochs):
            epoch_loss = torch.zeros((), device=device)
            for step in range(self.steps_per_epoch):
                if stop_requested():
                    return
                progress = (epoch * self.steps_per_epoch + step) / total_steps
                self.optimizer.param_groups[0]["lr"] = (
                    self.stage.lr * 0.5 * (1 + math.cos(math.pi * progress)))
                anchors = torch.randint(n, (self.batch_size,), generator=order_generator)
                positives = partners(anchors, self.graph, self.stage.neighbor_share,
                                     order_generator)
                first = torch.randint(n_views, (self.batch_size,), generator=order_generator)
                # Another view than the anchor's, so that no pair is one vector twice.
                second = (first + torch.randint(1, max(n_views, 2), (self.batch_size,),
                                                generator=order_generator)) % n_views
                with self.governor.step():
                    loss = loss_fn(self.head(views[anchors.to(device), first.to(device)]),
                                   self.head(views[positives.to(device), second.to(device)]))
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                epoch_loss += loss.detach()
            yield float(epoch_loss) / self.steps_per_epoch

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": {}}
