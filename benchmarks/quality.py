"""Time to quality: Fashion-MNIST, held-out kNN accuracy within a wall-clock budget or schedule.

Trains on the first ``--n-train`` training images of Fashion-MNIST (Debian's
``dataset-fashion-mnist``), places the first ``--n-test`` test images with
``transform`` and reports the kNN (k=15) accuracy of those test points among
the training points, as the paper measures it.

With ``--budget-minutes`` the epochs of the three stages are planned from the
measured step time so that training fits the budget (split ``--split`` of the
time); otherwise ``--epochs`` is used as given.  ``--baselines`` adds openTSNE
on raw pixels (fit on train, ``transform`` test) and t-SNE on our backbone
features H.

Benchmark 2, 15 minutes on the CPU (best CPU settings are the defaults of ``TSimCNE``):

    python benchmarks/quality.py --budget-minutes 15 --baselines --name quality_cpu_15min

Benchmark 3 on a GPU: all 60,000 training images, a reduced paper schedule:

    python benchmarks/quality.py --device cuda --n-train 60000 --n-test 10000 \
        --backbone resnet18 --batch-size 1024 --epochs 100 5 45 --name quality_gpu_fmnist

It reports the seconds per epoch and training views per second as well.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from _common import peak_rss_mib, write_json
from napari_tsimcne import TSimCNE
from napari_tsimcne.augmentation import make_augmentation
from napari_tsimcne.datasets import load_fashion_mnist
from napari_tsimcne.loss import CauchyInfoNCELoss
from napari_tsimcne.metrics import knn_accuracy, pixel_tsne_baseline
from napari_tsimcne.network import TSimCNENetwork
from napari_tsimcne.trainer import Accelerations, training_step


def seconds_per_epoch(x_train, args) -> tuple[float, float]:
    """Seconds per epoch of a full training step and of a readout-only step.

    Times real steps on the first batch of the training images with the
    accelerations ``fit`` uses on this machine: 3 warm-up steps, then the
    median of 8, scaled to ``len(x_train) // batch_size`` steps.
    """
    torch.manual_seed(0)
    batch = torch.from_numpy(np.ascontiguousarray(x_train[: args.batch_size]))[:, None]
    network = TSimCNENetwork(args.backbone, 1, 128, args.hidden_dim)
    accelerations = Accelerations.for_device(torch.device("cpu"), args.precision)
    accelerations.prepare(network)
    augment = make_augmentation(args.augmentation, 1, (28, 28), tuple(args.crop_scale))
    steps = len(x_train) // args.batch_size
    epoch_seconds = []
    for readout_only in (False, True):
        network.set_trainable(readout_only)
        optimizer = accelerations.optimizer(
            [p for p in network.parameters() if p.requires_grad], 0.01, 0.9, 5e-4)
        times = []
        for _ in range(11):
            start = time.perf_counter()
            training_step(network, batch, augment, CauchyInfoNCELoss(), optimizer, accelerations)
            times.append(time.perf_counter() - start)
        epoch_seconds.append(float(np.median(times[3:])) * steps)
    return epoch_seconds[0], epoch_seconds[1]


def plan_epochs(budget_s: float, epoch_s: float, readout_epoch_s: float, split):
    """Epochs per stage so that the stages take ``split`` shares of ``budget_s``."""
    pretrain = max(1, int(budget_s * split[0] / epoch_s))
    readout = max(1, int(budget_s * split[1] / readout_epoch_s))
    finetune = max(1, int(budget_s * split[2] / epoch_s))
    return pretrain, readout, finetune


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--backbone", default="resnet10-w32")
    parser.add_argument("--epochs", type=int, nargs="+", default=[40, 5, 15])
    parser.add_argument("--budget-minutes", type=float)
    parser.add_argument("--split", type=float, nargs=3, default=[0.7, 0.05, 0.25])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", nargs="+", default=["auto"],
                        help="'auto', one peak rate, or one rate per stage")
    parser.add_argument("--hidden-dim", type=int, default=1024)
    parser.add_argument("--augmentation", default="natural")
    parser.add_argument("--crop-scale", type=float, nargs=2, default=[0.2, 1.0])
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", default="quality")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x_train, y_train = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    x_train, y_train = x_train[: args.n_train], y_train[: args.n_train]
    x_test, y_test = x_test[: args.n_test], y_test[: args.n_test]
    epochs = tuple(args.epochs)
    if args.budget_minutes:
        epoch_s, readout_epoch_s = seconds_per_epoch(x_train, args)
        epochs = plan_epochs(60 * args.budget_minutes, epoch_s, readout_epoch_s, args.split)
        print(f"{epoch_s:.1f} s per epoch ({readout_epoch_s:.1f} s readout only) -> epochs "
              f"{epochs}", flush=True)
    lr = "auto" if args.lr == ["auto"] else tuple(float(r) for r in args.lr)
    lr = lr[0] if isinstance(lr, tuple) and len(lr) == 1 else lr
    estimator = TSimCNE(
        epochs=epochs, batch_size=args.batch_size, backbone=args.backbone, lr=lr,
        hidden_dim=args.hidden_dim, augmentation=args.augmentation,
        crop_scale=tuple(args.crop_scale), device=args.device, random_state=args.seed,
        verbose=True,
        precision=args.precision,
    )
    start = time.perf_counter()
    train_embedding = estimator.fit_transform(x_train)
    train_s = time.perf_counter() - start
    test_embedding = estimator.transform(x_test)
    rows = {"t-SimCNE": {
        "knn_accuracy": knn_accuracy(train_embedding, y_train, test_embedding, y_test),
        "train_s": train_s, "epochs": list(epochs), "backbone": args.backbone,
        "mean_seconds_per_epoch": train_s / sum(epochs),  # over all stages
        "mean_views_per_s": 2 * (args.n_train // args.batch_size) * args.batch_size * sum(epochs)
        / train_s,
        "final_losses": [float(h[-1]) for h in estimator.loss_history_ if len(h)],
    }}
    print(f"t-SimCNE: kNN {rows['t-SimCNE']['knn_accuracy']:.3f}, {train_s:.0f} s", flush=True)
    if args.baselines:
        start = time.perf_counter()
        pixel_train, pixel_test = pixel_tsne_baseline(x_train, x_test, random_state=args.seed)
        rows["openTSNE on pixels"] = {
            "knn_accuracy": knn_accuracy(pixel_train, y_train, pixel_test, y_test),
            "train_s": time.perf_counter() - start}
        start = time.perf_counter()
        h_train = estimator.transform(x_train, features=True)
        h_test = estimator.transform(x_test, features=True)
        tsne_h_train, tsne_h_test = pixel_tsne_baseline(h_train, h_test, random_state=args.seed)
        rows["openTSNE on our H features"] = {
            "knn_accuracy": knn_accuracy(tsne_h_train, y_train, tsne_h_test, y_test),
            "train_s": time.perf_counter() - start}
        rows["kNN on our H features"] = {"knn_accuracy": knn_accuracy(
            h_train, y_train, h_test, y_test)}
        rows["kNN on raw pixels"] = {"knn_accuracy": knn_accuracy(
            x_train.reshape(len(x_train), -1), y_train, x_test.reshape(len(x_test), -1), y_test)}
        for name, row in rows.items():
            print(f"{name}: kNN {row['knn_accuracy']:.3f}")
    write_json(args.name, {"command": "python " + " ".join(sys.argv), "args": vars(args),
                           "peak_rss_mib": peak_rss_mib(), "rows": rows})


if __name__ == "__main__":
    main()
