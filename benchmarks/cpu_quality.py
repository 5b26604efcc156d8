"""Time to quality on a CPU: Fashion-MNIST, held-out kNN accuracy within a wall-clock budget.

Trains on the first ``--n-train`` training images of Fashion-MNIST (Debian's
``dataset-fashion-mnist``), places the first ``--n-test`` test images with
``transform`` and reports the kNN (k=15) accuracy of those test points among
the training points, as the paper measures it.

With ``--budget-minutes`` the epochs of the three stages are planned from the
measured step time so that training fits the budget (split ``--split`` of the
time); otherwise ``--epochs`` is used as given.  ``--baselines`` adds openTSNE
on raw pixels (fit on train, ``transform`` test) and t-SNE on our backbone
features H.

    python benchmarks/cpu_quality.py --budget-minutes 15 --backbone resnet10-w32 --baselines
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
from napari_tsimcne.trainer import training_step


def seconds_per_epoch(backbone: str, n_train: int, batch_size: int, augmentation, crop_scale,
                      hidden_dim: int) -> float:
    """Median time of a few real training steps, scaled to one epoch of ``n_train`` images."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 1, 28, 28), dtype=torch.uint8)
    network = TSimCNENetwork(backbone, 1, 128, hidden_dim).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9)
    augment = make_augmentation(augmentation, 1, (28, 28), crop_scale)
    times = []
    for _ in range(4):
        start = time.perf_counter()
        training_step(network, images, augment, CauchyInfoNCELoss(), optimizer)
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:])) * (n_train // batch_size)


def plan_epochs(budget_s: float, epoch_s: float, split) -> tuple[int, int, int]:
    """Epochs per stage so that the stages take ``split`` shares of ``budget_s``.

    The readout stage costs about a third of a full epoch (forward pass only).
    """
    pretrain = max(1, int(budget_s * split[0] / epoch_s))
    readout = max(1, int(budget_s * split[1] / (epoch_s / 3)))
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--name", default="cpu_quality")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    x_train, y_train = load_fashion_mnist("train")
    x_test, y_test = load_fashion_mnist("test")
    x_train, y_train = x_train[: args.n_train], y_train[: args.n_train]
    x_test, y_test = x_test[: args.n_test], y_test[: args.n_test]
    epochs = tuple(args.epochs)
    if args.budget_minutes:
        epoch_s = seconds_per_epoch(args.backbone, args.n_train, args.batch_size,
                                    args.augmentation, tuple(args.crop_scale), args.hidden_dim)
        epochs = plan_epochs(60 * args.budget_minutes, epoch_s, args.split)
        print(f"{epoch_s:.1f} s per epoch -> epochs {epochs}", flush=True)
    lr = "auto" if args.lr == ["auto"] else tuple(float(r) for r in args.lr)
    lr = lr[0] if isinstance(lr, tuple) and len(lr) == 1 else lr
    estimator = TSimCNE(
        epochs=epochs, batch_size=args.batch_size, backbone=args.backbone, lr=lr,
        hidden_dim=args.hidden_dim, augmentation=args.augmentation,
        crop_scale=tuple(args.crop_scale), device="cpu", random_state=args.seed, verbose=True,
    )
    start = time.perf_counter()
    train_embedding = estimator.fit_transform(x_train)
    train_s = time.perf_counter() - start
    test_embedding = estimator.transform(x_test)
    rows = {"t-SimCNE": {
        "knn_accuracy": knn_accuracy(train_embedding, y_train, test_embedding, y_test),
        "train_s": train_s, "epochs": list(epochs), "backbone": args.backbone,
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
        rows["kNN on raw pixels"] = {"knn_accuracy": knn_accuracy(
            x_train.reshape(len(x_train), -1), y_train, x_test.reshape(len(x_test), -1), y_test)}
        for name, row in rows.items():
            print(f"{name}: kNN {row['knn_accuracy']:.3f}")
    write_json(args.name, {"command": "python " + " ".join(sys.argv), "args": vars(args),
                           "peak_rss_mib": peak_rss_mib(), "rows": rows})


if __name__ == "__main__":
    main()
