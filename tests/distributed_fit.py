"""One training step of ``TSimCNE``, run alone or under ``torchrun`` by ``test_distributed.py``.

    python tests/distributed_fit.py OUT_DIR
    torchrun --standalone --nproc-per-node 2 tests/distributed_fit.py OUT_DIR

Trains 16 fixed random images for one step (one epoch of one global batch)
with no augmentation, learning rate 1, no momentum and no weight decay, so
that the step moves every weight by exactly minus its gradient.  Writes the
loss, the weights, the BatchNorm statistics, the embedding and ``transform``
of the images to ``OUT_DIR/rank{R}.pt``; rank 0 also saves the model.
"""

import sys
from pathlib import Path

import numpy as np
import torch

from napari_tsimcne import TSimCNE, distributed

N_IMAGES = 16


def no_augmentation(x):
    return x


def main(out: Path) -> None:
    torch.set_num_threads(1)
    images = np.random.default_rng(0).integers(0, 256, (N_IMAGES, 12, 12, 1), dtype=np.uint8)
    estimator = TSimCNE(
        epochs=(1,), batch_size=N_IMAGES, backbone="resnet10-w8", hidden_dim=32,
        augmentation=no_augmentation, lr=1.0, momentum=0.0, weight_decay=0.0,
        warmup_epochs=0, device="cpu", random_state=0,
        precision="fp32",  # bf16 rounds differently for differently split batches
    ).fit(images)
    rank = distributed.rank()
    torch.save({
        "world_size": distributed.world_size(),
        "loss": float(estimator.loss_history_[0][0]),
        "state": estimator.model_.network.state_dict(),
        "embedding": torch.from_numpy(estimator.embedding_),
        "transform": torch.from_numpy(estimator.transform(images[::-1].copy())),
        "batchnorm_types": sorted({type(m).__name__ for m in estimator.model_.network.modules()
                                   if "Norm" in type(m).__name__}),
        "rank_0_says": distributed.same_on_all_processes(f"rank {rank}"),
    }, out / f"rank{rank}.pt")
    estimator.save(out / f"model-saved-by-rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
