"""The full t-SimCNE network: intensity normalisation, backbone and projection head."""

from __future__ import annotations

import torch
from torch import nn

from .backbones import make_backbone
from .heads import HIDDEN_DIM, ProjectionHead

__all__ = ["TSimCNENetwork"]


class TSimCNENetwork(nn.Module):
    """Maps images in ``[0, 1]`` of shape ``(N, C, H, W)`` to embeddings ``(N, out_dim)``.

    The per-channel mean and standard deviation of the training images are
    buffers of the network, so a saved network standardises new images exactly
    as it did the training images.

    Parameters
    ----------
    backbone
        Backbone name, see :func:`napari_tsimcne.backbones.make_backbone`.
    in_channels
        Number of image channels.
    out_dim
        Output dimension of the readout.
    hidden_dim
        Hidden width of the projection head.
    """

    def __init__(self, backbone: str, in_channels: int, out_dim: int,
                 hidden_dim: int = HIDDEN_DIM):
        super().__init__()
        self.register_buffer("channel_mean", torch.zeros(in_channels))
        self.register_buffer("channel_std", torch.ones(in_channels))
        self.backbone = make_backbone(backbone, in_channels)
        self.head = ProjectionHead(self.backbone.out_features, out_dim, hidden_dim)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.channel_mean[:, None, None]) / self.channel_std[:, None, None]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features ``H`` of shape ``(N, backbone.out_features)``."""
        return self.backbone(self.standardize(x))

    def forward(self, x: torch.Tensor, return_features: bool = False):
        """The embedding ``(N, out_dim)``; with ``return_features``, also the features
        ``H`` of the same pass: ``(embedding, features)``."""
        h = self.features(x)
        # Map coordinates need float32's precision even where the backbone runs
        # under autocast (bf16 keeps 8 bits: +-0.25 at a coordinate of 50).
        with torch.autocast(x.device.type, enabled=False):
            z = self.head(h.float())
        return (z, h) if return_features else z

    def readout_parameters(self):
        return self.head.readout.parameters()

    def set_trainable(self, readout_only: bool) -> None:
        """Freeze everything but the readout (``readout_only=True``) or unfreeze all."""
        for parameter in self.parameters():
            parameter.requires_grad_(not readout_only)
        for parameter in self.readout_parameters():
            parameter.requires_grad_(True)
