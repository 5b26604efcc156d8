"""Distributed training on CPUs: two gloo processes under torchrun versus one process."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from napari_tsimcne import TSimCNE
from napari_tsimcne.distributed import (
    DistributedBatchNorm, gather_with_gradients, local_batchnorm, synchronize_batchnorm,
)

SCRIPT = Path(__file__).with_name("distributed_fit.py")


def run_script(out: Path, n_processes: int) -> None:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    if n_processes == 1:
        command = [sys.executable, str(SCRIPT), str(out)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={n_processes}", str(SCRIPT), str(out)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    run_script(root / "single", 1)
    run_script(root / "two", 2)
    single = torch.load(root / "single" / "rank0.pt")
    ranks = [torch.load(root / "two" / f"rank{r}.pt") for r in range(2)]
    return root, single, ranks


@pytest.mark.slow
def test_two_processes_take_the_single_process_step_on_the_same_global_batch(runs):
    _, single, ranks = runs
    assert single["world_size"] == 1 and [r["world_size"] for r in ranks] == [2, 2]
    for result in ranks:
        assert result["loss"] == pytest.approx(single["loss"], rel=1e-5)
        # lr 1, no momentum, no weight decay: weights moved by minus their
        # gradient, so equal weights mean equal gradients.  BatchNorm's running
        # statistics are equal only if they were taken over the global batch.
        assert result["state"].keys() == single["state"].keys()
        for name, value in single["state"].items():
            torch.testing.assert_close(result["state"][name], value, rtol=1e-4, atol=1e-5,
                                       msg=f"{name} differs")


def test_every_process_can_place_images_after_distributed_training(runs):
    _, single, ranks = runs
    for result in ranks:
        torch.testing.assert_close(result["embedding"], single["embedding"], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(result["transform"], single["transform"], rtol=1e-4, atol=1e-4)
        assert result["batchnorm_types"] == ["BatchNorm2d"]  # plain again after training


def test_decisions_from_measured_time_are_rank_0s_in_every_process(runs):
    _, single, ranks = runs
    assert single["rank_0_says"] == "rank 0"
    assert [result["rank_0_says"] for result in ranks] == ["rank 0", "rank 0"]


def test_only_rank_0_writes_the_model_file(runs):
    root, _, _ = runs
    assert (root / "two" / "model-saved-by-rank0.pt").exists()
    assert not (root / "two" / "model-saved-by-rank1.pt").exists()
    assert TSimCNE.load(root / "two" / "model-saved-by-rank0.pt", device="cpu").embedding_.shape == (16, 2)


def test_single_process_gather_and_batchnorm_are_unchanged():
    z = torch.randn(4, 2, requires_grad=True)
    assert gather_with_gradients(z) is z
    layer = DistributedBatchNorm(3).train()
    x = torch.randn(5, 3, 4, 4)
    torch.testing.assert_close(layer(x), nn.BatchNorm2d(3).train()(x))


def test_batchnorm_swaps_keep_weights_and_statistics():
    network = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.BatchNorm2d(2)))
    with torch.no_grad():
        network[1][0].weight.copy_(torch.tensor([2.0, 3.0]))
        network[1][0].running_mean.copy_(torch.tensor([0.5, -0.5]))
    synchronize_batchnorm(network, torch.device("cpu"))
    assert type(network[1][0]) is DistributedBatchNorm
    local_batchnorm(network)
    assert type(network[1][0]) is nn.BatchNorm2d
    np.testing.assert_array_equal(network[1][0].weight.detach().numpy(), [2.0, 3.0])
    np.testing.assert_array_equal(network[1][0].running_mean.numpy(), [0.5, -0.5])
