"""The projection head that maps backbone features ``H`` to the embedding ``Z``."""

from __future__ import annotations

from torch import nn

__all__ = ["HIDDEN_DIM", "PAPER_HIDDEN_DIM", "ProjectionHead"]

#: Hidden width of the projection head: the paper's, and the default.  In
#: 15-minute CPU runs on Fashion-MNIST the wider head gave the better map on
#: three seeds of four, held out and in the training map alike (means +0.007
#: each, ``benchmarks/RESULTS.md``), for pre-training epochs about 4% longer;
#: twice as wide again gained nothing more.
PAPER_HIDDEN_DIM, HIDDEN_DIM = 1024, 2048


class ProjectionHead(nn.Module):
    """``Linear(in_features, hidden) -> ReLU -> Linear(hidden, out_dim)``.

    The last linear layer is the *readout*: t-SimCNE trains with a 128-D
    readout first and then swaps in a fresh 2-D one (:meth:`replace_readout`).

    Parameters
    ----------
    in_features
        Dimension of the backbone features (512 for ResNet-18).
    out_dim
        Output dimension (128 for pre-training, 2 for the map).
    hidden_dim
        Width of the hidden layer (:data:`HIDDEN_DIM`; the paper's is
        :data:`PAPER_HIDDEN_DIM`).
    """

    def __init__(self, in_features: int, out_dim: int, hidden_dim: int = HIDDEN_DIM):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_features, hidden_dim), nn.ReLU(inplace=True))
        self.readout = nn.Linear(hidden_dim, out_dim)

    @property
    def out_dim(self) -> int:
        return self.readout.out_features

    def forward(self, h):
        return self.readout(self.hidden(h))

    def replace_readout(self, out_dim: int, weight_std: float = 1.0) -> None:
        """Replace the readout by a fresh ``Linear(hidden, out_dim)``.

        Its weights are drawn from ``N(0, weight_std^2)`` as in the reference
        implementation: the wide initial spread lets the new 2-D layout unfold
        instead of starting from a collapsed point cloud.
        """
        old = self.readout
        self.readout = nn.Linear(old.in_features, out_dim).to(
            device=old.weight.device, dtype=old.weight.dtype
        )
        nn.init.normal_(self.readout.weight, std=weight_std)
