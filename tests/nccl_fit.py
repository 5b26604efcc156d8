"""One training step on the distributed path with NCCL, run by ``test_cuda.py``.

    torchrun --standalone --nproc-per-node 1 tests/nccl_fit.py OUT_DIR

NCCL refuses two processes on one GPU, and a process group of one trains as
a single process would, so this script makes its group of one take the path
of several (``distributed.is_distributed``): the NCCL gather of the
embeddings and its backward, DistributedDataParallel's gradient all-reduce
and SyncBatchNorm all run on the GPU.
Statistics synchronised between processes are what one GPU cannot show;
``test_distributed.py`` checks those with two CPU processes.

The step (``distributed_fit.py``'s: 16 fixed images, no augmentation,
learning rate 1, no momentum or weight decay) runs once alone and once on
that path; both results, with the types of the modules that ran, go to
``OUT_DIR/result.pt``.
"""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.modules.module import register_module_forward_hook

from napari_tsimcne import TSimCNE, distributed

N_IMAGES = 16


def no_augmentation(x):
    return x


def fit(images) -> dict:
    modules_run = set()
    hook = register_module_forward_hook(
        lambda module, args, output: modules_run.add(type(module).__name__))
    try:
        estimator = TSimCNE(
            epochs=(1,), batch_size=N_IMAGES, backbone="resnet10-w8", hidden_dim=32,
            augmentation=no_augmentation, lr=1.0, momentum=0.0, weight_decay=0.0,
            warmup_epochs=0, device="cuda", random_state=0, precision="fp32",
        ).fit(images)
    finally:
        hook.remove()
    return {
        "loss": float(estimator.loss_history_[0][0]),
        "state": {k: v.cpu() for k, v in estimator.model_.network.state_dict().items()},
        "modules_run": sorted(modules_run),
        "norm_layers_after": sorted({type(m).__name__ for m in estimator.model_.network.modules()
                                     if "Norm" in type(m).__name__}),
    }


def main(out: Path) -> None:
    dist.init_process_group("nccl", device_id=torch.device("cuda", distributed.local_rank()))
    images = np.random.default_rng(0).integers(0, 256, (N_IMAGES, 12, 12, 1), dtype=np.uint8)
    alone = fit(images)
    distributed.is_distributed = lambda: True
    result = {"backend": dist.get_backend(), "alone": alone, "distributed": fit(images)}
    torch.save(result, out / "result.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
