"""The CUDA path: accelerated training steps, compilation, models across devices, the
device choice and the distributed step with NCCL.

Every test needs a CUDA GPU; ``benchmarks/gpu_check.sh`` runs them on one.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST_PARAMS

from napari_tsimcne import TSimCNE
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.devices import resolve_device
from napari_tsimcne.loss import CauchyInfoNCELoss
from napari_tsimcne.network import TSimCNENetwork
from napari_tsimcne.trainer import Accelerations, training_step

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

CUDA = torch.device("cuda")
NCCL_SCRIPT = Path(__file__).with_name("nccl_fit.py")


def test_bf16_channels_last_fused_sgd_steps_lower_the_loss(images):
    accelerations = Accelerations.for_device(CUDA)
    assert accelerations == Accelerations(torch.bfloat16, channels_last=True,
                                          fused_optimizer=True)
    torch.manual_seed(0)
    network = accelerations.prepare(TSimCNENetwork("resnet10-w16", 1, 128, 64).to(CUDA))
    optimizer = accelerations.optimizer(network.parameters(), 0.03, 0.9, 5e-4)
    batch = torch.from_numpy(images[:, None]).to(CUDA)
    augment = make_augmentation("microscopy", 1, images.shape[1:])
    feature_dtypes = set()
    network.backbone.register_forward_hook(lambda module, x, h: feature_dtypes.add(h.dtype))

    losses = [float(training_step(network, batch, augment, CauchyInfoNCELoss(), optimizer,
                                  accelerations)) for _ in range(30)]

    assert feature_dtypes == {torch.bfloat16}
    assert all(p.is_contiguous(memory_format=torch.channels_last)
               for p in network.parameters() if p.dim() == 4)
    assert optimizer.defaults["fused"]
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.1, losses


def test_compiled_training_matches_eager_training(images):
    from torch._dynamo.utils import counters

    # fp32 (TF32 convolutions in both runs): bf16 would round the two differently.
    params = {**FAST_PARAMS, "device": "cuda", "epochs": (2,), "precision": "fp32"}
    eager = TSimCNE(**params).fit(images)
    counters.clear()
    compiled = TSimCNE(**params, compile=True).fit(images)

    assert counters["stats"]["unique_graphs"] >= 1
    np.testing.assert_allclose(compiled.loss_history_[0], eager.loss_history_[0], rtol=1e-2)
    assert np.isfinite(compiled.embedding_).all()


@pytest.fixture(scope="module")
def fitted_on_auto(images):
    return TSimCNE(**{**FAST_PARAMS, "device": "auto"}).fit(images)


def test_auto_device_is_the_gpu(fitted_on_auto):
    assert resolve_device("auto") == CUDA
    assert fitted_on_auto.device_.type == "cuda"
    assert {p.device.type for p in fitted_on_auto.model_.network.parameters()} == {"cuda"}


def test_model_saved_on_the_gpu_places_images_alike_on_the_cpu(fitted_on_auto, images, tmp_path):
    fitted_on_auto.save(tmp_path / "model.pt")
    on_cpu = TSimCNE.load(tmp_path / "model.pt", device="cpu")

    assert {p.device.type for p in on_cpu.model_.network.parameters()} == {"cpu"}
    on_gpu = fitted_on_auto.transform(images)
    # The GPU convolves in TF32 (10 mantissa bits), the CPU in float32.
    np.testing.assert_allclose(on_cpu.transform(images), on_gpu, rtol=0,
                               atol=1e-2 * np.abs(on_gpu).max())


def test_fit_on_the_command_line_and_in_python_resolve_the_gpu_s_batch_and_backbone(tmp_path):
    from napari_tsimcne.cli import main
    from napari_tsimcne.model import TSimCNEModel

    # Enough images for the paper's batch of 1024 (about an eighth of them).
    images = np.random.default_rng(0).integers(0, 255, (8192, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    assert main(["fit", str(tmp_path / "images.npy"), "--out", str(tmp_path / "out"),
                 "--epochs", "1", "--device", "cuda", "--checkpoint-every", "0", "--quiet"]) == 0
    from_cli = TSimCNEModel.load(tmp_path / "out" / "model.pt", device="cpu")
    from_library = TSimCNE(epochs=(1,), device="cuda", random_state=0).fit(images)
    assert (from_cli.backbone, from_cli.batch_size) == (
        from_library.backbone_, from_library.batch_size_) == ("resnet18", 1024)


def test_distributed_step_under_torchrun_with_nccl(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
         str(NCCL_SCRIPT), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = torch.load(tmp_path / "result.pt")

    assert runs["backend"] == "nccl"
    alone, distributed = runs["alone"], runs["distributed"]
    assert {"DistributedDataParallel", "SyncBatchNorm"} <= set(distributed["modules_run"])
    assert not {"DistributedDataParallel", "SyncBatchNorm"} & set(alone["modules_run"])
    assert distributed["norm_layers_after"] == ["BatchNorm2d"]
    assert distributed["loss"] == pytest.approx(alone["loss"], rel=1e-4)
    for name, value in alone["state"].items():
        torch.testing.assert_close(distributed["state"][name], value, rtol=1e-3, atol=1e-4,
                                   msg=f"{name} differs")
